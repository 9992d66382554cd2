#!/usr/bin/env bash
# Runs once, when the database container initialises an empty data directory (the official
# postgres entrypoint sources *.sh files in /docker-entrypoint-initdb.d as the postgres user,
# with the temporary server listening on its Unix socket only).
#
# Creates the two roles pg-mcp needs, exactly as migrations/0001_roles_and_schemas.sql
# does (that migration skips them when they exist), and gives the application role its
# password from PG_MCP_APP_PASSWORD (passed to the db container by docker-compose.yml):
#   pgmcp_owner  NOLOGIN: owns the schema and every table
#   pgmcp_app    LOGIN, NOSUPERUSER NOBYPASSRLS: what the server connects as
# Idempotent: roles are created only when missing; the password is (re)set every run.
# The password never appears on a command line: psql reads it from its environment.
# No `set -u`: when the file is not executable the entrypoint sources it into its own shell.
set -eo pipefail

export PG_MCP_APP_PASSWORD="${PG_MCP_APP_PASSWORD:-}"
db="${POSTGRES_DB:-postgres}"
user="${POSTGRES_USER:-postgres}"

if [ -z "${PG_MCP_APP_PASSWORD:-}" ]; then
  echo "02-roles.sh: PG_MCP_APP_PASSWORD is empty: pgmcp_app gets no password (pg-mcp migrate can set it later)" >&2
fi

# psql variables are not expanded inside dollar-quoted DO blocks, so the statements that need
# the password are built with format(%L) and executed with \gexec.
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$user" --dbname "$db" <<'SQL'
\getenv app_password PG_MCP_APP_PASSWORD
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgmcp_owner') THEN
    CREATE ROLE pgmcp_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgmcp_app') THEN
    CREATE ROLE pgmcp_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
END
$$;

SELECT format('ALTER ROLE pgmcp_app LOGIN PASSWORD %L', :'app_password')
 WHERE coalesce(:'app_password', '') <> ''
\gexec

-- Defence in depth, as in the migration: the application role cannot write by default and
-- may not sit idle inside a transaction.
ALTER ROLE pgmcp_app SET default_transaction_read_only = on;
ALTER ROLE pgmcp_app SET idle_in_transaction_session_timeout = '60s';
SELECT format('GRANT CONNECT ON DATABASE %I TO pgmcp_app', current_database())
\gexec
SQL

echo "02-roles.sh: roles pgmcp_owner and pgmcp_app ready in database $db" >&2

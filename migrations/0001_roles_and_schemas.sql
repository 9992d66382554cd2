-- pg-mcp's own objects, and nothing else. `pg-mcp migrate` installs them on any database; it
-- never creates, alters or drops an application object, and never changes what other roles
-- may do in the application's schemas. (The retail demo is installed by `pg-mcp seed`, from
-- demo/migrations.) Every statement is idempotent, so a database set up by an older pg-mcp,
-- whose history lived in public._sqlx_migrations, migrates in place.
--
--   pgmcp_owner    owns pg-mcp's schemas and functions (NOLOGIN).
--   pgmcp_app      what the server logs in as: NOSUPERUSER NOBYPASSRLS NOINHERIT, owns
--                  nothing, read-only by default, so row-level security always applies to it.
--   pgmcp          the verified tenant context: pgmcp.tenant_id(), pgmcp.claim(name), ...
--                  Usable by every role, so a policy may call them whatever role queries.
--   pgmcp_private  the signing key and the migration history: the owner's alone.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgmcp_owner') THEN
    CREATE ROLE pgmcp_owner NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pgmcp_app') THEN
    CREATE ROLE pgmcp_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
  END IF;
  -- A non-superuser admin (managed clouds) must be able to act as the owner.
  IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    EXECUTE format('GRANT pgmcp_owner TO %I', current_user);
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgmcp_app', current_database());
END
$$;

-- Defence in depth: even a connection that forgets BEGIN READ ONLY cannot write.
ALTER ROLE pgmcp_app SET default_transaction_read_only = on;
ALTER ROLE pgmcp_app SET idle_in_transaction_session_timeout = '60s';

-- The migrator created pgmcp_private for its history table before this ran.
CREATE SCHEMA IF NOT EXISTS pgmcp_private;
ALTER SCHEMA pgmcp_private OWNER TO pgmcp_owner;
REVOKE ALL ON SCHEMA pgmcp_private FROM PUBLIC;

CREATE SCHEMA IF NOT EXISTS pgmcp AUTHORIZATION pgmcp_owner;
REVOKE ALL ON SCHEMA pgmcp FROM PUBLIC;
GRANT USAGE ON SCHEMA pgmcp TO PUBLIC;

SET LOCAL ROLE pgmcp_owner;
CREATE TABLE IF NOT EXISTS pgmcp_private.tenant_signing_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    signing_key text    NOT NULL CHECK (length(signing_key) >= 32),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgmcp_private.tenant_signing_key FROM PUBLIC;
RESET ROLE;

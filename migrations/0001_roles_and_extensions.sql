-- Roles and extensions. Roles are cluster-wide, so they are created only when missing.
--   pgmcp_owner: owns the schema and every table (NOLOGIN).
--   pgmcp_app:   what the server logs in as. NOSUPERUSER NOBYPASSRLS, owns nothing,
--                read-only by default, so row-level security always applies to it.
CREATE EXTENSION IF NOT EXISTS vector;

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
END
$$;

-- Defence in depth: even a connection that forgets BEGIN READ ONLY cannot write.
ALTER ROLE pgmcp_app SET default_transaction_read_only = on;
ALTER ROLE pgmcp_app SET idle_in_transaction_session_timeout = '60s';

-- The application role may not create anything, not even temporary tables.
DO $$
BEGIN
  EXECUTE format('REVOKE TEMPORARY, CREATE ON DATABASE %I FROM PUBLIC', current_database());
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO pgmcp_app', current_database());
  EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO pgmcp_owner', current_database());
END
$$;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Runs once, when the database container initialises an empty data directory, in the
-- database named by POSTGRES_DB (as the bootstrap superuser).
--
-- The container path to the extension the retail demo needs: `pg-mcp seed` (demo/migrations)
-- and `pg-mcp embed` create it again with IF NOT EXISTS, so both orders work. Each extension is
-- created only when the image ships it, so a plain postgres image still starts (the migration
-- then reports the missing pgvector clearly).

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector') THEN
    CREATE EXTENSION IF NOT EXISTS vector;
  ELSE
    RAISE WARNING 'extension "vector" (pgvector) is not available in this image; use pgvector/pgvector:pg17';
  END IF;
END
$$;

-- pg_trgm: trigram indexes for fuzzy text search; optional.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
  ELSE
    RAISE NOTICE 'extension "pg_trgm" is not available; skipped';
  END IF;
END
$$;

-- pg_stat_statements: statement statistics for the DBA tool top_queries (the server is started
-- with shared_preload_libraries=pg_stat_statements by docker-compose.yml; pg-mcp migrate closes
-- the view to the application role).
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements') THEN
    CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
  ELSE
    RAISE NOTICE 'extension "pg_stat_statements" is not available; top_queries will say so';
  END IF;
END
$$;

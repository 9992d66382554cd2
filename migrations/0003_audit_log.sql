-- The persisted audit log: one row per tool call, written by every pg-mcp process that shares
-- this database, so the history survives restarts and spans replicas.
--
-- The table lives in pgmcp_private, which no role but pgmcp_owner may use: tenant SQL (which
-- runs as pgmcp_app) can neither read nor change it, whatever the SQL guard lets through.
-- The server reaches it only through the three SECURITY DEFINER functions below, each of which
-- demands a proof made with the signing key the server shares with the database
-- (pgmcp_private.tenant_signing_key):
--   proof = hex(sha256(key ':' purpose ':' payload ':' issued_at_ms ':' key))
-- bound to the exact payload (so a leaked proof authorises nothing else) and valid for two
-- minutes. `purpose` separates these proofs from pgmcp.enter's ('proof') and from each other.
-- A replayed append changes nothing: (instance, seq) is unique and duplicates are skipped.
--
-- SQL is stored as pg-mcp masked it (every literal replaced by ?); parameter values only when
-- the operator sets PG_MCP_HISTORY_STORE_PARAMS.

SET LOCAL ROLE pgmcp_owner;

CREATE TABLE pgmcp_private.audit_log (
    instance       text             NOT NULL,
    seq            bigint           NOT NULL,
    time           timestamptz      NOT NULL,
    request_id     text,
    tool           text             NOT NULL,
    database       text             NOT NULL,
    tenant         text,
    subject        text,
    statement_kind text,
    sql            text,
    param_count    integer          NOT NULL DEFAULT 0,
    params         jsonb,
    row_count      bigint,
    affected_rows  bigint,
    duration_ms    double precision NOT NULL,
    outcome        text             NOT NULL,
    error_code     text,
    -- Also what makes a replayed batch a no-op. No surrogate key: every index costs each of the
    -- thousands of rows a second a busy server appends.
    PRIMARY KEY (instance, seq)
);
CREATE INDEX audit_log_time ON pgmcp_private.audit_log (time DESC);
CREATE INDEX audit_log_tenant_time ON pgmcp_private.audit_log (tenant, time DESC);
REVOKE ALL ON pgmcp_private.audit_log FROM PUBLIC;
COMMENT ON TABLE pgmcp_private.audit_log IS
  'pg-mcp tool calls (masked SQL); written and read only through pgmcp.audit_* with the server''s proof';

-- Whether `proof` was made with the signing key for `purpose` and `payload`, within two
-- minutes of the database clock. Plain SQL, inlined into its SECURITY DEFINER callers.
CREATE FUNCTION pgmcp_private.signed(purpose text, payload text, issued_at_ms bigint, proof text)
RETURNS boolean
LANGUAGE sql STABLE
AS $$
  SELECT coalesce(bool_or(
           issued_at_ms IS NOT NULL
           AND abs((pg_catalog.date_part('epoch', pg_catalog.clock_timestamp()) * 1000)::bigint - issued_at_ms) <= 120000
           AND proof = encode(pg_catalog.sha256(pg_catalog.convert_to(
                 k.signing_key || ':' || purpose || ':' || payload || ':' || issued_at_ms::text
                 || ':' || k.signing_key, 'UTF8')), 'hex')), false)
    FROM pgmcp_private.tenant_signing_key k
$$;
REVOKE ALL ON FUNCTION pgmcp_private.signed(text, text, bigint, text) FROM PUBLIC;

-- Appends a batch: `entries` is a JSON array of objects named like the columns (`id` for
-- seq, `rows` for row_count), as /query_history shows them. Returns how many rows were new.
CREATE FUNCTION pgmcp.audit_append(entries text, issued_at_ms bigint, proof text) RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  appended integer;
BEGIN
  IF NOT pgmcp_private.signed('audit_append', entries, issued_at_ms, proof) THEN
    RAISE EXCEPTION 'pgmcp.audit_append(): the proof does not verify' USING ERRCODE = '28000';
  END IF;
  INSERT INTO pgmcp_private.audit_log
         (instance, seq, time, request_id, tool, database, tenant, subject, statement_kind, sql,
          param_count, params, row_count, affected_rows, duration_ms, outcome, error_code)
  SELECT e.instance, e.id, e.time, e.request_id, e.tool, e.database, e.tenant, e.subject,
         e.statement_kind, e.sql, coalesce(e.param_count, 0), e.params, e."rows", e.affected_rows,
         e.duration_ms, e.outcome, e.error_code
    FROM json_to_recordset(entries::json) AS e(
           instance text, id bigint, time timestamptz, request_id text, tool text,
           database text, tenant text, subject text, statement_kind text, sql text,
           param_count integer, params jsonb, "rows" bigint, affected_rows bigint,
           duration_ms double precision, outcome text, error_code text)
  ON CONFLICT (instance, seq) DO NOTHING;
  GET DIAGNOSTICS appended = ROW_COUNT;
  RETURN appended;
END
$$;
REVOKE ALL ON FUNCTION pgmcp.audit_append(text, bigint, text) FROM PUBLIC;

-- Newest first, filtered: `filter` is a JSON object with optional database, tenant, instance,
-- status (OK, error, or an error code) and limit (1-10000, default 100). One JSON object per
-- call, named as the server's /query_history names them.
CREATE FUNCTION pgmcp.audit_read(filter text, issued_at_ms bigint, proof text) RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  f jsonb;
BEGIN
  IF NOT pgmcp_private.signed('audit_read', filter, issued_at_ms, proof) THEN
    RAISE EXCEPTION 'pgmcp.audit_read(): the proof does not verify' USING ERRCODE = '28000';
  END IF;
  f := filter::jsonb;
  RETURN QUERY
  SELECT jsonb_strip_nulls(jsonb_build_object(
           'id', a.seq, 'instance', a.instance, 'time', a.time, 'request_id', a.request_id,
           'tool', a.tool, 'database', a.database, 'tenant', a.tenant, 'subject', a.subject,
           'statement_kind', a.statement_kind, 'sql', a.sql, 'param_count', a.param_count,
           'params', a.params, 'rows', a.row_count, 'affected_rows', a.affected_rows,
           'duration_ms', a.duration_ms, 'outcome', a.outcome, 'error_code', a.error_code))
    FROM pgmcp_private.audit_log a
   WHERE (f->>'database' IS NULL OR a.database = f->>'database')
     AND (f->>'tenant' IS NULL OR a.tenant = f->>'tenant')
     AND (f->>'instance' IS NULL OR a.instance = f->>'instance')
     AND CASE
           WHEN f->>'status' IS NULL THEN true
           WHEN lower(f->>'status') IN ('ok', 'success') THEN a.outcome = 'OK'
           WHEN lower(f->>'status') = 'error' THEN a.outcome <> 'OK'
           ELSE a.outcome = upper(f->>'status')
         END
   ORDER BY a.time DESC, a.seq DESC
   LIMIT least(greatest(coalesce((f->>'limit')::integer, 100), 1), 10000);
END
$$;
REVOKE ALL ON FUNCTION pgmcp.audit_read(text, bigint, text) FROM PUBLIC;

-- Deletes the calls older than `retention_secs`; returns how many.
CREATE FUNCTION pgmcp.audit_prune(retention_secs bigint, issued_at_ms bigint, proof text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  pruned bigint;
BEGIN
  IF retention_secs IS NULL OR retention_secs <= 0
     OR NOT pgmcp_private.signed('audit_prune', retention_secs::text, issued_at_ms, proof) THEN
    RAISE EXCEPTION 'pgmcp.audit_prune(): the proof does not verify' USING ERRCODE = '28000';
  END IF;
  DELETE FROM pgmcp_private.audit_log
   WHERE time < clock_timestamp() - make_interval(secs => retention_secs);
  GET DIAGNOSTICS pruned = ROW_COUNT;
  RETURN pruned;
END
$$;
REVOKE ALL ON FUNCTION pgmcp.audit_prune(bigint, bigint, text) FROM PUBLIC;

RESET ROLE;
GRANT EXECUTE ON FUNCTION pgmcp.audit_append(text, bigint, text),
                          pgmcp.audit_read(text, bigint, text),
                          pgmcp.audit_prune(bigint, bigint, text) TO pgmcp_app;

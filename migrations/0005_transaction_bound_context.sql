-- Transaction-bound tenant context: a value one transaction can observe lets no other
-- transaction, on any connection, act as another tenant.
--
-- Before (0003) the server set app.current_rls_signature = sha256(key:uid:key): a constant
-- per tenant, so anyone who read head office's value once held head office's credential.
--
-- Now the server opens every tenant transaction with one simple-protocol message:
--   BEGIN ...; SELECT set_config(<timeouts>), pgmcp.enter(uid, issued_at_ms, proof)
-- pgmcp.enter (SECURITY DEFINER, reads the key) accepts only
--   * in the protocol message that began the transaction (statement_timestamp() equals
--     transaction_timestamp(): PostgreSQL stamps both once per client message). Tenant SQL
--     always arrives in a later message, so it can never call enter() successfully;
--   * a proof sha256(key:'proof':uid:issued_at_ms:key) issued within the last two minutes;
-- and then sets
--   app.current_rls_user_id   = uid (plain, for policies and for the caller to read)
--   app.current_rls_signature = sha256(key:'token':uid:backend pid:transaction start in µs:key)
-- The token names this backend and this transaction's start, so it verifies nowhere else:
-- replayed on another connection the pid differs, replayed later on the same connection the
-- transaction start differs. pgmcp.verified_tenant() recomputes it for every statement.
--
-- The verifying functions are PARALLEL RESTRICTED: a parallel worker has its own pid, so they
-- must run in the leader (policies call them from an InitPlan, which the leader evaluates).
CREATE SCHEMA IF NOT EXISTS pgmcp AUTHORIZATION pgmcp_owner;
REVOKE ALL ON SCHEMA pgmcp FROM PUBLIC;
GRANT USAGE ON SCHEMA pgmcp TO pgmcp_app;
SET LOCAL ROLE pgmcp_owner;

-- The transaction-bound token, given the key. A plain SQL expression function, so PostgreSQL
-- inlines it into its callers (both SECURITY DEFINER, both run as the owner); it lives in
-- pgmcp_private, which the application role cannot use.
CREATE FUNCTION pgmcp_private.context_token(signing_key text, uid text) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT encode(pg_catalog.sha256(pg_catalog.convert_to(
           signing_key || ':token:' || uid || ':' || pg_catalog.pg_backend_pid()::text || ':'
           || ((pg_catalog.date_part('epoch', pg_catalog.transaction_timestamp()) * 1000000)::bigint)::text
           || ':' || signing_key, 'UTF8')), 'hex')
$$;
REVOKE ALL ON FUNCTION pgmcp_private.context_token(text, text) FROM PUBLIC;

CREATE FUNCTION pgmcp.enter(uid text, issued_at_ms bigint, proof text) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  key text;
  now_ms bigint := (extract(epoch FROM transaction_timestamp()) * 1000)::bigint;
BEGIN
  IF statement_timestamp() <> transaction_timestamp() THEN
    RAISE EXCEPTION 'pgmcp.enter() must be called in the message that begins the transaction'
      USING ERRCODE = '42501';
  END IF;
  IF uid IS NULL OR uid !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RAISE EXCEPTION 'pgmcp.enter(): the tenant id is not a lower-case UUID' USING ERRCODE = '22023';
  END IF;
  IF issued_at_ms IS NULL OR abs(now_ms - issued_at_ms) > 120000 THEN
    RAISE EXCEPTION 'pgmcp.enter(): the tenant proof is stale (issued % ms from the database clock; limit 120000 ms): check the clocks of the server and the database',
      now_ms - coalesce(issued_at_ms, 0) USING ERRCODE = '42501';
  END IF;
  SELECT k.signing_key INTO key FROM pgmcp_private.tenant_signing_key k;
  IF key IS NULL OR proof IS DISTINCT FROM encode(sha256(convert_to(
       key || ':proof:' || uid || ':' || issued_at_ms::text || ':' || key, 'UTF8')), 'hex') THEN
    RAISE EXCEPTION 'pgmcp.enter(): the tenant proof does not verify: the server''s PG_MCP_TENANT_SIGNING_KEY differs from the key stored by pg-mcp migrate'
      USING ERRCODE = '28000';
  END IF;
  PERFORM set_config('app.current_rls_user_id', uid, true),
          set_config('app.current_rls_signature', pgmcp_private.context_token(key, uid), true);
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION pgmcp.enter(text, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION pgmcp.enter(text, bigint, text) IS
  'Sets the verified tenant of this transaction; only in the message that began it, with a fresh proof';

-- The verified tenant of this transaction, NULL when unset, forged or replayed.
CREATE FUNCTION pgmcp.verified_tenant() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.uid::uuid
    FROM (SELECT current_setting('app.current_rls_user_id', true)   AS uid,
                 current_setting('app.current_rls_signature', true) AS sig) c,
         pgmcp_private.tenant_signing_key k
   WHERE c.uid ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     AND c.sig = pgmcp_private.context_token(k.signing_key, c.uid)
$$;
REVOKE ALL ON FUNCTION pgmcp.verified_tenant() FROM PUBLIC;
COMMENT ON FUNCTION pgmcp.verified_tenant() IS
  'The tenant the server set for this transaction (NULL when unset, forged or replayed)';

-- The demo's functions now read the transaction-bound context.
CREATE OR REPLACE FUNCTION retail.current_tenant() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgmcp.verified_tenant() $$;

CREATE OR REPLACE FUNCTION retail.tenant_store_ids() RETURNS integer[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
  -- Materialised: the verification runs once, not once per store row of the join.
  WITH v AS MATERIALIZED (SELECT pgmcp.verified_tenant() AS uid)
  SELECT coalesce(array_agg(s.store_id ORDER BY s.store_id), '{}')
    FROM v JOIN retail.stores s
      ON v.uid = '00000000-0000-0000-0000-000000000000'::uuid OR s.rls_user_id = v.uid
$$;

RESET ROLE;
GRANT EXECUTE ON FUNCTION pgmcp.enter(text, bigint, text) TO pgmcp_app;
GRANT EXECUTE ON FUNCTION pgmcp.verified_tenant() TO pgmcp_app;

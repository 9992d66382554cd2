-- The verified tenant context: values the server chose for this transaction, which any
-- row-level-security policy can read and no SQL text can forge.
--
-- The server opens every tenant transaction with one simple-protocol message:
--   BEGIN ...; SELECT set_config(<timeouts>), pgmcp.enter(context, issued_at_ms, proof)
-- where context is the caller's values as `name=value` pairs joined by `;`, for example
-- `tenant=42;user=alice@example.com` (names: lower-case identifiers; values: letters, digits
-- and `_ . @ : + -`; the server validates each by its type and length).
--
-- pgmcp.enter (SECURITY DEFINER, reads the key) accepts only
--   * in the protocol message that began the transaction (statement_timestamp() equals
--     transaction_timestamp(): PostgreSQL stamps both once per client message). Tenant SQL
--     always arrives in a later message, so it can never call enter() successfully;
--   * a proof sha256(key:'proof':context:issued_at_ms:key) issued within the last two minutes;
-- and then sets, transaction-locally,
--   pgmcp.context        the context (plain: the caller may read its own values)
--   pgmcp.context_token  sha256(key:'token':context:backend pid:transaction start in µs:key)
-- The token names this backend and this transaction's start, so it verifies nowhere else:
-- replayed on another connection the pid differs, replayed later on the same connection the
-- transaction start differs. Every accessor recomputes it, so set_config() from SQL text
-- gives NULL, never another tenant.
--
-- Policies use the accessors, wrapped in a scalar subquery so they run once per statement:
--   USING (org_id = (SELECT pgmcp.tenant_id())::bigint)
-- NULL (no context, or a forged one) matches no row: fail closed.
--
-- The verifying functions are PARALLEL RESTRICTED: a parallel worker has its own pid, so they
-- must run in the leader (a policy's InitPlan runs there).

-- Replaced from an older pg-mcp: the context was one UUID (app.current_rls_user_id).
DROP FUNCTION IF EXISTS pgmcp.enter(text, bigint, text);
DROP FUNCTION IF EXISTS pgmcp.verified_tenant();
DROP FUNCTION IF EXISTS pgmcp_private.context_token(text, text);

SET LOCAL ROLE pgmcp_owner;

-- The transaction-bound token, given the key. A plain SQL expression function, so PostgreSQL
-- inlines it into its SECURITY DEFINER callers; it lives in pgmcp_private, which no other
-- role can use.
CREATE FUNCTION pgmcp_private.context_token(signing_key text, context text) RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$
  SELECT encode(pg_catalog.sha256(pg_catalog.convert_to(
           signing_key || ':token:' || context || ':' || pg_catalog.pg_backend_pid()::text || ':'
           || ((pg_catalog.date_part('epoch', pg_catalog.transaction_timestamp()) * 1000000)::bigint)::text
           || ':' || signing_key, 'UTF8')), 'hex')
$$;
REVOKE ALL ON FUNCTION pgmcp_private.context_token(text, text) FROM PUBLIC;

CREATE FUNCTION pgmcp.enter(context text, issued_at_ms bigint, proof text) RETURNS boolean
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
  -- Unbounded repetitions and a length check: PostgreSQL expands bounded ones ({0,15},
  -- {1,128}) into an automaton that took 120 us per match, most of this function's cost.
  IF context IS NULL OR length(context) > 2800
     OR context !~ '^[a-z][a-z0-9_]*=[A-Za-z0-9_.@:+-]+(;[a-z][a-z0-9_]*=[A-Za-z0-9_.@:+-]+)*$' THEN
    RAISE EXCEPTION 'pgmcp.enter(): the context is not name=value pairs joined by ";"' USING ERRCODE = '22023';
  END IF;
  IF issued_at_ms IS NULL OR abs(now_ms - issued_at_ms) > 120000 THEN
    RAISE EXCEPTION 'pgmcp.enter(): the tenant proof is stale (issued % ms from the database clock; limit 120000 ms): check the clocks of the server and the database',
      now_ms - coalesce(issued_at_ms, 0) USING ERRCODE = '42501';
  END IF;
  SELECT k.signing_key INTO key FROM pgmcp_private.tenant_signing_key k;
  IF key IS NULL OR proof IS DISTINCT FROM encode(sha256(convert_to(
       key || ':proof:' || context || ':' || issued_at_ms::text || ':' || key, 'UTF8')), 'hex') THEN
    RAISE EXCEPTION 'pgmcp.enter(): the tenant proof does not verify: the server''s PG_MCP_TENANT_SIGNING_KEY differs from the key stored by pg-mcp migrate'
      USING ERRCODE = '28000';
  END IF;
  PERFORM set_config('pgmcp.context', context, true),
          set_config('pgmcp.context_token', pgmcp_private.context_token(key, context), true);
  RETURN true;
END
$$;
REVOKE ALL ON FUNCTION pgmcp.enter(text, bigint, text) FROM PUBLIC;
COMMENT ON FUNCTION pgmcp.enter(text, bigint, text) IS
  'Sets the verified context of this transaction; only in the message that began it, with a fresh proof';

-- The verified context of this transaction, NULL when unset, forged or replayed.
CREATE OR REPLACE FUNCTION pgmcp.context() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.ctx
    FROM (SELECT current_setting('pgmcp.context', true)       AS ctx,
                 current_setting('pgmcp.context_token', true) AS token) c,
         pgmcp_private.tenant_signing_key k
   WHERE c.token = pgmcp_private.context_token(k.signing_key, c.ctx)
$$;
COMMENT ON FUNCTION pgmcp.context() IS
  'The context the server set for this transaction, as name=value pairs (NULL when unset, forged or replayed)';

-- One verified value by name, NULL when absent, unset, forged or replayed. Verifies on its
-- own (one function call, not two) because policies call it on every statement.
CREATE OR REPLACE FUNCTION pgmcp.claim(name text) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT split_part(p.pair, '=', 2)
    FROM (SELECT current_setting('pgmcp.context', true)       AS ctx,
                 current_setting('pgmcp.context_token', true) AS token) c
    JOIN pgmcp_private.tenant_signing_key k
      ON c.token = pgmcp_private.context_token(k.signing_key, c.ctx)
   CROSS JOIN LATERAL string_to_table(c.ctx, ';') AS p(pair)
   WHERE split_part(p.pair, '=', 1) = name
$$;
COMMENT ON FUNCTION pgmcp.claim(text) IS
  'One value of the verified context by name (NULL when absent, unset, forged or replayed)';

-- The two values every deployment names the same way. Plain SQL, so they inline into claim().
CREATE OR REPLACE FUNCTION pgmcp.tenant_id() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT pgmcp.claim('tenant') $$;
COMMENT ON FUNCTION pgmcp.tenant_id() IS
  'The verified tenant of this transaction (NULL when unset, forged or replayed); cast it to the tenant column''s type';

CREATE OR REPLACE FUNCTION pgmcp.user_id() RETURNS text
LANGUAGE sql STABLE PARALLEL RESTRICTED
AS $$ SELECT pgmcp.claim('user') $$;
COMMENT ON FUNCTION pgmcp.user_id() IS
  'The verified end user of this transaction, when the server is configured to pass one (else NULL)';

RESET ROLE;
GRANT EXECUTE ON FUNCTION pgmcp.enter(text, bigint, text) TO pgmcp_app;
-- The accessors reveal only this transaction's own verified values, so every role may call
-- them: a policy that uses them then works whichever role queries the table.
GRANT EXECUTE ON FUNCTION pgmcp.context(), pgmcp.claim(text), pgmcp.tenant_id(), pgmcp.user_id() TO PUBLIC;

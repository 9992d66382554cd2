-- Signed tenant context and row-level security.
--
-- The server sets two transaction-local settings before any tool SQL:
--   app.current_rls_user_id   the caller's UUID
--   app.current_rls_signature hex(sha256(key || ':' || uuid || ':' || key))
-- The key lives in pgmcp_private, which the application role cannot read. Policies accept
-- the tenant only when the signature verifies, so SQL text that calls set_config() to
-- switch tenant (even past the SQL guard) matches no rows. Unset, empty, malformed or
-- unknown tenants see nothing: fail closed.
CREATE SCHEMA IF NOT EXISTS pgmcp_private AUTHORIZATION pgmcp_owner;
REVOKE ALL ON SCHEMA pgmcp_private FROM PUBLIC;
SET LOCAL ROLE pgmcp_owner;

CREATE TABLE pgmcp_private.tenant_signing_key (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    signing_key text    NOT NULL CHECK (length(signing_key) >= 32),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON pgmcp_private.tenant_signing_key FROM PUBLIC;

-- The stores the verified tenant may see: all for head office, its own for a manager,
-- none otherwise. SECURITY DEFINER so it can read the key; STABLE and wrapped in a scalar
-- subquery by the policies so it runs once per statement, not once per row.
CREATE FUNCTION retail.tenant_store_ids() RETURNS integer[]
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH claimed AS (
    SELECT current_setting('app.current_rls_user_id', true)   AS uid,
           current_setting('app.current_rls_signature', true) AS sig
  ), verified AS (
    SELECT c.uid
      FROM claimed c, pgmcp_private.tenant_signing_key k
     WHERE c.uid ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
       AND c.sig = encode(sha256(convert_to(k.signing_key || ':' || c.uid || ':' || k.signing_key, 'UTF8')), 'hex')
  )
  SELECT coalesce(array_agg(s.store_id ORDER BY s.store_id), '{}')
    FROM verified v
    JOIN retail.stores s
      ON v.uid = '00000000-0000-0000-0000-000000000000' OR s.rls_user_id = v.uid::uuid
$$;
COMMENT ON FUNCTION retail.tenant_store_ids() IS
  'Store ids visible to the verified tenant of this transaction (empty when unset or unverified)';

-- The verified tenant id itself (NULL when unset or forged), handy in queries and tests.
CREATE FUNCTION retail.current_tenant() RETURNS uuid
LANGUAGE sql STABLE SECURITY DEFINER PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.uid::uuid
    FROM (SELECT current_setting('app.current_rls_user_id', true)   AS uid,
                 current_setting('app.current_rls_signature', true) AS sig) c,
         pgmcp_private.tenant_signing_key k
   WHERE c.uid ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     AND c.sig = encode(sha256(convert_to(k.signing_key || ':' || c.uid || ':' || k.signing_key, 'UTF8')), 'hex')
$$;

REVOKE ALL ON FUNCTION retail.tenant_store_ids() FROM PUBLIC;
REVOKE ALL ON FUNCTION retail.current_tenant() FROM PUBLIC;

ALTER TABLE retail.customers   ENABLE ROW LEVEL SECURITY;
ALTER TABLE retail.customers   FORCE ROW LEVEL SECURITY;
ALTER TABLE retail.orders      ENABLE ROW LEVEL SECURITY;
ALTER TABLE retail.orders      FORCE ROW LEVEL SECURITY;
ALTER TABLE retail.order_items ENABLE ROW LEVEL SECURITY;
ALTER TABLE retail.order_items FORCE ROW LEVEL SECURITY;
ALTER TABLE retail.inventory   ENABLE ROW LEVEL SECURITY;
ALTER TABLE retail.inventory   FORCE ROW LEVEL SECURITY;

CREATE POLICY customers_by_store ON retail.customers
  USING (primary_store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (primary_store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
CREATE POLICY orders_by_store ON retail.orders
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
CREATE POLICY order_items_by_store ON retail.order_items
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
CREATE POLICY inventory_by_store ON retail.inventory
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));

RESET ROLE;

-- The demo's row-level security, written against pg-mcp's verified context (pgmcp.tenant_id(),
-- installed by `pg-mcp migrate`) as any database's policies would be. A store manager's
-- tenant is their UUID (retail.stores.rls_user_id); head office (the nil UUID) sees every
-- store. Unset, forged, replayed or unknown tenants see nothing: fail closed.
SET LOCAL ROLE pgmcp_owner;

-- The verified tenant as a UUID (NULL when unset, forged, replayed or not a UUID).
-- PL/pgSQL rather than SQL: its statements keep their plans for the session, where a SQL
-- function's body is planned again in every transaction (about 30 us per call here).
CREATE OR REPLACE FUNCTION retail.current_tenant() RETURNS uuid
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $$
DECLARE
  t text := pgmcp.tenant_id();
BEGIN
  IF t ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    RETURN t::uuid;
  END IF;
  RETURN NULL;
END
$$;

-- The stores the verified tenant may see: all for head office, its own for a manager, none
-- otherwise. STABLE and wrapped in a scalar subquery by the policies, so it runs once per
-- statement, not once per row.
CREATE OR REPLACE FUNCTION retail.tenant_store_ids() RETURNS integer[]
LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
AS $$
DECLARE
  uid uuid := retail.current_tenant();
  ids integer[];
BEGIN
  IF uid IS NULL THEN
    RETURN '{}';
  ELSIF uid = '00000000-0000-0000-0000-000000000000'::uuid THEN
    SELECT array_agg(s.store_id ORDER BY s.store_id) INTO ids FROM retail.stores s;
  ELSE
    SELECT array_agg(s.store_id ORDER BY s.store_id) INTO ids FROM retail.stores s WHERE s.rls_user_id = uid;
  END IF;
  RETURN coalesce(ids, '{}');
END
$$;
COMMENT ON FUNCTION retail.tenant_store_ids() IS
  'Store ids visible to the verified tenant of this transaction (empty when unset or unverified)';

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

DROP POLICY IF EXISTS customers_by_store ON retail.customers;
CREATE POLICY customers_by_store ON retail.customers
  USING (primary_store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (primary_store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
DROP POLICY IF EXISTS orders_by_store ON retail.orders;
CREATE POLICY orders_by_store ON retail.orders
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
DROP POLICY IF EXISTS order_items_by_store ON retail.order_items;
CREATE POLICY order_items_by_store ON retail.order_items
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));
DROP POLICY IF EXISTS inventory_by_store ON retail.inventory;
CREATE POLICY inventory_by_store ON retail.inventory
  USING (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]))
  WITH CHECK (store_id = ANY ((SELECT retail.tenant_store_ids())::integer[]));

RESET ROLE;
-- The application role reads the retail schema and nothing else.
GRANT USAGE ON SCHEMA retail TO pgmcp_app;
GRANT SELECT ON ALL TABLES IN SCHEMA retail TO pgmcp_app;
GRANT EXECUTE ON FUNCTION retail.tenant_store_ids() TO pgmcp_app;
GRANT EXECUTE ON FUNCTION retail.current_tenant() TO pgmcp_app;
ALTER DEFAULT PRIVILEGES FOR ROLE pgmcp_owner IN SCHEMA retail GRANT SELECT ON TABLES TO pgmcp_app;

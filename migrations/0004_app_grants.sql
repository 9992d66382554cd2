-- The application role reads the retail schema and nothing else. Read-write deployments
-- grant more by hand; the server still opens read-only transactions unless configured.
GRANT USAGE ON SCHEMA retail TO pgmcp_app;
GRANT SELECT ON ALL TABLES IN SCHEMA retail TO pgmcp_app;
GRANT EXECUTE ON FUNCTION retail.tenant_store_ids() TO pgmcp_app;
GRANT EXECUTE ON FUNCTION retail.current_tenant() TO pgmcp_app;
ALTER DEFAULT PRIVILEGES FOR ROLE pgmcp_owner IN SCHEMA retail GRANT SELECT ON TABLES TO pgmcp_app;

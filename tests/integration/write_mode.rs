//! Write mode on a real database: off by default (no write tool, every write refused), on per
//! database for callers allowed to write; two tenants' writes stay in their own stores
//! (row-level security's WITH CHECK, with the SQL guard on and off); transactions are all or
//! nothing and a dry run changes nothing; batches commit one by one and the failing one is
//! named; whole-table UPDATE and DELETE need a flag; callers without the write scope are
//! refused; `pg-mcp migrate` grants writes only in write mode.
//!
//! Each test writes to a throwaway database of its own with the retail demo seeded in it.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::databases::{fresh_database, pg_mcp_on, stderr, with_database};
use crate::common::{McpClient, SEATTLE, TestServer, admin_pool, env};

/// The Tacoma store manager (store 3).
pub(crate) const TACOMA: &str = "c67cd9be-68d6-4456-b0f7-c4f78ffb2818";
pub(crate) const SEATTLE_STORE: i64 = 1;
const TACOMA_STORE: i64 = 3;
const SECRET: &str = "write-mode-test-secret-of-32-bytes!!";

/// Settings that put database `default` in write mode for `migrate`.
const WRITE_MODE: &[(&str, &str)] = &[
    ("PG_MCP_SCHEMAS", "retail"),
    ("PG_MCP_WRITE_DATABASES", "default"),
];

/// A fresh database with the retail demo (a small seed), migrated in write mode; a superuser
/// pool on it.
pub(crate) async fn demo_database(name: &str) -> PgPool {
    let admin = fresh_database(name).await;
    for (args, extra) in [
        (&["migrate"][..], &[][..]),
        (&["seed", "--scale", "0.02"][..], &[][..]),
        (&["migrate"][..], WRITE_MODE),
    ] {
        let out = pg_mcp_on(name, args, extra).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    admin
}

/// A server on database `name` in write mode, header callers allowed to write.
async fn write_server(name: &str, guard_off: bool) -> TestServer {
    let url = with_database(&env().app_url, name);
    TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.write_databases = vec!["default".into()];
        c.header_writes = true;
        c.rate_limit_per_minute = 0;
        c.unsafe_disable_sql_guard = guard_off;
    })
    .await
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(AssertSqlSafe(sql.to_string()))
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn orders_of(pool: &PgPool, store: i64) -> i64 {
    scalar(
        pool,
        &format!("SELECT count(*) FROM retail.orders WHERE store_id = {store}"),
    )
    .await
}

/// A customer of the Seattle store (orders need one).
pub(crate) async fn seattle_customer(pool: &PgPool) -> i64 {
    scalar(
        pool,
        "SELECT min(customer_id)::int8 FROM retail.customers WHERE primary_store_id = 1",
    )
    .await
}

pub(crate) const INSERT_ORDER: &str = "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES ($1, $2, $3::date) RETURNING order_id, store_id";

/// Asserts that `output` of tool `name` validates against the outputSchema `tools/list` gave.
fn assert_output_schema(tools: &[Value], name: &str, output: &Value) {
    let tool = tools
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("{name} is listed"));
    let validator = jsonschema::validator_for(&tool["outputSchema"]).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(output)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{output}");
}

fn tool_names(tools: &[Value]) -> Vec<&str> {
    tools.iter().map(|t| t["name"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn write_mode_off_lists_no_write_tool_and_refuses_every_write() {
    let admin = admin_pool().await;
    let before = scalar(&admin, "SELECT count(*) FROM retail.orders").await;
    // The caller may write; the database is not in write mode.
    let server = TestServer::start_with(|c| c.header_writes = true).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let tools = c.list_tools().await;
    let names = tool_names(&tools);
    assert!(!names.contains(&"execute_transaction"), "{names:?}");
    assert!(!names.contains(&"batch_execute"), "{names:?}");
    let execute = tools.iter().find(|t| t["name"] == "execute_query").unwrap();
    assert_eq!(execute["annotations"]["readOnlyHint"], json!(true));

    for sql in [
        "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES (1, 1, '2026-12-01')",
        "UPDATE retail.orders SET order_date = order_date WHERE order_id = 1",
        "DELETE FROM retail.orders WHERE order_id = 1",
        "WITH d AS (DELETE FROM retail.orders WHERE order_id = 1 RETURNING 1) SELECT count(*) FROM d",
    ] {
        let out = c.query(sql).await;
        assert_eq!(out.error_code(), Some("UNSAFE_SQL"), "{sql}: {}", out.text);
    }
    let reply = c
        .request(
            "tools/call",
            json!({"name": "execute_transaction", "arguments": {"statements": [{"sql": "DELETE FROM retail.orders WHERE order_id = 1"}]}}),
        )
        .await;
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("unknown tool"),
        "{reply}"
    );
    let after = scalar(&admin, "SELECT count(*) FROM retail.orders").await;
    assert_eq!(before, after, "the database is unchanged");
}

#[tokio::test]
async fn two_tenants_write_only_in_their_own_store_with_the_guard_on_and_off() {
    const DB: &str = "pgmcp_write_tenants";
    let admin = demo_database(DB).await;
    let customer = seattle_customer(&admin).await;
    for guard_off in [false, true] {
        let server = write_server(DB, guard_off).await;
        let mut seattle = server.client(Some(SEATTLE)).await;
        let mut tacoma = server.client(Some(TACOMA)).await;
        let tacoma_before = orders_of(&admin, TACOMA_STORE).await;
        let context = format!("guard off: {guard_off}");

        let own = seattle
            .call(
                "execute_query",
                json!({"sql": INSERT_ORDER, "params": [customer, SEATTLE_STORE, "2026-12-01"]}),
            )
            .await
            .ok();
        assert_eq!(own["affected_rows"], json!(1), "{context}: {own}");
        assert_output_schema(&seattle.list_tools().await, "execute_query", &own);
        let order_id = own["rows"][0][0].as_i64().expect("RETURNING order_id");
        assert_eq!(own["rows"][0][1], json!(SEATTLE_STORE));

        // A row for another store: WITH CHECK refuses it.
        let foreign = seattle
            .call(
                "execute_query",
                json!({"sql": INSERT_ORDER, "params": [customer, TACOMA_STORE, "2026-12-01"]}),
            )
            .await;
        assert_eq!(
            foreign.error_code(),
            Some("QUERY_FAILED"),
            "{context}: {}",
            foreign.text
        );
        assert_eq!(foreign.structured["sqlstate"], json!("42501"), "{context}");

        // Moving its own row to another store: refused the same way.
        let moved = seattle
            .call(
                "execute_query",
                json!({"sql": "UPDATE retail.orders SET store_id = $1 WHERE order_id = $2", "params": [TACOMA_STORE, order_id]}),
            )
            .await;
        assert_eq!(
            moved.error_code(),
            Some("QUERY_FAILED"),
            "{context}: {}",
            moved.text
        );
        assert_eq!(moved.structured["sqlstate"], json!("42501"), "{context}");

        // Another store's rows cannot be changed or deleted: they are not there to touch.
        let deleted = seattle
            .call(
                "execute_query",
                json!({"sql": "DELETE FROM retail.orders WHERE store_id = $1", "params": [TACOMA_STORE]}),
            )
            .await
            .ok();
        assert_eq!(deleted["affected_rows"], json!(0), "{context}");
        let touched = tacoma
            .call(
                "execute_query",
                json!({"sql": "UPDATE retail.orders SET order_date = '2000-01-01' WHERE order_id = $1", "params": [order_id]}),
            )
            .await
            .ok();
        assert_eq!(touched["affected_rows"], json!(0), "{context}");

        assert_eq!(
            orders_of(&admin, TACOMA_STORE).await,
            tacoma_before,
            "{context}"
        );
        // The history (the audit log, written within moments) shows the write with its
        // affected rows.
        let instance = server.state.audit.instance().to_string();
        let recorded = crate::common::wait_until(
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(100),
            async || {
                let history: Value = server
                    .get(&format!(
                        "/query_history?status=OK&limit=1000&instance={instance}"
                    ))
                    .await
                    .json()
                    .await
                    .unwrap();
                history["entries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| {
                        e["affected_rows"] == json!(1) && e["sql"].as_str() == Some(INSERT_ORDER)
                    })
                    .then_some(())
            },
        )
        .await;
        assert!(recorded.is_some(), "{context}: the write is in the history");
        let stored: (i64, String) = sqlx::query_as(
            "SELECT store_id::int8, order_date::text FROM retail.orders WHERE order_id = $1",
        )
        .bind(order_id)
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(stored, (SEATTLE_STORE, "2026-12-01".into()), "{context}");
    }
}

fn insert(store: i64, customer: i64, date: &str) -> Value {
    json!({"sql": INSERT_ORDER, "params": [customer, store, date]})
}

async fn orders_on(pool: &PgPool, date: &str) -> i64 {
    scalar(
        pool,
        &format!("SELECT count(*) FROM retail.orders WHERE order_date = '{date}'"),
    )
    .await
}

#[tokio::test]
async fn a_transaction_is_all_or_nothing_and_a_dry_run_changes_nothing() {
    const DB: &str = "pgmcp_write_transactions";
    let admin = demo_database(DB).await;
    let customer = seattle_customer(&admin).await;
    let server = write_server(DB, false).await;
    let mut c = server.client(Some(SEATTLE)).await;

    // The second of three statements fails: the first is rolled back with it.
    let failed = c
        .call(
            "execute_transaction",
            json!({"statements": [
                insert(SEATTLE_STORE, customer, "2030-01-01"),
                insert(TACOMA_STORE, customer, "2030-01-01"),
                insert(SEATTLE_STORE, customer, "2030-01-01"),
            ]}),
        )
        .await;
    assert_eq!(failed.error_code(), Some("QUERY_FAILED"), "{}", failed.text);
    assert_eq!(failed.structured["sqlstate"], json!("42501"));
    assert_eq!(failed.structured["details"]["statement_index"], json!(1));
    assert_eq!(failed.structured["details"]["rolled_back"], json!(true));
    assert_eq!(
        orders_on(&admin, "2030-01-01").await,
        0,
        "nothing committed"
    );

    // A refused statement stops the transaction before anything runs.
    let refused = c
        .call(
            "execute_transaction",
            json!({"statements": [
                insert(SEATTLE_STORE, customer, "2030-01-02"),
                {"sql": "DROP TABLE retail.orders"},
            ]}),
        )
        .await;
    assert_eq!(refused.error_code(), Some("UNSAFE_SQL"), "{}", refused.text);
    assert_eq!(refused.structured["details"]["statement_index"], json!(1));
    assert_eq!(orders_on(&admin, "2030-01-02").await, 0);

    // A dry run does everything, reports it, and keeps nothing.
    let statements = json!([
        insert(SEATTLE_STORE, customer, "2030-01-03"),
        insert(SEATTLE_STORE, customer, "2030-01-03"),
        {"sql": "SELECT count(*) FROM retail.orders WHERE order_date = '2030-01-03'"},
    ]);
    let dry = c
        .call(
            "execute_transaction",
            json!({"statements": statements, "dry_run": true}),
        )
        .await
        .ok();
    assert_eq!(dry["committed"], json!(false));
    assert_eq!(dry["affected_rows"], json!(2));
    assert_eq!(
        dry["statements"][2]["rows"],
        json!([[2]]),
        "the query saw the first two"
    );
    assert_eq!(
        orders_on(&admin, "2030-01-03").await,
        0,
        "a dry run keeps nothing"
    );

    // The same for real.
    let done = c
        .call("execute_transaction", json!({"statements": statements}))
        .await
        .ok();
    assert_eq!(done["committed"], json!(true));
    let tools = c.list_tools().await;
    assert_output_schema(&tools, "execute_transaction", &done);
    assert_output_schema(&tools, "execute_transaction", &dry);
    assert_eq!(done["statements"][0]["affected_rows"], json!(1));
    assert_eq!(done["statements"][0]["statement"], json!("INSERT"));
    assert_eq!(orders_on(&admin, "2030-01-03").await, 2);
}

#[tokio::test]
async fn batch_execute_commits_batch_by_batch_and_names_the_failing_batch() {
    const DB: &str = "pgmcp_write_batches";
    let admin = demo_database(DB).await;
    let customer = seattle_customer(&admin).await;
    let server = write_server(DB, false).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let sets = |date: &str, foreign_at: Option<usize>| -> Vec<Value> {
        (0..10)
            .map(|i| {
                let store = if Some(i) == foreign_at {
                    TACOMA_STORE
                } else {
                    SEATTLE_STORE
                };
                json!([customer, store, date])
            })
            .collect()
    };

    // Batches of 3: set 7 (batch 2) is another store's; batches 0 and 1 stay committed.
    let failed = c
        .call(
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": sets("2031-01-01", Some(7)), "batch_size": 3}),
        )
        .await;
    assert_eq!(failed.error_code(), Some("QUERY_FAILED"), "{}", failed.text);
    let details = &failed.structured["details"];
    assert_eq!(details["failed_batch"], json!(2), "{details}");
    assert_eq!(details["failed_param_set"], json!(7));
    assert_eq!(details["committed_batches"], json!(2));
    assert_eq!(details["committed_param_sets"], json!(6));
    assert_eq!(details["committed_affected_rows"], json!(6));
    assert_eq!(orders_on(&admin, "2031-01-01").await, 6);

    // Atomic: the same failure keeps nothing.
    let atomic = c
        .call(
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": sets("2031-01-02", Some(7)), "batch_size": 3, "atomic": true}),
        )
        .await;
    assert_eq!(atomic.error_code(), Some("QUERY_FAILED"), "{}", atomic.text);
    assert_eq!(
        atomic.structured["details"]["committed_param_sets"],
        json!(0)
    );
    assert_eq!(orders_on(&admin, "2031-01-02").await, 0);

    // All good: every set in four batches.
    let many: Vec<Value> = (0..1000)
        .map(|_| json!([customer, SEATTLE_STORE, "2031-01-03"]))
        .collect();
    let done = c
        .call(
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": many, "batch_size": 250}),
        )
        .await
        .ok();
    assert_eq!(done["affected_rows"], json!(1000), "{done}");
    assert_output_schema(&c.list_tools().await, "batch_execute", &done);
    assert_eq!(done["batches"], json!(4));
    assert_eq!(orders_on(&admin, "2031-01-03").await, 1000);

    // A value that does not bind is named too (the multi-row run is redone row by row).
    let mut bad = sets("2031-01-04", None);
    bad[4] = json!(["not a customer id", SEATTLE_STORE, "2031-01-04"]);
    let out = c
        .call(
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": bad, "batch_size": 5}),
        )
        .await;
    assert_eq!(out.error_code(), Some("VALIDATION_ERROR"), "{}", out.text);
    assert_eq!(out.structured["details"]["failed_param_set"], json!(4));
    assert_eq!(orders_on(&admin, "2031-01-04").await, 0);

    // Statements other than a plain INSERT run row by row, with the same answer.
    let moved: Vec<Value> = (0..3)
        .map(|_| json!(["2031-01-05", "2031-01-03"]))
        .collect();
    let out = c
        .call(
            "batch_execute",
            json!({"sql": "UPDATE retail.orders SET order_date = $1::date WHERE order_id IN (SELECT order_id FROM retail.orders WHERE order_date = $2::date LIMIT 10)", "param_sets": moved}),
        )
        .await
        .ok();
    assert_eq!(out["affected_rows"], json!(30), "{out}");
    assert_eq!(orders_on(&admin, "2031-01-05").await, 30);

    // Queries and oversized calls are refused up front.
    let query = c
        .call(
            "batch_execute",
            json!({"sql": "SELECT $1::int", "param_sets": [[1]]}),
        )
        .await;
    assert_eq!(
        query.error_code(),
        Some("VALIDATION_ERROR"),
        "{}",
        query.text
    );
    let too_big = c
        .call(
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": [], "batch_size": 3}),
        )
        .await;
    assert_eq!(too_big.error_code(), Some("VALIDATION_ERROR"));
}

#[tokio::test]
async fn whole_table_update_and_delete_need_the_flag() {
    const DB: &str = "pgmcp_write_whole_table";
    let admin = demo_database(DB).await;
    let server = write_server(DB, false).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let tools = c.list_tools().await;
    for name in ["execute_query", "execute_transaction", "batch_execute"] {
        let tool = tools
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed in write mode"));
        assert_eq!(
            tool["annotations"]["destructiveHint"],
            json!(true),
            "{name}"
        );
        assert_eq!(tool["annotations"]["readOnlyHint"], json!(false), "{name}");
    }
    let items = scalar(&admin, "SELECT count(*) FROM retail.order_items").await;

    for sql in [
        "DELETE FROM retail.order_items",
        "DELETE FROM retail.order_items WHERE true",
        "UPDATE retail.inventory SET stock_level = stock_level",
        "UPDATE retail.inventory SET stock_level = stock_level WHERE 1 = 1",
    ] {
        let out = c.query(sql).await;
        assert_eq!(out.error_code(), Some("UNSAFE_SQL"), "{sql}: {}", out.text);
        assert!(out.text.contains("allow_full_table"), "{}", out.text);
        let tx = c
            .call("execute_transaction", json!({"statements": [{"sql": sql}]}))
            .await;
        assert_eq!(tx.error_code(), Some("UNSAFE_SQL"), "{sql}: {}", tx.text);
    }
    assert_eq!(
        scalar(&admin, "SELECT count(*) FROM retail.order_items").await,
        items
    );

    // With the flag: every row the tenant may see, and only those.
    let seattle_inventory = scalar(
        &admin,
        "SELECT count(*) FROM retail.inventory WHERE store_id = 1",
    )
    .await;
    let out = c
        .call(
            "execute_query",
            json!({"sql": "UPDATE retail.inventory SET stock_level = stock_level", "allow_full_table": true}),
        )
        .await
        .ok();
    assert_eq!(out["affected_rows"], json!(seattle_inventory));
    // A WHERE that names a column is an ordinary statement.
    let out = c
        .query("UPDATE retail.inventory SET stock_level = stock_level WHERE stock_level < 0")
        .await
        .ok();
    assert_eq!(out["affected_rows"], json!(0));
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(extra: Value) -> String {
    let mut claims = json!({"rls_user_id": SEATTLE, "sub": "writer", "exp": now() + 600});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

async fn bearer(server: &TestServer, token: String) -> McpClient {
    McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[("authorization", format!("Bearer {token}"))],
    )
    .await
}

#[tokio::test]
async fn callers_without_write_permission_are_refused_and_still_read() {
    const DB: &str = "pgmcp_write_scopes";
    let admin = demo_database(DB).await;
    let customer = seattle_customer(&admin).await;
    let url = with_database(&env().app_url, DB);
    let jwt = TestServer::start_with(|c| {
        c.database_url = Some(url.clone().into());
        c.write_databases = vec!["*".into()];
        c.auth_mode = pg_mcp::config::AuthMode::Jwt;
        c.jwt_secret = Some(SECRET.into());
        c.write_claim = Some("role=editor".into());
        c.rate_limit_per_minute = 0;
    })
    .await;
    let before = orders_of(&admin, SEATTLE_STORE).await;
    let write = insert(SEATTLE_STORE, customer, "2032-01-01");

    let mut reader = bearer(&jwt, token(json!({"scope": "openid pgmcp:read"}))).await;
    let out = reader.call("execute_query", write.clone()).await;
    assert_eq!(out.error_code(), Some("FORBIDDEN"), "{}", out.text);
    assert!(out.text.contains("pgmcp:write"), "{}", out.text);
    for (tool, args) in [
        (
            "execute_transaction",
            json!({"statements": [write.clone()]}),
        ),
        (
            "batch_execute",
            json!({"sql": INSERT_ORDER, "param_sets": [[customer, SEATTLE_STORE, "2032-01-01"]]}),
        ),
    ] {
        let out = reader.call(tool, args).await;
        assert_eq!(out.error_code(), Some("FORBIDDEN"), "{tool}: {}", out.text);
    }
    let read = reader
        .query("SELECT count(DISTINCT store_id) FROM retail.orders")
        .await
        .scalar();
    assert_eq!(read, json!(1), "the reader still reads its own store");
    assert_eq!(orders_of(&admin, SEATTLE_STORE).await, before);

    // The write scope (OAuth `scope`, Entra `scp`) or the write claim lets a caller write.
    for grant in [
        json!({"scope": "openid pgmcp:write"}),
        json!({"scp": ["pgmcp:write"]}),
        json!({"role": "editor"}),
    ] {
        let mut writer = bearer(&jwt, token(grant.clone())).await;
        let out = writer.call("execute_query", write.clone()).await;
        assert!(!out.is_error, "{grant}: {}", out.text);
    }
    assert_eq!(orders_of(&admin, SEATTLE_STORE).await, before + 3);

    // Header mode writes only with PG_MCP_HEADER_WRITES (development).
    let header = TestServer::start_with(|c| {
        c.database_url = Some(url.clone().into());
        c.write_databases = vec!["default".into()];
    })
    .await;
    let mut c = header.client(Some(SEATTLE)).await;
    let out = c.call("execute_query", write.clone()).await;
    assert_eq!(out.error_code(), Some("FORBIDDEN"), "{}", out.text);
    assert!(out.text.contains("PG_MCP_HEADER_WRITES"), "{}", out.text);
}

#[tokio::test]
async fn migrate_grants_writes_only_in_write_mode_and_takes_them_back() {
    const DB: &str = "pgmcp_write_grants";
    let admin = demo_database(DB).await;
    let may = |privilege: &'static str| {
        let admin = admin.clone();
        async move {
            sqlx::query_scalar::<_, bool>(
                "SELECT has_table_privilege('pgmcp_app', 'retail.orders', $1)",
            )
            .bind(privilege)
            .fetch_one(&admin)
            .await
            .unwrap()
        }
    };
    assert!(
        may("INSERT").await && may("DELETE").await,
        "write mode granted"
    );

    let read_only = pg_mcp_on(DB, &["migrate"], &[("PG_MCP_SCHEMAS", "retail")]).await;
    assert!(read_only.status.success(), "{}", stderr(&read_only));
    assert!(
        stderr(&read_only)
            .contains("read-only: pgmcp_app has no write privileges on schemas retail"),
        "{}",
        stderr(&read_only)
    );
    assert!(!may("INSERT").await && !may("UPDATE").await && !may("DELETE").await);
    assert!(may("SELECT").await);

    let inserts = pg_mcp_on(
        DB,
        &["migrate"],
        &[
            ("PG_MCP_SCHEMAS", "retail"),
            ("PG_MCP_WRITE_DATABASES", "default"),
            ("PG_MCP_ALLOWED_OPERATIONS", "SELECT,INSERT"),
        ],
    )
    .await;
    assert!(
        stderr(&inserts).contains("write mode: pgmcp_app may INSERT rows of schemas retail"),
        "{}",
        stderr(&inserts)
    );
    assert!(may("INSERT").await && !may("DELETE").await);
}

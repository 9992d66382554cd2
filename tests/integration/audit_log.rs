//! The persisted audit log on a real database: two `pg-mcp serve` processes share it, it
//! survives a restart (and the queue is flushed at shutdown), `/query_history` and
//! `get_metrics` read it, writes are audited with their affected rows, SQL is masked; tenants
//! can neither read nor forge it, with the SQL guard on and off; old rows are pruned; a full
//! queue drops and counts; an unreadable log falls back to the in-memory history.
//!
//! Each test uses a throwaway database of its own.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use crate::common::databases::{fresh_database, pg_mcp_on, stderr, with_database};
use crate::common::process::ServerProcess;
use crate::common::{McpClient, SEATTLE, TestServer, env, test_config, wait_until};
use crate::write_mode::{INSERT_ORDER, SEATTLE_STORE, TACOMA, demo_database, seattle_customer};

/// `pg-mcp serve` on database `name` as instance `instance`, in write mode for header callers.
async fn server_on(name: &str, instance: &str, extra: &[(&str, &str)]) -> ServerProcess {
    let mut settings: Vec<(&str, String)> = vec![
        ("PG_MCP_DATABASE_URL", with_database(&env().app_url, name)),
        ("PG_MCP_INSTANCE_ID", instance.to_string()),
        ("PG_MCP_WRITE_DATABASES", "default".into()),
        ("PG_MCP_HEADER_WRITES", "true".into()),
        ("PG_MCP_RATE_LIMIT_PER_MINUTE", "0".into()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    ServerProcess::start(&settings).await
}

async fn history(url: &str) -> Value {
    let resp = reqwest::get(url).await.expect("GET /query_history");
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn entries(history: &Value) -> &Vec<Value> {
    history["entries"].as_array().expect("entries")
}

/// Polls `/query_history?<query>` until `done` holds for its entries (the log is written
/// asynchronously, within PG_MCP_AUDIT_FLUSH_MS).
async fn history_until(url: String, done: impl Fn(&[Value]) -> bool) -> Value {
    let mut last = Value::Null;
    let found = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            last = history(&url).await;
            done(entries(&last)).then(|| last.clone())
        },
    )
    .await;
    found.unwrap_or_else(|| panic!("{url} never matched: {last}"))
}

async fn audit_rows(admin: &PgPool, instance: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM pgmcp_private.audit_log WHERE instance = $1")
        .bind(instance)
        .fetch_one(admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_servers_share_the_log_and_it_survives_a_restart() {
    const DB: &str = "pgmcp_audit_shared";
    let admin = demo_database(DB).await;
    let customer = seattle_customer(&admin).await;
    // Server A writes only when its queue is full or at shutdown: its entries reach the table
    // only through the shutdown flush.
    let mut a = server_on(DB, "audit-a", &[("PG_MCP_AUDIT_FLUSH_MS", "600000")]).await;
    let b = server_on(DB, "audit-b", &[]).await;

    let mut on_a = McpClient::connect(&a.url("/mcp"), Some(SEATTLE)).await;
    let secret = on_a
        .query("SELECT 7 AS n, 'secret-literal-42' AS s")
        .await
        .scalar();
    assert_eq!(secret, json!(7));
    let inserted = on_a
        .call(
            "execute_query",
            json!({"sql": INSERT_ORDER, "params": [customer, SEATTLE_STORE, "2026-12-01"]}),
        )
        .await
        .ok();
    assert_eq!(inserted["affected_rows"], json!(1));
    let mut on_b = McpClient::connect(&b.url("/mcp"), Some(TACOMA)).await;
    on_b.query("SELECT 1").await.ok();
    let refused = on_b.query("DROP TABLE retail.orders").await;
    assert_eq!(refused.error_code(), Some("UNSAFE_SQL"));

    // B's own calls are in the table (and A's are not yet: its queue waits for shutdown).
    let seen = history_until(b.url("/query_history?instance=audit-b"), |e| e.len() >= 2).await;
    assert_eq!(seen["source"], "audit_log", "{seen}");
    let failed = entries(&seen)
        .iter()
        .find(|e| e["outcome"] == "UNSAFE_SQL")
        .unwrap_or_else(|| panic!("the refused call is audited: {seen}"));
    assert_eq!(failed["error_code"], "UNSAFE_SQL");
    assert_eq!(failed["statement_kind"], "DROP");
    assert_eq!(failed["tenant"], TACOMA);
    assert!(
        failed["request_id"].as_str().is_some_and(|r| r.len() >= 32),
        "{failed}"
    );
    assert_eq!(
        audit_rows(&admin, "audit-a").await,
        0,
        "A has written nothing yet"
    );

    // A graceful stop flushes A's queue.
    a.sigterm();
    assert!(
        a.wait_exit(Duration::from_secs(20)).await.is_some(),
        "A stops"
    );
    assert_eq!(
        audit_rows(&admin, "audit-a").await,
        2,
        "A's calls, flushed at shutdown"
    );
    drop(a);

    // A restarted server (a new instance) shows both processes' calls, from before its start.
    let restarted = server_on(DB, "audit-a2", &[]).await;
    let both = history_until(restarted.url("/query_history?limit=100"), |e| {
        let has = |i: &str| e.iter().any(|x| x["instance"] == i);
        has("audit-a") && has("audit-b")
    })
    .await;
    let a_entries: Vec<&Value> = entries(&both)
        .iter()
        .filter(|e| e["instance"] == "audit-a")
        .collect();
    let select = a_entries
        .iter()
        .find(|e| e["statement_kind"] == "SELECT")
        .expect("A's SELECT");
    assert_eq!(
        select["sql"], "SELECT ? AS n, ? AS s",
        "literals are masked"
    );
    assert!(!both.to_string().contains("secret-literal-42"), "{both}");
    assert!(
        select.get("params").is_none(),
        "no parameter values by default"
    );
    let write = a_entries
        .iter()
        .find(|e| e["statement_kind"] == "INSERT")
        .expect("A's INSERT is audited");
    assert_eq!(write["affected_rows"], 1, "{write}");
    assert_eq!(write["param_count"], 3);
    assert_eq!(write["tenant"], SEATTLE);
    assert_eq!(write["database"], "default");
    assert_eq!(write["tool"], "execute_query");
    assert!(write["duration_ms"].as_f64().unwrap() > 0.0);

    // get_metrics reads the log too: Seattle's two calls on the previous A count.
    let mut on_restarted = McpClient::connect(&restarted.url("/mcp"), Some(SEATTLE)).await;
    let metrics = on_restarted.call("get_metrics", json!({})).await.ok();
    assert_eq!(metrics["source"], "audit_log", "{metrics}");
    assert!(metrics["total_queries"].as_u64().unwrap() >= 2, "{metrics}");
    assert!(
        metrics["slowest_queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["sql"] != "SELECT ?"),
        "Tacoma's calls are not Seattle's metrics: {metrics}"
    );
}

/// Tenant SQL runs as the role that calls the audit functions, so the database must refuse
/// it on its own: the table is out of reach, and the functions want a proof made with the
/// signing key.
#[tokio::test]
async fn tenants_can_neither_read_nor_forge_the_log() {
    const DB: &str = "pgmcp_audit_tenants";
    let _admin = demo_database(DB).await;
    let url = with_database(&env().app_url, DB);
    for guard_off in [false, true] {
        let server = TestServer::start_with(|c| {
            c.database_url = Some(url.clone().into());
            c.write_databases = vec!["default".into()];
            c.header_writes = true;
            c.rate_limit_per_minute = 0;
            c.unsafe_disable_sql_guard = guard_off;
        })
        .await;
        let mut tenant = server.client(Some(SEATTLE)).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        for sql in [
            "SELECT * FROM pgmcp_private.audit_log".to_string(),
            "DELETE FROM pgmcp_private.audit_log".to_string(),
            format!("SELECT * FROM pgmcp.audit_read('{{}}', {now}, 'forged')"),
            format!(
                "SELECT pgmcp.audit_append('[{{\"instance\":\"x\",\"id\":1,\"time\":\"2026-01-01T00:00:00Z\",\"tool\":\"t\",\"database\":\"d\",\"duration_ms\":1,\"outcome\":\"OK\"}}]', {now}, 'forged')"
            ),
            format!("SELECT pgmcp.audit_prune(1, {now}, 'forged')"),
        ] {
            let out = tenant.query(&sql).await;
            let code = out.error_code().map(str::to_string);
            assert!(
                matches!(
                    code.as_deref(),
                    Some("UNSAFE_SQL" | "QUERY_FAILED" | "FORBIDDEN")
                ),
                "guard off: {guard_off}: {sql}: {:?}",
                out.structured
            );
            if guard_off {
                let text = out.structured.to_string();
                assert!(
                    text.contains("permission denied") || text.contains("does not verify"),
                    "the database refuses it: {sql}: {text}"
                );
            }
        }
    }
    // Nothing was forged into the table.
    let forged: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pgmcp_private.audit_log WHERE instance = 'x'")
            .fetch_one(&_admin)
            .await
            .unwrap();
    assert_eq!(forged, 0);
}

#[tokio::test]
async fn old_rows_are_pruned_a_full_queue_drops_and_an_unreadable_log_falls_back() {
    const DB: &str = "pgmcp_audit_upkeep";
    let admin = fresh_database(DB).await;
    let out = pg_mcp_on(DB, &["migrate"], crate::common::databases::NO_SETTINGS).await;
    assert!(out.status.success(), "{}", stderr(&out));
    sqlx::query(
        "INSERT INTO pgmcp_private.audit_log (instance, seq, time, tool, database, duration_ms, outcome) \
         VALUES ('old', 1, now() - interval '40 days', 'execute_query', 'default', 1, 'OK'), \
                ('recent', 1, now() - interval '10 days', 'execute_query', 'default', 1, 'OK')",
    )
    .execute(&admin)
    .await
    .unwrap();
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.clone().into());
        c.audit.retention_days = 30;
        // One entry in the writer's hands, one in the queue: beyond that, calls are dropped.
        c.audit.queue_size = 1;
        c.audit.batch_size = 1;
        c.audit.flush_ms = 1;
        c.rate_limit_per_minute = 0;
    })
    .await;
    let remaining = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || {
            let left: Vec<String> = sqlx::query_scalar(
                "SELECT instance FROM pgmcp_private.audit_log ORDER BY instance",
            )
            .fetch_all(&admin)
            .await
            .unwrap();
            (left.len() == 1).then_some(left)
        },
    )
    .await;
    assert_eq!(
        remaining,
        Some(vec!["recent".to_string()]),
        "pruned at start"
    );

    // The table takes no rows while an operator holds a SHARE lock on it (reads still work):
    // the writer waits, the queue fills, and the calls beyond it are dropped and counted.
    let mut lock = admin.begin().await.unwrap();
    sqlx::query("LOCK TABLE pgmcp_private.audit_log IN SHARE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let mut tenant = server.client(Some(SEATTLE)).await;
    for i in 0..5 {
        tenant.query(&format!("SELECT {i}")).await.ok();
    }
    let metrics = server.text("/metrics").await;
    let dropped = metrics
        .lines()
        .find(|l| l.starts_with("pgmcp_audit_dropped_total"))
        .unwrap_or_else(|| panic!("the drop counter is exported:\n{metrics}"));
    let count: f64 = dropped.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 3.0, "{dropped}");
    let seen = history(&server.url("/query_history")).await;
    assert!(seen["audit"]["dropped"].as_u64().unwrap() >= 3, "{seen}");
    lock.commit().await.unwrap();
    // What was not dropped still goes in once the lock is gone.
    history_until(server.url("/query_history"), |e| {
        e.iter().any(|x| x["sql"] == "SELECT ?")
    })
    .await;

    // The log cannot be read: the in-memory history answers, and says why.
    sqlx::query("REVOKE EXECUTE ON FUNCTION pgmcp.audit_read(text, bigint, text) FROM pgmcp_app")
        .execute(&admin)
        .await
        .unwrap();
    let fallback = history(&server.url("/query_history")).await;
    assert_eq!(fallback["source"], "memory", "{fallback}");
    assert!(
        fallback["fallback_reason"]
            .as_str()
            .is_some_and(|r| r.contains("permission denied")),
        "{fallback}"
    );
    assert_eq!(
        entries(&fallback).len(),
        5,
        "this process's calls: {fallback}"
    );
    let metrics = tenant.call("get_metrics", json!({})).await.ok();
    assert_eq!(metrics["source"], "memory");
    assert_eq!(metrics["total_queries"], 5);
}

/// Writes are always audited: write mode with the audit log off is refused at start.
#[test]
fn write_mode_refuses_to_run_without_the_audit_log() {
    let mut config = test_config();
    config.write_databases = vec!["default".into()];
    config.audit.enabled = false;
    let err = config
        .validate()
        .expect_err("write mode without the audit log");
    assert!(
        err.message.contains("writes are always audited"),
        "{}",
        err.message
    );
    config.audit.enabled = true;
    config.validate().expect("write mode with the audit log");
}

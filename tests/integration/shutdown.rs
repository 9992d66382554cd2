//! Graceful shutdown of the real `pg-mcp serve` process on SIGTERM: in-flight tool calls finish
//! within PG_MCP_SHUTDOWN_GRACE_SECS while new connections are refused; past the grace period
//! the process exits anyway, the client is not left hanging, and PostgreSQL stops the query.

use std::time::{Duration, Instant};

use crate::common::mcp_client::{parse_body, stateless_query};
use crate::common::process::ServerProcess;
use crate::common::{HEAD_OFFICE, McpClient, wait_until};
use serde_json::{Value, json};

/// `pg-mcp serve` with the given shutdown grace period.
async fn serve(grace: Duration) -> ServerProcess {
    ServerProcess::start(&[("PG_MCP_SHUTDOWN_GRACE_SECS", grace.as_secs().to_string())]).await
}

/// How a tool call over HTTP ended.
#[derive(Debug)]
#[allow(dead_code)] // the fields are read through Debug, in failure messages
enum CallEnd {
    /// A JSON-RPC reply (result or error).
    Reply(Value),
    /// The response ended without a reply (the SSE stream closed).
    NoReply { status: u16, body: String },
    /// The HTTP exchange failed (connection reset, body cut off, client timeout).
    Failed(String),
}

/// One `tools/call execute_query` on an initialised session, with a client-side timeout, that
/// reports failures instead of panicking.
async fn call_query(
    url: String,
    session: Option<String>,
    sql: String,
    timeout: Duration,
) -> CallEnd {
    let http = reqwest::Client::builder().timeout(timeout).build().unwrap();
    let mut req = http
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-rls-user-id", HEAD_OFFICE)
        .json(&json!({
            "jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"sql": sql}}
        }));
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return CallEnd::Failed(format!("send: {e}")),
    };
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match resp.text().await {
        Ok(body) => match parse_body(&ct, &body) {
            Some(reply) => CallEnd::Reply(reply),
            None => CallEnd::NoReply { status, body },
        },
        Err(e) => CallEnd::Failed(format!("body: {e}")),
    }
}

/// Backends of the app role running a query that contains `needle`, from the admin pool.
async fn running(admin: &sqlx::PgPool, needle: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity \
         WHERE usename = 'pgmcp_app' AND state = 'active' AND pid <> pg_backend_pid() \
           AND strpos(query, $1) > 0",
    )
    .bind(needle)
    .fetch_all(admin)
    .await
    .unwrap()
}

/// A `tools/call` running in PostgreSQL on a fresh `pg-mcp serve`.
struct InFlight {
    admin: sqlx::PgPool,
    served: ServerProcess,
    /// Text of the query, to find it in pg_stat_activity.
    needle: String,
    /// When the call was sent.
    started: Instant,
    call: tokio::task::JoinHandle<CallEnd>,
}

/// Rows of the inner series of the in-flight query: `rows` is a multiple of it.
const INNER: u64 = 10_000;

/// `pg-mcp serve` with the given grace period, and a head-office call counting `rows` rows of
/// a cross join of two series on it (with the client-side `timeout`), returned once
/// PostgreSQL runs the query (so the tool call is really in flight). A cross join of small
/// series is pure CPU: one long series would be materialised and fail early at the test
/// cluster's temp_file_limit, on a fast disk before the grace period is over.
async fn call_in_flight(grace: Duration, rows: u64, timeout: Duration) -> InFlight {
    assert_eq!(rows % INNER, 0, "rows is a multiple of {INNER}");
    let needle = format!(
        "generate_series(1, {INNER}) a, generate_series(1, {}) b",
        rows / INNER
    );
    let admin = crate::common::admin_pool().await;
    let served = serve(grace).await;
    let url = served.url("/mcp");
    let client = McpClient::connect(&url, Some(HEAD_OFFICE)).await;
    let started = Instant::now();
    let call = tokio::spawn(call_query(
        url,
        client.session.clone(),
        format!("SELECT count(*) FROM {needle}"),
        timeout,
    ));
    let shows_up = wait_until(
        Duration::from_secs(30),
        Duration::from_millis(10),
        async || (!running(&admin, &needle).await.is_empty()).then_some(()),
    )
    .await;
    assert!(
        shows_up.is_some(),
        "the query never showed up in pg_stat_activity; server log:\n{}",
        served.log_text()
    );
    InFlight {
        admin,
        served,
        needle,
        started,
        call,
    }
}

fn connection_refused(port: u16) -> bool {
    matches!(
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            Duration::from_millis(500)
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
    )
}

#[tokio::test]
async fn sigterm_lets_the_in_flight_call_finish_and_refuses_new_connections() {
    const GRACE: Duration = Duration::from_secs(5);
    // About 1.5-3 s of work in PostgreSQL (pg_sleep is refused by the SQL guard).
    const ROWS: u64 = 80_010_000;
    let InFlight {
        admin,
        mut served,
        call,
        ..
    } = call_in_flight(GRACE, ROWS, Duration::from_secs(60)).await;

    let term = Instant::now();
    served.sigterm();

    // New connections are refused at once, while the call is still running.
    let refused = wait_until(
        Duration::from_secs(2),
        Duration::from_millis(10),
        async || connection_refused(served.port()).then_some(()),
    )
    .await;
    assert!(
        refused.is_some(),
        "the listener still accepts connections 2 s after SIGTERM"
    );
    let refused_after = term.elapsed();
    assert!(
        !call.is_finished(),
        "the call should still be in flight when new connections are refused ({refused_after:?} after SIGTERM)"
    );
    let fresh = reqwest::Client::new()
        .get(served.url("/health/live"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        fresh.as_ref().is_err_and(|e| e.is_connect()),
        "a new HTTP request after SIGTERM should fail to connect: {fresh:?}"
    );

    // The in-flight call completes with its result.
    let end = call.await.unwrap();
    let done_after = term.elapsed();
    let CallEnd::Reply(reply) = &end else {
        panic!(
            "the in-flight call did not complete: {end:?}\nserver log:\n{}",
            served.log_text()
        );
    };
    let result = &reply["result"];
    assert_eq!(result["isError"], json!(false), "{reply}");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([[ROWS]]),
        "{reply}"
    );

    // And the process exits 0 within the grace period.
    let status = served
        .wait_exit(GRACE.saturating_sub(term.elapsed()) + Duration::from_millis(500))
        .await
        .unwrap_or_else(|| {
            panic!(
                "pg-mcp still runs {:?} after SIGTERM (grace {GRACE:?}); log:\n{}",
                term.elapsed(),
                served.log_text()
            )
        });
    let exit_after = term.elapsed();
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        served.log_text()
    );
    eprintln!(
        "query took {} ms; refused new connections {refused_after:?}, call done {done_after:?}, \
         exited {exit_after:?} after SIGTERM",
        result["structuredContent"]["duration_ms"]
    );
    admin.close().await;
}

#[tokio::test]
async fn sigterm_past_the_grace_period_ends_the_call_and_the_query() {
    const GRACE: Duration = Duration::from_secs(1);
    // Far more than the grace period plus the checks below (~10-15 s of work).
    const ROWS: u64 = 1_000_070_000;
    // The client's own limit (30 s): reaching it means the client was left hanging.
    let InFlight {
        admin,
        mut served,
        needle,
        started,
        call,
    } = call_in_flight(GRACE, ROWS, Duration::from_secs(30)).await;

    let term = Instant::now();
    served.sigterm();
    let status = served
        .wait_exit(Duration::from_secs(10))
        .await
        .unwrap_or_else(|| {
            panic!(
                "pg-mcp still runs 10 s after SIGTERM (grace {GRACE:?}); log:\n{}",
                served.log_text()
            )
        });
    let exit_after = term.elapsed();
    assert!(
        exit_after >= GRACE.saturating_sub(Duration::from_millis(100)),
        "the server should give the call its grace period, but exited after {exit_after:?}"
    );
    assert!(
        exit_after <= Duration::from_millis(4_500),
        "the server should exit within ~1-4 s of SIGTERM with a 1 s grace, took {exit_after:?}; log:\n{}",
        served.log_text()
    );
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        served.log_text()
    );

    // The client gets an error or a closed stream, promptly, not a result and not a hang.
    let end = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .expect("the client was left hanging after the server exited")
        .unwrap();
    let call_after = started.elapsed();
    match &end {
        CallEnd::Failed(e) => assert!(!e.contains("timed out"), "the client hit its timeout: {e}"),
        CallEnd::NoReply { .. } => {}
        CallEnd::Reply(reply) => assert!(
            reply.get("error").is_some() || reply["result"]["isError"] == json!(true),
            "a call cut off by shutdown cannot have succeeded: {reply}"
        ),
    }

    eprintln!("exited {exit_after:?} after SIGTERM; the client saw {end:?} after {call_after:?}");

    // PostgreSQL stops the query once the server's connection is gone: give it a couple of
    // seconds, then look.
    let mut left = Vec::new();
    wait_until(
        Duration::from_secs(3),
        Duration::from_millis(100),
        async || {
            left = running(&admin, &needle).await;
            left.is_empty().then_some(())
        },
    )
    .await;
    let gone_after = term.elapsed();
    if !left.is_empty() {
        // Do not leave a query burning CPU for the rest of the test run.
        for pid in &left {
            let _ = sqlx::query("SELECT pg_cancel_backend($1)")
                .bind(pid)
                .execute(&admin)
                .await;
        }
    }
    admin.close().await;
    assert!(
        left.is_empty(),
        "the query was still running in PostgreSQL (backend pids {left:?}) {gone_after:?} after \
         SIGTERM and {:?} after pg-mcp exited: the server's connections went away but nothing \
         cancelled the statement (PostgreSQL only notices a vanished client when \
         client_connection_check_interval is set, or when the server sends a cancel request)",
        gone_after.saturating_sub(exit_after)
    );
    eprintln!("the query was gone {gone_after:?} after SIGTERM");
}

/// One stateless `tools/call` on `http`'s keep-alive connection: the HTTP status, whether the
/// response closes the connection, and the reply's result.
async fn query_on(http: &reqwest::Client, url: &str) -> (u16, bool, Value) {
    let r = stateless_query(http, url, HEAD_OFFICE, "SELECT 1 AS one")
        .await
        .expect("the call is answered while draining");
    let reply = r.reply.unwrap_or_else(|| panic!("no reply in {}", r.body));
    (r.status, r.closes, reply["result"].clone())
}

#[tokio::test]
async fn sigterm_with_a_drain_keeps_serving_with_connection_close_then_stops() {
    const DRAIN: Duration = Duration::from_secs(3);
    let mut served = ServerProcess::start(&[
        ("PG_MCP_SHUTDOWN_DRAIN_SECS", DRAIN.as_secs().to_string()),
        ("PG_MCP_SHUTDOWN_GRACE_SECS", "2".to_string()),
        // The calls below go back to back.
        ("PG_MCP_RATE_LIMIT_PER_MINUTE", "0".to_string()),
    ])
    .await;
    let url = served.url("/mcp");
    let http = reqwest::Client::new();

    // Before: the call keeps its connection, and the replica is ready.
    let (status, closes, result) = query_on(&http, &url).await;
    assert_eq!(
        (status, &result["isError"]),
        (200, &json!(false)),
        "{result}"
    );
    assert!(!closes, "a response closed its connection before shutdown");

    let term = Instant::now();
    served.sigterm();
    let ready = served.url("/health/ready");
    let draining = wait_until(
        Duration::from_secs(2),
        Duration::from_millis(20),
        async || {
            let resp = http.get(&ready).send().await.ok()?;
            (resp.status().as_u16() == 503).then_some(resp.json::<Value>().await.ok()?)
        },
    )
    .await
    .unwrap_or_else(|| {
        panic!(
            "readiness never failed after SIGTERM; log:\n{}",
            served.log_tail()
        )
    });
    assert_eq!(draining["status"], json!("draining"), "{draining}");

    // While draining, calls are still served (on old and new connections), and each response
    // tells the client to close its connection.
    let mut served_while_draining = 0;
    while term.elapsed() < DRAIN - Duration::from_millis(700) {
        let (status, closes, result) = query_on(&http, &url).await;
        assert_eq!(
            (status, &result["isError"]),
            (200, &json!(false)),
            "{result}"
        );
        assert!(closes, "a response while draining kept its connection open");
        served_while_draining += 1;
    }
    assert!(served_while_draining > 0);

    // Then the listener closes, and the process exits 0 once the drain and the (idle) grace
    // period are over.
    let refused = wait_until(
        Duration::from_secs(3),
        Duration::from_millis(20),
        async || connection_refused(served.port()).then_some(()),
    )
    .await;
    assert!(
        refused.is_some(),
        "the listener still accepts after the drain"
    );
    assert!(
        term.elapsed() >= DRAIN - Duration::from_millis(100),
        "the listener closed {:?} after SIGTERM, before the {DRAIN:?} drain ended",
        term.elapsed()
    );
    let status = served
        .wait_exit(Duration::from_secs(5))
        .await
        .unwrap_or_else(|| {
            panic!(
                "pg-mcp still runs after the drain; log:\n{}",
                served.log_tail()
            )
        });
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        served.log_tail()
    );
    eprintln!(
        "{served_while_draining} calls served while draining; exited {:?} after SIGTERM",
        term.elapsed()
    );
}

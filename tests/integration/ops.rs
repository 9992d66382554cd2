//! Operations: Prometheus metrics move with calls, query history filters and stays bounded,
//! admin endpoints need the admin token beyond loopback, health/metrics tools.

use crate::common::*;
use serde_json::{Value, json};

/// Parses Prometheus text exposition into (name with labels, value) pairs, failing on any
/// malformed line.
fn parse_prometheus(text: &str) -> Vec<(String, f64)> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split_whitespace().nth(1).unwrap();
                assert!(
                    ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                    "{line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name}"
        );
        if series.contains('{') {
            assert!(series.ends_with('}'), "unclosed labels in {line}");
        }
        samples.push((series.to_string(), value));
    }
    samples
}

fn sample(samples: &[(String, f64)], prefix: &str, must_contain: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(s, _)| s.starts_with(prefix) && must_contain.iter().all(|m| s.contains(m)))
        .map(|(_, v)| *v)
        .sum()
}

#[tokio::test]
async fn metrics_parse_and_move_with_calls() {
    let server = TestServer::start().await;
    let scrape = async || parse_prometheus(&server.text("/metrics").await);
    let mut c = server.client(Some(SEATTLE)).await;
    c.query("SELECT 1").await.ok();
    let before = scrape().await;
    let ok_before = sample(
        &before,
        "pgmcp_tool_calls_total",
        &["tool=\"execute_query\"", "outcome=\"OK\""],
    );
    let unsafe_before = sample(
        &before,
        "pgmcp_tool_calls_total",
        &["outcome=\"UNSAFE_SQL\""],
    );
    for _ in 0..3 {
        c.query("SELECT g FROM generate_series(1, 4) g").await.ok();
    }
    let refused = c.query("DELETE FROM retail.orders").await;
    assert!(refused.is_error);
    let after = scrape().await;
    assert_eq!(
        sample(
            &after,
            "pgmcp_tool_calls_total",
            &["tool=\"execute_query\"", "outcome=\"OK\""]
        ) - ok_before,
        3.0
    );
    assert_eq!(
        sample(
            &after,
            "pgmcp_tool_calls_total",
            &["outcome=\"UNSAFE_SQL\""]
        ) - unsafe_before,
        1.0
    );
    assert!(sample(&after, "pgmcp_rows_returned_total", &["execute_query"]) >= 12.0);
    assert!(
        sample(
            &after,
            "pgmcp_tool_duration_seconds_count",
            &["execute_query"]
        ) >= 4.0
    );
    assert!(
        sample(
            &after,
            "pgmcp_db_duration_seconds_count",
            &["execute_query"]
        ) >= 3.0
    );
    assert!(
        sample(
            &after,
            "pgmcp_http_requests_total",
            &["route=\"/mcp\"", "status=\"200\""]
        ) >= 4.0
    );
    assert!(
        after
            .iter()
            .any(|(s, _)| s.starts_with("pgmcp_pool_connections") && s.contains("state=\"idle\""))
    );
    assert!(
        after
            .iter()
            .any(|(s, _)| s.starts_with("pgmcp_pool_max_connections"))
    );
    let text = server.text("/metrics").await;
    assert!(!text.contains(SEATTLE), "no tenant ids in labels");
    assert!(!text.contains("generate_series"), "no SQL in labels");
}

#[tokio::test]
async fn query_history_filters_and_stays_bounded() {
    // The in-memory history (the fallback of the audit log, which tests/audit_log covers).
    let server = TestServer::start_with(|c| {
        c.query_history_size = 5;
        c.audit.enabled = false;
    })
    .await;
    let mut s = server.client(Some(SEATTLE)).await;
    let mut h = server.client(Some(HEAD_OFFICE)).await;
    s.call(
        "execute_query",
        json!({"sql": "SELECT $1::int", "params": [7]}),
    )
    .await
    .ok();
    s.query("SELECT pg_sleep(1)").await;
    h.query("SELECT 2").await.ok();
    let http = reqwest::Client::new();
    let get = |q: &str| {
        let http = http.clone();
        let url = server.url(&format!("/query_history{q}"));
        async move {
            let resp = http.get(url).send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()
        }
    };
    let all = get("").await;
    assert_eq!(all["count"], 3);
    let first = &all["entries"][2];
    assert_eq!(first["tool"], "execute_query");
    assert_eq!(first["sql"], "SELECT $1::int");
    assert_eq!(first["param_count"], 1);
    assert!(
        first.get("params").is_none(),
        "parameter values are not stored by default"
    );
    assert_eq!(first["outcome"], "OK");
    assert_eq!(first["rows"], 1);
    assert_eq!(first["tenant"], SEATTLE);

    let seattle = get(&format!("?tenant={SEATTLE}")).await;
    assert_eq!(seattle["count"], 2);
    let errors = get("?status=error").await;
    assert_eq!(errors["count"], 1);
    assert_eq!(errors["entries"][0]["outcome"], "UNSAFE_SQL");
    assert_eq!(
        get(&format!("?status=UNSAFE_SQL&tenant={HEAD_OFFICE}")).await["count"],
        0
    );
    assert_eq!(get("?connection_id=default&limit=1").await["count"], 1);

    for i in 0..10 {
        h.query(&format!("SELECT {i}")).await.ok();
    }
    let all = get("?limit=100").await;
    assert_eq!(all["count"], 5, "never more than its size");
    assert_eq!(all["entries"][0]["sql"], "SELECT ?", "literals are masked");
    assert_eq!(all["source"], "memory");
    let newest = all["entries"][0]["id"].as_u64().unwrap();
    assert_eq!(
        all["entries"][4]["id"].as_u64().unwrap(),
        newest - 4,
        "newest first"
    );

    // get_metrics: the same history over MCP, the caller's own tenant's calls only. The ring
    // now holds five of the head office's calls; Seattle's were pushed out.
    let seattle = s.call("get_metrics", json!({})).await.ok();
    assert_eq!(
        seattle["total_queries"], 0,
        "none of Seattle's calls is left: {seattle}"
    );
    let m = h.call("get_metrics", json!({})).await.ok();
    assert_eq!(
        m["total_queries"], 4,
        "four SELECTs and Seattle's get_metrics: {m}"
    );
    assert_eq!(m["source"], "memory");
    assert!(m["success_rate"].as_f64().is_some());
    for k in [
        "mean_ms",
        "median_ms",
        "p95_ms",
        "max_ms",
        "queries_per_minute",
    ] {
        assert!(m[k].is_number(), "{k} in {m}");
    }
    assert!(
        m["slowest_queries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["sql"] == "SELECT ?"),
        "the head office sees only its own queries: {m}"
    );
    let health = s.call("health_check", json!({})).await.ok();
    assert_eq!(health["is_healthy"], true);
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime_seconds"].is_u64());
    assert_eq!(health["checks"]["connections"]["healthy_connections"], 1);
}

#[tokio::test]
async fn admin_endpoints_need_the_token_beyond_loopback() {
    let server = TestServer::start_with(|c| {
        c.bind = "0.0.0.0:0".parse().unwrap();
        c.allow_header_auth_on_network = true;
        c.admin_token = Some("admin-token-0123456789abcdef".into());
    })
    .await;
    let http = reqwest::Client::new();
    for path in ["/connections", "/query_history"] {
        let missing = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{path} without token");
        let body: Value = missing.json().await.unwrap();
        assert_eq!(body["error_code"], "UNAUTHORIZED");
        for (token, status, with) in [
            ("admin-token-0123456789abcdeX", 401, "a wrong token"),
            ("admin-token-0123456789abcdef", 200, "the token"),
        ] {
            let resp = http
                .get(server.url(path))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), status, "{path} with {with}");
        }
    }
    let conns: Value = http
        .get(server.url("/connections"))
        .bearer_auth("admin-token-0123456789abcdef")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = &conns["connections"][0];
    assert_eq!(c["name"], "default");
    assert_eq!(c["user"], "pgmcp_app");
    assert_eq!(c["healthy"], true);
    for k in [
        "host",
        "port",
        "database",
        "pool_size",
        "pool_idle",
        "pool_max",
        "server_version",
        "last_error",
    ] {
        assert!(c.get(k).is_some(), "{k}");
    }
    let app_password = env()
        .app_url
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert!(
        !conns.to_string().contains(&app_password),
        "never the password"
    );

    // Without a token on a non-loopback bind, the endpoints are off.
    let open = TestServer::start_with(|c| {
        c.bind = "0.0.0.0:0".parse().unwrap();
        c.allow_header_auth_on_network = true;
    })
    .await;
    assert_eq!(open.status("/connections").await, 403);
    // On loopback without a token they are open (development).
    let local = TestServer::start().await;
    for path in ["/connections", "/health/live", "/health/ready"] {
        assert_eq!(local.status(path).await, 200, "{path}");
    }
}

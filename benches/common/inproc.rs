//! What the in-process benchmarks share: timing reports, a pg-mcp server in the bench process
//! on a loopback port (settings from the environment), and a plain MCP client over
//! streamable HTTP.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use pg_mcp::config::Config;
use pg_mcp::state::AppState;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct ConfigParser {
    #[command(flatten)]
    config: Config,
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

pub fn report(name: &str, mut samples: Vec<Duration>, target_ms: Option<f64>) {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let line = format!(
        "{name:<52} n={:<5} p50={p50:>9.4} ms  p90={:>9.4} ms  p99={:>9.4} ms",
        samples.len(),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99)
    );
    match target_ms {
        Some(limit) => println!(
            "{line}  target p50 < {limit} ms: {}",
            if p50 < limit { "PASS" } else { "FAIL" }
        ),
        None => println!("{line}"),
    }
}

/// A server in this process on a loopback port, with the settings of the environment and
/// `adjust`.
pub struct Server {
    pub url: String,
    pub state: Arc<AppState>,
    stop: CancellationToken,
}

impl Server {
    pub async fn start(adjust: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let mut config = ConfigParser::parse_from(["pg-mcp"]).config;
        config.bind = "127.0.0.1:0".parse()?;
        config.rate_limit_per_minute = 0;
        adjust(&mut config);
        let state = AppState::new(config)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/mcp", listener.local_addr()?);
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let serving =
            pg_mcp::server::serve(
                listener,
                state.clone(),
                async move { stopped.cancelled().await },
            );
        tokio::spawn(async move {
            if let Err(e) = serving.await {
                eprintln!("bench: the server failed: {e:#}");
            }
        });
        Ok(Self { url, state, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A plain MCP client over streamable HTTP (JSON or SSE replies), as the Seattle manager.
pub struct Client {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
    next_id: u64,
    /// Sent as `Authorization: Bearer` (the admin token makes an operator in header mode).
    bearer: Option<String>,
}

impl Client {
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, None).await
    }

    /// A client that also sends `bearer` as its bearer token.
    pub async fn connect_with(url: &str, bearer: Option<&str>) -> anyhow::Result<Self> {
        let mut c = Self {
            http: reqwest::Client::new(),
            url: url.to_string(),
            session: None,
            next_id: 1,
            bearer: bearer.map(str::to_string),
        };
        let resp = c
            .post(
                json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "pg-mcp-schema-bench", "version": "1"}}}),
            )
            .await?;
        c.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        resp.text().await?;
        c.post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?
            .text()
            .await?;
        Ok(c)
    }

    async fn post(&self, body: Value) -> anyhow::Result<reqwest::Response> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-rls-user-id", pg_mcp_demo::SEATTLE_RLS_USER_ID)
            .body(body.to_string());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(token) = &self.bearer {
            req = req.bearer_auth(token);
        }
        Ok(req.send().await?.error_for_status()?)
    }

    /// A tool's structured result; an error result is an error.
    pub async fn call(&mut self, tool: &str, arguments: Value) -> anyhow::Result<Value> {
        self.next_id += 1;
        let body = self
            .post(
                json!({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}}),
            )
            .await?
            .text()
            .await?;
        let reply: Value = body
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str(d.trim()).ok())
            .map_or_else(|| serde_json::from_str(&body), Ok)?;
        let result = &reply["result"];
        if result["isError"] == json!(true) || result.is_null() {
            anyhow::bail!("{tool} failed: {reply}");
        }
        Ok(result["structuredContent"].clone())
    }
}

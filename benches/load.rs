//! Load benchmark: `execute_query` through the MCP server against the same statement
//! sequence sent straight to PostgreSQL (the floor).
//!
//! Run it with `scripts/bench.sh` (starts the database and the server); see benches/README.md.
//!
//! * MCP path: every worker opens its own MCP session over streamable HTTP (`initialize`,
//!   `notifications/initialized`, then `tools/call` with `Mcp-Session-Id` and
//!   `x-rls-user-id`) and calls `execute_query` with a point lookup by primary key in a loop.
//! * Direct path: the same per-call sequence the server sends, through sqlx as the
//!   application role with a pool of the same size: `BEGIN ... READ ONLY; SELECT
//!   set_config(...)` (one simple-protocol message, with the tenant signature), the prepared
//!   SELECT (wrapped in the row-cap LIMIT exactly like the server does), `ROLLBACK`.
//! * Fair share (after the throughput levels, against a second server with the default
//!   per-tenant cap, `--fair-share-url`): another store's manager runs the point query at c=1
//!   alone, then again while Seattle floods its tenant slots with long calls; Seattle's
//!   TENANT_BUSY refusals are counted.
//! * `--large-result`: one `execute_query` over a 1,000,000-row query, to show the server's
//!   memory stays bounded.
//!
//! The benchmark reports; it never fails the process because a target is missed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use serde_json::{Value, json};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row, SqlSafeStr, Statement};
use uuid::Uuid;

/// The statement every call runs (a point lookup by primary key).
const POINT_SQL: &str =
    "SELECT order_id, customer_id, store_id, order_date FROM retail.orders WHERE order_id = $1";
/// How the ids the tenant can see are picked.
const IDS_SQL: &str = "SELECT order_id FROM retail.orders LIMIT 1000";
/// The `--large-result` query.
const LARGE_SQL: &str = "SELECT g, md5(g::text) FROM generate_series(1, 1000000) g";
/// Protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";

#[derive(Parser, Debug, Clone)]
#[command(
    name = "load",
    about = "pg-mcp load benchmark: MCP execute_query vs. the direct database floor"
)]
struct Args {
    /// MCP endpoint of a running `pg-mcp serve`.
    #[arg(
        long,
        env = "PG_MCP_BENCH_URL",
        default_value = "http://127.0.0.1:8000/mcp"
    )]
    url: String,

    /// Application-role connection URL for the direct path (the role the server uses).
    /// Without it (or without --signing-key) the direct path is skipped.
    #[arg(long, env = "PG_MCP_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,

    /// Tenant signing key (PG_MCP_TENANT_SIGNING_KEY), to reproduce the tenant transaction.
    #[arg(long, env = "PG_MCP_TENANT_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<String>,

    /// The tenant (x-rls-user-id); default: the Seattle store manager of the sample data.
    #[arg(long, default_value = "f47ac10b-58cc-4372-a567-0e02b2c3d479")]
    tenant: Uuid,

    /// Measured seconds per path and concurrency level.
    #[arg(long, default_value_t = 10.0)]
    duration_secs: f64,

    /// Unmeasured warm-up seconds before each measurement (pool connections, caches).
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,

    /// Concurrency levels (workers = MCP sessions = in-flight calls), comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,

    /// PID of the server, to read its memory (VmRSS, VmHWM) from /proc/<pid>/status.
    #[arg(long)]
    server_pid: Option<u32>,

    /// PID of the PostgreSQL postmaster: the CPU its backends use is reported per call.
    #[arg(long)]
    postgres_pid: Option<u32>,

    /// Connections of the direct path's pool; keep it equal to the server's PG_MCP_POOL_SIZE.
    #[arg(long, env = "PG_MCP_POOL_SIZE", default_value_t = 16)]
    pool_size: u32,

    /// The server's PG_MCP_STATEMENT_TIMEOUT_MS (part of the BEGIN statement it sends).
    #[arg(long, env = "PG_MCP_STATEMENT_TIMEOUT_MS", default_value_t = 30_000)]
    statement_timeout_ms: u64,

    /// The server's PG_MCP_LOCK_TIMEOUT_MS (part of the BEGIN statement it sends).
    #[arg(long, env = "PG_MCP_LOCK_TIMEOUT_MS", default_value_t = 5_000)]
    lock_timeout_ms: u64,

    /// The server's PG_MCP_MAX_ROWS (queries are wrapped in LIMIT max_rows + 1).
    #[arg(long, env = "PG_MCP_MAX_ROWS", default_value_t = 1000)]
    max_rows: usize,

    /// Instead of the load test: one execute_query of a 1,000,000-row query.
    #[arg(long)]
    large_result: bool,

    /// Only the MCP path (no database URL or key needed).
    #[arg(long, conflicts_with = "direct_only")]
    mcp_only: bool,

    /// Only the direct path (for profiling the floor). Also skips the fair-share phase.
    #[arg(long)]
    direct_only: bool,

    /// MCP endpoint of a second `pg-mcp serve` with the default per-tenant cap
    /// (PG_MCP_TENANT_MAX_CONCURRENT_CALLS unset) and the same pool size, for the fair-share
    /// phase; without it that phase is skipped. `scripts/bench.sh` starts one.
    #[arg(long)]
    fair_share_url: Option<String>,

    /// Skip the fair-share phase (run by default when --fair-share-url is given).
    #[arg(long)]
    skip_fair_share: bool,

    /// Accepted and ignored: `cargo bench` passes it to harness-less benchmarks.
    #[arg(long, hide = true)]
    bench: bool,

    /// Accepted and ignored (`cargo bench <filter>`).
    #[arg(hide = true)]
    filter: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        bail!("--concurrency needs positive levels, e.g. 1,8,32");
    }
    if args.large_result {
        large_result(&args).await
    } else {
        load(&args).await
    }
}

// ---------------------------------------------------------------------------------------
// Server memory
// ---------------------------------------------------------------------------------------

/// VmRSS and VmHWM of a process, in kB.
#[derive(Debug, Clone, Copy)]
struct Mem {
    rss_kb: u64,
    hwm_kb: u64,
}

fn read_mem(pid: Option<u32>) -> Option<Mem> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some(Mem {
        rss_kb: field("VmRSS:")?,
        hwm_kb: field("VmHWM:")?,
    })
}

/// Resets the peak RSS (VmHWM) of a process to its current RSS (`echo 5 > clear_refs`), so a
/// later VmHWM is the peak of one phase. Needs the same user (or root); false when refused.
fn reset_peak(pid: Option<u32>) -> bool {
    pid.is_some_and(|p| std::fs::write(format!("/proc/{p}/clear_refs"), "5").is_ok())
}

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn fmt_mb(kb: Option<u64>) -> String {
    kb.map_or_else(|| "n/a".to_string(), |k| format!("{:.1} MB", mb(k)))
}

// ---------------------------------------------------------------------------------------
// CPU per call
// ---------------------------------------------------------------------------------------

/// Clock ticks per second of /proc's utime/stime (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// CPU seconds (user + system) used so far by the load generator, the server and the
/// database's backends. On a machine where all three share few cores, calls/s is bounded by
/// their sum, so this says where each call's cost goes.
#[derive(Clone, Copy, Default)]
struct Cpu {
    bench: f64,
    server: Option<f64>,
    postgres: Option<f64>,
}

/// (utime + stime, ppid) of a process from /proc/<pid>/stat.
fn proc_stat(pid: &str) -> Option<(f64, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces): state ppid ... utime(14) stime(15).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(((utime + stime) as f64 / TICKS_PER_SEC, ppid))
}

/// The postmaster and all its children (backends, background workers).
fn postgres_cpu(postmaster: u32) -> Option<f64> {
    let mut total = proc_stat(&postmaster.to_string())?.0;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((cpu, ppid)) = proc_stat(pid)
            && ppid == postmaster
        {
            total += cpu;
        }
    }
    Some(total)
}

fn read_cpu(args: &Args) -> Cpu {
    Cpu {
        bench: proc_stat("self").map_or(0.0, |(c, _)| c),
        server: args
            .server_pid
            .and_then(|p| proc_stat(&p.to_string()))
            .map(|(c, _)| c),
        postgres: args.postgres_pid.and_then(postgres_cpu),
    }
}

/// CPU microseconds per measured call, by process, between two readings.
#[derive(Clone, Copy)]
struct CpuPerCall {
    bench: f64,
    server: Option<f64>,
    postgres: Option<f64>,
}

impl CpuPerCall {
    fn between(before: Cpu, after: Cpu, calls: usize) -> Option<Self> {
        let per = |a: f64, b: f64| (b - a) * 1e6 / calls as f64;
        (calls > 0).then(|| Self {
            bench: per(before.bench, after.bench),
            server: before.server.zip(after.server).map(|(a, b)| per(a, b)),
            postgres: before.postgres.zip(after.postgres).map(|(a, b)| per(a, b)),
        })
    }

    fn total(&self) -> f64 {
        self.bench + self.server.unwrap_or(0.0) + self.postgres.unwrap_or(0.0)
    }
}

fn fmt_us(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| format!("{v:.0}"))
}

// ---------------------------------------------------------------------------------------
// A minimal MCP streamable-HTTP client (same approach as tests/common/mcp_client.rs)
// ---------------------------------------------------------------------------------------

struct McpSession {
    http: reqwest::Client,
    url: String,
    tenant: String,
    session: Option<String>,
    protocol: String,
    next_id: u64,
}

/// Extracts the JSON-RPC reply from a JSON or SSE body.
fn parse_body(content_type: &str, body: &[u8]) -> Option<Value> {
    if content_type.starts_with("text/event-stream") {
        let text = std::str::from_utf8(body).ok()?;
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
    } else if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    }
}

impl McpSession {
    async fn open(url: &str, tenant: &Uuid) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4)
            .build()?;
        let mut s = Self {
            http,
            url: url.to_string(),
            tenant: tenant.hyphenated().to_string(),
            session: None,
            protocol: PROTOCOL_VERSION.to_string(),
            next_id: 1,
        };
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "pg-mcp-bench", "version": "1"}
            }
        });
        let resp = s.send(&init).await?;
        let status = resp.status().as_u16();
        s.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = Self::read_reply(resp).await?;
        if status != 200 {
            bail!("initialize: HTTP {status}: {reply:?}");
        }
        let reply = reply.ok_or_else(|| anyhow!("initialize: no JSON-RPC reply"))?;
        if let Some(v) = reply["result"]["protocolVersion"].as_str() {
            s.protocol = v.to_string();
        }
        let resp = s
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            bail!("notifications/initialized: HTTP {status}");
        }
        Ok(s)
    }

    async fn send(&self, message: &Value) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-rls-user-id", &self.tenant)
            .body(serde_json::to_vec(message)?);
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.protocol);
        }
        Ok(req.send().await?)
    }

    async fn read_reply(resp: reqwest::Response) -> Result<Option<Value>> {
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await?;
        Ok(parse_body(&ct, &body))
    }

    /// `tools/call`: the call's `result`, or an error for a transport failure, a non-200
    /// status or a JSON-RPC error.
    async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}
        });
        let resp = self.send(&msg).await?;
        let status = resp.status().as_u16();
        let reply = Self::read_reply(resp).await?;
        if status != 200 {
            bail!("HTTP {status}: {}", short(&format!("{reply:?}")));
        }
        let mut reply = reply.ok_or_else(|| anyhow!("HTTP 200 without a JSON-RPC reply"))?;
        if reply["id"] != json!(id) {
            bail!("reply id {} does not match request id {id}", reply["id"]);
        }
        match reply.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => bail!("JSON-RPC error: {}", short(&reply["error"].to_string())),
        }
    }

    /// `execute_query`; a tool error (`isError`) is an `Err` carrying its error_code.
    async fn execute_query(&mut self, arguments: Value) -> Result<Value> {
        let mut result = self.call_tool("execute_query", arguments).await?;
        let structured = result["structuredContent"].take();
        if result["isError"].as_bool().unwrap_or(false) {
            bail!(
                "isError: {} {}",
                structured["error_code"].as_str().unwrap_or("?"),
                short(structured["message"].as_str().unwrap_or(""))
            );
        }
        Ok(structured)
    }

    /// A lean caller for this session's measured loop (see [`FastCaller`]).
    async fn fast_caller(&self) -> Result<FastCaller> {
        FastCaller::connect(self).await
    }

    /// Ends the session (DELETE), so finished sessions do not stay in the server's memory.
    async fn close(self) {
        if let Some(s) = &self.session {
            let _ = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.protocol)
                .header("x-rls-user-id", &self.tenant)
                .send()
                .await;
        }
    }
}

/// The measured loop's MCP client: the same `tools/call` request over one persistent
/// HTTP/1.1 connection (hyper, no pool, no redirects), with the reply parsed into small typed
/// structs instead of a `serde_json::Value` tree. It still checks everything a client must:
/// HTTP status, JSON or SSE framing, the JSON-RPC id, `isError` and the row count. A load
/// generator shares the machine's cores with the server, so every microsecond it spends is
/// one the server does not get.
struct FastCaller {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
    uri: hyper::Uri,
    host: hyper::header::HeaderValue,
    tenant: hyper::header::HeaderValue,
    session: Option<hyper::header::HeaderValue>,
    protocol: hyper::header::HeaderValue,
    next_id: u64,
}

#[derive(serde::Serialize)]
struct CallRequest<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: CallParams<'a>,
}

#[derive(serde::Serialize)]
struct CallParams<'a> {
    name: &'static str,
    arguments: QueryArguments<'a>,
}

#[derive(serde::Serialize)]
struct QueryArguments<'a> {
    sql: &'static str,
    params: [&'a Value; 1],
}

#[derive(serde::Deserialize)]
struct Reply {
    id: Option<u64>,
    result: Option<CallResult>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct CallResult {
    #[serde(rename = "structuredContent")]
    structured: Option<Structured>,
    #[serde(rename = "isError", default)]
    is_error: bool,
}

#[derive(serde::Deserialize)]
struct Structured {
    row_count: Option<u64>,
    error_code: Option<String>,
}

impl FastCaller {
    async fn connect(session: &McpSession) -> Result<Self> {
        let uri: hyper::Uri = session.url.parse().context("invalid --url")?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--url has no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((authority.host(), port)).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let header = |v: &str| hyper::header::HeaderValue::from_str(v);
        Ok(Self {
            sender,
            host: header(authority.as_str())?,
            uri,
            tenant: header(&session.tenant)?,
            session: session.session.as_deref().map(header).transpose()?,
            protocol: header(&session.protocol)?,
            next_id: 1_000_000,
        })
    }

    /// `execute_query` of [`POINT_SQL`] for one id; Ok when exactly one row came back.
    async fn point_query(&mut self, order_id: &Value) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&CallRequest {
            jsonrpc: "2.0",
            id,
            method: "tools/call",
            params: CallParams {
                name: "execute_query",
                arguments: QueryArguments {
                    sql: POINT_SQL,
                    params: [order_id],
                },
            },
        })?;
        let mut req = hyper::Request::post(self.uri.clone())
            .header(hyper::header::HOST, self.host.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("x-rls-user-id", self.tenant.clone())
            .header("mcp-protocol-version", self.protocol.clone());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s.clone());
        }
        let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let sse = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            bail!("HTTP {status}: {}", short(&String::from_utf8_lossy(&body)));
        }
        let reply = if sse {
            std::str::from_utf8(&body)?
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .filter_map(|d| serde_json::from_str::<Reply>(d).ok())
                .find(|r| r.result.is_some() || r.error.is_some())
        } else {
            serde_json::from_slice::<Reply>(&body).ok()
        };
        let reply = reply.ok_or_else(|| anyhow!("HTTP 200 without a JSON-RPC reply"))?;
        if reply.id != Some(id) {
            bail!("reply id {:?} does not match request id {id}", reply.id);
        }
        let result = reply
            .result
            .ok_or_else(|| anyhow!("JSON-RPC error for request {id}"))?;
        let structured = result
            .structured
            .ok_or_else(|| anyhow!("no structuredContent"))?;
        if result.is_error {
            bail!(
                "isError: {}",
                structured.error_code.as_deref().unwrap_or("?")
            );
        }
        match structured.row_count {
            Some(1) => Ok(()),
            n => bail!("expected row_count 1, got {n:?}"),
        }
    }
}

fn short(s: &str) -> String {
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

// ---------------------------------------------------------------------------------------
// The direct path: the server's tenant transaction, reproduced
// ---------------------------------------------------------------------------------------

/// The server's own tenant-transaction opener (`begin_statement` in src/db/tenant.rs),
/// byte for byte what `begin_tenant` sends (one simple-protocol message).
struct TenantOpener {
    tenant: pg_mcp::db::Tenant,
    signer: pg_mcp::db::TenantSigner,
    opts: pg_mcp::db::TxOptions,
}

impl TenantOpener {
    fn new(args: &Args, key: &str) -> Self {
        Self {
            tenant: pg_mcp::db::Tenant {
                rls_user_id: args.tenant,
                subject: None,
                auth: pg_mcp::db::AuthMethod::Header,
            },
            signer: pg_mcp::db::TenantSigner::new(key),
            opts: pg_mcp::db::TxOptions {
                read_only: true,
                statement_timeout: Duration::from_millis(args.statement_timeout_ms),
                lock_timeout: Duration::from_millis(args.lock_timeout_ms),
            },
        }
    }

    /// A fresh statement per call: its proof carries the time it was issued.
    fn statement(&self) -> String {
        pg_mcp::db::tenant::begin_statement(&self.tenant, &self.signer, &self.opts)
    }
}

/// The query as the server prepares it: wrapped in LIMIT max_rows + 1
/// (`wrap_with_limit` in src/sql/limits.rs).
fn wrapped_point_sql(args: &Args) -> String {
    format!(
        "SELECT * FROM (\n{POINT_SQL}\n) AS pg_mcp_limited LIMIT {}",
        args.max_rows + 1
    )
}

struct Direct {
    pool: PgPool,
    begin: TenantOpener,
    select: String,
}

impl Direct {
    async fn connect(args: &Args, url: &str, key: &str) -> Result<Self> {
        let options: PgConnectOptions = url.parse().context("invalid --database-url")?;
        let pool = PgPoolOptions::new()
            .max_connections(args.pool_size)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            // The server's session settings too (src/db/registry.rs), so PostgreSQL does
            // the same work per statement on both paths.
            .connect_with(
                options
                    .application_name("pg-mcp-bench")
                    .options([("client_connection_check_interval", "1000")]),
            )
            .await
            .context("direct path: cannot connect with --database-url")?;
        Ok(Self {
            pool,
            begin: TenantOpener::new(args, key),
            select: wrapped_point_sql(args),
        })
    }

    /// One call: BEGIN + pgmcp.enter, the prepared SELECT, ROLLBACK. Checks the row.
    async fn call(&self, id: i64) -> Result<()> {
        let mut tx = self
            .pool
            .begin_with(AssertSqlSafe(self.begin.statement()))
            .await?;
        let stmt = (&mut *tx)
            .prepare(AssertSqlSafe(self.select.clone()).into_sql_str())
            .await?;
        let rows = stmt.query().bind(id).fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        match rows.as_slice() {
            [row] if row.try_get::<i64, _>(0)? == id => Ok(()),
            _ => bail!("expected 1 row for order_id {id}, got {}", rows.len()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Measurement
// ---------------------------------------------------------------------------------------

#[derive(Default)]
struct WorkerStats {
    /// Latency of each successful measured call, in nanoseconds.
    latencies: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
    /// When the last measured call ended.
    last_end: Option<Instant>,
}

impl WorkerStats {
    fn record(&mut self, started: Instant, outcome: Result<()>) {
        let end = Instant::now();
        match outcome {
            Ok(()) => self
                .latencies
                .push(end.duration_since(started).as_nanos() as u64),
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(format!("{e:#}"));
                }
            }
        }
        self.last_end = Some(end);
    }
}

/// The result of one path at one concurrency level.
struct PathResult {
    calls_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    calls: usize,
    errors: u64,
    first_error: Option<String>,
    /// CPU per measured call, by process (load generator, server, PostgreSQL).
    cpu: Option<CpuPerCall>,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

fn summarise(stats: Vec<WorkerStats>, measure_start: Instant) -> PathResult {
    let end = stats
        .iter()
        .filter_map(|s| s.last_end)
        .max()
        .unwrap_or(measure_start);
    let elapsed = end.duration_since(measure_start).as_secs_f64().max(1e-9);
    let errors = stats.iter().map(|s| s.errors).sum();
    let first_error = stats.iter().find_map(|s| s.first_error.clone());
    let mut all: Vec<u64> = stats.into_iter().flat_map(|s| s.latencies).collect();
    all.sort_unstable();
    PathResult {
        calls_per_sec: all.len() as f64 / elapsed,
        p50_ms: percentile(&all, 0.50),
        p90_ms: percentile(&all, 0.90),
        p99_ms: percentile(&all, 0.99),
        calls: all.len(),
        errors,
        first_error,
        cpu: None,
    }
}

/// Shared timing of one phase: warm-up until `measure_start`, measurement until `end`.
#[derive(Clone, Copy)]
struct Window {
    measure_start: Instant,
    end: Instant,
}

impl Window {
    /// Reads the CPU at the start and the end of the measured part, waits for the workers and
    /// sums up the phase.
    async fn finish(
        &self,
        args: &Args,
        workers: Vec<tokio::task::JoinHandle<WorkerStats>>,
    ) -> Result<PathResult> {
        tokio::time::sleep_until(self.measure_start.into()).await;
        let before = read_cpu(args);
        tokio::time::sleep_until(self.end.into()).await;
        let after = read_cpu(args);
        let mut stats = Vec::with_capacity(workers.len());
        for w in workers {
            stats.push(w.await?);
        }
        let mut result = summarise(stats, self.measure_start);
        result.cpu = CpuPerCall::between(before, after, result.calls);
        Ok(result)
    }

    fn new(args: &Args) -> Self {
        // A short delay so every worker is spawned before the clock starts.
        let start = Instant::now() + Duration::from_millis(20);
        let measure_start = start + Duration::from_secs_f64(args.warmup_secs);
        Self {
            measure_start,
            end: measure_start + Duration::from_secs_f64(args.duration_secs),
        }
    }
}

fn pick(ids: &[Value], worker: usize, i: usize) -> &Value {
    &ids[(worker.wrapping_mul(7919) + i) % ids.len()]
}

/// `concurrency` MCP sessions of `tenant` at `url`, each looping the point query over `ids`.
async fn run_mcp(
    args: &Args,
    url: &str,
    tenant: &Uuid,
    concurrency: usize,
    ids: Arc<Vec<Value>>,
) -> Result<PathResult> {
    let mut sessions = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        sessions.push(McpSession::open(url, tenant).await?);
    }
    let mut callers = Vec::with_capacity(concurrency);
    for s in &sessions {
        callers.push(s.fast_caller().await?);
    }
    let window = Window::new(args);
    let mut tasks = Vec::with_capacity(concurrency);
    for (w, (session, mut caller)) in sessions.into_iter().zip(callers).enumerate() {
        let ids = ids.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats::default();
            let mut i = 0usize;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let outcome = caller.point_query(pick(&ids, w, i)).await;
                i += 1;
                if started >= window.measure_start {
                    stats.record(started, outcome);
                }
            }
            session.close().await;
            stats
        }));
    }
    window.finish(args, tasks).await
}

async fn run_direct(
    args: &Args,
    concurrency: usize,
    direct: Arc<Direct>,
    ids: Arc<Vec<i64>>,
) -> Result<PathResult> {
    let window = Window::new(args);
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let ids = ids.clone();
        let direct = direct.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = WorkerStats::default();
            let mut i = 0usize;
            loop {
                let started = Instant::now();
                if started >= window.end {
                    break;
                }
                let id = ids[(w.wrapping_mul(7919) + i) % ids.len()];
                i += 1;
                let outcome = direct.call(id).await;
                if started >= window.measure_start {
                    stats.record(started, outcome);
                }
            }
            stats
        }));
    }
    window.finish(args, tasks).await
}

/// The order ids `tenant` can see at `url`, as the server returns them (JSON) and as i64.
/// Also tells whether the server issued an `Mcp-Session-Id` (session mode) or not (stateless).
async fn tenant_ids(url: &str, tenant: &Uuid) -> Result<(Vec<Value>, Vec<i64>, bool)> {
    let mut s = McpSession::open(url, tenant)
        .await
        .with_context(|| format!("cannot open an MCP session at {url}"))?;
    let sessions = s.session.is_some();
    let result = s
        .execute_query(json!({ "sql": IDS_SQL }))
        .await
        .context("picking order ids")?;
    s.close().await;
    let json_ids: Vec<Value> = result["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r[0].clone()).collect())
        .unwrap_or_default();
    let ints = json_ids
        .iter()
        .map(|v| {
            v.as_i64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .ok_or_else(|| anyhow!("order_id {v} is not an integer"))
        })
        .collect::<Result<Vec<i64>>>()?;
    if ints.is_empty() {
        bail!(
            "tenant {tenant} sees no rows in retail.orders: seed the database (pg-mcp seed) or pick another --tenant"
        );
    }
    Ok((json_ids, ints, sessions))
}

struct Level {
    concurrency: usize,
    mcp: Option<PathResult>,
    direct: Option<PathResult>,
    idle_before: Option<Mem>,
    /// Peak RSS of the MCP phase (VmHWM after resetting it at the phase start), or the
    /// process-lifetime VmHWM when the reset was refused.
    peak: Option<Mem>,
}

impl Level {
    fn both(&self) -> Option<(&PathResult, &PathResult)> {
        Some((self.mcp.as_ref()?, self.direct.as_ref()?))
    }
}

fn row(name: &str, r: &PathResult) -> String {
    format!(
        "  {name:<8} {:>10.1} {:>9.3} {:>9.3} {:>9.3} {:>8} {:>9}",
        r.calls_per_sec, r.p50_ms, r.p90_ms, r.p99_ms, r.errors, r.calls
    )
}

async fn load(args: &Args) -> Result<()> {
    let pid = args.server_pid;
    let idle_at_start = read_mem(pid);
    let (json_ids, int_ids, sessions) = tenant_ids(&args.url, &args.tenant).await?;
    let json_ids = Arc::new(json_ids);
    let int_ids = Arc::new(int_ids);

    let direct = match (&args.database_url, &args.signing_key, args.mcp_only) {
        (Some(url), Some(key), false) => {
            let d = Direct::connect(args, url, key).await?;
            // Pre-flight: a wrong key would make RLS hide every row.
            d.call(int_ids[0]).await.context(
                "direct path pre-flight failed (is --signing-key the server's PG_MCP_TENANT_SIGNING_KEY?)",
            )?;
            Some(Arc::new(d))
        }
        _ => {
            println!(
                "note: direct path skipped (needs --database-url and --signing-key, and no --mcp-only)"
            );
            None
        }
    };

    if args.direct_only && direct.is_none() {
        bail!("--direct-only needs --database-url and --signing-key");
    }

    println!("pg-mcp load benchmark");
    println!("  server        {}", args.url);
    println!(
        "  tenant        {} ({} visible order ids)",
        args.tenant,
        int_ids.len()
    );
    println!(
        "  server mode   {}",
        if sessions {
            "MCP sessions (Mcp-Session-Id, SSE replies; PG_MCP_STATELESS_HTTP=false)"
        } else {
            "stateless (JSON replies; the default PG_MCP_STATELESS_HTTP=true)"
        }
    );
    println!("  statement     {POINT_SQL}");
    println!(
        "  per level     {:.1} s warm-up + {:.1} s measured, per path; direct pool {} connections",
        args.warmup_secs, args.duration_secs, args.pool_size
    );
    println!(
        "  server RSS    idle at start {}",
        fmt_mb(idle_at_start.map(|m| m.rss_kb))
    );

    let mut levels = Vec::new();
    let mut peak_reset_ok = true;
    for &c in &args.concurrency {
        let direct_result = match &direct {
            Some(d) => Some(run_direct(args, c, d.clone(), int_ids.clone()).await?),
            None => None,
        };
        let idle_before = read_mem(pid);
        peak_reset_ok &= pid.is_none() || reset_peak(pid);
        let mcp = if args.direct_only {
            None
        } else {
            Some(run_mcp(args, &args.url, &args.tenant, c, json_ids.clone()).await?)
        };
        let peak = read_mem(pid);
        let level = Level {
            concurrency: c,
            mcp,
            direct: direct_result,
            idle_before,
            peak,
        };
        print_level(&level);
        levels.push(level);
    }
    if !peak_reset_ok {
        println!(
            "note: could not reset VmHWM (/proc/<pid>/clear_refs); peaks are since server start"
        );
    }
    print_summary(&levels);
    print_targets(&levels, idle_at_start);

    let skip_fair_share = args.skip_fair_share || args.direct_only;
    match (&args.fair_share_url, skip_fair_share) {
        (_, true) => {
            println!();
            println!("note: fair-share phase skipped (--skip-fair-share or --direct-only)");
        }
        (None, false) => {
            println!();
            println!(
                "note: fair-share phase skipped (needs --fair-share-url: a second server with the default per-tenant cap; scripts/bench.sh starts one)"
            );
        }
        (Some(url), false) => fair_share(args, url).await.context("fair-share phase")?,
    }
    Ok(())
}

fn print_level(l: &Level) {
    println!();
    println!("concurrency {}", l.concurrency);
    println!(
        "  {:<8} {:>10} {:>9} {:>9} {:>9} {:>8} {:>9}",
        "path", "calls/s", "p50 ms", "p90 ms", "p99 ms", "errors", "calls"
    );
    if let Some(m) = &l.mcp {
        println!("{}", row("mcp", m));
    }
    if let Some(d) = &l.direct {
        println!("{}", row("direct", d));
    }
    for (name, r) in [("mcp", &l.mcp), ("direct", &l.direct)] {
        if let Some(c) = r.as_ref().and_then(|r| r.cpu) {
            println!(
                "  CPU per call, {name:<6}: load generator {} µs + server {} µs + PostgreSQL {} µs = {:.0} µs",
                fmt_us(Some(c.bench)),
                fmt_us(c.server.filter(|_| name == "mcp")),
                fmt_us(c.postgres),
                c.total()
                    - if name == "mcp" {
                        0.0
                    } else {
                        c.server.unwrap_or(0.0)
                    }
            );
        }
    }
    if let Some((m, d)) = l.both() {
        println!(
            "  MCP - direct p50: {:+.3} ms    MCP calls/s / direct: {:.1}%",
            m.p50_ms - d.p50_ms,
            100.0 * m.calls_per_sec / d.calls_per_sec
        );
    }
    if l.mcp.is_some() {
        println!(
            "  server RSS: idle before {}, peak during MCP run {}",
            fmt_mb(l.idle_before.map(|m| m.rss_kb)),
            fmt_mb(l.peak.map(|m| m.hwm_kb))
        );
    }
    if let Some(e) = l.mcp.as_ref().and_then(|m| m.first_error.as_ref()) {
        println!("  first MCP error: {e}");
    }
    if let Some(e) = l.direct.as_ref().and_then(|d| d.first_error.as_ref()) {
        println!("  first direct error: {e}");
    }
}

fn print_summary(levels: &[Level]) {
    println!();
    println!("summary");
    println!(
        "  {:>3} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
        "c",
        "mcp c/s",
        "direct c/s",
        "mcp/dir",
        "mcp p50",
        "dir p50",
        "Δp50 ms",
        "mcp err",
        "dir err",
        "idle RSS",
        "peak RSS"
    );
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_string());
    for l in levels {
        let (m, d) = (l.mcp.as_ref(), l.direct.as_ref());
        println!(
            "  {:>3} {:>10} {:>10} {:>8} {:>9} {:>9} {:>9} {:>8} {:>8} {:>10} {:>10}",
            l.concurrency,
            opt(m.map(|m| format!("{:.1}", m.calls_per_sec))),
            opt(d.map(|d| format!("{:.1}", d.calls_per_sec))),
            opt(l
                .both()
                .map(|(m, d)| format!("{:.1}%", 100.0 * m.calls_per_sec / d.calls_per_sec))),
            opt(m.map(|m| format!("{:.3}", m.p50_ms))),
            opt(d.map(|d| format!("{:.3}", d.p50_ms))),
            opt(l
                .both()
                .map(|(m, d)| format!("{:+.3}", m.p50_ms - d.p50_ms))),
            opt(m.map(|m| m.errors.to_string())),
            opt(d.map(|d| d.errors.to_string())),
            fmt_mb(l.idle_before.map(|m| m.rss_kb)),
            opt(m.map(|_| fmt_mb(l.peak.map(|m| m.hwm_kb)))),
        );
    }
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "PASS",
        Some(false) => "FAIL",
        None => "n/a",
    }
}

fn print_targets(levels: &[Level], idle_at_start: Option<Mem>) {
    println!();
    println!("targets");
    let at = |c: usize| levels.iter().find(|l| l.concurrency == c);

    let (ok, measured) = match at(1).and_then(Level::both) {
        Some((m, d)) => {
            let delta = m.p50_ms - d.p50_ms;
            (Some(delta <= 0.5), format!("{delta:+.3} ms"))
        }
        None => (None, "not measured".to_string()),
    };
    println!(
        "  {:<4} {:<46} {measured}",
        verdict(ok),
        "c=1 MCP p50 within 0.5 ms of direct"
    );

    for c in [8, 32] {
        let (ok, measured) = match at(c).and_then(Level::both) {
            Some((m, d)) => {
                let ratio = 100.0 * m.calls_per_sec / d.calls_per_sec;
                (
                    Some(ratio >= 50.0 && m.errors == 0),
                    format!("{ratio:.1}%, {} MCP errors", m.errors),
                )
            }
            None => (None, "not measured".to_string()),
        };
        println!(
            "  {:<4} {:<46} {measured}",
            verdict(ok),
            format!("c={c} MCP calls/s >= 50% of direct, zero errors")
        );
    }

    let peak = levels
        .iter()
        .filter(|l| l.mcp.is_some())
        .filter_map(|l| l.peak.map(|m| m.hwm_kb))
        .max();
    println!(
        "  {:<4} {:<46} {}",
        verdict(peak.map(|k| mb(k) < 100.0)),
        "peak server RSS < 100 MB",
        fmt_mb(peak)
    );
    let idle = idle_at_start.map(|m| m.rss_kb);
    println!(
        "  {:<4} {:<46} {}",
        verdict(idle.map(|k| mb(k) < 40.0)),
        "idle server RSS < 40 MB (before any load)",
        fmt_mb(idle)
    );
    println!("(the benchmark reports only; a FAIL does not change its exit status)");
}

// ---------------------------------------------------------------------------------------
// Fair share: another tenant's calls while Seattle floods its own slots
// ---------------------------------------------------------------------------------------

/// The stores and their managers' tenant ids (read as head office).
const STORES_SQL: &str =
    "SELECT store_name, rls_user_id::text FROM retail.stores ORDER BY store_id";
/// The long call each saturating worker repeats: once it has a slot it holds it until the
/// server's statement timeout cancels it.
/// A set-returning function in the select list streams its rows (in `FROM` they would be
/// materialised into a temporary file, and end early at the role's temp_file_limit).
const SATURATE_SQL: &str = "SELECT count(*) FROM (SELECT generate_series(1, 1e10)) AS s";
/// Saturating workers (sessions, calls in flight) per pooled connection.
const SATURATE_PER_CONNECTION: usize = 3;
/// How long Seattle saturates before the other tenant's second run starts.
const SATURATE_SETTLE: Duration = Duration::from_secs(1);

/// What Seattle's saturating calls came back with. Shared by the workers, which are aborted
/// at the end of the phase: a call still in flight then is counted only in `sent`.
#[derive(Default)]
struct Saturation {
    sent: AtomicU64,
    /// TENANT_BUSY: none of the tenant's slots freed within PG_MCP_TENANT_QUEUE_TIMEOUT_MS.
    refused: AtomicU64,
    /// Sum of the refused calls' latencies, in µs (each about the queue timeout).
    refused_us: AtomicU64,
    /// The per-tenant cap as a refusal states it (`details.max_concurrent_calls`); 0: none yet.
    cap: AtomicU64,
    /// EXECUTION_TIMEOUT: the call ran in a slot until the statement timeout.
    timed_out: AtomicU64,
    /// Finished without an error (not expected within the statement timeout).
    completed: AtomicU64,
    /// Any other tool error or a transport failure.
    other: AtomicU64,
    first_other: Mutex<Option<String>>,
}

impl Saturation {
    fn record(&self, outcome: Result<Value>, elapsed: Duration) {
        let count = |c: &AtomicU64| {
            c.fetch_add(1, Ordering::Relaxed);
        };
        let other = |message: String| {
            count(&self.other);
            let mut first = self.first_other.lock().expect("saturation lock");
            first.get_or_insert(message);
        };
        let result = match outcome {
            Ok(result) => result,
            Err(e) => return other(format!("{e:#}")),
        };
        if !result["isError"].as_bool().unwrap_or(false) {
            return count(&self.completed);
        }
        let structured = &result["structuredContent"];
        match structured["error_code"].as_str() {
            Some("TENANT_BUSY") => {
                count(&self.refused);
                self.refused_us
                    .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
                if let Some(cap) = structured["details"]["max_concurrent_calls"].as_u64() {
                    self.cap.store(cap, Ordering::Relaxed);
                }
            }
            Some("EXECUTION_TIMEOUT") => count(&self.timed_out),
            code => other(format!(
                "{} {}",
                code.unwrap_or("?"),
                short(structured["message"].as_str().unwrap_or(""))
            )),
        }
    }
}

/// Opens `workers` sessions of `tenant`, then has each repeat [`SATURATE_SQL`] until aborted,
/// so the tenant's slots stay taken and its queue full even when a call ends early.
async fn saturate(
    url: &str,
    tenant: &Uuid,
    workers: usize,
    counts: Arc<Saturation>,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut sessions = Vec::with_capacity(workers);
    for _ in 0..workers {
        sessions.push(McpSession::open(url, tenant).await?);
    }
    Ok(sessions
        .into_iter()
        .map(|mut session| {
            let counts = counts.clone();
            tokio::spawn(async move {
                loop {
                    let started = Instant::now();
                    counts.sent.fetch_add(1, Ordering::Relaxed);
                    let outcome = session
                        .call_tool("execute_query", json!({ "sql": SATURATE_SQL }))
                        .await;
                    let elapsed = started.elapsed();
                    counts.record(outcome, elapsed);
                    // No hot loop when calls fail fast (a refusal without queueing, a dead server).
                    if elapsed < Duration::from_millis(50) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect())
}

/// Another store's manager than `busy`, with order ids it can see: the stores' rls_user_id
/// values read as head office, in store order (Bellevue in the sample data).
async fn other_tenant(url: &str, busy: &Uuid) -> Result<(Uuid, String, Vec<Value>)> {
    let mut head_office = McpSession::open(url, &Uuid::nil())
        .await
        .with_context(|| format!("cannot open an MCP session at {url}"))?;
    let stores = head_office
        .execute_query(json!({ "sql": STORES_SQL }))
        .await
        .context("reading retail.stores as head office");
    head_office.close().await;
    let stores = stores?;
    let mut last_error = None;
    for store in stores["rows"].as_array().into_iter().flatten() {
        let Some(id) = store[1].as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
            continue;
        };
        if id == *busy || id.is_nil() {
            continue;
        }
        match tenant_ids(url, &id).await {
            Ok((ids, _, _)) => {
                let name = store[0].as_str().unwrap_or("?").to_string();
                return Ok((id, name, ids));
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        anyhow!("retail.stores holds no store but tenant {busy}: seed the database (pg-mcp seed)")
    }))
}

async fn fair_share(args: &Args, url: &str) -> Result<()> {
    let (other, other_name, ids) = other_tenant(url, &args.tenant).await?;
    let ids = Arc::new(ids);
    let workers = SATURATE_PER_CONNECTION * args.pool_size as usize;
    let expected_cap = args.pool_size.div_ceil(4).max(1);

    println!();
    println!("fair share");
    println!("  server        {url} (default per-tenant cap)");
    println!(
        "  other tenant  {other} ({other_name}, {} visible order ids), c=1",
        ids.len()
    );
    println!(
        "  saturating    {} ({workers} sessions = {SATURATE_PER_CONNECTION} x pool {}), each repeating {SATURATE_SQL}",
        args.tenant, args.pool_size
    );
    println!(
        "  expected cap  {expected_cap} calls per tenant (a quarter of the pool of {}, rounded up)",
        args.pool_size
    );
    println!(
        "  per run       {:.1} s warm-up + {:.1} s measured; the flood starts {:.0} s before the second run",
        args.warmup_secs,
        args.duration_secs,
        SATURATE_SETTLE.as_secs_f64()
    );

    let alone = run_mcp(args, url, &other, 1, ids.clone()).await?;

    let counts = Arc::new(Saturation::default());
    let flood = saturate(url, &args.tenant, workers, counts.clone()).await?;
    tokio::time::sleep(SATURATE_SETTLE).await;
    let busy = run_mcp(args, url, &other, 1, ids).await;
    // The long calls are not waited for: their connections close, and scripts/bench.sh stops
    // this server right after the bench.
    for task in &flood {
        task.abort();
    }
    let busy = busy?;

    println!();
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>8}",
        "other tenant, c=1", "p50 ms", "p99 ms", "calls", "errors"
    );
    for (name, r) in [("alone", &alone), ("Seattle saturating", &busy)] {
        println!(
            "  {name:<22} {:>9.3} {:>9.3} {:>9} {:>8}",
            r.p50_ms, r.p99_ms, r.calls, r.errors
        );
    }
    println!(
        "  under saturation / alone: p50 x{:.2}, p99 x{:.2}",
        busy.p50_ms / alone.p50_ms,
        busy.p99_ms / alone.p99_ms
    );
    for (name, r) in [("alone", &alone), ("under saturation", &busy)] {
        if let Some(e) = &r.first_error {
            println!("  first error {name}: {e}");
        }
    }

    let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let (sent, refused) = (n(&counts.sent), n(&counts.refused));
    let (timed_out, completed, other_errors) =
        (n(&counts.timed_out), n(&counts.completed), n(&counts.other));
    let in_flight = sent.saturating_sub(refused + timed_out + completed + other_errors);
    println!();
    println!("  Seattle's saturating calls  {sent} sent");
    println!(
        "    refused TENANT_BUSY       {refused}{}",
        if refused > 0 {
            format!(
                " (after {:.2} s in the queue on average)",
                n(&counts.refused_us) as f64 / refused as f64 / 1e6
            )
        } else {
            String::new()
        }
    );
    println!("    ended by stmt timeout     {timed_out}");
    println!("    other errors              {other_errors}");
    if completed > 0 {
        println!("    completed                 {completed}");
    }
    println!("    in flight at the end      {in_flight}");
    match n(&counts.cap) {
        0 => {}
        cap if cap == u64::from(expected_cap) => {
            println!("    the server's cap          {cap} (as its refusals state)")
        }
        cap => println!(
            "    the server's cap          {cap} (as its refusals state; expected {expected_cap}: is --pool-size the server's PG_MCP_POOL_SIZE, and PG_MCP_TENANT_MAX_CONCURRENT_CALLS unset?)"
        ),
    }
    if let Some(e) = counts.first_other.lock().expect("saturation lock").as_ref() {
        println!("    first other error         {e}");
    }
    println!(
        "  {:<4} other tenant: zero errors while Seattle saturates, Seattle refused TENANT_BUSY",
        verdict(Some(busy.errors == 0 && refused > 0))
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// --large-result
// ---------------------------------------------------------------------------------------

async fn large_result(args: &Args) -> Result<()> {
    let pid = args.server_pid;
    let mut session = McpSession::open(&args.url, &args.tenant)
        .await
        .with_context(|| format!("cannot open an MCP session at {}", args.url))?;
    let before = read_mem(pid);
    let reset = reset_peak(pid);

    // Sample RSS while the call runs (VmHWM gives the exact peak; this shows the shape).
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max_rss = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(m) = read_mem(pid) {
                    max_rss = max_rss.max(m.rss_kb);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            max_rss
        })
    };

    let started = Instant::now();
    let outcome = session.execute_query(json!({ "sql": LARGE_SQL })).await;
    let elapsed = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let sampled_max = sampler.await.unwrap_or(0);
    let after = read_mem(pid);
    session.close().await;

    println!("pg-mcp large-result check");
    println!("  statement     {LARGE_SQL}");
    match outcome {
        Ok(v) => {
            println!("  rows returned {}", v["row_count"]);
            println!("  truncated     {}", v["truncated"]);
            println!("  server time   {} ms (duration_ms)", v["duration_ms"]);
        }
        Err(e) => println!("  tool error    {e:#}"),
    }
    println!(
        "  call time     {:.1} ms (client, HTTP round trip included)",
        elapsed.as_secs_f64() * 1000.0
    );
    println!(
        "  server RSS    before {}, after {}, max sampled {}",
        fmt_mb(before.map(|m| m.rss_kb)),
        fmt_mb(after.map(|m| m.rss_kb)),
        if pid.is_some() {
            format!("{:.1} MB", mb(sampled_max))
        } else {
            "n/a".to_string()
        }
    );
    println!(
        "  server peak   {} (VmHWM{})",
        fmt_mb(after.map(|m| m.hwm_kb)),
        if reset {
            ", reset just before the call"
        } else {
            " since server start"
        }
    );
    let peak = after.map(|m| m.hwm_kb);
    println!(
        "  {:<4} peak server RSS < 100 MB during the 1,000,000-row query",
        verdict(peak.map(|k| mb(k) < 100.0))
    );
    Ok(())
}

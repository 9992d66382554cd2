//! `scripts/bench.sh peers`: MCP servers side by side on the same database and the same
//! statement. One lean client (one HTTP/1.1 connection per worker, a prebuilt `tools/call`
//! body, the reply read whole and checked for a result without `isError`) drives each server
//! in turn at each concurrency level, and prints calls/s, p50, p99, errors and the server
//! process's CPU per call (utime + stime from /proc).
//!
//!   peers --target 'pg-mcp=http://127.0.0.1:8000/mcp' --pid pg-mcp=1234 \
//!         --call 'pg-mcp=execute_query:{"sql":"SELECT 1 AS one"}' \
//!         --header 'pg-mcp=x-rls-user-id:f47ac10b-58cc-4372-a567-0e02b2c3d479' ...

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::Parser;
use http_body_util::BodyExt;

// The load bench's floor, shared: each bench uses part of it.
#[allow(dead_code)]
#[path = "load/direct.rs"]
mod direct;
use direct::{Direct, ServerSettings};

#[derive(Parser)]
struct Args {
    /// `name=url` of each server's MCP endpoint, in the order to run them.
    #[arg(long = "target", required = true)]
    targets: Vec<String>,
    /// `name=pid`: the server process whose CPU is read.
    #[arg(long = "pid")]
    pids: Vec<String>,
    /// `name=tool:arguments-json`: the call each worker repeats.
    #[arg(long = "call")]
    calls: Vec<String>,
    /// `name=header:value`: a header sent with each call (a tenant, a token).
    #[arg(long = "header")]
    headers: Vec<String>,
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    #[arg(long, default_value_t = 8.0)]
    duration_secs: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup_secs: f64,
    /// The database's own ceiling, after the servers: `--floor-sql` through sqlx as the
    /// application role (this URL), once in pg-mcp's tenant transaction (BEGIN with the
    /// signed context, the statement, ROLLBACK: no server can serve more calls than that) and
    /// once alone, as a server that only relays SQL sends it.
    #[arg(long, env = "PG_MCP_DATABASE_URL", hide_env_values = true)]
    floor_database_url: Option<String>,
    /// PG_MCP_TENANT_SIGNING_KEY, to sign the tenant context of the floor's transaction.
    #[arg(long, env = "PG_MCP_TENANT_SIGNING_KEY", hide_env_values = true)]
    floor_signing_key: Option<String>,
    /// The statement of the floor rows (the one the servers' calls run).
    #[arg(long)]
    floor_sql: Option<String>,
    /// The tenant of the floor's transaction.
    #[arg(long, default_value = "f47ac10b-58cc-4372-a567-0e02b2c3d479")]
    floor_tenant: uuid::Uuid,
    /// Connections of the floor's pool (the server's PG_MCP_POOL_SIZE).
    #[arg(long, env = "PG_MCP_POOL_SIZE", default_value_t = 16)]
    floor_pool_size: u32,
    /// Accepted and ignored: `cargo bench` passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

/// `name=value` entries of a repeated option, by name.
fn by_name(entries: &[String], what: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for entry in entries {
        let (name, value) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("--{what} {entry:?} is not name=value"))?;
        map.entry(name.to_string())
            .or_default()
            .push(value.to_string());
    }
    Ok(map)
}

struct Target {
    name: String,
    uri: hyper::Uri,
    pid: Option<u32>,
    body: hyper::body::Bytes,
    headers: Vec<(String, String)>,
}

/// Clock ticks of CPU (user + system) the process has used.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// One worker's measured calls: the latencies of those that succeeded, and the failures.
#[derive(Default)]
struct Tally {
    samples: Vec<Duration>,
    errors: u64,
}

impl Tally {
    /// Counts a call begun at `start` if it falls in the measured window.
    fn record(&mut self, start: Instant, measure_from: Instant, ok: bool) {
        if start < measure_from {
            return;
        }
        if ok {
            self.samples.push(start.elapsed());
        } else {
            self.errors += 1;
        }
    }

    /// The workers' tallies as one, latencies sorted.
    fn merge(tallies: Vec<Tally>) -> Tally {
        let mut all = Tally::default();
        for t in tallies {
            all.samples.extend(t.samples);
            all.errors += t.errors;
        }
        all.samples.sort();
        all
    }
}

/// One HTTP/1.1 connection to the target.
async fn connect(
    authority: &hyper::http::uri::Authority,
) -> Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>> {
    let tcp =
        tokio::net::TcpStream::connect((authority.host(), authority.port_u16().unwrap_or(80)))
            .await?;
    tcp.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Calls until `until`; samples and errors count from `measure_from`. A connection the
/// server (or a proxy) closes between calls is opened again, as any HTTP client does; a call
/// whose request or reply fails counts as an error.
async fn worker(target: &Target, until: Instant, measure_from: Instant) -> Result<Tally> {
    let authority = target
        .uri
        .authority()
        .ok_or_else(|| anyhow!("no host in {}", target.uri))?
        .clone();
    // Origin form (`POST /mcp`), as browsers and HTTP libraries send it.
    let path: hyper::Uri = target
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .parse()?;
    let mut sender = connect(&authority).await?;
    let mut tally = Tally::default();
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        if sender.ready().await.is_err() {
            // Closed after its last reply (keep-alive limit, a server draining): reconnect.
            sender = match connect(&authority).await {
                Ok(s) => s,
                Err(_) => {
                    tally.record(start, measure_from, false);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
        }
        let mut request = hyper::Request::post(path.clone())
            .header(hyper::header::HOST, authority.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18");
        for (k, v) in &target.headers {
            request = request.header(k, v);
        }
        let request = request.body(http_body_util::Full::new(target.body.clone()))?;
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Ok(body) => {
                        let body = body.to_bytes();
                        let text = std::str::from_utf8(&body).unwrap_or("");
                        status == 200
                            && text.contains("\"result\"")
                            && !text.contains("\"isError\":true")
                            && !text.contains("\"error\":{")
                    }
                    Err(_) => false,
                }
            }
            Err(_) => false,
        };
        tally.record(start, measure_from, ok);
    }
    Ok(tally)
}

/// A floor row's worker: `bare` runs the statement alone, else in the tenant transaction.
async fn db_worker(db: &Direct, bare: bool, until: Instant, measure_from: Instant) -> Tally {
    let mut tally = Tally::default();
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let ok = if bare {
            db.call_bare().await.is_ok()
        } else {
            db.call_unbound().await.is_ok()
        };
        tally.record(start, measure_from, ok);
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let pids = by_name(&args.pids, "pid")?;
    let calls = by_name(&args.calls, "call")?;
    let headers = by_name(&args.headers, "header")?;
    let mut targets = Vec::new();
    for entry in &args.targets {
        let (name, url) = entry
            .split_once('=')
            .ok_or_else(|| anyhow!("--target {entry:?} is not name=url"))?;
        let call = calls
            .get(name)
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow!("no --call for {name}"))?;
        let (tool, arguments) = call
            .split_once(':')
            .ok_or_else(|| anyhow!("--call {call:?} is not tool:arguments"))?;
        let arguments: serde_json::Value =
            serde_json::from_str(arguments).context("--call arguments are not JSON")?;
        let body = serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": tool, "arguments": arguments}
        }))?;
        targets.push(Target {
            name: name.to_string(),
            uri: url.parse().context("invalid --target url")?,
            pid: pids
                .get(name)
                .and_then(|p| p.first())
                .map(|p| p.parse())
                .transpose()?,
            body: body.into(),
            headers: headers
                .get(name)
                .into_iter()
                .flatten()
                .filter_map(|h| h.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect(),
        });
    }
    let floor = match (&args.floor_database_url, &args.floor_sql) {
        (Some(url), Some(sql)) => {
            let key = args
                .floor_signing_key
                .as_deref()
                .context("the floor needs PG_MCP_TENANT_SIGNING_KEY (--floor-signing-key)")?;
            let settings = ServerSettings {
                pool_size: args.floor_pool_size,
                statement_timeout_ms: 30_000,
                lock_timeout_ms: 5_000,
                max_rows: 1000,
            };
            let db = Direct::connect(url, key, args.floor_tenant, &settings, sql).await?;
            db.call_unbound()
                .await
                .context("floor pre-flight in the tenant transaction")?;
            db.call_bare().await.context("floor pre-flight alone")?;
            Some(db)
        }
        _ => None,
    };
    let ticks_per_sec = 100.0; // USER_HZ on Linux
    println!(
        "{:<12} {:>4} {:>10} {:>9} {:>9} {:>7} {:>14}",
        "server", "c", "calls/s", "p50 ms", "p99 ms", "errors", "CPU ms/call"
    );
    let mut at_8: Vec<(String, f64, f64)> = Vec::new();
    for target in &targets {
        for &c in &args.concurrency {
            let start = Instant::now();
            let measure_from = start + Duration::from_secs_f64(args.warmup_secs);
            let until = measure_from + Duration::from_secs_f64(args.duration_secs);
            // CPU is read across the measured window only.
            let cpu_reader = target.pid.map(|pid| {
                tokio::spawn(async move {
                    tokio::time::sleep_until(measure_from.into()).await;
                    let before = cpu_ticks(pid);
                    tokio::time::sleep_until(until.into()).await;
                    before.zip(cpu_ticks(pid)).map(|(b, a)| a - b)
                })
            });
            let results =
                futures::future::join_all((0..c).map(|_| worker(target, until, measure_from)))
                    .await;
            let Tally { samples, errors } = Tally::merge(
                results
                    .into_iter()
                    .collect::<Result<_>>()
                    .with_context(|| format!("{}: a worker failed", target.name))?,
            );
            let calls_per_sec = samples.len() as f64 / args.duration_secs;
            let cpu = match cpu_reader {
                Some(handle) => handle.await?.map(|ticks| {
                    ticks as f64 / ticks_per_sec * 1000.0 / samples.len().max(1) as f64
                }),
                None => None,
            };
            let (p50, p99) = (percentile(&samples, 0.5), percentile(&samples, 0.99));
            println!(
                "{:<12} {:>4} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>14}",
                target.name,
                c,
                calls_per_sec,
                p50,
                p99,
                errors,
                cpu.map_or("-".into(), |v| format!("{v:.3}"))
            );
            if samples.is_empty() {
                bail!("{}: no call succeeded at c={c}", target.name);
            }
            if c == 8 {
                at_8.push((target.name.clone(), calls_per_sec, p99));
            }
        }
    }
    let mut floor_at_8 = Vec::new();
    if let Some(db) = &floor {
        for (name, bare) in [("db:tenant-tx", false), ("db:bare", true)] {
            for &c in &args.concurrency {
                let start = Instant::now();
                let measure_from = start + Duration::from_secs_f64(args.warmup_secs);
                let until = measure_from + Duration::from_secs_f64(args.duration_secs);
                let Tally { samples, errors } = Tally::merge(
                    futures::future::join_all(
                        (0..c).map(|_| db_worker(db, bare, until, measure_from)),
                    )
                    .await,
                );
                let calls_per_sec = samples.len() as f64 / args.duration_secs;
                println!(
                    "{:<12} {:>4} {:>10.0} {:>9.2} {:>9.2} {:>7} {:>14}",
                    name,
                    c,
                    calls_per_sec,
                    percentile(&samples, 0.5),
                    percentile(&samples, 0.99),
                    errors,
                    "-"
                );
                if c == 8 {
                    floor_at_8.push((name, calls_per_sec));
                }
            }
        }
    }
    if let Some((first, rate, p99)) = at_8.first().cloned() {
        for (name, other_rate, other_p99) in &at_8[1..] {
            println!(
                "c=8: {first} {:.1}x the calls/s of {name} (target >= 5x), p99 {p99:.2} ms vs {other_p99:.2} ms (target lower)",
                rate / other_rate
            );
            for (floor_name, floor_rate) in &floor_at_8 {
                println!(
                    "c=8: {floor_name} (no MCP server at all) is {:.1}x the calls/s of {name}; 5x is {:.0} calls/s",
                    floor_rate / other_rate,
                    5.0 * other_rate
                );
            }
        }
    }
    Ok(())
}

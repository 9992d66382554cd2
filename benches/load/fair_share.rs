//! The fair-share phase: what one tenant's flood of long calls does to another tenant, with
//! the server's real per-tenant cap. Another store's manager runs the point query at c=1
//! alone, then again while the bench's tenant (Seattle) holds all its slots and keeps its
//! queue full; Seattle's calls are counted by how they ended (TENANT_BUSY above all).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
/// Head office (the demo sees every store for the nil UUID).
const HEAD_OFFICE: Uuid = Uuid::nil();
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::{McpSession, short};
use crate::measure::{PathResult, RunPlan, run_mcp};
use crate::report::verdict;
use crate::workload::tenant_ids;

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

    /// Prints how Seattle's calls ended; returns how many were refused TENANT_BUSY.
    fn print(&self, expected_cap: u32) -> u64 {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (sent, refused) = (n(&self.sent), n(&self.refused));
        let (timed_out, completed, other_errors) =
            (n(&self.timed_out), n(&self.completed), n(&self.other));
        let in_flight = sent.saturating_sub(refused + timed_out + completed + other_errors);
        println!();
        println!("  Seattle's saturating calls  {sent} sent");
        println!(
            "    refused TENANT_BUSY       {refused}{}",
            if refused > 0 {
                format!(
                    " (after {:.2} s in the queue on average)",
                    n(&self.refused_us) as f64 / refused as f64 / 1e6
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
        match n(&self.cap) {
            0 => {}
            cap if cap == u64::from(expected_cap) => {
                println!("    the server's cap          {cap} (as its refusals state)")
            }
            cap => println!(
                "    the server's cap          {cap} (as its refusals state; expected {expected_cap}: is --pool-size the server's PG_MCP_POOL_SIZE, and PG_MCP_TENANT_MAX_CONCURRENT_CALLS unset?)"
            ),
        }
        if let Some(e) = self.first_other.lock().expect("saturation lock").as_ref() {
            println!("    first other error         {e}");
        }
        refused
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
    Ok(McpSession::open_many(url, tenant, workers)
        .await?
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

/// The tenant whose calls are measured while Seattle floods.
struct OtherTenant {
    id: Uuid,
    store_name: String,
    /// Order ids it can see, as the server returns them.
    ids: Vec<Value>,
}

/// Another store's manager than `busy`, with order ids it can see: the stores' rls_user_id
/// values read as head office, in store order (Bellevue in the sample data).
async fn other_tenant(url: &str, busy: &Uuid) -> Result<OtherTenant> {
    let mut head_office = McpSession::open(url, &HEAD_OFFICE)
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
            Ok(ids) => {
                return Ok(OtherTenant {
                    id,
                    store_name: store[0].as_str().unwrap_or("?").to_string(),
                    ids: ids.json,
                });
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        anyhow!("retail.stores holds no store but tenant {busy}: seed the database (pg-mcp seed)")
    }))
}

/// Runs the phase against the server at `url` and prints it. `tenant` (Seattle) floods;
/// `pool_size` is the server's PG_MCP_POOL_SIZE, from which its default cap follows.
pub async fn run(plan: &RunPlan, url: &str, tenant: &Uuid, pool_size: u32) -> Result<()> {
    let other = other_tenant(url, tenant).await?;
    let ids = Arc::new(other.ids);
    let workers = SATURATE_PER_CONNECTION * pool_size as usize;
    let expected_cap = pool_size.div_ceil(4).max(1);

    println!();
    println!("fair share");
    println!("  server        {url} (default per-tenant cap)");
    println!(
        "  other tenant  {} ({}, {} visible order ids), c=1",
        other.id,
        other.store_name,
        ids.len()
    );
    println!(
        "  saturating    {tenant} ({workers} sessions = {SATURATE_PER_CONNECTION} x pool {pool_size}), each repeating {SATURATE_SQL}"
    );
    println!(
        "  expected cap  {expected_cap} calls per tenant (a quarter of the pool of {pool_size}, rounded up)"
    );
    println!(
        "  per run       {:.1} s warm-up + {:.1} s measured; the flood starts {:.0} s before the second run",
        plan.warmup_secs,
        plan.duration_secs,
        SATURATE_SETTLE.as_secs_f64()
    );

    let alone = run_mcp(plan, url, &other.id, 1, ids.clone()).await?;

    let counts = Arc::new(Saturation::default());
    let flood = saturate(url, tenant, workers, counts.clone()).await?;
    tokio::time::sleep(SATURATE_SETTLE).await;
    let busy = run_mcp(plan, url, &other.id, 1, ids).await;
    // The long calls are not waited for: their connections close, and scripts/bench.sh stops
    // this server right after the bench.
    for task in &flood {
        task.abort();
    }
    let busy = busy?;

    print_other_tenant(&alone, &busy);
    let refused = counts.print(expected_cap);
    println!(
        "  {:<4} other tenant: zero errors while Seattle saturates, Seattle refused TENANT_BUSY",
        verdict(Some(busy.errors == 0 && refused > 0))
    );
    Ok(())
}

/// The other tenant's latency alone and under saturation.
fn print_other_tenant(alone: &PathResult, busy: &PathResult) {
    println!();
    println!(
        "  {:<22} {:>9} {:>9} {:>9} {:>8}",
        "other tenant, c=1", "p50 ms", "p99 ms", "calls", "errors"
    );
    for (name, r) in [("alone", alone), ("Seattle saturating", busy)] {
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
    for (name, r) in [("alone", alone), ("under saturation", busy)] {
        if let Some(e) = &r.first_error {
            println!("  first error {name}: {e}");
        }
    }
}

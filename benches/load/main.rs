//! Load benchmark: `execute_query` through the MCP server against the same statement
//! sequence sent straight to PostgreSQL (the floor).
//!
//! Run it with `scripts/bench.sh` (starts the database and the server); see benches/README.md.
//!
//! * MCP path ([`client`]): every worker opens its own MCP session over streamable HTTP
//!   (`initialize`, `notifications/initialized`, then `tools/call` with `Mcp-Session-Id` and
//!   `x-rls-user-id`) and calls `execute_query` with a point lookup by primary key in a loop.
//! * Direct path ([`direct`]): the same per-call sequence the server sends, through sqlx as
//!   the application role with a pool of the same size: `BEGIN ... READ ONLY; SELECT
//!   set_config(...), pgmcp.enter(...)` (one simple-protocol message, with the tenant's
//!   proof), the prepared SELECT (wrapped in the row-cap LIMIT exactly like the server does),
//!   `ROLLBACK`.
//! * Fair share ([`fair_share`], after the throughput levels, against a second server with
//!   the default per-tenant cap, `--fair-share-url`): another store's manager runs the point
//!   query at c=1 alone, then again while Seattle floods its tenant slots with long calls;
//!   Seattle's TENANT_BUSY refusals are counted.
//! * `--large-result` ([`large_result`]): one `execute_query` over a 1,000,000-row query, to
//!   show the server's memory stays bounded.
//!
//! This file holds the command line and the order of the phases; [`measure`] runs one path at
//! one concurrency level, [`report`] prints the tables, [`procstat`] reads /proc.
//! The benchmark reports; it never fails the process because a target is missed.

mod client;
// Shared with the peers bench, which uses other parts of it.
#[allow(dead_code)]
mod direct;
mod fair_share;
mod large_result;
mod measure;
mod procstat;
mod report;
mod workload;

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Parser;
use uuid::Uuid;

use crate::direct::{Direct, ServerSettings};
use crate::measure::{RunPlan, run_direct, run_mcp};
use crate::procstat::{Processes, read_mem, reset_peak};
use crate::report::{Level, fmt_mb, print_level, print_summary, print_targets};
use crate::workload::{POINT_SQL, tenant_ids};

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
        large_result::run(&args.url, &args.tenant, args.server_pid).await
    } else {
        load(&args).await
    }
}

impl Args {
    /// How long each run lasts, and the processes its CPU per call is read from.
    fn plan(&self) -> RunPlan {
        RunPlan {
            warmup_secs: self.warmup_secs,
            duration_secs: self.duration_secs,
            processes: Processes {
                server: self.server_pid,
                postgres: self.postgres_pid,
            },
        }
    }

    /// The server settings the direct path reproduces.
    fn server_settings(&self) -> ServerSettings {
        ServerSettings {
            pool_size: self.pool_size,
            statement_timeout_ms: self.statement_timeout_ms,
            lock_timeout_ms: self.lock_timeout_ms,
            max_rows: self.max_rows,
        }
    }
}

/// The load test: per concurrency level the direct path, then the MCP path; then the report
/// and the fair-share phase.
async fn load(args: &Args) -> Result<()> {
    let pid = args.server_pid;
    let plan = args.plan();
    let idle_at_start = read_mem(pid);
    let ids = tenant_ids(&args.url, &args.tenant).await?;
    let sessions = ids.sessions;
    let json_ids = Arc::new(ids.json);
    let int_ids = Arc::new(ids.ints);

    let direct = match (&args.database_url, &args.signing_key, args.mcp_only) {
        (Some(url), Some(key), false) => {
            let d =
                Direct::connect(url, key, args.tenant, &args.server_settings(), POINT_SQL).await?;
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
            Some(d) => Some(run_direct(&plan, c, d.clone(), int_ids.clone()).await?),
            None => None,
        };
        let idle_before = read_mem(pid);
        peak_reset_ok &= pid.is_none() || reset_peak(pid);
        let mcp = if args.direct_only {
            None
        } else {
            Some(run_mcp(&plan, &args.url, &args.tenant, c, json_ids.clone()).await?)
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
        (Some(url), false) => fair_share::run(&plan, url, &args.tenant, args.pool_size)
            .await
            .context("fair-share phase")?,
    }
    Ok(())
}

//! Live reload under load: eight MCP clients call `execute_query` back to back while the
//! configuration file changes `max_rows` and adds (then drops) a second database, five times.
//! For each change it prints how long until a new call sees it (target: under 1 s), and at
//! the end how many calls ran and how many failed (target: none).
//!
//! Run with `scripts/bench.sh reload`: the demo database, plus a second database that the
//! script creates and migrates (`PG_MCP_BENCH_SECOND_URL`, as the application role).

#[path = "common/inproc.rs"]
#[allow(dead_code)]
mod inproc;

use std::ffi::OsString;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use inproc::{Client, Server};
use serde_json::json;

const TARGET: Duration = Duration::from_secs(1);
const ROUNDS: usize = 5;
const TWENTY_ROWS: &str = "SELECT g FROM generate_series(1, 20) g";

/// `url` with its database (path) replaced by `database`.
fn on_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(url)?;
    url.set_path(database);
    Ok(url.to_string())
}

/// A fresh second database, migrated by `pg-mcp migrate` (PG_MCP_BENCH_BIN): its URL as the
/// application role.
async fn second_database() -> anyhow::Result<String> {
    const NAME: &str = "pgmcp_reload_bench";
    let var = |k: &str| {
        std::env::var(k)
            .map_err(|_| anyhow::anyhow!("{k} is not set (scripts/bench.sh reload sets it)"))
    };
    let admin_url = var("PG_MCP_ADMIN_DATABASE_URL")?;
    let admin = sqlx::PgPool::connect(&admin_url).await?;
    for sql in [
        format!("DROP DATABASE IF EXISTS {NAME} WITH (FORCE)"),
        format!("CREATE DATABASE {NAME}"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&admin)
            .await?;
    }
    admin.close().await;
    let status = std::process::Command::new(var("PG_MCP_BENCH_BIN")?)
        .arg("migrate")
        .env("PG_MCP_ADMIN_DATABASE_URL", on_database(&admin_url, NAME)?)
        .env("PG_MCP_SCHEMAS", "")
        .status()?;
    anyhow::ensure!(status.success(), "migrating {NAME} failed");
    on_database(&var("PG_MCP_DATABASE_URL")?, NAME)
}

/// Polls `check` every 10 ms until it holds (at most 10 s): how long it took.
async fn until(mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(10) {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

fn verdict(took: Option<Duration>) -> String {
    match took {
        Some(t) if t < TARGET => format!("{:>7.1} ms  PASS", t.as_secs_f64() * 1000.0),
        Some(t) => format!("{:>7.1} ms  FAIL", t.as_secs_f64() * 1000.0),
        None => "  never    FAIL".to_string(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    let second = second_database().await?;
    let dir = std::env::temp_dir().join(format!("pg-mcp-reload-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("pg-mcp.toml");
    std::fs::write(&file, "max_rows = 5\n")?;
    let argv = vec![OsString::from("pg-mcp")];
    let loaded = pg_mcp::config_file::load(&file, &argv)
        .map_err(|e| anyhow::anyhow!("the config file: {e:?}"))?;
    let server = Server::start(|c| {
        c.max_rows = 5;
        // One tenant's nine clients: no fair-share queueing in the figures.
        c.tenant_max_concurrent_calls = c.pool_size;
        c.config_file = Some(file.clone());
    })
    .await?;
    let stop_reload = tokio_util::sync::CancellationToken::new();
    pg_mcp::reload::spawn(
        server.state.clone(),
        pg_mcp::reload::Source {
            file: file.clone(),
            argv,
        },
        loaded.effective,
        stop_reload.clone(),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..8 {
        let (stop, calls, failures) = (stop.clone(), calls.clone(), failures.clone());
        let mut client = Client::connect(&server.url).await?;
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if client
                    .call("execute_query", json!({"sql": TWENTY_ROWS}))
                    .await
                    .is_err()
                {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                calls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut probe = Client::connect(&server.url).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    println!(
        "live reload under load (8 clients, execute_query back to back); target: seen in < 1 s"
    );
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    for round in 1..=ROUNDS {
        let (rows, with_second) = if round % 2 == 1 {
            (3, true)
        } else {
            (5, false)
        };
        let text = if with_second {
            format!("max_rows = {rows}\n[databases]\nsecond = \"{second}\"\n")
        } else {
            format!("max_rows = {rows}\n")
        };
        std::fs::write(&file, text)?;
        let took_rows = until(async || {
            probe
                .call("execute_query", json!({"sql": TWENTY_ROWS}))
                .await
                .is_ok_and(|a| a["rows"].as_array().map(Vec::len) == Some(rows))
        })
        .await;
        let took_db = until(async || {
            let on_second = probe
                .call(
                    "execute_query",
                    json!({"sql": "SELECT 1", "database": "second"}),
                )
                .await;
            on_second.is_ok() == with_second
        })
        .await;
        worst = worst
            .max(took_rows.unwrap_or(Duration::MAX))
            .max(took_db.unwrap_or(Duration::MAX));
        println!(
            "  round {round}: max_rows = {rows} seen in {}; database second {} seen in {}",
            verdict(took_rows),
            if with_second { "added," } else { "dropped," },
            verdict(took_db)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await?;
    }
    stop_reload.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    let (calls, failures) = (
        calls.load(Ordering::Relaxed),
        failures.load(Ordering::Relaxed),
    );
    let generation = server.state.config_status.lock().expect("lock").generation;
    println!(
        "  {calls} calls in {:.1} s ({:.0} calls/s), {failures} failed: {}; configuration generation {generation}; slowest change seen in {:.1} ms: {}",
        started.elapsed().as_secs_f64(),
        calls as f64 / started.elapsed().as_secs_f64(),
        if failures == 0 { "PASS" } else { "FAIL" },
        worst.as_secs_f64() * 1000.0,
        if worst < TARGET { "PASS" } else { "FAIL" },
    );
    Ok(())
}

//! Write-mode figures: `batch_execute` inserting orders as the Seattle manager through the
//! retail demo's row-level security (`WITH CHECK` on every row), in rows per second (target at
//! least 20,000 on the 2-core machine), per batch size and atomic; and `execute_query` single-row
//! inserts for comparison.
//!
//! Run with `scripts/bench.sh write`: it puts the demo database in write mode for the run
//! (`pg-mcp migrate` with PG_MCP_WRITE_DATABASES=default, PG_MCP_SCHEMAS=retail), exports the
//! database settings, and takes the write grants back afterwards. The rows it inserts carry
//! the order date 1999-12-31 and are deleted after each run.

// Shared with benches/schema.rs, which uses all of it.
#[path = "common/inproc.rs"]
#[allow(dead_code)]
mod inproc;

use std::time::{Duration, Instant};

use inproc::{Client, Server, report};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;

const MARKER_DATE: &str = "1999-12-31";
const INSERT: &str =
    "INSERT INTO retail.orders (customer_id, store_id, order_date) VALUES ($1, $2, $3::date)";
const TARGET_ROWS_PER_SECOND: f64 = 20_000.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    let admin_url = std::env::var("PG_MCP_ADMIN_DATABASE_URL").map_err(|_| {
        anyhow::anyhow!("set PG_MCP_ADMIN_DATABASE_URL (scripts/bench.sh write does)")
    })?;
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await?;
    let customer: i32 = sqlx::query_scalar(
        "SELECT min(customer_id) FROM retail.customers WHERE primary_store_id = 1",
    )
    .fetch_one(&admin)
    .await?;
    let cleanup = async || -> anyhow::Result<u64> {
        Ok(
            sqlx::query("DELETE FROM retail.orders WHERE order_date = $1::date")
                .bind(MARKER_DATE)
                .execute(&admin)
                .await?
                .rows_affected(),
        )
    };
    cleanup().await?;

    let server = Server::start(|c| {
        c.write_databases = vec!["default".into()];
        c.header_writes = true;
    })
    .await?;
    let mut client = Client::connect(&server.url).await?;
    let sets =
        |n: usize| -> Vec<Value> { (0..n).map(|_| json!([customer, 1, MARKER_DATE])).collect() };

    // Warm-up: connections, prepared statements, the guard's cache.
    client
        .call(
            "batch_execute",
            json!({"sql": INSERT, "param_sets": sets(2_000), "batch_size": 500}),
        )
        .await?;
    cleanup().await?;

    const ROWS: usize = 50_000;
    println!(
        "batch_execute: {ROWS} INSERTs into retail.orders as the Seattle manager (row-level security WITH CHECK on each row)"
    );
    for (batch_size, atomic) in [(500, false), (5_000, false), (5_000, true)] {
        let mut rates = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let answer = client
                .call(
                    "batch_execute",
                    json!({"sql": INSERT, "param_sets": sets(ROWS), "batch_size": batch_size, "atomic": atomic}),
                )
                .await?;
            let wall = started.elapsed();
            anyhow::ensure!(
                answer["affected_rows"] == json!(ROWS),
                "unexpected answer: {answer}"
            );
            let inserted = cleanup().await?;
            anyhow::ensure!(inserted == ROWS as u64, "{inserted} rows inserted");
            rates.push(ROWS as f64 / wall.as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        let median = rates[rates.len() / 2];
        println!(
            "  batch_size {batch_size:>5}{}: median {median:>8.0} rows/s over MCP (runs: {})  target >= {TARGET_ROWS_PER_SECOND:.0}: {}",
            if atomic { ", atomic" } else { "        " },
            rates
                .iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
            if median >= TARGET_ROWS_PER_SECOND {
                "PASS"
            } else {
                "FAIL"
            }
        );
    }

    // One row per call, for comparison: what an assistant looping over execute_query pays.
    let mut single = Vec::<Duration>::new();
    for _ in 0..500 {
        let started = Instant::now();
        client
            .call(
                "execute_query",
                json!({"sql": INSERT, "params": [customer, 1, MARKER_DATE]}),
            )
            .await?;
        single.push(started.elapsed());
    }
    cleanup().await?;
    report("execute_query: one INSERT per call", single, None);
    Ok(())
}

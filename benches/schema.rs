//! Schema cache and natural-language figures:
//!
//! - on a 5,000-table schema: a cold load of the catalogue, the change check (the fingerprint
//!   query the watcher runs every `PG_MCP_SCHEMA_CACHE_CHECK_SECS`), a cache hit answering a
//!   `list_tables` page (target under 1 ms), a named table's prompt text, `schema://` within
//!   the budget, and `list_tables` end to end over MCP;
//! - the `query` tool's own cost on the demo schema, excluding the model's time (target under
//!   20 ms p50), with a real chat-completions stub server answering instantly; and the same on
//!   the 5,000-table schema, where the context is ranked.
//!
//! Run with `scripts/bench.sh schema` (it builds, migrates and seeds the demo database and
//! exports PG_MCP_ADMIN_DATABASE_URL, PG_MCP_DATABASE_URL and PG_MCP_TENANT_SIGNING_KEY). The
//! 5,000-table database `pgmcp_bench_wide` is created on first use and kept.

#[path = "../tests/integration/stub_chat.rs"]
#[allow(dead_code)]
mod stub_chat;

#[path = "common/inproc.rs"]
mod inproc;

use std::sync::Arc;
use std::time::{Duration, Instant};

use inproc::{Client, Server, report};
use pg_mcp::schema::listing::{ListRequest, list_tables};
use pg_mcp::schema::{SchemaCache, Snapshot, prompt};
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, Connection};

const WIDE_DB: &str = "pgmcp_bench_wide";
const WIDE_TABLES: i64 = 5_000;
const BUDGET: usize = 65_536;

fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut url = url::Url::parse(url)?;
    url.set_path(database);
    Ok(url.to_string())
}

/// The 5,000-table database, created (and migrated, schema `wide` granted) unless a previous
/// run left it complete.
async fn wide_database(admin_url: &str) -> anyhow::Result<()> {
    let mut admin = sqlx::PgConnection::connect(admin_url).await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(WIDE_DB)
            .fetch_one(&mut admin)
            .await?;
    let wide_url = with_database(admin_url, WIDE_DB)?;
    if exists {
        let mut wide = sqlx::PgConnection::connect(&wide_url).await?;
        let tables: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'wide' AND c.relkind = 'r'",
        )
        .fetch_one(&mut wide)
        .await?;
        if tables == WIDE_TABLES + 2 {
            return migrate_wide(&wide_url).await;
        }
        sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE {WIDE_DB} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await?;
    }
    eprintln!("bench: creating {WIDE_DB} with {WIDE_TABLES} tables");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {WIDE_DB}")))
        .execute(&mut admin)
        .await?;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&wide_url)
        .await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"CREATE SCHEMA wide;
        DO $$ BEGIN
          FOR i IN 0..{last} LOOP
            EXECUTE format('CREATE TABLE wide.%I (id bigint PRIMARY KEY, label text NOT NULL,
              status text, amount numeric(12,2), created_at timestamptz DEFAULT now())',
              'item_' || lpad(i::text, 4, '0'));
            EXECUTE format('COMMENT ON TABLE wide.%I IS %L', 'item_' || lpad(i::text, 4, '0'),
              'Numbered table ' || i || ' of the wide schema');
          END LOOP;
        END $$;
        CREATE TABLE wide.customer_accounts (account_id bigint PRIMARY KEY, customer_name text NOT NULL);
        CREATE TABLE wide.invoices (invoice_id bigint PRIMARY KEY,
          account_id bigint NOT NULL REFERENCES wide.customer_accounts, issued_on date NOT NULL);"#,
        last = WIDE_TABLES - 1
    )))
    .execute(&pool)
    .await?;
    pool.close().await;
    migrate_wide(&wide_url).await
}

/// `pg-mcp migrate` (the release binary `scripts/bench.sh` built) on the wide database, with
/// schema `wide` granted; the signing key and app password come from the environment.
async fn migrate_wide(wide_url: &str) -> anyhow::Result<()> {
    let binary = std::env::var("PG_MCP_BIN").unwrap_or_else(|_| "target/release/pg-mcp".into());
    let out = tokio::process::Command::new(&binary)
        .arg("migrate")
        .env("PG_MCP_ADMIN_DATABASE_URL", wide_url)
        .env("PG_MCP_SCHEMAS", "wide")
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("{binary} migrate: {e} (build it: cargo build --release)"))?;
    anyhow::ensure!(
        out.status.success(),
        "pg-mcp migrate on {WIDE_DB} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `n` cache hits: each takes the current snapshot and does `work` with it, timed together.
async fn cache_hits(
    cache: &Arc<SchemaCache>,
    n: usize,
    mut work: impl FnMut(&Snapshot) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let snapshot = cache.get().await?;
        work(&snapshot)?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}

async fn bench_cache(admin_url: &str, app_url: &str) -> anyhow::Result<()> {
    wide_database(admin_url).await?;
    let wide_url = with_database(app_url, WIDE_DB)?;
    let server = Server::start(|c| {
        c.database_url = Some(wide_url.into());
        c.schemas = vec!["wide".into()];
    })
    .await?;
    let cache = server.state.schemas.of("default")?.clone();

    let mut cold = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        cache.refresh().await?;
        cold.push(t.elapsed());
    }
    let snapshot = cache.get().await?;
    println!(
        "schema: {} tables in the snapshot of {WIDE_DB}",
        snapshot.summary().tables
    );
    report("cold load of the catalogue (5,002 tables)", cold, None);

    let db = server.state.databases.get(None)?;
    let mut conn = db.pool.acquire().await?;
    let mut check = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        pg_mcp::db::catalog::fingerprint(&mut conn).await?;
        check.push(t.elapsed());
    }
    drop(conn);
    report("change check (catalogue fingerprint query)", check, None);

    let request = ListRequest {
        schema: None,
        pattern: None,
        page_size: None,
        cursor: None,
        budget_bytes: BUDGET,
    };
    let mut cursor: Option<String> = None;
    let hit = cache_hits(&cache, 2_000, |snapshot| {
        let page = list_tables(
            snapshot,
            &ListRequest {
                cursor: cursor.as_deref(),
                ..request
            },
        )?;
        anyhow::ensure!(serde_json::to_vec(&page)?.len() <= BUDGET);
        cursor = page.next_cursor;
        Ok(())
    })
    .await?;
    report(
        "cache hit: list_tables page of 100, as JSON",
        hit,
        Some(1.0),
    );

    let pattern = cache_hits(&cache, 2_000, |snapshot| {
        let page = list_tables(
            snapshot,
            &ListRequest {
                pattern: Some("item_4*"),
                ..request
            },
        )?;
        serde_json::to_vec(&page)?;
        Ok(())
    })
    .await?;
    report(
        "cache hit: list_tables pattern item_4*, as JSON",
        pattern,
        Some(1.0),
    );

    let one = cache_hits(&cache, 2_000, |snapshot| {
        let text = prompt::table_text(snapshot.table("invoices", Some("wide"))?);
        anyhow::ensure!(text.contains("invoice_id"));
        Ok(())
    })
    .await?;
    report("cache hit: one table's prompt text", one, Some(1.0));

    let whole = cache_hits(&cache, 200, |snapshot| {
        anyhow::ensure!(prompt::schema_text(snapshot, BUDGET).len() <= BUDGET);
        Ok(())
    })
    .await?;
    report("schema:// text within 64 KB", whole, None);

    let mut client = Client::connect(&server.url).await?;
    let mut over_mcp = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        let page = client
            .call(
                "list_tables",
                json!({"pattern": format!("item_{}*", i % 5)}),
            )
            .await?;
        over_mcp.push(t.elapsed());
        assert!(page["count"].as_u64().unwrap_or(0) > 0);
    }
    report(
        "list_tables over MCP (HTTP, JSON-RPC, tenant)",
        over_mcp,
        None,
    );

    drop(server);
    nl_overhead(&WIDE, Some(with_database(app_url, WIDE_DB)?), 100).await
}

/// A schema the `query` tool is measured on: a question and the SQL the stub model answers.
struct Questions {
    label: &'static str,
    schemas: &'static [&'static str],
    question: &'static str,
    sql: &'static str,
}

const DEMO: Questions = Questions {
    label: "the demo schema",
    schemas: &[],
    question: "How many orders has each store had?",
    sql: "SELECT store_id, count(*) AS orders FROM retail.orders GROUP BY store_id",
};

const WIDE: Questions = Questions {
    label: "the 5,002-table schema",
    schemas: &["wide"],
    question: "How many invoices has each customer account received?",
    sql: "SELECT account_id, count(*) FROM wide.invoices GROUP BY account_id",
};

/// `calls` questions through the `query` tool of a server on `database_url` (default: the
/// environment's), against a stub model answering at once; the tool's own time per call
/// (everything but waiting for the model).
async fn nl_overhead(
    on: &Questions,
    database_url: Option<String>,
    calls: usize,
) -> anyhow::Result<()> {
    let reply = json!({"sql": on.sql, "explanation": "bench"}).to_string();
    let replies: Vec<&str> = std::iter::repeat_n(reply.as_str(), calls + 10).collect();
    let stub = stub_chat::StubChat::start(&replies).await;
    let server = Server::start(|c| {
        if let Some(url) = database_url {
            c.database_url = Some(url.into());
        }
        if !on.schemas.is_empty() {
            c.schemas = on.schemas.iter().map(|s| s.to_string()).collect();
        }
        stub_chat::use_stub(c, &stub);
    })
    .await?;
    let mut client = Client::connect(&server.url).await?;
    let ask = json!({ "question": on.question });
    for _ in 0..10 {
        client.call("query", ask.clone()).await?;
    }
    let mut overhead = Vec::new();
    let mut outside = Vec::new();
    let mut ranking = String::new();
    for _ in 0..calls {
        let t = Instant::now();
        let answer = client.call("query", ask.clone()).await?;
        let wall = t.elapsed();
        let ms = |field: &str| {
            answer[field]
                .as_f64()
                .ok_or_else(|| anyhow::anyhow!("the answer has no {field}: {answer}"))
        };
        let model = Duration::from_secs_f64(ms("model_ms")? / 1000.0);
        overhead.push(Duration::from_secs_f64(ms("overhead_ms")? / 1000.0));
        outside.push(wall.saturating_sub(model));
        ranking = answer["context_ranking"]
            .as_str()
            .unwrap_or("?")
            .to_string();
    }
    println!("query tool on {} (context ranking: {ranking})", on.label);
    report(
        "query: the tool's own time (overhead_ms)",
        overhead,
        Some(20.0),
    );
    report(
        "query: wall time less model time, over MCP",
        outside,
        Some(20.0),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    let admin_url = std::env::var("PG_MCP_ADMIN_DATABASE_URL").map_err(|_| {
        anyhow::anyhow!("set PG_MCP_ADMIN_DATABASE_URL (scripts/bench.sh schema does)")
    })?;
    let app_url = std::env::var("PG_MCP_DATABASE_URL")
        .map_err(|_| anyhow::anyhow!("set PG_MCP_DATABASE_URL (scripts/bench.sh schema does)"))?;
    nl_overhead(&DEMO, None, 300).await?;
    bench_cache(&admin_url, &app_url).await
}

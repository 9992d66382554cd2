//! Semantic search figures: local query-embedding latency, cache-hit latency, pgvector HNSW
//! search latency over 100,000 embeddings, the same through a declared source of 100,000 rows
//! under one tenant of ten (row-level security on the source and its embeddings, the server's
//! own search code as the application role), and `pg-mcp embed` throughput.
//!
//! Run with `scripts/bench.sh search` (or `cargo bench --bench search` with
//! PG_MCP_ADMIN_DATABASE_URL set and the model fetched).

use std::time::{Duration, Instant};

use pg_mcp::db::{AuthMethod, Tenant, TenantContext, TenantSigner, TxOptions, with_tenant_tx};
use pg_mcp::search::products::embed_catalogue;
use pg_mcp::search::sources;
use pg_mcp::search::store::SearchRequest;
use pg_mcp::search::{CachedEmbedder, Embedder, EmbeddingsConfig, Provider, build_embedder};
use pgvector::Vector;
use sqlx::postgres::PgPoolOptions;

const QUERIES: &[&str] = &[
    "waterproof electrical connectors",
    "cordless drill with two batteries",
    "garden hose 50 ft",
    "paint for a bathroom ceiling",
    "something to cut tree branches",
    "LED bulbs for the kitchen",
    "shelving for the garage",
    "safety glasses",
    "copper pipe fittings",
    "wood screws",
    "outdoor extension cord",
    "circular saw blade",
    "deck stain",
    "work gloves for winter",
    "motion sensor porch light",
    "drain snake",
    "adjustable wrench",
    "storage bins with lids",
    "sandpaper assortment",
    "smoke detector battery",
];

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx].as_secs_f64() * 1000.0
}

fn report(name: &str, mut samples: Vec<Duration>, target: Option<(f64, &str)>) {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let line = format!(
        "{name:<40} n={:<5} p50={p50:>9.4} ms  p90={:>9.4} ms  p99={:>9.4} ms",
        samples.len(),
        percentile(&samples, 0.9),
        percentile(&samples, 0.99)
    );
    match target {
        Some((limit, label)) => println!(
            "{line}  target {label}: {}",
            if p50 < limit { "PASS" } else { "FAIL" }
        ),
        None => println!("{line}"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    pg_mcp::telemetry::install_crypto_provider();
    let admin_url = std::env::var("PG_MCP_ADMIN_DATABASE_URL").map_err(|_| {
        anyhow::anyhow!("set PG_MCP_ADMIN_DATABASE_URL (scripts/bench.sh search does)")
    })?;
    let model_dir = std::env::var("PG_MCP_LOCAL_MODEL_DIR")
        .unwrap_or_else(|_| ".cache/models/all-MiniLM-L6-v2".into());
    let cfg = EmbeddingsConfig {
        provider: Provider::Local,
        local_model_dir: model_dir.into(),
        ..Default::default()
    };
    let local = build_embedder(&cfg)?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect(&admin_url)
        .await?;
    println!(
        "== semantic search benchmark ({} logical CPUs) ==",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    // 1. Query embedding latency, local model, one sentence at a time, never cached.
    local.embed(&["warm up".to_string()]).await?;
    let mut samples = Vec::new();
    for round in 0..3 {
        for q in QUERIES {
            let text = format!("{q} {round}");
            let t = Instant::now();
            local.embed(std::slice::from_ref(&text)).await?;
            samples.push(t.elapsed());
        }
    }
    report(
        "query embedding (local, uncached)",
        samples,
        Some((30.0, "p50 < 30 ms")),
    );

    // 2. Cache hit latency.
    let cached = CachedEmbedder::new(local.clone(), 1000);
    cached.embed_one(QUERIES[0]).await?;
    let mut samples = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        cached.embed_one(QUERIES[0]).await?;
        samples.push(t.elapsed());
    }
    report("query embedding (cache hit)", samples, None);

    // 3. HNSW search over 100,000 embeddings: the catalogue's real vectors, perturbed, in a
    //    bench table with the same index and query shape as retail.product_description_embeddings.
    let base: Vec<Vec<f32>> = sqlx::query_scalar::<_, Vector>("SELECT embedding FROM retail.product_description_embeddings WHERE model = $1 ORDER BY product_id")
        .bind(local.model())
        .fetch_all(&pool)
        .await?
        .into_iter()
        .map(Vec::from)
        .collect();
    anyhow::ensure!(!base.is_empty(), "run `pg-mcp embed` first");
    let exists: bool = sqlx::query_scalar("SELECT count(*) = 100000 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, LATERAL (SELECT count(*) FROM pgmcp_bench.vectors) v WHERE n.nspname = 'pgmcp_bench' AND c.relname = 'vectors_hnsw'")
        .fetch_optional(&pool)
        .await
        .ok()
        .flatten()
        .unwrap_or(false);
    if !exists {
        println!("building pgmcp_bench.vectors (100,000 x 384) and its HNSW index ...");
        sqlx::raw_sql("DROP SCHEMA IF EXISTS pgmcp_bench CASCADE; CREATE SCHEMA pgmcp_bench; CREATE TABLE pgmcp_bench.vectors (id int PRIMARY KEY, model text NOT NULL, embedding vector NOT NULL)")
            .execute(&pool)
            .await?;
        let mut noise = Perturber::new(0x9e37_79b9_7f4a_7c15);
        let mut conn = pool.acquire().await?;
        // Binary vectors, 5,000 a statement: an array of ids and one of vectors, unnested.
        for start in (0..100_000).step_by(5_000) {
            let ids: Vec<i32> = (start..start + 5_000).collect();
            let vectors: Vec<Vector> = ids
                .iter()
                .map(|id| noise.copy_of(&base, *id as usize))
                .collect();
            sqlx::query("INSERT INTO pgmcp_bench.vectors (id, model, embedding) SELECT id, 'all-MiniLM-L6-v2', embedding FROM unnest($1::int4[], $2::vector[]) AS t(id, embedding)")
                .bind(ids)
                .bind(vectors)
                .execute(&mut *conn)
                .await?;
        }
        let t = Instant::now();
        sqlx::raw_sql("SET maintenance_work_mem = '512MB'; CREATE INDEX vectors_hnsw ON pgmcp_bench.vectors USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE model = 'all-MiniLM-L6-v2'; ANALYZE pgmcp_bench.vectors")
            .execute(&mut *conn)
            .await?;
        println!("HNSW index built in {:.1} s", t.elapsed().as_secs_f64());
    }
    let mut vectors = Vec::new();
    for q in QUERIES {
        vectors.push(Vector::from(local.embed_one(q).await?));
    }
    let mut conn = pool.acquire().await?;
    let mut samples = Vec::new();
    for round in 0..10 {
        for v in &vectors {
            let t = Instant::now();
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("SELECT set_config('hnsw.ef_search', '100', true), set_config('hnsw.iterative_scan', 'relaxed_order', true)")
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "SELECT id, 1 - ((embedding::vector(384)) <=> $1::vector(384)) AS similarity FROM pgmcp_bench.vectors \
                  WHERE model = 'all-MiniLM-L6-v2' AND (embedding::vector(384)) <=> $1::vector(384) <= 0.7 \
                  ORDER BY (embedding::vector(384)) <=> $1::vector(384) LIMIT 20",
            )
            .bind(v)
            .fetch_all(&mut *tx)
            .await?;
            tx.rollback().await?;
            if round > 0 {
                samples.push(t.elapsed());
            }
            anyhow::ensure!(!rows.is_empty(), "the search found nothing");
        }
    }
    let plan: Vec<String> = sqlx::query_scalar("EXPLAIN SELECT id FROM pgmcp_bench.vectors WHERE model = 'all-MiniLM-L6-v2' ORDER BY (embedding::vector(384)) <=> $1::vector(384) LIMIT 20")
        .bind(&vectors[0])
        .fetch_all(&mut *conn)
        .await?;
    println!(
        "plan: {}",
        plan.iter()
            .find(|l| l.contains("Index"))
            .map(|s| s.trim())
            .unwrap_or("(no index scan!)")
    );
    report(
        "vector search, 100k embeddings (HNSW)",
        samples,
        Some((10.0, "p50 < 10 ms")),
    );
    drop(conn);

    // 3b. The same through a declared source (PG_MCP_EMBEDDING_SOURCES) under a tenant: the
    //     server's own search code in a tenant transaction as the application role, where both
    //     the source's policy and its embeddings' policy filter the candidates.
    declared_source(&pool, &base, &vectors).await?;

    // 4. `pg-mcp embed` throughput over the catalogue (recomputes the same vectors).
    let t = Instant::now();
    let r = embed_catalogue(&pool, local.as_ref(), 64, true, |_, _| {}).await?;
    println!(
        "pg-mcp embed throughput                  {} products in {:.2} s = {:.0} products/s",
        r.embedded,
        t.elapsed().as_secs_f64(),
        r.embedded as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Perturbed, normalised copies of real embeddings, from a fixed xorshift sequence (the same
/// vectors on every run).
struct Perturber(u64);

impl Perturber {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Noise in [-0.04, 0.04).
    fn noise(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.08
    }

    /// A perturbed copy of `base[i % base.len()]`, normalised to unit length.
    fn copy_of(&mut self, base: &[Vec<f32>], i: usize) -> Vector {
        let v: Vec<f32> = base[i % base.len()]
            .iter()
            .map(|x| x + self.noise())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        Vector::from(v.iter().map(|x| x / norm).collect::<Vec<f32>>())
    }
}

/// The bench's declared source: 100,000 articles of 10 organizations, 10,000 each.
const BENCH_SOURCE: &str = r#"[{"name": "bench_docs", "table": "pgmcp_bench_src.docs", "key": "doc_id", "text": ["title"], "columns": ["doc_id", "org_id", "title"]}]"#;

async fn declared_source(
    admin: &sqlx::PgPool,
    base: &[Vec<f32>],
    queries: &[Vector],
) -> anyhow::Result<()> {
    let source = sources::parse(BENCH_SOURCE)
        .map_err(anyhow::Error::msg)?
        .remove(0);
    let model = "all-MiniLM-L6-v2";
    let ready: bool = sqlx::query_scalar(
        "SELECT count(*) = 100000 FROM pgmcp_embeddings.src_bench_docs WHERE model = 'all-MiniLM-L6-v2'",
    )
    .fetch_one(admin)
    .await
    .unwrap_or(false);
    if !ready {
        println!("building source bench_docs (100,000 rows of 10 organizations, under RLS) ...");
        sqlx::raw_sql(
            "DROP SCHEMA IF EXISTS pgmcp_bench_src CASCADE;
             DROP TABLE IF EXISTS pgmcp_embeddings.src_bench_docs;
             CREATE SCHEMA pgmcp_bench_src;
             CREATE TABLE pgmcp_bench_src.docs (doc_id bigint PRIMARY KEY, org_id bigint NOT NULL, title text NOT NULL);
             INSERT INTO pgmcp_bench_src.docs SELECT g, g % 10, 'article ' || g FROM generate_series(0, 99999) g;
             ALTER TABLE pgmcp_bench_src.docs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
             CREATE POLICY by_org ON pgmcp_bench_src.docs USING (org_id = (SELECT pgmcp.tenant_id())::bigint);
             GRANT USAGE ON SCHEMA pgmcp_bench_src TO pgmcp_app;
             GRANT SELECT ON pgmcp_bench_src.docs TO pgmcp_app;
             ANALYZE pgmcp_bench_src.docs;",
        )
        .execute(admin)
        .await?;
        sources::ensure_store(admin, &source).await?;
        // The catalogue's vectors, perturbed (as in part 3): 5,000 a statement. Row i copies
        // product i mod 500 and belongs to organization i mod 10, so each product's copies all
        // belong to one organization: most of a query's nearest neighbours are another
        // tenant's, the hard case for a filtered HNSW scan.
        let mut noise = Perturber::new(0x2545_f491_4f6c_dd1d);
        for start in (0..100_000i64).step_by(5_000) {
            let ids: Vec<i64> = (start..start + 5_000).collect();
            let vectors: Vec<Vector> = ids
                .iter()
                .map(|id| noise.copy_of(base, *id as usize))
                .collect();
            sqlx::query(
                "INSERT INTO pgmcp_embeddings.src_bench_docs (source_key, model, dimensions, embedding, source_hash) \
                 SELECT k, $3, 384, e, '' FROM unnest($1::int8[], $2::vector[]) AS t(k, e)",
            )
            .bind(ids)
            .bind(vectors)
            .bind(model)
            .execute(admin)
            .await?;
        }
        let t = Instant::now();
        sqlx::raw_sql("SET maintenance_work_mem = '512MB'")
            .execute(admin)
            .await?;
        sources::ensure_index(admin, &source, model, 384).await?;
        println!(
            "HNSW index of the source built in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }

    let app_url = std::env::var("PG_MCP_DATABASE_URL").map_err(|_| {
        anyhow::anyhow!(
            "set PG_MCP_DATABASE_URL, the application role (scripts/bench.sh search does)"
        )
    })?;
    let key = std::env::var("PG_MCP_TENANT_SIGNING_KEY").map_err(|_| {
        anyhow::anyhow!("set PG_MCP_TENANT_SIGNING_KEY (scripts/bench.sh search does)")
    })?;
    let app = PgPoolOptions::new()
        .max_connections(1)
        .connect(&app_url)
        .await?;
    let signer = TenantSigner::new(key);
    let opts = TxOptions {
        read_only: true,
        commit: false,
        statement_timeout: Duration::from_secs(30),
        lock_timeout: Duration::from_secs(5),
    };
    let tenant = Tenant {
        context: TenantContext::tenant("3"),
        subject: None,
        auth: AuthMethod::Header,
        may_write: false,
    };
    let mut samples = Vec::new();
    let mut foreign = 0;
    for round in 0..10 {
        for v in queries {
            let query_vector = v.to_vec();
            let req = SearchRequest {
                model,
                query_vector: &query_vector,
                max_rows: 20,
                similarity_threshold: 30.0,
                ef_search: 100,
            };
            let t = Instant::now();
            let rows = with_tenant_tx(&app, &tenant, &signer, &opts, async |conn| {
                sources::search(conn, &source, &req)
                    .await
                    .map_err(|e| pg_mcp::error::AppError::internal(e.to_string()))
            })
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            if round > 0 {
                samples.push(t.elapsed());
            }
            anyhow::ensure!(
                rows.len() == 20,
                "the tenant's search found {} rows, not 20",
                rows.len()
            );
            foreign += rows
                .iter()
                .filter(|r| r["row"]["org_id"] != serde_json::json!(3))
                .count();
        }
    }
    anyhow::ensure!(foreign == 0, "{foreign} rows of other organizations");
    report(
        "declared source, 100k rows, one org of 10 (RLS, HNSW)",
        samples,
        Some((10.0, "p50 < 10 ms")),
    );
    Ok(())
}

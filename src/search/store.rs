//! What every embeddings table of pg-mcp shares (the demo's product embeddings and the
//! declared sources'): rows keyed by (key, model) in an untyped `vector` column, a partial
//! HNSW cosine index per model on `embedding::vector(<dims>)`, batched upserts that skip
//! unchanged text by hash, and the transaction-local search settings.

use pgvector::Vector;
use sha2::{Digest, Sha256};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};

use super::Embedder;

/// One search, validated by its tool.
pub struct SearchRequest<'a> {
    pub model: &'a str,
    pub query_vector: &'a [f32],
    pub max_rows: usize,
    /// 0–100: minimum cosine similarity in percent.
    pub similarity_threshold: f64,
    pub ef_search: u32,
}

impl SearchRequest<'_> {
    /// The largest cosine distance the threshold admits.
    pub fn max_distance(&self) -> f64 {
        1.0 - self.similarity_threshold / 100.0
    }
}

/// Transaction-local: a bigger candidate list, and iterative scans so the tenant's policies and
/// the threshold do not starve the LIMIT.
pub async fn set_search_settings(
    conn: &mut PgConnection,
    req: &SearchRequest<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "SELECT set_config('hnsw.ef_search', $1, true), set_config('hnsw.iterative_scan', 'relaxed_order', true)",
    )
    .bind(req.ef_search.max(req.max_rows as u32).to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Runs a nearest-neighbour query whose parameters are `$1` the query vector, `$2` the row
/// limit and `$3` the largest distance.
pub async fn nearest(
    conn: &mut PgConnection,
    sql: String,
    req: &SearchRequest<'_>,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql))
        .bind(Vector::from(req.query_vector.to_vec()))
        .bind(req.max_rows as i64)
        .bind(req.max_distance())
        .fetch_all(&mut *conn)
        .await
}

/// The hash that marks a row's embedding as current: the model and the embedded text.
pub fn text_hash(model: &str, text: &str) -> String {
    hex::encode(Sha256::digest(format!("{model}\n{text}").as_bytes()))
}

/// A name for a model's index: `prefix`, a digest of the model, the dimensions.
pub fn index_name(prefix: &str, model: &str, dims: usize) -> String {
    let digest = Sha256::digest(model.as_bytes());
    format!("{prefix}_hnsw_{}_{dims}", hex::encode(&digest[..6]))
}

/// Rows whose embedding is missing or stale: `(key as text, text, hash)`.
pub type Pending = Vec<(String, String, String)>;

/// The `(key, text, stored hash)` rows that need embedding, given the model.
pub fn pending(
    model: &str,
    rows: impl IntoIterator<Item = (String, String, Option<String>)>,
) -> (usize, Pending) {
    let mut total = 0;
    let mut todo = Vec::new();
    for (key, text, stored) in rows {
        total += 1;
        let hash = text_hash(model, &text);
        if stored.as_deref() != Some(hash.as_str()) {
            todo.push((key, text, hash));
        }
    }
    (total, todo)
}

/// Embeds `todo` in batches of `batch_size`, each committed on its own (a run that stops
/// resumes where it stopped), with `upsert` binding `(key as text, model, dimensions, vector,
/// hash)`. `progress(done, total)` after each batch, counting from `done`. Returns the
/// dimensions of the vectors written (the embedder's own when there was nothing to do).
pub async fn embed_pending(
    pool: &PgPool,
    embedder: &dyn Embedder,
    batch_size: usize,
    upsert: &str,
    todo: &Pending,
    (mut done, total): (usize, usize),
    progress: impl Fn(usize, usize),
) -> anyhow::Result<usize> {
    let model = embedder.model();
    let mut dimensions = embedder.dimensions();
    progress(done, total);
    for chunk in todo.chunks(batch_size.max(1)) {
        let texts: Vec<String> = chunk.iter().map(|(_, t, _)| t.clone()).collect();
        let vectors = embedder.embed(&texts).await?;
        anyhow::ensure!(
            vectors.len() == chunk.len(),
            "the embeddings provider returned {} vectors for {} texts",
            vectors.len(),
            chunk.len()
        );
        let mut tx = pool.begin().await?;
        for ((key, _, hash), vector) in chunk.iter().zip(vectors) {
            dimensions = vector.len();
            sqlx::query(AssertSqlSafe(upsert.to_string()))
                .bind(key)
                .bind(model)
                .bind(vector.len() as i32)
                .bind(Vector::from(vector))
                .bind(hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        done += chunk.len();
        progress(done, total);
    }
    Ok(dimensions)
}

/// Creates the model's partial HNSW cosine index on `table` (quoted SQL) if missing, then
/// refreshes the planner's statistics. The name and the model are quoted server-side.
pub async fn ensure_index(
    pool: &PgPool,
    table: &str,
    index: &str,
    model: &str,
    dims: usize,
) -> anyhow::Result<()> {
    let ddl: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT format('CREATE INDEX IF NOT EXISTS %I ON {table} \
                        USING hnsw ((embedding::vector(%s)) vector_cosine_ops) WHERE model = %L', $1::text, $2::int, $3::text)"
    )))
    .bind(index)
    .bind(dims as i32)
    .bind(model)
    .fetch_one(pool)
    .await?;
    sqlx::raw_sql(AssertSqlSafe(ddl)).execute(pool).await?;
    sqlx::raw_sql(AssertSqlSafe(format!("ANALYZE {table}")))
        .execute(pool)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_text_is_not_pending() {
        let current = text_hash("m", "same");
        let (total, todo) = pending(
            "m",
            [
                ("1".to_string(), "same".to_string(), Some(current)),
                ("2".to_string(), "new".to_string(), None),
                (
                    "3".to_string(),
                    "edited".to_string(),
                    Some(text_hash("m", "old")),
                ),
            ],
        );
        assert_eq!(total, 3);
        let keys: Vec<&str> = todo.iter().map(|(k, _, _)| k.as_str()).collect();
        assert_eq!(keys, ["2", "3"]);
        assert_ne!(text_hash("m", "x"), text_hash("other model", "x"));
    }

    #[test]
    fn index_names_differ_by_model_and_dimensions() {
        assert!(index_name("pde", "text-embedding-3-small", 1536).starts_with("pde_hnsw_"));
        assert_ne!(index_name("p", "a", 3), index_name("p", "b", 3));
        assert_ne!(index_name("p", "a", 3), index_name("p", "a", 4));
    }
}

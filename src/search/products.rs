//! Product embeddings in PostgreSQL: computing them for the catalogue (`pg-mcp embed`) and
//! searching them with pgvector (the `semantic_search_products` tool).
//!
//! Rows are keyed by (product, model), so changing the model needs no schema change. Each
//! model gets its own partial HNSW index on `embedding::vector(<dims>)` with cosine distance;
//! the search query repeats that exact expression and the model as a literal so the planner
//! can always use the index (a bound parameter would hide the partial-index predicate from
//! generic plans).

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};

use super::store::{self, SearchRequest};
use super::{EmbedError, Embedder};

/// The text embedded for a product: what a shopper would search for.
pub fn product_text(name: &str, category: &str, product_type: &str, description: &str) -> String {
    format!("{name}. {category}, {product_type}. {description}")
}

/// A SQL string literal (standard_conforming_strings is on in every supported PostgreSQL).
pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[derive(Debug, Clone)]
pub struct EmbedReport {
    pub model: String,
    pub dimensions: usize,
    pub products: usize,
    pub embedded: usize,
    pub unchanged: usize,
    pub elapsed: Duration,
}

/// Computes missing or stale embeddings of the configured model: batched, resumable (each
/// batch commits), idempotent (a source hash skips unchanged products). `rebuild` deletes
/// the model's rows first. `progress(done, total)` is called after each batch.
pub async fn embed_catalogue(
    pool: &PgPool,
    embedder: &dyn Embedder,
    batch_size: usize,
    rebuild: bool,
    progress: impl Fn(usize, usize),
) -> anyhow::Result<EmbedReport> {
    let started = Instant::now();
    let model = embedder.model().to_string();
    if rebuild {
        sqlx::query("DELETE FROM retail.product_description_embeddings WHERE model = $1")
            .bind(&model)
            .execute(pool)
            .await?;
    }
    let rows = sqlx::query(
        "SELECT p.product_id::text, p.product_name, c.category_name, t.type_name, p.product_description, e.source_hash \
           FROM retail.products p \
           JOIN retail.categories c ON c.category_id = p.category_id \
           JOIN retail.product_types t ON t.type_id = p.type_id \
           LEFT JOIN retail.product_description_embeddings e ON e.product_id = p.product_id AND e.model = $1 \
          ORDER BY p.product_id",
    )
    .bind(&model)
    .fetch_all(pool)
    .await?;
    let (total, todo) = store::pending(
        &model,
        rows.iter().map(|row| {
            let text = product_text(row.get(1), row.get(2), row.get(3), row.get(4));
            (row.get(0), text, row.get(5))
        }),
    );
    let unchanged = total - todo.len();
    let dimensions = store::embed_pending(
        pool,
        embedder,
        batch_size,
        "INSERT INTO retail.product_description_embeddings (product_id, model, dimensions, embedding, source_hash) \
         VALUES ($1::int, $2, $3, $4, $5) \
         ON CONFLICT (product_id, model) DO UPDATE \
           SET dimensions = EXCLUDED.dimensions, embedding = EXCLUDED.embedding, \
               source_hash = EXCLUDED.source_hash, created_at = now()",
        &todo,
        (unchanged, total),
        progress,
    )
    .await?;
    ensure_index(pool, &model, dimensions).await?;
    Ok(EmbedReport {
        model,
        dimensions,
        products: total,
        embedded: todo.len(),
        unchanged,
        elapsed: started.elapsed(),
    })
}

/// Creates the model's HNSW cosine index if missing.
pub async fn ensure_index(pool: &PgPool, model: &str, dims: usize) -> anyhow::Result<()> {
    store::ensure_index(
        pool,
        "retail.product_description_embeddings",
        &store::index_name("pde", model, dims),
        model,
        dims,
    )
    .await
}

/// Nearest products by cosine similarity, on a connection inside the caller's tenant
/// transaction. Stock comes from `retail.inventory`, which RLS filters to the caller's stores.
pub async fn search(
    conn: &mut PgConnection,
    req: &SearchRequest<'_>,
) -> Result<Vec<Value>, sqlx::Error> {
    store::set_search_settings(conn, req).await?;
    let dims = req.query_vector.len();
    let sql = format!(
        "WITH nearest AS MATERIALIZED ( \
             SELECT e.product_id, (e.embedding::vector({dims})) <=> $1::vector({dims}) AS distance \
               FROM retail.product_description_embeddings e \
              WHERE e.model = {model} \
                AND (e.embedding::vector({dims})) <=> $1::vector({dims}) <= $3 \
              ORDER BY (e.embedding::vector({dims})) <=> $1::vector({dims}) \
              LIMIT $2) \
         SELECT p.product_id, p.product_name, p.product_description, c.category_name, t.type_name, \
                p.base_price::text, round(((1 - n.distance) * 100)::numeric, 2)::float8 AS similarity_percent, \
                s.stock_level, s.stores_with_stock \
           FROM nearest n \
           JOIN retail.products p ON p.product_id = n.product_id \
           JOIN retail.categories c ON c.category_id = p.category_id \
           JOIN retail.product_types t ON t.type_id = p.type_id \
           LEFT JOIN LATERAL ( \
               SELECT sum(i.stock_level)::int8 AS stock_level, count(*) FILTER (WHERE i.stock_level > 0) AS stores_with_stock \
                 FROM retail.inventory i WHERE i.product_id = p.product_id) s ON true \
          ORDER BY n.distance",
        model = sql_literal(req.model),
    );
    let rows = store::nearest(conn, sql, req).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let stock: Option<i64> = r.get(7);
            json!({
                "product_id": r.get::<i32, _>(0),
                "product_name": r.get::<String, _>(1),
                "description": r.get::<String, _>(2),
                "category": r.get::<String, _>(3),
                "product_type": r.get::<String, _>(4),
                "price": r.get::<String, _>(5),
                "similarity_percent": r.get::<f64, _>(6),
                // Stock in the stores this tenant may see (RLS); null when it sees none.
                "stock_level": stock,
                "stores_with_stock": if stock.is_some() { Some(r.get::<i64, _>(8)) } else { None },
            })
        })
        .collect())
}

/// Maps a provider failure to a clear reason.
pub fn describe(e: &EmbedError) -> String {
    format!("the embeddings provider failed: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(sql_literal("it's"), "'it''s'");
    }
}

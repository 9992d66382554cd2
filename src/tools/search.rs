//! `semantic_search_products`: products whose descriptions are closest in meaning to the
//! caller's words (pgvector cosine similarity), under the caller's tenant transaction.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{AppError, ErrorCode, Result};
use crate::search::Embedder;
use crate::search::products::{self, SearchRequest};
use crate::tools::Call;

fn default_max_rows() -> usize {
    20
}

fn default_threshold() -> f64 {
    30.0
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SemanticSearchArgs {
    /// What the shopper is looking for, in plain words, e.g. "waterproof electrical connectors".
    pub query_description: String,
    /// Maximum products to return (1–100, default 20).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Minimum similarity in percent (0–100, default 30).
    #[serde(default = "default_threshold")]
    pub similarity_threshold: f64,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

pub async fn semantic_search_products(call: &Call<'_>, args: SemanticSearchArgs) -> Result<Value> {
    let state = call.state;
    let query = args.query_description.trim();
    if query.is_empty() {
        return Err(AppError::validation("query_description must not be empty"));
    }
    if query.chars().count() > 2_000 {
        return Err(AppError::validation(
            "query_description is limited to 2000 characters",
        ));
    }
    if args.max_rows == 0 {
        return Err(AppError::validation("max_rows must be at least 1"));
    }
    let max_rows = args.max_rows.min(100);
    if !(0.0..=100.0).contains(&args.similarity_threshold) {
        return Err(AppError::validation(
            "similarity_threshold is a percentage between 0 and 100",
        ));
    }
    let db = call.database(args.database.as_deref())?;
    let embedder = state.embedder().await?;

    let started = Instant::now();
    let vector = embedder
        .embed_one(query)
        .await
        .map_err(|e| AppError::new(ErrorCode::EmbeddingError, products::describe(&e)))?;
    let embedding_ms = started.elapsed().as_secs_f64() * 1000.0;

    let request = SearchRequest {
        model: embedder.model(),
        query_vector: &vector,
        max_rows,
        similarity_threshold: args.similarity_threshold,
        ef_search: state.config.embeddings.hnsw_ef_search,
    };
    let limit_ms = state.tx_options().statement_timeout_ms();
    let rows = call
        .tx(&db, async |tx| {
            products::search(tx, &request)
                .await
                .map_err(|e| AppError::from_sqlx(e, limit_ms))
        })
        .await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    Ok(json!({
        "query": query,
        "model": embedder.model(),
        "similarity_threshold": args.similarity_threshold,
        "products": rows,
        "row_count": rows.len(),
        "embedding_ms": (embedding_ms * 1000.0).round() / 1000.0,
        "duration_ms": (duration_ms * 1000.0).round() / 1000.0,
    }))
}

//! Semantic search under the caller's tenant transaction (pgvector cosine similarity):
//! `semantic_search` over the operator's declared sources, and the demo's
//! `semantic_search_products` over the retail catalogue.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{AppError, ErrorCode, Result};
use crate::search::Embedder;
use crate::search::products;
use crate::search::sources;
use crate::search::store::SearchRequest;
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

#[derive(Debug, Deserialize, JsonSchema)]
pub struct SourceSearchArgs {
    /// The declared source to search (an unknown name's error lists the sources).
    pub source: String,
    /// What to look for, in plain words.
    pub query: String,
    /// Maximum rows to return (1–100, default 20).
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Minimum similarity in percent (0–100, default 30).
    #[serde(default = "default_threshold")]
    pub similarity_threshold: f64,
    /// Configured database name; omit for the default database.
    pub database: Option<String>,
}

/// The checked query text and limits shared by both search tools.
fn checked<'a>(
    field: &str,
    text: &'a str,
    max_rows: usize,
    threshold: f64,
) -> Result<(&'a str, usize)> {
    let text = text.trim();
    if text.is_empty() {
        return Err(AppError::validation(format!("{field} must not be empty")));
    }
    if text.chars().count() > 2_000 {
        return Err(AppError::validation(format!(
            "{field} is limited to 2000 characters"
        )));
    }
    if max_rows == 0 {
        return Err(AppError::validation("max_rows must be at least 1"));
    }
    if !(0.0..=100.0).contains(&threshold) {
        return Err(AppError::validation(
            "similarity_threshold is a percentage between 0 and 100",
        ));
    }
    Ok((text, max_rows.min(100)))
}

/// A query's vector, with the model that made it and how long the provider took.
struct QueryVector {
    model: String,
    vector: Vec<f32>,
    embedding_ms: f64,
}

impl QueryVector {
    /// Embeds `text` with the configured provider.
    async fn embed(call: &Call<'_>, text: &str) -> Result<Self> {
        let embedder = call.state.embedder().await?;
        let started = Instant::now();
        let vector = embedder
            .embed_one(text)
            .await
            .map_err(|e| AppError::new(ErrorCode::EmbeddingError, products::describe(&e)))?;
        Ok(Self {
            model: embedder.model().to_string(),
            vector,
            embedding_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// The search for this vector, with the server's HNSW setting.
    fn request(&self, call: &Call<'_>, max_rows: usize, threshold: f64) -> SearchRequest<'_> {
        SearchRequest {
            model: &self.model,
            query_vector: &self.vector,
            max_rows,
            similarity_threshold: threshold,
            ef_search: call.config.embeddings.hnsw_ef_search,
        }
    }
}

/// The answer of `semantic_search`.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct SourceSearchOutput {
    pub source: String,
    pub query: String,
    /// The embeddings model that embedded the query.
    pub model: String,
    pub similarity_threshold: f64,
    /// Nearest first: each with key, similarity_percent and the source's columns.
    pub rows: Vec<Value>,
    pub row_count: usize,
    pub embedding_ms: f64,
    pub search_ms: f64,
}

/// The answer of `semantic_search_products`.
#[derive(Debug, serde::Serialize, JsonSchema)]
pub struct ProductSearchOutput {
    pub query: String,
    pub model: String,
    pub similarity_threshold: f64,
    /// Nearest first: product, similarity_percent, category, type, price, stock.
    pub products: Vec<Value>,
    pub row_count: usize,
    pub embedding_ms: f64,
    pub duration_ms: f64,
}

fn ms(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

pub async fn semantic_search(call: &Call<'_>, args: SourceSearchArgs) -> Result<Value> {
    let state = call.state;
    let (query, max_rows) = checked(
        "query",
        &args.query,
        args.max_rows,
        args.similarity_threshold,
    )?;
    let source = state
        .sources
        .iter()
        .find(|s| s.spec.name == args.source.trim())
        .ok_or_else(|| {
            let known: Vec<Value> = state
                .sources
                .iter()
                .map(|s| json!({ "source": s.spec.name, "description": s.spec.description }))
                .collect();
            let message = if known.is_empty() {
                "no embedding sources are configured (PG_MCP_EMBEDDING_SOURCES)".to_string()
            } else {
                format!("unknown source {:?}; see details.sources", args.source)
            };
            AppError::new(ErrorCode::ValidationError, message)
                .with_details(json!({ "sources": known }))
        })?;
    let db = call.database(args.database.as_deref())?;
    let embedded = QueryVector::embed(call, query).await?;
    let started = Instant::now();
    let request = embedded.request(call, max_rows, args.similarity_threshold);
    let limit_ms = call.tx_options().statement_timeout_ms();
    let rows = call
        .tx(&db, async |tx| {
            sources::search(tx, source, &request)
                .await
                .map_err(|e| match e {
                    sources::SearchError::Database(e) => AppError::from_sqlx(e, limit_ms),
                    other => AppError::validation(other.to_string()),
                })
        })
        .await?;
    crate::tools::to_json(SourceSearchOutput {
        source: source.spec.name.clone(),
        query: query.to_string(),
        model: embedded.model.to_string(),
        similarity_threshold: args.similarity_threshold,
        row_count: rows.len(),
        rows,
        embedding_ms: ms(embedded.embedding_ms),
        search_ms: ms(started.elapsed().as_secs_f64() * 1000.0),
    })
}

pub async fn semantic_search_products(call: &Call<'_>, args: SemanticSearchArgs) -> Result<Value> {
    let (query, max_rows) = checked(
        "query_description",
        &args.query_description,
        args.max_rows,
        args.similarity_threshold,
    )?;
    let db = call.database(args.database.as_deref())?;
    let started = Instant::now();
    let embedded = QueryVector::embed(call, query).await?;
    let request = embedded.request(call, max_rows, args.similarity_threshold);
    let limit_ms = call.tx_options().statement_timeout_ms();
    let rows = call
        .tx(&db, async |tx| {
            products::search(tx, &request)
                .await
                .map_err(|e| AppError::from_sqlx(e, limit_ms))
        })
        .await?;
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    crate::tools::to_json(ProductSearchOutput {
        query: query.to_string(),
        model: embedded.model.to_string(),
        similarity_threshold: args.similarity_threshold,
        row_count: rows.len(),
        products: rows,
        embedding_ms: ms(embedded.embedding_ms),
        duration_ms: ms(duration_ms),
    })
}

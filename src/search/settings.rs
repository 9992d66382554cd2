//! Embeddings settings as CLI flags / `PG_MCP_*` variables, shared by `serve`, `stdio` and
//! `embed`.

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::{EmbedError, EmbeddingsConfig, Provider};

#[derive(Args, Clone, Debug)]
pub struct EmbeddingSettings {
    /// Embeddings provider: local (bundled all-MiniLM-L6-v2), openai, compatible, azure, disabled.
    #[arg(long, env = "PG_MCP_EMBEDDINGS_PROVIDER", value_enum, ignore_case = true, default_value_t = Provider::Local)]
    pub embeddings_provider: Provider,

    /// Model name (default: all-MiniLM-L6-v2 locally, text-embedding-3-small for OpenAI;
    /// for Azure the deployment decides).
    #[arg(long, env = "PG_MCP_EMBEDDINGS_MODEL")]
    pub embeddings_model: Option<String>,

    /// Vector dimensions (OpenAI text-embedding-3 models can shorten their vectors).
    #[arg(long, env = "PG_MCP_EMBEDDINGS_DIMENSIONS")]
    pub embeddings_dimensions: Option<usize>,

    /// API key for openai / azure / a compatible server that needs one.
    #[arg(long, env = "PG_MCP_EMBEDDINGS_API_KEY", hide_env_values = true, value_parser = |s: &str| Ok::<_, std::convert::Infallible>(SecretString::from(s)))]
    pub embeddings_api_key: Option<SecretString>,

    /// Base URL of an OpenAI-compatible server (e.g. http://localhost:11434/v1 for Ollama).
    #[arg(long, env = "PG_MCP_EMBEDDINGS_BASE_URL")]
    pub embeddings_base_url: Option<String>,

    /// Azure OpenAI endpoint, e.g. https://myres.openai.azure.com.
    #[arg(long, env = "PG_MCP_AZURE_OPENAI_ENDPOINT")]
    pub azure_openai_endpoint: Option<String>,

    /// Azure OpenAI embeddings deployment name.
    #[arg(long, env = "PG_MCP_AZURE_OPENAI_DEPLOYMENT")]
    pub azure_openai_deployment: Option<String>,

    /// Azure OpenAI API version.
    #[arg(long, env = "PG_MCP_AZURE_OPENAI_API_VERSION")]
    pub azure_openai_api_version: Option<String>,

    /// Per-request timeout of remote embedding calls.
    #[arg(long, env = "PG_MCP_EMBEDDINGS_TIMEOUT_MS", default_value_t = 10_000)]
    pub embeddings_timeout_ms: u64,

    /// Retries (with backoff) on 429 and 5xx.
    #[arg(long, env = "PG_MCP_EMBEDDINGS_MAX_RETRIES", default_value_t = 3)]
    pub embeddings_max_retries: u32,

    /// Texts per request when embedding the catalogue.
    #[arg(long, env = "PG_MCP_EMBEDDINGS_BATCH_SIZE", default_value_t = 64)]
    pub embeddings_batch_size: usize,

    /// Directory of the local model (model.safetensors, tokenizer.json, config.json).
    #[arg(
        long,
        env = "PG_MCP_LOCAL_MODEL_DIR",
        default_value = ".cache/models/all-MiniLM-L6-v2"
    )]
    pub local_model_dir: PathBuf,

    /// Query embeddings kept in the LRU cache.
    #[arg(long, env = "PG_MCP_EMBEDDING_CACHE_SIZE", default_value_t = 1000)]
    pub embedding_cache_size: usize,

    /// HNSW candidate list size for searches (`hnsw.ef_search`, transaction-local).
    #[arg(long, env = "PG_MCP_HNSW_EF_SEARCH", default_value_t = 100)]
    pub hnsw_ef_search: u32,

    /// Tables of the database to search by meaning (the `semantic_search` tool), as a JSON
    /// array of sources: `{"name", "table": "schema.table", "key", "text": [columns]}`, or
    /// `"vector_column"` instead of `text` for a table that already has vectors; optional
    /// `"columns"` (returned), `"filter"` (rows to embed) and `"description"`. `pg-mcp embed`
    /// keeps text sources current. Default: none.
    #[arg(long, env = "PG_MCP_EMBEDDING_SOURCES")]
    pub embedding_sources: Option<String>,
}

impl EmbeddingSettings {
    /// The declared embedding sources (none when unset).
    pub fn sources(&self) -> Result<Vec<super::sources::Source>, String> {
        match self.embedding_sources.as_deref().map(str::trim) {
            None | Some("") => Ok(Vec::new()),
            Some(json) => super::sources::parse(json),
        }
    }

    pub fn provider(&self) -> Result<Provider, EmbedError> {
        Ok(self.embeddings_provider)
    }

    pub fn to_config(&self) -> Result<EmbeddingsConfig, EmbedError> {
        Ok(EmbeddingsConfig {
            provider: self.provider()?,
            model: self.embeddings_model.clone(),
            dimensions: self.embeddings_dimensions,
            api_key: self.embeddings_api_key.clone(),
            base_url: self.embeddings_base_url.clone(),
            azure_endpoint: self.azure_openai_endpoint.clone(),
            azure_deployment: self.azure_openai_deployment.clone(),
            azure_api_version: self.azure_openai_api_version.clone(),
            timeout: Duration::from_millis(self.embeddings_timeout_ms),
            max_retries: self.embeddings_max_retries,
            local_model_dir: self.local_model_dir.clone(),
            batch_size: self.embeddings_batch_size.max(1),
        })
    }
}

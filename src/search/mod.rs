//! Text embedders for semantic search.
//!
//! Everything behind [`Embedder`] turns text into vectors: a local
//! all-MiniLM-L6-v2 model run on the CPU ([`LocalEmbedder`]), the OpenAI
//! family over HTTP ([`OpenAiEmbedder`]: OpenAI, Azure OpenAI and any
//! OpenAI-compatible server), and an LRU cache for repeated queries
//! ([`CachedEmbedder`]). [`build_embedder`] picks one from configuration.

mod cache;
mod config;
mod embedder;
mod local;
pub(crate) mod openai;
pub mod products;
mod settings;
pub mod sources;
pub mod store;

pub use cache::CachedEmbedder;
pub use config::{DEFAULT_AZURE_API_VERSION, EmbeddingsConfig, Provider};
pub use embedder::{EmbedError, Embedder};
pub use local::{DEFAULT_LOCAL_MODEL, LocalEmbedder};
pub use openai::{DEFAULT_OPENAI_MODEL, OpenAiEmbedder};
pub use settings::EmbeddingSettings;

use std::sync::Arc;

/// Builds the configured embedder. `Disabled` gives `NotConfigured`, so callers
/// that allow "no semantic search" should check the provider first.
///
/// The local model loads here (about 100 ms), not on first use, so a missing
/// model directory fails at startup rather than on the first query.
pub fn build_embedder(cfg: &EmbeddingsConfig) -> Result<Arc<dyn Embedder>, EmbedError> {
    match cfg.provider {
        Provider::Local => Ok(Arc::new(LocalEmbedder::load(cfg)?)),
        Provider::OpenAi | Provider::Compatible | Provider::Azure => {
            Ok(Arc::new(OpenAiEmbedder::new(cfg)?))
        }
        Provider::Disabled => Err(EmbedError::NotConfigured(
            "embeddings provider is disabled".into(),
        )),
    }
}

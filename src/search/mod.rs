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
mod openai;
pub mod products;
mod settings;

pub use cache::CachedEmbedder;
pub use config::{DEFAULT_AZURE_API_VERSION, EmbeddingsConfig, Provider, build_embedder};
pub use embedder::{EmbedError, Embedder};
pub use local::{DEFAULT_LOCAL_MODEL, LocalEmbedder};
pub use openai::{DEFAULT_OPENAI_MODEL, OpenAiEmbedder};
pub use settings::EmbeddingSettings;

//! Embedding configuration and the factory that turns it into an [`Embedder`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::embedder::{EmbedError, Embedder};
use super::local::LocalEmbedder;
use super::openai::OpenAiEmbedder;

/// Where embeddings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Provider {
    /// all-MiniLM-L6-v2 (or another BERT sentence model) on the CPU, no network.
    #[default]
    Local,
    /// api.openai.com (or `base_url`), bearer key.
    OpenAi,
    /// Any server speaking the OpenAI embeddings API (Ollama, vLLM, LM Studio, TEI); key optional.
    Compatible,
    /// Azure OpenAI: endpoint + deployment + api-version, `api-key` header.
    Azure,
    /// Semantic search is off.
    Disabled,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Local => "local",
            Provider::OpenAi => "openai",
            Provider::Compatible => "compatible",
            Provider::Azure => "azure",
            Provider::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "local" => Ok(Provider::Local),
            "openai" | "open-ai" => Ok(Provider::OpenAi),
            "compatible" | "openai-compatible" => Ok(Provider::Compatible),
            "azure" | "azure-openai" => Ok(Provider::Azure),
            "disabled" | "none" | "off" | "" => Ok(Provider::Disabled),
            other => Err(EmbedError::NotConfigured(format!(
                "unknown embeddings provider {other:?} (expected local, openai, compatible, azure or disabled)"
            ))),
        }
    }
}

/// Everything needed to build an embedder. `Debug` redacts the API key.
#[derive(Clone)]
pub struct EmbeddingsConfig {
    pub provider: Provider,
    /// Model id; `None` means the provider default (all-MiniLM-L6-v2 locally,
    /// text-embedding-3-small for OpenAI, the deployment name for Azure).
    pub model: Option<String>,
    /// Vector size; may be left unset for well-known models. For OpenAI/Azure a
    /// size other than the model's native one is sent as the `dimensions`
    /// parameter (text-embedding-3 truncation); elsewhere it only declares the size.
    pub dimensions: Option<usize>,
    pub api_key: Option<String>,
    /// OpenAI-style base URL including `/v1`, e.g. `http://localhost:11434/v1`.
    pub base_url: Option<String>,
    /// e.g. `https://my-resource.openai.azure.com`
    pub azure_endpoint: Option<String>,
    pub azure_deployment: Option<String>,
    pub azure_api_version: Option<String>,
    /// Per HTTP attempt.
    pub timeout: Duration,
    /// Extra attempts after a 429, a 5xx or a connect error.
    pub max_retries: u32,
    /// Directory with `model.safetensors`, `tokenizer.json`, `config.json`.
    pub local_model_dir: PathBuf,
    /// Texts per HTTP request, or per local forward pass (capped at 32 locally).
    pub batch_size: usize,
}

/// Azure OpenAI GA API version used when none is configured.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            provider: Provider::default(),
            model: None,
            dimensions: None,
            api_key: None,
            base_url: None,
            azure_endpoint: None,
            azure_deployment: None,
            azure_api_version: None,
            timeout: Duration::from_secs(10),
            max_retries: 3,
            local_model_dir: PathBuf::from(".cache/models/all-MiniLM-L6-v2"),
            batch_size: 64,
        }
    }
}

impl fmt::Debug for EmbeddingsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddingsConfig")
            .field("provider", &self.provider)
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("base_url", &self.base_url)
            .field("azure_endpoint", &self.azure_endpoint)
            .field("azure_deployment", &self.azure_deployment)
            .field("azure_api_version", &self.azure_api_version)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("local_model_dir", &self.local_model_dir)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

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

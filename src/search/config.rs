//! Embedding configuration and the factory that turns it into an [`Embedder`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

/// Where embeddings come from (`PG_MCP_EMBEDDINGS_PROVIDER`; a typo fails at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Provider {
    /// all-MiniLM-L6-v2 (or another BERT sentence model) on the CPU, no network.
    #[default]
    Local,
    /// api.openai.com (or `base_url`), bearer key.
    #[value(name = "openai", alias = "open-ai")]
    OpenAi,
    /// Any server speaking the OpenAI embeddings API (Ollama, vLLM, LM Studio, TEI); key optional.
    #[value(alias = "openai-compatible", alias = "openai_compatible")]
    Compatible,
    /// Azure OpenAI: endpoint + deployment + api-version, `api-key` header.
    #[value(alias = "azure-openai", alias = "azure_openai")]
    Azure,
    /// Semantic search is off.
    #[value(alias = "none", alias = "off")]
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

/// Everything needed to build an embedder. The API key is a secret (`Debug` redacts it).
#[derive(Clone, Debug)]
pub struct EmbeddingsConfig {
    pub provider: Provider,
    /// Model id; `None` means the provider default (all-MiniLM-L6-v2 locally,
    /// text-embedding-3-small for OpenAI, the deployment name for Azure).
    pub model: Option<String>,
    /// Vector size; may be left unset for well-known models. For OpenAI/Azure a
    /// size other than the model's native one is sent as the `dimensions`
    /// parameter (text-embedding-3 truncation); elsewhere it only declares the size.
    pub dimensions: Option<usize>,
    pub api_key: Option<SecretString>,
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

//! Chat-model settings of the `query` tool (`PG_MCP_LLM_*`), mirroring the embeddings ones.

use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use crate::search::Provider;

#[derive(Args, Clone, Debug)]
pub struct LlmSettings {
    /// Chat model of the natural-language `query` tool: disabled (the tool is not listed),
    /// openai, compatible (any OpenAI-compatible server), azure.
    #[arg(long, env = "PG_MCP_LLM_PROVIDER", value_enum, ignore_case = true, default_value_t = Provider::Disabled)]
    pub llm_provider: Provider,

    /// Model name (default gpt-4o-mini for openai; required for compatible; for Azure the
    /// deployment decides).
    #[arg(long, env = "PG_MCP_LLM_MODEL")]
    pub llm_model: Option<String>,

    /// API key (openai, azure, a compatible server that needs one).
    #[arg(long, env = "PG_MCP_LLM_API_KEY", hide_env_values = true, value_parser = |s: &str| Ok::<_, std::convert::Infallible>(SecretString::from(s)))]
    pub llm_api_key: Option<SecretString>,

    /// Base URL of an OpenAI-compatible server, including /v1.
    #[arg(long, env = "PG_MCP_LLM_BASE_URL")]
    pub llm_base_url: Option<String>,

    /// Azure OpenAI endpoint, e.g. https://myres.openai.azure.com.
    #[arg(long, env = "PG_MCP_LLM_AZURE_ENDPOINT")]
    pub llm_azure_endpoint: Option<String>,

    /// Azure OpenAI chat deployment name.
    #[arg(long, env = "PG_MCP_LLM_AZURE_DEPLOYMENT")]
    pub llm_azure_deployment: Option<String>,

    /// Azure OpenAI API version.
    #[arg(long, env = "PG_MCP_LLM_AZURE_API_VERSION")]
    pub llm_azure_api_version: Option<String>,

    /// Per-request timeout of the chat model.
    #[arg(long, env = "PG_MCP_LLM_TIMEOUT_MS", default_value_t = 30_000)]
    pub llm_timeout_ms: u64,

    /// Times a refused or failing SQL goes back to the model for a correction.
    #[arg(long, env = "PG_MCP_LLM_MAX_RETRIES", default_value_t = 2)]
    pub llm_max_retries: u32,

    /// Largest completion, in tokens.
    #[arg(long, env = "PG_MCP_LLM_MAX_TOKENS", default_value_t = 1000)]
    pub llm_max_tokens: u32,

    /// Ask the model whether the result answers the question (seed 002's validate_result);
    /// a "no" counts as a failed attempt. One more model call per query.
    #[arg(long, env = "PG_MCP_LLM_VALIDATE_RESULT", default_value_t = false, action = clap::ArgAction::Set)]
    pub llm_validate_result: bool,

    /// Most tables described to the model; larger schemas are ranked by relevance to the
    /// question (names and comments, then the configured embedder).
    #[arg(long, env = "PG_MCP_LLM_CONTEXT_TABLES", default_value_t = 25)]
    pub llm_context_tables: usize,
}

impl LlmSettings {
    pub fn enabled(&self) -> bool {
        self.llm_provider != Provider::Disabled
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.llm_timeout_ms.max(1))
    }

    pub fn api_key(&self) -> Option<&str> {
        self.llm_api_key.as_ref().map(|k| k.expose_secret())
    }
}

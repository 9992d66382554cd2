//! The chat model behind the `query` tool: OpenAI, Azure OpenAI or any OpenAI-compatible
//! server, through async-openai's chat API (our own request and response types, so servers
//! that omit fields still work) over the embeddings' retrying HTTP service.

use std::time::Instant;

use async_openai::error::{ApiErrorResponse, OpenAIError};
use serde::{Deserialize, Serialize};

use super::settings::LlmSettings;
use crate::error::{AppError, ErrorCode, Result};
use crate::search::Provider;
use crate::search::openai::{ApiClient, ApiTarget, api_client, error_chain, truncate_chars};

/// Model of the `openai` provider when none is configured.
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";
/// HTTP retries on 429, 5xx and connect errors (the SQL retries are separate).
const HTTP_RETRIES: u32 = 2;

/// One chat message.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub role: &'static str,
    pub content: String,
}

impl Message {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system",
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user",
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant",
            content: content.into(),
        }
    }
}

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Message],
    temperature: f32,
    max_tokens: u32,
}

#[derive(Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct Choice {
    message: ChoiceMessage,
}

#[derive(Deserialize)]
struct ChoiceMessage {
    content: Option<String>,
}

/// Tokens of one completion, as the provider counted them.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, schemars::JsonSchema)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
    }
}

/// One answer of the model.
pub struct Completion {
    pub content: String,
    pub usage: Usage,
    pub elapsed_ms: f64,
}

/// A configured chat model. The key is kept only to scrub it from error messages.
pub struct ChatModel {
    client: ApiClient,
    pub model: String,
    max_tokens: u32,
    api_key: Option<String>,
}

impl std::fmt::Debug for ChatModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatModel")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl ChatModel {
    /// The configured model; `None` when the provider is `disabled`; VALIDATION_ERROR when
    /// the settings cannot work (checked at start-up).
    pub fn from_settings(settings: &LlmSettings) -> Result<Option<Self>> {
        if !settings.enabled() {
            return Ok(None);
        }
        if settings.llm_provider == Provider::Local {
            return Err(AppError::validation(
                "PG_MCP_LLM_PROVIDER=local is not supported: use openai, compatible or azure",
            ));
        }
        let client = api_client(&ApiTarget {
            provider: settings.llm_provider,
            api_key: settings.api_key(),
            base_url: settings.llm_base_url.as_deref(),
            azure_endpoint: settings.llm_azure_endpoint.as_deref(),
            azure_deployment: settings.llm_azure_deployment.as_deref(),
            azure_api_version: settings.llm_azure_api_version.as_deref(),
            timeout: settings.timeout(),
            max_retries: HTTP_RETRIES,
        })
        .map_err(|e| AppError::validation(format!("PG_MCP_LLM_*: {e}")))?;
        let model = match (settings.llm_model.as_deref(), settings.llm_provider) {
            (Some(m), _) => m.to_string(),
            (None, Provider::OpenAi) => DEFAULT_CHAT_MODEL.to_string(),
            (None, Provider::Azure) => settings.llm_azure_deployment.clone().unwrap_or_default(),
            (None, _) => {
                return Err(AppError::validation(
                    "PG_MCP_LLM_MODEL is required for the compatible provider",
                ));
            }
        };
        Ok(Some(Self {
            client,
            model,
            max_tokens: settings.llm_max_tokens.max(1),
            api_key: settings
                .api_key()
                .map(str::to_string)
                .filter(|k| k.len() >= 4),
        }))
    }

    /// One chat completion at temperature 0. LLM_ERROR when the provider fails or answers
    /// nothing.
    pub async fn complete(&self, messages: &[Message]) -> Result<Completion> {
        let started = Instant::now();
        let request = ChatRequest {
            model: &self.model,
            messages,
            temperature: 0.0,
            max_tokens: self.max_tokens,
        };
        let response: std::result::Result<ChatResponse, OpenAIError> = match &self.client {
            ApiClient::OpenAi(c) => c.chat().create_byot(&request).await,
            ApiClient::Azure(c) => c.chat().create_byot(&request).await,
        };
        let response = response.map_err(|e| self.error(e))?;
        let content = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .filter(|c| !c.trim().is_empty())
            .ok_or_else(|| AppError::new(ErrorCode::LlmError, "the model answered nothing"))?;
        Ok(Completion {
            content,
            usage: response.usage.unwrap_or_default(),
            elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn error(&self, error: OpenAIError) -> AppError {
        let message = match error {
            OpenAIError::Reqwest(e) if e.is_timeout() => "the model did not answer in time".into(),
            OpenAIError::Reqwest(e) => error_chain(&e),
            OpenAIError::ApiError(ApiErrorResponse {
                status_code,
                api_error,
            }) => format!("HTTP {}: {}", status_code.as_u16(), api_error.message),
            OpenAIError::JSONDeserialize(e, body) => format!(
                "unexpected answer: {e}; body starts with {:?}",
                truncate_chars(&body, 200)
            ),
            other => other.to_string(),
        };
        let message = match &self.api_key {
            Some(key) => message.replace(key.as_str(), "[REDACTED]"),
            None => message,
        };
        AppError::new(
            ErrorCode::LlmError,
            format!("the chat model failed: {}", truncate_chars(&message, 500)),
        )
    }
}

//! OpenAI-family embedders over HTTP: OpenAI, Azure OpenAI and OpenAI-compatible servers.
//!
//! async-openai builds the requests; the HTTP layer below it is our own small
//! tower service so retries (backon: exponential backoff with jitter) are bounded
//! by `max_retries`, a `Retry-After` is honoured only when short, and error
//! statuses survive into [`EmbedError`].

use std::time::Duration;

use async_openai::Client;
use async_openai::config::{AzureConfig, OpenAIConfig};
use async_openai::error::{ApiError, ApiErrorResponse, OpenAIError};
use async_openai::middleware::HttpRequestFactory;
use backon::{ExponentialBuilder, Retryable};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use reqwest013 as reqwest;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::config::{DEFAULT_AZURE_API_VERSION, EmbeddingsConfig, Provider};
use super::embedder::{EmbedError, Embedder, check_vectors};

/// Model used by the `openai` provider when none is configured.
pub const DEFAULT_OPENAI_MODEL: &str = "text-embedding-3-small";
const DEFAULT_OPENAI_BASE: &str = "https://api.openai.com/v1";

/// Inputs longer than this many characters are cut, so one huge row cannot
/// exceed the provider's per-input token limit (8192 tokens for OpenAI).
const MAX_INPUT_CHARS: usize = 16_000;
/// A longer `Retry-After` means "not soon": give up instead of stalling a query.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// The first retry waits 250–500 ms; each step doubles, and no wait exceeds 8 s.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Batches sent at once by one `embed` call.
const CONCURRENT_REQUESTS: usize = 4;
/// Error bodies are cut to this many characters before they reach a message.
const MAX_ERROR_CHARS: usize = 500;

/// Embedder for the OpenAI embeddings API and the services that copy it. The API key is a
/// secret: `Debug` redacts it.
#[derive(Debug)]
pub struct OpenAiEmbedder {
    client: ApiClient,
    model: String,
    dims: usize,
    /// Sent as the `dimensions` parameter (only when it differs from the model's native size).
    request_dims: Option<u32>,
    batch_size: usize,
    /// Kept only to scrub it from error messages.
    api_key: Option<SecretString>,
}

#[derive(Debug)]
pub(crate) enum ApiClient {
    OpenAi(Client<OpenAIConfig>),
    Azure(Client<AzureConfig>),
}

#[derive(Serialize)]
struct EmbeddingRequest<'a> {
    model: &'a str,
    input: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    dimensions: Option<u32>,
}

/// Only what we use, so servers that omit `usage` or `object` still work.
#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingItem>,
}

#[derive(Deserialize)]
struct EmbeddingItem {
    index: Option<usize>,
    embedding: Vec<f32>,
}

/// Where an OpenAI-family API lives and how to reach it: shared by the embedder and the
/// `query` tool's chat model.
pub(crate) struct ApiTarget<'a> {
    pub provider: Provider,
    pub api_key: Option<&'a str>,
    pub base_url: Option<&'a str>,
    pub azure_endpoint: Option<&'a str>,
    pub azure_deployment: Option<&'a str>,
    pub azure_api_version: Option<&'a str>,
    pub timeout: Duration,
    pub max_retries: u32,
}

/// An async-openai client for `target` over our retrying HTTP service.
pub(crate) fn api_client(target: &ApiTarget) -> Result<ApiClient, EmbedError> {
    let api_key = target.api_key.map(str::trim).filter(|k| !k.is_empty());
    if let Some(key) = api_key
        && !key.bytes().all(|b| (0x20..0x7f).contains(&b))
    {
        // async-openai would panic building the header; refuse it here instead.
        return Err(EmbedError::NotConfigured(
            "api_key contains characters not allowed in an HTTP header".into(),
        ));
    }
    let http = http_client(target.timeout)?;
    let retry = RetryPolicy {
        max_retries: target.max_retries,
    };
    match target.provider {
        Provider::OpenAi | Provider::Compatible => {
            let is_openai = target.provider == Provider::OpenAi;
            let key = match (api_key, is_openai) {
                (Some(k), _) => k,
                (None, true) => {
                    return Err(EmbedError::NotConfigured(
                        "api_key is required for the openai provider".into(),
                    ));
                }
                (None, false) => "",
            };
            let base = match (target.base_url, is_openai) {
                (Some(b), _) => checked_url(b, "base_url")?,
                (None, true) => DEFAULT_OPENAI_BASE.to_owned(),
                (None, false) => {
                    return Err(EmbedError::NotConfigured(
                        "base_url is required for the compatible provider".into(),
                    ));
                }
            };
            // Set every field explicitly: OpenAIConfig::new() reads OPENAI_* env vars,
            // and a compatible server must never receive an OpenAI key by accident.
            let config = OpenAIConfig::new()
                .with_api_key(key)
                .with_api_base(base)
                .with_org_id("")
                .with_project_id("");
            Ok(ApiClient::OpenAi(
                Client::build(http.clone(), config).with_http_service(service(http, retry)),
            ))
        }
        Provider::Azure => {
            let endpoint = target.azure_endpoint.ok_or_else(|| {
                EmbedError::NotConfigured(
                    "azure_endpoint is required for the azure provider".into(),
                )
            })?;
            let endpoint = checked_url(endpoint, "azure_endpoint")?;
            let deployment = target
                .azure_deployment
                .map(str::trim)
                .filter(|d| !d.is_empty())
                .ok_or_else(|| {
                    EmbedError::NotConfigured(
                        "azure_deployment is required for the azure provider".into(),
                    )
                })?;
            let key = api_key.ok_or_else(|| {
                EmbedError::NotConfigured("api_key is required for the azure provider".into())
            })?;
            let version = target
                .azure_api_version
                .unwrap_or(DEFAULT_AZURE_API_VERSION);
            let config = AzureConfig::new()
                .with_api_base(endpoint)
                .with_deployment_id(deployment)
                .with_api_version(version)
                .with_api_key(key);
            Ok(ApiClient::Azure(
                Client::build(http.clone(), config).with_http_service(service(http, retry)),
            ))
        }
        Provider::Local | Provider::Disabled => Err(EmbedError::NotConfigured(format!(
            "provider {} is not served over HTTP",
            target.provider
        ))),
    }
}

impl OpenAiEmbedder {
    /// Builds a client for `cfg.provider` (`OpenAi`, `Compatible` or `Azure`).
    pub fn new(cfg: &EmbeddingsConfig) -> Result<Self, EmbedError> {
        let api_key = cfg
            .api_key
            .as_ref()
            .map(|k| k.expose_secret().trim())
            .filter(|k| !k.is_empty());
        let client = api_client(&ApiTarget {
            provider: cfg.provider,
            api_key,
            base_url: cfg.base_url.as_deref(),
            azure_endpoint: cfg.azure_endpoint.as_deref(),
            azure_deployment: cfg.azure_deployment.as_deref(),
            azure_api_version: cfg.azure_api_version.as_deref(),
            timeout: cfg.timeout,
            max_retries: cfg.max_retries,
        })?;
        let model = match (&client, cfg.model.as_deref()) {
            (_, Some(m)) => m.to_owned(),
            (ApiClient::OpenAi(_), None) if cfg.provider == Provider::OpenAi => {
                DEFAULT_OPENAI_MODEL.to_owned()
            }
            (ApiClient::OpenAi(_), None) => {
                return Err(EmbedError::NotConfigured(
                    "model is required for the compatible provider".into(),
                ));
            }
            (ApiClient::Azure(_), None) => cfg
                .azure_deployment
                .as_deref()
                .map(str::trim)
                .unwrap_or_default()
                .to_owned(),
        };

        let native = known_dimensions(&model);
        let dims = cfg.dimensions.or(native).ok_or_else(|| {
            EmbedError::NotConfigured(format!(
                "dimensions must be set for model {model:?} (its vector size is not known)"
            ))
        })?;
        if dims == 0 {
            return Err(EmbedError::NotConfigured(
                "dimensions must be positive".into(),
            ));
        }
        // Compatible servers often reject `dimensions`; there it only declares the size.
        let request_dims = match cfg.provider {
            Provider::OpenAi | Provider::Azure
                if cfg.dimensions.is_some() && native != Some(dims) =>
            {
                Some(
                    u32::try_from(dims)
                        .map_err(|_| EmbedError::NotConfigured("dimensions is too large".into()))?,
                )
            }
            _ => None,
        };

        Ok(Self {
            client,
            model,
            dims,
            request_dims,
            batch_size: cfg.batch_size.max(1),
            api_key: api_key.map(SecretString::from),
        })
    }

    /// One HTTP request (retried inside the service) for at most `batch_size` texts.
    async fn embed_batch(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let request = EmbeddingRequest {
            model: &self.model,
            input: inputs,
            dimensions: self.request_dims,
        };
        let response: Result<EmbeddingResponse, OpenAIError> = match &self.client {
            ApiClient::OpenAi(c) => c.embeddings().create_byot(&request).await,
            ApiClient::Azure(c) => c.embeddings().create_byot(&request).await,
        };
        let response = response.map_err(|e| self.to_embed_error(e))?;

        // Providers may answer out of order; `index` says where each vector goes.
        let n = inputs.len();
        if response.data.len() != n {
            return Err(EmbedError::BadResponse(format!(
                "asked for {n} embeddings, got {}",
                response.data.len()
            )));
        }
        let mut slots: Vec<Option<Vec<f32>>> = vec![None; n];
        for (position, item) in response.data.into_iter().enumerate() {
            let i = item.index.unwrap_or(position);
            match slots.get_mut(i) {
                Some(slot @ None) => *slot = Some(item.embedding),
                _ => {
                    return Err(EmbedError::BadResponse(format!(
                        "embedding index {i} is out of range or repeated"
                    )));
                }
            }
        }
        Ok(slots.into_iter().flatten().collect())
    }

    fn to_embed_error(&self, error: OpenAIError) -> EmbedError {
        let error = match error {
            OpenAIError::Reqwest(e) if e.is_timeout() => return EmbedError::Timeout,
            OpenAIError::Reqwest(e) => EmbedError::Http {
                status: e.status().map(|s| s.as_u16()),
                message: error_chain(&e),
            },
            OpenAIError::ApiError(ApiErrorResponse {
                status_code,
                api_error,
            }) => EmbedError::Http {
                status: Some(status_code.as_u16()),
                message: api_error.message,
            },
            OpenAIError::JSONDeserialize(e, body) => EmbedError::BadResponse(format!(
                "{e}; body starts with {:?}",
                truncate_chars(&body, 200)
            )),
            other => EmbedError::Http {
                status: None,
                message: other.to_string(),
            },
        };
        self.redact(error)
    }

    /// Servers sometimes echo the key back; make sure it never leaves this module.
    fn redact(&self, error: EmbedError) -> EmbedError {
        let Some(key) = self
            .api_key
            .as_ref()
            .map(|k| k.expose_secret())
            .filter(|k| k.len() >= 4)
        else {
            return error;
        };
        let scrub = |s: String| s.replace(key, "[REDACTED]");
        match error {
            EmbedError::Http { status, message } => EmbedError::Http {
                status,
                message: scrub(message),
            },
            EmbedError::BadResponse(m) => EmbedError::BadResponse(scrub(m)),
            other => other,
        }
    }
}

impl Embedder for OpenAiEmbedder {
    fn model(&self) -> &str {
        &self.model
    }

    fn dimensions(&self) -> usize {
        self.dims
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            // A few batches in flight speed up bulk indexing; `buffered` keeps their order.
            let requests: Vec<BoxFuture<'_, Result<Vec<Vec<f32>>, EmbedError>>> = texts
                .chunks(self.batch_size)
                .map(|chunk| {
                    let inputs: Vec<String> = chunk.iter().map(|t| prepare_input(t)).collect();
                    Box::pin(async move { self.embed_batch(&inputs).await }) as BoxFuture<'_, _>
                })
                .collect();
            let batches: Vec<Vec<Vec<f32>>> = stream::iter(requests)
                .buffered(CONCURRENT_REQUESTS)
                .try_collect()
                .await?;
            let out: Vec<Vec<f32>> = batches.into_iter().flatten().collect();
            check_vectors(&out, texts.len(), self.dims)?;
            Ok(out)
        })
    }
}

/// OpenAI rejects empty inputs and over-long ones; send a space and a cut text instead.
fn prepare_input(text: &str) -> String {
    if text.trim().is_empty() {
        " ".to_owned()
    } else {
        truncate_chars(text, MAX_INPUT_CHARS).to_owned()
    }
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((byte, _)) => &s[..byte],
        None => s,
    }
}

/// Native vector sizes of well-known models, so `dimensions` can be left unset.
fn known_dimensions(model: &str) -> Option<usize> {
    // "BAAI/bge-m3" -> "bge-m3"; "nomic-embed-text:latest" -> "nomic-embed-text"
    let name = model.rsplit('/').next().unwrap_or(model);
    let name = name.split(':').next().unwrap_or(name).to_ascii_lowercase();
    Some(match name.as_str() {
        "text-embedding-3-small" | "text-embedding-ada-002" => 1536,
        "text-embedding-3-large" => 3072,
        "all-minilm" | "all-minilm-l6-v2" => 384,
        "nomic-embed-text" | "nomic-embed-text-v1.5" => 768,
        "mxbai-embed-large" | "bge-m3" | "bge-large-en-v1.5" | "snowflake-arctic-embed" => 1024,
        _ => return None,
    })
}

pub(crate) fn checked_url(url: &str, what: &str) -> Result<String, EmbedError> {
    let url = url.trim().trim_end_matches('/');
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(url.to_owned()),
        _ => Err(EmbedError::NotConfigured(format!(
            "{what} is not an http(s) URL: {url:?}"
        ))),
    }
}

fn http_client(timeout: Duration) -> Result<reqwest::Client, EmbedError> {
    // reqwest is built without a bundled crypto provider; use ring (already in the tree).
    // Installing fails harmlessly if the process already chose one.
    crate::telemetry::install_crypto_provider();
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .build()
        .map_err(|e| {
            EmbedError::NotConfigured(format!("building HTTP client: {}", error_chain(&e)))
        })
}

#[derive(Clone, Copy)]
struct RetryPolicy {
    max_retries: u32,
}

/// The HTTP layer handed to async-openai: send, retry what is worth retrying,
/// and turn any non-2xx answer into an error that keeps its status.
fn service(
    http: reqwest::Client,
    policy: RetryPolicy,
) -> impl tower::Service<
    HttpRequestFactory,
    Response = reqwest::Response,
    Error = OpenAIError,
    Future = BoxFuture<'static, Result<reqwest::Response, OpenAIError>>,
> + Clone
+ Send
+ Sync
+ 'static {
    tower::service_fn(
        move |factory: HttpRequestFactory| -> BoxFuture<'static, _> {
            Box::pin(send_with_retries(http.clone(), policy, factory))
        },
    )
}

async fn send_with_retries(
    http: reqwest::Client,
    policy: RetryPolicy,
    factory: HttpRequestFactory,
) -> Result<reqwest::Response, OpenAIError> {
    let (http, factory) = (&http, &factory);
    let send_once = move || async move {
        let mut request = factory.build().await.map_err(Failure::Build)?;
        // async-openai always sends `Bearer <key>`; with no key, send no header at all.
        let headers = request.headers_mut();
        if headers
            .get(reqwest::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes().trim_ascii() == b"Bearer")
        {
            headers.remove(reqwest::header::AUTHORIZATION);
        }
        match http.execute(request).await {
            Ok(response) if response.status().is_success() => Ok(response),
            Ok(response) => {
                let hint = retry_hint(&response);
                Err(Failure::Status { response, hint })
            }
            Err(e) => Err(Failure::Transport(e)),
        }
    };
    let mut attempt = 0u32;
    let sent = send_once
        .retry(backoff(policy.max_retries))
        .sleep(tokio::time::sleep)
        .when(Failure::is_retryable)
        // A short `Retry-After` replaces the backoff; the backoff still counts the retries.
        .adjust(|failure, next| match failure {
            Failure::Status {
                hint: RetryHint::After(delay),
                ..
            } => next.map(|_| *delay),
            _ => next,
        })
        .notify(|failure, delay| {
            match failure {
                Failure::Status { response, .. } => tracing::warn!(
                    status = response.status().as_u16(),
                    attempt,
                    ?delay,
                    "embedding request retried"
                ),
                Failure::Transport(e) => {
                    tracing::warn!(error = %e, attempt, ?delay, "embedding request retried")
                }
                Failure::Build(_) => {}
            }
            attempt += 1;
        })
        .await;
    match sent {
        Ok(response) => Ok(response),
        Err(failure) => Err(failure.into_error().await),
    }
}

/// Why one attempt did not give a 2xx answer.
enum Failure {
    /// A non-2xx answer, kept so its body can become the error message.
    Status {
        response: reqwest::Response,
        hint: RetryHint,
    },
    /// No answer at all (connect error, timeout, broken connection).
    Transport(reqwest::Error),
    /// async-openai could not build the request.
    Build(OpenAIError),
}

impl Failure {
    /// 429 and 5xx answers (unless their `Retry-After` is long) and connect errors. Timeouts
    /// are not retried: a slow server would only make the caller wait `max_retries` times.
    fn is_retryable(&self) -> bool {
        match self {
            Failure::Status { hint, .. } => *hint != RetryHint::No,
            Failure::Transport(e) => e.is_connect(),
            Failure::Build(_) => false,
        }
    }

    async fn into_error(self) -> OpenAIError {
        match self {
            Failure::Status { response, .. } => api_error(response).await,
            Failure::Transport(e) => OpenAIError::Reqwest(e),
            Failure::Build(e) => e,
        }
    }
}

/// Whether and when an error answer is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq)]
enum RetryHint {
    /// Not retryable, or the server asked for a wait longer than [`MAX_RETRY_AFTER`].
    No,
    /// Retryable after the exponential backoff.
    Backoff,
    /// Retryable after the server's short `Retry-After`.
    After(Duration),
}

fn retry_hint(response: &reqwest::Response) -> RetryHint {
    let status = response.status().as_u16();
    if !matches!(status, 429 | 500 | 502 | 503 | 504) {
        return RetryHint::No;
    }
    let header = |name: &str| response.headers().get(name)?.to_str().ok();
    let hinted = header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|ms| Duration::from_secs_f64(ms.clamp(0.0, 1e9) / 1000.0))
        .or_else(|| {
            header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        });
    match hinted {
        Some(d) if d <= MAX_RETRY_AFTER => RetryHint::After(d),
        Some(_) => RetryHint::No,
        None => RetryHint::Backoff,
    }
}

/// Exponential backoff from [`BACKOFF_BASE`], doubling, with jitter (each wait is its step
/// plus a random part of up to as much again, so clients that failed together spread out),
/// never longer than [`BACKOFF_MAX`], and at most `max_retries` waits.
fn backoff(max_retries: u32) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(BACKOFF_BASE)
        .with_factor(2.0)
        .with_max_delay(BACKOFF_MAX / 2)
        .with_jitter()
        .with_max_times(max_retries as usize)
}

/// Reads an error body into an `ApiError`, whichever shape the server used:
/// `{"error":{"message":..}}` (OpenAI), `{"error":".."}` (Ollama, TEI), or plain text.
async fn api_error(response: reqwest::Response) -> OpenAIError {
    let status_code = response.status();
    let body = match response.bytes().await {
        Ok(b) => b,
        Err(e) => return OpenAIError::Reqwest(e),
    };
    let json: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let from_json = json.as_ref().and_then(|v| {
        let error = v.get("error").unwrap_or(v);
        error
            .get("message")
            .and_then(|m| m.as_str())
            .or_else(|| error.as_str())
            .map(str::to_owned)
    });
    let message = from_json.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body);
        let text = text.trim();
        if text.is_empty() {
            status_code.canonical_reason().unwrap_or("error").to_owned()
        } else {
            text.to_owned()
        }
    });
    OpenAIError::ApiError(ApiErrorResponse {
        status_code,
        api_error: ApiError {
            message: truncate_chars(&message, MAX_ERROR_CHARS).to_owned(),
            ..ApiError::default()
        },
    })
}

/// `e` plus its sources: reqwest's top-level message alone hides the cause.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use backon::BackoffBuilder;

    #[test]
    fn known_dimensions_strips_org_and_tag() {
        assert_eq!(known_dimensions("text-embedding-3-large"), Some(3072));
        assert_eq!(known_dimensions("nomic-embed-text:latest"), Some(768));
        assert_eq!(known_dimensions("BAAI/bge-m3"), Some(1024));
        assert_eq!(known_dimensions("mystery"), None);
    }

    #[test]
    fn inputs_are_never_empty_and_cut_on_char_boundaries() {
        assert_eq!(prepare_input(""), " ");
        assert_eq!(prepare_input(" \n"), " ");
        let long = "é".repeat(MAX_INPUT_CHARS + 10);
        assert_eq!(prepare_input(&long).chars().count(), MAX_INPUT_CHARS);
    }

    #[test]
    fn backoff_grows_is_capped_jittered_and_bounded() {
        let mut first_waits = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let waits: Vec<Duration> = backoff(8).build().collect();
            assert_eq!(waits.len(), 8, "one wait per retry");
            for (i, wait) in waits.iter().enumerate() {
                let step = BACKOFF_BASE
                    .saturating_mul(2u32.pow(i as u32))
                    .min(BACKOFF_MAX / 2);
                assert!(
                    *wait >= step && *wait <= step * 2 && *wait <= BACKOFF_MAX,
                    "wait {i} is {wait:?}"
                );
            }
            first_waits.insert(waits[0]);
        }
        assert!(first_waits.len() > 1, "jitter: the waits differ");
        assert_eq!(backoff(0).build().count(), 0, "max_retries 0: no retry");
    }

    #[test]
    fn missing_settings_are_reported_not_panicked() {
        let cfg = |provider| EmbeddingsConfig {
            provider,
            ..Default::default()
        };
        for p in [Provider::OpenAi, Provider::Compatible, Provider::Azure] {
            assert!(matches!(
                OpenAiEmbedder::new(&cfg(p)),
                Err(EmbedError::NotConfigured(_))
            ));
        }
        let bad_key = EmbeddingsConfig {
            provider: Provider::OpenAi,
            api_key: Some("sk-abc\ndef".into()),
            ..Default::default()
        };
        let err = OpenAiEmbedder::new(&bad_key).unwrap_err().to_string();
        assert!(!err.contains("sk-abc"), "{err}");
    }
}

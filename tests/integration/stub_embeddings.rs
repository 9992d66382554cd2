//! A real HTTP server that speaks the OpenAI embeddings API, for tests.
//!
//! Shared by the semantic-search and embedder tests of this binary, with the
//! setup they repeat: provider configs pointed at the stub, a dead address,
//! error assertions, and a clock tick for tests on paused time.
//! It serves `POST /v1/embeddings` (bearer key) and Azure's
//! `POST /openai/deployments/{deployment}/embeddings?api-version=..` (`api-key`
//! header) on 127.0.0.1, answers with [`stub_vector`] for each input (in
//! reverse order, so clients must sort by `index`), counts requests, and can
//! be switched into failure modes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use pg_mcp::search::{EmbedError, Embedder, EmbeddingsConfig, Provider, build_embedder};
use serde_json::{Value, json};

/// What the next requests get.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    /// Embeddings for every input.
    Normal,
    /// One 429 (with `Retry-After: 0`), then normal.
    RateLimitOnce,
    /// One 503 without `Retry-After` (client backs off on its own), then normal.
    ServerErrorOnce,
    /// 429 every time, with this `Retry-After` in seconds.
    AlwaysRateLimited { retry_after_secs: u64 },
    /// Sleep this long before answering normally.
    Slow(Duration),
    /// Answer with one embedding fewer than asked for.
    DropOne,
}

/// One request as the stub saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub model: Option<String>,
    pub inputs: Vec<String>,
    pub dimensions: Option<u64>,
    pub api_version: Option<String>,
    pub authorization: Option<String>,
}

struct Shared {
    api_key: Option<String>,
    default_dims: usize,
    mode: Mutex<Mode>,
    requests: AtomicU64,
    seen: Mutex<Vec<Seen>>,
}

/// Handle to a running stub; the server stops when the test's runtime ends.
pub struct StubServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl StubServer {
    /// Starts on 127.0.0.1:0. `api_key: None` accepts any (or no) credentials.
    /// `default_dims` is used when a request has no `dimensions`.
    pub async fn start(api_key: Option<&str>, default_dims: usize) -> Self {
        let shared = Arc::new(Shared {
            api_key: api_key.map(str::to_owned),
            default_dims,
            mode: Mutex::new(Mode::Normal),
            requests: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/embeddings", post(openai_handler))
            .route(
                "/openai/deployments/{deployment}/embeddings",
                post(azure_handler),
            )
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let addr = listener.local_addr().expect("stub addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// OpenAI-style base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Azure-style endpoint (the resource root), e.g. `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// HTTP requests received so far (including failed ones).
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that reached the embedding logic (authorized and well formed).
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

/// The API key the tests give the stub and their clients.
pub const KEY: &str = "sk-test-0123456789abcdef";

/// `items` as owned strings, the input type of [`Embedder::embed`].
pub fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The `openai` provider pointed at `stub`, with [`KEY`] and a 5 s timeout.
pub fn openai_cfg(stub: &StubServer) -> EmbeddingsConfig {
    EmbeddingsConfig {
        provider: Provider::OpenAi,
        api_key: Some(KEY.into()),
        base_url: Some(stub.base_url()),
        timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

/// The `compatible` provider serving `model` at `base_url`, without a key.
pub fn compatible_cfg(base_url: String, model: &str) -> EmbeddingsConfig {
    EmbeddingsConfig {
        provider: Provider::Compatible,
        model: Some(model.into()),
        base_url: Some(base_url),
        ..Default::default()
    }
}

/// A stub that wants [`KEY`] and answers `dims`-sized vectors, and an `openai` embedder on it
/// asking for `dims` dimensions, built from [`openai_cfg`] after `adjust`.
pub async fn openai_on_stub(
    dims: usize,
    adjust: impl FnOnce(&mut EmbeddingsConfig),
) -> (StubServer, Arc<dyn Embedder>) {
    let stub = StubServer::start(Some(KEY), dims).await;
    let mut cfg = EmbeddingsConfig {
        dimensions: Some(dims),
        ..openai_cfg(&stub)
    };
    adjust(&mut cfg);
    let embedder = build_embedder(&cfg).expect("embedder config");
    (stub, embedder)
}

/// An `http://127.0.0.1:PORT/v1` base URL that nobody listens on (a port bound, then freed).
pub fn dead_base_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    format!("http://127.0.0.1:{port}/v1")
}

/// Asserts that `err` is an HTTP error with this status (`None`: no response at all).
#[track_caller]
pub fn assert_http_error(err: &EmbedError, status: Option<u16>) {
    assert!(
        matches!(err, EmbedError::Http { status: s, .. } if *s == status),
        "expected an HTTP error with status {status:?}, got {err:?}"
    );
}

/// For tests on paused time (`#[tokio::test(start_paused = true)]`) that talk to the stub.
///
/// The stub runs on the test's own runtime, and paused time jumps to the next timer only when
/// the runtime is idle: no task to run and no I/O ready. Loopback I/O is ready by the time the
/// runtime looks, so the clock moves only while the client sleeps (a backoff) or the stub does
/// (`Mode::Slow`), and virtual durations are exact. Should the kernel ever be slow to deliver
/// a packet, a jump would land on the client's request timeout and fail the test; with this
/// 1 ms tick no jump is longer than 1 ms, far below any timeout the tests use.
pub fn tick_paused_clock() {
    tokio::spawn(async {
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    });
}

/// The vector the stub returns for `text`: derived from an FNV-1a hash of the
/// text, L2-normalised, so tests can predict it exactly.
pub fn stub_vector(text: &str, dims: usize) -> Vec<f32> {
    let mut state = 0xcbf2_9ce4_8422_2325u64;
    for b in text.as_bytes() {
        state ^= u64::from(*b);
        state = state.wrapping_mul(0x0100_0000_01b3);
    }
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn error(status: StatusCode, message: &str, kind: &str) -> Response {
    (
        status,
        Json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}})),
    )
        .into_response()
}

async fn openai_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let auth = header(&headers, "authorization");
    if let Some(key) = &shared.api_key
        && auth.as_deref() != Some(&format!("Bearer {key}"))
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
            "invalid_request_error",
        );
    }
    respond(&shared, "/v1/embeddings".into(), body, None, auth).await
}

async fn azure_handler(
    State(shared): State<Arc<Shared>>,
    Path(deployment): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let key = header(&headers, "api-key");
    if shared.api_key.is_some() && key != shared.api_key {
        return error(
            StatusCode::UNAUTHORIZED,
            "Access denied due to invalid subscription key",
            "401",
        );
    }
    let version = query
        .iter()
        .find(|(k, _)| k == "api-version")
        .map(|(_, v)| v.clone());
    if version.is_none() {
        return error(StatusCode::NOT_FOUND, "api-version is required", "404");
    }
    let path = format!("/openai/deployments/{deployment}/embeddings");
    respond(&shared, path, body, version, key).await
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn respond(
    shared: &Shared,
    path: String,
    body: Value,
    api_version: Option<String>,
    authorization: Option<String>,
) -> Response {
    let mode = shared.mode.lock().unwrap().clone();
    match mode {
        Mode::Normal | Mode::DropOne => {}
        Mode::RateLimitOnce => {
            shared.set_mode(Mode::Normal);
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached",
                "requests",
            );
            r.headers_mut().insert("retry-after", "0".parse().unwrap());
            return r;
        }
        Mode::ServerErrorOnce => {
            shared.set_mode(Mode::Normal);
            return (StatusCode::SERVICE_UNAVAILABLE, "upstream overloaded").into_response();
        }
        Mode::AlwaysRateLimited { retry_after_secs } => {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached",
                "requests",
            );
            r.headers_mut()
                .insert("retry-after", retry_after_secs.to_string().parse().unwrap());
            return r;
        }
        Mode::Slow(d) => tokio::time::sleep(d).await,
    }

    let inputs: Vec<String> = match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if inputs.is_empty() || inputs.iter().any(String::is_empty) {
        return error(
            StatusCode::BAD_REQUEST,
            "'$.input' is invalid",
            "invalid_request_error",
        );
    }
    let dimensions = body.get("dimensions").and_then(Value::as_u64);
    let model = body.get("model").and_then(Value::as_str).map(str::to_owned);
    let dims = dimensions.map_or(shared.default_dims, |d| d as usize);
    shared.seen.lock().unwrap().push(Seen {
        path,
        model: model.clone(),
        inputs: inputs.clone(),
        dimensions,
        api_version,
        authorization,
    });

    let mut data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| json!({"object": "embedding", "index": i, "embedding": stub_vector(t, dims)}))
        .collect();
    data.reverse();
    if mode == Mode::DropOne {
        data.pop();
    }
    let tokens: usize = inputs.iter().map(|t| t.split_whitespace().count()).sum();
    Json(json!({
        "object": "list",
        "data": data,
        "model": model.unwrap_or_default(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response()
}

impl Shared {
    fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

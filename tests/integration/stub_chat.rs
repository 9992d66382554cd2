//! A real HTTP server that speaks the OpenAI chat-completions API, for the `query` tool's
//! tests: `POST /v1/chat/completions` answers with the next scripted reply (in order) and
//! records every request's messages. An empty script answers 500, so a test that asks the
//! model more often than it planned fails visibly.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

/// Tokens the stub reports for each completion.
pub const PROMPT_TOKENS: u64 = 100;
pub const COMPLETION_TOKENS: u64 = 20;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<String>>,
    seen: Mutex<Vec<Value>>,
}

pub struct StubChat {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl StubChat {
    /// A stub that answers `replies` in order.
    pub async fn start(replies: &[&str]) -> Self {
        let shared = Arc::new(Shared::default());
        shared
            .script
            .lock()
            .unwrap()
            .extend(replies.iter().map(|r| r.to_string()));
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { addr, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// All message contents of request `i`, joined.
    pub fn messages_of(&self, i: usize) -> String {
        self.requests()[i]["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n---\n")
    }

    /// Replies not used yet.
    pub fn left(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

async fn complete(State(shared): State<Arc<Shared>>, Json(body): Json<Value>) -> Response {
    shared.seen.lock().unwrap().push(body.clone());
    let Some(reply) = shared.script.lock().unwrap().pop_front() else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({"error": {"message": "the stub's script is used up", "type": "server_error"}})),
        )
            .into_response();
    };
    Json(json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": COMPLETION_TOKENS, "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS},
    }))
    .into_response()
}

/// Points a test configuration's chat model at `stub`.
pub fn use_stub(config: &mut pg_mcp::config::Config, stub: &StubChat) {
    config.llm.llm_provider = pg_mcp::search::Provider::Compatible;
    config.llm.llm_base_url = Some(stub.base_url());
    config.llm.llm_model = Some("stub-sql-model".into());
}

//! A minimal MCP client over streamable HTTP, written against the spec so the tests check
//! the wire format: `initialize`, `notifications/initialized`, then requests with the
//! `Mcp-Session-Id` header; responses may be JSON or an SSE stream.

use serde_json::{Value, json};

pub struct McpClient {
    pub http: reqwest::Client,
    pub url: String,
    pub session: Option<String>,
    pub tenant: Option<String>,
    /// Extra headers sent with every request (Authorization, ...).
    pub headers: Vec<(String, String)>,
    next_id: u64,
}

/// A `tools/call` result.
#[derive(Debug, Clone)]
pub struct ToolOutcome {
    pub is_error: bool,
    pub structured: Value,
    pub text: String,
}

impl ToolOutcome {
    /// The stable error code of a failed call.
    pub fn error_code(&self) -> Option<&str> {
        self.structured.get("error_code").and_then(Value::as_str)
    }

    /// A numeric field of a failed call's `details` (panics when it is missing).
    pub fn detail_f64(&self, key: &str) -> f64 {
        self.structured["details"][key]
            .as_f64()
            .unwrap_or_else(|| panic!("details.{key} is not a number: {}", self.structured))
    }

    /// Panics with the error when the call failed.
    pub fn ok(self) -> Value {
        assert!(!self.is_error, "tool call failed: {}", self.structured);
        self.structured
    }

    /// The last column of the first row (forging tests put "rows of others" there).
    pub fn first_row_last(self) -> Value {
        let v = self.ok();
        v["rows"][0]
            .as_array()
            .and_then(|row| row.last())
            .cloned()
            .unwrap_or_else(|| panic!("no first row: {v}"))
    }

    /// The first column of the first row.
    pub fn scalar(self) -> Value {
        let v = self.ok();
        v["rows"][0][0].clone()
    }
}

/// A raw POST to an MCP endpoint as Seattle: the JSON-RPC content type and both reply types
/// accepted. For tests that look at the HTTP layer itself (status codes, headers, bytes).
pub fn seattle_post(url: &str, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-rls-user-id", crate::common::SEATTLE)
        .body(body.to_string())
}

/// Asserts an HTTP-layer refusal: 403 with the JSON error `FORBIDDEN` whose message names
/// `setting` (the configuration that would allow the request).
pub async fn assert_forbidden(resp: reqwest::Response, setting: &str, context: &str) {
    assert_eq!(resp.status(), 403, "{context}");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], json!("FORBIDDEN"), "{context}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(setting), "{context}: {message}");
}

/// Extracts the JSON-RPC message from a JSON or SSE body.
pub fn parse_body(content_type: &str, body: &str) -> Option<Value> {
    if content_type.starts_with("text/event-stream") {
        body.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("result").is_some() || v.get("error").is_some())
    } else if body.trim().is_empty() {
        None
    } else {
        serde_json::from_str(body).ok()
    }
}

/// What a stateless `tools/call` over HTTP got back.
pub struct StatelessReply {
    pub status: u16,
    /// The response said `Connection: close`.
    pub closes: bool,
    /// The JSON-RPC message, when the body held one.
    pub reply: Option<Value>,
    pub body: String,
}

/// One `tools/call execute_query` of `sql` as `tenant`, without a session (the server's
/// default stateless mode), on `http`'s pooled keep-alive connections; Err describes a
/// transport failure.
pub async fn stateless_query(
    http: &reqwest::Client,
    url: &str,
    tenant: &str,
    sql: &str,
) -> Result<StatelessReply, String> {
    let resp = http
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-rls-user-id", tenant)
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"sql": sql}}
        }))
        .send()
        .await
        .map_err(|e| format!("send: {e}"))?;
    let status = resp.status().as_u16();
    let closes = resp
        .headers()
        .get("connection")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.map_err(|e| format!("body: {e}"))?;
    Ok(StatelessReply {
        status,
        closes,
        reply: parse_body(&ct, &body),
        body,
    })
}

impl McpClient {
    pub async fn connect(url: &str, tenant: Option<&str>) -> Self {
        Self::connect_full(url, tenant, &[]).await
    }

    pub async fn connect_with_headers(url: &str, headers: &[(&str, String)]) -> Self {
        Self::connect_full(url, None, headers).await
    }

    async fn connect_full(url: &str, tenant: Option<&str>, headers: &[(&str, String)]) -> Self {
        let mut client = Self {
            http: reqwest::Client::new(),
            url: url.to_string(),
            session: None,
            tenant: tenant.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            next_id: 1,
        };
        let (status, headers, body) = client
            .post_raw(json!({
                "jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "pg-mcp-tests", "version": "1"}
                }
            }))
            .await;
        assert_eq!(status, 200, "initialize failed: {body:?}");
        client.session = headers
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_string());
        let init = body.expect("initialize result");
        assert_eq!(init["result"]["serverInfo"]["name"], "pg-mcp");
        let (status, _, _) = client
            .post_raw(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(status, 202, "notifications/initialized should be accepted");
        client
    }

    /// POSTs one JSON-RPC message; returns status, headers and the parsed JSON-RPC reply.
    pub async fn post_raw(
        &self,
        message: Value,
    ) -> (u16, reqwest::header::HeaderMap, Option<Value>) {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .json(&message);
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s);
        }
        if let Some(t) = &self.tenant {
            req = req.header("x-rls-user-id", t);
        }
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req.send().await.expect("HTTP request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.text().await.unwrap_or_default();
        let parsed = parse_body(&ct, &body).or_else(|| serde_json::from_str(&body).ok());
        (status, headers, parsed)
    }

    /// A JSON-RPC request; returns the whole reply (result or error).
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let (status, _, body) = self
            .post_raw(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        let body = body.unwrap_or_else(|| panic!("no JSON-RPC reply (HTTP {status})"));
        assert_eq!(body["id"], json!(id), "reply id matches");
        body
    }

    pub async fn list_tools(&mut self) -> Vec<Value> {
        let reply = self.request("tools/list", json!({})).await;
        reply["result"]["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub async fn call(&mut self, tool: &str, arguments: Value) -> ToolOutcome {
        let reply = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        let result = reply
            .get("result")
            .unwrap_or_else(|| panic!("tools/call {tool} gave a protocol error: {reply}"));
        let is_error = result["isError"].as_bool().unwrap_or(false);
        let text = result["content"][0]["text"]
            .as_str()
            .unwrap_or("")
            .to_string();
        // Errors carry their JSON (error_code, message) as text, not as structured content.
        let structured = match &result["structuredContent"] {
            Value::Null if is_error => serde_json::from_str(&text).unwrap_or(Value::Null),
            other => other.clone(),
        };
        ToolOutcome {
            is_error,
            structured,
            text,
        }
    }

    pub async fn query(&mut self, sql: &str) -> ToolOutcome {
        self.call("execute_query", json!({ "sql": sql })).await
    }
}

//! The bench's two MCP clients over streamable HTTP: [`McpSession`] (reqwest, replies as
//! `serde_json::Value`) for sessions, setup and the long calls, and [`FastCaller`] for the
//! measured loop, where every microsecond the load generator spends is taken from the server
//! it shares the cores with. Same approach as tests/integration/common/mcp_client.rs.

use anyhow::{Context, Result, anyhow, bail};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

/// Protocol version offered in `initialize`.
const PROTOCOL_VERSION: &str = "2025-06-18";

/// One MCP session of one tenant (`x-rls-user-id`), with `Mcp-Session-Id` when the server
/// issues one (session mode) and without it when the server is stateless.
pub struct McpSession {
    http: reqwest::Client,
    url: String,
    tenant: String,
    session: Option<String>,
    protocol: String,
    next_id: u64,
}

/// The first JSON-RPC reply `is_reply` accepts among an SSE body's `data:` events.
fn sse_reply<T: DeserializeOwned>(body: &str, is_reply: impl Fn(&T) -> bool) -> Option<T> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str::<T>(d).ok())
        .find(|r| is_reply(r))
}

/// Extracts the JSON-RPC reply from a JSON or SSE body.
fn parse_body(content_type: &str, body: &[u8]) -> Option<Value> {
    if content_type.starts_with("text/event-stream") {
        let text = std::str::from_utf8(body).ok()?;
        sse_reply(text, |v: &Value| {
            v.get("result").is_some() || v.get("error").is_some()
        })
    } else if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice(body).ok()
    }
}

impl McpSession {
    pub async fn open(url: &str, tenant: &Uuid) -> Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(4)
            .build()?;
        let mut s = Self {
            http,
            url: url.to_string(),
            tenant: tenant.hyphenated().to_string(),
            session: None,
            protocol: PROTOCOL_VERSION.to_string(),
            next_id: 1,
        };
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "pg-mcp-bench", "version": "1"}
            }
        });
        let resp = s.send(&init).await?;
        let status = resp.status().as_u16();
        s.session = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let reply = Self::read_reply(resp).await?;
        if status != 200 {
            bail!("initialize: HTTP {status}: {reply:?}");
        }
        let reply = reply.ok_or_else(|| anyhow!("initialize: no JSON-RPC reply"))?;
        if let Some(v) = reply["result"]["protocolVersion"].as_str() {
            s.protocol = v.to_string();
        }
        let resp = s
            .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            bail!("notifications/initialized: HTTP {status}");
        }
        Ok(s)
    }

    /// `count` sessions of `tenant`, opened one after the other.
    pub async fn open_many(url: &str, tenant: &Uuid, count: usize) -> Result<Vec<Self>> {
        let mut sessions = Vec::with_capacity(count);
        for _ in 0..count {
            sessions.push(Self::open(url, tenant).await?);
        }
        Ok(sessions)
    }

    /// Whether the server issued an `Mcp-Session-Id` (session mode) or not (stateless).
    pub fn has_session_id(&self) -> bool {
        self.session.is_some()
    }

    async fn send(&self, message: &Value) -> Result<reqwest::Response> {
        let mut req = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("x-rls-user-id", &self.tenant)
            .body(serde_json::to_vec(message)?);
        if let Some(s) = &self.session {
            req = req
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.protocol);
        }
        Ok(req.send().await?)
    }

    async fn read_reply(resp: reqwest::Response) -> Result<Option<Value>> {
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp.bytes().await?;
        Ok(parse_body(&ct, &body))
    }

    /// `tools/call`: the call's `result`, or an error for a transport failure, a non-200
    /// status or a JSON-RPC error.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> Result<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": name, "arguments": arguments}
        });
        let resp = self.send(&msg).await?;
        let status = resp.status().as_u16();
        let reply = Self::read_reply(resp).await?;
        if status != 200 {
            bail!("HTTP {status}: {}", short(&format!("{reply:?}")));
        }
        let mut reply = reply.ok_or_else(|| anyhow!("HTTP 200 without a JSON-RPC reply"))?;
        if reply["id"] != json!(id) {
            bail!("reply id {} does not match request id {id}", reply["id"]);
        }
        match reply.get_mut("result") {
            Some(result) => Ok(result.take()),
            None => bail!("JSON-RPC error: {}", short(&reply["error"].to_string())),
        }
    }

    /// `execute_query`; a tool error (`isError`) is an `Err` carrying its error_code.
    pub async fn execute_query(&mut self, arguments: Value) -> Result<Value> {
        let mut result = self.call_tool("execute_query", arguments).await?;
        let structured = result["structuredContent"].take();
        if result["isError"].as_bool().unwrap_or(false) {
            bail!(
                "isError: {} {}",
                structured["error_code"].as_str().unwrap_or("?"),
                short(structured["message"].as_str().unwrap_or(""))
            );
        }
        Ok(structured)
    }

    /// A lean caller for this session's measured loop (see [`FastCaller`]).
    pub async fn fast_caller(&self) -> Result<FastCaller> {
        FastCaller::connect(self).await
    }

    /// Ends the session (DELETE), so finished sessions do not stay in the server's memory.
    pub async fn close(self) {
        if let Some(s) = &self.session {
            let _ = self
                .http
                .delete(&self.url)
                .header("mcp-session-id", s)
                .header("mcp-protocol-version", &self.protocol)
                .header("x-rls-user-id", &self.tenant)
                .send()
                .await;
        }
    }
}

/// The measured loop's MCP client: the same `tools/call` request over one persistent
/// HTTP/1.1 connection (hyper, no pool, no redirects), with the reply parsed into small typed
/// structs instead of a `serde_json::Value` tree. It still checks everything a client must:
/// HTTP status, JSON or SSE framing, the JSON-RPC id, `isError` and the row count. A load
/// generator shares the machine's cores with the server, so every microsecond it spends is
/// one the server does not get.
pub struct FastCaller {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<hyper::body::Bytes>>,
    uri: hyper::Uri,
    host: hyper::header::HeaderValue,
    tenant: hyper::header::HeaderValue,
    session: Option<hyper::header::HeaderValue>,
    protocol: hyper::header::HeaderValue,
    next_id: u64,
}

#[derive(serde::Serialize)]
struct CallRequest<'a> {
    jsonrpc: &'static str,
    id: u64,
    method: &'static str,
    params: CallParams<'a>,
}

#[derive(serde::Serialize)]
struct CallParams<'a> {
    name: &'static str,
    arguments: QueryArguments<'a>,
}

#[derive(serde::Serialize)]
struct QueryArguments<'a> {
    sql: &'static str,
    params: [&'a Value; 1],
}

#[derive(serde::Deserialize)]
struct Reply {
    id: Option<u64>,
    result: Option<CallResult>,
    error: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct CallResult {
    #[serde(rename = "structuredContent")]
    structured: Option<Structured>,
    #[serde(rename = "isError", default)]
    is_error: bool,
}

#[derive(serde::Deserialize)]
struct Structured {
    row_count: Option<u64>,
    error_code: Option<String>,
}

impl FastCaller {
    async fn connect(session: &McpSession) -> Result<Self> {
        let uri: hyper::Uri = session.url.parse().context("invalid --url")?;
        let authority = uri
            .authority()
            .ok_or_else(|| anyhow!("--url has no host"))?
            .clone();
        let port = authority.port_u16().unwrap_or(80);
        let tcp = tokio::net::TcpStream::connect((authority.host(), port)).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(conn);
        let header = |v: &str| hyper::header::HeaderValue::from_str(v);
        Ok(Self {
            sender,
            host: header(authority.as_str())?,
            uri,
            tenant: header(&session.tenant)?,
            session: session.session.as_deref().map(header).transpose()?,
            protocol: header(&session.protocol)?,
            next_id: 1_000_000,
        })
    }

    /// `execute_query` of `sql` with one parameter; Ok when exactly one row came back.
    pub async fn query_one_row(&mut self, sql: &'static str, param: &Value) -> Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let body = serde_json::to_vec(&CallRequest {
            jsonrpc: "2.0",
            id,
            method: "tools/call",
            params: CallParams {
                name: "execute_query",
                arguments: QueryArguments {
                    sql,
                    params: [param],
                },
            },
        })?;
        let mut req = hyper::Request::post(self.uri.clone())
            .header(hyper::header::HOST, self.host.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json, text/event-stream")
            .header("x-rls-user-id", self.tenant.clone())
            .header("mcp-protocol-version", self.protocol.clone());
        if let Some(s) = &self.session {
            req = req.header("mcp-session-id", s.clone());
        }
        let req = req.body(http_body_util::Full::new(hyper::body::Bytes::from(body)))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status();
        let sse = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            bail!("HTTP {status}: {}", short(&String::from_utf8_lossy(&body)));
        }
        let reply = if sse {
            sse_reply(std::str::from_utf8(&body)?, |r: &Reply| {
                r.result.is_some() || r.error.is_some()
            })
        } else {
            serde_json::from_slice::<Reply>(&body).ok()
        };
        let reply = reply.ok_or_else(|| anyhow!("HTTP 200 without a JSON-RPC reply"))?;
        if reply.id != Some(id) {
            bail!("reply id {:?} does not match request id {id}", reply.id);
        }
        let result = reply
            .result
            .ok_or_else(|| anyhow!("JSON-RPC error for request {id}"))?;
        let structured = result
            .structured
            .ok_or_else(|| anyhow!("no structuredContent"))?;
        if result.is_error {
            bail!(
                "isError: {}",
                structured.error_code.as_deref().unwrap_or("?")
            );
        }
        match structured.row_count {
            Some(1) => Ok(()),
            n => bail!("expected row_count 1, got {n:?}"),
        }
    }
}

/// At most 200 bytes of a server message, so one bad reply does not flood the report.
pub fn short(s: &str) -> String {
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &s[..end])
    } else {
        s.to_string()
    }
}

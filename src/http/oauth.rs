//! This server as an OAuth 2.1 protected resource (MCP authorization): its metadata
//! (RFC 9728) at `/.well-known/oauth-protected-resource` and at the path form for its
//! resource URL, and the `WWW-Authenticate` challenge of a 401 that points clients at it, so
//! they can discover the authorization server, and the 403 `insufficient_scope` challenge of
//! a token without the scope a request needs. Published only with PG_MCP_RESOURCE_URL.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::auth::Identity;
use crate::config::Config;
use crate::error::{AppError, ErrorCode};
use crate::mcp::{CONNECTION_TOOLS, OPERATOR_TOOLS};
use crate::state::AppState;

/// Where the metadata of `resource` lives: the well-known path inserted between its origin
/// and its path (RFC 9728 §3.1), e.g. `https://h/mcp` → `https://h/.well-known/oauth-protected-resource/mcp`.
pub fn metadata_url(resource: &str) -> String {
    match url::Url::parse(resource) {
        Ok(url) => {
            let path = url.path().trim_end_matches('/');
            format!(
                "{}/.well-known/oauth-protected-resource{path}",
                url.origin().ascii_serialization()
            )
        }
        Err(_) => String::new(),
    }
}

/// The `WWW-Authenticate` value of a 401: `Bearer`, with `resource_metadata` when the
/// resource URL is configured and the scope every request needs (PG_MCP_READ_SCOPE).
pub fn challenge(config: &Config) -> String {
    let mut challenge = "Bearer".to_string();
    if let Some(resource) = &config.resource_url {
        challenge.push_str(&format!(
            " resource_metadata=\"{}\"",
            metadata_url(resource)
        ));
        if !config.read_scope.trim().is_empty() {
            challenge.push_str(&format!(", scope=\"{}\"", config.read_scope.trim()));
        }
    }
    challenge
}

/// The 403 of a token without `scope` (RFC 6750 §3.1, MCP's scope challenge): the client
/// may ask the authorization server for it and retry.
fn insufficient_scope(config: &Config, scope: &str, why: &str) -> Response {
    let message = format!("{why}: the token lacks scope {scope:?}");
    let mut response = AppError::new(ErrorCode::InsufficientScope, message).into_response();
    let mut challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
    if let Some(resource) = &config.resource_url {
        challenge.push_str(&format!(
            ", resource_metadata=\"{}\"",
            metadata_url(resource)
        ));
    }
    if let Ok(value) = http::HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The largest MCP request body whose tool name is read for the scope check.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// The tool a JSON-RPC `tools/call` body names.
fn called_tool(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Params {
        name: String,
    }
    #[derive(serde::Deserialize)]
    struct Call {
        method: String,
        params: Params,
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    (call.method == "tools/call").then_some(call.params.name)
}

/// As an OAuth resource server (jwt mode with PG_MCP_RESOURCE_URL), refuses with 403
/// `insufficient_scope` a request whose token lacks the scope it needs: the read scope for
/// any request (when one is set), the operator scope for the DBA and connection tools, the
/// write scope for the write-mode tools. The tools check the same again; this tells an OAuth
/// client which scope to ask for.
pub async fn check_scope(
    state: &AppState,
    identity: &Identity,
    request: Request,
) -> Result<Request, Response> {
    let config = state.config();
    if !state.auth.is_jwt() || config.resource_url.is_none() {
        return Ok(request);
    }
    let (read, write, operator) = state.auth.scopes();
    if !identity.may_read {
        return Err(insufficient_scope(
            &config,
            read,
            "this server needs its read scope",
        ));
    }
    if request.method() != http::Method::POST || (identity.operator && identity.may_write()) {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return Err(AppError::new(
            ErrorCode::ValidationError,
            format!("the request body could not be read, or is larger than {MAX_BODY_BYTES} bytes"),
        )
        .into_response());
    };
    let needed = match called_tool(&bytes).as_deref() {
        Some(tool)
            if !identity.operator
                && (OPERATOR_TOOLS.contains(&tool) || CONNECTION_TOOLS.contains(&tool)) =>
        {
            Some((operator, format!("{tool} is an operator tool")))
        }
        Some(tool @ ("execute_transaction" | "batch_execute")) if !identity.may_write() => {
            Some((write, format!("{tool} writes")))
        }
        _ => None,
    };
    match needed {
        Some((scope, why)) => Err(insufficient_scope(&config, scope, &why)),
        None => Ok(Request::from_parts(parts, axum::body::Body::from(bytes))),
    }
}

/// The scopes this resource understands: reading (when one is required), writing, operating.
fn scopes(config: &Config) -> Vec<String> {
    let mut scopes = vec![
        config.read_scope.trim().to_string(),
        config.write_scope.clone(),
        config.operator_scope.clone(),
    ];
    scopes.retain(|s| !s.is_empty());
    scopes.dedup();
    scopes
}

/// `GET /.well-known/oauth-protected-resource[/mcp]`: the protected resource metadata.
pub async fn metadata(State(state): State<Arc<AppState>>) -> Result<Json<Value>, AppError> {
    let config = state.config();
    let Some(resource) = &config.resource_url else {
        return Err(AppError::new(
            ErrorCode::NotFound,
            "no protected resource metadata: PG_MCP_RESOURCE_URL is not set",
        ));
    };
    Ok(Json(json!({
        "resource": resource,
        "authorization_servers": config.authorization_servers,
        "scopes_supported": scopes(&config),
        "bearer_methods_supported": ["header"],
        "resource_name": "pg-mcp",
    })))
}

#[cfg(test)]
mod tests {
    use super::metadata_url;

    #[test]
    fn the_metadata_sits_between_origin_and_path() {
        assert_eq!(
            metadata_url("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8000/"),
            "http://127.0.0.1:8000/.well-known/oauth-protected-resource"
        );
    }
}

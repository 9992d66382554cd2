//! This server as an OAuth 2.1 protected resource (MCP authorization): its metadata
//! (RFC 9728) at `/.well-known/oauth-protected-resource` and at the path form for its
//! resource URL, and the `WWW-Authenticate` challenge of a 401 that points clients at it, so
//! they can discover the authorization server. Published only with PG_MCP_RESOURCE_URL.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::config::Config;
use crate::error::{AppError, ErrorCode};
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
/// resource URL is configured.
pub fn challenge(config: &Config) -> String {
    match &config.resource_url {
        Some(resource) => format!("Bearer resource_metadata=\"{}\"", metadata_url(resource)),
        None => "Bearer".to_string(),
    }
}

/// The scopes this resource understands: writing and operating (reading needs none).
fn scopes(config: &Config) -> Vec<String> {
    let mut scopes = vec![config.write_scope.clone(), config.operator_scope.clone()];
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

//! Host validation on `/mcp` (DNS-rebinding protection): the one place both MCP paths (rmcp's
//! handler and the stateless fast path) are checked, so they cannot disagree. rmcp's own Host
//! and Origin checks are switched off in `server::router`; this layer and `origin` replace
//! them for every request.
//!
//! The rule is rmcp's: an empty list allows any host; an entry without a port allows that host
//! on any port; an entry with a port only that port. Entries may be bare IPv6 addresses
//! (`::1`, the default) or bracketed ones (`[::1]:8000`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::uri::Authority;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, ErrorCode};

/// A host and optional port, lower case, without IPv6 brackets.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostPort {
    host: String,
    port: Option<u16>,
}

impl HostPort {
    fn new(host: &str, port: Option<u16>) -> Self {
        Self {
            host: host.trim_matches(['[', ']']).to_ascii_lowercase(),
            port,
        }
    }

    /// An allow-list entry: an authority (`host`, `host:port`, `[v6]:port`) or a bare IPv6
    /// address, which does not parse as an authority.
    fn entry(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        Some(match Authority::try_from(text) {
            Ok(a) => Self::new(a.host(), a.port_u16()),
            Err(_) => Self::new(text, None),
        })
    }
}

/// The allowed `Host` values (`PG_MCP_ALLOWED_HOSTS`).
#[derive(Debug, Clone)]
pub struct HostPolicy {
    allowed: Vec<HostPort>,
}

impl HostPolicy {
    pub fn new(configured: &[String]) -> Self {
        Self {
            allowed: configured
                .iter()
                .filter_map(|e| HostPort::entry(e))
                .collect(),
        }
    }

    /// Whether a request's `Host` (or `:authority`) value is allowed; malformed is not.
    pub fn allows(&self, host: &str) -> bool {
        let Ok(authority) = Authority::try_from(host) else {
            return false;
        };
        let host = HostPort::new(authority.host(), authority.port_u16());
        self.allowed.is_empty()
            || self
                .allowed
                .iter()
                .any(|a| a.host == host.host && a.port.is_none_or(|p| host.port == Some(p)))
    }
}

/// Refuses a request whose Host is missing, malformed or not allowed: 403 with a JSON body.
pub async fn check_host(
    State(policy): State<Arc<HostPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let host = request
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match host {
        Some(h) if policy.allows(&h) => next.run(request).await,
        _ => AppError::new(
            ErrorCode::Forbidden,
            "the Host header is not allowed (DNS-rebinding protection); add it to PG_MCP_ALLOWED_HOSTS",
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_list_allows_every_loopback_spelling() {
        let p = HostPolicy::new(&["localhost".into(), "127.0.0.1".into(), "::1".into()]);
        for ok in [
            "localhost:8000",
            "LOCALHOST",
            "127.0.0.1:1",
            "[::1]:8000",
            "[::1]",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8000",
            "localhost.evil.com",
            "127.0.0.1:8000/x",
            "",
            "::1",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn ports_and_the_empty_list() {
        let p = HostPolicy::new(&["mcp.example.com:443".into(), "[::1]:8000".into()]);
        assert!(p.allows("mcp.example.com:443"));
        assert!(!p.allows("mcp.example.com:8443"));
        assert!(!p.allows("mcp.example.com"));
        assert!(p.allows("[::1]:8000"));
        assert!(!p.allows("[::1]:8001"));
        assert!(HostPolicy::new(&[]).allows("anything:1"));
    }
}

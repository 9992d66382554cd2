//! Origin validation (MCP streamable HTTP transport: "if the Origin header is present and
//! invalid, servers MUST respond with 403 Forbidden"). It stops a web page the user happens to
//! visit from driving the local server through the browser (DNS rebinding, CSRF).
//!
//! A request without `Origin` (every non-browser MCP client) passes. A present Origin must be
//! one of `PG_MCP_ALLOWED_ORIGINS`; with none configured, only loopback origins
//! (`http(s)://localhost`, `127.0.0.1`, `[::1]`, any port) are allowed.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{AppError, ErrorCode};

/// The origins a browser may call from.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    /// Normalised (lower case, no trailing slash); empty: loopback origins only.
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn new(configured: &[String]) -> Self {
        Self {
            allowed: configured
                .iter()
                .map(|o| normalise(o))
                .filter(|o| !o.is_empty())
                .collect(),
        }
    }

    pub fn allows(&self, origin: &str) -> bool {
        let origin = normalise(origin);
        if self.allowed.is_empty() {
            is_loopback_origin(&origin)
        } else {
            self.allowed.contains(&origin)
        }
    }
}

fn normalise(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// `http(s)://` + a loopback host + an optional port, and nothing else (no path, no userinfo).
fn is_loopback_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
    let plain = url.username().is_empty() && url.password().is_none();
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    matches!(url.scheme(), "http" | "https") && bare && plain && loopback
}

/// Refuses a request whose Origin is present and not allowed: 403 with a JSON error body.
pub async fn check_origin(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(origin) = request.headers().get(http::header::ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| policy.allows(o));
        if !allowed {
            let shown = String::from_utf8_lossy(origin.as_bytes())
                .chars()
                .take(200)
                .collect::<String>();
            return AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "Origin {shown:?} is not allowed; add it to PG_MCP_ALLOWED_ORIGINS (without it only loopback origins are)"
                ),
            )
            .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_origins_only_by_default() {
        let p = OriginPolicy::new(&[]);
        for ok in [
            "http://localhost",
            "http://localhost:6274",
            "https://127.0.0.1:8443",
            "http://[::1]:3000",
            "HTTP://LOCALHOST:1/",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "http://evil.example.com",
            "null",
            "http://localhost.evil.example.com",
            "http://127.0.0.1.nip.io",
            "file://localhost",
            "http://user@localhost",
            "http://localhost/path",
            "",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
    }

    #[test]
    fn configured_origins_replace_the_default() {
        let p = OriginPolicy::new(&["https://app.example.com/".to_string()]);
        assert!(p.allows("https://app.example.com"));
        assert!(p.allows("HTTPS://APP.EXAMPLE.COM"));
        assert!(!p.allows("http://app.example.com"));
        assert!(!p.allows("http://localhost"));
    }
}

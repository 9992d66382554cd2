//! Resolves the caller's tenant before any MCP message is handled (see `auth` for how).
//!
//! `x-rls-user-id` must be a UUID: anything else is refused here with HTTP 400
//! `INVALID_TENANT`, before a session or tool sees it. A request without the header gets the
//! configured default tenant, or none at all; tools that touch data then answer
//! `TENANT_REQUIRED` (fail closed), while `initialize` and `tools/list` still work.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::app::AppState;
use crate::db::Tenant;
use crate::error::{AppError, ErrorCode};

pub const RLS_HEADER: &str = "x-rls-user-id";

/// The tenant of one HTTP request, as seen by the tools (`None`: no tenant).
#[derive(Debug, Clone)]
pub struct RequestTenant(pub Option<Tenant>);

/// The HTTP request's span, so tool spans (run on rmcp's tasks) can be its children.
#[derive(Debug, Clone)]
pub struct RequestSpan(pub tracing::Span);

/// Parses a tenant header value strictly: a UUID in any standard spelling, normalised.
pub fn parse_tenant_header(value: &[u8]) -> Result<Uuid, AppError> {
    let text = std::str::from_utf8(value).map_err(|_| invalid_tenant())?;
    Uuid::parse_str(text.trim()).map_err(|_| invalid_tenant())
}

fn invalid_tenant() -> AppError {
    AppError::new(
        ErrorCode::InvalidTenant,
        format!(
            "the {RLS_HEADER} header must be a UUID such as f47ac10b-58cc-4372-a567-0e02b2c3d479"
        ),
    )
}

pub async fn resolve_tenant(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    match state.auth.authenticate(request.headers()) {
        Ok(tenant) => {
            request.extensions_mut().insert(RequestTenant(tenant));
            request
                .extensions_mut()
                .insert(RequestSpan(tracing::Span::current()));
            next.run(request).await
        }
        Err(e) => {
            let unauthorized = e.code == ErrorCode::Unauthorized;
            let mut response = e.into_response();
            if unauthorized {
                response.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Bearer"),
                );
            }
            response
        }
    }
}

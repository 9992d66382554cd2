//! Resolves the caller's tenant before any MCP message is handled (see `auth` for how).
//!
//! `x-rls-user-id` must be a UUID: anything else is refused here with HTTP 400
//! `INVALID_TENANT`, before a session or tool sees it. A request without the header gets the
//! configured default tenant, or none at all; tools that touch data then answer
//! `TENANT_REQUIRED` (fail closed), while `initialize` and `tools/list` still work.

use std::sync::Arc;

use crate::error::ErrorCode;
use crate::state::AppState;
use crate::tools::Caller;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub async fn resolve_tenant(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    match state.auth.identify(request.headers()).await {
        Ok(identity) => {
            let mut request = match super::oauth::check_scope(&state, &identity, request).await {
                Ok(request) => request,
                Err(refused) => return refused,
            };
            let request_id = request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(128).collect());
            request.extensions_mut().insert(Caller {
                tenant: identity.tenant,
                span: tracing::Span::current(),
                request_id,
                operator: identity.operator,
            });
            next.run(request).await
        }
        Err(e) => {
            let unauthorized = e.code == ErrorCode::Unauthorized;
            let mut response = e.into_response();
            if unauthorized
                && let Ok(challenge) =
                    http::HeaderValue::from_str(&super::oauth::challenge(&state.config()))
            {
                response
                    .headers_mut()
                    .insert(http::header::WWW_AUTHENTICATE, challenge);
            }
            response
        }
    }
}

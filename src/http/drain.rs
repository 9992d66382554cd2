//! The drain before a graceful shutdown ("lame duck", PG_MCP_SHUTDOWN_DRAIN_SECS): the server
//! still answers, but each HTTP/1 response carries `Connection: close`. A proxy in front
//! (nginx keeps idle keep-alive connections to every replica) then drops each connection
//! after a complete reply. Closing an idle connection instead races with the proxy writing
//! its next request on it, and a proxy does not resend a POST it already sent.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

pub async fn close_while_draining(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/2 has no Connection header (its connections end with GOAWAY at shutdown).
    let http1 = request.version() <= Version::HTTP_11;
    let mut response = next.run(request).await;
    if http1 && state.is_draining() {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

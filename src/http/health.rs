//! `GET /health`: process and database status; 503 when a database is unreachable.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

pub async fn health(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let mut databases = Vec::new();
    for db in state.databases.all() {
        databases.push(db.status().await);
    }
    let healthy = databases.iter().all(|d| d.healthy);
    let mut body = json!({
        "status": if healthy { "healthy" } else { "unhealthy" },
        "is_healthy": healthy,
        "database_reachable": healthy,
        "server_version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started_at.elapsed().as_secs(),
        "draining": state.is_draining(),
        "databases": databases,
        "config": state.config_status.lock().expect("lock").clone(),
    });
    if let Some(jwks) = state.auth.jwks_status().await {
        body["auth"] = json!({ "jwks": jwks });
    }
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

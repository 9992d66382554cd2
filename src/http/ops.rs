//! Operations endpoints: `/metrics` (Prometheus), `/connections`, `/query_history`,
//! `/health/live`, `/health/ready`, and the HTTP metrics middleware.
//!
//! `/connections` and `/query_history` show who ran what, so they need
//! `Authorization: Bearer <PG_MCP_ADMIN_TOKEN>` whenever a token is configured, and are
//! refused outright on a non-loopback bind without one. Tokens are compared in constant time.

use secrecy::ExposeSecret;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::error::{AppError, ErrorCode};
use crate::history::HistoryFilter;
use crate::state::AppState;
use crate::telemetry;

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.databases.record_metrics();
    if let Some(embedder) = state.embedder_if_built() {
        telemetry::record_embedding_cache(embedder.hits(), embedder.misses());
    }
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        telemetry::prometheus().render(),
    )
        .into_response()
}

/// Checks the admin credential of `/connections`, `/query_history` and `/doctor`.
fn authorize_admin(state: &AppState, headers: &HeaderMap) -> Result<(), AppError> {
    let config = state.config();
    let Some(expected) = config
        .admin_token
        .as_ref()
        .map(|t| t.expose_secret())
        .filter(|t| !t.is_empty())
    else {
        return if state.config().is_loopback() {
            Ok(())
        } else {
            Err(AppError::new(
                ErrorCode::Forbidden,
                "admin endpoints are disabled on a non-loopback address until PG_MCP_ADMIN_TOKEN is set",
            ))
        };
    };
    let given = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(AppError::new(
            ErrorCode::Unauthorized,
            "a valid admin bearer token is required",
        ))
    }
}

pub async fn connections(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&state, &headers)?;
    let mut list = Vec::new();
    for db in state.databases.all() {
        list.push(db.status().await);
    }
    let config = state.config_status.lock().expect("lock").clone();
    Ok(Json(json!({
        "count": list.len(),
        "connections": list,
        "config_generation": config.generation,
        "config_loaded_at": config.loaded_at,
    })))
}

/// `pg-mcp doctor` for operators: the row-level-security audit of every configured database,
/// as the server's own role.
pub async fn doctor(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&state, &headers)?;
    let cfg = crate::doctor::DoctorConfig::from_config(&state.config())?;
    let mut reports = Vec::new();
    for db in state.databases.all() {
        reports.push(crate::doctor::audit(&db.pool, &cfg.for_database(&db)).await?);
    }
    let clean = reports.iter().all(crate::doctor::Report::is_clean);
    Ok(Json(json!({ "clean": clean, "databases": reports })))
}

/// Which database `/schema_cache` is about (all when omitted).
#[derive(Debug, serde::Deserialize)]
pub struct CacheTarget {
    pub database: Option<String>,
}

/// What each database's schema cache holds (`GET /schema_cache`); no database work.
pub async fn schema_cache(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&state, &headers)?;
    let caches: Vec<Value> = state
        .schemas
        .all()
        .into_iter()
        .map(|c| match c.peek() {
            Some(s) => json!({ "loaded": true, "snapshot": s.summary() }),
            None => json!({ "loaded": false }),
        })
        .collect();
    Ok(Json(
        json!({ "databases": state.databases.names(), "caches": caches }),
    ))
}

/// Reloads the schema cache now (`POST /schema_cache/refresh[?database=name]`), e.g. after a
/// migration, without waiting for the change check.
pub async fn refresh_schema_cache(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(target): Query<CacheTarget>,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&state, &headers)?;
    let names = match target.database {
        Some(name) => vec![state.databases.get(Some(&name))?.name.clone()],
        None => state.databases.names(),
    };
    let mut refreshed = Vec::new();
    for name in names {
        refreshed.push(state.schemas.of(&name)?.refresh().await?.summary());
    }
    Ok(Json(json!({ "refreshed": refreshed })))
}

pub async fn query_history(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(filter): Query<HistoryFilter>,
) -> Result<Json<Value>, AppError> {
    authorize_admin(&state, &headers)?;
    let (entries, source, fallback_reason) = state.audit.recent(&state.history, &filter).await;
    Ok(Json(json!({
        "count": entries.len(),
        "source": source,
        "fallback_reason": fallback_reason,
        "capacity": state.history.capacity(),
        "audit": state.audit.status(),
        "entries": entries,
    })))
}

pub async fn live() -> Json<Value> {
    Json(json!({ "status": "alive" }))
}

pub async fn ready(State(state): State<Arc<AppState>>) -> (StatusCode, Json<Value>) {
    let mut ready = true;
    let mut databases = Vec::new();
    for db in state.databases.all() {
        let status = db.status().await;
        ready &= status.healthy;
        databases.push(json!({ "name": status.name, "healthy": status.healthy }));
    }
    // A stopping replica is taken out of rotation while it finishes its calls.
    let draining = state.is_draining();
    let status = match (draining, ready) {
        (true, _) => "draining",
        (false, true) => "ready",
        (false, false) => "not_ready",
    };
    let code = if ready && !draining {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        code,
        Json(json!({ "status": status, "databases": databases })),
    )
}

/// Counts every HTTP request by matched route and status.
pub async fn track_http(request: Request, next: Next) -> Response {
    let route = route_label(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str())
            .unwrap_or_else(|| request.uri().path()),
    );
    let started = Instant::now();
    let response = next.run(request).await;
    telemetry::record_http(route, response.status().as_u16(), started.elapsed());
    response
}

/// The route as a fixed label (no allocation per request; unknown paths share one label so
/// a scanner cannot grow the metric's cardinality).
fn route_label(path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/health/live" => "/health/live",
        "/health/ready" => "/health/ready",
        "/metrics" => "/metrics",
        "/connections" => "/connections",
        "/query_history" => "/query_history",
        "/schema_cache" => "/schema_cache",
        "/schema_cache/refresh" => "/schema_cache/refresh",
        "/doctor" => "/doctor",
        p if p == "/mcp" || p.starts_with("/mcp/") => "/mcp",
        _ => "unmatched",
    }
}

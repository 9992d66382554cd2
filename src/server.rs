//! The server: the router, serving it with graceful shutdown, and the start-up checks. The one
//! entry point that `main` and the tests share, so what the tests run is what ships.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ErrorCode;
use crate::http;
use crate::mcp::PgMcpServer;
use crate::state::AppState;

/// Fail closed at start-up: never serve through a role that skips RLS or can read other
/// sessions. A database that is down is not fatal (`/health` reports it; the pool recovers).
/// Also notes whether the retail demo is installed (its tool is listed only then).
pub async fn check_databases(state: &AppState) -> anyhow::Result<()> {
    for db in state.databases.all() {
        match state.check_database(&db).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::Forbidden => return Err(e.into()),
            Err(e) => {
                tracing::warn!(database = %db.name, error = %e, "database or its monitoring connection not reachable at start-up")
            }
        }
    }
    Ok(())
}

/// Serves `state` on `listener` until `shutdown` completes. Then it drains for
/// `PG_MCP_SHUTDOWN_DRAIN_SECS` (still serving, see `http::drain`), stops accepting, gives
/// in-flight MCP requests `PG_MCP_SHUTDOWN_GRACE_SECS` to finish and deliver their replies,
/// ends the MCP sessions, flushes the audit log, and closes the pools (PostgreSQL cancels what
/// still runs on them).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    check_databases(&state).await?;
    state.auth.warm_up().await;
    state.audit.start();
    let sessions = CancellationToken::new();
    let stopping = CancellationToken::new();
    spawn_replica_checks(&state, stopping.clone()).await;
    let app = router(state.clone(), sessions.clone());
    tracing::info!(addr = %listener.local_addr()?, databases = ?state.databases.names(), "pg-mcp listening");
    // TCP_NODELAY: rmcp writes a reply as several small SSE writes; with Nagle's algorithm
    // the last one waits for the client's delayed ACK (~40 ms per call).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| {
        let _ = tcp.set_nodelay(true);
    });
    let stop = stopping.clone();
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.cancelled().await });
    let mut serve_task = tokio::spawn(server.into_future());
    tokio::select! {
        ended = &mut serve_task => {
            ended.context("the server task failed")?.context("serving failed")?;
            return Ok(());
        }
        _ = shutdown => {}
    }
    let drain = Duration::from_secs(state.config().shutdown_drain_secs);
    state
        .draining
        .store(true, std::sync::atomic::Ordering::Relaxed);
    if !drain.is_zero() {
        tracing::info!(
            ?drain,
            "shutdown requested: draining (still serving; readiness fails, responses close their connections)"
        );
        tokio::time::sleep(drain).await;
    }
    let grace = Duration::from_secs(state.config().shutdown_grace_secs);
    tracing::info!(
        ?grace,
        in_flight = state.in_flight.len(),
        "shutdown requested: no new connections; finishing in-flight tool calls"
    );
    stopping.cancel();
    state.in_flight.close();
    if tokio::time::timeout(grace, state.in_flight.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            in_flight = state.in_flight.len(),
            "grace period over; cancelling remaining tool calls"
        );
    }
    sessions.cancel();
    match tokio::time::timeout(Duration::from_secs(2), &mut serve_task).await {
        Ok(ended) => ended
            .context("the server task failed")?
            .context("serving failed")?,
        Err(_) => serve_task.abort(),
    }
    // The calls are over: what the audit log still holds goes in before the pools close.
    state.audit.shutdown(Duration::from_secs(5)).await;
    let _ = tokio::time::timeout(Duration::from_secs(2), state.databases.close()).await;
    tracing::info!("stopped");
    Ok(())
}

/// Checks the read replicas once (so reads reach them from the first call), then every
/// PG_MCP_REPLICA_CHECK_SECS until `stop`, for whatever databases are configured then.
async fn spawn_replica_checks(state: &Arc<AppState>, stop: CancellationToken) {
    let check_all = async |state: &AppState| {
        for db in state.databases.all() {
            if !db.replicas.is_empty() {
                db.replicas.check(&db.name).await;
            }
        }
    };
    check_all(state).await;
    let state = state.clone();
    tokio::spawn(async move {
        loop {
            let every = Duration::from_secs(state.config().replica_check_secs.max(1));
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => check_all(&state).await,
            }
        }
    });
}

/// The axum router: `/mcp` (MCP streamable HTTP) and the plain HTTP routes. `sessions` ends
/// rmcp's handlers and open streams (cancelled once the grace period is over).
pub fn router(state: Arc<AppState>, sessions: CancellationToken) -> Router {
    crate::telemetry::spawn_metrics_upkeep();
    let trusted = Arc::new(state.config().trusted_proxy_nets().unwrap_or_default());
    let origins = state.config().allowed_origins.clone();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!state.config().stateless_http)
        .with_json_response(state.config().stateless_http)
        // Host and Origin are checked once, for both MCP paths, by `http::host` and
        // `http::origin` (below), so rmcp's copies of those checks are off.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_cancellation_token(sessions.child_token());
    let mcp_state = state.clone();
    let mcp_service = StreamableHttpService::new(
        move || Ok(PgMcpServer::new(mcp_state.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );

    let mcp_routes = Router::new()
        .route(
            "/mcp/tools",
            get(crate::mcp::tools_endpoint).with_state(state.clone()),
        )
        .nest_service("/mcp", mcp_service)
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), sessions.clone()),
            crate::mcp::fast_path::fast_path,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::tenant::resolve_tenant,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_in_flight,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(http::host::HostPolicy::new(&state.config().allowed_hosts)),
            http::host::check_host,
        ));

    let state_for_drain = state.clone();
    Router::new()
        .route("/health", get(http::health::health))
        .route(
            "/.well-known/oauth-protected-resource",
            get(http::oauth::metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(http::oauth::metadata),
        )
        .route("/health/live", get(http::ops::live))
        .route("/health/ready", get(http::ops::ready))
        .route("/metrics", get(http::ops::metrics))
        .route("/connections", get(http::ops::connections))
        .route("/query_history", get(http::ops::query_history))
        .route("/doctor", get(http::ops::doctor))
        .route("/schema_cache", get(http::ops::schema_cache))
        .route(
            "/schema_cache/refresh",
            axum::routing::post(http::ops::refresh_schema_cache),
        )
        .with_state(state)
        .merge(mcp_routes)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(http::origin::OriginPolicy::new(&origins)),
            http::origin::check_origin,
        ))
        .layer(axum::middleware::from_fn(http::ops::track_http))
        .layer(axum::middleware::from_fn_with_state(
            state_for_drain,
            http::drain::close_while_draining,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(
            move |r: &axum::http::Request<axum::body::Body>| request_span(r, &trusted),
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// Counts an MCP POST as in flight until its response body (the reply, JSON or SSE) has been
/// sent or dropped. GETs are long-lived notification streams and are not waited for.
async fn track_in_flight(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let token = state.in_flight.token();
    next.run(request).await.map(|body| {
        axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
            let _delivering = &token;
            frame
        }))
    })
}

/// One span per HTTP request, with the request id, continuing an incoming `traceparent`.
fn request_span(
    request: &axum::http::Request<axum::body::Body>,
    trusted: &[ipnet::IpNet],
) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let span = tracing::info_span!(
        "http_request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
        client_ip = %http::proxy::client_ip(request, trusted).map(|ip| ip.to_string()).unwrap_or_default(),
    );
    crate::otel::continue_trace(&span, request.headers());
    span
}

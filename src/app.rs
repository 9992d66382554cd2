//! Application state shared by every request, and the HTTP router.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::db::tenant::TxOptions;
use crate::db::{DatabaseRegistry, TenantSigner};
use crate::error::{AppError, Result};
use crate::history::QueryHistory;
use crate::http;
use crate::http::auth::Authenticator;
use crate::mcp::PgMcpServer;
use crate::mcp::fair_share::TenantSlots;
use crate::mcp::limiter::TenantRateLimiter;
use crate::search::{CachedEmbedder, build_embedder};
use crate::sql::cache::GuardCache;
use crate::sql::guard::GuardConfig;
use tokio::sync::OnceCell;

/// Everything a request needs: configuration, pools, the tenant signer, guard settings.
pub struct AppState {
    pub config: Config,
    pub databases: DatabaseRegistry,
    pub signer: TenantSigner,
    pub guard: GuardConfig,
    /// Statements the guard already accepted (the hot path repeats them).
    pub guard_cache: GuardCache,
    pub auth: Authenticator,
    pub limiter: TenantRateLimiter,
    /// Per-tenant cap on calls running at once (fair share of the pool).
    pub slots: TenantSlots,
    pub history: QueryHistory,
    pub started_at: Instant,
    /// MCP POST requests whose response has not been fully sent (graceful shutdown waits
    /// for them): counting tool calls alone let shutdown end a session between the tool's
    /// end and the reply's delivery.
    in_flight: Arc<AtomicUsize>,
    /// The embedder, built on first use: the local model costs memory and start-up time that
    /// servers without semantic search should not pay. A failure is kept and reported.
    embedder: OnceCell<std::result::Result<Arc<CachedEmbedder>, String>>,
}

impl AppState {
    /// Builds the state; pools connect lazily, so this succeeds while the database is down.
    pub fn new(config: Config) -> Result<Arc<Self>> {
        config.validate()?;
        let databases = DatabaseRegistry::from_config(&config)?;
        let signer = TenantSigner::new(
            config
                .tenant_signing_key
                .clone()
                .ok_or_else(|| AppError::validation("PG_MCP_TENANT_SIGNING_KEY is not set"))?,
        );
        let guard = GuardConfig {
            read_only: config.read_only,
            max_query_length: config.max_query_length,
            blocked_functions: config.blocked_functions.clone(),
            blocked_keywords: config.blocked_keywords.clone(),
            allowed_operations: (!config.allowed_operations.is_empty())
                .then(|| config.allowed_operations.clone()),
        };
        let auth = Authenticator::from_config(&config)?;
        let limiter = TenantRateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst);
        let history = QueryHistory::new(config.query_history_size);
        let slots = TenantSlots::new(
            config.tenant_concurrency(),
            std::time::Duration::from_millis(config.tenant_queue_timeout_ms),
        );
        crate::telemetry::prometheus();
        Ok(Arc::new(Self {
            history,
            config,
            databases,
            signer,
            guard,
            guard_cache: GuardCache::new(1024),
            auth,
            limiter,
            slots,
            started_at: Instant::now(),
            in_flight: Arc::new(AtomicUsize::new(0)),
            embedder: OnceCell::new(),
        }))
    }

    /// The configured embedder with its query cache; EMBEDDING_ERROR when it cannot be built.
    pub async fn embedder(&self) -> Result<Arc<CachedEmbedder>> {
        let built = self
            .embedder
            .get_or_init(|| async {
                let settings = self.config.embeddings.clone();
                let cache_size = settings.embedding_cache_size;
                let built = tokio::task::spawn_blocking(move || {
                    let cfg = settings.to_config()?;
                    build_embedder(&cfg)
                })
                .await;
                match built {
                    Ok(Ok(inner)) => Ok(Arc::new(CachedEmbedder::new(inner, cache_size))),
                    Ok(Err(e)) => Err(format!("embeddings are not available: {e}")),
                    Err(e) => Err(format!("embeddings are not available: {e}")),
                }
            })
            .await;
        built
            .clone()
            .map_err(|reason| AppError::new(crate::error::ErrorCode::EmbeddingError, reason))
    }

    /// The embedder if it was already built (for metrics).
    pub fn embedder_if_built(&self) -> Option<Arc<CachedEmbedder>> {
        self.embedder.get().and_then(|r| r.as_ref().ok().cloned())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Counts a request as in flight until the guard drops.
    pub fn track_request(&self) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlightGuard(self.in_flight.clone())
    }

    pub fn tx_options(&self) -> TxOptions {
        TxOptions {
            read_only: self.config.read_only,
            statement_timeout: self.config.statement_timeout(),
            lock_timeout: std::time::Duration::from_millis(self.config.lock_timeout_ms),
        }
    }
}

pub struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The axum router: `/mcp` (MCP streamable HTTP) and the plain HTTP routes.
pub fn build_router(state: Arc<AppState>, shutdown: CancellationToken) -> Router {
    crate::telemetry::spawn_metrics_upkeep();
    let trusted = Arc::new(state.config.trusted_proxy_nets().unwrap_or_default());
    let origins = state.config.allowed_origins.clone();
    let mcp_config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(!state.config.stateless_http)
        .with_json_response(state.config.stateless_http)
        .with_allowed_hosts(state.config.allowed_hosts.clone())
        .with_allowed_origins(state.config.allowed_origins.clone())
        .with_cancellation_token(shutdown.child_token());
    let mcp_state = state.clone();
    let mcp_service = StreamableHttpService::new(
        move || Ok(PgMcpServer::new(mcp_state.clone())),
        Arc::new(LocalSessionManager::default()),
        mcp_config,
    );

    let mcp_routes = Router::new()
        .nest_service("/mcp", mcp_service)
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), shutdown.clone()),
            crate::mcp::fast_path::fast_path,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::tenant::resolve_tenant,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_in_flight,
        ));

    Router::new()
        .route("/health", get(http::health::health))
        .route("/health/live", get(http::ops::live))
        .route("/health/ready", get(http::ops::ready))
        .route("/metrics", get(http::ops::metrics))
        .route("/connections", get(http::ops::connections))
        .route("/query_history", get(http::ops::query_history))
        .with_state(state)
        .merge(mcp_routes)
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(http::origin::OriginPolicy::new(&origins)),
            http::origin::check_origin,
        ))
        .layer(axum::middleware::from_fn(http::ops::track_http))
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
    let guard = state.track_request();
    next.run(request).await.map(|body| {
        axum::body::Body::new(http_body_util::BodyExt::map_frame(body, move |frame| {
            let _delivering = &guard;
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

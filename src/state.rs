//! What every layer shares: configuration, database pools, the tenant signer, guard settings,
//! limits, query history and the embedder. Below the transports and the tools layer; it
//! depends only on the modules under it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use std::time::Instant;

use tokio::sync::OnceCell;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::db::tenant::TxOptions;
use crate::db::{DatabaseRegistry, TenantSigner};
use crate::error::{AppError, Result};
use crate::history::QueryHistory;
use crate::limits::{TenantRateLimiter, TenantSlots};
use crate::search::{CachedEmbedder, build_embedder};
use crate::sql::cache::GuardCache;
use crate::sql::guard::GuardConfig;

/// Everything a request needs: configuration, pools, the tenant signer, guard settings.
/// The read-only and the write-mode guard of `config`.
fn guards(config: &Config) -> (GuardConfig, GuardConfig) {
    let guard = GuardConfig {
        read_only: true,
        max_query_length: config.max_query_length,
        blocked_functions: config.blocked_functions.clone(),
        blocked_keywords: names(&config.blocked_keywords),
        allowed_operations: (!config.allowed_operations.is_empty())
            .then(|| names(&config.allowed_operations)),
        exposure: config.exposure(),
    };
    // Databases in write mode check with this one; the same rules otherwise.
    let write_guard = GuardConfig {
        read_only: false,
        ..guard.clone()
    };
    (guard, write_guard)
}

/// Operation names as the guard compares them.
fn names(operations: &[crate::sql::guard::Operation]) -> Vec<String> {
    operations.iter().map(|o| o.as_str().to_string()).collect()
}

pub struct AppState {
    /// The settings now: swapped whole by a configuration reload (`reload`).
    config: ArcSwap<Config>,
    pub databases: DatabaseRegistry,
    pub signer: TenantSigner,
    /// The guard of read-only databases (queries only).
    guard: ArcSwap<GuardConfig>,
    /// Statements the guard already accepted (the hot path repeats them).
    pub guard_cache: GuardCache,
    /// The guard of databases in write mode (PG_MCP_ALLOWED_OPERATIONS), and its cache.
    write_guard: ArcSwap<GuardConfig>,
    pub write_guard_cache: GuardCache,
    pub auth: Authenticator,
    pub limiter: TenantRateLimiter,
    /// Per-tenant cap on calls running at once (fair share of the pool).
    pub slots: TenantSlots,
    pub history: QueryHistory,
    /// The persisted audit log (its writer starts with the server).
    pub audit: crate::audit::AuditLog,
    /// The chat model of the `query` tool; `None` when none is configured (then the tool
    /// is not listed).
    pub llm: Option<Arc<crate::nl::ChatModel>>,
    /// Each database's catalogue, for the schema tools, resources and `query`.
    pub schemas: crate::schema::SchemaCaches,
    /// The declared embedding sources of `semantic_search` (PG_MCP_EMBEDDING_SOURCES).
    pub sources: Vec<crate::search::sources::Source>,
    /// Whether the retail demo's product embeddings exist (found by the start-up checks):
    /// `semantic_search_products` is listed only then.
    pub retail_demo: std::sync::atomic::AtomicBool,
    pub started_at: Instant,
    /// The configuration's generation, file, and the last reload's outcome.
    pub config_status: std::sync::Mutex<crate::config_file::ConfigStatus>,
    /// MCP POST requests whose response has not been fully sent (graceful shutdown waits
    /// for them): counting tool calls alone let shutdown end a session between the tool's
    /// end and the reply's delivery.
    pub in_flight: TaskTracker,
    /// Set when shutdown begins: responses close their connections and readiness fails
    /// (see PG_MCP_SHUTDOWN_DRAIN_SECS).
    pub draining: std::sync::atomic::AtomicBool,
    /// The embedder, built on first use: the local model costs memory and start-up time that
    /// servers without semantic search should not pay. A failure is kept and reported.
    embedder: OnceCell<std::result::Result<Arc<CachedEmbedder>, String>>,
}

impl AppState {
    /// Builds the state; pools connect lazily, so this succeeds while the database is down.
    pub fn new(config: Config) -> Result<Arc<Self>> {
        config.validate()?;
        let (guard, write_guard) = guards(&config);
        let databases = DatabaseRegistry::from_config(&config)?;
        let signer = TenantSigner::new(
            config
                .tenant_signing_key
                .clone()
                .ok_or_else(|| AppError::validation("PG_MCP_TENANT_SIGNING_KEY is not set"))?,
        )
        .with_compat_settings(crate::auth::compat_settings(&config)?);
        let auth = Authenticator::from_config(&config)?;
        let sources = config.embeddings.sources().map_err(AppError::validation)?;
        let limiter = TenantRateLimiter::new(config.rate_limit_per_minute, config.rate_limit_burst);
        let history = QueryHistory::new(config.query_history_size);
        let audit = crate::audit::AuditLog::new(&config.audit, &databases, &signer)?;
        let slots = TenantSlots::new(
            config.tenant_concurrency(),
            std::time::Duration::from_millis(config.tenant_queue_timeout_ms),
        );
        crate::telemetry::prometheus();
        let schemas = crate::schema::SchemaCaches::new(
            &databases.all(),
            &config.exposure(),
            config.schema_cache_timing(),
        );
        let llm = crate::nl::ChatModel::from_settings(&config.llm)?.map(Arc::new);
        Ok(Arc::new(Self {
            llm,
            history,
            audit,
            schemas,
            sources,
            retail_demo: std::sync::atomic::AtomicBool::new(false),
            config_status: std::sync::Mutex::new(crate::config_file::ConfigStatus::new(
                config.config_file.clone(),
            )),
            config: ArcSwap::from_pointee(config),
            databases,
            signer,
            guard: ArcSwap::from_pointee(guard),
            guard_cache: GuardCache::new(1024),
            write_guard: ArcSwap::from_pointee(write_guard),
            write_guard_cache: GuardCache::new(1024),
            auth,
            limiter,
            slots,
            started_at: Instant::now(),
            in_flight: TaskTracker::new(),
            draining: std::sync::atomic::AtomicBool::new(false),
            embedder: OnceCell::new(),
        }))
    }

    /// Whether shutdown has begun (the drain, then the grace period).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The configured embedder with its query cache; EMBEDDING_ERROR when it cannot be built.
    pub async fn embedder(&self) -> Result<Arc<CachedEmbedder>> {
        let built = self
            .embedder
            .get_or_init(|| async {
                let settings = self.config().embeddings.clone();
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

    /// The start-up checks of one database (`server::check_databases`; also what
    /// `add_connection` runs): FORBIDDEN for a role that skips RLS or can read other sessions,
    /// or an unfit monitoring role; another error when it cannot be reached. Notes the retail
    /// demo when it is there.
    pub async fn check_database(&self, db: &crate::db::Database) -> Result<()> {
        db.check_role_is_safe(self.config().allow_observable_sessions)
            .await?;
        if db.has_retail_demo().await {
            self.retail_demo
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(monitor) = &db.monitor {
            monitor.check(&db.name, &db.user).await?;
        }
        Ok(())
    }

    /// The settings now (one atomic load). A tool call reads `Call::config`, the snapshot
    /// taken as it began.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// The SQL guard of read-only databases now.
    pub fn guard(&self) -> Arc<GuardConfig> {
        self.guard.load_full()
    }

    /// The SQL guard of databases in write mode now.
    pub fn write_guard(&self) -> Arc<GuardConfig> {
        self.write_guard.load_full()
    }

    /// Swaps in reloaded settings (already checked): the guards first, then the settings;
    /// the guards' caches are emptied, since their rules may have changed.
    pub fn swap_config(&self, config: Config) {
        let (guard, write_guard) = guards(&config);
        self.guard.store(Arc::new(guard));
        self.write_guard.store(Arc::new(write_guard));
        self.guard_cache.clear();
        self.write_guard_cache.clear();
        self.config.store(Arc::new(config));
    }

    pub fn tx_options(&self) -> TxOptions {
        TxOptions::from_config(&self.config.load())
    }
}

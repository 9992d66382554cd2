//! Named database pools. One database is the simple case; the registry keeps the shape for
//! several (tools take an optional `database` argument).

use secrecy::ExposeSecret;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::{Config, DatabaseTarget};
use crate::error::{AppError, ErrorCode, Result};

/// One configured database and its pool.
pub struct Database {
    pub name: String,
    pub pool: PgPool,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub max_connections: u32,
    /// In write mode (PG_MCP_WRITE_DATABASES): the write guard, read-write transactions for
    /// callers allowed to write. Otherwise every call is read-only.
    pub writable: bool,
    /// How the pool connects, for the side pools of pg-mcp's own work (the audit log).
    connect_options: PgConnectOptions,
    /// The DBA tools' monitoring connection (`PG_MCP_MONITOR_PASSWORD`), if configured.
    pub monitor: Option<super::monitor::Monitor>,
    /// Read replicas (PG_MCP_DATABASE_READ_URLS) for read-only tool calls.
    pub replicas: super::replica::Replicas,
    /// Added at runtime by `add_connection`: in memory only, gone at restart.
    pub runtime: bool,
    /// The connection URL, to tell whether a reloaded configuration changed it.
    url: secrecy::SecretString,
    read_urls: Vec<secrecy::SecretString>,
    last_error: Mutex<Option<(String, DateTime<Utc>)>>,
    server_version: Mutex<Option<String>>,
}

/// What `/health` and `/connections` show of a database (never the password).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct DatabaseStatus {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub healthy: bool,
    pub server_version: Option<String>,
    pub pool_size: u32,
    pub pool_idle: usize,
    pub pool_max: u32,
    /// In write mode (PG_MCP_WRITE_DATABASES).
    pub writable: bool,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Added at runtime by `add_connection` (in memory only: gone at restart), not configured.
    pub runtime: bool,
    /// Its read replicas: health and replay lag (PG_MCP_DATABASE_READ_URLS).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<super::replica::ReplicaStatus>,
}

/// What every tenant connection is opened with, on the primary and on its replicas.
pub(super) fn session_options(options: PgConnectOptions, config: &Config) -> PgConnectOptions {
    options
        .application_name("pg-mcp")
        // PostgreSQL notices a vanished client (server shut down past its grace period,
        // network cut) within a second and cancels its query, instead of running it out.
        .options([("client_connection_check_interval", "1000")])
        .log_statements(tracing::log::LevelFilter::Trace)
        // sqlx would log slow statements with their literal values; pg-mcp logs its own.
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(1))
        .statement_cache_capacity(config.statement_cache_capacity)
}

impl Database {
    /// The pool of `target`, connecting lazily: the server starts (and `/health` reports
    /// 503) while the database is down.
    pub fn connect_lazy(target: &DatabaseTarget, config: &Config) -> Result<Self> {
        let url = target.url.expose_secret();
        let options: PgConnectOptions = url.parse().map_err(|e: sqlx::Error| {
            AppError::validation(format!(
                "database {:?}: invalid connection URL: {}",
                target.name,
                redact_url(&e.to_string(), url)
            ))
        })?;
        let options = session_options(options, config);
        let host = options.get_host().to_string();
        let port = options.get_port();
        let database = options.get_database().unwrap_or_default().to_string();
        let user = options.get_username().to_string();
        // Lazy: the server starts (and /health reports 503) while the database is down.
        let pool = PgPoolOptions::new()
            .max_connections(config.pool_size)
            .min_connections(0)
            .acquire_timeout(Duration::from_millis(config.pool_acquire_timeout_ms))
            .idle_timeout(Some(Duration::from_secs(300)))
            // No ping per acquire (hot path); a dead connection is retried in `with_tenant_tx`.
            .test_before_acquire(false)
            .connect_lazy_with(options.clone());
        Ok(Self {
            monitor: super::monitor::Monitor::new(&options, config),
            replicas: super::replica::Replicas::new(&target.read_urls, config)?,
            read_urls: target.read_urls.clone(),
            connect_options: options,
            name: target.name.clone(),
            pool,
            host,
            port,
            database,
            user,
            max_connections: config.pool_size,
            writable: config.is_writable(&target.name),
            runtime: false,
            url: target.url.clone(),
            last_error: Mutex::new(None),
            server_version: Mutex::new(None),
        })
    }

    /// Closes its pools once the calls holding their connections are done (after it left the
    /// registry).
    pub fn close_later(db: Arc<Self>) {
        tokio::spawn(async move {
            db.pool.close().await;
            db.replicas.close().await;
            if let Some(monitor) = &db.monitor {
                monitor.close().await;
            }
        });
    }

    /// Whether this database is what `target` with a pool of `pool_size` describes.
    pub fn is(&self, target: &DatabaseTarget, pool_size: u32) -> bool {
        self.name == target.name
            && self.url.expose_secret() == target.url.expose_secret()
            && self.max_connections == pool_size
            && self.read_urls.len() == target.read_urls.len()
            && self
                .read_urls
                .iter()
                .zip(&target.read_urls)
                .all(|(a, b)| a.expose_secret() == b.expose_secret())
    }

    /// A small lazy pool of its own on this database, as the same role, named
    /// `application_name` in pg_stat_activity: pg-mcp's own work then never waits for a
    /// tenant's connection, nor takes one. Statements on it time out after 10 s.
    pub fn side_pool(&self, application_name: &str, max_connections: u32) -> PgPool {
        let options = self
            .connect_options
            .clone()
            .application_name(application_name)
            .options([("statement_timeout", "10000")]);
        PgPoolOptions::new()
            .max_connections(max_connections)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(options)
    }

    /// Remembers a connection-level failure for `/connections`.
    pub fn record_error(&self, message: &str) {
        *self.last_error.lock().expect("lock") = Some((message.to_string(), Utc::now()));
    }

    /// Pings the database (bounded by the acquire timeout) and returns its status.
    pub async fn status(&self) -> DatabaseStatus {
        let ping = tokio::time::timeout(
            Duration::from_secs(3),
            // The simple protocol: no prepared statement, so this works behind any pooler.
            sqlx::raw_sql("SELECT current_setting('server_version')").fetch_one(&self.pool),
        )
        .await;
        let healthy = match ping {
            Ok(Ok(row)) => {
                use sqlx::Row as _;
                *self.server_version.lock().expect("lock") = row.try_get::<String, _>(0).ok();
                true
            }
            Ok(Err(e)) => {
                self.record_error(&AppError::from(e).message);
                false
            }
            Err(_) => {
                self.record_error("health check timed out");
                false
            }
        };
        let last = self.last_error.lock().expect("lock").clone();
        DatabaseStatus {
            name: self.name.clone(),
            host: self.host.clone(),
            port: self.port,
            database: self.database.clone(),
            user: self.user.clone(),
            healthy,
            server_version: self.server_version.lock().expect("lock").clone(),
            pool_size: self.pool.size(),
            pool_idle: self.pool.num_idle(),
            pool_max: self.max_connections,
            writable: self.writable,
            last_error: last.as_ref().map(|(m, _)| m.clone()),
            last_error_at: last.map(|(_, t)| t),
            runtime: self.runtime,
            replicas: self.replicas.status(),
        }
    }

    /// Refuses to serve through a role that would skip row-level security, or that can still
    /// read other sessions' activity (`isolation::CROSS_SESSION_OBJECTS`) unless allowed.
    /// Whether the retail demo's product embeddings are installed and readable here.
    pub async fn has_retail_demo(&self) -> bool {
        let Ok(mut tx) = self.pool.begin().await else {
            return false;
        };
        sqlx::query_scalar::<_, bool>(
            "SELECT coalesce(has_table_privilege(to_regclass('retail.product_description_embeddings'), 'SELECT'), false)",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap_or(false)
    }

    pub async fn check_role_is_safe(&self, allow_observable_sessions: bool) -> Result<()> {
        // One transaction: behind PgBouncer's transaction pooling a prepared statement lives
        // only as long as one.
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        let row: (String, bool, bool) = sqlx::query_as(
            "SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(AppError::from)?;
        if row.1 || row.2 {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "database {:?}: role {} is a superuser or has BYPASSRLS, so row-level security would not apply; connect as the application role (pgmcp_app)",
                    self.name, row.0
                ),
            ));
        }
        let open = super::isolation::exposed(&mut tx).await?;
        if !open.is_empty() {
            let message = format!(
                "database {:?}: role {} can read other sessions through {}; run pg-mcp migrate as a superuser to close them",
                self.name,
                row.0,
                open.join(", ")
            );
            if !allow_observable_sessions {
                return Err(AppError::new(ErrorCode::Forbidden, message));
            }
            tracing::warn!("{message} (served anyway: PG_MCP_ALLOW_OBSERVABLE_SESSIONS=true)");
        }
        Ok(())
    }
}

/// `message` without the password of connection URL `url`, should a parser quote it.
pub fn redact_url(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('@').next().filter(|_| rest.contains('@')))
        .and_then(|userinfo| userinfo.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(p) => message.replace(p, "********"),
        None => message.to_string(),
    }
}

/// All databases by name: the configured ones, and those `add_connection` added. Calls
/// read a snapshot (one atomic load); a change swaps in a new map, so calls in flight keep
/// the database they resolved.
pub struct DatabaseRegistry {
    databases: ArcSwap<BTreeMap<String, Arc<Database>>>,
    default_name: String,
    /// Serialises changes (each is a read-copy-update of the map).
    changes: Mutex<()>,
}

impl DatabaseRegistry {
    pub fn from_config(config: &Config) -> Result<Self> {
        let targets = config.database_targets()?;
        let default_name = targets
            .first()
            .map(|t| t.name.clone())
            .ok_or_else(|| AppError::validation("no database configured"))?;
        let mut databases = BTreeMap::new();
        for target in &targets {
            databases.insert(
                target.name.clone(),
                Arc::new(Database::connect_lazy(target, config)?),
            );
        }
        Ok(Self {
            databases: ArcSwap::from_pointee(databases),
            default_name,
            changes: Mutex::new(()),
        })
    }

    /// Adds `db` under its name; VALIDATION_ERROR if the name is taken.
    pub fn insert(&self, db: Arc<Database>) -> Result<()> {
        let _change = self.changes.lock().expect("lock");
        let mut next = (**self.databases.load()).clone();
        if next.contains_key(&db.name) {
            return Err(AppError::validation(format!(
                "database {:?} already exists; remove_connection it first",
                db.name
            )));
        }
        next.insert(db.name.clone(), db);
        self.databases.store(Arc::new(next));
        Ok(())
    }

    /// Adds `db`, or replaces the database of its name (returned, for closing).
    pub fn put(&self, db: Arc<Database>) -> Option<Arc<Database>> {
        let _change = self.changes.lock().expect("lock");
        let mut next = (**self.databases.load()).clone();
        let old = next.insert(db.name.clone(), db);
        self.databases.store(Arc::new(next));
        old
    }

    /// Takes the named database out (calls in flight on it finish); never the default one.
    pub fn remove(&self, name: &str) -> Result<Arc<Database>> {
        let _change = self.changes.lock().expect("lock");
        if name == self.default_name {
            return Err(AppError::validation(format!(
                "database {name:?} is the default database and cannot be removed"
            )));
        }
        let mut next = (**self.databases.load()).clone();
        let removed = next.remove(name);
        let Some(removed) = removed else {
            return Err(self.unknown(name));
        };
        self.databases.store(Arc::new(next));
        Ok(removed)
    }

    fn unknown(&self, name: &str) -> AppError {
        AppError::new(
            ErrorCode::UnknownDatabase,
            format!(
                "unknown database {name:?}; configured: {}",
                self.names().join(", ")
            ),
        )
    }

    /// The named database, or the default one when `name` is `None`.
    pub fn get(&self, name: Option<&str>) -> Result<Arc<Database>> {
        let name = name.unwrap_or(&self.default_name);
        self.databases
            .load()
            .get(name)
            .cloned()
            .ok_or_else(|| self.unknown(name))
    }

    pub fn default_name(&self) -> &str {
        &self.default_name
    }

    pub fn names(&self) -> Vec<String> {
        self.databases.load().keys().cloned().collect()
    }

    /// The databases now (a snapshot).
    pub fn all(&self) -> Vec<Arc<Database>> {
        self.databases.load().values().cloned().collect()
    }

    /// Pool gauges, refreshed when `/metrics` is scraped.
    pub fn record_metrics(&self) {
        for db in self.all() {
            let size = db.pool.size() as f64;
            let idle = db.pool.num_idle() as f64;
            let name = db.name.clone();
            metrics::gauge!("pgmcp_pool_connections", "database" => name.clone(), "state" => "idle")
                .set(idle);
            metrics::gauge!("pgmcp_pool_connections", "database" => name.clone(), "state" => "in_use")
                .set((size - idle).max(0.0));
            metrics::gauge!("pgmcp_pool_max_connections", "database" => name)
                .set(db.max_connections as f64);
        }
    }

    pub async fn close(&self) {
        for db in self.all() {
            db.pool.close().await;
            if let Some(monitor) = &db.monitor {
                monitor.close().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_are_redacted_from_messages() {
        let url = "postgres://app:s3cret@db:5432/shop";
        assert_eq!(
            redact_url("bad port in postgres://app:s3cret@db:x", url),
            "bad port in postgres://app:********@db:x"
        );
        assert_eq!(redact_url("no host", "postgres:///shop"), "no host");
    }
}

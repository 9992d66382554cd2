//! Read replicas of a database (PG_MCP_DATABASE_READ_URLS, streaming standbys of the primary).
//!
//! Read-only tool calls go to a healthy replica, round robin, whose replay lag is within
//! PG_MCP_REPLICA_MAX_LAG_SECS; writes, the schema cache and pg-mcp's own work stay on the
//! primary. A replica is checked every PG_MCP_REPLICA_CHECK_SECS (reachable, in recovery, its
//! lag). One that cannot open a transaction within a second is set aside at once, and that
//! call runs on the primary, so losing a standby fails no call that had not started on it. The tenant
//! context works the same there: `pgmcp.enter()` only reads (the key store replicates).

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::config::Config;
use crate::error::{AppError, Result};

/// What `/health` shows of a replica (never its password).
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ReplicaStatus {
    /// `host:port`.
    pub name: String,
    /// Receiving reads: reachable, and its lag within the limit.
    pub healthy: bool,
    /// Seconds its replay is behind the primary (0 when it has replayed all it received).
    pub lag_seconds: Option<f64>,
    pub last_error: Option<String>,
    pub checked_at: Option<DateTime<Utc>>,
}

/// One replica and its pool.
pub struct Replica {
    pub name: String,
    pub pool: PgPool,
    healthy: AtomicBool,
    status: Mutex<ReplicaStatus>,
}

/// The replicas of one database.
#[derive(Default)]
pub struct Replicas {
    list: Vec<Replica>,
    next: AtomicUsize,
    max_lag: f64,
}

/// How long a read waits for a replica's connection before it runs on the primary.
const REPLICA_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);

/// Replay lag in seconds: 0 once everything received is replayed (an idle primary sends
/// nothing, so the last replay's age alone would read as lag).
const LAG_QUERY: &str = "SELECT pg_is_in_recovery(), \
     CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
          ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END::float8";

impl Replicas {
    /// Pools for `urls`, connecting lazily, with the primary's session options.
    pub fn new(urls: &[SecretString], config: &Config) -> Result<Self> {
        let list = urls
            .iter()
            .map(|url| {
                let parsed: PgConnectOptions =
                    url.expose_secret().parse().map_err(|e: sqlx::Error| {
                        AppError::validation(format!(
                            "PG_MCP_DATABASE_READ_URLS: invalid connection URL: {}",
                            super::registry::redact_url(&e.to_string(), url.expose_secret())
                        ))
                    })?;
                let name = format!("{}:{}", parsed.get_host(), parsed.get_port());
                let options = super::registry::session_options(parsed, config);
                let pool = PgPoolOptions::new()
                    .max_connections(config.pool_size)
                    .min_connections(0)
                    // Short: a replica that cannot give a connection soon is treated as gone
                    // (its call moves to the primary) rather than holding the call.
                    .acquire_timeout(
                        REPLICA_ACQUIRE_TIMEOUT
                            .min(Duration::from_millis(config.pool_acquire_timeout_ms)),
                    )
                    .idle_timeout(Some(Duration::from_secs(300)))
                    .test_before_acquire(false)
                    .connect_lazy_with(options);
                Ok(Replica {
                    status: Mutex::new(ReplicaStatus {
                        name: name.clone(),
                        healthy: false,
                        lag_seconds: None,
                        last_error: Some("not checked yet".into()),
                        checked_at: None,
                    }),
                    name,
                    pool,
                    healthy: AtomicBool::new(false),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            list,
            next: AtomicUsize::new(0),
            max_lag: config.replica_max_lag_secs as f64,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The next healthy replica, round robin; `None` sends the call to the primary.
    pub fn pick(&self) -> Option<&Replica> {
        let n = self.list.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        (0..n)
            .map(|i| &self.list[(start + i) % n])
            .find(|r| r.healthy.load(Ordering::Relaxed))
    }

    /// Checks every replica: reachable, and its lag within the limit.
    pub async fn check(&self, database: &str) {
        for replica in &self.list {
            replica.check(database, self.max_lag).await;
        }
    }

    pub fn status(&self) -> Vec<ReplicaStatus> {
        self.list
            .iter()
            .map(|r| r.status.lock().expect("lock").clone())
            .collect()
    }

    pub async fn close(&self) {
        for replica in &self.list {
            replica.pool.close().await;
        }
    }
}

impl Replica {
    /// Takes it out of the rotation until a health check finds it well again.
    pub fn set_aside(&self, database: &str, why: &str) {
        if self.healthy.swap(false, Ordering::Relaxed) {
            tracing::warn!(database, replica = %self.name, error = why, "read replica set aside; reads go to the primary");
        }
        metrics::counter!("pgmcp_replica_fallbacks_total", "database" => database.to_string(), "replica" => self.name.clone()).increment(1);
        let mut status = self.status.lock().expect("lock");
        status.healthy = false;
        status.last_error = Some(why.to_string());
    }

    async fn check(&self, database: &str, max_lag: f64) {
        // The simple protocol, bounded: a replica that hangs is as bad as one that is gone.
        let probe = tokio::time::timeout(Duration::from_secs(2), async {
            let row = sqlx::raw_sql(LAG_QUERY).fetch_one(&self.pool).await?;
            use sqlx::Row as _;
            Ok::<_, sqlx::Error>((row.try_get::<bool, _>(0)?, row.try_get::<f64, _>(1)?))
        })
        .await;
        let (healthy, lag, error) = match probe {
            Ok(Ok((true, lag))) if lag <= max_lag => (true, Some(lag), None),
            Ok(Ok((true, lag))) => (
                false,
                Some(lag),
                Some(format!(
                    "replay lag {lag:.1} s is above PG_MCP_REPLICA_MAX_LAG_SECS ({max_lag} s)"
                )),
            ),
            Ok(Ok((false, _))) => (
                false,
                None,
                Some("not in recovery: this is a primary, not a standby".to_string()),
            ),
            Ok(Err(e)) => (false, None, Some(AppError::from(e).message)),
            Err(_) => (false, None, Some("no answer within 2 s".to_string())),
        };
        if healthy != self.healthy.swap(healthy, Ordering::Relaxed) {
            match &error {
                None => {
                    tracing::info!(database, replica = %self.name, "read replica healthy: reads go to it")
                }
                Some(e) => {
                    tracing::warn!(database, replica = %self.name, error = %e, "read replica unhealthy: reads go to the primary")
                }
            }
        }
        if let Some(lag) = lag {
            metrics::gauge!("pgmcp_replica_lag_seconds", "database" => database.to_string(), "replica" => self.name.clone()).set(lag);
        }
        *self.status.lock().expect("lock") = ReplicaStatus {
            name: self.name.clone(),
            healthy,
            lag_seconds: lag,
            last_error: error,
            checked_at: Some(Utc::now()),
        };
    }
}

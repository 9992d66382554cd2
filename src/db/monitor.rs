//! The monitoring connection of the DBA tools. The catalogue views they read show every
//! tenant's sessions and SQL, which the application role may not see (`isolation`), so they
//! run on a pool of their own, as a role with `pg_monitor` (`PG_MCP_MONITOR_USER`, created by
//! `pg-mcp migrate`), in read-only transactions with a short statement timeout. Never the
//! application role, and never a superuser unless `PG_MCP_MONITOR_ALLOW_SUPERUSER` says so.

use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::config::Config;
use crate::error::{AppError, ErrorCode, Result};

/// Statements on the monitoring connection stop after this long.
const STATEMENT_TIMEOUT_MS: &str = "5000";

/// A database's monitoring pool.
pub struct Monitor {
    pool: PgPool,
    user: String,
    allow_superuser: bool,
}

impl Monitor {
    /// The pool for the database `base` connects to, as the monitoring role; `None` without
    /// `PG_MCP_MONITOR_PASSWORD`.
    pub fn new(base: &PgConnectOptions, config: &Config) -> Option<Self> {
        let password = config
            .monitor_password
            .as_ref()
            .filter(|p| !p.expose_secret().is_empty())?;
        let user = config.monitor_user.trim().to_string();
        let options = base
            .clone()
            .username(&user)
            .password(password.expose_secret())
            .application_name("pg-mcp-monitor")
            .options([
                ("statement_timeout", STATEMENT_TIMEOUT_MS),
                ("default_transaction_read_only", "on"),
            ]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Some(Duration::from_secs(300)))
            .connect_lazy_with(options);
        Some(Self {
            pool,
            user,
            allow_superuser: config.monitor_allow_superuser,
        })
    }

    /// Refuses (FORBIDDEN) a monitoring role that is the application role (`app_user`), a
    /// superuser (unless allowed) or lacks `pg_monitor`.
    pub async fn check(&self, database: &str, app_user: &str) -> Result<()> {
        if self.user == app_user {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "database {database:?}: the monitoring connection (PG_MCP_MONITOR_USER={}) must not be the application role",
                    self.user
                ),
            ));
        }
        let mut tx = self.pool.begin().await.map_err(AppError::from)?;
        let (superuser, monitor): (bool, bool) = sqlx::query_as(
            "SELECT rolsuper, pg_has_role(current_user, 'pg_monitor', 'USAGE') \
             FROM pg_roles WHERE rolname = current_user",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(AppError::from)?;
        if superuser && !self.allow_superuser {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "database {database:?}: the monitoring role {} is a superuser; use a role with pg_monitor (pg-mcp migrate creates one), or set PG_MCP_MONITOR_ALLOW_SUPERUSER=true",
                    self.user
                ),
            ));
        }
        if !superuser && !monitor {
            return Err(AppError::new(
                ErrorCode::Forbidden,
                format!(
                    "database {database:?}: the monitoring role {} lacks pg_monitor; run pg-mcp migrate with PG_MCP_MONITOR_PASSWORD, or GRANT pg_monitor TO {}",
                    self.user, self.user
                ),
            ));
        }
        Ok(())
    }

    /// A read-only transaction on the monitoring connection.
    pub async fn begin(&self) -> Result<Transaction<'static, Postgres>> {
        self.pool
            .begin_with("BEGIN READ ONLY")
            .await
            .map_err(AppError::from)
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

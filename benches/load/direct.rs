//! The direct path, the floor the MCP path is measured against: the per-call statement
//! sequence the server sends, through sqlx as the application role, built by the server's own
//! code (`pg_mcp::db::tenant::begin_statement`, `AcceptedSql::limited`) so the two cannot
//! drift apart. `scripts/bench.sh peers` uses it too, for the database's own ceiling.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use pg_mcp::db::{AuthMethod, Tenant, TenantContext, TenantSigner, TxOptions};
use pg_mcp::sql::StatementKind;
use pg_mcp::sql::cache::AcceptedSql;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Executor, Row, SqlSafeStr, Statement};
use uuid::Uuid;

/// The server settings the direct path mirrors (give the bench the server's values).
pub struct ServerSettings {
    /// PG_MCP_POOL_SIZE: the direct path's pool has as many connections.
    pub pool_size: u32,
    /// PG_MCP_STATEMENT_TIMEOUT_MS, part of the BEGIN statement.
    pub statement_timeout_ms: u64,
    /// PG_MCP_LOCK_TIMEOUT_MS, part of the BEGIN statement.
    pub lock_timeout_ms: u64,
    /// PG_MCP_MAX_ROWS: queries are wrapped in LIMIT max_rows + 1.
    pub max_rows: usize,
}

/// The server's tenant-transaction opener: `begin_statement` in src/db/tenant.rs, the one
/// simple-protocol message `with_tenant_tx` sends to begin a call's transaction.
struct TenantOpener {
    tenant: Tenant,
    signer: TenantSigner,
    opts: TxOptions,
}

impl TenantOpener {
    fn new(tenant: Uuid, key: &str, settings: &ServerSettings) -> Self {
        Self {
            tenant: Tenant {
                context: TenantContext::tenant(tenant.hyphenated().to_string()),
                subject: None,
                auth: AuthMethod::Header,
                may_write: false,
            },
            signer: TenantSigner::new(key),
            opts: TxOptions {
                read_only: true,
                commit: false,
                statement_timeout: Duration::from_millis(settings.statement_timeout_ms),
                lock_timeout: Duration::from_millis(settings.lock_timeout_ms),
            },
        }
    }

    /// A fresh statement per call: its proof carries the time it was issued.
    fn statement(&self) -> String {
        pg_mcp::db::tenant::begin_statement(&self.tenant, &self.signer, &self.opts)
    }
}

/// A pool of the application role, running one statement as one tenant.
pub struct Direct {
    pool: PgPool,
    begin: TenantOpener,
    /// The statement as the server prepares it (wrapped in LIMIT max_rows + 1).
    select: String,
    /// The statement as given, for [`Direct::call_bare`].
    bare: String,
}

impl Direct {
    /// `sql` is the statement each call runs (`$1` is the id of [`Direct::call`]).
    pub async fn connect(
        url: &str,
        key: &str,
        tenant: Uuid,
        settings: &ServerSettings,
        sql: &str,
    ) -> Result<Self> {
        let options: PgConnectOptions = url.parse().context("invalid --database-url")?;
        let pool = PgPoolOptions::new()
            .max_connections(settings.pool_size)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(false)
            // The server's session settings too (src/db/registry.rs), so PostgreSQL does
            // the same work per statement on both paths.
            .connect_with(
                options
                    .application_name("pg-mcp-bench")
                    .options([("client_connection_check_interval", "1000")]),
            )
            .await
            .context("direct path: cannot connect with --database-url")?;
        Ok(Self {
            pool,
            begin: TenantOpener::new(tenant, key, settings),
            // The query as the server prepares it: wrapped in LIMIT max_rows + 1.
            select: AcceptedSql::new(sql, StatementKind::Query, false)
                .limited(settings.max_rows + 1),
            bare: sql.to_string(),
        })
    }

    /// The server's per-call sequence: BEGIN + pgmcp.enter, the prepared statement (with
    /// `id` bound, if any), ROLLBACK; the rows.
    async fn in_tenant_tx(&self, id: Option<i64>) -> Result<Vec<sqlx::postgres::PgRow>> {
        let mut tx = self
            .pool
            .begin_with(AssertSqlSafe(self.begin.statement()))
            .await?;
        let stmt = (&mut *tx)
            .prepare(AssertSqlSafe(self.select.clone()).into_sql_str())
            .await?;
        let query = match id {
            Some(id) => stmt.query().bind(id),
            None => stmt.query(),
        };
        let rows = query.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        Ok(rows)
    }

    /// One call of a statement without parameters, as the server runs it. Checks that a row
    /// came back.
    pub async fn call_unbound(&self) -> Result<()> {
        if self.in_tenant_tx(None).await?.is_empty() {
            bail!("expected a row from {}", self.bare);
        }
        Ok(())
    }

    /// The statement alone, prepared (cached per connection), outside any transaction and
    /// tenant context: what a server that only relays SQL costs the database.
    pub async fn call_bare(&self) -> Result<()> {
        let rows = sqlx::query(AssertSqlSafe(self.bare.clone()))
            .fetch_all(&self.pool)
            .await?;
        if rows.is_empty() {
            bail!("expected a row from {}", self.bare);
        }
        Ok(())
    }

    /// One call of the point query for `id`. Checks the row.
    pub async fn call(&self, id: i64) -> Result<()> {
        let rows = self.in_tenant_tx(Some(id)).await?;
        match rows.as_slice() {
            [row] if row.try_get::<i64, _>(0)? == id => Ok(()),
            _ => bail!("expected 1 row for order_id {id}, got {}", rows.len()),
        }
    }
}

//! The tools layer: what a tool call is, independent of the transport (streamable HTTP, stdio).
//!
//! Every call goes through [`run`]: the caller's tenant (or TENANT_REQUIRED), the per-tenant
//! rate limit and fair share of the pool, a span that is a child of the transport's, then the
//! tool's work, then metrics, query history and the slow-call log. One file per tool family
//! does the work; each opens its database work with [`Call::tx`], the one tenant transaction.

pub mod connections;
pub mod dba;
pub mod explain;
pub mod index_advice;
pub mod nl;
pub mod ops;
pub mod query;
pub mod resources;
pub mod schema;
pub mod search;
pub mod write;

use std::time::Instant;

use serde_json::Value;
use sqlx::PgConnection;
use tracing::Instrument;

use crate::db::{Database, Tenant, begin_tenant_tx, run_in_tenant_tx, with_tenant_tx};
use crate::error::{AppError, ErrorCode, Result};
use crate::history::HistoryEntry;
use crate::state::AppState;

/// Who is calling, as the transport resolved it: the HTTP middleware puts one in the request's
/// extensions; stdio has one for the whole process.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified or trusted tenant; `None` when the request carried none.
    pub tenant: Option<Tenant>,
    /// The transport's span (the HTTP request's), so tool spans become its children.
    pub span: tracing::Span,
    /// The HTTP request's `x-request-id`, for the audit log.
    pub request_id: Option<String>,
    /// May list and call the DBA tools (`auth::Identity::operator`).
    pub operator: bool,
}

impl Caller {
    /// A caller with no tenant (stdio without `PG_MCP_RLS_USER_ID`, tests).
    pub fn anonymous() -> Self {
        Self {
            tenant: None,
            span: tracing::Span::current(),
            request_id: None,
            operator: false,
        }
    }

    /// The caller's tenant, else the configured default; neither: TENANT_REQUIRED.
    fn tenant(&self, state: &AppState) -> Result<Tenant> {
        self.tenant
            .clone()
            .or_else(|| state.auth.default_tenant().cloned())
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::TenantRequired,
                    format!("no tenant: {} with the request", state.auth.tenant_hint()),
                )
            })
    }
}

/// What a tool call is about, for the span, metrics and query history.
pub struct CallInfo {
    pub tool: &'static str,
    pub database: Option<String>,
    /// The SQL the call runs (masked before it is recorded).
    pub sql: Option<String>,
    /// What a tool without SQL did, for the history (`semantic search of products`): never
    /// the caller's free text, which may be personal data.
    pub description: Option<String>,
    pub params: Vec<Value>,
}

impl CallInfo {
    pub fn new(tool: &'static str, database: Option<&String>) -> Self {
        Self {
            tool,
            database: database.cloned(),
            sql: None,
            description: None,
            params: Vec::new(),
        }
    }

    pub fn described(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn with_sql(mut self, sql: &str, params: &[Value]) -> Self {
        self.sql = Some(sql.to_string());
        self.params = params.to_vec();
        self
    }
}

/// One tenant's call in progress: what a tool's work receives.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub tenant: &'a Tenant,
    /// The settings as the call began: a reload during it does not mix generations.
    pub config: std::sync::Arc<crate::config::Config>,
}

impl Call<'_> {
    /// Runs `work` in this caller's tenant transaction on `db` (see [`with_tenant_tx`]).
    pub async fn tx<T>(
        &self,
        db: &Database,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let opts = self.tx_options();
        // Read-only: on a healthy read replica when there is one; one that cannot open the
        // transaction is set aside and the primary takes the call.
        if let Some(replica) = db.replicas.pick() {
            match begin_tenant_tx(&replica.pool, self.tenant, &self.state.signer, &opts).await {
                Ok(tx) => return run_in_tenant_tx(tx, &opts, work).await,
                Err(e) if e.code == ErrorCode::ConnectionError => {
                    replica.set_aside(&db.name, &e.message);
                }
                Err(e) => return Err(e),
            }
        }
        with_tenant_tx(&db.pool, self.tenant, &self.state.signer, &opts, work).await
    }

    /// [`Self::tx`] read-write when `read_write` (the caller must have been permitted, see
    /// `write::permit`), ending with COMMIT when `commit` (ROLLBACK: a dry run).
    pub async fn tx_mode<T>(
        &self,
        db: &Database,
        read_write: bool,
        commit: bool,
        work: impl AsyncFnOnce(&mut PgConnection) -> Result<T>,
    ) -> Result<T> {
        let opts = crate::db::TxOptions {
            read_only: !read_write,
            commit,
            ..self.tx_options()
        };
        with_tenant_tx(&db.pool, self.tenant, &self.state.signer, &opts, work).await
    }

    /// A read-only transaction under this call's limits.
    pub fn tx_options(&self) -> crate::db::TxOptions {
        crate::db::TxOptions::from_config(&self.config)
    }

    /// The cached catalogue of a configured database (the default one for `None`).
    pub async fn schema(
        &self,
        name: Option<&str>,
    ) -> Result<std::sync::Arc<crate::schema::Snapshot>> {
        let db = self.database(name)?;
        self.state.schemas.of(&db.name)?.get().await
    }

    /// The configured database by name, the default one for `None`.
    pub fn database(&self, name: Option<&str>) -> Result<std::sync::Arc<Database>> {
        self.state.databases.get(name)
    }
}

/// Milliseconds since `started`, rounded to microseconds.
pub fn millis(started: Instant) -> f64 {
    (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// A tool's typed answer as the JSON it sends.
pub fn to_json<T: serde::Serialize>(value: T) -> Result<Value> {
    serde_json::to_value(value).map_err(|e| AppError::internal(e.to_string()))
}

/// Runs one tenant tool for `caller`: its tenant (or TENANT_REQUIRED), the rate limit and
/// its fair share of the pool, `work` in a span that is a child of the transport's, then
/// metrics, query history and the slow-call log. Every data tool goes through here, so none
/// of these can be forgotten.
pub async fn run(
    state: &AppState,
    caller: &Caller,
    info: CallInfo,
    work: impl AsyncFnOnce(Call<'_>) -> Result<Value>,
) -> Result<Value> {
    run_tenant(state, caller, info, false, work).await
}

/// [`run`] for an operator tool that must see the data as a tenant does (`index_advice`
/// plans a query, and planning runs the policies' functions, which only the app role may):
/// FORBIDDEN unless the caller is an operator, then the operator's tenant (or the default
/// one, else TENANT_REQUIRED) exactly as [`run`].
pub async fn run_operator_as_tenant(
    state: &AppState,
    caller: &Caller,
    info: CallInfo,
    work: impl AsyncFnOnce(Call<'_>) -> Result<Value>,
) -> Result<Value> {
    run_tenant(state, caller, info, true, work).await
}

async fn run_tenant(
    state: &AppState,
    caller: &Caller,
    info: CallInfo,
    operator_only: bool,
    work: impl AsyncFnOnce(Call<'_>) -> Result<Value>,
) -> Result<Value> {
    let record = Record::start(state, caller, &info);
    let mut resolved = None;
    let outcome = async {
        if operator_only && !caller.operator {
            return Err(forbidden(state, info.tool));
        }
        let tenant = caller.tenant(state)?;
        resolved = Some(tenant.clone());
        tracing::Span::current().record("tenant", tenant.id());
        state.limiter.check(tenant.id())?;
        // Held for the whole call: one tenant's calls cannot take the whole pool.
        let _slot = state.slots.acquire(&record.database, tenant.id()).await?;
        work(Call {
            state,
            tenant: &tenant,
            config: state.config(),
        })
        .await
    }
    .instrument(record.span.clone())
    .await;
    record.finish(state, info, resolved.as_ref(), outcome)
}

/// [`run`] for a tool that needs no tenant (`health_check`): no limits apply.
pub async fn run_without_tenant(
    state: &AppState,
    caller: &Caller,
    info: CallInfo,
    work: impl AsyncFnOnce(&AppState) -> Result<Value>,
) -> Result<Value> {
    let record = Record::start(state, caller, &info);
    let outcome = work(state).instrument(record.span.clone()).await;
    record.finish(state, info, caller.tenant.as_ref(), outcome)
}

/// [`run`] for an operator tool (`dba`): only an operator caller gets past FORBIDDEN; no
/// tenant is needed, and the work runs on the database's monitoring connection.
pub async fn run_operator(
    state: &AppState,
    caller: &Caller,
    info: CallInfo,
    work: impl AsyncFnOnce(&AppState) -> Result<Value>,
) -> Result<Value> {
    let record = Record::start(state, caller, &info);
    let outcome = if caller.operator {
        work(state).instrument(record.span.clone()).await
    } else {
        Err(forbidden(state, info.tool))
    };
    record.finish(state, info, caller.tenant.as_ref(), outcome)
}

/// FORBIDDEN for a non-operator calling operator tool `tool`, saying how to become one.
fn forbidden(state: &AppState, tool: &str) -> AppError {
    AppError::new(
        ErrorCode::Forbidden,
        format!("{tool} is an operator tool; {}", state.auth.operator_hint()),
    )
}

/// The span and clock of one call, and what is recorded when it ends.
struct Record {
    span: tracing::Span,
    database: String,
    request_id: Option<String>,
    started: Instant,
}

impl Record {
    fn start(state: &AppState, caller: &Caller, info: &CallInfo) -> Self {
        let database = info
            .database
            .clone()
            .unwrap_or_else(|| state.databases.default_name().to_string());
        let span = tracing::info_span!(
            parent: &caller.span,
            "tool_call",
            tool = info.tool,
            database = %database,
            tenant = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        Self {
            span,
            database,
            request_id: caller.request_id.clone(),
            started: Instant::now(),
        }
    }

    fn finish(
        self,
        state: &AppState,
        info: CallInfo,
        tenant: Option<&Tenant>,
        outcome: Result<Value>,
    ) -> Result<Value> {
        let elapsed = self.started.elapsed();
        let code = match &outcome {
            Ok(_) => "OK",
            Err(e) => e.code.as_str(),
        };
        let field = |name| outcome.as_ref().ok().and_then(|v| v.get(name));
        let rows = field("row_count").and_then(Value::as_u64);
        let db_ms = field("duration_ms").and_then(Value::as_f64);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        self.span.record("outcome", code);
        self.span.record("duration_ms", duration_ms);
        crate::telemetry::record_tool_call(info.tool, code, elapsed, db_ms, rows);
        if elapsed.as_millis() as u64 >= state.config().slow_query_ms {
            tracing::warn!(parent: &self.span, tool = info.tool, duration_ms, outcome = code, "slow tool call");
        }
        let (sql, statement_kind) = match info.sql.as_deref() {
            Some(sql) => {
                let (masked, kinds) = crate::sql::limits::masked_with_kinds(sql);
                (Some(masked), kinds)
            }
            None => (info.description, None),
        };
        let entry = state.history.record(HistoryEntry {
            id: 0,
            instance: state.audit.instance().to_string(),
            time: chrono::Utc::now(),
            request_id: self.request_id,
            tool: info.tool.to_string(),
            database: self.database,
            tenant: tenant.map(|t| t.id().to_string()),
            subject: tenant.and_then(|t| t.subject.clone()),
            statement_kind,
            sql,
            param_count: info.params.len(),
            params: state.config().history_store_params.then_some(info.params),
            duration_ms: (duration_ms * 1000.0).round() / 1000.0,
            rows,
            // A failed batch_execute still committed the batches before the failing one.
            affected_rows: match &outcome {
                Ok(v) => v.get("affected_rows").and_then(Value::as_u64),
                Err(e) => e
                    .details
                    .as_ref()
                    .and_then(|d| d.get("committed_affected_rows"))
                    .and_then(Value::as_u64),
            },
            outcome: code.to_string(),
            error_code: outcome.as_ref().err().map(|e| e.code.as_str().to_string()),
        });
        state.audit.submit(entry);
        outcome
    }
}

//! The MCP server: one `#[tool]` method per tool, each a thin shell over its family module
//! (query, schema, explain) that does the work inside the caller's tenant transaction.

pub mod explain;
pub mod fair_share;
pub mod fast_path;
pub mod limiter;
pub mod ops;
pub mod params;
pub mod query;
pub mod schema;
pub mod search;

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

use crate::app::AppState;
use crate::db::Tenant;
use crate::error::{AppError, ErrorCode, Result};
use crate::history::HistoryEntry;
use crate::http::tenant::{RequestSpan, RequestTenant};

pub use explain::ExplainArgs;
pub use query::ExecuteQueryArgs;
pub use schema::{ListTablesArgs, MultipleTableSchemasArgs, TableSchemaArgs};

const INSTRUCTIONS: &str = "PostgreSQL tools. Every call runs under the caller's row-level-security \
tenant in a read-only transaction, so results contain only the rows that tenant may see. Start \
with list_tables and get_multiple_table_schemas to learn the schema, then execute_query with \
one SELECT statement (use $1, $2 ... placeholders with params for values). explain_query shows \
the plan. Errors carry a stable error_code.";

/// One MCP server instance (rmcp creates one per session); cheap to create.
#[derive(Clone)]
pub struct PgMcpServer {
    state: Arc<AppState>,
    /// Built once per process: building validates names and generates every schema.
    tool_router: Arc<ToolRouter<Self>>,
    /// The tenant of every call when no HTTP request carries one (stdio transport).
    process_tenant: Option<Tenant>,
}

impl PgMcpServer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            state,
            tool_router: shared_router(),
            process_tenant: None,
        }
    }

    /// A server for one process-wide tenant (stdio: `PG_MCP_RLS_USER_ID`).
    pub fn with_process_tenant(state: Arc<AppState>, tenant: Option<Tenant>) -> Self {
        Self {
            process_tenant: tenant,
            ..Self::new(state)
        }
    }

    /// The caller's tenant: from the HTTP request (set by the tenant middleware), else the
    /// process-wide tenant (stdio), else the configured default. None of them: TENANT_REQUIRED.
    fn tenant(&self, http: Option<&http::request::Parts>) -> Result<Tenant> {
        let from_http = http.map(|parts| {
            parts
                .extensions
                .get::<RequestTenant>()
                .and_then(|t| t.0.clone())
        });
        let tenant = match from_http {
            Some(t) => t,
            None => self.process_tenant.clone().or_else(|| {
                self.state.config.default_rls_user_id.map(|id| Tenant {
                    rls_user_id: id,
                    subject: None,
                    auth: crate::db::AuthMethod::Default,
                })
            }),
        };
        tenant.ok_or_else(|| {
            AppError::new(
                ErrorCode::TenantRequired,
                "no tenant: send the x-rls-user-id header (a UUID) with the request",
            )
        })
    }
}

/// What a tool call is about, for the span, metrics and query history.
pub struct CallInfo {
    pub tool: &'static str,
    pub database: Option<String>,
    pub sql: Option<String>,
    pub params: Vec<Value>,
}

impl CallInfo {
    fn new(tool: &'static str, database: Option<&String>) -> Self {
        Self {
            tool,
            database: database.cloned(),
            sql: None,
            params: Vec::new(),
        }
    }

    fn with_sql(mut self, sql: &str, params: &[Value]) -> Self {
        self.sql = Some(sql.to_string());
        self.params = params.to_vec();
        self
    }
}

impl PgMcpServer {
    /// Runs one tool for the caller: tenant, rate limit, then the work, inside a span that is a
    /// child of the HTTP request's; then metrics, query history and the slow-query log. Every
    /// tool goes through here, so none of these can be forgotten by one of them.
    async fn run<F, Fut>(
        &self,
        http: Option<&http::request::Parts>,
        info: CallInfo,
        needs_tenant: bool,
        work: F,
    ) -> std::result::Result<CallToolResult, ErrorData>
    where
        F: FnOnce(Arc<AppState>, Option<Tenant>) -> Fut,
        Fut: std::future::Future<Output = Result<Value>>,
    {
        let parent = http
            .and_then(|p| p.extensions.get::<RequestSpan>())
            .map(|s| s.0.clone())
            .unwrap_or_else(tracing::Span::current);
        let database = info
            .database
            .clone()
            .unwrap_or_else(|| self.state.databases.default_name().to_string());
        let span = tracing::info_span!(
            parent: &parent,
            "tool_call",
            tool = info.tool,
            database = %database,
            tenant = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        let started = Instant::now();
        let mut tenant_id = None;
        let outcome = async {
            let tenant = match self.tenant(http) {
                Ok(t) => Some(t),
                Err(e) if needs_tenant => return Err(e),
                Err(_) => None,
            };
            if let Some(t) = &tenant {
                tenant_id = Some(t.rls_user_id.to_string());
                tracing::Span::current().record("tenant", tracing::field::display(&t.rls_user_id));
                self.state.limiter.check(&t.rls_user_id)?;
            }
            // Held for the whole call: one tenant's calls cannot take the whole pool.
            let _slot = match &tenant {
                Some(t) => Some(self.state.slots.acquire(&database, &t.rls_user_id).await?),
                None => None,
            };
            work(self.state.clone(), tenant).await
        }
        .instrument(span.clone())
        .await;

        let elapsed = started.elapsed();
        let code = match &outcome {
            Ok(_) => "OK",
            Err(e) => e.code.as_str(),
        };
        let rows = outcome
            .as_ref()
            .ok()
            .and_then(|v| v.get("row_count"))
            .and_then(Value::as_u64);
        let db_ms = outcome
            .as_ref()
            .ok()
            .and_then(|v| v.get("duration_ms"))
            .and_then(Value::as_f64);
        let duration_ms = elapsed.as_secs_f64() * 1000.0;
        span.record("outcome", code);
        span.record("duration_ms", duration_ms);
        crate::telemetry::record_tool_call(info.tool, code, elapsed, db_ms, rows);
        if elapsed.as_millis() as u64 >= self.state.config.slow_query_ms {
            tracing::warn!(parent: &span, tool = info.tool, duration_ms, outcome = code, "slow tool call");
        }
        let config = &self.state.config;
        self.state.history.record(HistoryEntry {
            id: 0,
            time: chrono::Utc::now(),
            tool: info.tool.to_string(),
            database,
            tenant: tenant_id,
            sql: info.sql,
            param_count: info.params.len(),
            params: config.history_store_params.then_some(info.params),
            duration_ms: (duration_ms * 1000.0).round() / 1000.0,
            rows,
            outcome: code.to_string(),
        });
        to_result(outcome)
    }
}

impl PgMcpServer {
    /// `execute_query` for the caller of one HTTP request: the tool method and the stateless
    /// fast path (`fast_path.rs`) both come here, so they cannot drift apart.
    pub(crate) async fn call_execute_query(
        &self,
        http: Option<&http::request::Parts>,
        args: ExecuteQueryArgs,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("execute_query", args.database.as_ref())
            .with_sql(&args.sql, &args.params);
        self.run(http, info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            query::execute_query(&state, &tenant, args).await
        })
        .await
    }
}

/// The HTTP request behind an MCP request (streamable HTTP puts its parts in the extensions).
fn http_parts(ctx: &RequestContext<RoleServer>) -> Option<&http::request::Parts> {
    ctx.extensions.get::<http::request::Parts>()
}

fn shared_router() -> Arc<ToolRouter<PgMcpServer>> {
    static ROUTER: std::sync::OnceLock<Arc<ToolRouter<PgMcpServer>>> = std::sync::OnceLock::new();
    ROUTER
        .get_or_init(|| Arc::new(PgMcpServer::tool_router()))
        .clone()
}

/// A tool's outcome as an MCP result: structured content on success, `isError: true` with a
/// stable `error_code` otherwise. Never a protocol error, so clients always see the reason.
fn to_result(outcome: Result<Value>) -> std::result::Result<CallToolResult, ErrorData> {
    Ok(match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => CallToolResult::structured_error(err.to_json()),
    })
}

#[tool_router]
impl PgMcpServer {
    #[tool(
        description = "Run one read-only SQL query (SELECT, WITH ... SELECT, VALUES, TABLE) and return columns (name, PostgreSQL type), rows (arrays in column order), row_count, truncated and duration_ms. Pass values as params with $1, $2 ... placeholders instead of inlining them. Only the caller's tenant rows are visible.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn execute_query(
        &self,
        Parameters(args): Parameters<ExecuteQueryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        self.call_execute_query(http_parts(&ctx), args).await
    }

    #[tool(
        description = "List tables and views (schema, name, kind, estimated row count, comment, whether row-level security is on). Optionally only one schema, e.g. \"retail\".",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn list_tables(
        &self,
        Parameters(args): Parameters<ListTablesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("list_tables", args.database.as_ref());
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            schema::list_tables(&state, &tenant, args).await
        })
        .await
    }

    #[tool(
        description = "Describe one table or view: columns (type, nullable, default, comment, enum values), primary key, unique constraints, indexes (method, columns), foreign keys in both directions, row-level security. table_name may be schema-qualified (retail.orders).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_table_schema(
        &self,
        Parameters(args): Parameters<TableSchemaArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_table_schema", args.database.as_ref());
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            schema::get_table_schema(&state, &tenant, args).await
        })
        .await
    }

    #[tool(
        description = "Describe several tables or views in one call (same shape as get_table_schema for each). A missing table gives an error entry for that table; the others are still described.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_multiple_table_schemas(
        &self,
        Parameters(args): Parameters<MultipleTableSchemasArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_multiple_table_schemas", args.database.as_ref());
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            schema::get_multiple_table_schemas(&state, &tenant, args).await
        })
        .await
    }

    #[tool(
        description = "Show the execution plan of one read-only query, as JSON (default) or text. With analyze=true the query really runs inside the caller's read-only tenant transaction (so actual row counts reflect what this tenant sees) and nothing is changed.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn explain_query(
        &self,
        Parameters(args): Parameters<ExplainArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("explain_query", args.database.as_ref())
            .with_sql(&args.sql, &args.params);
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            explain::explain_query(&state, &tenant, args).await
        })
        .await
    }

    #[tool(
        description = "Semantic product search: finds products whose descriptions are closest in meaning to query_description (e.g. \"something to cut tree branches\"), with similarity_percent, category, type, price and the stock in the stores this tenant may see. max_rows 1-100 (default 20); similarity_threshold 0-100 percent (default 30).",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn semantic_search_products(
        &self,
        Parameters(args): Parameters<search::SemanticSearchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("semantic_search_products", args.database.as_ref());
        info.sql = Some(format!("semantic search: {}", args.query_description));
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            search::semantic_search_products(&state, &tenant, args).await
        })
        .await
    }

    #[tool(
        description = "Server health: is_healthy, status, uptime_seconds and checks (database connections with pool figures, memory). Needs no tenant.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn health_check(
        &self,
        Parameters(_args): Parameters<ops::HealthCheckArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("health_check", None);
        self.run(http_parts(&ctx), info, false, |state, _| async move {
            ops::health_check(&state).await
        })
        .await
    }

    #[tool(
        description = "Query performance metrics: total, successful and failed calls, success rate, mean/median/p95/max latency in ms, queries per minute, the slowest recent queries (your tenant's; all tenants for head office), pool figures.",
        annotations(read_only_hint = true, open_world_hint = false)
    )]
    async fn get_metrics(
        &self,
        Parameters(args): Parameters<ops::GetMetricsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_metrics", None);
        self.run(http_parts(&ctx), info, true, |state, tenant| async move {
            let tenant = tenant.expect("tenant required");
            ops::get_metrics(&state, &tenant, args).await
        })
        .await
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for PgMcpServer {
    /// Dispatches to the tool router; an unknown tool name is answered with the name and the
    /// list of tools (rmcp alone only says "tool not found").
    async fn call_tool(
        &self,
        request: rmcp::model::CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::CallToolResponse, ErrorData> {
        if self.tool_router.get(&request.name).is_none() {
            let known: Vec<String> = self
                .tool_router
                .list_all()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect();
            return Err(ErrorData::invalid_params(
                format!(
                    "unknown tool {:?}; available tools: {}",
                    request.name,
                    known.join(", ")
                ),
                Some(serde_json::json!({ "error_code": "VALIDATION_ERROR" })),
            ));
        }
        let tcc = rmcp::handler::server::tool::ToolCallContext::new(self, request, context);
        self.tool_router.call(tcc).await
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("pg-mcp", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

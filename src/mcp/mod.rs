//! The MCP server: one `#[tool]` method per tool, each a thin shell over its family module
//! (query, schema, explain) that does the work inside the caller's tenant transaction.

pub mod explain;
pub mod limiter;
pub mod params;
pub mod query;
pub mod schema;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

use crate::app::AppState;
use crate::db::Tenant;
use crate::error::{AppError, ErrorCode, Result};
use crate::http::tenant::RequestTenant;

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
    tool_router: ToolRouter<Self>,
}

/// Where the tenant of a call comes from when no HTTP request carries it (stdio).
#[derive(Debug, Clone)]
pub struct ProcessTenant(pub Option<Tenant>);

impl PgMcpServer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller's tenant: from the HTTP request (set by the tenant middleware), else the
    /// process-wide tenant (stdio), else the configured default. None of them: TENANT_REQUIRED.
    fn tenant(&self, ctx: &RequestContext<RoleServer>) -> Result<Tenant> {
        let from_http = ctx.extensions.get::<http::request::Parts>().map(|parts| {
            parts
                .extensions
                .get::<RequestTenant>()
                .and_then(|t| t.0.clone())
        });
        let tenant = match from_http {
            Some(t) => t,
            None => ctx
                .extensions
                .get::<ProcessTenant>()
                .and_then(|t| t.0.clone())
                .or_else(|| {
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

impl PgMcpServer {
    /// Runs one tool for the caller: tenant, rate limit, then the work. Every data tool goes
    /// through here, so the checks cannot be forgotten by one of them.
    async fn run<F, Fut>(
        &self,
        ctx: &RequestContext<RoleServer>,
        work: F,
    ) -> std::result::Result<CallToolResult, ErrorData>
    where
        F: FnOnce(Arc<AppState>, Tenant) -> Fut,
        Fut: std::future::Future<Output = Result<Value>>,
    {
        let outcome = async {
            let tenant = self.tenant(ctx)?;
            self.state.limiter.check(&tenant.rls_user_id)?;
            work(self.state.clone(), tenant).await
        }
        .await;
        to_result(outcome)
    }
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
        self.run(&ctx, |state, tenant| async move {
            query::execute_query(&state, &tenant, args).await
        })
        .await
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
        self.run(&ctx, |state, tenant| async move {
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
        self.run(&ctx, |state, tenant| async move {
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
        self.run(&ctx, |state, tenant| async move {
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
        self.run(&ctx, |state, tenant| async move {
            explain::explain_query(&state, &tenant, args).await
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

//! The MCP glue: rmcp tool registration and the transports' entry points. Each `#[tool]`
//! method turns the request into a [`Caller`] and hands the call to the tools layer
//! (`crate::tools`), which does the work; the schemas come from the argument types' docs.

pub mod fast_path;
mod resources;

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, Implementation, ServerCapabilities, ServerConfig};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_handler, tool_router};
use serde_json::Value;

use crate::db::Tenant;
use crate::error::Result;
use crate::state::AppState;
use crate::tools::connections;
use crate::tools::explain::ExplainArgs;
use crate::tools::ops::{GetMetricsArgs, HealthCheckArgs};
use crate::tools::query::ExecuteQueryArgs;
use crate::tools::schema::{ListTablesArgs, MultipleTableSchemasArgs, TableSchemaArgs};
use crate::tools::search::{SemanticSearchArgs, SourceSearchArgs};
use crate::tools::{self, CallInfo, Caller, dba, explain, ops, query, schema, search};

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
    /// The caller of every call when no HTTP request carries one (stdio transport).
    process_tenant: Option<Tenant>,
}

impl PgMcpServer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self {
            tool_router: shared_router(&state),
            state,
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

    /// The caller: the one the HTTP middleware resolved, else the process-wide tenant (stdio).
    fn caller(&self, http: Option<&http::request::Parts>) -> Caller {
        match http.and_then(|parts| parts.extensions.get::<Caller>()) {
            Some(caller) => caller.clone(),
            None => Caller {
                tenant: self.process_tenant.clone(),
                span: tracing::Span::current(),
                request_id: None,
                operator: false,
            },
        }
    }

    /// `execute_query` for the caller of one HTTP request: the tool method and the stateless
    /// fast path (`fast_path.rs`) both come here, so they cannot drift apart.
    pub(crate) async fn call_execute_query(
        &self,
        http: Option<&http::request::Parts>,
        args: ExecuteQueryArgs,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("execute_query", args.database.as_ref())
            .with_sql(&args.sql, &args.params);
        let caller = self.caller(http);
        to_data_result(
            tools::run(&self.state, &caller, info, async |call| {
                query::execute_query(&call, args).await
            })
            .await,
        )
    }
}

/// The HTTP request behind an MCP request (streamable HTTP puts its parts in the extensions).
fn http_parts(ctx: &RequestContext<RoleServer>) -> Option<&http::request::Parts> {
    ctx.extensions.get::<http::request::Parts>()
}

/// The tools this deployment lists, built once per process and variant: `semantic_search`
/// only with declared sources, `semantic_search_products` only where the retail demo is
/// installed, `query` only with a chat model, `execute_transaction` and `batch_execute` only
/// with a database in write mode (and then `execute_query` is annotated as a tool that may
/// write), so a client never sees a tool that can only fail here.
fn shared_router(state: &AppState) -> Arc<ToolRouter<PgMcpServer>> {
    type Router = std::sync::OnceLock<Arc<ToolRouter<PgMcpServer>>>;
    static ROUTERS: [Router; 32] = [const { Router::new() }; 32];
    let sources = !state.sources.is_empty();
    let demo = state.retail_demo.load(std::sync::atomic::Ordering::Relaxed);
    let llm = state.llm.is_some();
    let databases = state.databases.all();
    let writes = databases.iter().any(|db| db.writable);
    let monitored = databases.iter().any(|db| db.monitor.is_some());
    let variant = usize::from(monitored) * 16
        + usize::from(writes) * 8
        + usize::from(llm) * 4
        + usize::from(sources) * 2
        + usize::from(demo);
    ROUTERS[variant]
        .get_or_init(|| {
            let mut router = PgMcpServer::tool_router();
            if !llm {
                router.remove_route("query");
            }
            if !sources {
                router.remove_route("semantic_search");
            }
            if !demo {
                router.remove_route("semantic_search_products");
            }
            if !monitored {
                for tool in OPERATOR_TOOLS {
                    router.remove_route(tool);
                }
            }
            if writes {
                if let Some(route) = router.map.get_mut("execute_query") {
                    route.attr.description = Some(EXECUTE_QUERY_WRITE_MODE.into());
                    route.attr.annotations = Some(
                        rmcp::model::ToolAnnotations::with_title("Run a SQL statement")
                            .read_only(false)
                            .destructive(true)
                            .idempotent(false)
                            .open_world(false),
                    );
                }
            } else {
                router.remove_route("execute_transaction");
                router.remove_route("batch_execute");
            }
            Arc::new(router)
        })
        .clone()
}

/// The DBA tools: listed only for operator callers, and only with a monitoring connection.
pub const OPERATOR_TOOLS: [&str; 7] = [
    "db_activity",
    "index_advice",
    "db_locks",
    "table_health",
    "index_health",
    "top_queries",
    "db_overview",
];

/// The connection tools: listed only for operator callers (with or without monitoring).
pub const CONNECTION_TOOLS: [&str; 4] = [
    "list_connections",
    "test_connection",
    "add_connection",
    "remove_connection",
];

/// The tools `caller` is shown: operator and connection tools only to operators.
fn tools_for(router: &ToolRouter<PgMcpServer>, caller: &Caller) -> Vec<rmcp::model::Tool> {
    router
        .list_all()
        .into_iter()
        .filter(|t| {
            let name = t.name.as_ref();
            caller.operator || !(OPERATOR_TOOLS.contains(&name) || CONNECTION_TOOLS.contains(&name))
        })
        .collect()
}

const EXECUTE_QUERY_WRITE_MODE: &str = "Run one SQL statement and return columns, rows (arrays in column order), row_count, truncated and duration_ms. A query (SELECT, WITH ... SELECT, VALUES, TABLE) runs read-only; on a database in write mode, a caller allowed to write may also run INSERT, UPDATE, DELETE or MERGE (the allowed operations), committed at once, with affected_rows and any RETURNING rows. UPDATE and DELETE without WHERE need allow_full_table: true. Pass values as params with $1, $2 ... placeholders. Only the caller's tenant rows are visible or writable.";

/// `GET /mcp/tools` (seed 000): the tools this deployment lists, with their input and output
/// schemas and annotations, as plain JSON in MCP's own shape, for curl users and gateways.
pub async fn tools_endpoint(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
) -> axum::Json<Value> {
    // What a tenant is shown (this route has no caller).
    let tools = tools_for(&shared_router(&state), &Caller::anonymous());
    axum::Json(serde_json::json!({ "count": tools.len(), "tools": tools }))
}

impl PgMcpServer {
    /// [`Self::tenant_tool`] for a tool that answers with rows (see [`to_data_result`]).
    async fn tenant_data_tool(
        &self,
        ctx: &RequestContext<RoleServer>,
        info: CallInfo,
        work: impl AsyncFnOnce(tools::Call<'_>) -> Result<Value>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let caller = self.caller(http_parts(ctx));
        to_data_result(tools::run(&self.state, &caller, info, work).await)
    }

    /// An operator tool (`tools::dba`) for the caller of `ctx`; its answer quotes other
    /// sessions' SQL, so it is fenced as untrusted data.
    async fn operator_tool(
        &self,
        ctx: &RequestContext<RoleServer>,
        info: CallInfo,
        work: impl AsyncFnOnce(&AppState) -> Result<Value>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let caller = self.caller(http_parts(ctx));
        to_data_result(tools::run_operator(&self.state, &caller, info, work).await)
    }

    /// A tenant tool through the tools layer's pipeline, for the caller of `ctx`.
    async fn tenant_tool(
        &self,
        ctx: &RequestContext<RoleServer>,
        info: CallInfo,
        work: impl AsyncFnOnce(tools::Call<'_>) -> Result<Value>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let caller = self.caller(http_parts(ctx));
        to_result(tools::run(&self.state, &caller, info, work).await)
    }
}

/// A tool's outcome as an MCP result: structured content on success; otherwise `isError:
/// true` with the error's JSON (a stable `error_code`) as text. Errors carry no structured
/// content: clients validate structured content against the tool's `outputSchema`, which
/// describes the answer. Never a protocol error, so clients always see the reason.
fn to_result(outcome: Result<Value>) -> std::result::Result<CallToolResult, ErrorData> {
    Ok(match outcome {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => CallToolResult::error(vec![rmcp::model::ContentBlock::text(
            err.to_json().to_string(),
        )]),
    })
}

/// [`to_result`] for tools whose answer holds rows from the database: the text content (what
/// most clients put in front of the model) fences the data between boundary tags the data
/// cannot forge, and says that nothing inside is an instruction. The structured content is
/// the plain data.
fn to_data_result(outcome: Result<Value>) -> std::result::Result<CallToolResult, ErrorData> {
    let mut result = to_result(outcome)?;
    if result.is_error != Some(true)
        && let Some(value) = &result.structured_content
    {
        result.content = vec![rmcp::model::ContentBlock::text(crate::untrusted::fence(
            &value.to_string(),
        ))];
    }
    Ok(result)
}

#[tool_router]
impl PgMcpServer {
    #[tool(
        description = "Run one read-only SQL query (SELECT, WITH ... SELECT, VALUES, TABLE) and return columns (name, PostgreSQL type), rows (arrays in column order), row_count, truncated and duration_ms. Pass values as params with $1, $2 ... placeholders instead of inlining them. Only the caller's tenant rows are visible.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::query::QueryOutput>(),
        annotations(title = "Run a read-only SQL query", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn execute_query(
        &self,
        Parameters(args): Parameters<ExecuteQueryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        self.call_execute_query(http_parts(&ctx), args).await
    }

    #[tool(
        description = "Write mode: run several statements ({sql, params} each: INSERT, UPDATE, DELETE, MERGE or queries) in order in one transaction under your tenant, all or nothing. Returns each statement's affected_rows and rows. dry_run: true runs them and rolls everything back, showing what would change. A failure names the statement's index, its SQLSTATE and message, and nothing is committed.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::write::TransactionOutput>(),
        annotations(title = "Run statements in one transaction", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn execute_transaction(
        &self,
        Parameters(args): Parameters<crate::tools::write::ExecuteTransactionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("execute_transaction", args.database.as_ref());
        info.sql = Some(
            args.statements
                .iter()
                .map(|s| s.sql.trim())
                .collect::<Vec<_>>()
                .join(";\n"),
        );
        self.tenant_data_tool(&ctx, info, async |call| {
            crate::tools::write::execute_transaction(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Write mode: run one INSERT, UPDATE, DELETE or MERGE statement with many parameter sets (param_sets: [[...], [...]]), in batches of batch_size (default 500), each batch in its own transaction under your tenant (atomic: true: all in one). Returns the totals; a failure names the failing batch and parameter set, its error, and what committed before it.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::write::BatchOutput>(),
        annotations(title = "Run one statement for many rows", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn batch_execute(
        &self,
        Parameters(args): Parameters<crate::tools::write::BatchExecuteArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("batch_execute", args.database.as_ref());
        info.sql = Some(args.sql.clone());
        self.tenant_tool(&ctx, info, async |call| {
            crate::tools::write::batch_execute(&call, args).await
        })
        .await
    }

    #[tool(
        description = "List tables and views (schema, name, kind, estimated row count, comment, whether row-level security is on). Optionally only one schema, e.g. \"retail\".",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::schema::listing::TablePage>(),
        annotations(title = "List tables and views", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_tables(
        &self,
        Parameters(args): Parameters<ListTablesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("list_tables", args.database.as_ref());
        self.tenant_tool(&ctx, info, async |call| {
            schema::list_tables(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Describe one table or view: columns (type, nullable, default, comment, enum values), primary key, unique constraints, indexes (method, columns), foreign keys in both directions, row-level security. table_name may be schema-qualified (retail.orders).",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::db::catalog::TableSchema>(),
        annotations(title = "Describe a table", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_table_schema(
        &self,
        Parameters(args): Parameters<TableSchemaArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_table_schema", args.database.as_ref());
        self.tenant_tool(&ctx, info, async |call| {
            schema::get_table_schema(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Describe several tables or views in one call (same shape as get_table_schema for each). A missing table gives an error entry for that table; the others are still described.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::schema::MultipleTableSchemas>(),
        annotations(title = "Describe several tables", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_multiple_table_schemas(
        &self,
        Parameters(args): Parameters<MultipleTableSchemasArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_multiple_table_schemas", args.database.as_ref());
        self.tenant_tool(&ctx, info, async |call| {
            schema::get_multiple_table_schemas(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Show the execution plan of one read-only query, as JSON (default) or text. With analyze=true the query really runs inside the caller's read-only tenant transaction (so actual row counts reflect what this tenant sees) and nothing is changed.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::explain::ExplainOutput>(),
        annotations(title = "Explain a query plan", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn explain_query(
        &self,
        Parameters(args): Parameters<ExplainArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("explain_query", args.database.as_ref())
            .with_sql(&args.sql, &args.params);
        self.tenant_tool(&ctx, info, async |call| {
            explain::explain_query(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Semantic product search: finds products whose descriptions are closest in meaning to query_description (e.g. \"something to cut tree branches\"), with similarity_percent, category, type, price and the stock in the stores this tenant may see. max_rows 1-100 (default 20); similarity_threshold 0-100 percent (default 30).",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::search::ProductSearchOutput>(),
        annotations(title = "Search products by meaning", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn semantic_search_products(
        &self,
        Parameters(args): Parameters<SemanticSearchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("semantic_search_products", args.database.as_ref());
        info.description = Some("semantic search of products".into());
        self.tenant_data_tool(&ctx, info, async |call| {
            search::semantic_search_products(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Semantic search over a table the operator declared as a source (PG_MCP_EMBEDDING_SOURCES), e.g. documents or tickets: the rows whose text is closest in meaning to query, nearest first, each with key, similarity_percent and the source's columns. Only the caller's tenant's rows are ranked. max_rows 1-100 (default 20); similarity_threshold 0-100 percent (default 30). An unknown source's error lists the sources.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::search::SourceSearchOutput>(),
        annotations(title = "Search a declared source by meaning", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn semantic_search(
        &self,
        Parameters(args): Parameters<SourceSearchArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("semantic_search", args.database.as_ref());
        info.description = Some(format!("semantic search of {}", args.source));
        self.tenant_data_tool(&ctx, info, async |call| {
            search::semantic_search(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Answer a question in plain language (e.g. \"top 5 products by revenue in March\"): a chat model writes one read-only SQL query from the relevant part of the schema; it must pass the SQL guard and an EXPLAIN under your tenant, and a refusal or error goes back to the model for a correction. Returns the sql, a short explanation, the rows (return_type result, default; sql: only the SQL; both), the attempts and the tokens used. Only your tenant's rows are visible.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::nl::QueryAnswer>(),
        annotations(title = "Ask a question in natural language", read_only_hint = true, destructive_hint = false, idempotent_hint = false, open_world_hint = true)
    )]
    async fn query(
        &self,
        Parameters(args): Parameters<crate::tools::nl::QueryArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let mut info = CallInfo::new("query", args.database.as_ref());
        info.description = Some("natural-language question".into());
        self.tenant_data_tool(&ctx, info, async |call| {
            crate::tools::nl::query(&call, args).await
        })
        .await
    }

    #[tool(
        description = "Server health: is_healthy, status, uptime_seconds and checks (database connections with pool figures, memory). Needs no tenant.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::ops::HealthOutput>(),
        annotations(title = "Server health", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn health_check(
        &self,
        Parameters(_args): Parameters<HealthCheckArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("health_check", None);
        let caller = self.caller(http_parts(&ctx));
        to_result(tools::run_without_tenant(&self.state, &caller, info, ops::health_check).await)
    }

    #[tool(
        description = "Query performance metrics: total, successful and failed calls, success rate, mean/median/p95/max latency in ms, queries per minute, the slowest recent queries (your tenant's; all tenants for head office), pool figures.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::ops::MetricsOutput>(),
        annotations(title = "Query performance metrics", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn get_metrics(
        &self,
        Parameters(args): Parameters<GetMetricsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("get_metrics", None);
        self.tenant_tool(&ctx, info, async |call| ops::get_metrics(&call, args).await)
            .await
    }

    #[tool(
        description = "Operator only. Sessions of the whole server: counts by state, the sessions that matter (long-running queries and transactions over long_running_ms, idle in transaction, waiting on another session) sorted by severity, wait events. Query text is masked and cut unless full_text: true.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Database activity",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn db_activity(
        &self,
        Parameters(args): Parameters<dba::ActivityArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("db_activity", args.database.as_ref()).described("db activity");
        self.operator_tool(&ctx, info, async |state| {
            dba::db_activity(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. Lock waits: who blocks whom (pids, users, applications, queries), for how long, on which lock and relation, and the root blockers of each chain.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Blocking locks",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn db_locks(
        &self,
        Parameters(args): Parameters<dba::LocksArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("db_locks", args.database.as_ref()).described("db locks");
        self.operator_tool(&ctx, info, async |state| dba::db_locks(state, args).await)
            .await
    }

    #[tool(
        description = "Operator only. Table health sorted by severity: sizes, live and dead tuples with a bloat estimate, last vacuum and analyze (manual and auto), transaction-id age towards wraparound (tables and databases), tables without a primary key.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Table health",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn table_health(
        &self,
        Parameters(args): Parameters<dba::HealthArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("table_health", args.database.as_ref()).described("table health");
        self.operator_tool(&ctx, info, async |state| {
            dba::table_health(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. Index health: invalid indexes, duplicate and overlapping indexes, indexes never scanned since statistics began (with sizes), foreign keys without an index; each with a suggested fix.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Index health",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn index_health(
        &self,
        Parameters(args): Parameters<dba::HealthArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("index_health", args.database.as_ref()).described("index health");
        self.operator_tool(&ctx, info, async |state| {
            dba::index_health(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. The most expensive statements from pg_stat_statements (order_by total_time, mean_time, calls or rows): calls, total, mean and max ms, rows, shared-buffer hit ratio. NOT_AVAILABLE says how to enable pg_stat_statements when it is not installed.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Top queries",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn top_queries(
        &self,
        Parameters(args): Parameters<dba::TopQueriesArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("top_queries", args.database.as_ref()).described("top queries");
        self.operator_tool(&ctx, info, async |state| {
            dba::top_queries(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. Index advice for one read-only query: candidate indexes read off its plan (sequential scans with selective filters, sorts, hash-join keys), minus those an index already covers; each verified with a hypothetical index (estimated cost before and after) when the hypopg extension is installed, otherwise labelled heuristic. Runs EXPLAIN only, in a read-only transaction; never creates an index.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(title = "Index advice", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn index_advice(
        &self,
        Parameters(args): Parameters<crate::tools::index_advice::IndexAdviceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info =
            CallInfo::new("index_advice", args.database.as_ref()).with_sql(&args.sql, &args.params);
        let caller = self.caller(http_parts(&ctx));
        to_data_result(
            tools::run_operator_as_tenant(&self.state, &caller, info, async |call| {
                crate::tools::index_advice::index_advice(&call, args).await
            })
            .await,
        )
    }

    #[tool(
        description = "Operator only. Server overview: version, uptime, database sizes, connections used against max, cache hit ratio, transactions and deadlocks, replication status and lag, checkpoints, and the settings that matter (shared_buffers, work_mem, max_connections, statement_timeout ...).",
        output_schema = rmcp::handler::server::tool::schema_for_output::<crate::tools::dba::DbaAnswer>(),
        annotations(
            title = "Database overview",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    async fn db_overview(
        &self,
        Parameters(args): Parameters<dba::DatabaseArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("db_overview", args.database.as_ref()).described("db overview");
        self.operator_tool(&ctx, info, async |state| {
            dba::db_overview(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. The databases pg-mcp serves (as GET /connections): name, host, port, database, user, health, server version, pool figures, write mode, last error, and whether it was added at runtime. Never a password.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<connections::ConnectionsAnswer>(),
        annotations(title = "List connections", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn list_connections(
        &self,
        Parameters(_args): Parameters<connections::ListConnectionsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("list_connections", None).described("list connections");
        self.operator_tool(&ctx, info, connections::list_connections)
            .await
    }

    #[tool(
        description = "Operator only. Tries a database: a known one by name, or a connection URL (dsn, postgres://user:password@host:port/db) without adding it. Answers reachability, server version and the role's attributes (superuser, BYPASSRLS, pg_monitor); FORBIDDEN for a role that would bypass row-level security or can read other sessions.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<connections::ConnectionsAnswer>(),
        annotations(title = "Test a connection", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn test_connection(
        &self,
        Parameters(args): Parameters<connections::TestConnectionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info =
            CallInfo::new("test_connection", args.name.as_ref()).described("test connection");
        self.operator_tool(&ctx, info, async |state| {
            connections::test_connection(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. Adds a database under a name (then every tool takes it as `database`), from a connection URL as a role without superuser or BYPASSRLS. It gets the start-up checks and must answer first. Read-only, and in memory only: a restart forgets it.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<connections::ConnectionsAnswer>(),
        annotations(title = "Add a connection", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = true)
    )]
    async fn add_connection(
        &self,
        Parameters(args): Parameters<connections::AddConnectionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info = CallInfo::new("add_connection", Some(&args.name)).described("add connection");
        self.operator_tool(&ctx, info, async |state| {
            connections::add_connection(state, args).await
        })
        .await
    }

    #[tool(
        description = "Operator only. Removes a database by name (not the default one): new calls on it get UNKNOWN_DATABASE, calls in flight finish, then its pools close. A configured one comes back at restart.",
        output_schema = rmcp::handler::server::tool::schema_for_output::<connections::ConnectionsAnswer>(),
        annotations(title = "Remove a connection", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn remove_connection(
        &self,
        Parameters(args): Parameters<connections::RemoveConnectionArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let info =
            CallInfo::new("remove_connection", Some(&args.name)).described("remove connection");
        self.operator_tool(&ctx, info, async |state| {
            connections::remove_connection(state, args).await
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
            let known: Vec<String> =
                tools_for(&self.tool_router, &self.caller(http_parts(&context)))
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

    /// The tools, with the operator tools for operators only.
    async fn list_tools(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::ListToolsResult, ErrorData> {
        let caller = self.caller(http_parts(&context));
        Ok(rmcp::model::ListToolsResult::with_all_items(tools_for(
            &self.tool_router,
            &caller,
        )))
    }

    async fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::ListResourcesResult, ErrorData> {
        Ok(rmcp::model::ListResourcesResult::with_all_items(
            resources::listed(&self.state),
        ))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        Ok(rmcp::model::ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::ReadResourceResponse, ErrorData> {
        let caller = self.caller(http_parts(&context));
        let info = CallInfo::new("read_resource", None);
        let uri = request.uri;
        let read = tools::run(&self.state, &caller, info, async |call| {
            tools::resources::read(&call, &uri).await
        })
        .await
        .map_err(resources::protocol_error)?;
        let text = read["text"].as_str().unwrap_or_default().to_string();
        Ok(
            rmcp::model::ReadResourceResult::new(vec![rmcp::model::ResourceContents::text(
                text, uri,
            )])
            .into(),
        )
    }

    async fn complete(
        &self,
        request: rmcp::model::CompleteRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<rmcp::model::CompleteResult, ErrorData> {
        let Some(template) = request.r#ref.as_resource_uri().map(str::to_string) else {
            return Ok(rmcp::model::CompleteResult::default());
        };
        let chosen = request
            .context
            .and_then(|c| c.arguments)
            .unwrap_or_default();
        let caller = self.caller(http_parts(&context));
        let info = CallInfo::new("complete", None);
        let argument = request.argument;
        let found = tools::run(&self.state, &caller, info, async |call| {
            tools::resources::complete(&call, &template, &argument.name, &argument.value, &chosen)
                .await
        })
        .await
        .map_err(resources::protocol_error)?;
        Ok(resources::completion(found))
    }

    /// In session mode, tells the client when a schema refresh changed the catalogue
    /// (`notifications/resources/list_changed`).
    async fn on_initialized(&self, context: rmcp::service::NotificationContext<RoleServer>) {
        if !self.state.config().stateless_http {
            resources::notify_changes(&self.state, context.peer);
        }
    }

    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_completions()
                .enable_resources()
                .enable_resources_list_changed()
                .enable_tools()
                .build(),
        )
        .with_server_info(Implementation::new("pg-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }
}

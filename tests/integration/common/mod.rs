//! Shared test support: the test database settings and its tenants, the server's tools, an
//! in-process server on a real TCP port, the real `pg-mcp serve` binary as a child process
//! (and nginx in front of it), and a small MCP client speaking streamable HTTP (JSON and SSE
//! responses).

pub mod databases;
pub mod idp;
pub mod mcp_client;
pub mod nginx;
pub mod pgbouncer;
pub mod process;
pub mod require;
pub mod standby;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pg_mcp::config::Config;
use pg_mcp::state::AppState;
use tokio_util::sync::CancellationToken;

#[allow(unused_imports)]
pub use mcp_client::{McpClient, ToolOutcome};

/// The head office's RLS user id: it sees every store (as seeded by `pg-mcp seed`).
pub const HEAD_OFFICE: &str = pg_mcp_demo::HEAD_OFFICE_RLS_USER_ID;
/// The Seattle store manager's RLS user id: the usual single-store tenant.
pub const SEATTLE: &str = pg_mcp_demo::SEATTLE_RLS_USER_ID;
/// A well-formed RLS user id that no store has.
pub const UNKNOWN_TENANT: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

/// Every tool a server on the retail demo lists in `tools/list`, sorted by name
/// (`semantic_search` is listed only with declared sources).
pub const TOOLS: [&str; 8] = [
    "execute_query",
    "explain_query",
    "get_metrics",
    "get_multiple_table_schemas",
    "get_table_schema",
    "health_check",
    "list_tables",
    "semantic_search_products",
];

/// Asserts that `names` (from a `tools/list` result, in any order) are exactly [`TOOLS`].
pub fn assert_lists_every_tool<'a>(names: impl IntoIterator<Item = &'a str>) {
    let mut names: Vec<&str> = names.into_iter().collect();
    names.sort_unstable();
    assert_eq!(names, TOOLS, "tools/list names every tool, once each");
}

/// The tool names of a `tools/list` result's `tools` array.
pub fn tool_names(tools: &serde_json::Value) -> Vec<&str> {
    tools
        .as_array()
        .expect("a tools array")
        .iter()
        .map(|t| t["name"].as_str().expect("a tool name"))
        .collect()
}

/// `schema.name` of each entry of a `list_tables` answer, in order.
pub fn table_names(page: &serde_json::Value) -> Vec<String> {
    page["tables"]
        .as_array()
        .unwrap_or_else(|| panic!("a tables array: {page}"))
        .iter()
        .map(|t| {
            format!(
                "{}.{}",
                t["schema"].as_str().unwrap(),
                t["name"].as_str().unwrap()
            )
        })
        .collect()
}

/// Calls `check` until it gives `Some`, every `every`, for at most `limit` (then `None`). The
/// first call is immediate.
pub async fn wait_until<T>(
    limit: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(done) = check().await {
            return Some(done);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// The JSON body of a GET of `url` with `Authorization: Bearer <token>` (the admin routes).
pub async fn get_json_with_bearer(url: &str, token: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Settings exported by `scripts/test.sh`.
pub struct TestEnv {
    pub admin_url: String,
    pub app_url: String,
    pub signing_key: String,
}

pub fn env() -> TestEnv {
    let get = |k: &str| {
        std::env::var(k).unwrap_or_else(|_| {
            panic!("{k} is not set: run the tests with scripts/test.sh (it starts PostgreSQL and seeds it)")
        })
    };
    TestEnv {
        admin_url: get("PG_MCP_TEST_ADMIN_URL"),
        app_url: get("PG_MCP_TEST_APP_URL"),
        signing_key: get("PG_MCP_TEST_SIGNING_KEY"),
    }
}

/// The monitoring role's password (`scripts/test.sh` exports it; migrate created the role).
pub fn monitor_password() -> String {
    std::env::var("PG_MCP_TEST_MONITOR_PASSWORD").unwrap_or_else(|_| {
        panic!("PG_MCP_TEST_MONITOR_PASSWORD is not set: run the tests with scripts/test.sh")
    })
}

#[derive(Parser)]
struct ConfigParser {
    #[command(flatten)]
    config: Config,
}

/// A configuration for tests: the test database as the app role, defaults otherwise.
pub fn test_config() -> Config {
    let env = env();
    let mut config = ConfigParser::parse_from(["pg-mcp"]).config;
    config.database_url = Some(env.app_url.into());
    config.tenant_signing_key = Some(env.signing_key.into());
    config.bind = "127.0.0.1:0".parse().unwrap();
    config
}

/// A server running in this process on a real loopback port.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    shutdown: CancellationToken,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = test_config();
        adjust(&mut config);
        let state = AppState::new(config).expect("valid config");
        let shutdown = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // The same serve path as `pg-mcp serve` (start-up checks, TCP_NODELAY, shutdown).
        let stop = shutdown.clone();
        let serving =
            pg_mcp::server::serve(
                listener,
                state.clone(),
                async move { stop.cancelled().await },
            );
        tokio::spawn(async move { serving.await.expect("the test server failed") });
        Self {
            addr,
            state,
            shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// A plain GET of `path` (no headers), which must get a response.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(self.url(path))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The HTTP status of a plain GET of `path`.
    pub async fn status(&self, path: &str) -> u16 {
        self.get(path).await.status().as_u16()
    }

    /// The body of a plain GET of `path`, as text.
    pub async fn text(&self, path: &str) -> String {
        self.get(path).await.text().await.unwrap()
    }

    /// An initialised MCP session with the given tenant header (None: no header).
    pub async fn client(&self, tenant: Option<&str>) -> McpClient {
        McpClient::connect(&self.url("/mcp"), tenant).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Held while a test migrates a database of the test cluster: every migration alters the same
/// cluster-wide role (`pgmcp_app`), which PostgreSQL does not allow concurrently ("tuple
/// concurrently updated"). A session advisory lock on the main test database serialises them
/// across test processes; it is released when the returned pool is closed or dropped.
pub async fn migration_lock() -> sqlx::PgPool {
    let lock = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&env().admin_url)
        .await
        .expect("admin connection");
    sqlx::query("SELECT pg_advisory_lock(72001)")
        .execute(&lock)
        .await
        .expect("the migration lock");
    lock
}

/// A superuser pool on the test database (bypasses RLS: the ground truth for assertions).
pub async fn admin_pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env().admin_url)
        .await
        .expect("admin connection")
}

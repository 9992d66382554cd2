//! Shared test support: the test database settings, an in-process server on a real TCP port,
//! the real `pg-mcp serve` binary as a child process, and a small MCP client speaking
//! streamable HTTP (JSON and SSE responses).

pub mod mcp_client;
pub mod process;
pub mod require;

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use pg_mcp::config::Config;
use pg_mcp::state::AppState;
use tokio_util::sync::CancellationToken;

#[allow(unused_imports)]
pub use mcp_client::{McpClient, ToolOutcome};

pub const HEAD_OFFICE: &str = "00000000-0000-0000-0000-000000000000";
pub const SEATTLE: &str = "f47ac10b-58cc-4372-a567-0e02b2c3d479";
pub const UNKNOWN_TENANT: &str = "3f2504e0-4f89-41d3-9a0c-0305e82c3301";

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

/// A superuser pool on the test database (bypasses RLS: the ground truth for assertions).
pub async fn admin_pool() -> sqlx::PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&env().admin_url)
        .await
        .expect("admin connection")
}

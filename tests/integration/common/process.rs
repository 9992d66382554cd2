//! The real `pg-mcp serve` binary as a child process on a free loopback port, for tests that
//! need the whole program (signals, third-party clients, a reverse proxy in front of it).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago (another process may take it before it is used).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The end of a log file, for failure messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(6_000);
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text[start..].to_string()
}

/// Removes every inherited PG_MCP_* variable, so only what a test sets reaches the server.
pub fn clean_pg_mcp_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG_MCP_") {
            cmd.env_remove(key);
        }
    }
}

/// `pg-mcp serve` on a free loopback port, ready (GET /health/ready answered 200), its stdout
/// and stderr in a log file. Dropping it kills the process and removes the log.
pub struct ServerProcess {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts the server against the test database (the app role and signing key of
    /// [`super::env`]), with no inherited PG_MCP_* variable and PG_MCP_LOG_LEVEL=info.
    /// `extra_env` is applied last, so it may override any of those. When another process takes
    /// the port before the server binds it, tries again on another port.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let env = super::env();
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let port = free_port();
            let log = std::env::temp_dir().join(format!(
                "pg-mcp-serve-{}-{n}-{port}.log",
                std::process::id()
            ));
            let out = File::create(&log).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg-mcp"));
            cmd.arg("serve");
            clean_pg_mcp_env(&mut cmd);
            cmd.env("PG_MCP_DATABASE_URL", &env.app_url)
                .env("PG_MCP_TENANT_SIGNING_KEY", &env.signing_key)
                .env("PG_MCP_BIND", format!("127.0.0.1:{port}"))
                .env("PG_MCP_ALLOWED_HOSTS", "localhost,127.0.0.1")
                .env("PG_MCP_LOG_LEVEL", "info");
            for (key, value) in extra_env {
                cmd.env(key, value);
            }
            let child = cmd
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("spawn pg-mcp serve");
            let mut server = Self { child, port, log };
            match server.wait_ready().await {
                Ok(()) => return server,
                // Another process took the port between free_port() and bind: try another.
                Err(e) if e.contains("cannot listen") => last_error = e,
                Err(e) => panic!("pg-mcp serve did not become ready: {e}"),
            }
        }
        panic!("pg-mcp serve could not bind a port: {last_error}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("exited with {status}:\n{}", self.log_tail()));
            }
            if let Ok(resp) = http.get(self.url("/health/ready")).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s:\n{}", self.log_tail()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(&self.log)
    }

    /// Sends SIGTERM (a graceful shutdown request) to the process.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

//! Child processes for tests that need a whole program: the real `pg-mcp serve` binary on a free
//! loopback port (signals, third-party clients, a reverse proxy in front of it), and the one
//! start-and-wait-until-ready loop every such process shares ([`LoopbackChild::start`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::wait_until;

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

/// `pg-mcp <subcommand>` against the test database: no inherited PG_MCP_* variable, then the
/// app role's URL and the signing key of [`super::env`]. The caller adds the rest.
pub fn pg_mcp_command(subcommand: &str) -> Command {
    let env = super::env();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pg-mcp"));
    cmd.arg(subcommand);
    clean_pg_mcp_env(&mut cmd);
    cmd.env("PG_MCP_DATABASE_URL", &env.app_url)
        .env("PG_MCP_TENANT_SIGNING_KEY", &env.signing_key);
    cmd
}

/// A path in the temporary directory that no other test (of this or another process) uses,
/// removed, with everything below it, when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh path `pg-mcp-<label>-<pid>-<n>`; nothing is created there.
    pub fn file(label: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("pg-mcp-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        let _ = std::fs::remove_file(&path);
        Self(path)
    }

    /// A fresh, empty directory.
    pub fn dir(label: &str) -> Self {
        let scratch = Self::file(label);
        std::fs::create_dir_all(&scratch.0).expect("create scratch dir");
        scratch
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.is_dir() {
            let _ = std::fs::remove_dir_all(&self.0);
        } else {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

/// How to tell that a process started by [`LoopbackChild::start`] is ready.
pub struct Readiness<'a> {
    /// The process, in messages (`pg-mcp serve`, `nginx`).
    pub what: &'a str,
    /// Ready when `GET http://127.0.0.1:<port><path>` answers 2xx.
    pub path: &'a str,
    /// The longest the process may take to become ready.
    pub limit: Duration,
    /// What its output says when another process took the port: then start it on another one.
    pub port_taken: &'a str,
}

/// A child process serving HTTP on a loopback port. Dropping it kills and reaps the process.
pub struct LoopbackChild {
    child: Child,
    port: u16,
}

impl LoopbackChild {
    /// Starts a process on a free loopback port and waits until it is ready (see
    /// [`Readiness`]). `spawn(port)` starts it, returning it with what the caller keeps beside
    /// it (its log file, its directory, ...); `logs(&kept)` is its output, for failure messages.
    /// When another process takes the port before this one binds it, tries again on another,
    /// three times in all. Panics when the process exits or is not ready in time.
    pub async fn start<K>(
        ready: &Readiness<'_>,
        mut spawn: impl FnMut(u16) -> (Child, K),
        logs: impl Fn(&K) -> String,
    ) -> (Self, K) {
        let what = ready.what;
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let (child, kept) = spawn(port);
            let mut process = Self { child, port };
            match process.wait_ready(ready, || logs(&kept)).await {
                Ok(()) => return (process, kept),
                // Another process took the port between free_port() and bind: try another.
                Err(e) if e.contains(ready.port_taken) => last_error = e,
                Err(e) => panic!("{what} did not become ready: {e}"),
            }
        }
        panic!("{what} could not bind a port: {last_error}");
    }

    async fn wait_ready(
        &mut self,
        ready: &Readiness<'_>,
        logs: impl Fn() -> String,
    ) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let url = self.url(ready.path);
        let child = &mut self.child;
        let what = ready.what;
        wait_until(ready.limit, Duration::from_millis(100), async || {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(Err(format!("{what} exited with {status}:\n{}", logs())));
            }
            match http.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => Some(Ok(())),
                _ => None,
            }
        })
        .await
        .unwrap_or_else(|| {
            Err(format!(
                "{what} not ready after {:?}:\n{}",
                ready.limit,
                logs()
            ))
        })
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let child = &mut self.child;
        wait_until(limit, Duration::from_millis(10), async || {
            child.try_wait().unwrap()
        })
        .await
    }
}

impl Drop for LoopbackChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `pg-mcp serve` on a free loopback port, ready (GET /health/ready answered 200), its stdout
/// and stderr in a log file. Dropping it kills the process and removes the log.
pub struct ServerProcess {
    // Fields drop in order: the process is gone before its log is removed.
    process: LoopbackChild,
    log: Scratch,
}

impl ServerProcess {
    /// Starts the server against the test database (see [`pg_mcp_command`]) with
    /// PG_MCP_LOG_LEVEL=info. `extra_env` is applied last, so it may override any variable.
    /// When another process takes the port before the server binds it, tries again on another
    /// port.
    pub async fn start(extra_env: &[(&str, String)]) -> Self {
        let ready = Readiness {
            what: "pg-mcp serve",
            path: "/health/ready",
            limit: Duration::from_secs(60),
            port_taken: "cannot listen",
        };
        let (process, log) = LoopbackChild::start(
            &ready,
            |port| {
                let log = Scratch::file(&format!("serve-{port}.log"));
                let out = File::create(log.path()).unwrap();
                let mut cmd = pg_mcp_command("serve");
                cmd.env("PG_MCP_BIND", format!("127.0.0.1:{port}"))
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
                (child, log)
            },
            |log| tail(log.path()),
        )
        .await;
        Self { process, log }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    pub fn port(&self) -> u16 {
        self.process.port()
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Everything the server has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        tail(self.log.path())
    }

    /// Sends SIGTERM (a graceful shutdown request) to the process.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.process.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(limit).await
    }
}

//! PgBouncer (Debian's package, installed by `scripts/install-client-tools.sh`) between the
//! server and the test database, in transaction pooling, as users put it in front of
//! PostgreSQL. It runs unprivileged on a free loopback port, every file in its scratch
//! directory; dropping it stops it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{Scratch, free_port, tail};

/// The pgbouncer binary: on PATH, or in the usual sbin directories (None: not installed).
pub fn pgbouncer_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|d| d.join("pgbouncer"))
        .find(|p| p.is_file())
}

pub struct PgBouncer {
    // Fields drop in order: PgBouncer is stopped before its directory is removed.
    child: Child,
    port: u16,
    dir: Scratch,
    app_url: url::Url,
}

impl PgBouncer {
    /// Starts PgBouncer in front of the test database with `server_pool` server connections,
    /// ready once the app role connects through it.
    pub async fn start(test: &str, server_pool: u32) -> Self {
        let binary =
            super::require::dependency(test, &super::require::PGBOUNCER, pgbouncer_binary());
        let app_url = url::Url::parse(&super::env().app_url).expect("PG_MCP_TEST_APP_URL is a URL");
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let dir = Scratch::dir("pgbouncer");
            std::fs::create_dir_all(dir.path()).unwrap();
            let user = app_url.username().to_string();
            let password = percent_encoding::percent_decode_str(app_url.password().unwrap_or(""))
                .decode_utf8_lossy()
                .to_string();
            std::fs::write(
                dir.path().join("users.txt"),
                format!("\"{user}\" \"{password}\"\n"),
            )
            .unwrap();
            // DISCARD ALL after every transaction (server_reset_query_always): PgBouncer 1.18
            // has no protocol-level prepared statements, so pg-mcp prepares each statement in
            // its transaction (PG_MCP_STATEMENT_CACHE_CAPACITY=0) and this drops it. It also
            // drops any session state a caller could leave behind.
            let ini = format!(
                "[databases]\n* = host={host} port={pg_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = scram-sha-256\nauth_file = {auth}\npool_mode = transaction\n\
                 default_pool_size = {server_pool}\nmax_client_conn = 500\n\
                 server_reset_query = DISCARD ALL\nserver_reset_query_always = 1\n\
                 ignore_startup_parameters = extra_float_digits,options\n",
                host = app_url.host_str().unwrap(),
                pg_port = app_url.port().unwrap_or(5432),
                auth = dir.path().join("users.txt").display(),
            );
            let ini_path = dir.path().join("pgbouncer.ini");
            std::fs::write(&ini_path, ini).unwrap();
            let log = std::fs::File::create(dir.path().join("pgbouncer.log")).unwrap();
            // PgBouncer refuses to run as root: then it runs as the database's OS user.
            let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
            let mut cmd = if root {
                let os_user =
                    std::env::var("PG_MCP_DEV_DB_USER").unwrap_or_else(|_| "pgmcp".into());
                let mut c = Command::new("runuser");
                c.args(["-u", &os_user, "--"]).arg(&binary);
                c
            } else {
                Command::new(&binary)
            };
            let child = cmd
                .arg(&ini_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("start pgbouncer");
            let mut bouncer = Self {
                child,
                port,
                dir,
                app_url: app_url.clone(),
            };
            match bouncer.wait_ready().await {
                Ok(()) => return bouncer,
                Err(e) if e.contains("Address already in use") => last = e,
                Err(e) => panic!("pgbouncer did not become ready: {e}"),
            }
        }
        panic!("pgbouncer could not bind a port: {last}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let url = self.app_url();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("pgbouncer exited with {status}:\n{}", self.logs()));
            }
            let connected = async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                sqlx::raw_sql("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            };
            match connected.await {
                Ok(()) => return Ok(()),
                Err(_) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(format!("{e}:\n{}", self.logs())),
            }
        }
    }

    /// The app role's URL through PgBouncer.
    pub fn app_url(&self) -> String {
        let mut url = self.app_url.clone();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// PgBouncer's log so far.
    pub fn logs(&self) -> String {
        tail(&self.dir.path().join("pgbouncer.log"))
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        // runuser forks PgBouncer as a child of its own, which killing runuser would leave
        // running: stop it by its command line (its config path is unique to this instance).
        let _ = Command::new("pkill")
            .args([
                "-f",
                &self.dir.path().join("pgbouncer.ini").display().to_string(),
            ])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A streaming standby of the test database, for the read-replica tests: `pg_basebackup` of
//! the running cluster with the same local binaries (scripts/dev-db.sh's pgserver wheel),
//! started on a free loopback port as the database's OS user. Dropping it stops it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{Scratch, free_port, tail};

pub struct Standby {
    // Fields drop in order: the standby is stopped before its directory is removed.
    child: Child,
    port: u16,
    dir: Scratch,
    app_url: url::Url,
}

/// `cmd` as the database's OS user when this is root (PostgreSQL refuses to run as root).
fn as_db_user(program: &std::path::Path) -> Command {
    let root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    if root {
        let user = std::env::var("PG_MCP_TEST_OS_USER").unwrap_or_else(|_| "pgmcp".into());
        let mut c = Command::new("runuser");
        c.args(["-u", &user, "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Standby {
    /// A base backup of the test cluster, started as a hot standby replicating from it, ready
    /// once the app role reads from it in recovery.
    pub async fn start(test: &str) -> Self {
        let bin = PathBuf::from(super::require::dependency(
            test,
            &super::require::POSTGRES_BINARIES,
            std::env::var_os("PG_MCP_TEST_PG_BIN"),
        ));
        let lib = bin.parent().unwrap().join("lib");
        let admin = url::Url::parse(&super::env().admin_url).unwrap();
        let app_url = url::Url::parse(&super::env().app_url).unwrap();
        let dir = Scratch::dir("standby");
        std::fs::create_dir_all(dir.path()).unwrap();
        let data = dir.path().join("data");
        let user = std::env::var("PG_MCP_TEST_OS_USER").unwrap_or_else(|_| "pgmcp".into());
        if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
            let status = Command::new("chown")
                .args(["-R", &user])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown the standby's directory to {user}");
        }
        let password = percent_encoding::percent_decode_str(admin.password().unwrap_or(""))
            .decode_utf8_lossy()
            .to_string();
        let backup = as_db_user(&bin.join("pg_basebackup"))
            .env("LD_LIBRARY_PATH", &lib)
            .env("PGPASSWORD", &password)
            .arg("-D")
            .arg(&data)
            .args(["-R", "-X", "stream", "-c", "fast", "-h"])
            .arg(admin.host_str().unwrap())
            .arg("-p")
            .arg(admin.port().unwrap_or(5432).to_string())
            .arg("-U")
            .arg(admin.username())
            .output()
            .expect("run pg_basebackup");
        assert!(
            backup.status.success(),
            "pg_basebackup failed: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
        // A hot standby needs these at least as high as on the primary, which may have them
        // from its command line rather than the configuration file the backup copied.
        let primary_settings: Vec<(String, String)> = {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(admin.as_str()).await.unwrap();
            sqlx::query_as(
                "SELECT name, setting FROM pg_settings WHERE name IN ('max_connections', \
                 'max_worker_processes', 'max_wal_senders', 'max_prepared_transactions', \
                 'max_locks_per_transaction')",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap()
        };
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("standby.log")).unwrap();
        let child = as_db_user(&bin.join("postgres"))
            .env("LD_LIBRARY_PATH", &lib)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "hot_standby=on", "-c", "logging_collector=off"])
            .args(
                primary_settings
                    .iter()
                    .flat_map(|(name, value)| ["-c".to_string(), format!("{name}={value}")]),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the standby");
        let mut standby = Self {
            child,
            port,
            dir,
            app_url,
        };
        standby.wait_ready().await;
        standby
    }

    async fn wait_ready(&mut self) {
        let url = self.app_url();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the standby exited with {status}:\n{}", self.logs());
            }
            let in_recovery = async {
                use sqlx::{Connection as _, Row as _};
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                let row = sqlx::raw_sql("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut conn)
                    .await?;
                row.try_get::<bool, _>(0)
            };
            match in_recovery.await {
                Ok(true) => return,
                Ok(false) => panic!("the standby is not in recovery:\n{}", self.logs()),
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!(
                        "the standby did not accept connections: {e}\n{}",
                        self.logs()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// The app role's URL on the standby.
    pub fn app_url(&self) -> String {
        let mut url = self.app_url.clone();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the standby, its postmaster and every backend (SIGKILL, as a lost machine would).
    pub fn kill(&mut self) {
        let pid_file = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .expect("the standby's postmaster.pid");
        let pid = pid_file.lines().next().unwrap().trim().to_string();
        // The backends first (they are the postmaster's children only while it lives).
        let _ = Command::new("pkill").args(["-KILL", "-P", &pid]).status();
        let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        assert!(status.success(), "kill the standby ({pid})");
        // runuser, when it started the standby, waits for it; it goes too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn logs(&self) -> String {
        tail(&self.dir.path().join("standby.log"))
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if let Ok(pid_file) = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            && let Some(pid) = pid_file.lines().next()
        {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! nginx in front of a server, configured from `infra/nginx/pg-mcp.conf`: started on a free
//! loopback port, proxying to the server's port, stopped when dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::process::{LoopbackChild, Readiness, Scratch, tail};

/// The nginx binary: on PATH, or in the usual sbin directories (None: not installed).
pub fn nginx_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

/// nginx running unprivileged in the foreground, every path inside its scratch directory.
pub struct Nginx {
    // Fields drop in order: nginx is stopped before its directory is removed.
    process: LoopbackChild,
    dir: Scratch,
}

impl Nginx {
    /// Starts `nginx_binary` on a free loopback port with the site from
    /// `infra/nginx/pg-mcp.conf` proxying to `127.0.0.1:<upstream_port>`; ready once GET /health
    /// through it answers 200 (nginx runs and reaches the server).
    pub async fn start(nginx_binary: &Path, upstream_port: u16) -> Self {
        Self::start_upstreams(nginx_binary, &[upstream_port]).await
    }

    /// As [`Nginx::start`], with an upstream of one server per port (replicas).
    pub async fn start_upstreams(nginx_binary: &Path, upstream_ports: &[u16]) -> Self {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra/nginx/pg-mcp.conf");
        let original = std::fs::read_to_string(&conf).expect("read infra/nginx/pg-mcp.conf");
        for directive in ["listen 8080;", "server 127.0.0.1:8000;"] {
            let lines: Vec<&str> = original
                .lines()
                .map(str::trim)
                .filter(|l| !l.starts_with('#') && l.contains(directive))
                .collect();
            assert!(
                lines.len() == 1 && lines[0].contains("TEMPLATE"),
                "infra/nginx/pg-mcp.conf should have `{directive}` on exactly one line marked TEMPLATE: {lines:?}"
            );
        }
        let ready = Readiness {
            what: "nginx",
            // /health is proxied: 200 means nginx runs and reaches pg-mcp.
            path: "/health",
            limit: Duration::from_secs(30),
            port_taken: "Address already in use",
        };
        let (process, dir) = LoopbackChild::start(
            &ready,
            |port| {
                let dir = Scratch::dir("nginx");
                let child = spawn(nginx_binary, &conf, dir.path(), port, upstream_ports);
                (child, dir)
            },
            |dir| logs(dir.path()),
        )
        .await;
        Self { process, dir }
    }

    /// `http://127.0.0.1:<port><path>`, through nginx.
    pub fn url(&self, path: &str) -> String {
        self.process.url(path)
    }

    /// nginx's access log so far.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    /// The ends of nginx's stderr and error log, for failure messages.
    pub fn logs(&self) -> String {
        logs(self.dir.path())
    }
}

fn logs(dir: &Path) -> String {
    format!(
        "--- stderr\n{}\n--- error.log\n{}",
        tail(&dir.join("stderr.log")),
        tail(&dir.join("error.log"))
    )
}

/// Templates the site into `dir`, wraps it in a minimal main config and starts nginx.
fn spawn(
    nginx_binary: &Path,
    conf: &Path,
    dir: &Path,
    port: u16,
    upstream_ports: &[u16],
) -> std::process::Child {
    let servers: String = upstream_ports
        .iter()
        .map(|p| format!("server 127.0.0.1:{p}; "))
        .collect();
    // Template it the way the file's header documents: with sed.
    let templated = Command::new("sed")
        .arg("-e")
        .arg(format!("s/listen 8080;/listen 127.0.0.1:{port};/"))
        .arg("-e")
        .arg(format!("s/server 127.0.0.1:8000;/{servers}/"))
        .arg(conf)
        .output()
        .expect("run sed");
    assert!(templated.status.success(), "sed failed");
    let site = String::from_utf8(templated.stdout).unwrap();
    assert!(site.contains(&format!("listen 127.0.0.1:{port};")));
    assert!(site.contains(&servers));
    std::fs::write(dir.join("pg-mcp.conf"), &site).unwrap();

    let d = dir.display();
    // A minimal main config around it that runs unprivileged-safe: foreground, one
    // process, every path inside the scratch directory.
    let main_conf = format!(
        "daemon off;\n\
         master_process off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log info;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         \x20   access_log {d}/access.log;\n\
         \x20   client_body_temp_path {d}/client_body;\n\
         \x20   proxy_temp_path {d}/proxy;\n\
         \x20   fastcgi_temp_path {d}/fastcgi;\n\
         \x20   uwsgi_temp_path {d}/uwsgi;\n\
         \x20   scgi_temp_path {d}/scgi;\n\
         \x20   include {d}/pg-mcp.conf;\n\
         }}\n"
    );
    let main_path = dir.join("nginx.conf");
    std::fs::write(&main_path, main_conf).unwrap();
    let out = File::create(dir.join("stderr.log")).unwrap();
    Command::new(nginx_binary)
        .arg("-p")
        .arg(dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&main_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("spawn nginx")
}

//! End-to-end tests with real third-party MCP clients against the real `pg-mcp` binary:
//!
//! * the official MCP Python SDK (PyPI `mcp`) over streamable HTTP and over stdio,
//! * the MCP Inspector CLI 2.x (npm `@modelcontextprotocol/inspector`, on Node 22),
//! * both of them through nginx configured from `infra/nginx/pg-mcp.conf`.
//!
//! The clients are installed by `scripts/install-client-tools.sh`, which `scripts/test.sh` runs
//! and points `PG_MCP_TEST_CLIENTS_DIR` at. Without that variable (a plain `cargo test`) each
//! test fails, saying so; `PG_MCP_TEST_ALLOW_MISSING=clients,nginx` skips them instead outside CI
//! (see common::require).
//!
//! The Python client is given the expected values and exits non-zero when the server's answer
//! differs; `python_sdk_check_fails_on_a_wrong_expectation` shows that it does.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::process::{ServerProcess, free_port, tail};
use crate::common::require;
use crate::common::{HEAD_OFFICE, SEATTLE};
use serde_json::{Value, json};

/// The longest a client process may run before the test calls it a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Seeded stores (scripts/test.sh seeds the test database; every scale has 8 stores).
const STORES: i64 = 8;
const SEVEN_TOOLS: [&str; 7] = [
    "execute_query",
    "list_tables",
    "get_table_schema",
    "get_multiple_table_schemas",
    "explain_query",
    "health_check",
    "get_metrics",
];

// ---------------------------------------------------------------------------------------------
// Client tools

struct Tools {
    python: PathBuf,
    inspector: PathBuf,
    client_script: PathBuf,
}

/// The installed client tools. Without them (PG_MCP_TEST_CLIENTS_DIR unset) the test fails,
/// or returns None when opted out (see common::require).
fn tools(test: &str) -> Option<Tools> {
    let dir = require::dependency(
        &format!("real_clients::{test}"),
        &require::CLIENTS,
        std::env::var_os("PG_MCP_TEST_CLIENTS_DIR"),
    )?;
    let dir = PathBuf::from(dir);
    let tools = Tools {
        python: dir.join("bin/python"),
        inspector: dir.join("bin/mcp-inspector"),
        client_script: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients/python_sdk_client.py"),
    };
    for path in [&tools.python, &tools.inspector, &tools.client_script] {
        assert!(
            path.exists(),
            "{} is missing although PG_MCP_TEST_CLIENTS_DIR is set: run scripts/install-client-tools.sh",
            path.display()
        );
    }
    Some(tools)
}

/// A scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "pg-mcp-real-clients-{}-{label}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------------------------
// The pg-mcp binary as `pg-mcp serve` on a free loopback port

/// `pg-mcp serve` on a free loopback port (see common::process).
async fn serve() -> ServerProcess {
    ServerProcess::start(&[("PG_MCP_SHUTDOWN_GRACE_SECS", "2".to_string())]).await
}

// ---------------------------------------------------------------------------------------------
// nginx in front of it, from infra/nginx/pg-mcp.conf

struct Nginx {
    child: Child,
    port: u16,
    dir: Scratch,
}

fn nginx_binary() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter()
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
}

impl Nginx {
    async fn start(nginx_binary: &Path, upstream_port: u16) -> Self {
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
        let mut last_error = String::new();
        for _attempt in 0..3 {
            let dir = Scratch::new("nginx");
            let port = free_port();
            // Template it the way the file's header documents: with sed.
            let templated = Command::new("sed")
                .arg("-e")
                .arg(format!("s/listen 8080;/listen 127.0.0.1:{port};/"))
                .arg("-e")
                .arg(format!(
                    "s/server 127.0.0.1:8000;/server 127.0.0.1:{upstream_port};/"
                ))
                .arg(&conf)
                .output()
                .expect("run sed");
            assert!(templated.status.success(), "sed failed");
            let site = String::from_utf8(templated.stdout).unwrap();
            assert!(site.contains(&format!("listen 127.0.0.1:{port};")));
            assert!(site.contains(&format!("server 127.0.0.1:{upstream_port};")));
            std::fs::write(dir.path().join("pg-mcp.conf"), &site).unwrap();

            let d = dir.path().display();
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
            let main_path = dir.path().join("nginx.conf");
            std::fs::write(&main_path, main_conf).unwrap();
            let out = File::create(dir.path().join("stderr.log")).unwrap();
            let child = Command::new(nginx_binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .arg("-c")
                .arg(&main_path)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("spawn nginx");
            let mut nginx = Self { child, port, dir };
            match nginx.wait_ready().await {
                Ok(()) => return nginx,
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("nginx did not start: {e}"),
            }
        }
        panic!("nginx could not bind a port: {last_error}");
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("nginx exited with {status}:\n{}", self.logs()));
            }
            // /health is proxied: 200 means nginx runs and reaches pg-mcp.
            if let Ok(resp) = http.get(self.url("/health")).send().await
                && resp.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nginx not ready after 30 s:\n{}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    fn logs(&self) -> String {
        format!(
            "--- stderr\n{}\n--- error.log\n{}",
            tail(&self.dir.path().join("stderr.log")),
            tail(&self.dir.path().join("error.log"))
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------------------
// Running the clients

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// The JSON document the client printed last on stdout (Null when there is none).
    fn json(&self) -> Value {
        self.stdout
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .and_then(|l| serde_json::from_str(l).ok())
            .unwrap_or(Value::Null)
    }

    fn describe(&self) -> String {
        format!(
            "exit status {}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

async fn run(mut cmd: tokio::process::Command, what: &str) -> Run {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let started = Instant::now();
    let out = tokio::time::timeout(CLIENT_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {CLIENT_TIMEOUT:?} (a hang)"))
        .unwrap_or_else(|e| panic!("{what} could not be started: {e}"));
    eprintln!("{what}: {} in {:.2?}", out.status, started.elapsed());
    Run {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What the Python client is told to expect.
struct Expect<'a> {
    store_name: &'a str,
    distinct_stores: i64,
    order_count: Option<i64>,
}

fn python_command(tools: &Tools, expect: &Expect<'_>, tenant: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(&tools.python);
    cmd.arg(&tools.client_script)
        .arg("--tenant")
        .arg(tenant)
        .arg("--expect-store-name")
        .arg(expect.store_name)
        .arg("--expect-distinct-stores")
        .arg(expect.distinct_stores.to_string())
        .arg("--timeout")
        .arg("90");
    if let Some(n) = expect.order_count {
        cmd.arg("--expect-order-count").arg(n.to_string());
    }
    cmd
}

async fn python_http(tools: &Tools, url: &str, tenant: &str, expect: &Expect<'_>) -> Run {
    let mut cmd = python_command(tools, expect, tenant);
    cmd.arg("--url").arg(url);
    run(
        cmd,
        &format!("python SDK client (HTTP {url}, tenant {tenant})"),
    )
    .await
}

async fn python_stdio(tools: &Tools, tenant: &str, expect: &Expect<'_>) -> Run {
    let env = crate::common::env();
    let mut cmd = python_command(tools, expect, tenant);
    cmd.arg("--stdio")
        .arg("--server-command")
        .arg(env!("CARGO_BIN_EXE_pg-mcp"))
        .env("PG_MCP_DATABASE_URL", &env.app_url)
        .env("PG_MCP_TENANT_SIGNING_KEY", &env.signing_key);
    run(cmd, &format!("python SDK client (stdio, tenant {tenant})")).await
}

/// Asserts that the Python client ran every check and all of them passed.
fn assert_python_ok(run: &Run, context: &str, server_log: impl FnOnce() -> String) {
    let summary = run.json();
    if !(run.status.success() && summary["ok"] == json!(true)) {
        panic!(
            "python SDK client failed ({context}):\n{}\n--- server log\n{}",
            run.describe(),
            server_log()
        );
    }
    let checks = summary["checks"].as_array().cloned().unwrap_or_default();
    assert!(
        checks.len() >= 4 && checks.iter().all(|c| c["ok"] == json!(true)),
        "every check ran and passed ({context}): {summary}"
    );
}

async fn inspector(
    tools: &Tools,
    home: &Path,
    url: &str,
    tenant: Option<&str>,
    method_args: &[&str],
) -> Run {
    let mut cmd = tokio::process::Command::new(&tools.inspector);
    cmd.args([
        "--cli",
        url,
        "--transport",
        "http",
        "--format",
        "json",
        "--stored-auth-only",
    ]);
    if let Some(t) = tenant {
        cmd.arg("--header").arg(format!("x-rls-user-id: {t}"));
    }
    cmd.args(method_args)
        // The Inspector keeps a catalog and client config under ~/.mcp-inspector.
        .env("HOME", home);
    let what = format!("MCP Inspector ({} {url})", method_args.join(" "));
    run(cmd, &what).await
}

/// The result object of an Inspector `--format json` run that succeeded.
fn inspector_result(run: &Run, context: &str) -> Value {
    let out = run.json();
    assert!(
        run.status.success() && out.get("result").is_some(),
        "MCP Inspector failed ({context}):\n{}",
        run.describe()
    );
    out["result"].clone()
}

/// Orders the tenant may see, from the admin (RLS-bypassing) pool: the ground truth.
async fn admin_order_count(tenant: &str) -> i64 {
    let pool = crate::common::admin_pool().await;
    let n: i64 = if tenant == HEAD_OFFICE {
        sqlx::query_scalar("SELECT count(*) FROM retail.orders")
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        sqlx::query_scalar(
            "SELECT count(*) FROM retail.orders o JOIN retail.stores s USING (store_id) \
             WHERE s.rls_user_id::text = $1",
        )
        .bind(tenant)
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    pool.close().await;
    n
}

const TENANT_STORES_SQL: &str = "SELECT DISTINCT s.store_name FROM retail.orders o JOIN retail.stores s USING (store_id) ORDER BY 1";

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn python_sdk_over_http_sees_each_tenants_rows() {
    let Some(tools) = tools("python_sdk_over_http_sees_each_tenants_rows") else {
        return;
    };
    let seattle_orders = admin_order_count(SEATTLE).await;
    let all_orders = admin_order_count(HEAD_OFFICE).await;
    assert!(0 < seattle_orders && seattle_orders < all_orders);
    let server = serve().await;
    let url = server.url("/mcp");

    let seattle = python_http(
        &tools,
        &url,
        SEATTLE,
        &Expect {
            store_name: "Zava Seattle",
            distinct_stores: 1,
            order_count: Some(seattle_orders),
        },
    )
    .await;
    assert_python_ok(&seattle, "Seattle over HTTP", || server.log_tail());
    let summary = seattle.json();
    assert_eq!(summary["server"]["name"], "pg-mcp");
    assert_eq!(summary["transport"], "streamable-http");

    // Head office is no store (no store-name row) and sees every store's orders.
    let head_office = python_http(
        &tools,
        &url,
        HEAD_OFFICE,
        &Expect {
            store_name: "",
            distinct_stores: STORES,
            order_count: Some(all_orders),
        },
    )
    .await;
    assert_python_ok(&head_office, "head office over HTTP", || server.log_tail());
}

#[tokio::test]
async fn python_sdk_over_stdio() {
    let Some(tools) = tools("python_sdk_over_stdio") else {
        return;
    };
    let seattle_orders = admin_order_count(SEATTLE).await;
    let run = python_stdio(
        &tools,
        SEATTLE,
        &Expect {
            store_name: "Zava Seattle",
            distinct_stores: 1,
            order_count: Some(seattle_orders),
        },
    )
    .await;
    assert_python_ok(&run, "Seattle over stdio", String::new);
    assert_eq!(run.json()["transport"], "stdio");
    assert_eq!(run.json()["server"]["name"], "pg-mcp");
}

/// The checks are real: told to expect another store's name, or another tenant's view of the
/// orders, the client fails (exit status 1: a check failed, not a crash).
#[tokio::test]
async fn python_sdk_check_fails_on_a_wrong_expectation() {
    let Some(tools) = tools("python_sdk_check_fails_on_a_wrong_expectation") else {
        return;
    };
    let server = serve().await;
    let url = server.url("/mcp");

    let wrong_name = python_http(
        &tools,
        &url,
        SEATTLE,
        &Expect {
            store_name: "Zava Tacoma",
            distinct_stores: 1,
            order_count: None,
        },
    )
    .await;
    assert_eq!(
        wrong_name.status.code(),
        Some(1),
        "a wrong expected store name must fail the client:\n{}",
        wrong_name.describe()
    );
    let summary = wrong_name.json();
    assert_eq!(summary["ok"], json!(false));
    let failed: Vec<&Value> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "only the store name check fails: {summary}"
    );
    assert_eq!(failed[0]["check"], "store name of the tenant");
    assert_eq!(failed[0]["actual"], json!([["Zava Seattle"]]));

    // Expecting the head office's view (all stores) for Seattle fails too: the RLS check bites.
    let wrong_scope = python_http(
        &tools,
        &url,
        SEATTLE,
        &Expect {
            store_name: "Zava Seattle",
            distinct_stores: STORES,
            order_count: None,
        },
    )
    .await;
    assert_eq!(
        wrong_scope.status.code(),
        Some(1),
        "{}",
        wrong_scope.describe()
    );
    let summary = wrong_scope.json();
    let failed: Vec<&Value> = summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .collect();
    assert_eq!(failed.len(), 1, "{summary}");
    assert_eq!(failed[0]["check"], "distinct stores in retail.orders");
    assert_eq!(failed[0]["actual"], json!(1));
}

#[tokio::test]
async fn inspector_cli_over_http() {
    let Some(tools) = tools("inspector_cli_over_http") else {
        return;
    };
    let server = serve().await;
    let url = server.url("/mcp");
    let home = Scratch::new("inspector-home");

    let list = inspector(
        &tools,
        home.path(),
        &url,
        Some(SEATTLE),
        &["--method", "tools/list"],
    )
    .await;
    let result = inspector_result(&list, "tools/list");
    let names: Vec<&str> = result["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for tool in SEVEN_TOOLS {
        assert!(names.contains(&tool), "tools/list lacks {tool}: {names:?}");
    }

    // With the Seattle header, the orders show one store: Seattle's.
    let call = inspector(
        &tools,
        home.path(),
        &url,
        Some(SEATTLE),
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "execute_query",
            "--tool-arg",
            &format!("sql={TENANT_STORES_SQL}"),
        ],
    )
    .await;
    let result = inspector_result(&call, "tools/call as Seattle");
    assert_eq!(result["isError"], json!(false), "{result}");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([["Zava Seattle"]]),
        "{result}\n--- server log\n{}",
        server.log_tail()
    );

    // Parameters as JSON, the head office header: every store's orders.
    let args = json!({
        "sql": "SELECT count(DISTINCT store_id) FROM retail.orders WHERE order_id > $1",
        "params": [0],
    })
    .to_string();
    let call = inspector(
        &tools,
        home.path(),
        &url,
        Some(HEAD_OFFICE),
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "execute_query",
            "--tool-args-json",
            &args,
        ],
    )
    .await;
    let result = inspector_result(&call, "tools/call as head office");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([[STORES]]),
        "{result}"
    );

    // No header: the tool fails closed, and the Inspector reports the tool error (exit 5).
    let call = inspector(
        &tools,
        home.path(),
        &url,
        None,
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "execute_query",
            "--tool-arg",
            "sql=SELECT 1",
        ],
    )
    .await;
    assert!(!call.status.success(), "{}", call.describe());
    let out = call.json();
    let out = if out.is_null() {
        // The result goes to stdout, the error envelope to stderr; find the result.
        call.stdout
            .lines()
            .find_map(|l| serde_json::from_str::<Value>(l).ok())
            .unwrap_or(Value::Null)
    } else {
        out
    };
    assert_eq!(out["result"]["isError"], json!(true), "{}", call.describe());
    assert_eq!(
        out["result"]["structuredContent"]["error_code"],
        "TENANT_REQUIRED",
        "{}",
        call.describe()
    );
}

#[tokio::test]
async fn python_sdk_and_inspector_through_nginx() {
    let test = "python_sdk_and_inspector_through_nginx";
    let Some(tools) = tools(test) else { return };
    let Some(nginx_binary) = require::dependency(
        &format!("real_clients::{test}"),
        &require::NGINX,
        nginx_binary(),
    ) else {
        return;
    };
    let seattle_orders = admin_order_count(SEATTLE).await;
    let server = serve().await;
    let nginx = Nginx::start(&nginx_binary, server.port()).await;
    let url = nginx.url("/mcp");

    let seattle = python_http(
        &tools,
        &url,
        SEATTLE,
        &Expect {
            store_name: "Zava Seattle",
            distinct_stores: 1,
            order_count: Some(seattle_orders),
        },
    )
    .await;
    assert_python_ok(&seattle, "Seattle through nginx", || {
        format!("{}\n--- nginx\n{}", server.log_tail(), nginx.logs())
    });

    let home = Scratch::new("inspector-home");
    let list = inspector(
        &tools,
        home.path(),
        &url,
        Some(SEATTLE),
        &["--method", "tools/list"],
    )
    .await;
    let result = inspector_result(&list, "tools/list through nginx");
    assert!(
        result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "execute_query"),
        "{result}"
    );
    let call = inspector(
        &tools,
        home.path(),
        &url,
        Some(SEATTLE),
        &[
            "--method",
            "tools/call",
            "--tool-name",
            "execute_query",
            "--tool-arg",
            &format!("sql={TENANT_STORES_SQL}"),
        ],
    )
    .await;
    let result = inspector_result(&call, "tools/call through nginx");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([["Zava Seattle"]]),
        "{result}\n--- nginx\n{}",
        nginx.logs()
    );

    // The traffic really went through nginx: both clients' MCP requests are in its access log.
    let access = nginx.access_log();
    let mcp_posts: Vec<&str> = access
        .lines()
        .filter(|l| l.contains("\"POST /mcp HTTP/1.1\" 200"))
        .collect();
    assert!(
        mcp_posts.len() >= 6,
        "expected the clients' POST /mcp requests in nginx's access log:\n{access}"
    );
    assert!(
        mcp_posts.iter().any(|l| l.contains("python"))
            && mcp_posts.iter().any(|l| l.contains("node")),
        "both clients (python-httpx and node) went through nginx:\n{access}"
    );
}

//! End-to-end tests with real third-party MCP clients against the real `pg-mcp` binary:
//!
//! * the official MCP Python SDK (PyPI `mcp`) over streamable HTTP and over stdio,
//! * the MCP Inspector CLI 2.x (npm `@modelcontextprotocol/inspector`, on Node 22),
//! * both of them through nginx configured from `infra/nginx/pg-mcp.conf`.
//!
//! The clients are installed by `scripts/install-client-tools.sh`, which `scripts/test.sh` runs
//! and points `PG_MCP_TEST_CLIENTS_DIR` at. Without that variable (a plain `cargo test`) each
//! test fails, saying so (see common::require).
//!
//! The Python client is given the expected values and exits non-zero when the server's answer
//! differs; `python_sdk_check_fails_on_a_wrong_expectation` shows that it does.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::common::nginx::{Nginx, nginx_binary};
use crate::common::process::{Scratch, ServerProcess};
use crate::common::{HEAD_OFFICE, SEATTLE, assert_lists_every_tool, require, tool_names};
use serde_json::{Value, json};

/// The longest a client process may run before the test calls it a hang.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Seeded stores (scripts/test.sh seeds the test database; every scale has 8 stores).
const STORES: i64 = 8;

// ---------------------------------------------------------------------------------------------
// Client tools

struct Tools {
    python: PathBuf,
    inspector: PathBuf,
    /// The Inspector's connection CLI (same package), for what `--cli` lacks: completions.
    mcpdo: PathBuf,
    client_script: PathBuf,
}

/// The installed client tools. Without them (PG_MCP_TEST_CLIENTS_DIR unset) the test fails.
fn tools(test: &str) -> Tools {
    let dir = require::dependency(
        &format!("real_clients::{test}"),
        &require::CLIENTS,
        std::env::var_os("PG_MCP_TEST_CLIENTS_DIR"),
    );
    let dir = PathBuf::from(dir);
    let tools = Tools {
        python: dir.join("bin/python"),
        inspector: dir.join("bin/mcp-inspector"),
        mcpdo: dir.join("bin/mcpdo"),
        client_script: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/clients/python_sdk_client.py"),
    };
    for path in [
        &tools.python,
        &tools.inspector,
        &tools.mcpdo,
        &tools.client_script,
    ] {
        assert!(
            path.exists(),
            "{} is missing although PG_MCP_TEST_CLIENTS_DIR is set: run scripts/install-client-tools.sh",
            path.display()
        );
    }
    tools
}

/// `pg-mcp serve` on a free loopback port (see common::process).
async fn serve() -> ServerProcess {
    ServerProcess::start(&[("PG_MCP_SHUTDOWN_GRACE_SECS", "2".to_string())]).await
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
    /// Also read the resources and complete the table template's arguments.
    resources: bool,
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
    if expect.resources {
        cmd.arg("--check-resources");
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

/// The MCP Inspector CLI against one MCP endpoint, with a HOME of its own (it keeps a catalog
/// and client config under ~/.mcp-inspector).
struct Inspector<'a> {
    tools: &'a Tools,
    url: String,
    home: Scratch,
}

impl<'a> Inspector<'a> {
    fn new(tools: &'a Tools, url: &str) -> Self {
        Self {
            tools,
            url: url.to_string(),
            home: Scratch::dir("inspector-home"),
        }
    }

    /// One `--cli` run with `--format json`, with the tenant header when given.
    async fn run(&self, tenant: Option<&str>, method_args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new(&self.tools.inspector);
        cmd.args([
            "--cli",
            &self.url,
            "--transport",
            "http",
            "--format",
            "json",
            "--stored-auth-only",
        ]);
        if let Some(t) = tenant {
            cmd.arg("--header").arg(format!("x-rls-user-id: {t}"));
        }
        cmd.args(method_args).env("HOME", self.home.path());
        let what = format!("MCP Inspector ({} {})", method_args.join(" "), self.url);
        run(cmd, &what).await
    }

    async fn list_tools(&self, tenant: Option<&str>) -> Run {
        self.run(tenant, &["--method", "tools/list"]).await
    }

    /// `tools/call execute_query` with the SQL as a string argument (`--tool-arg sql=...`).
    async fn query(&self, tenant: Option<&str>, sql: &str) -> Run {
        self.call_query(tenant, "--tool-arg", &format!("sql={sql}"))
            .await
    }

    /// `tools/call execute_query` with the arguments given by `flag` (`--tool-arg`,
    /// `--tool-args-json`) and `value`.
    async fn call_query(&self, tenant: Option<&str>, flag: &str, value: &str) -> Run {
        let args = [
            "--method",
            "tools/call",
            "--tool-name",
            "execute_query",
            flag,
            value,
        ];
        self.run(tenant, &args).await
    }
}

/// A connection of the Inspector's `mcpdo` (its daemon keeps the MCP session between
/// commands), with a HOME of its own; the daemon is stopped on drop.
struct Mcpdo<'a> {
    tools: &'a Tools,
    url: String,
    home: Scratch,
}

impl<'a> Mcpdo<'a> {
    async fn connect(tools: &'a Tools, url: &str, tenant: &str) -> Self {
        let mcpdo = Self {
            tools,
            url: url.to_string(),
            home: Scratch::dir("mcpdo-home"),
        };
        let header = format!("x-rls-user-id: {tenant}");
        let args = [
            "--stored-auth-only",
            "connect",
            url,
            "--transport",
            "http",
            "--header",
            &header,
        ];
        let connected = mcpdo.run(&args).await;
        assert!(connected.status.success(), "{}", connected.describe());
        mcpdo
    }

    fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.tools.mcpdo);
        cmd.arg("--format")
            .arg("json")
            .env("HOME", self.home.path())
            .env("MCP_INSPECTOR_SECRET_STORE", "memory");
        cmd
    }

    async fn run(&self, args: &[&str]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        run(cmd, &format!("mcpdo ({})", args.join(" "))).await
    }

    /// A command on this connection; its pretty-printed JSON result.
    async fn on_connection(&self, args: &[&str]) -> Value {
        let mut all = vec!["--connection", self.url.as_str()];
        all.extend_from_slice(args);
        let out = self.run(&all).await;
        assert!(out.status.success(), "{}", out.describe());
        serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("mcpdo printed no JSON ({e}): {}", out.describe()))
    }
}

impl Drop for Mcpdo<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new(&self.tools.mcpdo)
            .args(["daemon", "stop"])
            .env("HOME", self.home.path())
            .env("MCP_INSPECTOR_SECRET_STORE", "memory")
            .output();
    }
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

/// What Seattle sees: its own store and `orders` orders.
fn seattle_sees(orders: i64) -> Expect<'static> {
    Expect {
        store_name: "Zava Seattle",
        distinct_stores: 1,
        order_count: Some(orders),
        resources: true,
    }
}

/// A run of the Python client that failed a check (exit status 1, not a crash): its failed
/// checks.
fn failed_checks(run: &Run, context: &str) -> Vec<Value> {
    assert_eq!(
        run.status.code(),
        Some(1),
        "{context} must fail the client:\n{}",
        run.describe()
    );
    let summary = run.json();
    assert_eq!(summary["ok"], json!(false), "{summary}");
    summary["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == json!(false))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn python_sdk_over_http_sees_each_tenants_rows() {
    let tools = tools("python_sdk_over_http_sees_each_tenants_rows");
    let seattle_orders = admin_order_count(SEATTLE).await;
    let all_orders = admin_order_count(HEAD_OFFICE).await;
    assert!(0 < seattle_orders && seattle_orders < all_orders);
    let server = serve().await;
    let url = server.url("/mcp");

    let seattle = python_http(&tools, &url, SEATTLE, &seattle_sees(seattle_orders)).await;
    assert_python_ok(&seattle, "Seattle over HTTP", || server.log_tail());
    let summary = seattle.json();
    assert_eq!(summary["server"]["name"], "pg-mcp");
    assert_eq!(summary["transport"], "streamable-http");
    assert_eq!(
        summary["resource_templates"],
        json!(["schema://{database}", "table://{database}/{schema}/{table}"]),
        "the resource checks ran"
    );

    // Head office is no store (no store-name row) and sees every store's orders.
    let head_office = python_http(
        &tools,
        &url,
        HEAD_OFFICE,
        &Expect {
            store_name: "",
            distinct_stores: STORES,
            order_count: Some(all_orders),
            resources: false,
        },
    )
    .await;
    assert_python_ok(&head_office, "head office over HTTP", || server.log_tail());
}

#[tokio::test]
async fn python_sdk_over_stdio() {
    let tools = tools("python_sdk_over_stdio");
    let seattle_orders = admin_order_count(SEATTLE).await;
    let run = python_stdio(&tools, SEATTLE, &seattle_sees(seattle_orders)).await;
    assert_python_ok(&run, "Seattle over stdio", String::new);
    assert_eq!(run.json()["transport"], "stdio");
    assert_eq!(run.json()["server"]["name"], "pg-mcp");
}

/// The checks are real: told to expect another store's name, or another tenant's view of the
/// orders, the client fails (exit status 1: a check failed, not a crash).
#[tokio::test]
async fn python_sdk_check_fails_on_a_wrong_expectation() {
    let tools = tools("python_sdk_check_fails_on_a_wrong_expectation");
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
            resources: false,
        },
    )
    .await;
    let failed = failed_checks(&wrong_name, "a wrong expected store name");
    assert_eq!(
        failed.len(),
        1,
        "only the store name check fails: {}",
        wrong_name.json()
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
            resources: false,
        },
    )
    .await;
    let failed = failed_checks(&wrong_scope, "the head office's view for Seattle");
    assert_eq!(failed.len(), 1, "{}", wrong_scope.json());
    assert_eq!(failed[0]["check"], "distinct stores in retail.orders");
    assert_eq!(failed[0]["actual"], json!(1));
}

#[tokio::test]
async fn inspector_cli_over_http() {
    let tools = tools("inspector_cli_over_http");
    let server = serve().await;
    let inspector = Inspector::new(&tools, &server.url("/mcp"));

    let list = inspector.list_tools(Some(SEATTLE)).await;
    let result = inspector_result(&list, "tools/list");
    assert_lists_every_tool(tool_names(&result["tools"]));

    // With the Seattle header, the orders show one store: Seattle's.
    let call = inspector.query(Some(SEATTLE), TENANT_STORES_SQL).await;
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
    let call = inspector
        .call_query(Some(HEAD_OFFICE), "--tool-args-json", &args)
        .await;
    let result = inspector_result(&call, "tools/call as head office");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([[STORES]]),
        "{result}"
    );

    // No header: the tool fails closed, and the Inspector reports the tool error (exit 5).
    let call = inspector.query(None, "SELECT 1").await;
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
    let error: Value = serde_json::from_str(
        out["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default(),
    )
    .unwrap_or_default();
    assert_eq!(
        error["error_code"],
        "TENANT_REQUIRED",
        "{}",
        call.describe()
    );
}

#[tokio::test]
async fn inspector_cli_reads_resources_and_completes_their_arguments() {
    let tools = tools("inspector_cli_reads_resources_and_completes_their_arguments");
    let server = serve().await;
    let inspector = Inspector::new(&tools, &server.url("/mcp"));
    let seattle = Some(SEATTLE);

    let list = inspector
        .run(seattle, &["--method", "resources/list"])
        .await;
    let result = inspector_result(&list, "resources/list");
    let uris: Vec<&str> = result["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"))
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    assert_eq!(uris, ["databases://list", "schema://default"], "{result}");

    let templates = inspector
        .run(seattle, &["--method", "resources/templates/list"])
        .await;
    let result = inspector_result(&templates, "resources/templates/list");
    let templates: Vec<&str> = result["resourceTemplates"]
        .as_array()
        .unwrap_or_else(|| panic!("{result}"))
        .iter()
        .map(|t| t["uriTemplate"].as_str().unwrap())
        .collect();
    assert_eq!(
        templates,
        ["schema://{database}", "table://{database}/{schema}/{table}"]
    );

    let read = inspector
        .run(
            seattle,
            &[
                "--method",
                "resources/read",
                "--uri",
                "table://default/retail/orders",
            ],
        )
        .await;
    let result = inspector_result(&read, "resources/read");
    let text = result["contents"][0]["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("retail.orders") && text.contains("order_id"),
        "{result}"
    );

    // Completions: the Inspector's --cli has no method for them; its mcpdo has.
    let mcpdo = Mcpdo::connect(&tools, &server.url("/mcp"), SEATTLE).await;
    let template = "table://{database}/{schema}/{table}";
    let complete = |argument: &'static str, value: &'static str| {
        let mcpdo = &mcpdo;
        async move {
            mcpdo
                .on_connection(&[
                    "prompts/complete",
                    "--complete-ref-type",
                    "ref/resource",
                    "--complete-ref",
                    template,
                    "--complete-arg-name",
                    argument,
                    "--complete-arg-value",
                    value,
                ])
                .await
        }
    };
    let result = complete("table", "ord").await;
    assert_eq!(
        result["values"],
        json!(["order_items", "orders"]),
        "{result}"
    );
    assert_eq!(result["total"], json!(2), "{result}");
    let result = complete("database", "").await;
    assert_eq!(result["values"], json!(["default"]), "{result}");
    let read = mcpdo
        .on_connection(&["resources/read", "schema://default"])
        .await;
    let text = read["contents"][0]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("Database: default"), "{read}");
}

#[tokio::test]
async fn python_sdk_and_inspector_through_nginx() {
    let test = "python_sdk_and_inspector_through_nginx";
    let tools = tools(test);
    let nginx_binary = require::dependency(
        &format!("real_clients::{test}"),
        &require::NGINX,
        nginx_binary(),
    );
    let seattle_orders = admin_order_count(SEATTLE).await;
    let server = serve().await;
    let nginx = Nginx::start(&nginx_binary, server.port()).await;
    let url = nginx.url("/mcp");

    let seattle = python_http(&tools, &url, SEATTLE, &seattle_sees(seattle_orders)).await;
    assert_python_ok(&seattle, "Seattle through nginx", || {
        format!("{}\n--- nginx\n{}", server.log_tail(), nginx.logs())
    });

    let inspector = Inspector::new(&tools, &url);
    let list = inspector.list_tools(Some(SEATTLE)).await;
    let result = inspector_result(&list, "tools/list through nginx");
    assert!(
        tool_names(&result["tools"]).contains(&"execute_query"),
        "{result}"
    );
    let call = inspector.query(Some(SEATTLE), TENANT_STORES_SQL).await;
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

//! `pg-mcp stdio`: a whole MCP session over pipes with the real binary. Newline-delimited
//! JSON-RPC on stdin/stdout, logs on stderr only, the tenant from PG_MCP_RLS_USER_ID, and a
//! clean exit (status 0) when stdin closes.

use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use crate::common::process::{Scratch, pg_mcp_command};
use crate::common::{SEATTLE, assert_lists_every_tool, tool_names};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const READ_TIMEOUT: Duration = Duration::from_secs(60);

struct StdioServer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Every line read from stdout so far (each one checked to be a JSON-RPC message).
    lines: Vec<String>,
    /// Where the process's stderr goes; removed when the server is dropped.
    stderr_file: Scratch,
    next_id: u64,
}

impl StdioServer {
    fn spawn(tenant: Option<&str>) -> Self {
        let stderr_file = Scratch::file("stdio.stderr");
        let stderr = std::fs::File::create(stderr_file.path()).unwrap();
        let mut cmd = pg_mcp_command("stdio");
        // Plenty of logging, so a log line that strays onto stdout would be caught.
        cmd.env("PG_MCP_LOG_LEVEL", "debug");
        if let Some(t) = tenant {
            cmd.env("PG_MCP_RLS_USER_ID", t);
        }
        let mut child = Command::from(cmd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn pg-mcp stdio");
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            stdout,
            lines: vec![],
            stderr_file,
            next_id: 1,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.stderr_file.path()).unwrap_or_default()
    }

    async fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(&line).await.expect("write to pg-mcp stdin");
        stdin.flush().await.unwrap();
    }

    /// The next stdout line, which must be one JSON-RPC 2.0 message. None at end of stream.
    async fn read_message(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(READ_TIMEOUT, self.stdout.next_line())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no line on stdout within {READ_TIMEOUT:?}; stderr:\n{}",
                    self.stderr()
                )
            })
            .expect("read stdout")?;
        let message: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
            panic!(
                "stdout carried a line that is not JSON ({e}): {line:?}\n--- stderr\n{}",
                self.stderr()
            )
        });
        assert_eq!(
            message["jsonrpc"], "2.0",
            "stdout carried JSON that is not JSON-RPC 2.0: {line}"
        );
        self.lines.push(line);
        Some(message)
    }

    /// Sends a request and returns its response (notifications in between are allowed).
    async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let message = self.read_message().await.unwrap_or_else(|| {
                panic!(
                    "stdout closed before the reply to {method}; stderr:\n{}",
                    self.stderr()
                )
            });
            if message.get("id") == Some(&json!(id)) {
                return message;
            }
            assert!(
                message.get("method").is_some(),
                "a message that is neither our reply nor a notification/request: {message}"
            );
        }
    }

    async fn initialize(&mut self) -> Value {
        let init = self
            .request(
                "initialize",
                json!({
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "pg-mcp-stdio-test", "version": "1"}
                }),
            )
            .await;
        assert_eq!(init["result"]["serverInfo"]["name"], "pg-mcp", "{init}");
        assert!(
            init["result"]["capabilities"]["tools"].is_object(),
            "{init}"
        );
        self.send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        init
    }

    /// `tools/call execute_query` with these arguments (`sql`, `params`): the call's result.
    async fn execute_query(&mut self, arguments: Value) -> Value {
        self.call("execute_query", arguments).await
    }

    async fn call(&mut self, tool: &str, arguments: Value) -> Value {
        let reply = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        reply
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("tools/call {tool} gave a protocol error: {reply}"))
    }

    /// Closes stdin and waits for the process; every remaining stdout line must be JSON-RPC.
    async fn close(mut self) -> (ExitStatus, Vec<String>, String) {
        drop(self.stdin.take());
        while self.read_message().await.is_some() {}
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "pg-mcp stdio did not exit within 15 s of stdin closing; stderr:\n{}",
                    self.stderr()
                )
            })
            .unwrap();
        let stderr = self.stderr();
        (status, std::mem::take(&mut self.lines), stderr)
    }
}

#[tokio::test]
async fn stdio_session_sees_only_the_process_tenant() {
    // Ground truth from the admin pool (bypasses RLS).
    let admin = crate::common::admin_pool().await;
    let (seattle_store, seattle_orders): (i32, i64) = sqlx::query_as(
        "SELECT s.store_id, (SELECT count(*) FROM retail.orders o WHERE o.store_id = s.store_id) \
         FROM retail.stores s WHERE s.rls_user_id::text = $1",
    )
    .bind(SEATTLE)
    .fetch_one(&admin)
    .await
    .unwrap();
    let all_orders: i64 = sqlx::query_scalar("SELECT count(*) FROM retail.orders")
        .fetch_one(&admin)
        .await
        .unwrap();
    admin.close().await;
    assert!(0 < seattle_orders && seattle_orders < all_orders);

    let mut server = StdioServer::spawn(Some(SEATTLE));
    server.initialize().await;

    let tools = server.request("tools/list", json!({})).await;
    assert_lists_every_tool(tool_names(&tools["result"]["tools"]));

    let result = server
        .execute_query(json!({"sql": "SELECT store_id, count(*) FROM retail.orders GROUP BY store_id ORDER BY store_id"}))
        .await;
    assert_eq!(result["isError"], json!(false), "{result}");
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([[seattle_store, seattle_orders]]),
        "Seattle sees exactly its own orders"
    );

    let result = server
        .execute_query(json!({"sql": "SELECT store_name FROM retail.stores WHERE rls_user_id = $1", "params": [SEATTLE]}))
        .await;
    assert_eq!(
        result["structuredContent"]["rows"],
        json!([["Zava Seattle"]]),
        "{result}"
    );

    let (status, lines, stderr) = server.close().await;
    assert!(
        status.success(),
        "closing stdin ends pg-mcp stdio with status 0, got {status}; stderr:\n{stderr}"
    );
    // Every stdout line was checked to be a JSON-RPC message as it was read; the four
    // requests got their four replies.
    assert!(lines.len() >= 4, "{lines:?}");
    // The logs went somewhere, and that was stderr.
    assert!(
        !stderr.trim().is_empty(),
        "debug logging wrote nothing to stderr"
    );
}

#[tokio::test]
async fn stdio_without_a_tenant_fails_closed() {
    let mut server = StdioServer::spawn(None);
    server.initialize().await;
    // Listing tools needs no tenant.
    let tools = server.request("tools/list", json!({})).await;
    assert!(
        tools["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{tools}"
    );

    let result = server
        .execute_query(json!({"sql": "SELECT count(*) FROM retail.orders"}))
        .await;
    assert_eq!(result["isError"], json!(true), "{result}");
    let error: Value =
        serde_json::from_str(result["content"][0]["text"].as_str().unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(error["error_code"], "TENANT_REQUIRED", "{result}");
    assert!(
        result.get("structuredContent").is_none(),
        "an error carries no structured content (clients validate it against outputSchema): {result}"
    );

    let (status, _, stderr) = server.close().await;
    assert!(status.success(), "exit status {status}; stderr:\n{stderr}");
}

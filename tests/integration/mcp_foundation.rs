//! Acceptance of the foundation: MCP over streamable HTTP, RLS isolation per store, no leak
//! through the pool, writes refused, tool errors with stable codes, explain.

use crate::common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn initialize_list_and_call_over_streamable_http() {
    let server = TestServer::start().await;
    let mut client = server.client(Some(SEATTLE)).await;
    assert!(
        client.session.is_none(),
        "stateless by default: no Mcp-Session-Id"
    );
    let tools = client.list_tools().await;
    assert_lists_every_tool(tools.iter().map(|t| t["name"].as_str().unwrap()));
    for tool in &tools {
        let schema = &tool["inputSchema"];
        assert_eq!(
            schema["type"], "object",
            "{} has an object input schema",
            tool["name"]
        );
        assert!(!tool["description"].as_str().unwrap().is_empty());
    }
    let exec = tools.iter().find(|t| t["name"] == "execute_query").unwrap();
    assert!(exec["inputSchema"]["properties"]["sql"]["description"].is_string());
    assert_eq!(exec["inputSchema"]["required"], json!(["sql"]));

    let out = client
        .call("execute_query", json!({"sql": "SELECT store_name FROM retail.stores WHERE rls_user_id = $1", "params": [SEATTLE]}))
        .await
        .ok();
    assert_eq!(out["rows"], json!([["Zava Seattle"]]));
    assert_eq!(
        out["columns"],
        json!([{"name": "store_name", "type": "text"}])
    );
    assert_eq!(out["row_count"], 1);
    assert_eq!(out["truncated"], false);
    assert!(out["duration_ms"].as_f64().unwrap() >= 0.0);
}

/// Ground truth per store, read as superuser (RLS does not apply to it).
async fn orders_per_store() -> Vec<(i32, String, i64)> {
    let admin = admin_pool().await;
    sqlx::query_as(
        "SELECT s.store_id, s.rls_user_id::text, count(o.order_id) FROM retail.stores s \
         LEFT JOIN retail.orders o ON o.store_id = s.store_id GROUP BY 1, 2 ORDER BY 1",
    )
    .fetch_all(&admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn each_store_sees_only_its_orders_and_head_office_sees_all() {
    let truth = orders_per_store().await;
    assert!(truth.len() >= 8, "at least 8 stores seeded");
    let total: i64 = truth.iter().map(|t| t.2).sum();
    assert!(total > 0);
    let server = TestServer::start().await;

    let mut sum = 0;
    for (store_id, manager, expected) in &truth {
        let mut c = server.client(Some(manager)).await;
        let count = c.query("SELECT count(*) FROM retail.orders").await.scalar();
        assert_eq!(
            count,
            json!(expected),
            "store {store_id} sees exactly its orders"
        );
        // Nothing of any other store is visible, in any RLS table.
        let foreign = c
            .call(
                "execute_query",
                json!({"sql": "SELECT (SELECT count(*) FROM retail.orders WHERE store_id <> $1) \
                              + (SELECT count(*) FROM retail.order_items WHERE store_id <> $1) \
                              + (SELECT count(*) FROM retail.inventory WHERE store_id <> $1) \
                              + (SELECT count(*) FROM retail.customers WHERE primary_store_id <> $1)",
                       "params": [store_id]}),
            )
            .await
            .scalar();
        assert_eq!(
            foreign,
            json!(0),
            "store {store_id} sees no other store's rows"
        );
        sum += count.as_i64().unwrap();
    }
    let mut ho = server.client(Some(HEAD_OFFICE)).await;
    let all = ho
        .query("SELECT count(*) FROM retail.orders")
        .await
        .scalar();
    assert_eq!(all, json!(total));
    assert_eq!(sum, total, "the stores' counts add up to head office's");

    // Two stores see disjoint order sets.
    let (a, b) = (&truth[0].1, &truth[1].1);
    let ids = |v: Value| -> Vec<i64> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0].as_i64().unwrap())
            .collect()
    };
    let mut ca = server.client(Some(a)).await;
    let mut cb = server.client(Some(b)).await;
    let sql = json!({"sql": "SELECT order_id FROM retail.orders ORDER BY order_id LIMIT 500"});
    let ia = ids(ca.call("execute_query", sql.clone()).await.ok());
    let ib = ids(cb.call("execute_query", sql).await.ok());
    assert!(!ia.is_empty() && !ib.is_empty());
    assert!(ia.iter().all(|id| !ib.contains(id)), "disjoint order sets");

    let mut unknown = server.client(Some(UNKNOWN_TENANT)).await;
    assert_eq!(
        unknown
            .query("SELECT count(*) FROM retail.orders")
            .await
            .scalar(),
        json!(0)
    );
    // Reference tables stay readable to everyone.
    let products = unknown
        .query("SELECT count(*) FROM retail.products")
        .await
        .scalar();
    assert!(products.as_i64().unwrap() >= 500);
}

#[tokio::test]
async fn nothing_leaks_through_a_pool_of_one_connection() {
    let truth = orders_per_store().await;
    let seattle = truth.iter().find(|t| t.1 == SEATTLE).unwrap().2;
    let total: i64 = truth.iter().map(|t| t.2).sum();
    let server = TestServer::start_with(|c| c.pool_size = 1).await;
    let mut s = server.client(Some(SEATTLE)).await;
    let mut h = server.client(Some(HEAD_OFFICE)).await;
    let mut none = server.client(None).await;
    let sql = "SELECT count(*), pgmcp.tenant_id() FROM retail.orders";
    for _ in 0..2 {
        assert_eq!(s.query(sql).await.ok()["rows"], json!([[seattle, SEATTLE]]));
        assert_eq!(
            h.query(sql).await.ok()["rows"],
            json!([[total, HEAD_OFFICE]])
        );
    }
    let refused = none.query(sql).await;
    assert!(refused.is_error);
    assert_eq!(refused.error_code(), Some("TENANT_REQUIRED"));
    // The single connection carries no tenant between transactions.
    assert_eq!(s.query(sql).await.ok()["rows"], json!([[seattle, SEATTLE]]));
    assert_eq!(server.state.databases.get(None).unwrap().pool.size(), 1);
}

#[tokio::test]
async fn writes_fail_and_change_nothing() {
    let admin = admin_pool().await;
    let count = |sql: &'static str| {
        let admin = admin.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&admin)
                .await
                .unwrap()
        }
    };
    let before_orders = count("SELECT count(*) FROM retail.orders").await;
    let before_stores = count("SELECT count(*) FROM retail.stores").await;
    let server = TestServer::start().await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    for sql in [
        "INSERT INTO retail.stores (store_name, city, region, rls_user_id, opened_on) VALUES ('x','x','x','11111111-1111-1111-1111-111111111111','2020-01-01')",
        "UPDATE retail.orders SET order_date = '1999-01-01'",
        "DELETE FROM retail.orders",
        "CREATE TABLE retail.evil (id int)",
        "DROP TABLE retail.orders",
        "TRUNCATE retail.orders",
    ] {
        let out = c.query(sql).await;
        assert!(out.is_error, "{sql} must fail");
        let code = out.error_code().unwrap();
        assert!(
            ["UNSAFE_SQL", "QUERY_FAILED", "FORBIDDEN"].contains(&code),
            "{sql}: {code}"
        );
    }
    assert_eq!(
        count("SELECT count(*) FROM retail.orders").await,
        before_orders
    );
    assert_eq!(
        count("SELECT count(*) FROM retail.stores").await,
        before_stores
    );
    assert_eq!(
        count("SELECT count(*) FROM retail.orders WHERE order_date = '1999-01-01'").await,
        0
    );
    assert_eq!(
        count("SELECT count(*) FROM pg_class WHERE relname = 'evil'").await,
        0
    );
}

#[tokio::test]
async fn tenant_header_errors_and_tool_errors_are_clear() {
    let server = TestServer::start().await;
    // Invalid UUID: HTTP 400 with a JSON body, before any MCP handling.
    let resp = reqwest::Client::new()
        .post(server.url("/mcp"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("x-rls-user-id", "store-1; DROP TABLE x")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error_code"], "INVALID_TENANT");

    // Missing header: the session works, data tools answer TENANT_REQUIRED.
    let mut anon = server.client(None).await;
    assert_eq!(anon.list_tools().await.len(), crate::common::TOOLS.len());
    for (tool, args) in [
        ("execute_query", json!({"sql": "SELECT 1"})),
        ("list_tables", json!({})),
        ("get_table_schema", json!({"table_name": "retail.orders"})),
        ("explain_query", json!({"sql": "SELECT 1"})),
    ] {
        let out = anon.call(tool, args).await;
        assert_eq!(out.error_code(), Some("TENANT_REQUIRED"), "{tool}");
    }

    let mut c = server.client(Some(SEATTLE)).await;
    // Unknown tool: a JSON-RPC error naming it.
    let reply = c
        .request(
            "tools/call",
            json!({"name": "drop_everything", "arguments": {}}),
        )
        .await;
    let msg = reply["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
        + reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default();
    assert!(
        msg.contains("drop_everything"),
        "unknown tool error names the tool: {reply}"
    );

    // Malformed arguments: wrong type, missing required field.
    for args in [
        json!({"sql": 42}),
        json!({}),
        json!({"sql": "SELECT 1", "max_rows": "ten"}),
    ] {
        let reply = c
            .request(
                "tools/call",
                json!({"name": "execute_query", "arguments": args}),
            )
            .await;
        let failed = reply.get("error").is_some() || reply["result"]["isError"] == true;
        assert!(failed, "malformed arguments {args} are refused: {reply}");
    }
    let zero = c
        .call("execute_query", json!({"sql": "SELECT 1", "max_rows": 0}))
        .await;
    assert_eq!(zero.error_code(), Some("VALIDATION_ERROR"));

    // Syntax error: SQLSTATE 42601 from PostgreSQL.
    let out = c.query("SELEC count(*) FROM retail.orders").await;
    assert_eq!(out.error_code(), Some("SYNTAX_ERROR"));
    assert_eq!(out.structured["sqlstate"], "42601");

    // Missing table: a clear error, not an empty success.
    let out = c.query("SELECT * FROM retail.no_such_table").await;
    assert_eq!(out.error_code(), Some("QUERY_FAILED"));
    assert_eq!(out.structured["sqlstate"], "42P01");
    let out = c
        .call("get_table_schema", json!({"table_name": "retail.ordrs"}))
        .await;
    assert_eq!(out.error_code(), Some("NOT_FOUND"));
    assert!(
        out.structured["details"]["did_you_mean"]
            .to_string()
            .contains("retail.orders")
    );

    // Wrong parameter count and type.
    let out = c
        .call(
            "execute_query",
            json!({"sql": "SELECT $1::int", "params": []}),
        )
        .await;
    assert_eq!(out.error_code(), Some("VALIDATION_ERROR"));
    let out = c
        .call(
            "execute_query",
            json!({"sql": "SELECT $1::int", "params": ["abc"]}),
        )
        .await;
    assert_eq!(out.error_code(), Some("VALIDATION_ERROR"));
    let out = c
        .call(
            "execute_query",
            json!({"sql": "SELECT 1", "database": "nope"}),
        )
        .await;
    assert_eq!(out.error_code(), Some("UNKNOWN_DATABASE"));
}

#[tokio::test]
async fn row_cap_truncates_and_reads_at_most_one_extra_row() {
    let server = TestServer::start_with(|c| c.max_rows = 50).await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    let out = c
        .query("SELECT g FROM generate_series(1, 100000) g")
        .await
        .ok();
    assert_eq!(out["row_count"], 50);
    assert_eq!(out["truncated"], true);
    let out = c
        .call(
            "execute_query",
            json!({"sql": "SELECT g FROM generate_series(1, 10) g", "max_rows": 10}),
        )
        .await
        .ok();
    assert_eq!(out["row_count"], 10);
    assert_eq!(out["truncated"], false, "exactly the cap is not truncated");
    let out = c.call("execute_query", json!({"sql": "SELECT g FROM generate_series(1, 10) g -- trailing comment", "max_rows": 3})).await.ok();
    assert_eq!(out["rows"], json!([[1], [2], [3]]));
    // The +1 row is the only extra one PostgreSQL produces: the plan has the LIMIT.
    let plan = c
        .call(
            "explain_query",
            json!({"sql": "SELECT g FROM generate_series(1, 100000) g", "analyze": true}),
        )
        .await
        .ok();
    assert!(plan["plan"].is_array());
}

#[tokio::test]
async fn schema_tools_describe_the_retail_schema() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c
        .call("list_tables", json!({"schema": "retail"}))
        .await
        .ok();
    let tables = out["tables"].as_array().unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for t in [
        "stores",
        "customers",
        "categories",
        "product_types",
        "products",
        "orders",
        "order_items",
        "inventory",
        "product_description_embeddings",
    ] {
        assert!(names.contains(&t), "{t} listed");
    }
    let orders = tables.iter().find(|t| t["name"] == "orders").unwrap();
    assert_eq!(orders["kind"], "table");
    assert_eq!(orders["rls_enabled"], true);
    assert!(orders["estimated_rows"].as_i64().unwrap() > 0);
    assert!(orders["comment"].as_str().unwrap().contains("orders"));

    let s = c
        .call(
            "get_table_schema",
            json!({"table_name": "order_items", "schema": "retail"}),
        )
        .await
        .ok();
    assert_eq!(s["primary_key"], json!(["order_item_id"]));
    assert_eq!(s["rls_enabled"], true);
    assert_eq!(s["rls_forced"], true);
    let fks = s["foreign_keys"].as_array().unwrap();
    assert!(
        fks.iter().any(
            |f| f["referenced_table"] == "retail.orders" && f["columns"] == json!(["order_id"])
        )
    );
    let idx = s["indexes"].as_array().unwrap();
    assert!(
        idx.iter()
            .any(|i| i["method"] == "btree" && i["columns"] == json!(["order_id"]))
    );
    let qty = s["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "quantity")
        .unwrap();
    assert_eq!(qty["data_type"], "integer");
    assert_eq!(qty["is_nullable"], false);

    let stores = c
        .call("get_table_schema", json!({"table_name": "retail.stores"}))
        .await
        .ok();
    let refs = stores["referenced_by"].as_array().unwrap();
    assert!(
        refs.iter().any(|f| f["table"] == "retail.orders"),
        "foreign keys both ways"
    );
    assert!(
        stores["unique_constraints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["columns"] == json!(["rls_user_id"]))
    );

    let multi = c
        .call(
            "get_multiple_table_schemas",
            json!({"table_names": ["retail.orders", "retail.products", "retail.nope"]}),
        )
        .await
        .ok();
    assert_eq!(multi["count"], 3);
    assert_eq!(multi["errors"], 1);
    assert_eq!(multi["tables"][0]["table_name"], "orders");
    assert_eq!(multi["tables"][2]["error"]["error_code"], "NOT_FOUND");
}

#[tokio::test]
async fn explain_analyze_sees_the_tenants_rows() {
    let server = TestServer::start().await;
    let sql = json!({"sql": "SELECT * FROM retail.orders", "analyze": true});
    let mut s = server.client(Some(SEATTLE)).await;
    let mut h = server.client(Some(HEAD_OFFICE)).await;
    let actual = |plan: Value| plan["plan"][0]["Plan"]["Actual Rows"].as_f64().unwrap();
    let ps = s.call("explain_query", sql.clone()).await.ok();
    let ph = h.call("explain_query", sql).await.ok();
    assert!(actual(ps.clone()) > 0.0);
    assert!(
        actual(ph) > actual(ps),
        "head office's plan reads more rows than Seattle's"
    );

    let text = s.call("explain_query", json!({"sql": "SELECT * FROM retail.orders WHERE order_id = $1", "params": [1], "format": "text"})).await.ok();
    assert!(text["plan"].as_str().unwrap().contains("Index Scan"));
    let refused = s
        .call(
            "explain_query",
            json!({"sql": "DELETE FROM retail.orders", "analyze": true}),
        )
        .await;
    assert!(refused.is_error);
}

/// One tools/call as Seattle: answered with `content_type`, one store counted, writes refused.
async fn seattle_call_is_answered_as(c: &mut McpClient, content_type: &str) {
    let (status, headers, body) = c
        .post_raw(json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
            "params": {"name": "execute_query", "arguments": {"sql": "SELECT count(DISTINCT store_id) FROM retail.orders"}}}))
        .await;
    assert_eq!(status, 200);
    let got = headers["content-type"].to_str().unwrap();
    assert!(got.starts_with(content_type), "content-type {got}");
    assert_eq!(
        body.unwrap()["result"]["structuredContent"]["rows"],
        json!([[1]]),
        "the tenant applies"
    );
    assert_eq!(
        c.query("DELETE FROM retail.orders").await.error_code(),
        Some("UNSAFE_SQL")
    );
}

#[tokio::test]
async fn session_mode_issues_a_session_and_answers_over_sse() {
    let server = TestServer::start_with(|c| c.stateless_http = false).await;
    let mut c = server.client(Some(SEATTLE)).await;
    assert!(
        c.session.is_some(),
        "PG_MCP_STATELESS_HTTP=false: the server issues an Mcp-Session-Id"
    );
    seattle_call_is_answered_as(&mut c, "text/event-stream").await;
}

#[tokio::test]
async fn stateless_mode_answers_each_post_with_json() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    assert!(c.session.is_none(), "no Mcp-Session-Id in stateless mode");
    seattle_call_is_answered_as(&mut c, "application/json").await;
}

//! The schema surface over a real database: a 5,000-table schema paged and read within the
//! output budget, the natural-language tool's schema context on it, resources and completions,
//! every tool's output against its `outputSchema`, `GET /mcp/tools`, and a `CREATE TABLE`
//! reaching the cache (and sessions, as `list_changed`) within the change check's period.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool};

use crate::common::databases::{fresh_database, pg_mcp_on, stderr, with_database};
use crate::common::process::pg_mcp_command;
use crate::common::{McpClient, SEATTLE, TestServer, env, table_names, wait_until};
use crate::stub_chat::{StubChat, use_stub};

/// The default schema output budget (`PG_MCP_SCHEMA_OUTPUT_BUDGET_BYTES`).
const BUDGET: usize = 65_536;
/// Numbered tables in the wide schema, besides the named ones.
const WIDE_TABLES: usize = 5_000;

/// A fresh database holding `setup` (run as the superuser), migrated by the real `pg-mcp
/// migrate` with schema `schema` granted; a superuser pool on it.
async fn database_with(name: &str, schema: &str, setup: &str) -> PgPool {
    let pool = fresh_database(name).await;
    sqlx::raw_sql(AssertSqlSafe(setup.to_string()))
        .execute(&pool)
        .await
        .unwrap();
    let out = pg_mcp_on(name, &["migrate"], &[("PG_MCP_SCHEMAS", schema)]).await;
    assert!(out.status.success(), "migrate: {}", stderr(&out));
    pool
}

/// 5,000 numbered tables with a key, five columns and comments, plus three named ones a
/// question can be about.
const WIDE_SCHEMA: &str = r#"
CREATE SCHEMA wide;
DO $$
BEGIN
  FOR i IN 0..4999 LOOP
    EXECUTE format(
      'CREATE TABLE wide.%I (id bigint PRIMARY KEY, label text NOT NULL, status text,
         amount numeric(12,2), created_at timestamptz DEFAULT now())',
      'item_' || lpad(i::text, 4, '0'));
    EXECUTE format('COMMENT ON TABLE wide.%I IS %L', 'item_' || lpad(i::text, 4, '0'),
      'Numbered table ' || i || ' of the wide schema, generated for the paging test');
  END LOOP;
END $$;
CREATE TABLE wide.customer_accounts (account_id bigint PRIMARY KEY, customer_name text NOT NULL);
CREATE TABLE wide.invoices (invoice_id bigint PRIMARY KEY,
  account_id bigint NOT NULL REFERENCES wide.customer_accounts, issued_on date NOT NULL);
CREATE TABLE wide.invoice_lines (line_id bigint PRIMARY KEY,
  invoice_id bigint NOT NULL REFERENCES wide.invoices, amount numeric(12,2) NOT NULL);
COMMENT ON TABLE wide.invoices IS 'Invoices sent to customer accounts';
INSERT INTO wide.customer_accounts VALUES (1, 'Contoso'), (2, 'Fabrikam');
INSERT INTO wide.invoices VALUES (10, 1, '2026-01-05'), (11, 1, '2026-02-05'), (12, 2, '2026-02-07');
"#;

fn model_dir() -> String {
    let root =
        std::env::var("PG_MCP_TEST_ROOT").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    format!("{root}/.cache/models/all-MiniLM-L6-v2")
}

/// Bytes of a tool answer as the client gets it: its structured JSON and its text content.
fn assert_within_budget(out: &crate::common::ToolOutcome, what: &str) {
    let structured = serde_json::to_vec(&out.structured).unwrap().len();
    assert!(structured <= BUDGET, "{what}: {structured} bytes of JSON");
    assert!(
        out.text.len() <= BUDGET,
        "{what}: {} bytes of text",
        out.text.len()
    );
}

/// Every page of `list_tables` with `args`, following cursors; each page is checked against
/// the budget. Returns the names in order and the pages.
async fn every_page(c: &mut McpClient, args: Value) -> (Vec<String>, Vec<Value>) {
    let mut names = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut call = args.clone();
        if let Some(cur) = &cursor {
            call["cursor"] = json!(cur);
        }
        let out = c.call("list_tables", call).await;
        assert!(!out.is_error, "list_tables: {}", out.text);
        assert_within_budget(&out, "a list_tables page");
        let page = out.structured;
        names.extend(table_names(&page));
        cursor = page["next_cursor"].as_str().map(str::to_string);
        assert_eq!(
            page["truncated"],
            json!(cursor.is_some()),
            "truncated exactly when there is a next page: {}",
            page["truncated_by"]
        );
        pages.push(page);
        if cursor.is_none() {
            return (names, pages);
        }
        assert!(pages.len() < 1_000, "list_tables never ends");
    }
}

async fn read_resource(c: &mut McpClient, uri: &str) -> String {
    let reply = c.request("resources/read", json!({ "uri": uri })).await;
    let contents = &reply["result"]["contents"];
    assert_eq!(contents[0]["uri"], json!(uri), "{reply}");
    contents[0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("a text resource: {reply}"))
        .to_string()
}

async fn complete(c: &mut McpClient, argument: &str, value: &str, chosen: Value) -> Value {
    let reply = c
        .request(
            "completion/complete",
            json!({
                "ref": {"type": "ref/resource", "uri": "table://{database}/{schema}/{table}"},
                "argument": {"name": argument, "value": value},
                "context": {"arguments": chosen},
            }),
        )
        .await;
    reply["result"]["completion"].clone()
}

#[tokio::test]
async fn a_5000_table_schema_is_paged_read_and_described_within_the_budget() {
    const DB: &str = "pgmcp_wide_schema";
    let admin = database_with(DB, "wide", WIDE_SCHEMA).await;
    let truth: BTreeSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'wide' AND c.relkind = 'r'",
    )
    .fetch_all(&admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(truth.len(), WIDE_TABLES + 3);

    let question = "Which invoices did each customer account receive?";
    let stub = StubChat::start(&[
        r#"{"sql": "SELECT a.customer_name, count(*) AS invoices FROM wide.invoices i JOIN wide.customer_accounts a USING (account_id) GROUP BY 1 ORDER BY 1", "explanation": "Invoices per customer account."}"#,
    ])
    .await;
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.schemas = vec!["wide".into()];
        c.rate_limit_per_minute = 0;
        c.embeddings.local_model_dir = model_dir().into();
        use_stub(c, &stub);
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;

    // Default pages (100 entries) through every table, each page within the budget.
    let (names, pages) = every_page(&mut c, json!({})).await;
    let seen: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(seen.len(), names.len(), "no table is listed twice");
    assert_eq!(seen, truth, "the pages together list every table");
    assert_eq!(pages.len(), (WIDE_TABLES + 3).div_ceil(100));
    assert_eq!(pages[0]["total"], json!(WIDE_TABLES + 3));
    assert_eq!(
        pages[0]["schemas"],
        json!([{"schema": "wide", "tables": WIDE_TABLES + 3, "views": 0}])
    );

    // The largest pages end at the byte budget, not the page size, and say so.
    let (names, pages) = every_page(&mut c, json!({"page_size": 1000})).await;
    assert_eq!(names.len(), WIDE_TABLES + 3);
    assert!(
        pages
            .iter()
            .any(|p| p["truncated_by"] == json!("byte_budget")),
        "1,000 commented entries do not fit in 64 KB"
    );

    // A pattern, and a cursor that belongs to other filters.
    let out = c
        .call(
            "list_tables",
            json!({"schema": "wide", "pattern": "item_004?"}),
        )
        .await
        .ok();
    let expected: Vec<String> = (40..50).map(|i| format!("wide.item_{i:04}")).collect();
    assert_eq!(table_names(&out), expected);
    assert_eq!(out["total"], json!(10));
    let first = c
        .call("list_tables", json!({"pattern": "item_*"}))
        .await
        .ok();
    let cursor = first["next_cursor"].as_str().expect("more than one page");
    let wrong = c
        .call(
            "list_tables",
            json!({"pattern": "invoice*", "cursor": cursor}),
        )
        .await;
    assert_eq!(
        wrong.error_code(),
        Some("VALIDATION_ERROR"),
        "{}",
        wrong.text
    );

    // The whole schema as a resource: within the budget, saying what it left out.
    let text = read_resource(&mut c, &format!("schema://{}", "default")).await;
    assert!(text.len() <= BUDGET, "schema:// is {} bytes", text.len());
    assert!(
        text.starts_with(&format!(
            "Database: default ({} tables, 0 views)",
            WIDE_TABLES + 3
        )),
        "{}",
        &text[..200]
    );
    assert!(text.contains("more tables not shown"), "says it truncated");
    let table = read_resource(&mut c, "table://default/wide/invoice_lines").await;
    assert!(
        table.contains("invoice_id") && table.contains("wide.invoices"),
        "{table}"
    );
    let listed = read_resource(&mut c, "databases://list").await;
    assert_eq!(
        listed,
        format!(
            "Available Databases:\n- default ({} tables, 0 views)",
            WIDE_TABLES + 3
        )
    );

    // Fifty schemas at once: whole tables within the budget, the rest named as omitted.
    let fifty: Vec<String> = (0..50).map(|i| format!("wide.item_{i:04}")).collect();
    for format in ["json", "text"] {
        let out = c
            .call(
                "get_multiple_table_schemas",
                json!({"table_names": fifty, "format": format}),
            )
            .await;
        assert!(!out.is_error, "{}", out.text);
        assert_within_budget(&out, "get_multiple_table_schemas");
    }

    // Completions of the table template's arguments, at most 100 values with the total.
    let schemas = complete(&mut c, "schema", "wi", json!({"database": "default"})).await;
    assert_eq!(schemas["values"], json!(["wide"]));
    let tables = complete(
        &mut c,
        "table",
        "item_0",
        json!({"database": "default", "schema": "wide"}),
    )
    .await;
    assert_eq!(tables["values"].as_array().unwrap().len(), 100);
    assert_eq!(tables["total"], json!(1000));
    assert_eq!(tables["hasMore"], json!(true));
    let invoices = complete(
        &mut c,
        "table",
        "inv",
        json!({"database": "default", "schema": "wide"}),
    )
    .await;
    assert_eq!(invoices["values"], json!(["invoice_lines", "invoices"]));

    // A question about invoices: the model is shown the relevant tables, not 5,003 of them.
    let answer = c.call("query", json!({"question": question})).await;
    assert!(!answer.is_error, "{}", answer.text);
    let answer = answer.structured;
    assert_eq!(answer["context_ranking"], json!("embedding"), "{answer}");
    let context: Vec<&str> = answer["context_tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(context.len() <= 25, "{context:?}");
    for needed in ["wide.invoices", "wide.customer_accounts"] {
        assert!(context.contains(&needed), "{needed} in {context:?}");
    }
    assert_eq!(answer["rows"], json!([["Contoso", 2], ["Fabrikam", 1]]));
    let prompt = stub.messages_of(0);
    assert!(
        prompt.len() < BUDGET,
        "the prompt is {} bytes",
        prompt.len()
    );
    assert!(prompt.contains("wide.invoices"), "{prompt}");
}

/// The Seattle store as a declared source (one row per store, row-level security on it).
const STORES_SOURCE: &str = r#"[{"name": "surface_stores", "table": "retail.stores", "key": "store_id",
  "text": ["store_name", "city", "region"], "columns": ["store_id", "store_name", "city"],
  "description": "the company's stores"}]"#;

/// `pg-mcp embed` of [`STORES_SOURCE`] on the demo database (the catalogue's embeddings are
/// current already; only the source's are written).
async fn embed_stores() {
    let mut cmd = pg_mcp_command("embed");
    cmd.env("PG_MCP_ADMIN_DATABASE_URL", env().admin_url)
        .env("PG_MCP_EMBEDDING_SOURCES", STORES_SOURCE)
        .env("PG_MCP_LOCAL_MODEL_DIR", model_dir());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("pg-mcp runs"))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "embed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real call of each tool the demo lists (and `query` with a model, `semantic_search` with
/// a source); a tool listed without an entry here fails the test.
fn call_of(tool: &str) -> Vec<Value> {
    match tool {
        "execute_query" => vec![
            json!({"sql": "SELECT store_id, store_name, opened_on, is_online FROM retail.stores"}),
            json!({"sql": "SELECT order_id FROM retail.orders ORDER BY order_id", "max_rows": 3}),
        ],
        "explain_query" => vec![
            json!({"sql": "SELECT count(*) FROM retail.orders"}),
            json!({"sql": "SELECT count(*) FROM retail.orders", "analyze": true, "format": "text"}),
        ],
        "get_metrics" => vec![json!({})],
        "get_multiple_table_schemas" => vec![
            json!({"table_names": ["retail.orders", "retail.stores", "retail.nope"]}),
            json!({"table_names": ["retail.orders"], "format": "text"}),
        ],
        "get_table_schema" => vec![json!({"table_name": "retail.order_items"})],
        "health_check" => vec![json!({})],
        "list_tables" => vec![json!({}), json!({"pattern": "order*", "page_size": 1})],
        "semantic_search_products" => {
            vec![json!({"query_description": "cordless drill", "max_rows": 3})]
        }
        "semantic_search" => vec![json!({"source": "surface_stores", "query": "Seattle"})],
        "query" => vec![
            json!({"question": "How many orders per store?", "return_type": "both"}),
            json!({"question": "How many orders per store?", "return_type": "sql"}),
        ],
        other => panic!("no call of tool {other}: add one so its output is validated"),
    }
}

#[tokio::test]
async fn every_tool_output_validates_against_its_output_schema() {
    embed_stores().await;
    let good = r#"{"sql": "SELECT store_id, count(*) AS orders FROM retail.orders GROUP BY store_id", "explanation": "Orders per store."}"#;
    let stub = StubChat::start(&[good, good]).await;
    let server = TestServer::start_with(|c| {
        c.embeddings.embedding_sources = Some(STORES_SOURCE.into());
        c.embeddings.local_model_dir = model_dir().into();
        use_stub(c, &stub);
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;
    let tools = c.list_tools().await;
    let names: BTreeSet<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for needed in ["query", "semantic_search", "semantic_search_products"] {
        assert!(names.contains(needed), "{needed} is listed: {names:?}");
    }

    for tool in &tools {
        let name = tool["name"].as_str().unwrap();
        let annotations = &tool["annotations"];
        for hint in [
            "title",
            "readOnlyHint",
            "destructiveHint",
            "idempotentHint",
            "openWorldHint",
        ] {
            assert!(
                !annotations[hint].is_null(),
                "{name} has annotation {hint}: {annotations}"
            );
        }
        assert_eq!(annotations["readOnlyHint"], json!(true), "{name}");
        let schema = &tool["outputSchema"];
        assert_eq!(
            schema["type"],
            json!("object"),
            "{name} has an outputSchema"
        );
        let validator = jsonschema::validator_for(schema)
            .unwrap_or_else(|e| panic!("{name}'s outputSchema is not a valid schema: {e}"));
        for args in call_of(name) {
            let out = c.call(name, args.clone()).await;
            assert!(!out.is_error, "{name} {args}: {}", out.text);
            let errors: Vec<String> = validator
                .iter_errors(&out.structured)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{name} {args}: the output does not match its outputSchema: {errors:#?}\n{}",
                out.structured
            );
        }
    }
    // The validator does reject what does not match (the check can fail).
    let list = tools.iter().find(|t| t["name"] == "list_tables").unwrap();
    let validator = jsonschema::validator_for(&list["outputSchema"]).unwrap();
    assert!(!validator.is_valid(&json!({"tables": "not a list"})));
    assert_eq!(stub.left(), 0, "both questions asked the model");

    // GET /mcp/tools: the same tools with the same schemas, for curl users and gateways.
    let plain: Value = server.get("/mcp/tools").await.json().await.unwrap();
    assert_eq!(plain["count"], json!(tools.len()));
    let mut from_plain: Vec<Value> = plain["tools"].as_array().unwrap().clone();
    let mut from_mcp = tools.clone();
    for list in [&mut from_plain, &mut from_mcp] {
        list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    }
    for (p, m) in from_plain.iter().zip(&from_mcp) {
        for field in [
            "name",
            "description",
            "inputSchema",
            "outputSchema",
            "annotations",
        ] {
            assert_eq!(p[field], m[field], "{} {field}", m["name"]);
        }
    }
}

/// Messages of a session's standalone SSE stream (`GET /mcp`), collected as they arrive.
fn listen(c: &McpClient) -> tokio::sync::mpsc::UnboundedReceiver<Value> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let request = c
        .http
        .get(&c.url)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", c.session.clone().expect("a session"))
        .header("x-rls-user-id", c.tenant.clone().unwrap_or_default());
    tokio::spawn(async move {
        let mut resp = request.send().await.expect("GET /mcp");
        assert_eq!(resp.status(), 200, "the standalone stream opens");
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                for data in event.lines().filter_map(|l| l.strip_prefix("data:")) {
                    if let Ok(message) = serde_json::from_str::<Value>(data.trim()) {
                        let _ = tx.send(message);
                    }
                }
            }
        }
    });
    rx
}

#[tokio::test]
async fn a_create_table_reaches_the_cache_and_sessions_within_the_check_period() {
    const DB: &str = "pgmcp_cache_refresh";
    let admin = database_with(
        DB,
        "live",
        "CREATE SCHEMA live; CREATE TABLE live.first (id int PRIMARY KEY);",
    )
    .await;
    let url = with_database(&env().app_url, DB);
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.into());
        c.schemas = vec!["live".into()];
        c.stateless_http = false;
        c.schema_cache_check_secs = 1;
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;
    let mut notifications = listen(&c);
    let before = c.call("list_tables", json!({})).await.ok();
    assert_eq!(table_names(&before), ["live.first"]);
    let cache: Value = server.get("/schema_cache").await.json().await.unwrap();
    assert_eq!(cache["caches"][0]["loaded"], json!(true), "{cache}");

    // Give the stream a moment to open, then change the catalogue behind the server's back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sqlx::raw_sql("CREATE TABLE live.added (id int PRIMARY KEY, note text)")
        .execute(&admin)
        .await
        .unwrap();
    let changed_at = Instant::now();
    let seen = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(100),
        async || {
            let page = c.call("list_tables", json!({})).await.ok();
            (table_names(&page) == ["live.added", "live.first"]).then_some(changed_at.elapsed())
        },
    )
    .await
    .expect("the new table is listed within 10 s");
    eprintln!("the CREATE TABLE was listed after {seen:?} (change check every 1 s)");
    assert!(seen < Duration::from_secs(5), "{seen:?}");

    let notified = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(message) = notifications.recv().await {
            if message["method"] == json!("notifications/resources/list_changed") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(notified, Ok(true), "the session got resources/list_changed");
    let schema = read_resource(&mut c, "schema://default").await;
    assert!(schema.contains("live.added"), "{schema}");

    // On demand: an operator refreshes after a migration, without waiting for the check.
    let refreshed: Value = reqwest::Client::new()
        .post(server.url("/schema_cache/refresh"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refreshed["refreshed"][0]["tables"], json!(2), "{refreshed}");
}

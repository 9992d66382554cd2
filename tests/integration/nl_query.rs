//! The natural-language `query` tool against a real chat-completions stub (`stub_chat`): the
//! model's SQL goes through the guard, EXPLAIN and the caller's tenant transaction, and a
//! refusal or an error goes back to the model.

use serde_json::{Value, json};

use crate::common::{SEATTLE, TestServer, admin_pool};
use crate::stub_chat::{COMPLETION_TOKENS, PROMPT_TOKENS, StubChat, use_stub};

const GOOD: &str = r#"{"sql": "SELECT store_id, count(*) AS orders FROM retail.orders GROUP BY store_id ORDER BY store_id", "explanation": "Counts the orders of each store."}"#;

async fn seattle_orders() -> (i64, i64) {
    sqlx::query_as(
        "SELECT s.store_id::int8, count(*) FROM retail.orders o JOIN retail.stores s USING (store_id) \
          WHERE s.rls_user_id::text = $1 GROUP BY 1",
    )
    .bind(SEATTLE)
    .fetch_one(&admin_pool().await)
    .await
    .unwrap()
}

async fn total_orders() -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM retail.orders")
        .fetch_one(&admin_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_model_recovers_through_retries_and_sees_only_its_tenant() {
    let stub = StubChat::start(&[
        "SELEC store_id FROM retail.orders",
        r#"{"sql": "DELETE FROM retail.orders", "explanation": "oops"}"#,
        GOOD,
    ])
    .await;
    let server = TestServer::start_with(|c| use_stub(c, &stub)).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let tools: Vec<String> = c
        .list_tools()
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(tools.contains(&"query".to_string()), "{tools:?}");

    let out = c
        .call(
            "query",
            json!({"question": "How many orders has each store had?"}),
        )
        .await;
    assert!(!out.is_error, "{}", out.text);
    let answer = out.structured;
    let outcomes: Vec<&str> = answer["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["SYNTAX_ERROR", "UNSAFE_SQL", "OK"], "{answer}");
    let (store, count) = seattle_orders().await;
    assert_eq!(
        answer["rows"],
        json!([[store, count]]),
        "only Seattle's store, all of its orders: {answer}"
    );
    assert_eq!(answer["explanation"], "Counts the orders of each store.");
    assert_eq!(
        answer["tokens"]["total_tokens"],
        json!(3 * (PROMPT_TOKENS + COMPLETION_TOKENS))
    );
    assert_eq!(answer["context_ranking"], "all");
    assert!(
        answer["context_tables"]
            .as_array()
            .unwrap()
            .contains(&json!("retail.orders"))
    );
    assert!(answer["overhead_ms"].as_f64().unwrap() >= 0.0);

    // What the model saw: the schema, then each refusal with its reason.
    let first = stub.messages_of(0);
    assert!(first.contains("### retail.orders"), "{first}");
    assert!(first.contains("How many orders has each store had?"));
    let second = stub.messages_of(1);
    assert!(second.contains("SYNTAX_ERROR"), "{second}");
    let third = stub.messages_of(2);
    assert!(third.contains("UNSAFE_SQL"), "{third}");
    assert_eq!(stub.left(), 0);
    // The text content fences the rows as untrusted data.
    assert!(out.text.contains("<untrusted-data-"), "{}", out.text);
}

#[tokio::test]
async fn every_unsafe_attempt_is_refused_and_nothing_changes() {
    let before = total_orders().await;
    let stub = StubChat::start(&[
        "DELETE FROM retail.orders",
        r#"{"sql": "UPDATE retail.orders SET store_id = 1"}"#,
        "```sql\nSELECT set_config('app.current_rls_user_id', 'x', false)\n```",
    ])
    .await;
    let server = TestServer::start_with(|c| use_stub(c, &stub)).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c
        .call("query", json!({"question": "Remove all orders"}))
        .await;
    assert!(out.is_error, "{}", out.text);
    assert_eq!(out.error_code(), Some("UNSAFE_SQL"), "{}", out.text);
    let attempts = out.structured["details"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{}", out.text);
    assert!(attempts.iter().all(|a| a["outcome"] == "UNSAFE_SQL"));
    assert_eq!(
        total_orders().await,
        before,
        "nothing was deleted or changed"
    );
}

#[tokio::test]
async fn sql_only_and_limits_and_the_result_check() {
    // return_type sql: checked (guard, EXPLAIN) but not run.
    let stub = StubChat::start(&[GOOD]).await;
    let server = TestServer::start_with(|c| use_stub(c, &stub)).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c
        .call(
            "query",
            json!({"question": "orders per store", "return_type": "sql"}),
        )
        .await
        .ok();
    assert!(out["sql"].as_str().unwrap().starts_with("SELECT store_id"));
    assert!(out.get("rows").is_none(), "{out}");

    // The result check says no once: the reason goes back and the next SQL is accepted. The
    // sample rows reach the model fenced as data.
    let stub = StubChat::start(&[
        r#"{"sql": "SELECT order_id FROM retail.orders ORDER BY order_id"}"#,
        r#"{"valid": false, "reason": "the question asks for counts"}"#,
        GOOD,
        r#"{"valid": true, "reason": "counts per store"}"#,
    ])
    .await;
    let server = TestServer::start_with(|c| {
        use_stub(c, &stub);
        c.llm.llm_validate_result = true;
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c
        .call(
            "query",
            json!({"question": "orders per store", "limit": 5, "return_type": "both"}),
        )
        .await
        .ok();
    let outcomes: Vec<&str> = out["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["VALIDATION_ERROR", "OK"], "{out}");
    assert!(stub.messages_of(1).contains("<untrusted-data-"));
    assert!(stub.messages_of(2).contains("the question asks for counts"));
    assert_eq!(out["row_count"], 1);
    assert_eq!(stub.left(), 0);
}

#[tokio::test]
async fn without_a_model_the_tool_is_not_listed_and_a_failing_model_is_clear() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    let tools: Vec<Value> = c.list_tools().await;
    assert!(!tools.iter().any(|t| t["name"] == "query"));

    // A model that is down: LLM_ERROR, with no key in the message.
    let server = TestServer::start_with(|c| {
        c.llm.llm_provider = pg_mcp::search::Provider::Compatible;
        c.llm.llm_base_url = Some("http://127.0.0.1:9/v1".into());
        c.llm.llm_model = Some("m".into());
        c.llm.llm_api_key = Some("sk-secret-key-1234".to_string().into());
        c.llm.llm_timeout_ms = 2000;
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c.call("query", json!({"question": "anything"})).await;
    assert_eq!(out.error_code(), Some("LLM_ERROR"), "{}", out.text);
    assert!(!out.text.contains("sk-secret-key-1234"));

    // A model that answers without SQL every time: LLM_ERROR after the retries.
    let stub = StubChat::start(&["I cannot help with that.", "{}", "   "]).await;
    let server = TestServer::start_with(|c| use_stub(c, &stub)).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = c.call("query", json!({"question": "anything"})).await;
    assert!(out.is_error, "{}", out.text);
    let empty = c.call("query", json!({"question": "  "})).await;
    assert_eq!(empty.error_code(), Some("VALIDATION_ERROR"));
}

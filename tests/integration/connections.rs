//! Connections at runtime (issue 14, seed 000): operators list, test, add and remove
//! databases over MCP; a tenant gets none of it; a superuser URL is refused; passwords never
//! come back.

use serde_json::{Value, json};

use crate::common::databases::{tenant_notes_database, with_database};
use crate::common::{McpClient, SEATTLE, TestServer, env, get_json_with_bearer};

const ADMIN_TOKEN: &str = "connections-test-admin-token-0123456789";
const TOOLS: [&str; 4] = [
    "list_connections",
    "test_connection",
    "add_connection",
    "remove_connection",
];

fn tool_names(listed: &Value) -> Vec<String> {
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The password in a connection URL.
fn password_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .password()
        .expect("the test URLs carry a password")
        .to_string()
}

#[tokio::test]
async fn operators_add_test_and_remove_databases_at_runtime() {
    const SECOND: &str = "pgmcp_runtime_second";
    tenant_notes_database(SECOND).await;

    let server = TestServer::start_with(|c| {
        c.admin_token = Some(ADMIN_TOKEN.to_string().into());
    })
    .await;
    let mut op = McpClient::connect_with_headers(
        &server.url("/mcp"),
        &[
            ("authorization", format!("Bearer {ADMIN_TOKEN}")),
            ("x-rls-user-id", SEATTLE.to_string()),
        ],
    )
    .await;
    let mut tenant = server.client(Some(SEATTLE)).await;

    // Operators only: listed for them, FORBIDDEN for a tenant.
    let shown = tool_names(&json!(tenant.list_tools().await));
    let op_shown = tool_names(&json!(op.list_tools().await));
    for tool in TOOLS {
        assert!(
            !shown.iter().any(|t| t == tool),
            "a tenant is not shown {tool}"
        );
        assert!(
            op_shown.iter().any(|t| t == tool),
            "an operator is shown {tool}"
        );
        let refused = tenant
            .call(tool, json!({"name": "x", "dsn": "postgres://a:b@c/d"}))
            .await;
        assert_eq!(
            refused.error_code(),
            Some("FORBIDDEN"),
            "{tool}: {refused:?}"
        );
    }

    let listed = op.call("list_connections", json!({})).await.ok();
    assert_eq!(listed["count"], json!(1), "{listed}");
    assert_eq!(listed["connections"][0]["name"], "default", "{listed}");
    assert_eq!(
        listed["connections"][0]["runtime"],
        json!(false),
        "{listed}"
    );
    let http = get_json_with_bearer(&server.url("/connections"), ADMIN_TOKEN).await;
    assert_eq!(http["count"], listed["count"], "{http}");

    let second_url = with_database(&env().app_url, SECOND);
    let app_password = password_of(&second_url);
    let superuser_url = with_database(&env().admin_url, SECOND);

    // test_connection: the app role passes; a superuser is refused, password unseen.
    let tested = op
        .call("test_connection", json!({"dsn": second_url}))
        .await
        .ok();
    assert_eq!(tested["role"]["superuser"], json!(false), "{tested}");
    assert_eq!(tested["role"]["bypassrls"], json!(false), "{tested}");
    assert_eq!(tested["database"], SECOND, "{tested}");
    assert!(
        tested["version"].as_str().unwrap().contains("PostgreSQL"),
        "{tested}"
    );
    assert!(!tested.to_string().contains(&app_password), "{tested}");
    let by_name = op
        .call("test_connection", json!({"name": "default"}))
        .await
        .ok();
    assert_eq!(by_name["reachable"], json!(true), "{by_name}");
    let refused = op
        .call("test_connection", json!({"dsn": superuser_url}))
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{refused:?}");
    assert!(
        refused.structured.to_string().contains("superuser"),
        "{refused:?}"
    );

    // add_connection refuses a superuser, a bad URL, a bad name; none is added.
    let refused = op
        .call(
            "add_connection",
            json!({"name": "root", "dsn": superuser_url}),
        )
        .await;
    assert_eq!(refused.error_code(), Some("FORBIDDEN"), "{refused:?}");
    let admin_password = password_of(&superuser_url);
    assert!(
        !refused.structured.to_string().contains(&admin_password),
        "{refused:?}"
    );
    for (name, dsn, why) in [
        ("bad", "mysql://u:p@h/d", "not a postgres URL"),
        ("bad", "postgres://u:p@h:notaport/d", "bad port"),
        ("no spaces", second_url.as_str(), "bad name"),
    ] {
        let bad = op
            .call("add_connection", json!({"name": name, "dsn": dsn}))
            .await;
        assert_eq!(bad.error_code(), Some("VALIDATION_ERROR"), "{why}: {bad:?}");
        assert!(
            !bad.structured.to_string().contains(":p@"),
            "{why}: {bad:?}"
        );
    }
    let unreachable = op
        .call(
            "add_connection",
            json!({"name": "gone", "dsn": "postgres://pgmcp_app:pw@127.0.0.1:1/nothing"}),
        )
        .await;
    assert!(unreachable.is_error, "{unreachable:?}");
    let listed = op.call("list_connections", json!({})).await.ok();
    assert_eq!(listed["count"], json!(1), "nothing was added: {listed}");

    // Added: tools work on it, under row-level security.
    let added = op
        .call(
            "add_connection",
            json!({"name": "second", "dsn": second_url, "pool_size": 2}),
        )
        .await
        .ok();
    assert!(
        added["summary"]
            .as_str()
            .unwrap()
            .contains("in memory only"),
        "{added}"
    );
    assert_eq!(added["persisted"], json!(false), "{added}");
    assert_eq!(added["connection"]["runtime"], json!(true), "{added}");
    assert_eq!(added["connection"]["writable"], json!(false), "{added}");
    assert!(!added.to_string().contains(&app_password), "{added}");
    let again = op
        .call(
            "add_connection",
            json!({"name": "second", "dsn": second_url}),
        )
        .await;
    assert_eq!(again.error_code(), Some("VALIDATION_ERROR"), "{again:?}");

    let notes = tenant
        .call(
            "execute_query",
            json!({"sql": "SELECT note FROM shop.notes", "database": "second"}),
        )
        .await
        .ok();
    assert_eq!(
        notes["rows"],
        json!([["seattle's"]]),
        "only Seattle's row: {notes}"
    );
    let tables = tenant
        .call(
            "list_tables",
            json!({"database": "second", "schema": "shop"}),
        )
        .await
        .ok();
    assert!(tables.to_string().contains("notes"), "{tables}");
    let listed = op.call("list_connections", json!({})).await.ok();
    assert_eq!(listed["count"], json!(2), "{listed}");

    // Removed: the tools stop working on it; the default one cannot go.
    let removed = op
        .call("remove_connection", json!({"name": "second"}))
        .await
        .ok();
    assert_eq!(removed["remaining"], json!(["default"]), "{removed}");
    let gone = tenant
        .call(
            "execute_query",
            json!({"sql": "SELECT note FROM shop.notes", "database": "second"}),
        )
        .await;
    assert_eq!(gone.error_code(), Some("UNKNOWN_DATABASE"), "{gone:?}");
    let kept = op
        .call("remove_connection", json!({"name": "default"}))
        .await;
    assert_eq!(kept.error_code(), Some("VALIDATION_ERROR"), "{kept:?}");

    // No password anywhere in the history.
    let history = get_json_with_bearer(&server.url("/query_history?limit=100"), ADMIN_TOKEN).await;
    let history = history.to_string();
    assert!(history.contains("add_connection"), "{history}");
    assert!(!history.contains(&app_password), "{history}");
    assert!(!history.contains(&admin_password), "{history}");
}

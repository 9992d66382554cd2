//! pg-mcp behind PgBouncer in transaction pooling (issue 15), PgBouncer being Debian's 1.18:
//! no protocol-level prepared statements, so the server runs with
//! `PG_MCP_STATEMENT_CACHE_CAPACITY=0` and PgBouncer with `server_reset_query_always`. Each
//! store's tenant sees only its rows while eight tenants share three server connections,
//! parameterised statements work, and a server connection carries no tenant into the next
//! transaction.

use serde_json::json;
use sqlx::{Connection as _, Row as _};

use crate::common::mcp_client::McpClient;
use crate::common::pgbouncer::PgBouncer;
use crate::common::{SEATTLE, TestServer};

#[tokio::test]
async fn tenants_stay_isolated_through_pgbouncer_transaction_pooling() {
    let bouncer = PgBouncer::start(
        "pgbouncer::tenants_stay_isolated_through_pgbouncer_transaction_pooling",
        3,
    )
    .await;
    let url = bouncer.app_url();
    let server = TestServer::start_with(|c| {
        c.database_url = Some(url.clone().into());
        c.statement_cache_capacity = 0;
        c.pool_size = 8;
        c.rate_limit_per_minute = 0;
    })
    .await;

    // The start-up checks ran through PgBouncer (role, cross-session exposure, the demo).
    let mut seattle = McpClient::connect(&server.url("/mcp"), Some(SEATTLE)).await;
    let tools: Vec<String> = seattle
        .list_tools()
        .await
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        tools.contains(&"semantic_search_products".to_string()),
        "{tools:?}"
    );
    let tables = seattle
        .call("list_tables", json!({"schema": "retail"}))
        .await
        .ok();
    assert!(tables.to_string().contains("orders"), "{tables}");
    let plan = seattle
        .call(
            "explain_query",
            json!({"sql": "SELECT * FROM retail.orders WHERE store_id = $1", "params": [1]}),
        )
        .await
        .ok();
    assert!(plan.to_string().contains("orders"), "{plan}");

    // Every store at once, 8 clients on 3 server connections: each sees only its store, with
    // plain and parameterised statements, call after call.
    let calls = pg_mcp_demo::STORES.iter().enumerate().map(|(i, store)| {
        let url = server.url("/mcp");
        async move {
            let mut client = McpClient::connect(&url, Some(store.rls_user_id)).await;
            let own = i as i64 + 1;
            for round in 0..15 {
                let seen = client
                    .query(
                        "SELECT array_agg(DISTINCT store_id ORDER BY store_id) FROM retail.orders",
                    )
                    .await
                    .scalar();
                assert_eq!(seen, json!([own]), "{} round {round}", store.name);
                let others = client
                    .call(
                        "execute_query",
                        json!({"sql": "SELECT count(*) FROM retail.orders WHERE store_id <> $1",
                                   "params": [own]}),
                    )
                    .await
                    .scalar();
                assert_eq!(others, json!(0), "{} round {round}", store.name);
            }
        }
    });
    futures::future::join_all(calls).await;

    // The server connections those tenants used carry no tenant into the next transaction:
    // the app role alone, through PgBouncer, sees no rows.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for _ in 0..6 {
        let row = sqlx::raw_sql("SELECT count(*) FROM retail.orders")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(row.try_get::<i64, _>(0).unwrap(), 0, "no tenant, no rows");
    }
    assert!(
        !bouncer.logs().contains("ERROR"),
        "PgBouncer logged errors:\n{}",
        bouncer.logs()
    );
}

//! Semantic search with pgvector through MCP: relevance of the local model, limits, RLS on
//! the stock column, provider failures, and an OpenAI-compatible provider end to end against
//! a stub that is a real HTTP server.

use crate::common::*;
use crate::stub_embeddings::{StubServer, dead_base_url};
use pg_mcp::search::products::embed_catalogue;
use pg_mcp::search::{EmbeddingSettings, Provider};
use serde_json::{Value, json};

/// Shopper-style queries and the category a right answer belongs to.
const LABELLED: &[(&str, &str)] = &[
    ("waterproof electrical connectors", "Electrical"),
    (
        "outlet for a bathroom that protects against shocks",
        "Electrical",
    ),
    ("extension cord for outdoor use", "Electrical"),
    ("fix a leaking kitchen faucet", "Plumbing"),
    ("pipe fittings for copper water lines", "Plumbing"),
    ("unclog a drain", "Plumbing"),
    ("hammer for framing", "Hand Tools"),
    ("set of screwdrivers", "Hand Tools"),
    ("adjustable wrench for bolts", "Hand Tools"),
    ("cordless drill with battery", "Power Tools"),
    ("circular saw for cutting plywood", "Power Tools"),
    ("sander to smooth wood", "Power Tools"),
    ("paint for a bathroom ceiling", "Paint & Finishes"),
    ("wood stain for a deck", "Paint & Finishes"),
    ("paint brushes and rollers", "Paint & Finishes"),
    ("something to cut tree branches", "Garden & Outdoor"),
    ("garden hose for watering plants", "Garden & Outdoor"),
    ("LED bulbs that save energy", "Lighting"),
    ("motion sensor light for the porch", "Lighting"),
    ("wood screws and anchors", "Hardware & Fasteners"),
    ("door hinges", "Hardware & Fasteners"),
    ("shelving for the garage", "Storage & Organization"),
    ("plastic storage bins with lids", "Storage & Organization"),
    ("safety glasses to protect my eyes", "Safety & Workwear"),
    ("work gloves", "Safety & Workwear"),
];

async fn search(c: &mut McpClient, args: Value) -> ToolOutcome {
    c.call("semantic_search_products", args).await
}

#[tokio::test]
async fn local_model_finds_the_right_category() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(HEAD_OFFICE)).await;
    let mut hits = 0;
    let mut total = 0;
    let mut misses = Vec::new();
    for (query, category) in LABELLED {
        let out = search(
            &mut c,
            json!({"query_description": query, "max_rows": 5, "similarity_threshold": 0}),
        )
        .await
        .ok();
        let products = out["products"].as_array().unwrap();
        assert_eq!(products.len(), 5, "{query}: five results");
        for p in products {
            total += 1;
            if p["category"] == *category {
                hits += 1;
            } else {
                misses.push(format!(
                    "{query} -> {} ({})",
                    p["product_name"], p["category"]
                ));
            }
        }
    }
    let precision = hits as f64 / total as f64;
    println!(
        "semantic search top-5 precision over {} labelled queries: {precision:.3} ({hits}/{total})",
        LABELLED.len()
    );
    for m in &misses {
        println!("  off-category: {m}");
    }
    assert!(LABELLED.len() >= 20);
    assert!(
        precision >= 0.8,
        "top-5 precision {precision:.3} is below 0.8"
    );
}

#[tokio::test]
async fn threshold_and_max_rows_are_respected() {
    let server = TestServer::start().await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = search(
        &mut c,
        json!({"query_description": "cordless drill", "max_rows": 3}),
    )
    .await
    .ok();
    let products = out["products"].as_array().unwrap();
    assert_eq!(products.len(), 3);
    let sims: Vec<f64> = products
        .iter()
        .map(|p| p["similarity_percent"].as_f64().unwrap())
        .collect();
    assert!(
        sims.windows(2).all(|w| w[0] >= w[1]),
        "ordered by similarity: {sims:?}"
    );
    assert!(sims.iter().all(|s| *s >= 30.0), "default threshold 30%");
    for k in [
        "product_id",
        "product_name",
        "description",
        "category",
        "product_type",
        "price",
    ] {
        assert!(!products[0][k].is_null(), "{k}");
    }

    let strict = search(
        &mut c,
        json!({"query_description": "cordless drill", "max_rows": 50, "similarity_threshold": 60}),
    )
    .await
    .ok();
    let strict = strict["products"].as_array().unwrap();
    assert!(
        strict
            .iter()
            .all(|p| p["similarity_percent"].as_f64().unwrap() >= 60.0)
    );
    let none = search(
        &mut c,
        json!({"query_description": "cordless drill", "similarity_threshold": 99.9}),
    )
    .await
    .ok();
    assert_eq!(none["row_count"], 0, "nothing is that similar");
    let capped = search(
        &mut c,
        json!({"query_description": "tools", "max_rows": 500, "similarity_threshold": 0}),
    )
    .await
    .ok();
    assert_eq!(capped["row_count"], 100, "max_rows is capped at 100");

    for (args, code) in [
        (json!({"query_description": "  "}), "VALIDATION_ERROR"),
        (
            json!({"query_description": "drill", "max_rows": 0}),
            "VALIDATION_ERROR",
        ),
        (
            json!({"query_description": "drill", "similarity_threshold": 150}),
            "VALIDATION_ERROR",
        ),
        (
            json!({"query_description": "drill", "similarity_threshold": -1}),
            "VALIDATION_ERROR",
        ),
    ] {
        assert_eq!(
            search(&mut c, args.clone()).await.error_code(),
            Some(code),
            "{args}"
        );
    }
    let mut anon = server.client(None).await;
    assert_eq!(
        search(&mut anon, json!({"query_description": "drill"}))
            .await
            .error_code(),
        Some("TENANT_REQUIRED")
    );
}

#[tokio::test]
async fn stock_follows_row_level_security() {
    let admin = admin_pool().await;
    let server = TestServer::start().await;
    let args =
        json!({"query_description": "garden hose", "max_rows": 5, "similarity_threshold": 0});
    let mut seattle = server.client(Some(SEATTLE)).await;
    let mut ho = server.client(Some(HEAD_OFFICE)).await;
    let mut unknown = server.client(Some(UNKNOWN_TENANT)).await;
    let s = search(&mut seattle, args.clone()).await.ok();
    let h = search(&mut ho, args.clone()).await.ok();
    let u = search(&mut unknown, args).await.ok();
    for i in 0..5 {
        let id = s["products"][i]["product_id"].as_i64().unwrap();
        assert_eq!(
            h["products"][i]["product_id"],
            json!(id),
            "the same products for everyone"
        );
        let (seattle_stock, all_stock): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum(i.stock_level) FILTER (WHERE s.rls_user_id = $2::uuid), 0)::int8, coalesce(sum(i.stock_level), 0)::int8 \
               FROM retail.inventory i JOIN retail.stores s USING (store_id) WHERE i.product_id = $1",
        )
        .bind(id as i32)
        .bind(SEATTLE)
        .fetch_one(&admin)
        .await
        .unwrap();
        assert_eq!(
            s["products"][i]["stock_level"],
            json!(seattle_stock),
            "Seattle sees Seattle stock"
        );
        assert_eq!(
            h["products"][i]["stock_level"],
            json!(all_stock),
            "head office sees all stock"
        );
        assert!(
            u["products"][i]["stock_level"].is_null(),
            "an unknown tenant sees no stock"
        );
    }
}

/// The call failed with EMBEDDING_ERROR and a message that mentions `reason`.
#[track_caller]
fn assert_embedding_error(out: &ToolOutcome, reason: &str) {
    assert_eq!(
        out.error_code(),
        Some("EMBEDDING_ERROR"),
        "{}",
        out.structured
    );
    let message = out.structured["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
}

#[tokio::test]
async fn a_failing_provider_gives_embedding_error_and_other_tools_work() {
    let dead = dead_base_url();
    let server = TestServer::start_with(move |c| {
        c.embeddings.embeddings_provider = Provider::Compatible;
        c.embeddings.embeddings_base_url = Some(dead);
        c.embeddings.embeddings_model = Some("nomic-embed-text".into());
        c.embeddings.embeddings_max_retries = 0;
        c.embeddings.embeddings_timeout_ms = 1_000;
    })
    .await;
    let mut c = server.client(Some(SEATTLE)).await;
    let out = search(&mut c, json!({"query_description": "drill"})).await;
    assert_embedding_error(&out, "embeddings provider");
    assert_eq!(
        c.query("SELECT 1").await.scalar(),
        json!(1),
        "other tools keep working"
    );

    let disabled =
        TestServer::start_with(|c| c.embeddings.embeddings_provider = Provider::Disabled).await;
    let mut c = disabled.client(Some(SEATTLE)).await;
    let out = search(&mut c, json!({"query_description": "drill"})).await;
    assert_embedding_error(&out, "disabled");
}

#[tokio::test]
async fn compatible_provider_end_to_end_with_a_stub_server() {
    let stub = StubServer::start(Some("stub-key"), 64).await;
    let settings = |s: &mut EmbeddingSettings| {
        s.embeddings_provider = Provider::Compatible;
        s.embeddings_base_url = Some(stub.base_url());
        s.embeddings_api_key = Some("stub-key".into());
        s.embeddings_model = Some("stub-model".into());
        s.embeddings_dimensions = Some(64);
    };
    // Embed the catalogue with the stub model (what `pg-mcp embed` does), as admin.
    let mut cfg = crate::common::test_config();
    settings(&mut cfg.embeddings);
    assert_eq!(cfg.embeddings.provider().unwrap(), Provider::Compatible);
    let embedder = pg_mcp::search::build_embedder(&cfg.embeddings.to_config().unwrap()).unwrap();
    let embed = || async {
        embed_catalogue(
            &admin_pool().await,
            embedder.as_ref(),
            100,
            false,
            |_, _| {},
        )
        .await
        .unwrap()
    };
    let report = embed().await;
    assert_eq!(report.products, 500);
    assert_eq!(report.dimensions, 64);
    // Idempotent: a second run embeds nothing.
    let again = embed().await;
    assert_eq!(again.embedded, 0);

    let server = TestServer::start_with(move |c| settings(&mut c.embeddings)).await;
    let mut c = server.client(Some(SEATTLE)).await;
    let before = stub.requests();
    let out = search(
        &mut c,
        json!({"query_description": "drill", "similarity_threshold": 0, "max_rows": 5}),
    )
    .await
    .ok();
    assert_eq!(out["model"], "stub-model");
    assert_eq!(out["row_count"], 5);
    assert_eq!(stub.requests(), before + 1, "one embeddings request");
    // The same query again is served from the cache.
    search(
        &mut c,
        json!({"query_description": "drill", "similarity_threshold": 0, "max_rows": 5}),
    )
    .await
    .ok();
    assert_eq!(stub.requests(), before + 1, "cache hit: no second request");
    let metrics = server.text("/metrics").await;
    assert!(
        metrics.contains("pgmcp_embedding_cache_hits_total 1"),
        "{metrics}"
    );
}

//! OpenAI, OpenAI-compatible and Azure embedders against a real local HTTP stub.
//!
//! The retry and timeout tests run on paused time: backoffs and timeouts take no wall-clock
//! time, and the durations they assert are the tokio clock's (see `tick_paused_clock`).

use std::sync::Arc;
use std::time::Duration;

use crate::stub_embeddings::{
    KEY, Mode, StubServer, assert_http_error, compatible_cfg, dead_base_url, openai_cfg,
    openai_on_stub, stub_vector, texts, tick_paused_clock,
};
use pg_mcp::search::{
    CachedEmbedder, EmbedError, Embedder, EmbeddingsConfig, Provider, build_embedder,
};
use tokio::time::Instant;

#[tokio::test]
async fn openai_batches_keeps_order_and_sends_dimensions() {
    let stub = StubServer::start(Some(KEY), 1536).await;
    let cfg = EmbeddingsConfig {
        dimensions: Some(64),
        batch_size: 2,
        ..openai_cfg(&stub)
    };
    let embedder = build_embedder(&cfg).unwrap();
    assert_eq!(embedder.model(), "text-embedding-3-small");
    assert_eq!(embedder.dimensions(), 64);

    let input = texts(&[
        "garden hose 50 ft",
        "cordless drill",
        "",
        "ünïcödé 水管 🚿",
        "last",
    ]);
    let vectors = embedder.embed(&input).await.unwrap();
    assert_eq!(vectors.len(), input.len());
    for (text, v) in input.iter().zip(&vectors) {
        // Empty text is sent as a single space (OpenAI rejects empty input).
        let sent = if text.is_empty() { " " } else { text.as_str() };
        assert_eq!(v, &stub_vector(sent, 64), "vector for {text:?}");
    }

    let seen = stub.seen();
    let mut sizes: Vec<usize> = seen.iter().map(|s| s.inputs.len()).collect();
    sizes.sort_unstable(); // batches may be in flight together
    assert_eq!(sizes, [1, 2, 2]);
    assert!(seen.iter().all(|s| s.dimensions == Some(64)));
    assert!(
        seen.iter()
            .all(|s| s.model.as_deref() == Some("text-embedding-3-small"))
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {KEY}").as_str())
    );

    assert!(embedder.embed(&[]).await.unwrap().is_empty());
    assert_eq!(stub.requests(), 3, "an empty batch sends nothing");
}

#[tokio::test]
async fn openai_native_dimensions_are_not_sent() {
    let stub = StubServer::start(Some(KEY), 1536).await;
    let embedder = build_embedder(&openai_cfg(&stub)).unwrap();
    let v = embedder
        .embed_one("waterproof electrical connectors")
        .await
        .unwrap();
    assert_eq!(v.len(), 1536);
    assert_eq!(stub.seen()[0].dimensions, None);
}

#[tokio::test]
async fn wrong_key_is_an_http_401_without_the_key_in_it() {
    let stub = StubServer::start(Some("sk-the-right-one"), 8).await;
    let embedder = build_embedder(&openai_cfg(&stub)).unwrap();
    let err = embedder.embed_one("x").await.unwrap_err();
    assert_http_error(&err, Some(401));
    assert!(!format!("{err} {err:?}").contains(KEY));
    assert_eq!(stub.requests(), 1, "401 is not retried");
}

#[tokio::test]
async fn compatible_without_key() {
    let stub = StubServer::start(None, 768).await;
    let cfg = compatible_cfg(format!("{}/", stub.base_url()), "nomic-embed-text");
    let embedder = build_embedder(&cfg).unwrap();
    assert_eq!(embedder.dimensions(), 768, "known model size");
    let v = embedder.embed(&texts(&["a", "b"])).await.unwrap();
    assert_eq!(v[1], stub_vector("b", 768));
    let seen = stub.seen();
    assert_eq!(seen[0].model.as_deref(), Some("nomic-embed-text"));
    assert_eq!(seen[0].authorization, None, "no credentials sent");
}

#[tokio::test]
async fn compatible_with_key_and_declared_dimensions() {
    let stub = StubServer::start(Some(KEY), 32).await;
    let cfg = EmbeddingsConfig {
        dimensions: Some(32),
        api_key: Some(KEY.into()),
        ..compatible_cfg(stub.base_url(), "my-local-model")
    };
    let embedder = build_embedder(&cfg).unwrap();
    let v = embedder.embed_one("hello").await.unwrap();
    assert_eq!(v, stub_vector("hello", 32));
    assert_eq!(
        stub.seen()[0].dimensions,
        None,
        "compatible servers are not sent dimensions"
    );

    // A model of unknown size needs `dimensions`.
    let cfg = EmbeddingsConfig {
        dimensions: None,
        ..cfg
    };
    assert!(matches!(
        build_embedder(&cfg),
        Err(EmbedError::NotConfigured(_))
    ));
}

#[tokio::test]
async fn azure_deployment_path_key_header_and_api_version() {
    let stub = StubServer::start(Some(KEY), 1536).await;
    let cfg = EmbeddingsConfig {
        provider: Provider::Azure,
        api_key: Some(KEY.into()),
        azure_endpoint: Some(stub.endpoint()),
        azure_deployment: Some("text-embedding-3-small".into()),
        azure_api_version: Some("2024-10-21".into()),
        dimensions: Some(256),
        ..Default::default()
    };
    let embedder = build_embedder(&cfg).unwrap();
    assert_eq!(
        embedder.model(),
        "text-embedding-3-small",
        "deployment name when no model"
    );
    let input = texts(&["garden hose 50 ft", "LED shop light"]);
    let v = embedder.embed(&input).await.unwrap();
    assert_eq!(v[0], stub_vector("garden hose 50 ft", 256));
    assert_eq!(v[1], stub_vector("LED shop light", 256));
    let seen = &stub.seen()[0];
    assert_eq!(
        seen.path,
        "/openai/deployments/text-embedding-3-small/embeddings"
    );
    assert_eq!(seen.api_version.as_deref(), Some("2024-10-21"));
    assert_eq!(seen.authorization.as_deref(), Some(KEY), "api-key header");

    let wrong = EmbeddingsConfig {
        api_key: Some("wrong-key".into()),
        ..cfg
    };
    let err = build_embedder(&wrong)
        .unwrap()
        .embed_one("x")
        .await
        .unwrap_err();
    assert_http_error(&err, Some(401));
}

#[tokio::test(start_paused = true)]
async fn retries_after_429_then_succeeds() {
    tick_paused_clock();
    let (stub, embedder) = openai_on_stub(16, |_| {}).await;
    stub.set_mode(Mode::RateLimitOnce);
    let v = embedder.embed_one("q").await.unwrap();
    assert_eq!(v, stub_vector("q", 16));
    assert_eq!(stub.requests(), 2, "one 429 then one success");
}

#[tokio::test(start_paused = true)]
async fn retries_after_503_with_backoff() {
    tick_paused_clock();
    let (stub, embedder) = openai_on_stub(16, |_| {}).await;
    stub.set_mode(Mode::ServerErrorOnce);
    let started = Instant::now();
    embedder.embed_one("q").await.unwrap();
    assert_eq!(stub.requests(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "backed off before retrying"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_bounded() {
    tick_paused_clock();
    let (stub, embedder) = openai_on_stub(16, |cfg| cfg.max_retries = 2).await;
    stub.set_mode(Mode::AlwaysRateLimited {
        retry_after_secs: 0,
    });
    let err = embedder.embed_one("q").await.unwrap_err();
    assert_http_error(&err, Some(429));
    assert_eq!(stub.requests(), 3, "first attempt + 2 retries");
}

#[tokio::test(start_paused = true)]
async fn long_retry_after_gives_up_at_once() {
    tick_paused_clock();
    let (stub, embedder) = openai_on_stub(16, |_| {}).await;
    stub.set_mode(Mode::AlwaysRateLimited {
        retry_after_secs: 3600,
    });
    let started = Instant::now();
    let err = embedder.embed_one("q").await.unwrap_err();
    assert_http_error(&err, Some(429));
    assert_eq!(stub.requests(), 1);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn slow_server_times_out() {
    tick_paused_clock();
    let (stub, embedder) = openai_on_stub(16, |cfg| cfg.timeout = Duration::from_millis(300)).await;
    stub.set_mode(Mode::Slow(Duration::from_secs(10)));
    let started = Instant::now();
    let err = embedder.embed_one("q").await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, EmbedError::Timeout);
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
    assert_eq!(stub.requests(), 1, "timeouts are not retried");
}

#[tokio::test]
async fn wrong_count_is_a_bad_response() {
    let (stub, embedder) = openai_on_stub(16, |_| {}).await;
    stub.set_mode(Mode::DropOne);
    let err = embedder.embed(&texts(&["a", "b"])).await.unwrap_err();
    assert!(matches!(err, EmbedError::BadResponse(_)), "{err:?}");
}

#[tokio::test]
async fn wrong_size_is_a_bad_response() {
    // Declared 32 dimensions, server answers 16.
    let stub = StubServer::start(None, 16).await;
    let cfg = EmbeddingsConfig {
        dimensions: Some(32),
        ..compatible_cfg(stub.base_url(), "m")
    };
    let err = build_embedder(&cfg)
        .unwrap()
        .embed_one("a")
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::BadResponse(_)), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn unreachable_server_is_an_http_error() {
    tick_paused_clock();
    let cfg = EmbeddingsConfig {
        max_retries: 1,
        ..compatible_cfg(dead_base_url(), "all-minilm")
    };
    let err = build_embedder(&cfg)
        .unwrap()
        .embed_one("a")
        .await
        .unwrap_err();
    assert_http_error(&err, None);
}

#[tokio::test]
async fn cache_counts_hits_and_only_embeds_misses() {
    let (stub, embedder) = openai_on_stub(16, |_| {}).await;
    let cached = Arc::new(CachedEmbedder::new(embedder, 2));
    let as_dyn: Arc<dyn Embedder> = cached.clone();

    let first = as_dyn.embed_one("garden hose").await.unwrap();
    let again = as_dyn.embed_one("garden hose").await.unwrap();
    assert_eq!(first, again);
    assert_eq!((cached.hits(), cached.misses()), (1, 1));
    assert_eq!(stub.requests(), 1);

    let batch = as_dyn
        .embed(&texts(&["garden hose", "drill"]))
        .await
        .unwrap();
    assert_eq!(batch[0], first);
    assert_eq!(batch[1], stub_vector("drill", 16));
    assert_eq!((cached.hits(), cached.misses()), (2, 2));
    assert_eq!(
        stub.seen().last().unwrap().inputs,
        ["drill"],
        "only the miss is sent"
    );

    // Capacity 2: a third text evicts the least recently used ("garden hose").
    as_dyn.embed_one("sink").await.unwrap();
    as_dyn.embed_one("garden hose").await.unwrap();
    assert_eq!((cached.hits(), cached.misses()), (2, 4));
    assert_eq!(cached.len(), 2);
    assert_eq!(as_dyn.model(), "text-embedding-3-small");
}

#[test]
fn debug_output_redacts_the_key() {
    let cfg = EmbeddingsConfig {
        provider: Provider::OpenAi,
        api_key: Some(KEY.into()),
        base_url: Some("http://127.0.0.1:9/v1".into()),
        ..Default::default()
    };
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains(KEY) && shown.contains("REDACTED"),
        "{shown}"
    );
    let embedder = pg_mcp::search::OpenAiEmbedder::new(&cfg).unwrap();
    assert!(!format!("{embedder:?}").contains(KEY));
}

#[test]
fn provider_names_parse() {
    for (s, p) in [
        ("local", Provider::Local),
        ("OpenAI", Provider::OpenAi),
        ("openai_compatible", Provider::Compatible),
        ("azure", Provider::Azure),
        ("disabled", Provider::Disabled),
    ] {
        assert_eq!(clap::ValueEnum::from_str(s, true), Ok(p));
    }
    assert!(<Provider as clap::ValueEnum>::from_str("gpt", true).is_err());
    let disabled = EmbeddingsConfig {
        provider: Provider::Disabled,
        ..Default::default()
    };
    assert!(matches!(
        build_embedder(&disabled),
        Err(EmbedError::NotConfigured(_))
    ));
}

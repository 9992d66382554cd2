//! A BERT sentence model (all-MiniLM-L6-v2 by default) run on the CPU with candle.
//!
//! Matches sentence-transformers: inputs truncated to 256 tokens, mean pooling
//! over the attention mask, then L2 normalisation.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config as BertConfig};
use futures::future::BoxFuture;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::config::EmbeddingsConfig;
use super::embedder::{EmbedError, Embedder, check_vectors};

/// Model id stored with local embeddings by default.
pub const DEFAULT_LOCAL_MODEL: &str = "all-MiniLM-L6-v2";

/// sentence-transformers' `max_seq_length` for all-MiniLM-L6-v2 (special tokens included).
const MAX_TOKENS: usize = 256;

/// Larger batches only add padding and attention memory (rows × 12 × 256² floats).
const MAX_BATCH: usize = 32;

/// Files the model directory must hold (what `scripts/fetch-model.sh` installs).
const MODEL_FILES: [&str; 3] = ["model.safetensors", "tokenizer.json", "config.json"];

/// Local CPU embedder. Cheap to share; each call runs on tokio's blocking pool.
pub struct LocalEmbedder {
    inner: Arc<Inner>,
    model_id: String,
}

struct Inner {
    model: BertModel,
    tokenizer: Tokenizer,
    dims: usize,
    batch_size: usize,
}

impl std::fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &self.model_id)
            .field("dimensions", &self.inner.dims)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads from `cfg.local_model_dir`; checks `cfg.dimensions` if set.
    pub fn load(cfg: &EmbeddingsConfig) -> Result<Self, EmbedError> {
        let model_id = cfg.model.as_deref().unwrap_or(DEFAULT_LOCAL_MODEL);
        let embedder = Self::from_dir(&cfg.local_model_dir, model_id, cfg.batch_size)?;
        if let Some(d) = cfg.dimensions
            && d != embedder.inner.dims
        {
            return Err(EmbedError::NotConfigured(format!(
                "dimensions is {d} but the local model produces {}",
                embedder.inner.dims
            )));
        }
        Ok(embedder)
    }

    /// Loads `model.safetensors`, `tokenizer.json` and `config.json` from `dir`.
    pub fn from_dir(dir: &Path, model_id: &str, batch_size: usize) -> Result<Self, EmbedError> {
        if let Some(missing) = MODEL_FILES.iter().find(|f| !dir.join(f).is_file()) {
            return Err(EmbedError::NotConfigured(format!(
                "local model file {missing} not found in {} (run scripts/fetch-model.sh)",
                dir.display()
            )));
        }
        let config_text = std::fs::read_to_string(dir.join("config.json"))
            .map_err(|e| EmbedError::Model(format!("reading config.json: {e}")))?;
        let config: BertConfig = serde_json::from_str(&config_text)
            .map_err(|e| EmbedError::Model(format!("parsing config.json: {e}")))?;

        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Model(format!("loading tokenizer.json: {e}")))?;
        // The shipped tokenizer.json pads to a fixed 128 and truncates at 128;
        // sentence-transformers overrides both, so do we: we pad per batch ourselves.
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS.min(config.max_position_embeddings),
                ..Default::default()
            }))
            .map_err(|e| EmbedError::Model(format!("configuring truncation: {e}")))?;

        // Read into memory rather than mmap: mmap is unsafe if the file changes underneath.
        let weights = std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| EmbedError::Model(format!("reading model.safetensors: {e}")))?;
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| EmbedError::Model(format!("parsing model.safetensors: {e}")))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| EmbedError::Model(format!("building BERT model: {e}")))?;

        Ok(Self {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                dims: config.hidden_size,
                batch_size: batch_size.clamp(1, MAX_BATCH),
            }),
            model_id: model_id.to_owned(),
        })
    }

    /// Embeds on the calling thread. For CLIs and benchmarks; async code
    /// should use [`Embedder::embed`], which keeps the runtime responsive.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.inner.run(texts)
    }
}

impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.model_id
    }

    fn dimensions(&self) -> usize {
        self.inner.dims
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let inner = Arc::clone(&self.inner);
            let texts = texts.to_vec();
            match tokio::runtime::Handle::try_current() {
                Ok(handle) => handle
                    .spawn_blocking(move || inner.run(&texts))
                    .await
                    .map_err(|e| EmbedError::Model(format!("embedding task failed: {e}")))?,
                // Outside tokio (e.g. futures::executor): run inline, still never panic.
                Err(_) => {
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.run(&texts)))
                        .map_err(|_| EmbedError::Model("embedding panicked".into()))?
                }
            }
        })
    }
}

impl Inner {
    fn run(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch_fast(inputs, true)
            .map_err(|e| EmbedError::Model(format!("tokenizing: {e}")))?;

        // Batch texts of similar length together so short ones are not padded to long ones.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());

        let mut out = vec![Vec::new(); encodings.len()];
        for chunk in order.chunks(self.batch_size) {
            let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
            let vectors = self
                .forward(&batch)
                .map_err(|e| EmbedError::Model(format!("running model: {e}")))?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        check_vectors(&out, texts.len(), self.dims)?;
        Ok(out)
    }

    /// One padded forward pass, mean pooling and L2 normalisation.
    fn forward(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let rows = batch.len();
        let seq = batch
            .iter()
            .map(|e| e.get_ids().len())
            .max()
            .unwrap_or(0)
            .clamp(1, MAX_TOKENS);
        let mut ids = vec![0u32; rows * seq];
        let mut type_ids = vec![0u32; rows * seq];
        let mut mask = vec![0u32; rows * seq];
        for (r, enc) in batch.iter().enumerate() {
            let n = enc.get_ids().len().min(seq);
            let row = r * seq..r * seq + n;
            ids[row.clone()].copy_from_slice(&enc.get_ids()[..n]);
            type_ids[row.clone()].copy_from_slice(&enc.get_type_ids()[..n]);
            mask[row].fill(1);
        }
        let device = &self.model.device;
        let ids = Tensor::from_vec(ids, (rows, seq), device)?;
        let type_ids = Tensor::from_vec(type_ids, (rows, seq), device)?;
        let mask = Tensor::from_vec(mask, (rows, seq), device)?;

        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?; // (rows, seq, dims)
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?; // (rows, seq, 1)
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, dims)
        let counts = mask.sum(1)?.clamp(1e-9f32, f32::MAX)?; // (rows, 1)
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12f32, f32::MAX)?;
        mean.broadcast_div(&norms)?.to_vec2::<f32>()
    }
}

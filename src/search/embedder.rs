//! The [`Embedder`] trait and its error type.

use futures::future::BoxFuture;

/// Turns texts into fixed-size vectors.
///
/// Object safe so the server can hold any provider as `Arc<dyn Embedder>`.
pub trait Embedder: Send + Sync {
    /// Model id stored next to each embedding, so vectors from different
    /// models are never compared.
    fn model(&self) -> &str;

    /// Length of every vector this embedder returns.
    fn dimensions(&self) -> usize;

    /// Embeds `texts`, returning one vector per text in the same order.
    /// An empty slice gives an empty result without any work.
    fn embed<'a>(&'a self, texts: &'a [String])
    -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>>;

    /// Embeds a single text (a search query, usually).
    fn embed_one<'a>(&'a self, text: &'a str) -> BoxFuture<'a, Result<Vec<f32>, EmbedError>> {
        Box::pin(async move {
            let texts = [text.to_owned()];
            self.embed(&texts)
                .await?
                .pop()
                .ok_or_else(|| EmbedError::BadResponse("no embedding returned".into()))
        })
    }
}

/// Why embedding failed. Messages never contain API keys.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EmbedError {
    /// Configuration is missing or invalid (or embeddings are disabled).
    #[error("embeddings not configured: {0}")]
    NotConfigured(String),
    /// The provider answered with an error status, or the request failed in transit.
    #[error("embedding request failed{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Http {
        status: Option<u16>,
        message: String,
    },
    /// The provider did not answer within the configured timeout.
    #[error("embedding request timed out")]
    Timeout,
    /// The provider answered, but not with what was asked for.
    #[error("unexpected embedding response: {0}")]
    BadResponse(String),
    /// The local model failed to load or run.
    #[error("local embedding model error: {0}")]
    Model(String),
}

/// Checks that `vectors` holds `expected` vectors of `dims` finite floats.
pub(crate) fn check_vectors(
    vectors: &[Vec<f32>],
    expected: usize,
    dims: usize,
) -> Result<(), EmbedError> {
    if vectors.len() != expected {
        return Err(EmbedError::BadResponse(format!(
            "expected {expected} embeddings, got {}",
            vectors.len()
        )));
    }
    for v in vectors {
        if v.len() != dims {
            return Err(EmbedError::BadResponse(format!(
                "expected {dims} dimensions, got {}",
                v.len()
            )));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return Err(EmbedError::BadResponse(
                "embedding holds NaN or infinity".into(),
            ));
        }
    }
    Ok(())
}

/// Lets `Arc<dyn Embedder>` sit in structs that derive `Debug`; shows no secrets.
impl std::fmt::Debug for dyn Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("model", &self.model())
            .field("dimensions", &self.dimensions())
            .finish()
    }
}

//! An LRU cache of embeddings in front of any [`Embedder`].
//!
//! Search queries repeat (the same words typed again, an agent retrying), and
//! a remote embedding costs a round trip and money; a hit costs a lock.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use lru::LruCache;

use super::embedder::{EmbedError, Embedder};

/// Texts longer than this are embedded but not cached: keeps memory bounded
/// (capacity × this) and bulk documents out of a cache meant for queries.
const MAX_CACHED_TEXT_BYTES: usize = 4096;

type Key = (String, String); // (model, text)

/// Wraps an embedder with an LRU of vectors keyed by (model, text).
pub struct CachedEmbedder {
    inner: Arc<dyn Embedder>,
    /// `None` when capacity is 0: caching off, counters still count misses.
    cache: Option<Mutex<LruCache<Key, Arc<[f32]>>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for CachedEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedEmbedder")
            .field("model", &self.inner.model())
            .field("len", &self.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}

impl CachedEmbedder {
    /// `capacity` is the number of vectors kept; 0 disables caching.
    pub fn new(inner: Arc<dyn Embedder>, capacity: usize) -> Self {
        Self {
            inner,
            cache: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The wrapped embedder, for bulk work that should not churn the cache.
    pub fn inner(&self) -> &Arc<dyn Embedder> {
        &self.inner
    }

    /// Texts answered from the cache since creation.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Texts that had to be embedded since creation.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Vectors currently cached.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| lock(c).len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn key(&self, text: &str) -> Key {
        (self.inner.model().to_owned(), text.to_owned())
    }
}

/// A poisoned lock only means another thread panicked mid-update of an LRU
/// of immutable values; the data is still usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Embedder for CachedEmbedder {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> BoxFuture<'a, Result<Vec<Vec<f32>>, EmbedError>> {
        Box::pin(async move {
            let Some(cache) = &self.cache else {
                self.misses.fetch_add(texts.len() as u64, Ordering::Relaxed);
                return self.inner.embed(texts).await;
            };

            let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
            let mut missing: Vec<usize> = Vec::new();
            {
                let mut lru = lock(cache);
                for (i, text) in texts.iter().enumerate() {
                    let hit = (text.len() <= MAX_CACHED_TEXT_BYTES)
                        .then(|| lru.get(&self.key(text)).cloned())
                        .flatten();
                    match hit {
                        Some(v) => out[i] = Some(v.to_vec()),
                        None => missing.push(i),
                    }
                }
            }
            self.hits
                .fetch_add((texts.len() - missing.len()) as u64, Ordering::Relaxed);
            self.misses
                .fetch_add(missing.len() as u64, Ordering::Relaxed);

            if !missing.is_empty() {
                let to_embed: Vec<String> = missing.iter().map(|&i| texts[i].clone()).collect();
                let vectors = self.inner.embed(&to_embed).await?;
                if vectors.len() != missing.len() {
                    return Err(EmbedError::BadResponse(format!(
                        "expected {} embeddings, got {}",
                        missing.len(),
                        vectors.len()
                    )));
                }
                let mut lru = lock(cache);
                for (&i, v) in missing.iter().zip(vectors) {
                    if texts[i].len() <= MAX_CACHED_TEXT_BYTES {
                        lru.put(self.key(&texts[i]), Arc::from(v.as_slice()));
                    }
                    out[i] = Some(v);
                }
            }
            Ok(out.into_iter().flatten().collect())
        })
    }
}

//! A bounded, thread-safe cache of compiled models.
//!
//! Compiling (parse + optimize) costs milliseconds to seconds, scoring a batch
//! microseconds, so queries must not compile per call. The engine keys entries
//! by something that changes whenever the model bytes do (for example
//! `"db.schema.model@version#hash"`), so there is no invalidation-by-content
//! problem: a new version simply gets a new key, and the old one ages out.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::error::ModelError;
use crate::model::CompiledModel;

/// LRU cache from caller-chosen keys to compiled models, bounded by count.
///
/// Compilation happens outside the lock, so a slow compile never blocks
/// lookups of other models; two threads missing on the same key at once may
/// both compile it, and the first result inserted wins.
pub struct ModelCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    tick: u64,
    entries: HashMap<String, (Arc<CompiledModel>, u64)>,
}

impl std::fmt::Debug for ModelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelCache")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl ModelCache {
    /// A cache holding at most `capacity` models (at least one).
    pub fn new(capacity: usize) -> ModelCache {
        ModelCache {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The cached model for `key`, marking it recently used.
    pub fn get(&self, key: &str) -> Option<Arc<CompiledModel>> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        inner.entries.get_mut(key).map(|(m, t)| {
            *t = tick;
            m.clone()
        })
    }

    /// The cached model for `key`, compiling `bytes()` on a miss.
    ///
    /// `bytes` is only called on a miss, so callers can defer reading the
    /// model file. Compilation errors are returned and nothing is cached.
    pub fn get_or_compile<B: AsRef<[u8]>>(
        &self,
        key: &str,
        bytes: impl FnOnce() -> Result<B, ModelError>,
    ) -> Result<Arc<CompiledModel>, ModelError> {
        if let Some(m) = self.get(key) {
            return Ok(m);
        }
        let model = Arc::new(CompiledModel::compile(bytes()?.as_ref())?);
        Ok(self.insert(key, model))
    }

    /// Insert a compiled model, returning the one now cached under `key`
    /// (an entry inserted concurrently is kept in preference to `model`).
    pub fn insert(&self, key: &str, model: Arc<CompiledModel>) -> Arc<CompiledModel> {
        let mut inner = self.inner.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some((m, t)) = inner.entries.get_mut(key) {
            *t = tick;
            return m.clone();
        }
        while inner.entries.len() >= self.capacity {
            let oldest = inner
                .entries
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    inner.entries.remove(&k);
                }
                None => break,
            }
        }
        inner.entries.insert(key.to_string(), (model.clone(), tick));
        model
    }

    /// Drop one entry (e.g. after `DROP MODEL`). Returns whether it existed.
    pub fn remove(&self, key: &str) -> bool {
        self.inner.lock().entries.remove(key).is_some()
    }

    /// Drop every entry whose key starts with `prefix` (e.g. all versions of
    /// a model, `"db.schema.model@"`).
    pub fn remove_prefix(&self, prefix: &str) {
        self.inner
            .lock()
            .entries
            .retain(|k, _| !k.starts_with(prefix));
    }

    /// Number of cached models.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of cached models.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

impl Default for ModelCache {
    /// A cache of 64 models.
    fn default() -> Self {
        ModelCache::new(64)
    }
}

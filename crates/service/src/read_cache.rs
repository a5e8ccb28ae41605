//! Answers to registry reads kept while the registry's generation has not moved.
//!
//! Lists and pages of bentos and models are read far more often than the registry changes (the
//! dashboard and clients poll them), and an answer costs several queries and a JSON encoding.
//! An answer is kept with the generation read *before* its queries
//! ([`yatai_store::db::generation`]), and served again only while the generation is still that
//! one: every committed write moves it in the same transaction, whichever process wrote, so a
//! kept answer is never older than the data a fresh one would show. Checking costs no query for
//! a request with an API token (its lookup reads the generation too) and one query of one row
//! for a browser session.
//!
//! Who may read is checked before the cache is looked at: the key holds the organization, and
//! a kept answer is only what any reader of that organization's registry may see.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use yatai_domain::{Action, Error};
use yatai_store::db::generation;

use crate::{Caller, Services};

/// An answer larger than this share of the cache is not kept (a page of 20 versions is about
/// 30 KiB).
const MAX_SHARE: usize = 8;
/// A request longer than this (path and query) is answered, not kept: its key would cost more
/// than its answer saves.
const MAX_KEY: usize = 2048;
/// What an entry costs beyond its key and answer (map slot, string and buffer headers), so that
/// many tiny answers cannot grow the map past its budget.
const ENTRY_OVERHEAD: usize = 128;

/// What keeping `answer` under `key` counts against the budget.
fn cost(key: &str, answer: &Bytes) -> usize {
    key.len() + answer.len() + ENTRY_OVERHEAD
}

/// Whether an answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    /// The cache is turned off.
    Off,
}

impl Lookup {
    /// `hit`, `miss` or `off` (the value of the response header and the metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Lookup::Hit => "hit",
            Lookup::Miss => "miss",
            Lookup::Off => "off",
        }
    }
}

#[derive(Default)]
struct Kept {
    /// The generation every kept answer was read at.
    generation: i64,
    answers: HashMap<String, Bytes>,
    bytes: usize,
}

/// The process's kept answers (one per `Services`).
pub struct ReadCache {
    /// At most this many bytes of answers are kept; 0: none.
    capacity: usize,
    kept: Mutex<Kept>,
}

impl ReadCache {
    /// A cache of at most `capacity` bytes of answers (0: every read is fresh).
    pub fn new(capacity: usize) -> Self {
        ReadCache {
            capacity,
            kept: Mutex::default(),
        }
    }

    /// The answer to a read of the caller's organization's registry that `key` names (the
    /// adapter's request: path, query, and whatever else shapes the answer), from the cache when
    /// nothing changed since it was kept, else from `compute`, then kept.
    pub async fn answer<F, Fut>(
        svc: &Services,
        caller: &Caller,
        key: &str,
        compute: F,
    ) -> Result<(Bytes, Lookup), Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, Error>>,
    {
        caller.authorize(Action::ReadRegistry)?;
        let cache = &svc.read_cache;
        if cache.capacity == 0 {
            return Ok((compute().await?, Lookup::Off));
        }
        let key = format!("{}\n{key}", caller.organization.uid);
        // Read with the caller's token when it came with one (one query less per request).
        let at = match caller.identity.registry_generation {
            Some(at) => Some(at),
            None => generation::current(svc.db.pool()).await?,
        };
        let Some(at) = at.filter(|_| key.len() <= MAX_KEY) else {
            // No generation to keep it by, or a key too long to be worth keeping.
            return Ok((compute().await?, Lookup::Miss));
        };
        if let Some(hit) = cache.get(at, &key) {
            return Ok((hit, Lookup::Hit));
        }
        let answer = compute().await?;
        cache.put(at, key, answer.clone());
        Ok((answer, Lookup::Miss))
    }

    fn get(&self, at: i64, key: &str) -> Option<Bytes> {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        if at != kept.generation {
            // The registry changed since the answers were kept. A generation never comes back
            // with other data behind it (see `generation`), but one lower than the kept one
            // (a reader racing a write, or a database that went back) clears them too.
            *kept = Kept {
                generation: at,
                ..Kept::default()
            };
            return None;
        }
        kept.answers.get(key).cloned()
    }

    fn put(&self, at: i64, key: String, answer: Bytes) {
        let size = cost(&key, &answer);
        if size > self.capacity / MAX_SHARE {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Kept only with the generation it was read at, the one every other kept answer has.
        if at != kept.generation {
            return;
        }
        if let Some(old) = kept.answers.remove(&key) {
            kept.bytes -= cost(&key, &old);
        }
        if kept.bytes + size > self.capacity {
            // Full: start over (a poll refills what is read often within one request each).
            kept.answers.clear();
            kept.bytes = 0;
        }
        kept.bytes += size;
        kept.answers.insert(key, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_counts_keys_and_answers_and_stays_bounded() {
        let cache = ReadCache::new(64 << 10);
        cache.get(1, "k");
        for i in 0..10_000 {
            // Small answers under long keys: the keys are what fills it.
            cache.put(
                1,
                format!("{i}{}", "x".repeat(1000)),
                Bytes::from_static(b"{}"),
            );
            let kept = cache.kept.lock().unwrap();
            assert!(kept.bytes <= 64 << 10, "{} bytes kept", kept.bytes);
            let counted: usize = kept.answers.iter().map(|(k, v)| cost(k, v)).sum();
            assert_eq!(counted, kept.bytes);
        }
        // The same key again replaces, it does not add.
        cache.put(1, "a".into(), Bytes::from_static(b"[1]"));
        let before = cache.kept.lock().unwrap().bytes;
        cache.put(1, "a".into(), Bytes::from_static(b"[2]"));
        assert_eq!(cache.kept.lock().unwrap().bytes, before);
        assert_eq!(cache.get(1, "a").unwrap(), Bytes::from_static(b"[2]"));
    }

    #[test]
    fn another_generation_either_way_drops_what_was_kept() {
        let cache = ReadCache::new(1 << 20);
        cache.get(5, "k");
        cache.put(5, "k".into(), Bytes::from_static(b"five"));
        assert!(cache.get(5, "k").is_some());
        assert!(
            cache.get(4, "k").is_none(),
            "a lower generation is not served"
        );
        cache.put(5, "k".into(), Bytes::from_static(b"five"));
        assert!(cache.get(5, "k").is_none(), "nor kept after it was seen");
        cache.put(6, "k".into(), Bytes::from_static(b"six"));
        assert!(
            cache.get(6, "k").is_none(),
            "kept only at the generation it was read at"
        );
    }
}

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

/// Whether an answer came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    /// The cache is turned off.
    Off,
}

impl Lookup {
    /// `hit` or `miss`.
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
            Some(at) => at,
            None => generation::current(svc.db.pool()).await?,
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
        if at > kept.generation {
            // Everything kept is older than what the registry holds now.
            *kept = Kept {
                generation: at,
                ..Kept::default()
            };
            return None;
        }
        if at < kept.generation {
            // A write landed between this reader's look at the generation and a later
            // reader's: rare, so it simply reads afresh.
            return None;
        }
        kept.answers.get(key).cloned()
    }

    fn put(&self, at: i64, key: String, answer: Bytes) {
        if answer.len() > self.capacity / MAX_SHARE {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        // Kept only with the generation it was read at, the one every other kept answer has.
        if at != kept.generation {
            return;
        }
        if kept.bytes + answer.len() > self.capacity {
            // Full: start over (a poll refills what is read often within one request each).
            kept.answers.clear();
            kept.bytes = 0;
        }
        kept.bytes += answer.len();
        if let Some(old) = kept.answers.insert(key, answer) {
            kept.bytes -= old.len();
        }
    }
}

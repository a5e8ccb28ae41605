//! Secrets: password hashing (Argon2id, memory-hard, a bounded number at once) and random tokens
//! stored as SHA-256.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::Semaphore;
use yatai_domain::Error;

/// How long a password check may wait for a hashing slot before the caller is told to retry.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How many password checks may wait per hashing slot; beyond that callers are refused at once
/// (a waiting request costs almost nothing, but an endless queue only turns into timeouts).
const QUEUE_PER_SLOT: usize = 32;

/// The password hashing slots of this process. Each Argon2id hash holds about 19 MiB and a core
/// for tens of milliseconds, so running more hashes than there are cores only multiplies memory:
/// an unbounded pool took the server to gigabytes under a flood of failed logins.
struct HashSlots {
    permits: Arc<Semaphore>,
    slots: usize,
    waiting: AtomicUsize,
}

impl HashSlots {
    fn new(slots: usize) -> HashSlots {
        HashSlots {
            permits: Arc::new(Semaphore::new(slots)),
            slots,
            waiting: AtomicUsize::new(0),
        }
    }
}

fn slots() -> &'static HashSlots {
    static SLOTS: OnceLock<HashSlots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        return_large_allocations_to_the_system();
        HashSlots::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    })
}

/// glibc serves a freed large block's size from the heap afterwards (its mmap threshold grows to
/// it), and keeps that heap memory after the burst: the 19 MiB Argon2 blocks then stay resident
/// for good. A fixed threshold keeps every block of 1 MiB or more in its own mapping, returned to
/// the system the moment it is freed.
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; it is called once, before the first hash.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn busy() -> Error {
    Error::TooManyRequests {
        message: "the server is busy checking passwords; try again in a moment".into(),
        retry_after_secs: 2,
    }
}

/// Runs a password hash or check on a blocking thread once a hashing slot is free; refuses with
/// 429 when too many wait already or none frees up in time.
async fn run_in_slot<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    run_in(slots(), work).await
}

async fn run_in<T: Send + 'static>(
    s: &HashSlots,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    if s.waiting.fetch_add(1, Ordering::SeqCst) >= s.slots * QUEUE_PER_SLOT {
        s.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(busy());
    }
    let permit = tokio::time::timeout(MAX_WAIT, s.permits.clone().acquire_owned()).await;
    s.waiting.fetch_sub(1, Ordering::SeqCst);
    let permit = permit
        .map_err(|_| busy())?
        .map_err(|_| Error::Internal("the password hashing slots are closed".into()))?;
    tokio::task::spawn_blocking(move || {
        let out = work();
        drop(permit);
        out
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// Hashes a password with Argon2id (PHC string), in a bounded hashing slot.
pub async fn hash_password(password: String) -> Result<String, Error> {
    run_in_slot(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await?
}

/// Checks a password against a stored hash: Argon2id, or bcrypt for users imported from Yatai
/// 1.x (see [`is_legacy_hash`]). `None` burns the same time as a real check so that a missing
/// user cannot be told apart by timing. Fails only when the server is too busy to check.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, Error> {
    run_in_slot(move || {
        let stored = stored.unwrap_or_else(|| DUMMY_HASH.to_string());
        if is_legacy_hash(&stored) {
            return bcrypt::verify(password.as_bytes(), &stored).unwrap_or(false);
        }
        let Ok(parsed) = PasswordHash::new(&stored) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
            && stored != DUMMY_HASH
    })
    .await
}

/// Whether a stored hash is Yatai 1.x's bcrypt, to be replaced by Argon2id at the next login.
pub fn is_legacy_hash(stored: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|p| stored.starts_with(p))
}

/// A valid Argon2id hash of a random password, verified against when the user does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$J8v9mSrbDiVNqOJmP6BI2YdZ1cQZ1nnBf4gQlV5u6Zc";

/// Makes a new random secret: `prefix` followed by 40 hex digits (160 bits).
pub fn new_secret(prefix: &str) -> String {
    let mut bytes = [0u8; 20];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", hex::encode(bytes))
}

/// The stored form of a high-entropy secret (API token, session): its SHA-256 in hex.
pub fn secret_hash(secret: &str) -> String {
    yatai_store::db::secret_hash(secret)
}

/// Compares two secrets in time independent of where they differ.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    let (a, b) = (secret_hash(a), secret_hash(b));
    a.bytes()
        .zip(b.bytes())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_verify_only_against_their_hash() {
        let h = hash_password("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse".into(), Some(h.clone()))
            .await
            .unwrap());
        assert!(!verify_password("wrong horse".into(), Some(h))
            .await
            .unwrap());
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn yatai_1_bcrypt_hashes_verify() {
        let legacy = bcrypt::hash("old password", 4).unwrap();
        assert!(is_legacy_hash(&legacy));
        assert!(verify_password("old password".into(), Some(legacy.clone()))
            .await
            .unwrap());
        assert!(!verify_password("other".into(), Some(legacy)).await.unwrap());
        assert!(!is_legacy_hash(
            &hash_password("x".repeat(8)).await.unwrap()
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn no_more_hashes_run_at_once_than_there_are_slots_and_an_overflow_is_refused() {
        // Slots of its own: the process-wide ones serve the other tests meanwhile.
        let own: &'static HashSlots = Box::leak(Box::new(HashSlots::new(2)));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let n = own.slots * (QUEUE_PER_SLOT + 4);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (running, most) = (running.clone(), most.clone());
                tokio::spawn(run_in(own, move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    running.fetch_sub(1, Ordering::SeqCst);
                }))
            })
            .collect();
        let mut refused = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => {}
                Err(Error::TooManyRequests {
                    retry_after_secs, ..
                }) => {
                    assert!(retry_after_secs > 0);
                    refused += 1;
                }
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert!(
            most.load(Ordering::SeqCst) <= own.slots,
            "at most one hash per slot"
        );
        assert!(
            refused > 0,
            "callers beyond the queue are refused, not queued forever"
        );
        assert!(refused < n, "queued callers are served");
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let a = new_secret("yt_");
        assert!(a.starts_with("yt_") && a.len() == 43);
        assert_ne!(a, new_secret("yt_"));
        assert_eq!(secret_hash(&a).len(), 64);
        assert!(secrets_equal(&a, &a.clone()));
        assert!(!secrets_equal(&a, "yt_other"));
    }
}

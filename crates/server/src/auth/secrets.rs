//! Secrets: password hashing (Argon2id, memory-hard) and random tokens stored as SHA-256.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use yatai_domain::Error;

/// Hashes a password with Argon2id (PHC string). Runs on a blocking thread.
pub async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
    .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?
}

/// Checks a password against a stored hash: Argon2id, or bcrypt for users imported from Yatai
/// 1.x (see [`is_legacy_hash`]). `None` burns the same time as a real check so that a missing
/// user cannot be told apart by timing.
pub async fn verify_password(password: String, stored: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
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
    .unwrap_or(false)
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
    hex::encode(Sha256::digest(secret.as_bytes()))
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
        assert!(verify_password("correct horse".into(), Some(h.clone())).await);
        assert!(!verify_password("wrong horse".into(), Some(h)).await);
        assert!(!verify_password("anything".into(), None).await);
    }

    #[tokio::test]
    async fn yatai_1_bcrypt_hashes_verify() {
        let legacy = bcrypt::hash("old password", 4).unwrap();
        assert!(is_legacy_hash(&legacy));
        assert!(verify_password("old password".into(), Some(legacy.clone())).await);
        assert!(!verify_password("other".into(), Some(legacy)).await);
        assert!(!is_legacy_hash(
            &hash_password("x".repeat(8)).await.unwrap()
        ));
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

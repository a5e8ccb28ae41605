//! Throttling of failed logins, per account and per client address.
//!
//! Every password check costs a memory-hard hash, so guessing is slowed down where it is cheap to
//! refuse: before the hash. After a few free failures, each further failure of the same account
//! (or from the same address) doubles the wait before the next attempt is even checked, up to a
//! ceiling. A success clears the account's record. The records are per server process: with
//! several replicas an attacker gains at most a factor of the replica count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use yatai_domain::Error;

/// Failures an account may have before it must wait.
const ACCOUNT_FREE_FAILURES: u32 = 5;
/// Failures an address may have before it must wait (several users may share one address).
const ADDRESS_FREE_FAILURES: u32 = 20;
/// The longest wait imposed.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(900);
/// Records kept at most per table; older ones are dropped first when it is full.
const MAX_RECORDS: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last_failure: Instant,
    blocked_until: Instant,
}

/// The failure records of one server process.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    accounts: Mutex<HashMap<String, Record>>,
    addresses: Mutex<HashMap<IpAddr, Record>>,
}

fn wait_error(what: &str, until: Instant, now: Instant) -> Error {
    // Rounded up: a client that waits this long is let through.
    let secs = (until.saturating_duration_since(now).as_secs_f64().ceil() as u64).max(1);
    Error::TooManyRequests {
        message: format!("too many failed logins {what}; wait {secs} seconds before trying again"),
        retry_after_secs: secs,
    }
}

fn check<K: std::hash::Hash + Eq>(
    table: &Mutex<HashMap<K, Record>>,
    key: &K,
    now: Instant,
) -> Option<Instant> {
    let table = table.lock().unwrap_or_else(|e| e.into_inner());
    table
        .get(key)
        .map(|r| r.blocked_until)
        .filter(|until| *until > now)
}

fn record_failure<K: std::hash::Hash + Eq + Clone>(
    table: &Mutex<HashMap<K, Record>>,
    key: &K,
    free: u32,
    now: Instant,
) {
    let mut table = table.lock().unwrap_or_else(|e| e.into_inner());
    if table.len() >= MAX_RECORDS && !table.contains_key(key) {
        table.retain(|_, r| now.duration_since(r.last_failure) < FORGET_AFTER);
        if table.len() >= MAX_RECORDS {
            if let Some(oldest) = table
                .iter()
                .min_by_key(|(_, r)| r.last_failure)
                .map(|(k, _)| k.clone())
            {
                table.remove(&oldest);
            }
        }
    }
    let r = table.entry(key.clone()).or_insert(Record {
        failures: 0,
        last_failure: now,
        blocked_until: now,
    });
    if now.duration_since(r.last_failure) >= FORGET_AFTER {
        r.failures = 0;
    }
    r.failures += 1;
    r.last_failure = now;
    if r.failures > free {
        let doublings = (r.failures - free - 1).min(16);
        let wait = Duration::from_secs(1u64 << doublings).min(MAX_WAIT);
        r.blocked_until = now + wait;
    }
}

impl LoginThrottle {
    /// Refuses an attempt while the account or the address must wait.
    pub fn check(&self, account: &str, address: Option<IpAddr>) -> Result<(), Error> {
        let now = Instant::now();
        if let Some(until) = check(&self.accounts, &account.to_lowercase(), now) {
            return Err(wait_error("for this account", until, now));
        }
        if let Some(until) = address.and_then(|a| check(&self.addresses, &a, now)) {
            return Err(wait_error("from your address", until, now));
        }
        Ok(())
    }

    /// Counts a failed attempt against the account and the address.
    pub fn failed(&self, account: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        record_failure(
            &self.accounts,
            &account.to_lowercase(),
            ACCOUNT_FREE_FAILURES,
            now,
        );
        if let Some(a) = address {
            record_failure(&self.addresses, &a, ADDRESS_FREE_FAILURES, now);
        }
    }

    /// Clears the account's failures after a successful login.
    pub fn succeeded(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&account.to_lowercase());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_waits_after_its_free_failures_and_is_cleared_by_a_success() {
        let t = LoginThrottle::default();
        for _ in 0..ACCOUNT_FREE_FAILURES {
            assert!(t.check("Admin", None).is_ok());
            t.failed("admin", None);
        }
        assert!(
            t.check("admin", None).is_ok(),
            "the free failures cost nothing"
        );
        t.failed("admin", None);
        match t.check("ADMIN", None) {
            Err(Error::TooManyRequests {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 1),
            other => panic!("expected a wait, got {other:?}"),
        }
        assert!(
            t.check("someone-else", None).is_ok(),
            "other accounts are not affected"
        );
        t.succeeded("admin");
        assert!(t.check("admin", None).is_ok());
    }

    #[test]
    fn waits_double_up_to_the_ceiling() {
        let t = LoginThrottle::default();
        for _ in 0..ACCOUNT_FREE_FAILURES + 40 {
            t.failed("a", None);
        }
        match t.check("a", None) {
            Err(Error::TooManyRequests {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, MAX_WAIT.as_secs()),
            other => panic!("expected the longest wait, got {other:?}"),
        }
    }

    #[test]
    fn an_address_trying_many_accounts_waits() {
        let t = LoginThrottle::default();
        let addr: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..=ADDRESS_FREE_FAILURES {
            t.failed(&format!("user{i}"), Some(addr));
        }
        assert!(t.check("fresh-account", Some(addr)).is_err());
        assert!(t
            .check("fresh-account", Some("192.0.2.8".parse().unwrap()))
            .is_ok());
    }
}

//! Sign-in attempts: failures are counted per account and per client address over a sliding
//! window; past the limit the next attempt answers 429 with `Retry-After` without checking the
//! password. A success clears the account's count. Kept in this process (each replica counts
//! its own attempts).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures per key.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    per_account: u32,
    per_client: u32,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl Limiter {
    /// A limiter over `window`.
    pub fn new(window: Duration, per_account: u32, per_client: u32) -> Limiter {
        Limiter {
            window,
            per_account,
            per_client,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn keys(account: &str, client: &str) -> [(String, bool); 2] {
        [
            (format!("a:{}", account.to_lowercase()), true),
            (format!("c:{client}"), false),
        ]
    }

    /// `Some(wait)` when an attempt for `account` from `client` must be refused now.
    pub fn check(&self, account: &str, client: &str) -> Option<Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let mut wait = None;
        for (key, is_account) in Self::keys(account, client) {
            let limit = if is_account {
                self.per_account
            } else {
                self.per_client
            };
            if let Some(q) = map.get_mut(&key) {
                while q
                    .front()
                    .is_some_and(|t| now.duration_since(*t) > self.window)
                {
                    q.pop_front();
                }
                if q.len() >= limit as usize
                    && let Some(first) = q.front()
                {
                    let w = self.window.saturating_sub(now.duration_since(*first));
                    wait = Some(wait.map_or(w, |x: Duration| x.max(w)));
                }
            }
        }
        wait
    }

    /// Counts a failed attempt.
    pub fn failed(&self, account: &str, client: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            map.clear(); // bounded memory under a flood of distinct keys
        }
        for (key, _) in Self::keys(account, client) {
            map.entry(key).or_default().push_back(Instant::now());
        }
    }

    /// A successful sign-in clears the account's failures.
    pub fn succeeded(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&format!("a:{}", account.to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accounts_and_clients_are_limited() {
        let l = Limiter::new(Duration::from_secs(60), 3, 5);
        for _ in 0..3 {
            assert!(l.check("a@x", "1.1.1.1").is_none());
            l.failed("a@x", "1.1.1.1");
        }
        let w = l.check("A@X", "2.2.2.2").expect("the account is limited");
        assert!(w <= Duration::from_secs(60) && w > Duration::from_secs(50));
        l.succeeded("a@x");
        assert!(l.check("a@x", "2.2.2.2").is_none());
        // the first client made 3 failures; two more on other accounts reach its limit
        l.failed("b@x", "1.1.1.1");
        l.failed("c@x", "1.1.1.1");
        assert!(l.check("d@x", "1.1.1.1").is_some(), "the client is limited");
        assert!(l.check("d@x", "3.3.3.3").is_none());
    }
}

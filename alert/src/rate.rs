//! Channel rate limits (`min_interval`; Slack at most one message a second): who may send
//! next. [`LocalGate`] keeps the slots in this process; in cluster mode the collector gives
//! the dispatcher a gate shared by every replica (a JetStream key-value bucket), so a limit
//! holds across replicas.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;

/// Decides when a rate-limited channel may send next.
pub trait RateGate: Send + Sync {
    /// Takes the channel's next send slot at `now_us` when it is free (the channel may then
    /// send, and the next slot opens at `now_us + gap_us`): `Ok(None)`; or says when the
    /// current slot ends: `Ok(Some(at_us))`. `Err` when the shared state cannot be reached.
    fn reserve<'a>(
        &'a self,
        channel: &'a str,
        gap_us: i64,
        now_us: i64,
    ) -> BoxFuture<'a, Result<Option<i64>, String>>;
}

/// Slots kept in this process.
#[derive(Debug, Default)]
pub struct LocalGate {
    next: Mutex<HashMap<String, i64>>,
}

impl LocalGate {
    /// The decision, synchronously.
    pub fn take(&self, channel: &str, gap_us: i64, now_us: i64) -> Option<i64> {
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = next.get(channel).filter(|at| **at > now_us) {
            return Some(*at);
        }
        next.insert(channel.to_owned(), now_us.saturating_add(gap_us));
        None
    }
}

impl RateGate for LocalGate {
    fn reserve<'a>(
        &'a self,
        channel: &'a str,
        gap_us: i64,
        now_us: i64,
    ) -> BoxFuture<'a, Result<Option<i64>, String>> {
        let r = self.take(channel, gap_us, now_us);
        Box::pin(async move { Ok(r) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_send_per_gap() {
        let g = LocalGate::default();
        assert_eq!(g.take("slack", 1_000, 0), None);
        assert_eq!(g.take("slack", 1_000, 500), Some(1_000));
        assert_eq!(g.take("other", 1_000, 500), None);
        assert_eq!(g.take("slack", 1_000, 1_000), None);
        assert_eq!(g.take("slack", 1_000, 1_999), Some(2_000));
    }
}

//! [`Clock`]: where the server's "now" comes from. Production code uses [`SystemClock`];
//! tests drive a [`ManualClock`] instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of the current time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, Unix microseconds.
    fn now_us(&self) -> i64;
}

/// A clock shared between tasks.
pub type SharedClock = Arc<dyn Clock>;

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl SystemClock {
    /// The system clock, shared.
    pub fn shared() -> SharedClock {
        Arc::new(SystemClock)
    }
}

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A manual clock at `now_us`.
    pub fn new(now_us: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock(AtomicI64::new(now_us)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let us = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
        self.0.fetch_add(us, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now_us: i64) {
        self.0.store(now_us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Now, Unix µs, from the system clock (for code that has no [`Clock`] of its own: CLI
/// commands, one-off jobs).
pub fn now_us() -> i64 {
    SystemClock.now_us()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_when_told() {
        let c = ManualClock::new(1_000);
        c.advance(Duration::from_millis(2));
        assert_eq!(c.now_us(), 3_000);
        c.set(5);
        assert_eq!(c.now_us(), 5);
        assert!(SystemClock.now_us() > 1_700_000_000_000_000);
    }
}

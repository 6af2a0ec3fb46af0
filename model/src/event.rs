//! [`LiveEvent`]: what the live engine (and the API, for changes made by people) announces
//! on a broadcast channel it is given. The collector turns them into server-sent events and
//! `/metrics` gauges; the alert dispatcher wakes up on violation events. Receivers that lag
//! miss events; nothing depends on receiving every one (the database is the record).

use std::sync::Arc;

use crate::series::SeriesId;
use crate::violation::Violation;

/// A series with new points in a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The series.
    pub series: SeriesId,
    /// Its newest judged point, when a point was judged (not while learning).
    pub judged: Option<Judged>,
}

/// A series' newest judged value and the limits it was judged against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judged {
    /// The value.
    pub value: f64,
    /// Centre line of the baseline that judged it (original units).
    pub center: f64,
    /// Upper control limit (original units).
    pub ucl: f64,
    /// Lower control limit (original units).
    pub lcl: f64,
    /// Whether this is the first judged point of the series in this engine's memory (a
    /// receiver keeping per-series state sets it up then, and need not remember series it
    /// chose not to track).
    pub first: bool,
}

/// Something the dashboards, metrics or dispatcher may want to know at once.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// The engine evaluated a committed batch.
    Evaluated {
        /// Series with new points in the batch (judged or still learning).
        series: Arc<Vec<Evaluated>>,
        /// Series the engine holds in memory.
        tracked: usize,
    },
    /// A violation opened (this process won the insert).
    ViolationOpened(Arc<Violation>),
    /// A violation resolved (quiet for long enough, or by hand).
    ViolationResolved {
        /// Its id.
        id: String,
        /// Its series.
        series: SeriesId,
        /// Its rule.
        rule: u8,
        /// Whether a notification is due (an incident ended).
        notifies: bool,
    },
    /// A violation was acknowledged.
    ViolationAcknowledged {
        /// Its id.
        id: String,
        /// Its series.
        series: SeriesId,
        /// Its rule.
        rule: u8,
    },
}

impl LiveEvent {
    /// Whether the event creates work for the alert dispatcher (an outbox row: an incident
    /// began or ended; chart markers write none).
    pub fn wakes_dispatcher(&self) -> bool {
        match self {
            LiveEvent::ViolationOpened(v) => v.leads(),
            LiveEvent::ViolationResolved { notifies, .. } => *notifies,
            _ => false,
        }
    }
}

//! Live SPC: committed samples → per-series rule state → violations with context → outbox.
//!
//! Guarantees:
//! - Every committed successful sample is evaluated once per metric it carries, in timestamp
//!   order per series; a point older than the newest evaluated one is stored, counted as late
//!   and not evaluated. Failed calls are counted per series, never evaluated.
//! - A series' first `baseline_points` points (pooled over hosts for the `site` and `global`
//!   scopes) estimate its Phase I baseline, which is stored with its window and method and
//!   then frozen; re-baselining stores a new row and keeps the history.
//! - Restart- and replica-safe: a series first seen by a process is warmed from the database:
//!   its last points up to the newest evaluated one (`series_counters.last_evaluated`) are
//!   replayed silently to rebuild rule and episode state, later ones (committed but not yet
//!   evaluated when a process died) are evaluated normally. Violation ids are derived from the
//!   unique key `(series, rule, opened_at)`, inserts are `ON CONFLICT DO NOTHING`, and only
//!   the insert that wins writes the outbox row, in the same transaction.
//! - The site and global X̄ charts ([`buckets`]) run in one process at a time (a lease).

pub mod buckets;
pub mod engine;
pub mod metric;
pub mod rebaseline;
pub mod settings;

pub use engine::{Engine, EngineHandle};
pub use metric::Metric;

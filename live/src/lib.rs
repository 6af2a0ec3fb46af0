//! Live SPC: committed samples → per-series rule state → violations with context → outbox.
//!
//! **Owns** judging: the engine task ([`engine`]), each series' state and the rules on it
//! ([`state`]), Phase I learning ([`learn`]), warm-up from the database ([`warm`]), the
//! context stored with a violation ([`context`]), rule settings per model and site
//! ([`settings`]), SLO burn-rate and budget alerts ([`plans`]), the site and global X̄ charts ([`buckets`]) and re-baselining
//! ([`rebaseline`]). It writes through `llmscope-store` and announces what happened as
//! [`llmscope_model::LiveEvent`]s on a broadcast channel it is given.
//!
//! **Must not depend on** `llmscope-alert` or the collector: it knows nothing of
//! notifications, HTTP or metrics.
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
//! - Time comes from the [`llmscope_model::Clock`] the engine is given.

pub mod buckets;
pub mod calls;
pub mod config;
pub mod context;
pub mod engine;
pub mod incidents;
pub mod learn;
pub mod plans;
pub mod rebaseline;
pub mod settings;
pub mod silence;
pub mod state;
pub mod warm;

pub use config::{BaselinePolicy, SpcConfig};
pub use engine::{Committed, Engine, EngineConfig, EngineHandle, EngineStopped, HostFilter};

//! Pure statistical process control for LLMscope.
//!
//! **Owns** the mathematics: baselines, the Nelson rules, episodes and the other chart
//! families. **Must not depend on** any other LLMscope crate, and does no I/O, no async and
//! reads no clock: time is whatever index or timestamp the caller passes.
//!
//! # Layout
//! - [`baseline`]: Phase I estimation for individuals charts (centre = mean, sigma = MR̄/d2 or
//!   median(MR)/0.954, optional natural-log transform) and the [`Limits`] the rules judge by.
//! - [`nelson`]: the eight Nelson rules — parameters ([`NelsonConfig`]), the incremental
//!   per-series evaluator ([`NelsonState`], O(1) work and a fixed, small state per point), the
//!   batch function ([`nelson::evaluate`]) and a deliberately naive window-rescanning
//!   implementation ([`nelson::reference`]) used as an oracle by tests and benchmarks.
//! - [`episode`]: consecutive flags of one rule grouped into episodes.
//! - [`detect`]: paging detectors with a designed false-alarm rate (robust Phase I with AR(1),
//!   CUSUM designed for a guaranteed ARL0, outage and error-rate detectors).
//! - [`compare`]: A/B verdicts — Welch on ln values, Mann–Whitney U, Hodges–Lehmann with its
//!   interval, the ratio of geometric means, the effective sample size under autocorrelation.
//! - [`capability`]: Cp, Cpk, Pp, Ppk with 95 % intervals, and the percentile Ppk.
//! - [`trend`]: the Theil–Sen slope with Sen's interval and Holt's linear-trend forecast.
//! - [`sketch`]: a mergeable logarithmic-bucket quantile sketch (0.5 % relative error) for the
//!   hourly and daily rollups.
//! - [`special`]: ln Γ, incomplete gamma and beta, normal / t / chi-square CDFs and quantiles.
//! - [`charts`]: the other chart families (X̄-S over subgroups, p-chart, EWMA, CUSUM). Every
//!   chart reduces a point to a z-score against its own limits, so the Nelson evaluator and the
//!   episode tracker work unchanged on top of any of them.
//!
//! # Example
//! ```
//! use llmscope_spc::{Baseline, BaselineOptions, NelsonConfig, nelson};
//! let history = [100.0, 102.0, 98.0, 101.0, 99.0, 100.5, 99.5, 101.5];
//! let baseline = Baseline::estimate(&history, &BaselineOptions::default()).unwrap();
//! let flags = nelson::evaluate_values(&[100.0, 140.0], &baseline, &NelsonConfig::default()).unwrap();
//! assert!(flags[1].contains(llmscope_spc::Rule::R1));
//! ```

pub mod baseline;
pub mod capability;
pub mod charts;
pub mod compare;
pub mod detect;
pub mod episode;
mod error;
pub mod nelson;
pub mod sketch;
pub mod special;
pub mod trend;

pub use baseline::{Baseline, BaselineOptions, Limits, SigmaMethod, Transform};
pub use episode::{Episode, EpisodeEvent, EpisodeTracker};
pub use error::SpcError;
pub use nelson::{NelsonConfig, NelsonState, Rule, RuleFlags, RuleSet};

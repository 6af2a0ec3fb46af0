//! Paging detectors: change detectors whose false-alarm rate is designed, not hoped for.
//!
//! - [`phase1`]: a Phase I estimate that survives reality — a few wild points are set aside
//!   (beyond 3.5 robust sigmas from the median) before the mean, the process sigma and the
//!   lag-1 autocorrelation are computed.
//! - [`design`]: the decision interval `h` of a two-sided CUSUM (reference `k`) for a target
//!   in-control average run length (ARL0), computed with Siegmund's approximation and
//!   adjusted for the Phase I estimation error so that the target holds with a chosen
//!   probability (the "guaranteed in-control performance" idea of Goedhart, Schoonhoven and
//!   Does, 2017, evaluated by Monte Carlo over the estimator's own sampling distribution).
//! - [`shift`]: the per-series shift detector — a two-sided CUSUM on standardised AR(1)
//!   residuals of the (log) values, capped after a signal so that it returns to zero within
//!   a bounded number of in-control points once the change is over.
//! - [`errors`]: outage and error-rate detectors on the call outcomes — consecutive failures
//!   and a Bernoulli CUSUM of the failure rate.
//! - [`rates`]: the expected false markers of a Nelson rule configuration, by simulation.
//! - [`monitor`]: a series' transform, Phase I and shift detector together, and the
//!   defaults; [`sim`]: the detection benchmark's simulations.
//!
//! Like the rest of the crate: no I/O, no clock, deterministic (the design's Monte Carlo
//! uses a fixed seed).

pub mod design;
pub mod errors;
pub mod monitor;
pub mod phase1;
pub mod rates;
pub mod rng;
pub mod shift;
pub mod sim;

pub use design::{CusumDesign, cusum_arl, design_cusum, siegmund_arl};
pub use errors::{ErrorRate, ErrorRateDesign, Outage, design_error_rate};
pub use monitor::{Designer, Monitor, defaults, effective_phase1};
pub use phase1::Phase1;
pub use shift::{ShiftDetector, ShiftStep, Side};

//! One series' paging monitor: the transform, the robust Phase I and the shift detector,
//! composed the same way for the live engine, `analyze` and the detection benchmark.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::design::{CusumDesign, design_cusum};
use super::phase1::Phase1;
use super::shift::{ShiftDetector, ShiftStep};
use crate::{SpcError, Transform};

/// Defaults of the paging detectors (ARCHITECTURE §4.1).
pub mod defaults {
    /// CUSUM reference value: tuned to a 1σ shift.
    pub const K: f64 = 0.5;
    /// Designed in-control run length per model-host, in points (probes).
    pub const ARL0_MODEL_HOST: f64 = 100_000.0;
    /// Phase I size.
    pub const PHASE1: usize = 300;
    /// Consecutive failed calls that mean `down`.
    pub const DOWN_AFTER: u32 = 3;
    /// In-control failure rate assumed at least (the error-rate chart's p0 floor).
    pub const ERROR_RATE_P0: f64 = 0.01;
    /// The failure rate to detect, as a multiple of p0.
    pub const ERROR_RATE_FACTOR: f64 = 10.0;
    /// Designed in-control run length of the error-rate chart, in calls.
    pub const ERROR_RATE_ARL0: f64 = 100_000.0;
}

/// The Phase I sizes designs are computed for; a series is designed for the largest one not
/// above its effective size (a little more estimation error than it has: conservative), so a
/// fleet needs a handful of designs, each computed once.
pub const DESIGN_SIZES: &[usize] = &[
    20, 25, 30, 40, 50, 60, 70, 80, 100, 120, 150, 200, 250, 300, 400, 500, 700, 1000,
];

/// The effective Phase I size of an autocorrelated series: n (1 − φ) / (1 + φ), the size of an
/// independent sample whose mean is as precise, rounded down to one of [`DESIGN_SIZES`] (at
/// least 20; above 1 000 to a multiple of 500), which the design accounts for.
pub fn effective_phase1(phase1: &Phase1) -> usize {
    let n = (phase1.used as f64 * (1.0 - phase1.phi) / (1.0 + phase1.phi)).floor() as usize;
    if n >= 1000 {
        return n / 500 * 500;
    }
    DESIGN_SIZES
        .iter()
        .rev()
        .copied()
        .find(|s| *s <= n)
        .unwrap_or(20)
}

/// Designs by (target bits, effective Phase I size).
type Designs = HashMap<(u64, usize), Result<CusumDesign, SpcError>>;

/// Designs computed once per (target, effective Phase I size) and shared.
#[derive(Debug, Clone)]
pub struct Designer {
    k: f64,
    cache: Arc<Mutex<Designs>>,
}

impl Default for Designer {
    fn default() -> Designer {
        Designer::with_k(defaults::K)
    }
}

impl Designer {
    /// A designer for the default reference value, with an empty cache.
    pub fn new() -> Designer {
        Designer::default()
    }

    /// A designer for reference value `k`.
    pub fn with_k(k: f64) -> Designer {
        Designer {
            k,
            cache: Arc::default(),
        }
    }

    /// The design for a per-series target `arl0`, falling back to larger effective Phase I
    /// sizes when a strongly autocorrelated Phase I cannot deliver it (the series is then
    /// judged with a design that assumes more information than it has; the caller is told
    /// through the returned size).
    pub fn design_or_nearest(&self, arl0: f64, phase1: &Phase1) -> Result<CusumDesign, SpcError> {
        let first = self.design(arl0, phase1);
        if first.is_ok() {
            return first;
        }
        let mut n = effective_phase1(phase1);
        while n < defaults::PHASE1 {
            n = (n * 2).min(defaults::PHASE1);
            let p = Phase1 {
                used: n,
                phi: 0.0,
                ..*phase1
            };
            if let Ok(d) = self.design(arl0, &p) {
                return Ok(d);
            }
        }
        first
    }

    /// Whether the design for this target and Phase I is computed already.
    pub fn is_cached(&self, arl0: f64, phase1: &Phase1) -> bool {
        let key = (arl0.to_bits(), effective_phase1(phase1));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&key)
    }

    /// The design for a series with this Phase I and a per-series target `arl0`.
    pub fn design(&self, arl0: f64, phase1: &Phase1) -> Result<CusumDesign, SpcError> {
        let key = (arl0.to_bits(), effective_phase1(phase1));
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| design_cusum(self.k, arl0, key.1))
            .clone()
    }
}

/// A series' paging monitor.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    /// The transform applied before anything else.
    pub transform: Transform,
    /// Phase I estimates on the transformed scale.
    pub phase1: Phase1,
    /// The CUSUM's reference value and decision interval (from the design).
    pub k: f64,
    /// Decision interval.
    pub h: f64,
    shift: ShiftDetector,
}

impl Monitor {
    /// A monitor from Phase I values (original units) for a per-series target `arl0`.
    pub fn learn(
        values: &[f64],
        transform: Transform,
        arl0: f64,
        designer: &Designer,
    ) -> Result<Monitor, SpcError> {
        let ys = values
            .iter()
            .enumerate()
            .map(|(i, x)| transform.apply(i, *x))
            .collect::<Result<Vec<_>, _>>()?;
        Monitor::with(Phase1::estimate(&ys)?, transform, arl0, designer)
    }

    /// A monitor from stored estimates.
    pub fn with(
        phase1: Phase1,
        transform: Transform,
        arl0: f64,
        designer: &Designer,
    ) -> Result<Monitor, SpcError> {
        let d = designer.design(arl0, &phase1)?;
        Ok(Monitor::from_design(phase1, transform, &d))
    }

    /// A monitor from stored estimates and a design.
    pub fn from_design(phase1: Phase1, transform: Transform, d: &CusumDesign) -> Monitor {
        Monitor {
            transform,
            phase1,
            k: d.k,
            h: d.h,
            shift: ShiftDetector::new(),
        }
    }

    /// Judges one value (original units); `None` when the transform cannot take it.
    pub fn push(&mut self, x: f64) -> Option<ShiftStep> {
        let y = self.transform.apply(0, x).ok()?;
        Some(self.shift.push(y, &self.phase1, self.k, self.h))
    }

    /// The alarm side, if any.
    pub fn alarm(&self) -> Option<super::shift::Side> {
        self.shift.alarm()
    }

    /// Forgets the detector's sums (after a new baseline).
    pub fn reset(&mut self) {
        self.shift = ShiftDetector::new();
    }

    /// The z-score of a value against the Phase I centre and process sigma (for markers).
    pub fn z(&self, x: f64) -> Option<f64> {
        let y = self.transform.apply(0, x).ok()?;
        Some((y - self.phase1.mean) / self.phase1.sd)
    }
}

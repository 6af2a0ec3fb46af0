//! The per-series shift detector: a two-sided CUSUM on standardised AR(1) residuals.
//!
//! For a value y (on the log scale for time metrics) with Phase I centre μ̂, sigma σ̂ and
//! autocorrelation φ̂, the residual is e = ((y − μ̂) − φ̂ (y₋₁ − μ̂)) / (σ̂ √(1 − φ̂²)) — white
//! noise with unit variance while the process is in control, whatever its autocorrelation —
//! clipped to ±[`CLIP`] so that one wild value cannot carry the sum past the decision
//! interval on its own (a single slow call is a chart marker, not a page). A sustained shift
//! of δ sigmas moves the residuals' mean by δ √((1 − φ)/(1 + φ)).
//!
//! C⁺ = max(0, C⁺ + e − k), C⁻ = max(0, C⁻ − e − k); a side signals when its sum first
//! exceeds h and stays in alarm until the sum is back at 0 (the process is back at its
//! centre). After a signal the sum is capped at 2h, so the alarm clears within about 2h/k
//! in-control points once the change is over instead of paying back the whole excursion.

use serde::{Deserialize, Serialize};

use super::phase1::Phase1;

/// Residuals are clipped to ±CLIP before they enter the sums.
pub const CLIP: f64 = 3.0;

/// Which way the process moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Above the centre (slower, for a time metric).
    Up,
    /// Below the centre.
    Down,
}

/// What one point did to the detector.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ShiftStep {
    /// The standardised, clipped residual.
    pub residual: f64,
    /// C⁺ after the point.
    pub hi: f64,
    /// C⁻ after the point.
    pub lo: f64,
    /// A side that signalled at this point.
    pub opened: Option<Side>,
    /// A side whose alarm cleared at this point.
    pub closed: Option<Side>,
    /// Whether a side is in alarm after the point.
    pub alarm: bool,
}

/// The detector's state for one series (about 40 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ShiftDetector {
    hi: f64,
    lo: f64,
    prev: Option<f64>,
    up: bool,
    down: bool,
}

impl ShiftDetector {
    /// A fresh detector.
    pub fn new() -> ShiftDetector {
        ShiftDetector::default()
    }

    /// Whether a side is in alarm.
    pub fn alarm(&self) -> Option<Side> {
        if self.up {
            Some(Side::Up)
        } else if self.down {
            Some(Side::Down)
        } else {
            None
        }
    }

    /// Judges one (transformed) value with reference `k` and decision interval `h`.
    pub fn push(&mut self, y: f64, p: &Phase1, k: f64, h: f64) -> ShiftStep {
        let dev = y - p.mean;
        let prev = self.prev.unwrap_or(0.0);
        self.prev = Some(dev);
        let scale = p.sd * (1.0 - p.phi * p.phi).sqrt();
        let e = ((dev - p.phi * prev) / scale).clamp(-CLIP, CLIP);
        self.hi = (self.hi + e - k).max(0.0);
        self.lo = (self.lo - e - k).max(0.0);
        let mut step = ShiftStep {
            residual: e,
            ..ShiftStep::default()
        };
        for (sum, on, side) in [
            (&mut self.hi, &mut self.up, Side::Up),
            (&mut self.lo, &mut self.down, Side::Down),
        ] {
            if !*on && *sum > h {
                *on = true;
                step.opened = Some(side);
            }
            if *on {
                *sum = sum.min(2.0 * h);
                if *sum == 0.0 {
                    *on = false;
                    step.closed = Some(side);
                }
            }
        }
        step.hi = self.hi;
        step.lo = self.lo;
        step.alarm = self.up || self.down;
        step
    }
}

#[cfg(test)]
mod tests {
    use super::super::design::design_cusum;
    use super::super::rng::Rng;
    use super::*;

    fn known() -> Phase1 {
        Phase1 {
            mean: 0.0,
            sd: 1.0,
            phi: 0.0,
            used: 100,
            rejected: 0,
        }
    }

    #[test]
    fn a_spike_is_not_a_signal_a_shift_is_and_the_alarm_clears() {
        let d = design_cusum(0.5, 100_000.0, 200).unwrap();
        let p = known();
        let mut s = ShiftDetector::new();
        assert!(
            s.push(50.0, &p, d.k, d.h).opened.is_none(),
            "one wild value"
        );
        for _ in 0..30 {
            s.push(0.0, &p, d.k, d.h);
        }
        let first = (0..100).find(|_| s.push(1.0, &p, d.k, d.h).opened == Some(Side::Up));
        assert!(first.is_some_and(|i| i < 30), "{first:?} (h = {})", d.h);
        let cleared = (0..200).find(|_| s.push(0.0, &p, d.k, d.h).closed == Some(Side::Up));
        assert!(
            cleared.is_some_and(|i| i as f64 <= 2.0 * d.h / d.k + 1.0),
            "{cleared:?}"
        );
        assert!(s.alarm().is_none());
    }

    #[test]
    fn autocorrelated_noise_is_whitened() {
        let d = design_cusum(0.5, 1000.0, 100).unwrap();
        let mut r = Rng::new(5);
        let mut y = 0.0;
        let xs: Vec<f64> = (0..400_000)
            .map(|_| {
                y = 0.3 * y + r.normal() * (1.0f64 - 0.09).sqrt();
                y
            })
            .collect();
        let p = Phase1 {
            phi: 0.3,
            ..known()
        };
        let count = |p: &Phase1| {
            let mut s = ShiftDetector::new();
            xs.iter()
                .filter(|x| s.push(**x, p, d.k, d.h).opened.is_some())
                .count() as f64
        };
        // with known parameters the expected count is n / ARL0(h); ignoring φ gives far more
        let want = xs.len() as f64 / d.arl(0.0);
        let whitened = count(&p);
        assert!(
            whitened > 0.5 * want && whitened < 2.0 * want,
            "{whitened} vs {want}"
        );
        let naive = count(&Phase1 { phi: 0.0, ..p });
        assert!(naive > 3.0 * whitened, "{naive} vs {whitened}");
    }
}

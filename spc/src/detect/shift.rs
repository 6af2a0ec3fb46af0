//! The per-series shift detector: a two-sided CUSUM on standardised AR(1) residuals.
//!
//! For a value y (on the log scale for time metrics) with Phase I centre μ̂, sigma σ̂ and
//! autocorrelation φ̂, the residual is e = ((y − μ̂) − φ̂ (y₋₁ − μ̂)) / (σ̂ √(1 − φ̂²)) — white
//! noise with unit variance while the process is in control, whatever its autocorrelation —
//! clipped to ±[`CLIP`] so that one wild value cannot carry the sum past the decision
//! interval on its own (a single slow call is a chart marker, not a page). A sustained shift
//! of δ sigmas moves the residuals' mean by δ √((1 − φ)/(1 + φ)).
//!
//! C⁺ = max(0, C⁺ + e − k), C⁻ = max(0, C⁻ − e − k); a side signals when its sum exceeds
//! h. A signal opens an episode (or extends the open one) and restarts the sums, the
//! signalling side with a head start of h/2, so a change that goes on signals again within
//! about h/(2(δ − k)) points; the episode ends after [`ShiftDetector::quiet_points`] points
//! without a signal (4 h/k; from the head start an in-control process reaches h again only
//! rarely). A process that comes back only near its centre — within k — also ends the
//! episode, where a sum that had to pay back the whole excursion would keep it open for
//! hundreds of points.

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
    /// The side of the episode this point opened.
    pub opened: Option<Side>,
    /// The side of the episode that ended at this point.
    pub closed: Option<Side>,
    /// Whether a sum crossed h at this point (it opened or extends the episode).
    pub signal: bool,
    /// Whether an episode is open after the point.
    pub alarm: bool,
}

/// The detector's state for one series (about 40 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ShiftDetector {
    hi: f64,
    lo: f64,
    prev: Option<f64>,
    /// The open episode's side.
    episode: Option<Side>,
    /// Points since the last signal.
    quiet: u32,
}

impl ShiftDetector {
    /// A fresh detector.
    pub fn new() -> ShiftDetector {
        ShiftDetector::default()
    }

    /// The open episode's side, if any.
    pub fn alarm(&self) -> Option<Side> {
        self.episode
    }

    /// Points without a signal that end an episode: 4 h/k (rounded up; a sustained 1σ shift
    /// re-signals well within it: one page per change, see the detection benchmark).
    pub fn quiet_points(k: f64, h: f64) -> u32 {
        (4.0 * h / k).ceil().clamp(1.0, 1e6) as u32
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
            hi: self.hi,
            lo: self.lo,
            ..ShiftStep::default()
        };
        let side = if self.hi > h {
            Some(Side::Up)
        } else if self.lo > h {
            Some(Side::Down)
        } else {
            None
        };
        if let Some(side) = side {
            step.signal = true;
            // restart with a head start of h/2 on the side that signalled (Lucas & Crosier's
            // fast initial response): a change that goes on signals again in about
            // h/(2(δ − k)) points, with little spread, so one episode does not flap
            (self.hi, self.lo) = match side {
                Side::Up => (h / 2.0, 0.0),
                Side::Down => (0.0, h / 2.0),
            };
            self.quiet = 0;
            if self.episode.is_none() {
                self.episode = Some(side);
                step.opened = Some(side);
            }
        } else if let Some(open) = self.episode {
            self.quiet += 1;
            if self.quiet >= ShiftDetector::quiet_points(k, h) {
                self.episode = None;
                step.closed = Some(open);
            }
        }
        step.alarm = self.episode.is_some();
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
        // a change that goes on keeps one episode open: it re-signals, never closes
        let mut signals = 0;
        for _ in 0..500 {
            let step = s.push(1.0, &p, d.k, d.h);
            assert!(step.opened.is_none() && step.closed.is_none() && step.alarm);
            signals += usize::from(step.signal);
        }
        assert!(
            signals > 10,
            "{signals} signals in 500 points of a 1σ shift"
        );
        // back near the centre (within k): the episode ends after the quiet points
        let quiet = ShiftDetector::quiet_points(d.k, d.h);
        let cleared = (1..2000).find(|_| s.push(0.3, &p, d.k, d.h).closed == Some(Side::Up));
        assert!(
            cleared.is_some_and(|i| i + 20 >= quiet as usize && i <= quiet as usize + 60),
            "{cleared:?} vs {quiet}"
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

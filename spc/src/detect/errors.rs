//! Outages and error rates, judged on call outcomes (failed or not).
//!
//! - [`Outage`]: `threshold` consecutive failed calls open a `down` alarm at once; the first
//!   successful call clears it.
//! - [`ErrorRate`]: a Bernoulli CUSUM of the log-likelihood ratio of a failure rate `p1`
//!   against the in-control rate `p0`: W = max(0, W + ln(p1/p0)) on a failure,
//!   max(0, W + ln((1 − p1)/(1 − p0))) on a success; a signal (W above h) opens an episode
//!   or extends it and restarts W at h/2, and the episode ends after
//!   [`ErrorRateDesign::quiet_calls`] calls without a signal. [`design_error_rate`] finds h for a target in-control ARL (in calls) with a
//!   Markov chain on the statistic discretised to the success step (exact up to rounding the
//!   failure step to a whole number of success steps; Reynolds & Stoumbos, 1999).

use serde::{Deserialize, Serialize};

use crate::SpcError;

/// Consecutive failed calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Outage {
    run: u32,
    down: bool,
}

/// What one call did to an [`Outage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutageStep {
    /// The service went down at this call.
    pub opened: bool,
    /// It came back at this call.
    pub closed: bool,
    /// Failed calls in a row.
    pub run: u32,
}

impl Outage {
    /// Counts a call.
    pub fn push(&mut self, failed: bool, threshold: u32) -> OutageStep {
        let mut step = OutageStep::default();
        if failed {
            self.run += 1;
            if !self.down && self.run >= threshold.max(1) {
                self.down = true;
                step.opened = true;
            }
        } else {
            self.run = 0;
            if self.down {
                self.down = false;
                step.closed = true;
            }
        }
        step.run = self.run;
        step
    }

    /// Whether the service is down.
    pub fn is_down(&self) -> bool {
        self.down
    }
}

/// A designed Bernoulli CUSUM.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ErrorRateDesign {
    /// In-control failure rate.
    pub p0: f64,
    /// The failure rate to detect.
    pub p1: f64,
    /// Decision interval (log-likelihood units).
    pub h: f64,
    /// In-control ARL (calls per false alarm) at `h`.
    pub arl0: f64,
    /// ARL (calls) when the rate is `p1`.
    pub arl1: f64,
}

impl ErrorRateDesign {
    /// Increment on a failed call.
    pub fn up(&self) -> f64 {
        (self.p1 / self.p0).ln()
    }

    /// Increment on a successful call.
    pub fn down(&self) -> f64 {
        ((1.0 - self.p1) / (1.0 - self.p0)).ln()
    }

    /// Calls without a signal that end an episode: 4 × the successes that bring W from h
    /// back to 0 (a failure rate still at p1 re-signals in about [`ErrorRateDesign::arl1`]
    /// calls, far sooner).
    pub fn quiet_calls(&self) -> u32 {
        (4.0 * self.h / self.down().abs().max(1e-9))
            .ceil()
            .clamp(1.0, 1e7) as u32
    }
}

/// ARL of the discretised chain: steps +a (probability p) and −1, absorbing at ≥ n, from 0.
fn chain_arl(p: f64, a: usize, n: usize) -> f64 {
    // L_i = 1 + p L_{i+a} + (1 − p) L_{max(i−1, 0)}, L_j = 0 for j ≥ n; solved by dense
    // Gaussian elimination (n is at most a few hundred)
    let mut m = vec![vec![0.0; n + 1]; n];
    for i in 0..n {
        m[i][i] += 1.0;
        if i + a < n {
            m[i][i + a] -= p;
        }
        m[i][i.saturating_sub(1)] -= 1.0 - p;
        m[i][n] = 1.0;
    }
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&x, &y| m[x][c].abs().total_cmp(&m[y][c].abs()))
            .unwrap_or(c);
        m.swap(c, piv);
        let d = m[c][c];
        if d.abs() < 1e-300 {
            return f64::INFINITY;
        }
        m[c][c..].iter_mut().for_each(|x| *x /= d);
        let pivot_row = m[c].clone();
        for (r, row) in m.iter_mut().enumerate() {
            if r != c && row[c] != 0.0 {
                let f = row[c];
                row[c..]
                    .iter_mut()
                    .zip(&pivot_row[c..])
                    .for_each(|(x, p)| *x -= f * p);
            }
        }
    }
    m[0][n]
}

/// Designs the Bernoulli CUSUM detecting a rise from `p0` to `p1` with an in-control ARL of at
/// least `arl0` calls.
pub fn design_error_rate(p0: f64, p1: f64, arl0: f64) -> Result<ErrorRateDesign, SpcError> {
    if !(p0 > 0.0 && p0 < p1 && p1 < 1.0) {
        return Err(SpcError::param(
            "error_rate",
            format!("need 0 < p0 < p1 < 1, got p0 = {p0}, p1 = {p1}"),
        ));
    }
    if !(100.0..=1e8).contains(&arl0) {
        return Err(SpcError::param(
            "error_rate.arl0",
            format!("must be from 100 to 1e8 calls, got {arl0}"),
        ));
    }
    let up = (p1 / p0).ln();
    let down = -((1.0 - p1) / (1.0 - p0)).ln();
    let a = (up / down).round().max(1.0) as usize;
    let mut n = a;
    while chain_arl(p0, a, n) < arl0 {
        n += (n / 8).max(1);
        if n > 4000 {
            return Err(SpcError::param(
                "error_rate.arl0",
                format!("{arl0} calls cannot be reached for p0 = {p0}, p1 = {p1}"),
            ));
        }
    }
    // step back to the smallest n that reaches the target
    while n > a && chain_arl(p0, a, n - 1) >= arl0 {
        n -= 1;
    }
    Ok(ErrorRateDesign {
        p0,
        p1,
        h: n as f64 * down,
        arl0: chain_arl(p0, a, n),
        arl1: chain_arl(p1, a, n),
    })
}

/// The Bernoulli CUSUM's state.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ErrorRate {
    w: f64,
    alarm: bool,
    /// Calls since the last signal.
    quiet: u32,
}

/// What one call did to an [`ErrorRate`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ErrorRateStep {
    /// The statistic at the call (before a signal restarts it).
    pub w: f64,
    /// The rate rose: signalled at this call.
    pub opened: bool,
    /// Back to the in-control rate at this call.
    pub closed: bool,
}

impl ErrorRate {
    /// Counts a call.
    pub fn push(&mut self, failed: bool, d: &ErrorRateDesign) -> ErrorRateStep {
        self.w = (self.w + if failed { d.up() } else { d.down() }).max(0.0);
        let mut step = ErrorRateStep {
            w: self.w,
            ..ErrorRateStep::default()
        };
        if self.w > d.h {
            // restart with a head start of h/2: a rate still raised signals again soon
            self.w = d.h / 2.0;
            self.quiet = 0;
            if !self.alarm {
                self.alarm = true;
                step.opened = true;
            }
        } else if self.alarm {
            self.quiet += 1;
            if self.quiet >= d.quiet_calls() {
                self.alarm = false;
                step.closed = true;
            }
        }
        step
    }

    /// Whether the rate is in alarm.
    pub fn alarm(&self) -> bool {
        self.alarm
    }
}

#[cfg(test)]
mod tests {
    use super::super::rng::Rng;
    use super::*;

    #[test]
    fn three_failures_in_a_row_are_down_and_one_success_clears() {
        let mut o = Outage::default();
        assert!(!o.push(true, 3).opened && !o.push(true, 3).opened);
        assert!(o.push(true, 3).opened && o.is_down());
        assert!(!o.push(true, 3).opened, "opened once");
        assert!(o.push(false, 3).closed && !o.is_down());
    }

    #[test]
    fn the_designed_error_rate_chart_meets_its_arls_in_simulation() {
        let d = design_error_rate(0.01, 0.10, 10_000.0).unwrap();
        assert!(d.arl0 >= 10_000.0 && d.arl1 < 100.0, "{d:?}");
        // simulate: false alarms at 1 %, delay at 10 %
        let mut r = Rng::new(9);
        let mut c = ErrorRate::default();
        let mut alarms = 0;
        let n = 2_000_000;
        for _ in 0..n {
            let s = c.push(r.uniform() < 0.01, &d);
            if s.opened {
                alarms += 1;
                c = ErrorRate::default();
            }
        }
        let arl0 = n as f64 / alarms.max(1) as f64;
        assert!(
            arl0 > 0.6 * d.arl0 && arl0 < 1.6 * d.arl0,
            "{arl0} vs {}",
            d.arl0
        );
        let mut delays = Vec::new();
        for _ in 0..500 {
            let mut c = ErrorRate::default();
            let t = (1..10_000)
                .find(|_| c.push(r.uniform() < 0.10, &d).opened)
                .unwrap();
            delays.push(t);
        }
        delays.sort();
        assert!(delays[250] < 100, "median delay {}", delays[250]);
        assert!(design_error_rate(0.2, 0.1, 1000.0).is_err());
    }
}

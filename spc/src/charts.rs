//! Chart families beyond the individuals chart.
//!
//! Each chart turns its own kind of point (a subgroup, a proportion, a smoothed value) into a
//! z-score against its own limits. The Nelson evaluator and the episode tracker take z-scores,
//! so every chart plugs into them unchanged. EWMA and CUSUM carry their own decision rule
//! (a signal when the statistic leaves its limits) and are meant for small sustained shifts.

use serde::{Deserialize, Serialize};

use crate::SpcError;

/// The chart a series is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChartKind {
    /// Individuals chart (I-MR): one point per sample.
    #[default]
    Individuals,
    /// X̄ chart over subgroups (e.g. time buckets), sigma from the within-subgroup S.
    XbarS,
    /// Proportion chart, e.g. error rate per bucket.
    P,
    /// Exponentially weighted moving average.
    Ewma,
    /// Tabular CUSUM.
    Cusum,
}

/// Summary statistics of one subgroup (a time bucket).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Subgroup {
    /// Number of observations (≥ 1).
    pub n: u32,
    /// Mean of the observations.
    pub mean: f64,
    /// Sample standard deviation (n − 1 denominator); 0 when n = 1.
    pub sd: f64,
}

impl Subgroup {
    /// Summarises raw observations.
    pub fn from_values(xs: &[f64]) -> Option<Subgroup> {
        if xs.is_empty() {
            return None;
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let sd = if xs.len() > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(Subgroup {
            n: xs.len() as u32,
            mean,
            sd,
        })
    }
}

/// The c4(n) bias-correction constant for the sample standard deviation.
pub fn c4(n: u32) -> f64 {
    if n < 2 {
        return 1.0;
    }
    let n = f64::from(n);
    // c4 = sqrt(2/(n-1)) * Γ(n/2) / Γ((n-1)/2), via ln Γ for stability
    ((2.0 / (n - 1.0)).ln() / 2.0 + crate::special::ln_gamma(n / 2.0)
        - crate::special::ln_gamma((n - 1.0) / 2.0))
    .exp()
}

/// Limits of an X̄-S chart: the grand mean and the within-subgroup process sigma.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct XbarSLimits {
    /// Grand mean (weighted by subgroup size).
    pub center: f64,
    /// Process sigma for one observation (S̄/c4 pooled over subgroups with n ≥ 2).
    pub sigma: f64,
}

impl XbarSLimits {
    /// Estimates the limits from Phase I subgroups.
    pub fn estimate(groups: &[Subgroup]) -> Result<XbarSLimits, SpcError> {
        let total: f64 = groups.iter().map(|g| f64::from(g.n)).sum();
        if total < 2.0 {
            return Err(SpcError::TooFewPoints {
                needed: 2,
                got: total as usize,
            });
        }
        let center = groups.iter().map(|g| g.mean * f64::from(g.n)).sum::<f64>() / total;
        let within: Vec<f64> = groups
            .iter()
            .filter(|g| g.n >= 2)
            .map(|g| g.sd / c4(g.n))
            .collect();
        let sigma = if within.is_empty() {
            // all subgroups of one: fall back to the moving range of the means
            let mrs: Vec<f64> = groups
                .windows(2)
                .map(|w| (w[1].mean - w[0].mean).abs())
                .collect();
            mrs.iter().sum::<f64>() / mrs.len().max(1) as f64 / crate::baseline::D2
        } else {
            within.iter().sum::<f64>() / within.len() as f64
        };
        if sigma == 0.0 {
            return Err(SpcError::ZeroSigma);
        }
        if !sigma.is_finite() || !center.is_finite() {
            return Err(SpcError::InvalidSigma(sigma));
        }
        Ok(XbarSLimits { center, sigma })
    }

    /// z-score of a subgroup mean: (x̄ − centre) / (sigma / √n).
    pub fn z(&self, g: &Subgroup) -> f64 {
        (g.mean - self.center) / (self.sigma / f64::from(g.n.max(1)).sqrt())
    }
}

/// p-chart: proportion of failed calls per subgroup against the long-run rate p̄.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PChart {
    /// Long-run proportion, 0 < p̄ < 1.
    pub p_bar: f64,
}

impl PChart {
    /// p̄ from Phase I counts (failures, totals).
    pub fn estimate(groups: &[(u64, u64)]) -> Result<PChart, SpcError> {
        let fails: u64 = groups.iter().map(|g| g.0).sum();
        let total: u64 = groups.iter().map(|g| g.1).sum();
        if total == 0 {
            return Err(SpcError::TooFewPoints { needed: 1, got: 0 });
        }
        let p_bar = fails as f64 / total as f64;
        if p_bar <= 0.0 || p_bar >= 1.0 {
            return Err(SpcError::ZeroSigma);
        }
        Ok(PChart { p_bar })
    }

    /// z-score of `fails` out of `n`: (p − p̄) / √(p̄(1 − p̄)/n).
    pub fn z(&self, fails: u64, n: u64) -> f64 {
        let n = n.max(1) as f64;
        (fails as f64 / n - self.p_bar) / (self.p_bar * (1.0 - self.p_bar) / n).sqrt()
    }
}

/// EWMA chart state (λ = 0.2, L = 3 by default), on z-scores of the individual values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Ewma {
    /// Smoothing weight, 0 < λ ≤ 1.
    pub lambda: f64,
    /// Limit width in sigmas of the EWMA statistic.
    pub l: f64,
    value: f64,
    n: u64,
}

impl Default for Ewma {
    fn default() -> Self {
        Ewma {
            lambda: 0.2,
            l: 3.0,
            value: 0.0,
            n: 0,
        }
    }
}

impl Ewma {
    /// A fresh EWMA with the given parameters.
    pub fn new(lambda: f64, l: f64) -> Result<Ewma, SpcError> {
        if !(lambda > 0.0 && lambda <= 1.0) {
            return Err(SpcError::param(
                "ewma.lambda",
                format!("must be in (0, 1], got {lambda}"),
            ));
        }
        if !(l.is_finite() && l > 0.0) {
            return Err(SpcError::param("ewma.l", format!("must be > 0, got {l}")));
        }
        Ok(Ewma {
            lambda,
            l,
            value: 0.0,
            n: 0,
        })
    }

    /// Adds a z-score; returns the EWMA statistic and whether it is beyond its (time-varying)
    /// limits.
    pub fn push(&mut self, z: f64) -> (f64, bool) {
        self.n += 1;
        self.value = self.lambda * z + (1.0 - self.lambda) * self.value;
        let decay = (1.0 - self.lambda).powf(2.0 * self.n as f64);
        let width = self.l * (self.lambda / (2.0 - self.lambda) * (1.0 - decay)).sqrt();
        (self.value, self.value.abs() > width)
    }
}

/// Tabular CUSUM on z-scores (k = 0.5, h = 5 by default).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Cusum {
    /// Allowance (slack) in sigmas.
    pub k: f64,
    /// Decision interval in sigmas.
    pub h: f64,
    hi: f64,
    lo: f64,
}

impl Default for Cusum {
    fn default() -> Self {
        Cusum {
            k: 0.5,
            h: 5.0,
            hi: 0.0,
            lo: 0.0,
        }
    }
}

impl Cusum {
    /// Adds a z-score; returns (C⁺, C⁻, signal). The sums restart at 0 after a signal.
    pub fn push(&mut self, z: f64) -> (f64, f64, bool) {
        self.hi = (self.hi + z - self.k).max(0.0);
        self.lo = (self.lo - z - self.k).max(0.0);
        let (hi, lo) = (self.hi, self.lo);
        let signal = hi > self.h || lo > self.h;
        if signal {
            self.hi = 0.0;
            self.lo = 0.0;
        }
        (hi, lo, signal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c4_matches_tables() {
        // published values: c4(2)=0.7979, c4(5)=0.9400, c4(10)=0.9727, c4(25)=0.9896
        for (n, v) in [(2, 0.7979), (5, 0.9400), (10, 0.9727), (25, 0.9896)] {
            assert!((c4(n) - v).abs() < 5e-5, "c4({n}) = {}", c4(n));
        }
    }

    #[test]
    fn xbar_s_z_scales_with_subgroup_size() {
        let groups: Vec<Subgroup> = (0..10)
            .map(|i| Subgroup::from_values(&[9.0 + (i % 2) as f64, 10.0, 11.0, 10.0]).unwrap())
            .collect();
        let lim = XbarSLimits::estimate(&groups).unwrap();
        let g = Subgroup {
            n: 4,
            mean: lim.center + lim.sigma,
            sd: 1.0,
        };
        assert!((lim.z(&g) - 2.0).abs() < 1e-9);
    }

    #[test]
    fn p_chart_z() {
        let p = PChart::estimate(&[(1, 100), (3, 100)]).unwrap();
        assert!((p.p_bar - 0.02).abs() < 1e-12);
        assert!(p.z(2, 100).abs() < 1e-12);
        assert!(p.z(10, 100) > 3.0);
    }

    #[test]
    fn ewma_detects_a_small_shift_that_rule_1_misses() {
        let mut e = Ewma::default();
        let mut signalled = None;
        for i in 0..50 {
            let (_, s) = e.push(1.5); // a sustained 1.5σ shift: never beyond 3σ on its own
            if s && signalled.is_none() {
                signalled = Some(i);
            }
        }
        assert!(signalled.is_some_and(|i| i < 15), "{signalled:?}");
    }

    #[test]
    fn cusum_signals_on_sustained_shift_and_not_on_noise() {
        let mut c = Cusum::default();
        let quiet = (0..100).map(|i| if i % 2 == 0 { 0.8 } else { -0.8 });
        assert!(quiet.map(|z| c.push(z).2).all(|s| !s));
        let mut c = Cusum::default();
        let first = (0..30).position(|_| c.push(1.0).2);
        assert_eq!(first, Some(10)); // 0.5 per point, > 5 after 11 points
    }

    #[test]
    fn ewma_rejects_bad_parameters() {
        assert!(Ewma::new(0.0, 3.0).is_err());
        assert!(Ewma::new(0.2, -1.0).is_err());
    }
}

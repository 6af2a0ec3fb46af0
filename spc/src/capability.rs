//! Process capability against an SLO, as R qcc's `process.capability` computes it for
//! individual values (`qcc(x, type = "xbar.one")`): the within-process sigma is MR̄/d2
//! (d2 = 1.128), the overall sigma the sample standard deviation.
//!
//! With an upper limit only (an SLO is "at most"): Cpk = Cpu = (USL − μ)/(3σ_within),
//! Ppk = Ppu = (USL − μ)/(3σ_overall). With both limits, also Cp = (USL − LSL)/(6σ_within)
//! and Pp likewise. 95 % intervals: Cp and Pp by the chi-square distribution
//! (Cp·√(χ²_{α/2,n−1}/(n−1)) … Cp·√(χ²_{1−α/2,n−1}/(n−1))); Cpk and Ppk by Bissell's
//! approximation (Cpk ± z_{1−α/2}·√(1/(9n) + Cpk²/(2(n−1)))) — the intervals qcc prints.
//!
//! Times are right-skewed: callers pass ln values and ln limits (the API does, and says so).
//! When even ln values are not normal, the percentile Ppk (ISO 22514-2 / Clements) does not
//! assume a distribution: Ppu = (USL − median)/(x₀.₉₉₈₆₅ − median).

use serde::{Deserialize, Serialize};

use crate::SpcError;
use crate::compare::Interval;
use crate::special::{chi2_ppf, norm_ppf};

/// d2 for moving ranges of two.
const D2: f64 = 1.128;

/// Capability indices with their 95 % intervals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Capability {
    /// Points.
    pub n: usize,
    /// Mean.
    pub mean: f64,
    /// Within-process sigma (MR̄/d2).
    pub sigma_within: f64,
    /// Overall sigma (sample standard deviation).
    pub sigma_overall: f64,
    /// Cp (both limits only).
    pub cp: Option<Interval>,
    /// Cpk (Cpu with an upper limit only).
    pub cpk: Interval,
    /// Pp (both limits only).
    pub pp: Option<Interval>,
    /// Ppk (Ppu with an upper limit only).
    pub ppk: Interval,
    /// Percentile-based Ppk (no normality assumed).
    pub ppk_percentile: f64,
    /// Share of points above the upper limit (observed).
    pub above_usl: f64,
}

/// The p-quantile of sorted values: linear interpolation between order statistics (R type 7,
/// numpy's default).
pub fn quantile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * p;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

fn chi_interval(x: f64, n: f64) -> [f64; 2] {
    [
        x * (chi2_ppf(0.025, n - 1.0) / (n - 1.0)).sqrt(),
        x * (chi2_ppf(0.975, n - 1.0) / (n - 1.0)).sqrt(),
    ]
}

fn bissell(x: f64, n: f64) -> [f64; 2] {
    let h = norm_ppf(0.975) * (1.0 / (9.0 * n) + x * x / (2.0 * (n - 1.0))).sqrt();
    [x - h, x + h]
}

/// Capability of `x` (in time order) against `usl` and, optionally, `lsl`.
pub fn capability(x: &[f64], usl: f64, lsl: Option<f64>) -> Result<Capability, SpcError> {
    if x.len() < 3 {
        return Err(SpcError::TooFewPoints {
            needed: 3,
            got: x.len(),
        });
    }
    if let Some((index, &value)) = x.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(SpcError::NonFiniteValue { index, value });
    }
    if lsl.is_some_and(|l| l >= usl) {
        return Err(SpcError::param(
            "lsl",
            "the lower limit must be below the upper",
        ));
    }
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let sigma_overall = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)).sqrt();
    let mr = x.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (n - 1.0);
    let sigma_within = mr / D2;
    if sigma_within <= 0.0 || sigma_overall <= 0.0 {
        return Err(SpcError::ZeroSigma);
    }
    let k = |s: f64| {
        let upper = (usl - mean) / (3.0 * s);
        match lsl {
            Some(l) => upper.min((mean - l) / (3.0 * s)),
            None => upper,
        }
    };
    let two = |s: f64| lsl.map(|l| (usl - l) / (6.0 * s));
    let (cpk, ppk) = (k(sigma_within), k(sigma_overall));
    let mut sorted = x.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let med = quantile(&sorted, 0.5);
    let up = quantile(&sorted, 0.998_65);
    let ppk_percentile = if up > med {
        let upper = (usl - med) / (up - med);
        match lsl {
            Some(l) => {
                let lo = quantile(&sorted, 0.001_35);
                if med > lo {
                    upper.min((med - l) / (med - lo))
                } else {
                    upper
                }
            }
            None => upper,
        }
    } else {
        f64::INFINITY
    };
    Ok(Capability {
        n: x.len(),
        mean,
        sigma_within,
        sigma_overall,
        cp: two(sigma_within).map(|c| Interval {
            estimate: c,
            ci: chi_interval(c, n),
        }),
        cpk: Interval {
            estimate: cpk,
            ci: bissell(cpk, n),
        },
        pp: two(sigma_overall).map(|c| Interval {
            estimate: c,
            ci: chi_interval(c, n),
        }),
        ppk: Interval {
            estimate: ppk,
            ci: bissell(ppk, n),
        },
        ppk_percentile,
        above_usl: x.iter().filter(|v| **v > usl).count() as f64 / n,
    })
}

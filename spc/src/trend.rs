//! Long-horizon trend: the Theil–Sen slope with Sen's interval (as
//! `scipy.stats.theilslopes`, ties in x and y corrected), and Holt's linear-trend exponential
//! smoothing (ETS(A,A,N)) with a prediction interval, for "TTFT p95 reaches the SLO in about
//! N days at this trend".

use serde::{Deserialize, Serialize};

use crate::SpcError;
use crate::special::norm_ppf;

/// A Theil–Sen fit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TheilSen {
    /// Median of the pairwise slopes.
    pub slope: f64,
    /// median(y) − slope·median(x).
    pub intercept: f64,
    /// 95 % interval of the slope.
    pub slope_ci: [f64; 2],
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_unstable_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn tie_sum(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let mut sum = 0.0;
    let mut i = 0;
    while i < s.len() {
        let mut j = i + 1;
        while j < s.len() && s[j] == s[i] {
            j += 1;
        }
        let k = (j - i) as f64;
        if k > 1.0 {
            sum += k * (k - 1.0) * (2.0 * k + 5.0);
        }
        i = j;
    }
    sum
}

/// Theil–Sen slope of y on x with its 95 % interval.
pub fn theil_sen(x: &[f64], y: &[f64]) -> Result<TheilSen, SpcError> {
    if x.len() != y.len() {
        return Err(SpcError::param("y", "x and y must have the same length"));
    }
    if x.len() < 3 {
        return Err(SpcError::TooFewPoints {
            needed: 3,
            got: x.len(),
        });
    }
    let n = x.len();
    let mut slopes = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[j] - x[i];
            if dx != 0.0 {
                slopes.push((y[j] - y[i]) / dx);
            }
        }
    }
    if slopes.is_empty() {
        return Err(SpcError::param("x", "all x are equal"));
    }
    let slope = median(&mut slopes);
    let intercept = median(&mut y.to_vec()) - slope * median(&mut x.to_vec());
    // Sen's interval, indexed as scipy does (z = Φ⁻¹(0.025) < 0)
    let nf = n as f64;
    let sigsq = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - tie_sum(x) - tie_sum(y)) / 18.0;
    let sigma = sigsq.sqrt();
    let z = norm_ppf(0.025);
    let nt = slopes.len() as f64;
    let ru = (((nt - z * sigma) / 2.0).round() as usize).min(slopes.len() - 1);
    let rl = (((nt + z * sigma) / 2.0).round() as i64 - 1).max(0) as usize;
    Ok(TheilSen {
        slope,
        intercept,
        slope_ci: [slopes[rl], slopes[ru]],
    })
}

/// A fitted Holt model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Holt {
    /// Level smoothing α.
    pub alpha: f64,
    /// Trend smoothing β.
    pub beta: f64,
    /// Level after the last point.
    pub level: f64,
    /// Trend (per step) after the last point.
    pub trend: f64,
    /// Residual standard deviation of the one-step-ahead errors.
    pub sigma: f64,
}

/// One forecast step with its 95 % prediction interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Forecast {
    /// Steps ahead.
    pub h: usize,
    /// Point forecast.
    pub value: f64,
    /// 95 % prediction interval.
    pub interval: [f64; 2],
}

fn holt_sse(y: &[f64], alpha: f64, beta: f64) -> (f64, f64, f64) {
    // initial level and trend: the least-squares line through the first (up to) ten points
    let m = y.len().min(10);
    let xm = (m - 1) as f64 / 2.0;
    let ym = y[..m].iter().sum::<f64>() / m as f64;
    let sxy: f64 = y[..m]
        .iter()
        .enumerate()
        .map(|(i, v)| (i as f64 - xm) * (v - ym))
        .sum();
    let sxx: f64 = (0..m).map(|i| (i as f64 - xm).powi(2)).sum();
    let mut trend = sxy / sxx;
    let mut level = ym - trend * xm;
    let mut sse = 0.0;
    for &v in &y[1..] {
        let f = level + trend;
        let e = v - f;
        sse += e * e;
        let new_level = alpha * v + (1.0 - alpha) * (level + trend);
        trend = beta * (new_level - level) + (1.0 - beta) * trend;
        level = new_level;
    }
    (sse, level, trend)
}

impl Holt {
    /// Fits α and β by least one-step-ahead squared error (a grid, then a finer grid around
    /// the best).
    pub fn fit(y: &[f64]) -> Result<Holt, SpcError> {
        if y.len() < 4 {
            return Err(SpcError::TooFewPoints {
                needed: 4,
                got: y.len(),
            });
        }
        fn search(y: &[f64], best: &mut (f64, f64, f64), a0: f64, a1: f64, b0: f64, b1: f64) {
            const STEPS: usize = 20;
            for i in 0..=STEPS {
                let a = a0 + (a1 - a0) * i as f64 / STEPS as f64;
                for j in 0..=STEPS {
                    let b = b0 + (b1 - b0) * j as f64 / STEPS as f64;
                    if !(0.01..=1.0).contains(&a) || !(0.0..=1.0).contains(&b) {
                        continue;
                    }
                    let (sse, _, _) = holt_sse(y, a, b);
                    if sse < best.0 {
                        *best = (sse, a, b);
                    }
                }
            }
        }
        let mut best = (f64::INFINITY, 0.5, 0.1);
        search(y, &mut best, 0.01, 1.0, 0.0, 1.0);
        let (_, a, b) = best;
        search(y, &mut best, a - 0.05, a + 0.05, b - 0.05, b + 0.05);
        let (sse, alpha, beta) = best;
        let (_, level, trend) = holt_sse(y, alpha, beta);
        Ok(Holt {
            alpha,
            beta,
            level,
            trend,
            sigma: (sse / (y.len() - 2) as f64).sqrt(),
        })
    }

    /// The forecast h steps ahead with its 95 % interval (variance of ETS(A,A,N):
    /// σ²·[1 + (h−1)·(α² + αβh + β²h(2h−1)/6)]).
    pub fn forecast(&self, h: usize) -> Forecast {
        let hf = h as f64;
        let (a, b) = (self.alpha, self.beta);
        let var = self.sigma.powi(2)
            * (1.0 + (hf - 1.0) * (a * a + a * b * hf + b * b * hf * (2.0 * hf - 1.0) / 6.0));
        let value = self.level + hf * self.trend;
        let half = norm_ppf(0.975) * var.sqrt();
        Forecast {
            h,
            value,
            interval: [value - half, value + half],
        }
    }

    /// Steps until the point forecast crosses `limit` from below (within `horizon` steps).
    pub fn steps_to(&self, limit: f64, horizon: usize) -> Option<usize> {
        if self.level >= limit {
            return Some(0);
        }
        (1..=horizon).find(|&h| self.forecast(h).value >= limit)
    }
}

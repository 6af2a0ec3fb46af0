//! Phase I baselines for individuals (I-MR) charts.
//!
//! centre = mean of the window; sigma = MR̄ / d2 with d2 = 2/√π ≈ 1.128 (moving ranges of
//! consecutive points), or the robust variant median(MR) / 0.954. With [`Transform::Log`]
//! every value is replaced by ln x first, so centre and sigma live on the log scale and the
//! limits are drawn back-transformed (`exp`) in the original units.

use serde::{Deserialize, Serialize};

use crate::SpcError;

/// d2 for moving ranges of two points: 2/√π.
pub const D2: f64 = std::f64::consts::FRAC_2_SQRT_PI;
/// Divisor for the median moving range (median-MR sigma estimator).
pub const MEDIAN_MR_DIVISOR: f64 = 0.954;
/// Default width of the control limits in sigmas.
pub const DEFAULT_K: f64 = 3.0;

/// How sigma is estimated from the moving ranges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigmaMethod {
    /// sigma = mean(MR) / d2.
    #[default]
    Mrbar,
    /// sigma = median(MR) / 0.954, robust to a few wild points in the window.
    Median,
    /// The paging detectors' Phase I ([`crate::detect::Phase1`]): points beyond 3.5 robust
    /// sigmas set aside, then the mean, the standard deviation (the process sigma, not the
    /// short-term one of moving ranges) and the lag-1 autocorrelation of the rest.
    Robust,
    /// Centre and sigma were given explicitly, not estimated.
    Given,
    /// Centre and sigma of an X̄-S chart over subgroups ([`crate::charts::XbarSLimits`]),
    /// not estimated from individual points.
    XbarS,
}

impl SigmaMethod {
    /// The name used in configs, the CLI and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            SigmaMethod::Mrbar => "mrbar",
            SigmaMethod::Median => "median",
            SigmaMethod::Robust => "robust",
            SigmaMethod::Given => "given",
            SigmaMethod::XbarS => "xbar_s",
        }
    }

    /// Parses [`SigmaMethod::as_str`]'s form.
    pub fn parse(s: &str) -> Option<SigmaMethod> {
        [
            SigmaMethod::Mrbar,
            SigmaMethod::Median,
            SigmaMethod::Robust,
            SigmaMethod::Given,
            SigmaMethod::XbarS,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

/// Transform applied to values before any statistic is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// Values are used as they are.
    #[default]
    None,
    /// Natural logarithm; for right-skewed metrics such as latency. Values must be > 0.
    Log,
}

impl Transform {
    /// The name used in configs, the CLI and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Transform::None => "none",
            Transform::Log => "log",
        }
    }

    /// Parses [`Transform::as_str`]'s form.
    pub fn parse(s: &str) -> Option<Transform> {
        [Transform::None, Transform::Log]
            .into_iter()
            .find(|t| t.as_str() == s)
    }

    /// Applies the transform to the value at `index` (the index only feeds error messages).
    pub fn apply(self, index: usize, x: f64) -> Result<f64, SpcError> {
        if !x.is_finite() {
            return Err(SpcError::NonFiniteValue { index, value: x });
        }
        match self {
            Transform::None => Ok(x),
            Transform::Log if x > 0.0 => Ok(x.ln()),
            Transform::Log => Err(SpcError::NonPositiveForLog { index, value: x }),
        }
    }

    /// Maps a value on the transformed scale back to original units.
    pub fn invert(self, y: f64) -> f64 {
        match self {
            Transform::None => y,
            Transform::Log => y.exp(),
        }
    }
}

/// Options for [`Baseline::estimate`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineOptions {
    /// Sigma estimator.
    pub method: SigmaMethod,
    /// Transform applied before estimation.
    pub transform: Transform,
    /// Width of the control limits in sigmas (UCL/LCL = centre ± k·sigma).
    pub k: f64,
}

impl Default for BaselineOptions {
    fn default() -> Self {
        BaselineOptions {
            method: SigmaMethod::Mrbar,
            transform: Transform::None,
            k: DEFAULT_K,
        }
    }
}

/// The reference the rules judge against: centre and sigma on the (possibly transformed)
/// scale, the limit width and how it was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Centre line on the transformed scale.
    pub center: f64,
    /// Process sigma on the transformed scale.
    pub sigma: f64,
    /// Limit width in sigmas.
    pub k: f64,
    /// How sigma was obtained.
    pub method: SigmaMethod,
    /// Transform the centre and sigma live on.
    pub transform: Transform,
    /// Number of points the baseline was estimated from (0 when given).
    pub points: usize,
    /// Lag-1 autocorrelation of the Phase I points on the transformed scale (the `robust`
    /// method; 0 otherwise), which the paging detector's residuals account for.
    #[serde(default)]
    pub phi: f64,
}

impl Baseline {
    /// Estimates centre and sigma from a Phase I window of raw values.
    pub fn estimate(values: &[f64], opts: &BaselineOptions) -> Result<Baseline, SpcError> {
        check_k(opts.k)?;
        if values.len() < 2 {
            return Err(SpcError::TooFewPoints {
                needed: 2,
                got: values.len(),
            });
        }
        let ys = values
            .iter()
            .enumerate()
            .map(|(i, &x)| opts.transform.apply(i, x))
            .collect::<Result<Vec<f64>, _>>()?;
        if opts.method == SigmaMethod::Robust {
            let p = crate::detect::Phase1::estimate(&ys)?;
            return Ok(Baseline {
                center: p.mean,
                sigma: p.sd,
                k: opts.k,
                method: SigmaMethod::Robust,
                transform: opts.transform,
                points: values.len(),
                phi: p.phi,
            });
        }
        let center = ys.iter().sum::<f64>() / ys.len() as f64;
        let mut mrs: Vec<f64> = ys.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
        let sigma = match opts.method {
            SigmaMethod::Mrbar | SigmaMethod::Given | SigmaMethod::XbarS | SigmaMethod::Robust => {
                mrs.iter().sum::<f64>() / mrs.len() as f64 / D2
            }
            SigmaMethod::Median => median(&mut mrs) / MEDIAN_MR_DIVISOR,
        };
        if sigma == 0.0 {
            return Err(SpcError::ZeroSigma);
        }
        if !sigma.is_finite() {
            return Err(SpcError::InvalidSigma(sigma));
        }
        if !center.is_finite() {
            return Err(SpcError::InvalidCenter(center));
        }
        Ok(Baseline {
            center,
            sigma,
            k: opts.k,
            method: if matches!(opts.method, SigmaMethod::Given | SigmaMethod::XbarS) {
                SigmaMethod::Mrbar
            } else {
                opts.method
            },
            transform: opts.transform,
            points: values.len(),
            phi: 0.0,
        })
    }

    /// A baseline with a known centre and sigma (on the transformed scale).
    pub fn given(
        center: f64,
        sigma: f64,
        k: f64,
        transform: Transform,
    ) -> Result<Baseline, SpcError> {
        check_k(k)?;
        if !center.is_finite() {
            return Err(SpcError::InvalidCenter(center));
        }
        if sigma == 0.0 {
            return Err(SpcError::ZeroSigma);
        }
        if !(sigma.is_finite() && sigma > 0.0) {
            return Err(SpcError::InvalidSigma(sigma));
        }
        Ok(Baseline {
            center,
            sigma,
            k,
            method: SigmaMethod::Given,
            transform,
            points: 0,
            phi: 0.0,
        })
    }

    /// The Phase I estimate the paging detector reads (centre, sigma and φ on the
    /// transformed scale; a given baseline counts as a Phase I of its `points`, at least
    /// 300, since it is taken as known).
    pub fn phase1(&self) -> crate::detect::Phase1 {
        crate::detect::Phase1 {
            mean: self.center,
            sd: self.sigma,
            phi: self.phi,
            used: if self.method == SigmaMethod::Given {
                self.points.max(crate::detect::defaults::PHASE1)
            } else {
                self.points
            },
            rejected: 0,
        }
    }

    /// The limits on the transformed scale.
    pub fn limits(&self) -> Limits {
        Limits {
            center: self.center,
            sigma: self.sigma,
        }
    }

    /// z-score of a raw value: transform, then (y − centre) / sigma.
    pub fn z(&self, index: usize, x: f64) -> Result<f64, SpcError> {
        let y = self.transform.apply(index, x)?;
        Ok((y - self.center) / self.sigma)
    }

    /// Centre line in original units (the geometric mean under the log transform).
    pub fn center_original(&self) -> f64 {
        self.transform.invert(self.center)
    }

    /// Upper control limit in original units.
    pub fn ucl(&self) -> f64 {
        self.transform.invert(self.center + self.k * self.sigma)
    }

    /// Lower control limit in original units.
    pub fn lcl(&self) -> f64 {
        self.transform.invert(self.center - self.k * self.sigma)
    }

    /// The boundary `center + m·sigma` in original units, for drawing ±1σ/±2σ zones.
    pub fn zone(&self, m: f64) -> f64 {
        self.transform.invert(self.center + m * self.sigma)
    }
}

fn check_k(k: f64) -> Result<(), SpcError> {
    if k.is_finite() && k > 0.0 {
        Ok(())
    } else {
        Err(SpcError::param(
            "k",
            format!("must be a finite number > 0, got {k}"),
        ))
    }
}

/// Median of a non-empty slice (reorders it).
pub(crate) fn median(xs: &mut [f64]) -> f64 {
    // selection, not a sort: O(n) (the design of the paging CUSUM estimates thousands of
    // Phase I samples)
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    let (lo, mid, _) = xs.select_nth_unstable_by(n / 2, f64::total_cmp);
    let mid = *mid;
    if n % 2 == 1 {
        mid
    } else {
        let below = lo.iter().copied().max_by(f64::total_cmp).unwrap_or(mid);
        (below + mid) / 2.0
    }
}

/// Centre and sigma on the scale the rules run on; `z = (y − center) / sigma`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Centre line.
    pub center: f64,
    /// Sigma (> 0).
    pub sigma: f64,
}

impl Limits {
    /// z-score of a value already on the limits' scale.
    #[inline]
    pub fn z(&self, y: f64) -> f64 {
        (y - self.center) / self.sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrbar_estimate_matches_hand_computation() {
        let b = Baseline::estimate(&[1.0, 3.0, 2.0, 4.0], &BaselineOptions::default()).unwrap();
        assert!((b.center - 2.5).abs() < 1e-12);
        // moving ranges 2, 1, 2 -> mean 5/3
        assert!((b.sigma - (5.0 / 3.0) / D2).abs() < 1e-12);
        assert!((b.ucl() - (2.5 + 3.0 * b.sigma)).abs() < 1e-12);
        assert!((b.lcl() - (2.5 - 3.0 * b.sigma)).abs() < 1e-12);
        assert_eq!(b.points, 4);
    }

    #[test]
    fn d2_is_two_over_sqrt_pi() {
        assert!((D2 - 2.0 / std::f64::consts::PI.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn median_estimate_resists_one_wild_point() {
        let vals = [10.0, 11.0, 10.0, 11.0, 10.0, 500.0, 10.0, 11.0, 10.0];
        let opts = BaselineOptions {
            method: SigmaMethod::Median,
            ..Default::default()
        };
        let b = Baseline::estimate(&vals, &opts).unwrap();
        // moving ranges: 1,1,1,1,490,490,1,1 -> median 1
        assert!((b.sigma - 1.0 / MEDIAN_MR_DIVISOR).abs() < 1e-12);
        let m = Baseline::estimate(&vals, &BaselineOptions::default()).unwrap();
        assert!(m.sigma > 50.0);
    }

    #[test]
    fn log_transform_works_on_the_log_scale() {
        let vals = [100.0, 200.0, 100.0, 200.0];
        let opts = BaselineOptions {
            transform: Transform::Log,
            ..Default::default()
        };
        let b = Baseline::estimate(&vals, &opts).unwrap();
        let mid = (100f64.ln() + 200f64.ln()) / 2.0;
        assert!((b.center - mid).abs() < 1e-12);
        assert!((b.center_original() - (100.0f64 * 200.0).sqrt()).abs() < 1e-9);
        assert!((b.sigma - 2f64.ln() / D2).abs() < 1e-12);
        assert!(b.lcl() > 0.0, "back-transformed lcl stays positive");
        assert!(b.z(0, 150.0).unwrap().abs() < 0.5);
    }

    #[test]
    fn errors_are_clear() {
        let opts = BaselineOptions::default();
        assert_eq!(
            Baseline::estimate(&[1.0], &opts),
            Err(SpcError::TooFewPoints { needed: 2, got: 1 })
        );
        assert_eq!(
            Baseline::estimate(&[5.0, 5.0, 5.0], &opts),
            Err(SpcError::ZeroSigma)
        );
        let err = Baseline::estimate(&[1.0, f64::NAN], &opts).unwrap_err();
        assert!(matches!(err, SpcError::NonFiniteValue { index: 1, .. }));
        assert!(err.to_string().contains("index 1"));
        let log = BaselineOptions {
            transform: Transform::Log,
            ..opts
        };
        assert!(matches!(
            Baseline::estimate(&[1.0, 0.0], &log),
            Err(SpcError::NonPositiveForLog { index: 1, .. })
        ));
        assert_eq!(
            Baseline::given(0.0, 0.0, 3.0, Transform::None),
            Err(SpcError::ZeroSigma)
        );
        assert!(matches!(
            Baseline::given(0.0, f64::INFINITY, 3.0, Transform::None),
            Err(SpcError::InvalidSigma(_))
        ));
        assert!(matches!(
            Baseline::given(0.0, -1.0, 3.0, Transform::None),
            Err(SpcError::InvalidSigma(_))
        ));
        assert!(matches!(
            Baseline::given(f64::NAN, 1.0, 3.0, Transform::None),
            Err(SpcError::InvalidCenter(_))
        ));
        assert!(Baseline::given(0.0, 1.0, 0.0, Transform::None).is_err());
    }

    #[test]
    fn k_sets_the_limit_width() {
        let b = Baseline::given(10.0, 2.0, 2.5, Transform::None).unwrap();
        assert_eq!(b.ucl(), 15.0);
        assert_eq!(b.lcl(), 5.0);
        assert_eq!(b.zone(-1.0), 8.0);
        assert_eq!(b.method, SigmaMethod::Given);
    }
}

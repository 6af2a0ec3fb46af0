//! Phase I estimation robust to a few wild points, with the lag-1 autocorrelation.
//!
//! Points farther than [`REJECT_AT`] robust sigmas (MADn = 1.4826 × median absolute
//! deviation) from the median are set aside; the mean and the sample standard deviation of
//! the rest estimate the centre and the process sigma (so a 5 % share of 5σ outliers neither
//! drags the centre nor inflates sigma), and the lag-1 autocorrelation of the consecutive
//! kept pairs estimates φ of an AR(1) process (clamped to [0, [`MAX_PHI`]]: negative
//! autocorrelation is treated as none, and so is one below two standard errors, 2/√n, which
//! independent data show 2.5 % of the time). Under normality almost nothing is rejected
//! (P(|Z| > 3.5) = 0.05 %), so the estimates are nearly as efficient as the plain ones.

use crate::SpcError;
use crate::baseline::median;

/// Rejection threshold in robust sigmas.
pub const REJECT_AT: f64 = 3.5;
/// Largest autocorrelation the residual chart accepts.
pub const MAX_PHI: f64 = 0.8;

/// A robust Phase I estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Phase1 {
    /// Centre (mean of the kept points).
    pub mean: f64,
    /// Process sigma (standard deviation of the kept points).
    pub sd: f64,
    /// Lag-1 autocorrelation of the kept points, in [0, 0.8].
    pub phi: f64,
    /// Points used.
    pub used: usize,
    /// Points set aside as outliers.
    pub rejected: usize,
}

impl Phase1 {
    /// Estimates from the (already transformed) Phase I values.
    pub fn estimate(ys: &[f64]) -> Result<Phase1, SpcError> {
        if ys.len() < 3 {
            return Err(SpcError::TooFewPoints {
                needed: 3,
                got: ys.len(),
            });
        }
        if let Some((index, &value)) = ys.iter().enumerate().find(|(_, y)| !y.is_finite()) {
            return Err(SpcError::NonFiniteValue { index, value });
        }
        let mut sorted = ys.to_vec();
        let med = median(&mut sorted);
        let mut dev: Vec<f64> = ys.iter().map(|y| (y - med).abs()).collect();
        let madn = 1.4826 * median(&mut dev);
        let keep: Vec<bool> = ys
            .iter()
            .map(|y| madn == 0.0 || (y - med).abs() <= REJECT_AT * madn)
            .collect();
        let kept: Vec<f64> = ys
            .iter()
            .zip(&keep)
            .filter(|(_, k)| **k)
            .map(|(y, _)| *y)
            .collect();
        if kept.len() < 3 {
            return Err(SpcError::TooFewPoints {
                needed: 3,
                got: kept.len(),
            });
        }
        let n = kept.len() as f64;
        let mean = kept.iter().sum::<f64>() / n;
        let var = kept.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sd = var.sqrt();
        if sd == 0.0 {
            return Err(SpcError::ZeroSigma);
        }
        // lag-1 autocorrelation over pairs of consecutive kept points
        let (mut num, mut pairs) = (0.0, 0usize);
        for i in 1..ys.len() {
            if keep[i] && keep[i - 1] {
                num += (ys[i] - mean) * (ys[i - 1] - mean);
                pairs += 1;
            }
        }
        // an autocorrelation below two standard errors (2/√pairs) is noise: whitening with it
        // would only shrink a real shift's residuals
        let r1 = if pairs > 0 {
            num / pairs as f64 / var
        } else {
            0.0
        };
        let phi = if r1 * (pairs as f64).sqrt() < 2.0 {
            0.0
        } else {
            r1.min(MAX_PHI)
        };
        Ok(Phase1 {
            mean,
            sd,
            phi,
            used: kept.len(),
            rejected: ys.len() - kept.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::rng::Rng;

    #[test]
    fn outliers_neither_move_the_centre_nor_inflate_sigma() {
        let mut r = Rng::new(3);
        let mut ys: Vec<f64> = (0..200).map(|_| r.normal()).collect();
        let clean = Phase1::estimate(&ys).unwrap();
        for i in (0..200).step_by(20) {
            ys[i] = 5.0; // 5 % of the points at 5σ
        }
        let dirty = Phase1::estimate(&ys).unwrap();
        assert_eq!(dirty.rejected, 10, "{dirty:?}");
        assert!(
            (dirty.mean - clean.mean).abs() < 0.1,
            "{dirty:?} vs {clean:?}"
        );
        assert!(
            (dirty.sd / clean.sd - 1.0).abs() < 0.1,
            "{dirty:?} vs {clean:?}"
        );
        // the plain estimates would have moved by a quarter sigma
        let plain = ys.iter().sum::<f64>() / 200.0;
        assert!((plain - clean.mean) > 0.2);
    }

    #[test]
    fn autocorrelation_is_estimated() {
        let mut r = Rng::new(11);
        let mut y = 0.0;
        let ys: Vec<f64> = (0..2000)
            .map(|_| {
                y = 0.5 * y + r.normal();
                y
            })
            .collect();
        let p = Phase1::estimate(&ys).unwrap();
        assert!((p.phi - 0.5).abs() < 0.06, "{p:?}");
        let iid: Vec<f64> = (0..2000).map(|_| r.normal()).collect();
        assert!(Phase1::estimate(&iid).unwrap().phi < 0.06);
        assert!(Phase1::estimate(&[1.0, 1.0, 1.0]).is_err());
        assert!(Phase1::estimate(&[1.0, f64::NAN, 2.0]).is_err());
    }
}

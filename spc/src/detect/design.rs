//! Designing a two-sided CUSUM for a target in-control average run length (ARL0).
//!
//! [`siegmund_arl`] is Siegmund's (1985) approximation of a one-sided CUSUM's ARL for
//! N(μ, 1) data: with drift Δ = μ − k and b = h + 1.166,
//! ARL = (e^(−2Δb) + 2Δb − 1) / (2Δ²), and b² when Δ = 0; the two sides combine as
//! 1/ARL = 1/ARL⁺ + 1/ARL⁻ ([`cusum_arl`]). Published values it reproduces (tests): the
//! two-sided k = 0.5 CUSUM has ARL0 ≈ 168 at h = 4 and ≈ 465 at h = 5.
//!
//! With estimated parameters the chart judges e = (y − μ̂)/σ̂. Writing U = (μ̂ − μ)/σ and
//! V = σ̂/σ, the upper CUSUM of e is a CUSUM of N(δ, 1) data with reference U + Vk and decision
//! interval Vh (δ the true shift), the lower one with reference Vk − U, so each Phase I gives
//! its own, *conditional* ARL0 (CARL0). [`design_cusum`] draws the estimator's (U, V) from
//! simulated Phase I samples of the given size — the same robust estimator the live engine
//! uses ([`Phase1`]) — and chooses the smallest h for which the false-alarm rate averaged
//! over those draws, E[1/CARL0], is at most 1/target: a fleet of series, each with its own
//! Phase I, raises false alarms at the designed rate. The design also reports how often a
//! single series reaches the target and half of it (the "guaranteed in-control performance"
//! view of Goedhart, Schoonhoven & Does, 2017). The draws use a fixed seed: the same inputs
//! always give the same h.

use super::phase1::Phase1;
use super::rng::Rng;
use crate::SpcError;

/// Draws of the Phase I estimation error used by [`design_cusum`].
pub const DRAWS: usize = 2000;
/// Largest decision interval a design may choose.
pub const MAX_H: f64 = 40.0;

/// One-sided CUSUM ARL for N(μ, 1) data and drift `delta` = μ − k (Siegmund).
pub fn siegmund_arl(delta: f64, h: f64) -> f64 {
    let b = h + 1.166;
    if delta.abs() < 1e-9 {
        return b * b;
    }
    let x = 2.0 * delta * b;
    ((-x).exp() + x - 1.0) / (2.0 * delta * delta)
}

/// Two-sided CUSUM ARL on N(`shift`, 1) data with reference `k` and interval `h`.
pub fn cusum_arl(shift: f64, k: f64, h: f64) -> f64 {
    conditional_arl(shift, 0.0, 1.0, k, h)
}

/// Two-sided ARL with estimation error: true shift `shift`, U = (μ̂ − μ)/σ, V = σ̂/σ.
fn conditional_arl(shift: f64, u: f64, v: f64, k: f64, h: f64) -> f64 {
    let up = siegmund_arl(shift - u - v * k, v * h);
    let down = siegmund_arl(-shift + u - v * k, v * h);
    1.0 / (1.0 / up + 1.0 / down)
}

/// A designed two-sided CUSUM.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CusumDesign {
    /// Reference value (allowance), in sigmas.
    pub k: f64,
    /// Decision interval, in sigmas.
    pub h: f64,
    /// The target in-control ARL (points per false alarm, averaged over Phase I errors).
    pub arl0: f64,
    /// Phase I size the design accounts for.
    pub phase1: usize,
    /// Share of Phase I draws whose own ARL0 reaches the target.
    pub p_target: f64,
    /// Share of Phase I draws whose own ARL0 reaches half the target.
    pub p_half: f64,
    /// The median conditional ARL0 at `h` (what a typical series gets).
    pub median_arl0: f64,
    /// The interval that would give the target with known parameters.
    pub h_known: f64,
}

impl CusumDesign {
    /// The ARL of this design for a true shift of `shift` sigmas, with known parameters.
    pub fn arl(&self, shift: f64) -> f64 {
        cusum_arl(shift, self.k, self.h)
    }

    /// Expected false alarms per day at `points_per_day` (at the designed rate).
    pub fn false_alarms_per_day(&self, points_per_day: f64) -> f64 {
        points_per_day / self.arl0
    }
}

fn check(k: f64, arl0: f64, phase1: usize) -> Result<(), SpcError> {
    if !(k > 0.0 && k <= 3.0) {
        return Err(SpcError::param(
            "cusum.k",
            format!("must be in (0, 3], got {k}"),
        ));
    }
    if !(100.0..=1e9).contains(&arl0) {
        return Err(SpcError::param(
            "cusum.arl0",
            format!("must be from 100 to 1e9 points, got {arl0}"),
        ));
    }
    if phase1 < 20 {
        return Err(SpcError::param(
            "baseline_points",
            format!("a designed CUSUM needs a Phase I of at least 20 points, got {phase1}"),
        ));
    }
    Ok(())
}

/// The smallest h in [0, MAX_H] with `ok(h)`, by bisection (`ok` is monotone in h).
fn smallest_h(ok: impl Fn(f64) -> bool) -> Option<f64> {
    if !ok(MAX_H) {
        return None;
    }
    let (mut lo, mut hi) = (0.0, MAX_H);
    for _ in 0..50 {
        let mid = (lo + hi) / 2.0;
        if ok(mid) { hi = mid } else { lo = mid }
    }
    Some(hi)
}

/// Designs a two-sided CUSUM with reference `k` whose false-alarm rate, averaged over the
/// estimation error of a Phase I of `phase1` points, is one per `arl0` points (see the
/// module docs). Errors name the parameter that cannot be met.
pub fn design_cusum(k: f64, arl0: f64, phase1: usize) -> Result<CusumDesign, SpcError> {
    check(k, arl0, phase1)?;
    let mut rng = Rng::new(0x05EE_DC05_u64 ^ phase1 as u64);
    let mut draws = Vec::with_capacity(DRAWS);
    let mut ys = vec![0.0; phase1];
    while draws.len() < DRAWS {
        ys.iter_mut().for_each(|y| *y = rng.normal());
        if let Ok(p) = Phase1::estimate(&ys) {
            draws.push((p.mean, p.sd));
        }
    }
    let rate = |h: f64| {
        draws
            .iter()
            .map(|&(u, v)| 1.0 / conditional_arl(0.0, u, v, k, h))
            .sum::<f64>()
            / DRAWS as f64
    };
    let h = smallest_h(|h| rate(h) <= 1.0 / arl0).ok_or_else(|| {
        SpcError::param(
            "cusum.arl0",
            format!(
                "a Phase I of {phase1} points cannot deliver an in-control ARL of {arl0} (the decision interval would exceed {MAX_H}); use more baseline points or a smaller target"
            ),
        )
    })?;
    let h_known = smallest_h(|h| cusum_arl(0.0, k, h) >= arl0).unwrap_or(MAX_H);
    let mut carl: Vec<f64> = draws
        .iter()
        .map(|&(u, v)| conditional_arl(0.0, u, v, k, h))
        .collect();
    carl.sort_by(f64::total_cmp);
    let share = |t: f64| carl.iter().filter(|c| **c >= t).count() as f64 / DRAWS as f64;
    Ok(CusumDesign {
        k,
        h,
        arl0,
        phase1,
        p_target: share(arl0),
        p_half: share(arl0 / 2.0),
        median_arl0: carl[DRAWS / 2],
        h_known,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn siegmund_reproduces_published_arls() {
        // two-sided CUSUM, k = 0.5: ARL0 168 (h = 4), 465 (h = 5) (Montgomery, table 9.4)
        assert!(
            (cusum_arl(0.0, 0.5, 4.0) - 168.0).abs() < 3.0,
            "{}",
            cusum_arl(0.0, 0.5, 4.0)
        );
        assert!(
            (cusum_arl(0.0, 0.5, 5.0) - 465.0).abs() < 5.0,
            "{}",
            cusum_arl(0.0, 0.5, 5.0)
        );
        // out of control, h = 5: 1σ → 10.4, 2σ → 4.01 (same table)
        assert!((cusum_arl(1.0, 0.5, 5.0) - 10.4).abs() < 0.5);
        assert!((cusum_arl(2.0, 0.5, 5.0) - 4.01).abs() < 0.2);
    }

    #[test]
    fn the_design_pays_for_estimation_error_and_still_detects() {
        let d = design_cusum(0.5, 100_000.0, 200).unwrap();
        assert!(d.h > d.h_known, "{d:?}");
        assert!((cusum_arl(0.0, 0.5, d.h_known) / 100_000.0 - 1.0).abs() < 0.01);
        assert!(d.median_arl0 > d.arl0 && d.p_half > 0.8, "{d:?}");
        assert!(d.arl(1.0) < 26.0 && d.arl(2.0) < 10.0, "{d:?}");
        let again = design_cusum(0.5, 100_000.0, 200).unwrap();
        assert_eq!(d, again, "deterministic");
        let e = design_cusum(0.5, 1e9, 20).unwrap_err().to_string();
        assert!(e.contains("cusum.arl0") && e.contains("20 points"), "{e}");
        assert!(design_cusum(0.0, 1000.0, 100).is_err());
    }
}

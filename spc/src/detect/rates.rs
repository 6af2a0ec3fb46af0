//! Expected false alarms of a Nelson rule configuration, by simulation: the chart markers a
//! healthy series raises per judged point, for the rules as configured, episodes ending after
//! `resolve_after` quiet points and a baseline estimated from a Phase I of the configured size
//! and estimator (the estimation error raises the rate above the textbook figure). Seeded:
//! the same arguments give the same figure.

use super::rng::Rng;
use crate::{Baseline, BaselineOptions, EpisodeEvent, EpisodeTracker, NelsonConfig, NelsonState};
use crate::{SigmaMethod, Transform};

/// Phase I draws of [`marker_rate`].
pub const DRAWS: usize = 200;
/// Judged points per draw.
pub const POINTS: usize = 2000;

/// Marker episodes opened per judged point on in-control normal data (0 when no rule is
/// enabled).
pub fn marker_rate(
    cfg: &NelsonConfig,
    resolve_after: u32,
    phase1: usize,
    method: SigmaMethod,
    seed: u64,
) -> f64 {
    let rules = cfg.compile_ref();
    let opts = BaselineOptions {
        method,
        transform: Transform::None,
        k: crate::baseline::DEFAULT_K,
    };
    let mut r = Rng::new(seed);
    let (mut opened, mut judged) = (0usize, 0usize);
    let mut ys = vec![0.0; phase1.max(3)];
    for _ in 0..DRAWS {
        ys.iter_mut().for_each(|y| *y = r.normal());
        let Ok(b) = Baseline::estimate(&ys, &opts) else {
            continue;
        };
        let (mut st, mut tr) = (NelsonState::new(), EpisodeTracker::new(resolve_after));
        for i in 0..POINTS {
            let Ok(z) = b.z(0, r.normal()) else {
                continue;
            };
            let flags = st.push(z, &rules.0);
            tr.push(i as u64, flags, |e| {
                if matches!(e, EpisodeEvent::Opened { .. }) {
                    opened += 1;
                }
            });
            judged += 1;
        }
    }
    opened as f64 / judged.max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{episode, nelson};

    /// The figure against an independent count: the reference implementation of the rules and
    /// the batch episode grouping, on other data, with known limits (no Phase I error).
    #[test]
    fn the_marker_rate_matches_an_independent_simulation() {
        let cfg = NelsonConfig::default();
        let ours = marker_rate(&cfg, 20, 100_000, SigmaMethod::Mrbar, 1);
        let mut r = Rng::new(99);
        let zs: Vec<f64> = (0..400_000).map(|_| r.normal()).collect();
        let flags = nelson::reference::evaluate(&zs, &cfg);
        let eps = episode::episodes(&flags, &cfg, 20);
        let theirs = eps.len() as f64 / zs.len() as f64;
        assert!(
            (ours / theirs - 1.0).abs() < 0.1,
            "marker rate {ours} vs independent {theirs}"
        );
        // rule 1 alone with known limits: P(|Z| > 3) = 0.0027 per point (episodes merge a little)
        let mut one = NelsonConfig::default();
        for rule in 2..=8 {
            one.set_param(&format!("{rule}.enabled"), "false").unwrap();
        }
        let r1 = marker_rate(&one, 1, 100_000, SigmaMethod::Mrbar, 2);
        assert!((r1 / 0.0027 - 1.0).abs() < 0.15, "{r1}");
        // an estimated baseline raises it
        let est = marker_rate(&one, 1, 50, SigmaMethod::Mrbar, 3);
        assert!(est > r1 * 1.2, "{est} vs {r1}");
    }
}

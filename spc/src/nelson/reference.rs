//! A deliberately naive implementation that rescans each rule's window at every point.
//!
//! It shares nothing with [`super::NelsonState`] but the rule definitions, so tests use it as
//! an oracle and the benchmark as the baseline the incremental evaluator is compared with.
//! O(window) work per point; do not use it in production paths.

use super::{NelsonConfig, Rule, RuleFlags, TiePolicy};

/// Flags for every point, computed by rescanning windows.
pub fn evaluate(zs: &[f64], cfg: &NelsonConfig) -> Vec<RuleFlags> {
    (0..zs.len()).map(|i| flags_at(zs, i, cfg)).collect()
}

fn last(zs: &[f64], i: usize, n: u32) -> Option<&[f64]> {
    let n = n as usize;
    (i + 1 >= n).then(|| &zs[i + 1 - n..=i])
}

fn step(a: f64, b: f64) -> i8 {
    if b > a {
        1
    } else if b < a {
        -1
    } else {
        0
    }
}

/// The flags of point `i` given all points up to it.
pub fn flags_at(zs: &[f64], i: usize, cfg: &NelsonConfig) -> RuleFlags {
    let z = zs[i];
    let mut f = RuleFlags::NONE;
    if z.abs() > cfg.rule1.k {
        f.insert(Rule::R1);
    }
    if let Some(w) = last(zs, i, cfg.rule2.run)
        && (w.iter().all(|&v| v > 0.0) || w.iter().all(|&v| v < 0.0))
    {
        f.insert(Rule::R2);
    }
    if rule3(zs, i, cfg) {
        f.insert(Rule::R3);
    }
    if let Some(w) = last(zs, i, cfg.rule4.run) {
        let steps: Vec<i8> = w.windows(2).map(|p| step(p[0], p[1])).collect();
        if steps.iter().all(|&s| s != 0) && steps.windows(2).all(|p| p[0] == -p[1]) {
            f.insert(Rule::R4);
        }
    }
    for (rule, p) in [(Rule::R5, cfg.rule5), (Rule::R6, cfg.rule6)] {
        if i + 1 < p.window as usize {
            continue; // a signal needs the full window
        }
        let start = (i + 1).saturating_sub(p.window as usize);
        let w = &zs[start..=i];
        let above = w.iter().filter(|&&v| v > p.k).count() as u32;
        let below = w.iter().filter(|&&v| v < -p.k).count() as u32;
        if (z > p.k && above >= p.count) || (z < -p.k && below >= p.count) {
            f.insert(rule);
        }
    }
    for (rule, p, inside) in [(Rule::R7, cfg.rule7, true), (Rule::R8, cfg.rule8, false)] {
        if let Some(w) = last(zs, i, p.run) {
            let ok = w.iter().all(|&v| (v.abs() <= p.k) == inside);
            let sides = w.iter().any(|&v| v > 0.0) && w.iter().any(|&v| v < 0.0);
            if ok && (!p.both_sides || sides) {
                f.insert(rule);
            }
        }
    }
    f & cfg.enabled()
}

fn rule3(zs: &[f64], i: usize, cfg: &NelsonConfig) -> bool {
    let need = cfg.rule3.run as usize - 1;
    if i == 0 {
        return false;
    }
    match cfg.rule3.ties {
        TiePolicy::Break => last(zs, i, cfg.rule3.run).is_some_and(|w| {
            w.windows(2).all(|p| p[1] > p[0]) || w.windows(2).all(|p| p[1] < p[0])
        }),
        TiePolicy::Ignore => {
            let dir = step(zs[i - 1], zs[i]);
            if dir == 0 {
                return false;
            }
            let mut count = 0;
            let mut j = i;
            while j >= 1 {
                match step(zs[j - 1], zs[j]) {
                    0 => {}
                    s if s == dir => count += 1,
                    _ => break,
                }
                if count >= need {
                    return true;
                }
                j -= 1;
            }
            false
        }
    }
}

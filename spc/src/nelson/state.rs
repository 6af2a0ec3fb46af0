//! The incremental evaluator: O(1) work per point and a fixed-size state per series.
//!
//! Every rule is a counter or a bit window updated from the new z-score alone:
//! runs (rules 2, 3, 4, 7, 8) are saturating counters, k-of-n windows (rules 5, 6) are 64-bit
//! shift registers whose popcount is the count, and the "both sides" options keep the age of
//! the latest point above and below the centre. Nothing depends on how many points came
//! before, so the state is the same size for a series of ten points or ten billion.

use super::{RuleFlags, config::CompiledRules};

/// Per-series rule state. Feed z-scores in time order with [`NelsonState::push`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NelsonState {
    prev_z: f64,
    has_prev: bool,
    last_step: i8,
    r2_above: u32,
    r2_below: u32,
    r3_up: u32,
    r3_down: u32,
    r4_alt: u32,
    r5_above: u64,
    r5_below: u64,
    r6_above: u64,
    r6_below: u64,
    r7_run: u32,
    r8_run: u32,
    /// Points since the latest z > 0 (0 = this point).
    age_pos: u32,
    /// Points since the latest z < 0.
    age_neg: u32,
    /// Points seen (saturating): rules 5 and 6 need a full window.
    seen: u32,
}

impl Default for NelsonState {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
fn bump(run: u32, cond: bool) -> u32 {
    if cond { run.saturating_add(1) } else { 0 }
}

impl NelsonState {
    /// A fresh state: no point seen yet.
    pub const fn new() -> Self {
        NelsonState {
            prev_z: 0.0,
            has_prev: false,
            last_step: 0,
            r2_above: 0,
            r2_below: 0,
            r3_up: 0,
            r3_down: 0,
            r4_alt: 0,
            r5_above: 0,
            r5_below: 0,
            r6_above: 0,
            r6_below: 0,
            r7_run: 0,
            r8_run: 0,
            age_pos: u32::MAX,
            age_neg: u32::MAX,
            seen: 0,
        }
    }

    /// Adds the next point's z-score and returns the enabled rules that fire on it.
    ///
    /// `z` must be finite (callers check; [`super::evaluate`] returns an error instead).
    #[inline]
    pub fn push(&mut self, z: f64, rules: &CompiledRules) -> RuleFlags {
        let mut fired = 0u8;

        // rule 1
        fired |= u8::from(z.abs() > rules.r1_k);

        // rule 2
        self.r2_above = bump(self.r2_above, z > 0.0);
        self.r2_below = bump(self.r2_below, z < 0.0);
        fired |= u8::from(self.r2_above >= rules.r2_run || self.r2_below >= rules.r2_run) << 1;

        // rules 3 and 4 look at the step from the previous point
        let step: i8 = if !self.has_prev {
            0
        } else if z > self.prev_z {
            1
        } else if z < self.prev_z {
            -1
        } else {
            0
        };
        if self.has_prev {
            if step == 0 && rules.r3_ignore_ties {
                // a tie neither breaks nor extends the trend, and is not flagged
            } else {
                self.r3_up = bump(self.r3_up, step > 0);
                self.r3_down = bump(self.r3_down, step < 0);
                fired |=
                    u8::from(self.r3_up >= rules.r3_steps || self.r3_down >= rules.r3_steps) << 2;
            }
            self.r4_alt = if step == 0 {
                0
            } else if self.last_step == -step {
                self.r4_alt.saturating_add(1)
            } else {
                1
            };
            self.last_step = step;
            fired |= u8::from(self.r4_alt >= rules.r4_steps) << 3;
        }
        self.prev_z = z;
        self.has_prev = true;

        // rules 5 and 6: shift registers, popcount = points beyond within the window; a
        // signal needs the whole window (3 points for rule 5, 5 for rule 6)
        self.seen = self.seen.saturating_add(1);
        let (full5, full6) = (self.seen >= rules.r5_window, self.seen >= rules.r6_window);
        let (a5, b5) = (z > rules.r5_k, z < -rules.r5_k);
        self.r5_above = ((self.r5_above << 1) | u64::from(a5)) & rules.r5_mask;
        self.r5_below = ((self.r5_below << 1) | u64::from(b5)) & rules.r5_mask;
        fired |= u8::from(
            full5
                && ((a5 && self.r5_above.count_ones() >= rules.r5_count)
                    || (b5 && self.r5_below.count_ones() >= rules.r5_count)),
        ) << 4;
        let (a6, b6) = (z > rules.r6_k, z < -rules.r6_k);
        self.r6_above = ((self.r6_above << 1) | u64::from(a6)) & rules.r6_mask;
        self.r6_below = ((self.r6_below << 1) | u64::from(b6)) & rules.r6_mask;
        fired |= u8::from(
            full6
                && ((a6 && self.r6_above.count_ones() >= rules.r6_count)
                    || (b6 && self.r6_below.count_ones() >= rules.r6_count)),
        ) << 5;

        // rules 7 and 8, with the optional "both sides" requirement
        self.age_pos = if z > 0.0 {
            0
        } else {
            self.age_pos.saturating_add(1)
        };
        self.age_neg = if z < 0.0 {
            0
        } else {
            self.age_neg.saturating_add(1)
        };
        self.r7_run = bump(self.r7_run, z.abs() <= rules.r7_k);
        let r7 = self.r7_run >= rules.r7_run
            && (!rules.r7_both || (self.age_pos < rules.r7_run && self.age_neg < rules.r7_run));
        fired |= u8::from(r7) << 6;
        self.r8_run = bump(self.r8_run, z.abs() > rules.r8_k);
        let r8 = self.r8_run >= rules.r8_run
            && (!rules.r8_both || (self.age_pos < rules.r8_run && self.age_neg < rules.r8_run));
        fired |= u8::from(r8) << 7;

        RuleFlags(fired & rules.enabled.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nelson::{NelsonConfig, Rule, evaluate, flags_by_rule};

    fn fired(zs: &[f64], cfg: &NelsonConfig, rule: Rule) -> Vec<usize> {
        let f = evaluate(zs, cfg).unwrap();
        flags_by_rule(&f)[usize::from(rule.number() - 1)].clone()
    }

    fn d() -> NelsonConfig {
        NelsonConfig::default()
    }

    #[test]
    fn state_is_small() {
        assert!(std::mem::size_of::<NelsonState>() <= 256);
        assert!(
            std::mem::size_of::<NelsonState>() <= 96,
            "{}",
            std::mem::size_of::<NelsonState>()
        );
    }

    #[test]
    fn rule1_is_strict_on_the_limit() {
        assert_eq!(
            fired(&[3.0, -3.0, 3.000001, -3.1, 0.0], &d(), Rule::R1),
            vec![2, 3]
        );
    }

    #[test]
    fn rule2_center_breaks_and_run_continues() {
        let mut zs = vec![0.5; 8];
        zs.push(0.0);
        zs.extend([0.5; 11]); // indices 9..=19: fires at 17, 18, 19
        assert_eq!(fired(&zs, &d(), Rule::R2), vec![17, 18, 19]);
        let below = vec![-0.1; 9];
        assert_eq!(fired(&below, &d(), Rule::R2), vec![8]);
        // switching side restarts the count
        let mut sw = vec![0.1; 8];
        sw.extend([-0.1; 8]);
        assert!(fired(&sw, &d(), Rule::R2).is_empty());
    }

    #[test]
    fn rule3_ties_break_or_are_ignored() {
        let zs = [0.0, 0.1, 0.2, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
        // break: run restarts at the tie (index 3): 3..=8 is 6 points -> fires at 8
        assert_eq!(fired(&zs, &d(), Rule::R3), vec![8]);
        let mut ign = d();
        ign.rule3.ties = crate::nelson::TiePolicy::Ignore;
        // ignore: steps 0-1,1-2,3-4,4-5,5-6 are 5 up steps -> fires at 6, 7, 8
        assert_eq!(fired(&zs, &ign, Rule::R3), vec![6, 7, 8]);
        // a tie at the end is not flagged under ignore
        let tail = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.5];
        assert_eq!(fired(&tail, &ign, Rule::R3), vec![5]);
        let down = [0.5, 0.4, 0.3, 0.2, 0.1, 0.0, -0.1];
        assert_eq!(fired(&down, &d(), Rule::R3), vec![5, 6]);
    }

    #[test]
    fn rule4_needs_thirteen_alternating_steps_and_zero_step_breaks() {
        let alt: Vec<f64> = (0..15)
            .map(|i| if i % 2 == 0 { 0.2 } else { -0.2 })
            .collect();
        assert_eq!(fired(&alt, &d(), Rule::R4), vec![13, 14]);
        let mut broken = alt.clone();
        broken[6] = broken[5]; // zero step between 5 and 6
        assert!(fired(&broken, &d(), Rule::R4).is_empty());
    }

    #[test]
    fn rule5_point_itself_must_be_beyond() {
        // two beyond +2 then a point inside: fires at the second only
        assert_eq!(fired(&[2.5, 0.0, 2.1, 0.0], &d(), Rule::R5), vec![2]);
        // opposite sides do not count together
        assert!(fired(&[2.5, -2.5, 0.0], &d(), Rule::R5).is_empty());
        // exactly 2 sigma is not beyond
        assert!(fired(&[2.0, 2.0, 2.0], &d(), Rule::R5).is_empty());
        // a signal needs the full window: not at the second point of a series
        assert!(fired(&[2.5, 2.5], &d(), Rule::R5).is_empty());
        assert_eq!(fired(&[2.5, 2.5, 2.5], &d(), Rule::R5), vec![2]);
    }

    #[test]
    fn rule6_four_of_five() {
        assert!(
            fired(&[1.5, 1.5, 1.5, 1.5], &d(), Rule::R6).is_empty(),
            "needs 5 points"
        );
        assert_eq!(fired(&[1.5, 1.2, 0.0, 1.1, 1.3], &d(), Rule::R6), vec![4]);
        assert!(fired(&[1.5, 1.2, 0.0, 1.0, 1.3], &d(), Rule::R6).is_empty());
    }

    #[test]
    fn rule7_inclusive_boundary_and_both_sides_option() {
        let zs = vec![1.0; 15];
        assert_eq!(fired(&zs, &d(), Rule::R7), vec![14]);
        let mut both = d();
        both.rule7.both_sides = true;
        assert!(fired(&zs, &both, Rule::R7).is_empty());
        let mut mixed = vec![0.5; 14];
        mixed.push(-0.5);
        assert_eq!(fired(&mixed, &both, Rule::R7), vec![14]);
    }

    #[test]
    fn rule8_either_side_by_default_both_sides_optional() {
        let zs = vec![1.5; 8];
        assert_eq!(fired(&zs, &d(), Rule::R8), vec![7]);
        let mut both = d();
        both.rule8.both_sides = true;
        assert!(fired(&zs, &both, Rule::R8).is_empty());
        let mut mixed = vec![1.5; 7];
        mixed.push(-1.5);
        assert_eq!(fired(&mixed, &both, Rule::R8), vec![7]);
        // a point exactly on 1 sigma breaks the run
        let mut edge = vec![1.5; 7];
        edge.push(1.0);
        assert!(fired(&edge, &d(), Rule::R8).is_empty());
    }

    #[test]
    fn disabled_rules_never_fire() {
        let mut c = d();
        c.set_enabled(RuleFlags::only(Rule::R2));
        let f = evaluate(&[5.0; 9], &c).unwrap();
        assert!(f[..8].iter().all(|f| f.is_empty()));
        assert_eq!(f[8], RuleFlags::only(Rule::R2));
    }

    #[test]
    fn non_finite_is_an_error() {
        assert!(evaluate(&[0.0, f64::NAN], &d()).is_err());
    }
}

//! The eight Nelson rules (ARCHITECTURE §4).
//!
//! All rules work on z-scores, z = (x − centre) / sigma. The flagged point is the last point of
//! the qualifying window; in a longer run every further point that completes a window is
//! flagged too.
//!
//! | rule | fires on point i when (defaults) |
//! |---|---|
//! | 1 | \|z\| > 3 (a point on the limit is not a signal) |
//! | 2 | 9 points in a row with z > 0, or 9 with z < 0 (z = 0 breaks the run) |
//! | 3 | 6 points in a row strictly increasing or strictly decreasing (ties break, or are ignored) |
//! | 4 | 14 points in a row alternating up and down (a zero step breaks it) |
//! | 5 | ≥ 2 of the last 3 points beyond 2σ on one side, point i among them |
//! | 6 | ≥ 4 of the last 5 points beyond 1σ on one side, point i among them |
//! | 7 | 15 points in a row with \|z\| ≤ 1 (option: both sides of the centre present) |
//! | 8 | 8 points in a row with \|z\| > 1 (option: both sides present, Nelson's original) |
//!
//! Windows of rules 5 and 6 are partial at the start of a series: with fewer than `window`
//! points the available ones count.

mod config;
pub mod reference;
mod state;

pub use config::{
    CompiledRules, CompiledRulesRef, KOfNParams, NelsonConfig, Rule1Params, RunParams, TiePolicy,
    TrendParams, ZoneRunParams,
};
pub use state::NelsonState;

use serde::{Deserialize, Serialize};

use crate::{Baseline, SpcError};

/// One of the eight Nelson rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[repr(u8)]
pub enum Rule {
    /// One point beyond the control limits.
    R1 = 1,
    /// A run on one side of the centre line.
    R2 = 2,
    /// A steady trend up or down.
    R3 = 3,
    /// Systematic alternation up and down.
    R4 = 4,
    /// Two of three points beyond 2σ on one side.
    R5 = 5,
    /// Four of five points beyond 1σ on one side.
    R6 = 6,
    /// Stratification: a long run hugging the centre line.
    R7 = 7,
    /// Mixture: a run with no point near the centre line.
    R8 = 8,
}

impl Rule {
    /// All rules in order.
    pub const ALL: [Rule; 8] = [
        Rule::R1,
        Rule::R2,
        Rule::R3,
        Rule::R4,
        Rule::R5,
        Rule::R6,
        Rule::R7,
        Rule::R8,
    ];

    /// The rule's number, 1..=8.
    pub fn number(self) -> u8 {
        self as u8
    }

    /// The rule with this number, if it is 1..=8.
    pub fn from_number(n: u8) -> Option<Rule> {
        Rule::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// A short name for tables and legends.
    pub fn name(self) -> &'static str {
        match self {
            Rule::R1 => "beyond limits",
            Rule::R2 => "run on one side",
            Rule::R3 => "trend",
            Rule::R4 => "alternation",
            Rule::R5 => "2 of 3 beyond 2σ",
            Rule::R6 => "4 of 5 beyond 1σ",
            Rule::R7 => "stratification",
            Rule::R8 => "mixture",
        }
    }

    /// The rule in plain words, with its parameters, for people who never heard of Nelson.
    pub fn explain(self, cfg: &NelsonConfig) -> String {
        match self {
            Rule::R1 => format!(
                "a point is more than {}σ from the centre line: something unusual happened to this one call",
                fmt_num(cfg.rule1.k)
            ),
            Rule::R2 => format!(
                "{} points in a row on the same side of the centre line: the average has shifted",
                cfg.rule2.run
            ),
            Rule::R3 => format!(
                "{} points in a row steadily rising or falling: the process is drifting",
                cfg.rule3.run
            ),
            Rule::R4 => format!(
                "{} points in a row alternating up and down: two sources are taking turns (e.g. two replicas behind a load balancer)",
                cfg.rule4.run
            ),
            Rule::R5 => format!(
                "{} of the last {} points more than {}σ from the centre on the same side: a shift is likely starting",
                cfg.rule5.count,
                cfg.rule5.window,
                fmt_num(cfg.rule5.k)
            ),
            Rule::R6 => format!(
                "{} of the last {} points more than {}σ from the centre on the same side: a small sustained shift",
                cfg.rule6.count,
                cfg.rule6.window,
                fmt_num(cfg.rule6.k)
            ),
            Rule::R7 => format!(
                "{} points in a row within {}σ of the centre: less variation than the baseline — the limits may be stale or the data is being smoothed",
                cfg.rule7.run,
                fmt_num(cfg.rule7.k)
            ),
            Rule::R8 => format!(
                "{} points in a row more than {}σ from the centre: the data looks like a mixture of two different processes",
                cfg.rule8.run,
                fmt_num(cfg.rule8.k)
            ),
        }
    }
}

fn fmt_num(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

/// The set of rules that fired on one point: bit `n − 1` stands for rule `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RuleFlags(pub u8);

/// A set of rules, e.g. the enabled ones; same representation as [`RuleFlags`].
pub type RuleSet = RuleFlags;

impl RuleFlags {
    /// No rule.
    pub const NONE: RuleFlags = RuleFlags(0);
    /// All eight rules.
    pub const ALL: RuleFlags = RuleFlags(0xff);

    /// The set with just this rule.
    #[inline]
    pub fn only(rule: Rule) -> RuleFlags {
        RuleFlags(1 << (rule as u8 - 1))
    }

    /// Whether `rule` is in the set.
    #[inline]
    pub fn contains(self, rule: Rule) -> bool {
        self.0 & (1 << (rule as u8 - 1)) != 0
    }

    /// Adds `rule` to the set.
    #[inline]
    pub fn insert(&mut self, rule: Rule) {
        self.0 |= 1 << (rule as u8 - 1);
    }

    /// Whether the set is empty.
    #[inline]
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The rules in the set, in ascending order.
    pub fn iter(self) -> impl Iterator<Item = Rule> {
        Rule::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

impl std::ops::BitOr for RuleFlags {
    type Output = RuleFlags;
    fn bitor(self, rhs: RuleFlags) -> RuleFlags {
        RuleFlags(self.0 | rhs.0)
    }
}

impl std::ops::BitAnd for RuleFlags {
    type Output = RuleFlags;
    fn bitand(self, rhs: RuleFlags) -> RuleFlags {
        RuleFlags(self.0 & rhs.0)
    }
}

impl FromIterator<Rule> for RuleFlags {
    fn from_iter<I: IntoIterator<Item = Rule>>(iter: I) -> Self {
        let mut f = RuleFlags::NONE;
        for r in iter {
            f.insert(r);
        }
        f
    }
}

/// Batch evaluation over z-scores: exactly the flags that feeding the points one by one into a
/// fresh [`NelsonState`] gives.
pub fn evaluate(zs: &[f64], cfg: &NelsonConfig) -> Result<Vec<RuleFlags>, SpcError> {
    let compiled = cfg.compile()?;
    let mut state = NelsonState::new();
    zs.iter()
        .enumerate()
        .map(|(i, &z)| {
            if z.is_finite() {
                Ok(state.push(z, &compiled))
            } else {
                Err(SpcError::NonFiniteValue { index: i, value: z })
            }
        })
        .collect()
}

/// Batch evaluation of raw values against a baseline (the transform is applied).
pub fn evaluate_values(
    values: &[f64],
    baseline: &Baseline,
    cfg: &NelsonConfig,
) -> Result<Vec<RuleFlags>, SpcError> {
    let zs = values
        .iter()
        .enumerate()
        .map(|(i, &x)| baseline.z(i, x))
        .collect::<Result<Vec<f64>, _>>()?;
    evaluate(&zs, cfg)
}

/// Transposes per-point flags into, per rule, the ascending indices where it fired.
pub fn flags_by_rule(flags: &[RuleFlags]) -> [Vec<usize>; 8] {
    let mut out: [Vec<usize>; 8] = Default::default();
    for (i, f) in flags.iter().enumerate() {
        for r in f.iter() {
            out[usize::from(r.number() - 1)].push(i);
        }
    }
    out
}

//! Rule parameters, their validation and the compiled form the evaluator runs on.

use serde::{Deserialize, Serialize};

use super::{Rule, RuleFlags};
use crate::SpcError;

/// Longest k-of-n window rules 5 and 6 accept (the evaluator keeps one bit per point).
pub const MAX_WINDOW: u32 = 64;

/// How rule 3 treats two equal consecutive points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TiePolicy {
    /// An equal neighbour breaks the run (default, as in ARCHITECTURE §4).
    #[default]
    Break,
    /// An equal neighbour is skipped: it neither breaks nor extends the run, and is never
    /// flagged itself.
    Ignore,
}

/// Rule 1: one point beyond k sigma.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule1Params {
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// Sigma multiple; a point with |z| > k fires (strictly).
    pub k: f64,
}

/// Rules 2 and 4: a run of `run` points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunParams {
    /// Whether the rule is evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Number of points in the run.
    pub run: u32,
}

/// Rule 3: a monotone run of `run` points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrendParams {
    /// Whether the rule is evaluated.
    pub enabled: bool,
    /// Number of points in the run (`run − 1` steps).
    pub run: u32,
    /// What an equal neighbour does.
    pub ties: TiePolicy,
}

/// Rules 5 and 6: at least `count` of the last `window` points beyond `k` sigma on one side.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KOfNParams {
    /// Whether the rule is evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// How many points must be beyond.
    pub count: u32,
    /// Out of how many (≤ 64).
    pub window: u32,
    /// Sigma multiple (strict: z > k).
    pub k: f64,
}

/// Rules 7 and 8: a run of `run` points inside (7) or outside (8) `k` sigma.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRunParams {
    /// Whether the rule is evaluated.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Number of points in the run.
    pub run: u32,
    /// Sigma multiple: rule 7 counts |z| ≤ k, rule 8 counts |z| > k.
    pub k: f64,
    /// Require at least one point on each side of the centre within the window.
    #[serde(default)]
    pub both_sides: bool,
}

fn yes() -> bool {
    true
}

impl Default for Rule1Params {
    fn default() -> Self {
        Rule1Params {
            enabled: true,
            k: 3.0,
        }
    }
}

impl Default for TrendParams {
    fn default() -> Self {
        TrendParams {
            enabled: true,
            run: 6,
            ties: TiePolicy::Break,
        }
    }
}

/// Parameters of all eight rules. `Default` is ARCHITECTURE §4.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NelsonConfig {
    /// One point beyond the limits.
    pub rule1: Rule1Params,
    /// A run on one side of the centre.
    pub rule2: RunParams,
    /// A trend.
    pub rule3: TrendParams,
    /// Alternation.
    pub rule4: RunParams,
    /// 2 of 3 beyond 2σ.
    pub rule5: KOfNParams,
    /// 4 of 5 beyond 1σ.
    pub rule6: KOfNParams,
    /// Stratification.
    pub rule7: ZoneRunParams,
    /// Mixture.
    pub rule8: ZoneRunParams,
}

impl Default for NelsonConfig {
    fn default() -> Self {
        NelsonConfig {
            rule1: Rule1Params::default(),
            rule2: RunParams {
                enabled: true,
                run: 9,
            },
            rule3: TrendParams::default(),
            rule4: RunParams {
                enabled: true,
                run: 14,
            },
            rule5: KOfNParams {
                enabled: true,
                count: 2,
                window: 3,
                k: 2.0,
            },
            rule6: KOfNParams {
                enabled: true,
                count: 4,
                window: 5,
                k: 1.0,
            },
            rule7: ZoneRunParams {
                enabled: true,
                run: 15,
                k: 1.0,
                both_sides: false,
            },
            rule8: ZoneRunParams {
                enabled: true,
                run: 8,
                k: 1.0,
                both_sides: false,
            },
        }
    }
}

/// The precomputed form of a [`NelsonConfig`] that [`super::NelsonState::push`] runs on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompiledRules {
    pub(crate) enabled: RuleFlags,
    pub(crate) r1_k: f64,
    pub(crate) r2_run: u32,
    pub(crate) r3_steps: u32,
    pub(crate) r3_ignore_ties: bool,
    pub(crate) r4_steps: u32,
    pub(crate) r5_mask: u64,
    pub(crate) r5_count: u32,
    pub(crate) r5_window: u32,
    pub(crate) r5_k: f64,
    pub(crate) r6_mask: u64,
    pub(crate) r6_window: u32,
    pub(crate) r6_count: u32,
    pub(crate) r6_k: f64,
    pub(crate) r7_run: u32,
    pub(crate) r7_k: f64,
    pub(crate) r7_both: bool,
    pub(crate) r8_run: u32,
    pub(crate) r8_k: f64,
    pub(crate) r8_both: bool,
}

/// A compiled configuration that can be compared and shared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CompiledRulesRef(pub CompiledRules);

const DEFAULT_COMPILED: CompiledRules = CompiledRules {
    enabled: RuleFlags::ALL,
    r1_k: 3.0,
    r2_run: 9,
    r3_steps: 5,
    r3_ignore_ties: false,
    r4_steps: 13,
    r5_mask: 0b111,
    r5_count: 2,
    r5_window: 3,
    r5_k: 2.0,
    r6_mask: 0b11111,
    r6_window: 5,
    r6_count: 4,
    r6_k: 1.0,
    r7_run: 15,
    r7_k: 1.0,
    r7_both: false,
    r8_run: 8,
    r8_k: 1.0,
    r8_both: false,
};

fn window_mask(window: u32) -> u64 {
    if window >= 64 {
        u64::MAX
    } else {
        (1u64 << window) - 1
    }
}

fn check_k(name: &str, k: f64) -> Result<(), SpcError> {
    if k.is_finite() && k >= 0.0 {
        Ok(())
    } else {
        Err(SpcError::param(
            name,
            format!("must be a finite number ≥ 0, got {k}"),
        ))
    }
}

fn check_run(name: &str, run: u32, min: u32) -> Result<(), SpcError> {
    if run >= min {
        Ok(())
    } else {
        Err(SpcError::param(name, format!("must be ≥ {min}, got {run}")))
    }
}

fn check_k_of_n(prefix: &str, p: &KOfNParams) -> Result<(), SpcError> {
    if p.window == 0 || p.window > MAX_WINDOW {
        return Err(SpcError::param(
            format!("{prefix}.window"),
            format!("must be between 1 and {MAX_WINDOW}, got {}", p.window),
        ));
    }
    if p.count == 0 || p.count > p.window {
        return Err(SpcError::param(
            format!("{prefix}.count"),
            format!(
                "must be between 1 and the window ({}), got {}",
                p.window, p.count
            ),
        ));
    }
    check_k(&format!("{prefix}.k"), p.k)
}

impl NelsonConfig {
    /// Checks every parameter; the error names the parameter (`rule5.window`).
    pub fn validate(&self) -> Result<(), SpcError> {
        check_k("rule1.k", self.rule1.k)?;
        check_run("rule2.run", self.rule2.run, 1)?;
        check_run("rule3.run", self.rule3.run, 2)?;
        check_run("rule4.run", self.rule4.run, 3)?;
        check_k_of_n("rule5", &self.rule5)?;
        check_k_of_n("rule6", &self.rule6)?;
        check_run("rule7.run", self.rule7.run, 1)?;
        check_k("rule7.k", self.rule7.k)?;
        check_run("rule8.run", self.rule8.run, 1)?;
        check_k("rule8.k", self.rule8.k)
    }

    /// Validates and precomputes the form the evaluator runs on.
    pub fn compile(&self) -> Result<CompiledRules, SpcError> {
        self.validate()?;
        Ok(CompiledRules {
            enabled: self.enabled(),
            r1_k: self.rule1.k,
            r2_run: self.rule2.run,
            r3_steps: self.rule3.run - 1,
            r3_ignore_ties: self.rule3.ties == TiePolicy::Ignore,
            r4_steps: self.rule4.run - 1,
            r5_mask: window_mask(self.rule5.window),
            r5_count: self.rule5.count,
            r5_window: self.rule5.window,
            r5_k: self.rule5.k,
            r6_mask: window_mask(self.rule6.window),
            r6_window: self.rule6.window,
            r6_count: self.rule6.count,
            r6_k: self.rule6.k,
            r7_run: self.rule7.run,
            r7_k: self.rule7.k,
            r7_both: self.rule7.both_sides,
            r8_run: self.rule8.run,
            r8_k: self.rule8.k,
            r8_both: self.rule8.both_sides,
        })
    }

    /// Validates and compiles; falls back to the defaults if invalid (callers validate first).
    pub fn compile_ref(&self) -> CompiledRulesRef {
        CompiledRulesRef(self.compile().unwrap_or_else(|_| {
            NelsonConfig::default()
                .compile()
                .unwrap_or(DEFAULT_COMPILED)
        }))
    }

    /// The set of enabled rules.
    pub fn enabled(&self) -> RuleFlags {
        let on = [
            self.rule1.enabled,
            self.rule2.enabled,
            self.rule3.enabled,
            self.rule4.enabled,
            self.rule5.enabled,
            self.rule6.enabled,
            self.rule7.enabled,
            self.rule8.enabled,
        ];
        Rule::ALL
            .into_iter()
            .zip(on)
            .filter(|(_, e)| *e)
            .map(|(r, _)| r)
            .collect()
    }

    /// Enables exactly the rules in `rules`, disables the others.
    pub fn set_enabled(&mut self, rules: RuleFlags) {
        self.rule1.enabled = rules.contains(Rule::R1);
        self.rule2.enabled = rules.contains(Rule::R2);
        self.rule3.enabled = rules.contains(Rule::R3);
        self.rule4.enabled = rules.contains(Rule::R4);
        self.rule5.enabled = rules.contains(Rule::R5);
        self.rule6.enabled = rules.contains(Rule::R6);
        self.rule7.enabled = rules.contains(Rule::R7);
        self.rule8.enabled = rules.contains(Rule::R8);
    }

    /// Number of points in the window that qualifies a flag of `rule` (the flagged point is its
    /// last). Under [`TiePolicy::Ignore`] rule 3's window is counted without the skipped ties.
    pub fn window_len(&self, rule: Rule) -> u32 {
        match rule {
            Rule::R1 => 1,
            Rule::R2 => self.rule2.run,
            Rule::R3 => self.rule3.run,
            Rule::R4 => self.rule4.run,
            Rule::R5 => self.rule5.window,
            Rule::R6 => self.rule6.window,
            Rule::R7 => self.rule7.run,
            Rule::R8 => self.rule8.run,
        }
    }

    /// Sets one parameter from its textual name, e.g. `rule2.run=7`, `5.k=2.5`,
    /// `3.ties=ignore`, `8.both_sides=true`, `4.enabled=false`. The `rule` prefix is optional.
    /// On error the configuration is left unchanged.
    pub fn set_param(&mut self, key: &str, value: &str) -> Result<(), SpcError> {
        let mut next = *self;
        next.set_param_unchecked(key, value)?;
        next.validate()?;
        *self = next;
        Ok(())
    }

    fn set_param_unchecked(&mut self, key: &str, value: &str) -> Result<(), SpcError> {
        let key = key.trim();
        let value = value.trim();
        let bare = key.strip_prefix("rule").unwrap_or(key);
        let (num, field) = bare.split_once('.').ok_or_else(|| {
            SpcError::param(key, "expected RULE.FIELD, e.g. `2.run` or `rule5.k`")
        })?;
        let rule = num
            .parse::<u8>()
            .ok()
            .and_then(Rule::from_number)
            .ok_or_else(|| SpcError::param(key, format!("`{num}` is not a rule number 1..8")))?;
        let name = format!("rule{}.{field}", rule.number());
        let as_u32 = || {
            value
                .parse::<u32>()
                .map_err(|_| SpcError::param(&name, format!("`{value}` is not a whole number")))
        };
        let as_f64 = || {
            value
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| SpcError::param(&name, format!("`{value}` is not a number")))
        };
        let as_bool = || match value {
            "true" | "yes" | "on" | "1" => Ok(true),
            "false" | "no" | "off" | "0" => Ok(false),
            _ => Err(SpcError::param(
                &name,
                format!("`{value}` is not true or false"),
            )),
        };
        let unknown = |allowed: &str| {
            SpcError::param(
                &name,
                format!(
                    "unknown field `{field}`; rule {} has {allowed}",
                    rule.number()
                ),
            )
        };
        match (rule, field) {
            (_, "enabled") => {
                let on = as_bool()?;
                let mut set = self.enabled();
                if on {
                    set.insert(rule);
                } else {
                    set = RuleFlags(set.0 & !RuleFlags::only(rule).0);
                }
                self.set_enabled(set);
            }
            (Rule::R1, "k") => self.rule1.k = as_f64()?,
            (Rule::R1, _) => return Err(unknown("enabled, k")),
            (Rule::R2, "run") => self.rule2.run = as_u32()?,
            (Rule::R2, _) => return Err(unknown("enabled, run")),
            (Rule::R3, "run") => self.rule3.run = as_u32()?,
            (Rule::R3, "ties") => {
                self.rule3.ties = match value {
                    "break" => TiePolicy::Break,
                    "ignore" => TiePolicy::Ignore,
                    _ => {
                        return Err(SpcError::param(
                            &name,
                            format!("`{value}` is not `break` or `ignore`"),
                        ));
                    }
                }
            }
            (Rule::R3, _) => return Err(unknown("enabled, run, ties")),
            (Rule::R4, "run") => self.rule4.run = as_u32()?,
            (Rule::R4, _) => return Err(unknown("enabled, run")),
            (Rule::R5 | Rule::R6, "count" | "window" | "k") => {
                let p = if rule == Rule::R5 {
                    &mut self.rule5
                } else {
                    &mut self.rule6
                };
                match field {
                    "count" => p.count = as_u32()?,
                    "window" => p.window = as_u32()?,
                    _ => p.k = as_f64()?,
                }
            }
            (Rule::R5 | Rule::R6, _) => return Err(unknown("enabled, count, window, k")),
            (Rule::R7 | Rule::R8, "run" | "k" | "both_sides") => {
                let p = if rule == Rule::R7 {
                    &mut self.rule7
                } else {
                    &mut self.rule8
                };
                match field {
                    "run" => p.run = as_u32()?,
                    "k" => p.k = as_f64()?,
                    _ => p.both_sides = as_bool()?,
                }
            }
            (Rule::R7 | Rule::R8, _) => return Err(unknown("enabled, run, k, both_sides")),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_architecture_section_4() {
        let c = NelsonConfig::default();
        assert_eq!(c.rule1.k, 3.0);
        assert_eq!(c.rule2.run, 9);
        assert_eq!((c.rule3.run, c.rule3.ties), (6, TiePolicy::Break));
        assert_eq!(c.rule4.run, 14);
        assert_eq!((c.rule5.count, c.rule5.window, c.rule5.k), (2, 3, 2.0));
        assert_eq!((c.rule6.count, c.rule6.window, c.rule6.k), (4, 5, 1.0));
        assert_eq!(
            (c.rule7.run, c.rule7.k, c.rule7.both_sides),
            (15, 1.0, false)
        );
        assert_eq!(
            (c.rule8.run, c.rule8.k, c.rule8.both_sides),
            (8, 1.0, false)
        );
        assert_eq!(c.enabled(), RuleFlags::ALL);
        c.validate().unwrap();
    }

    #[test]
    fn set_param_parses_and_validates() {
        let mut c = NelsonConfig::default();
        c.set_param("2.run", "7").unwrap();
        c.set_param("rule5.k", "2.5").unwrap();
        c.set_param("3.ties", "ignore").unwrap();
        c.set_param("8.both_sides", "true").unwrap();
        c.set_param("4.enabled", "false").unwrap();
        assert_eq!(c.rule2.run, 7);
        assert_eq!(c.rule5.k, 2.5);
        assert_eq!(c.rule3.ties, TiePolicy::Ignore);
        assert!(c.rule8.both_sides);
        assert!(!c.enabled().contains(Rule::R4));

        let e = c.set_param("5.window", "65").unwrap_err();
        assert!(e.to_string().contains("rule5.window"), "{e}");
        let e = c.set_param("6.count", "9").unwrap_err();
        assert!(e.to_string().contains("rule6.count"), "{e}");
        let e = c.set_param("9.run", "3").unwrap_err();
        assert!(e.to_string().contains("not a rule number"), "{e}");
        let e = c.set_param("2.k", "3").unwrap_err();
        assert!(e.to_string().contains("unknown field `k`"), "{e}");
        let e = c.set_param("2.run", "x").unwrap_err();
        assert!(e.to_string().contains("not a whole number"), "{e}");
        let e = c.set_param("1.k", "nan").unwrap_err();
        assert!(e.to_string().contains("not a number"), "{e}");
        let e = c.set_param("3.run", "1").unwrap_err();
        assert!(e.to_string().contains("rule3.run"), "{e}");
        assert!(c.set_param("nodot", "1").is_err());
    }

    #[test]
    fn deserializes_partial_configs_and_rejects_unknown_keys() {
        let c: NelsonConfig =
            serde_json::from_str(r#"{"rule2":{"run":7},"rule3":{"ties":"ignore"}}"#).unwrap();
        assert_eq!(c.rule2.run, 7);
        assert!(c.rule2.enabled);
        assert_eq!(c.rule3.ties, TiePolicy::Ignore);
        assert_eq!(c.rule3.run, 6);
        let e = serde_json::from_str::<NelsonConfig>(r#"{"rule9":{}}"#).unwrap_err();
        assert!(e.to_string().contains("rule9"));
    }
}

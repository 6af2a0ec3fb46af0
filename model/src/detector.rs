//! What judges a series ([`Detector`]), how loud each of its findings is by default
//! ([`Severity::default_for`]) and the configurable [`SeverityMap`] (`[alerts] severity`).
//!
//! Paging detectors (`cusum`, `down`, `error_rate`, `silent`, `agent_silent`) have a designed
//! false-alarm rate and default to `error` or `critical`; Nelson's rules mark the chart and
//! default to `warning` or `info`. Only a violation of severity `critical` or `error` opens an
//! incident and notifies (ARCHITECTURE §4.2).

use std::collections::BTreeMap;

use crate::alert::Severity;
use crate::metric::Metric;
use crate::sample::Source;

/// What found a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// One of Nelson's eight rules (the violation's `rule` says which): a chart marker.
    Nelson,
    /// The two-sided CUSUM of the series' (log) values, designed for a target in-control
    /// run length.
    Cusum,
    /// Consecutive failed calls of a model on a host.
    Down,
    /// A Bernoulli CUSUM of a model's failure rate on a host.
    ErrorRate,
    /// A model on a host stopped sending samples.
    Silent,
    /// An agent stopped sending telemetry.
    AgentSilent,
    /// An SLO's error budget burns too fast (the violation's `rule`: 1 fast, 2 slow).
    SloBurn,
    /// A month's cost forecast exceeds its budget.
    Budget,
}

crate::text_enum!(Detector, "detector", {
    Nelson => "nelson",
    Cusum => "cusum",
    Down => "down",
    ErrorRate => "error_rate",
    Silent => "silent",
    AgentSilent => "agent_silent",
    SloBurn => "slo_burn",
    Budget => "budget",
});

impl Detector {
    /// The detectors other than Nelson's rules.
    pub const PAGING: &'static [Detector] = &[
        Detector::Cusum,
        Detector::Down,
        Detector::ErrorRate,
        Detector::Silent,
        Detector::AgentSilent,
        Detector::SloBurn,
        Detector::Budget,
    ];

    /// A short title for lists and notifications.
    pub fn title(self) -> &'static str {
        match self {
            Detector::Nelson => "Nelson rule",
            Detector::Cusum => "Sustained shift (CUSUM)",
            Detector::Down => "Model down",
            Detector::ErrorRate => "Error rate up",
            Detector::Silent => "Model silent",
            Detector::AgentSilent => "Agent silent",
            Detector::SloBurn => "SLO error budget burning",
            Detector::Budget => "Cost over budget",
        }
    }

    /// The detector in plain words, with its defaults.
    pub fn text(self) -> &'static str {
        match self {
            Detector::Nelson => "one of Nelson's eight rules",
            Detector::Cusum => {
                "a two-sided CUSUM (k = 0.5σ) of the standardised log values crossed its decision interval, designed for one false alarm per 100 000 probes per model and host"
            }
            Detector::Down => "consecutive calls failed (3 by default)",
            Detector::ErrorRate => {
                "a Bernoulli CUSUM of the failure rate crossed its limit (designed to detect 1 % → 10 %)"
            }
            Detector::Silent => "no sample for 5× the series' median interval (at least 2 minutes)",
            Detector::AgentSilent => "no telemetry from the agent for 2 minutes",
            Detector::SloBurn => {
                "the SLO's error budget burns faster than it can last: 14.4× over 1 h and 5 min (fast, 2 % of a 30-day budget in an hour), or 6× over 6 h and 30 min (slow)"
            }
            Detector::Budget => {
                "the month's cost forecast (spend so far plus the last 7 days' daily rate for the days left) exceeds the monthly budget"
            }
        }
    }

    /// Whether a violation of this detector belongs to a host's series as a whole (down,
    /// error rate, silence: filed under the latency series) rather than one metric.
    pub fn is_call_level(self) -> bool {
        !matches!(self, Detector::Nelson | Detector::Cusum)
    }
}

impl Severity {
    /// The default severity of a finding: Nelson rules 1, 2, 5, 6 `warning` and 3, 4, 7, 8
    /// `info` (chart markers, never a page); `down` `critical`; the other paging detectors
    /// `error`.
    pub fn default_for(detector: Detector, rule: u8) -> Severity {
        match detector {
            Detector::Nelson => match rule {
                1 | 2 | 5 | 6 => Severity::Warning,
                _ => Severity::Info,
            },
            Detector::Down => Severity::Critical,
            _ => Severity::Error,
        }
    }

    /// Whether a notification of this severity is a page (`critical` or `error`).
    pub fn is_page(self) -> bool {
        matches!(self, Severity::Critical | Severity::Error)
    }
}

/// Severity overrides: by Nelson rule number (`"1"`..`"8"`) or detector name (`"cusum"`,
/// `"down"`, …); anything unlisted has its default ([`Severity::default_for`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeverityMap {
    rules: BTreeMap<u8, Severity>,
    detectors: BTreeMap<Detector, Severity>,
}

impl SeverityMap {
    /// Parses `{key = severity}` pairs; the error names the bad key or value.
    pub fn parse<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<SeverityMap, String> {
        let mut m = SeverityMap::default();
        for (k, v) in pairs {
            let sev: Severity = v.parse().map_err(|_| {
                format!(
                    "`{k}` = `{v}`: the severity must be one of {}",
                    Severity::names()
                )
            })?;
            if let Some(r) = crate::alert::rule_number(k) {
                m.rules.insert(r, sev);
            } else if let Ok(d) = k.parse::<Detector>()
                && d != Detector::Nelson
            {
                m.detectors.insert(d, sev);
            } else {
                return Err(format!(
                    "`{k}` is neither a Nelson rule number (1..8) nor a detector ({})",
                    Detector::PAGING
                        .iter()
                        .map(|d| d.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(m)
    }

    /// The severity of a finding of `detector` (`rule` for Nelson's rules).
    pub fn severity(&self, detector: Detector, rule: u8) -> Severity {
        let set = match detector {
            Detector::Nelson => self.rules.get(&rule),
            d => self.detectors.get(&d),
        };
        set.copied()
            .unwrap_or_else(|| Severity::default_for(detector, rule))
    }
}

impl Source {
    /// The metrics judged for samples of this source: all four for probes (fixed prompts);
    /// TTFT, TPOT and tokens/s for real traffic, whose whole-call latency depends on each
    /// request's output length.
    pub fn judged(self) -> &'static [Metric] {
        match self {
            Source::Probe => Metric::ALL,
            _ => &[Metric::TtftMs, Metric::TpotMs, Metric::TokensPerS],
        }
    }

    /// The judged metrics a paging CUSUM watches: latency and TTFT for probes, TTFT and TPOT
    /// for real traffic (tokens/s mirrors TPOT). The model-host's false-page budget is
    /// shared among them.
    pub fn paging(self) -> &'static [Metric] {
        match self {
            Source::Probe => &[Metric::LatencyMs, Metric::TtftMs],
            _ => &[Metric::TtftMs, Metric::TpotMs],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_page_only_for_designed_detectors() {
        for r in 1..=8 {
            assert!(!Severity::default_for(Detector::Nelson, r).is_page());
        }
        for d in Detector::PAGING {
            assert!(Severity::default_for(*d, 0).is_page(), "{d}");
        }
        assert_eq!(Severity::default_for(Detector::Down, 0), Severity::Critical);
    }

    #[test]
    fn the_map_takes_rules_and_detectors_and_names_bad_keys() {
        let m = SeverityMap::parse([("1", "critical"), ("cusum", "warning")]).unwrap();
        assert_eq!(m.severity(Detector::Nelson, 1), Severity::Critical);
        assert_eq!(m.severity(Detector::Nelson, 2), Severity::Warning);
        assert_eq!(m.severity(Detector::Cusum, 0), Severity::Warning);
        assert_eq!(m.severity(Detector::Down, 0), Severity::Critical);
        let e = SeverityMap::parse([("9", "error")]).unwrap_err();
        assert!(e.contains("`9`") && e.contains("cusum"), "{e}");
        let e = SeverityMap::parse([("down", "loud")]).unwrap_err();
        assert!(e.contains("`down` = `loud`"), "{e}");
        assert!(SeverityMap::parse([("nelson", "error")]).is_err());
    }

    #[test]
    fn real_traffic_is_not_judged_on_latency() {
        assert!(Source::Probe.judged().contains(&Metric::LatencyMs));
        assert!(!Source::Proxy.judged().contains(&Metric::LatencyMs));
        for s in Source::ALL {
            assert!(s.paging().iter().all(|m| s.judged().contains(m)));
        }
    }
}

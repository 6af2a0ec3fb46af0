//! Episodes: consecutive flags of one rule grouped into one event.
//!
//! An episode opens at the first flagged point, extends with every further flag of the same
//! rule, and resolves once the rule has stayed quiet for `resolve_after` points in a row
//! (`resolve_after = 1`: strictly consecutive flags; the collector's default is 20). The
//! episode's points are the union of the qualifying windows of all its flags.

use serde::{Deserialize, Serialize};

use crate::nelson::{NelsonConfig, Rule, RuleFlags};

/// A finished or still open episode of one rule, by 0-based point index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    /// The rule.
    pub rule: u8,
    /// First flagged index.
    pub start: u64,
    /// Last flagged index.
    pub end: u64,
    /// Indices of the points in the qualifying windows, ascending.
    pub points: Vec<u64>,
}

/// What a new point did to a rule's episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpisodeEvent {
    /// The rule fired with no episode open: one starts at this point.
    Opened {
        /// The rule.
        rule: Rule,
        /// Index of the point.
        at: u64,
    },
    /// The rule fired again inside an open episode.
    Extended {
        /// The rule.
        rule: Rule,
        /// Index of the point.
        at: u64,
    },
    /// The rule stayed quiet for `resolve_after` points: the episode is over.
    Resolved {
        /// The rule.
        rule: Rule,
        /// First flagged index.
        start: u64,
        /// Last flagged index.
        end: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
struct Open {
    start: u64,
    end: u64,
    quiet: u32,
    active: bool,
}

/// Incremental episode state for the eight rules of one series (fixed size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpisodeTracker {
    resolve_after: u32,
    open: [Open; 8],
}

impl EpisodeTracker {
    /// A tracker that resolves an episode after `resolve_after` quiet points (min 1).
    pub fn new(resolve_after: u32) -> Self {
        EpisodeTracker {
            resolve_after: resolve_after.max(1),
            open: [Open::default(); 8],
        }
    }

    /// Feeds the flags of point `index`; calls `on_event` for every change, in rule order.
    pub fn push(&mut self, index: u64, flags: RuleFlags, mut on_event: impl FnMut(EpisodeEvent)) {
        for rule in Rule::ALL {
            let slot = &mut self.open[usize::from(rule.number() - 1)];
            if flags.contains(rule) {
                if slot.active {
                    slot.end = index;
                    slot.quiet = 0;
                    on_event(EpisodeEvent::Extended { rule, at: index });
                } else {
                    *slot = Open {
                        start: index,
                        end: index,
                        quiet: 0,
                        active: true,
                    };
                    on_event(EpisodeEvent::Opened { rule, at: index });
                }
            } else if slot.active {
                slot.quiet += 1;
                if slot.quiet >= self.resolve_after {
                    slot.active = false;
                    on_event(EpisodeEvent::Resolved {
                        rule,
                        start: slot.start,
                        end: slot.end,
                    });
                }
            }
        }
    }

    /// The open episode of `rule` as (first, last) flagged index, if any.
    pub fn open_episode(&self, rule: Rule) -> Option<(u64, u64)> {
        let s = self.open[usize::from(rule.number() - 1)];
        s.active.then_some((s.start, s.end))
    }
}

/// Groups per-point flags into episodes (open ones at the end included), sorted by start, then
/// rule.
pub fn episodes(flags: &[RuleFlags], cfg: &NelsonConfig, resolve_after: u32) -> Vec<Episode> {
    let mut tracker = EpisodeTracker::new(resolve_after);
    let mut out: Vec<Episode> = Vec::new();
    // index into `out` of the open episode per rule
    let mut current: [Option<usize>; 8] = [None; 8];
    for (i, &f) in flags.iter().enumerate() {
        let i = i as u64;
        tracker.push(i, f, |ev| match ev {
            EpisodeEvent::Opened { rule, at } => {
                current[usize::from(rule.number() - 1)] = Some(out.len());
                out.push(Episode {
                    rule: rule.number(),
                    start: at,
                    end: at,
                    points: Vec::new(),
                });
                add_window(
                    &mut out,
                    current[usize::from(rule.number() - 1)],
                    rule,
                    at,
                    cfg,
                );
            }
            EpisodeEvent::Extended { rule, at } => {
                let slot = current[usize::from(rule.number() - 1)];
                if let Some(ep) = slot.and_then(|k| out.get_mut(k)) {
                    ep.end = at;
                }
                add_window(&mut out, slot, rule, at, cfg);
            }
            EpisodeEvent::Resolved { rule, .. } => {
                current[usize::from(rule.number() - 1)] = None;
            }
        });
    }
    out.sort_by_key(|e| (e.start, e.rule));
    out
}

fn add_window(out: &mut [Episode], slot: Option<usize>, rule: Rule, at: u64, cfg: &NelsonConfig) {
    let Some(ep) = slot.and_then(|k| out.get_mut(k)) else {
        return;
    };
    let len = u64::from(cfg.window_len(rule).max(1));
    let first = (at + 1).saturating_sub(len);
    let from = match ep.points.last() {
        Some(&p) if p >= first => p + 1,
        _ => first,
    };
    ep.points.extend(from..=at);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nelson::evaluate;

    #[test]
    fn consecutive_flags_form_one_episode_with_the_window_union() {
        let mut zs = vec![0.5; 11]; // rule 2 fires at 8, 9, 10
        zs.push(-0.5);
        let flags = evaluate(&zs, &NelsonConfig::default()).unwrap();
        let eps: Vec<_> = episodes(&flags, &NelsonConfig::default(), 1)
            .into_iter()
            .filter(|e| e.rule == 2)
            .collect();
        assert_eq!(eps.len(), 1);
        assert_eq!((eps[0].start, eps[0].end), (8, 10));
        assert_eq!(eps[0].points, (0..=10).collect::<Vec<u64>>());
    }

    #[test]
    fn a_gap_splits_episodes_unless_resolve_after_is_longer() {
        let f1 = RuleFlags::only(Rule::R1);
        let flags = [f1, RuleFlags::NONE, f1, RuleFlags::NONE, RuleFlags::NONE];
        let strict = episodes(&flags, &NelsonConfig::default(), 1);
        assert_eq!(strict.len(), 2);
        assert_eq!(strict[1].points, vec![2]);
        let loose = episodes(&flags, &NelsonConfig::default(), 2);
        assert_eq!(loose.len(), 1);
        assert_eq!((loose[0].start, loose[0].end), (0, 2));
        assert_eq!(loose[0].points, vec![0, 2]);
    }

    #[test]
    fn tracker_reports_open_extend_resolve() {
        let mut t = EpisodeTracker::new(2);
        let mut evs = Vec::new();
        let f = RuleFlags::only(Rule::R5);
        for (i, fl) in [f, f, RuleFlags::NONE, RuleFlags::NONE]
            .into_iter()
            .enumerate()
        {
            t.push(i as u64, fl, |e| evs.push(e));
        }
        assert_eq!(
            evs,
            vec![
                EpisodeEvent::Opened {
                    rule: Rule::R5,
                    at: 0
                },
                EpisodeEvent::Extended {
                    rule: Rule::R5,
                    at: 1
                },
                EpisodeEvent::Resolved {
                    rule: Rule::R5,
                    start: 0,
                    end: 1
                },
            ]
        );
        assert_eq!(t.open_episode(Rule::R5), None);
    }
}

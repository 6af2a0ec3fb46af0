//! Label matchers, routes and silences.
//!
//! Every notification carries labels: `site`, `host`, `provider`, `model`, `metric`,
//! `source`, `rule` (the number as text, 0 for detectors), `detector` and `severity` (fixed
//! when the violation opened, from `[alerts] severity`). A matcher set is a JSON
//! object `{label: value}`; a value matches exactly, or, written `~regex`, when the anchored
//! regular expression matches. All matchers of a set must match (an empty set matches
//! everything).

use std::collections::BTreeMap;

use regex::Regex;
use serde_json::Value;

use llmscope_store::alerts::{OutboxItem, RouteRow, SilenceRow};

/// Labels routes may match on.
pub const ROUTE_LABELS: &[&str] = &[
    "site", "model", "metric", "rule", "severity", "provider", "detector", "source",
];
/// Labels silences may match on.
pub const SILENCE_LABELS: &[&str] = &[
    "site", "host", "provider", "model", "metric", "rule", "severity", "detector", "source",
];

/// A notification's labels.
pub type Labels = BTreeMap<String, String>;

/// The labels of an outbox row.
pub fn labels(item: &OutboxItem) -> Labels {
    [
        ("site", item.site.clone()),
        ("host", item.host.clone()),
        ("provider", item.provider.clone()),
        ("model", item.model.clone()),
        ("metric", item.metric.clone()),
        ("source", item.source.clone()),
        ("rule", item.rule.to_string()),
        ("detector", item.detector.to_string()),
        ("severity", item.severity.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

#[derive(Debug, Clone)]
enum Want {
    Exact(String),
    Regex(Regex),
}

/// A compiled matcher set.
#[derive(Debug, Clone, Default)]
pub struct Matchers(Vec<(String, Want)>);

impl Matchers {
    /// Compiles a JSON object of matchers; `allowed` lists the labels that may appear.
    /// Errors name the label and what is wrong.
    pub fn parse(v: &Value, allowed: &[&str]) -> Result<Matchers, String> {
        let obj = match v {
            Value::Null => return Ok(Matchers::default()),
            Value::Object(o) => o,
            _ => return Err("matchers must be an object of label = value".into()),
        };
        let mut out = Vec::new();
        for (k, v) in obj {
            if !allowed.contains(&k.as_str()) {
                return Err(format!(
                    "unknown label `{k}` in matchers; use one of {}",
                    allowed.join(", ")
                ));
            }
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("matcher `{k}` must be a string or a number")),
            };
            let want = match text.strip_prefix('~') {
                Some(re) => Want::Regex(
                    Regex::new(&format!("^(?:{re})$"))
                        .map_err(|e| format!("matcher `{k}`: invalid regular expression: {e}"))?,
                ),
                None => {
                    if text.is_empty() {
                        return Err(format!("matcher `{k}` must not be empty"));
                    }
                    Want::Exact(text)
                }
            };
            out.push((k.clone(), want));
        }
        Ok(Matchers(out))
    }

    /// Whether every matcher matches.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.iter().all(|(k, want)| {
            let have = labels.get(k).map(String::as_str).unwrap_or("");
            match want {
                Want::Exact(s) => s == have,
                Want::Regex(r) => r.is_match(have),
            }
        })
    }
}

/// Ordered routes plus the default route.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(Matchers, Vec<String>, bool)>,
    default: Vec<String>,
}

impl Router {
    /// Builds a router from stored routes; `default` is the default route's channels.
    /// Routes whose matchers no longer compile are skipped with a warning.
    pub fn new(routes: &[RouteRow], default: Vec<String>) -> Router {
        let routes = routes
            .iter()
            .filter_map(|r| match Matchers::parse(&r.matchers, ROUTE_LABELS) {
                Ok(m) => Some((m, r.channels.clone(), r.continue_matching)),
                Err(e) => {
                    tracing::warn!(route = r.id, error = %e, "skipping a route that does not compile");
                    None
                }
            })
            .collect();
        Router { routes, default }
    }

    /// The channels a notification with these labels goes to: the first matching route's
    /// channels (and later ones while matched routes say `continue`), else the default route.
    pub fn channels(&self, labels: &Labels) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut matched = false;
        for (m, chans, cont) in &self.routes {
            if !m.matches(labels) {
                continue;
            }
            matched = true;
            for c in chans {
                if !out.contains(c) {
                    out.push(c.clone());
                }
            }
            if !cont {
                break;
            }
        }
        if matched { out } else { self.default.clone() }
    }
}

/// Active silences.
#[derive(Debug, Clone, Default)]
pub struct Silencer(Vec<(SilenceRow, Matchers)>);

impl Silencer {
    /// Compiles stored silences.
    pub fn new(rows: &[SilenceRow]) -> Silencer {
        Silencer(
            rows.iter()
                .filter_map(|s| {
                    Matchers::parse(&s.matchers, SILENCE_LABELS)
                        .ok()
                        .map(|m| (s.clone(), m))
                })
                .collect(),
        )
    }

    /// The first silence active at `now` that matches, described for the delivery log.
    pub fn silenced_by(&self, labels: &Labels, now: i64) -> Option<String> {
        self.0
            .iter()
            .find(|(s, m)| s.starts_at <= now && now < s.ends_at && m.matches(labels))
            .map(|(s, _)| {
                format!(
                    "silenced by {} ({}): {}",
                    s.id,
                    s.created_by,
                    s.comment.chars().take(200).collect::<String>()
                )
            })
    }
}

/// The group key: `label=value` pairs of `group_by`, comma-separated.
pub fn group_key(group_by: &[String], labels: &Labels) -> String {
    group_by
        .iter()
        .map(|k| format!("{k}={}", labels.get(k).map(String::as_str).unwrap_or("")))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn l(site: &str, model: &str, rule: u8) -> Labels {
        labels(&OutboxItem {
            id: 1,
            violation_id: "v".into(),
            event: llmscope_model::AlertEvent::Opened,
            site: site.into(),
            host: "h".into(),
            provider: "p".into(),
            model: model.into(),
            metric: "latency_ms".into(),
            source: "probe".into(),
            rule,
            detector: llmscope_model::Detector::Nelson,
            severity: if rule == 1 {
                llmscope_model::Severity::Critical
            } else {
                llmscope_model::Severity::Warning
            },
        })
    }

    fn route(id: i64, m: Value, ch: &[&str], cont: bool) -> RouteRow {
        RouteRow {
            id,
            position: id,
            matchers: m,
            channels: ch.iter().map(|s| s.to_string()).collect(),
            continue_matching: cont,
            source: "api".into(),
        }
    }

    #[test]
    fn matchers_exact_regex_and_numbers() {
        let m = Matchers::parse(&json!({"site": "eu", "rule": 1}), ROUTE_LABELS).unwrap();
        assert!(m.matches(&l("eu", "x", 1)));
        assert!(!m.matches(&l("us", "x", 1)));
        assert!(!m.matches(&l("eu", "x", 2)));
        let m = Matchers::parse(&json!({"model": "~llama.*"}), ROUTE_LABELS).unwrap();
        assert!(m.matches(&l("eu", "llama3", 1)));
        assert!(!m.matches(&l("eu", "my-llama3", 1)), "anchored");
        let e = Matchers::parse(&json!({"colour": "red"}), ROUTE_LABELS).unwrap_err();
        assert!(e.contains("unknown label `colour`"), "{e}");
        let e = Matchers::parse(&json!({"model": "~("}), ROUTE_LABELS).unwrap_err();
        assert!(e.contains("invalid regular expression"), "{e}");
        assert!(
            Matchers::parse(&json!(null), ROUTE_LABELS)
                .unwrap()
                .matches(&l("a", "b", 3))
        );
    }

    #[test]
    fn first_match_wins_unless_continue_then_default() {
        let r = Router::new(
            &[
                route(1, json!({"severity": "critical"}), &["pager"], true),
                route(2, json!({"site": "eu"}), &["eu-slack"], false),
                route(3, json!({}), &["catch-all"], false),
            ],
            vec!["default".into()],
        );
        assert_eq!(r.channels(&l("eu", "m", 1)), vec!["pager", "eu-slack"]);
        assert_eq!(r.channels(&l("eu", "m", 2)), vec!["eu-slack"]);
        assert_eq!(r.channels(&l("us", "m", 2)), vec!["catch-all"]);
        let r = Router::new(
            &[route(1, json!({"site": "eu"}), &["eu"], false)],
            vec!["default".into()],
        );
        assert_eq!(r.channels(&l("us", "m", 2)), vec!["default"]);
    }

    #[test]
    fn silences_respect_their_time_range() {
        let s = Silencer::new(&[SilenceRow {
            id: "s1".into(),
            matchers: json!({"model": "m"}),
            starts_at: 100,
            ends_at: 200,
            comment: "rollout".into(),
            created_by: "ci".into(),
            created_at: 0,
            source: "api".into(),
        }]);
        assert!(s.silenced_by(&l("eu", "m", 1), 50).is_none());
        assert!(
            s.silenced_by(&l("eu", "m", 1), 150)
                .unwrap()
                .contains("rollout")
        );
        assert!(s.silenced_by(&l("eu", "m", 1), 200).is_none());
        assert!(s.silenced_by(&l("eu", "other", 1), 150).is_none());
    }

    #[test]
    fn group_keys() {
        assert_eq!(
            group_key(&["site".into(), "model".into()], &l("eu", "m", 1)),
            "site=eu,model=m"
        );
    }
}

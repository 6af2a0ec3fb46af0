//! One message per claimed group: its notifications (each with its violation — an incident's
//! lead — and the incident's other members as stored now), a one-line title, and the JSON
//! item each HTTP channel builds on.

use llmscope_model::{AlertEvent, Detector, Violation, rule_text};
use llmscope_store::alerts::Claimed;
use serde_json::{Value, json};

use crate::config::AlertsConfig;

/// One message to send: a group's pending notifications (or a reminder of its open ones).
#[derive(Debug, Clone)]
pub struct Digest {
    /// Group key.
    pub group_key: String,
    /// The notifications; each carries its violation as stored now.
    pub items: Vec<Claimed>,
}

/// The series part of a notification: `"site / host / model / metric"` (or `?` when the
/// violation is gone).
pub fn series_text(v: Option<&Violation>, with_provider: bool) -> String {
    match v {
        None => "? / ? / ? / ?".into(),
        Some(v) => {
            let s = &v.series;
            if with_provider {
                format!(
                    "{} / {} / {} / {} / {}",
                    s.site_label(),
                    s.host_label(),
                    s.provider,
                    s.model,
                    s.metric
                )
            } else {
                format!(
                    "{} / {} / {} / {}",
                    s.site_label(),
                    s.host_label(),
                    s.model,
                    s.metric
                )
            }
        }
    }
}

/// What found a violation, in words: (`"rule 2"`, the rule's text) or (`"cusum"`, the
/// detector's text).
pub fn finding(v: Option<&Violation>) -> (String, String) {
    match v {
        None => ("?".into(), String::new()),
        Some(v) if v.detector == Detector::Nelson => {
            (format!("rule {}", v.rule), rule_text(v.rule))
        }
        Some(v) => (v.detector.to_string(), v.detector.text().to_owned()),
    }
}

/// The other members of the incident a notification leads, one line each:
/// `"rule 2 on eu / gpu-1 / m / ttft_ms (warning, open)"`.
pub fn members_text(c: &Claimed) -> Vec<String> {
    c.members
        .iter()
        .map(|m| {
            format!(
                "{} on {} ({}, {})",
                finding(Some(m)).0,
                series_text(Some(m), false),
                m.severity,
                m.display_status()
            )
        })
        .collect()
}

/// What found a violation, for a message's headline: `Nelson rule 2` or the detector's
/// title (`Sustained shift (CUSUM)`).
pub fn headline(v: &Violation) -> String {
    match v.detector {
        Detector::Nelson => format!("Nelson rule {}", v.rule),
        _ => v.title().to_owned(),
    }
}

/// A number for people: one decimal, `?` when missing.
pub fn num(x: Option<f64>) -> String {
    x.map(|x| format!("{x:.1}")).unwrap_or_else(|| "?".into())
}

impl Digest {
    /// One JSON object per notification: event, ids, labels, the violation (its wire shape,
    /// times in ms) with its series, frozen baseline and points, and the dashboard link.
    pub fn item_json(&self, cfg: &AlertsConfig) -> Vec<Value> {
        self.items
            .iter()
            .map(|c| {
                let labels: Value = serde_json::from_str(&c.labels).unwrap_or(json!({}));
                let v = c.violation.as_ref();
                let series = v.map(|v| {
                    let s = &v.series;
                    json!({"key": s, "site": s.site_label(), "host": s.host_label(),
                        "provider": s.provider, "model": s.model, "metric": s.metric})
                });
                json!({
                    "event": c.event,
                    "delivery_id": c.outbox_id,
                    "violation_id": c.violation_id,
                    "severity": labels["severity"],
                    "labels": labels,
                    "series": series,
                    "rule": v.map(|v| v.rule),
                    "detector": v.map(|v| v.detector),
                    "baseline": v.map(|v| &v.baseline),
                    "points": v.map(|v| &v.points),
                    "violation": v,
                    "incident": v.and_then(|v| v.incident.as_ref()).map(|id| json!({
                        "id": id,
                        "members": c.members.iter().map(Violation::summary).collect::<Vec<_>>(),
                    })),
                    "dashboard_url": cfg.link(&c.violation_id),
                })
            })
            .collect()
    }

    /// A one-line title: "2 violations opened for site=eu,model=m" or the single violation.
    pub fn title(&self) -> String {
        let count = |e: AlertEvent| self.items.iter().filter(|c| c.event == e).count();
        if let [c] = self.items.as_slice() {
            let what = match c.event {
                AlertEvent::Resolved => "back in control",
                AlertEvent::Repeat => "still out of control",
                AlertEvent::Test => "test notification",
                AlertEvent::Opened => "out of control",
            };
            return match &c.violation {
                Some(v) => {
                    let more = if c.members.is_empty() {
                        String::new()
                    } else {
                        format!(", +{} in the incident", c.members.len())
                    };
                    format!(
                        "{} {} on {}/{} {what} ({}{more})",
                        v.series.model,
                        v.series.metric,
                        v.series.site_label(),
                        v.series.host_label(),
                        headline(v)
                    )
                }
                None => format!("? ? on ?/? {what}"),
            };
        }
        let mut parts = Vec::new();
        for (e, words) in [
            (AlertEvent::Opened, "opened"),
            (AlertEvent::Resolved, "resolved"),
            (AlertEvent::Repeat, "still open"),
        ] {
            let n = count(e);
            if n > 0 {
                parts.push(format!("{n} {words}"));
            }
        }
        format!(
            "LLMscope violations: {} ({})",
            parts.join(", "),
            self.group_key
        )
    }
}

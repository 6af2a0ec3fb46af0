//! PagerDuty Events API v2: `trigger` when a violation opens and `resolve` when it resolves,
//! with `dedup_key` = the violation id so both land on one incident. The routing key is the
//! channel secret; the endpoint is configurable (EU region, tests).

use serde_json::{Value, json};

use super::{AlertsConfig, Digest, SendResult, post_json};
use crate::store::alerts::{ChannelRow, Claimed};

/// The public endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Severity for a rule: the channel's `severity` map (`{"1": "critical"}`), else the
/// notification's `severity` label (from `[alerts] severity`).
pub fn severity(ch_config: &Value, rule: i64, label: &str) -> String {
    if let Some(s) = ch_config["severity"][rule.to_string()].as_str() {
        return s.to_owned();
    }
    if matches!(label, "critical" | "error" | "warning" | "info") {
        return label.to_owned();
    }
    "error".to_owned()
}

/// The event body for a notification.
pub fn event(cfg: &AlertsConfig, ch: &ChannelRow, c: &Claimed) -> Value {
    let id = c.violation_id.clone();
    if c.event == "resolved" {
        return json!({"routing_key": ch.secret, "event_action": "resolve", "dedup_key": id});
    }
    let v = &c.violation;
    let conf: Value = serde_json::from_str(&ch.config).unwrap_or(Value::Null);
    let labels: Value = serde_json::from_str(&c.labels).unwrap_or(Value::Null);
    let rule = v["rule"].as_i64().unwrap_or(0);
    let summary: String = format!(
        "LLMscope: {} {} on {}/{} out of control (Nelson rule {rule}) — {}",
        v["model"].as_str().unwrap_or("?"),
        v["metric"].as_str().unwrap_or("?"),
        v["site"].as_str().unwrap_or("?"),
        v["host"].as_str().unwrap_or("?"),
        v["series_key"].as_str().unwrap_or("")
    )
    .chars()
    .take(1024)
    .collect();
    json!({
        "routing_key": ch.secret,
        "event_action": "trigger",
        "dedup_key": id,
        "payload": {
            "summary": summary,
            "source": v["host"].as_str().unwrap_or("llmscope"),
            "severity": severity(&conf, rule, labels["severity"].as_str().unwrap_or("")),
            "component": v["model"],
            "group": v["site"],
            "class": format!("nelson_rule_{rule}"),
            "custom_details": {"series_key": v["series_key"], "metric": v["metric"], "provider": v["provider"], "baseline": v["baseline"], "points": v["points"], "opened_at_us": v["opened_at"]},
        },
        "links": [{"href": super::link(cfg, &id), "text": "Open in LLMscope"}],
    })
}

/// Sends a digest: PagerDuty takes one event per request, so each notification is its own
/// event (digests for PagerDuty hold one notification; see the grouping rules). Reminders are
/// not sent (PagerDuty keeps the incident open itself).
pub async fn send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    d: &Digest,
) -> SendResult {
    let mut last = SendResult::default();
    for c in d.items.iter().filter(|c| c.event != "repeat") {
        last = post_json(client, cfg, ch, event(cfg, ch, c).to_string(), &[]).await;
        if !last.ok() {
            return last;
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_defaults_and_overrides() {
        assert_eq!(severity(&Value::Null, 1, "critical"), "critical");
        assert_eq!(severity(&Value::Null, 7, "info"), "info");
        assert_eq!(
            severity(&json!({"severity": {"7": "warning"}}), 7, "info"),
            "warning"
        );
    }
}

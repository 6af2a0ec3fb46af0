//! PagerDuty Events API v2: `trigger` when a violation opens and `resolve` when it resolves,
//! with `dedup_key` = the violation id so both land on one incident. The routing key is the
//! channel secret; the endpoint is configurable (EU region, tests).

use serde_json::{Value, json};

use super::{AlertsConfig, SendResult, post_json};
use crate::store::alerts::{ChannelRow, Claimed};

/// The public endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// Severity for a rule: the channel's `severity` map (`{"1": "critical"}`) or the default
/// (rule 1 critical; 2, 5, 6 error; 3, 8 warning; 4, 7 info).
pub fn severity(ch_config: &Value, rule: i64) -> String {
    if let Some(s) = ch_config["severity"][rule.to_string()].as_str() {
        return s.to_owned();
    }
    match rule {
        1 => "critical",
        2 | 5 | 6 => "error",
        3 | 8 => "warning",
        _ => "info",
    }
    .to_owned()
}

/// The event body for a notification.
pub fn event(cfg: &AlertsConfig, ch: &ChannelRow, c: &Claimed) -> Value {
    let p: Value = serde_json::from_str(&c.payload).unwrap_or(Value::Null);
    let id = p["violation_id"].as_str().unwrap_or("").to_owned();
    if c.event == "resolved" {
        return json!({"routing_key": ch.secret, "event_action": "resolve", "dedup_key": id});
    }
    let v = &p["violation"];
    let conf: Value = serde_json::from_str(&ch.config).unwrap_or(Value::Null);
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
            "severity": severity(&conf, rule),
            "component": v["model"],
            "group": v["site"],
            "class": format!("nelson_rule_{rule}"),
            "custom_details": {"series_key": v["series_key"], "metric": v["metric"], "provider": v["provider"], "baseline": v["baseline"], "points": v["points"], "opened_at_us": v["opened_at"]},
        },
        "links": [{"href": format!("{}/violations/{id}", cfg.public_url.trim_end_matches('/')), "text": "Open in LLMscope"}],
    })
}

/// Sends one notification.
pub async fn send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    c: &Claimed,
) -> SendResult {
    post_json(client, cfg, ch, event(cfg, ch, c).to_string(), &[]).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_defaults_and_overrides() {
        assert_eq!(severity(&Value::Null, 1), "critical");
        assert_eq!(severity(&Value::Null, 7), "info");
        assert_eq!(
            severity(&json!({"severity": {"7": "warning"}}), 7),
            "warning"
        );
    }
}

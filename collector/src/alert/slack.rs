//! Slack incoming webhooks: a Block Kit message with the rule in plain words, the series, the
//! triggering value against the limits, and a link. Slack allows about one message per second
//! per webhook; the dispatcher spaces sends per channel ([`MIN_INTERVAL`]) and a 429 is retried
//! after its `Retry-After`.

use std::time::Duration;

use llmscope_spc::{NelsonConfig, Rule};
use serde_json::{Value, json};

use super::{AlertsConfig, SendResult, post_json};
use crate::store::alerts::{ChannelRow, Claimed};

/// At most one message per this interval per Slack webhook.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

fn f(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1}"))
        .unwrap_or_else(|| "?".into())
}

/// The Block Kit message for a notification.
pub fn message(cfg: &AlertsConfig, c: &Claimed) -> Value {
    let p: Value = serde_json::from_str(&c.payload).unwrap_or(Value::Null);
    let id = p["violation_id"].as_str().unwrap_or("");
    let link = format!("{}/violations/{id}", cfg.public_url.trim_end_matches('/'));
    if c.event == "resolved" {
        let text = format!("✅ LLMscope violation {id} resolved");
        return json!({"text": text, "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("{text} — <{link}|details>")}}
        ]});
    }
    let v = &p["violation"];
    let rule = v["rule"].as_u64().and_then(|r| Rule::from_number(r as u8));
    let words = rule
        .map(|r| r.explain(&NelsonConfig::default()))
        .unwrap_or_default();
    let rule_n = v["rule"].as_i64().unwrap_or(0);
    let last = v["points"]
        .as_array()
        .and_then(|a| a.last())
        .map(|p| f(&p["value"]))
        .unwrap_or_else(|| "?".into());
    let b = &v["baseline"];
    let title = format!(
        "🚨 {} {} on {} is out of control (rule {rule_n})",
        v["model"].as_str().unwrap_or("?"),
        v["metric"].as_str().unwrap_or("?"),
        v["host"].as_str().unwrap_or("?")
    );
    json!({
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title.chars().take(150).collect::<String>()}},
            {"type": "section", "text": {"type": "mrkdwn", "text": format!("*Rule {rule_n}*: {words}")}},
            {"type": "section", "fields": [
                {"type": "mrkdwn", "text": format!("*Series*\n{} / {} / {}", v["site"].as_str().unwrap_or("?"), v["host"].as_str().unwrap_or("?"), v["provider"].as_str().unwrap_or("?"))},
                {"type": "mrkdwn", "text": format!("*Value*\n{last} (centre {}, UCL {}, LCL {})", f(&b["center"]), f(&b["ucl"]), f(&b["lcl"]))},
            ]},
            {"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in LLMscope"}, "url": link}]}
        ]
    })
}

/// Sends one notification.
pub async fn send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    c: &Claimed,
) -> SendResult {
    post_json(client, cfg, ch, message(cfg, c).to_string(), &[]).await
}

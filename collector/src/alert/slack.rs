//! Slack incoming webhooks: a Block Kit message with the rule in plain words, the series, the
//! triggering value against the limits, and a link. Slack allows about one message per second
//! per webhook; a Slack channel's `min_interval` is at least one second and a 429 is retried
//! after its `Retry-After`. Grouped notifications go out as one message.

use llmscope_spc::{NelsonConfig, Rule};
use serde_json::{Value, json};

use super::{AlertsConfig, Digest, SendResult, post_json};
use crate::store::alerts::{ChannelRow, Claimed};

fn f(v: &Value) -> String {
    v.as_f64()
        .map(|x| format!("{x:.1}"))
        .unwrap_or_else(|| "?".into())
}

fn item_blocks(cfg: &AlertsConfig, c: &Claimed) -> Vec<Value> {
    let v = &c.violation;
    let id = c.violation_id.as_str();
    let link = super::link(cfg, id);
    let rule_n = v["rule"].as_i64().unwrap_or(0);
    let series = format!(
        "{} / {} / {} / {}",
        v["site"].as_str().unwrap_or("?"),
        v["host"].as_str().unwrap_or("?"),
        v["model"].as_str().unwrap_or("?"),
        v["metric"].as_str().unwrap_or("?")
    );
    if c.event == "resolved" {
        return vec![json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("✅ *Resolved* — rule {rule_n} on {series} is back in control — <{link}|details>")}})];
    }
    let rule = u8::try_from(rule_n).ok().and_then(Rule::from_number);
    let words = rule
        .map(|r| r.explain(&NelsonConfig::default()))
        .unwrap_or_default();
    let last = v["points"]
        .as_array()
        .and_then(|a| a.last())
        .map(|p| f(&p["value"]))
        .unwrap_or_else(|| "?".into());
    let b = &v["baseline"];
    let prefix = if c.event == "repeat" {
        "⏰ Still open — "
    } else {
        ""
    };
    vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{prefix}*Rule {rule_n}*: {words}")}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Series*\n{series}")},
            {"type": "mrkdwn", "text": format!("*Value*\n{last} (centre {}, UCL {}, LCL {})", f(&b["center"]), f(&b["ucl"]), f(&b["lcl"]))},
        ]}),
        json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in LLMscope"}, "url": link}]}),
    ]
}

/// The Block Kit message for a digest (at most 10 notifications spelled out; Slack allows 50
/// blocks).
pub fn message(cfg: &AlertsConfig, d: &Digest) -> Value {
    let title = d.title();
    let icon = if d.items.iter().all(|c| c.event == "resolved") {
        "✅"
    } else {
        "🚨"
    };
    let mut blocks = vec![json!({"type": "header", "text": {"type": "plain_text",
        "text": format!("{icon} {title}").chars().take(150).collect::<String>()}})];
    for c in d.items.iter().take(10) {
        if blocks.len() > 1 {
            blocks.push(json!({"type": "divider"}));
        }
        blocks.extend(item_blocks(cfg, c));
    }
    if d.items.len() > 10 {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("…and {} more — see the dashboard", d.items.len() - 10)}]}));
    }
    json!({"text": format!("{icon} {title}"), "blocks": blocks})
}

/// Sends one digest.
pub async fn send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    d: &Digest,
) -> SendResult {
    post_json(client, cfg, ch, message(cfg, d).to_string(), &[]).await
}

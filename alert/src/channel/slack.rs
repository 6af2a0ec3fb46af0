//! Slack incoming webhooks: a Block Kit message with the rule in plain words, the series, the
//! triggering value against the limits, and a link. Slack allows about one message per second
//! per webhook; a Slack channel's `min_interval` is at least one second and a 429 is retried
//! after its `Retry-After`. Grouped notifications go out as one message.

use llmscope_model::AlertEvent;
use llmscope_store::alerts::{ChannelRow, Claimed};
use serde_json::{Value, json};

use super::{Channel, SendContext};
use crate::config::AlertsConfig;
use crate::digest::{Digest, finding, members_text, num, series_text};
use crate::transport::{SendResult, post_json};

/// Slack's least time between two messages of one webhook, ms.
pub const MIN_INTERVAL_MS: u64 = 1000;

/// Slack incoming webhooks.
pub struct Slack;

impl Channel for Slack {
    fn validate(&self, config: &Value, _: bool) -> Result<Value, String> {
        super::http_config(config, None, Some(MIN_INTERVAL_MS))
    }

    async fn send(&self, ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
        let body = message(ctx.cfg, d).to_string();
        post_json(ctx, ch, body, &[]).await
    }
}

fn item_blocks(cfg: &AlertsConfig, c: &Claimed) -> Vec<Value> {
    let v = c.violation.as_ref();
    let link = cfg.link(&c.violation_id);
    let (what, words) = finding(v);
    let series = series_text(v, false);
    if c.event == AlertEvent::Resolved {
        return vec![json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("✅ *Resolved* — {what} on {series} is back in control — <{link}|details>")}})];
    }
    let last = num(v.and_then(|v| v.last_value()));
    let b = v.map(|v| &v.baseline);
    let prefix = if c.event == AlertEvent::Repeat {
        "⏰ Still open — "
    } else {
        ""
    };
    let mut blocks = vec![
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{prefix}*{what}*: {words}")}}),
        json!({"type": "section", "fields": [
            {"type": "mrkdwn", "text": format!("*Series*\n{series}")},
            {"type": "mrkdwn", "text": format!("*Value*\n{last} (centre {}, UCL {}, LCL {})",
                num(b.map(|b| b.center_original())), num(b.map(|b| b.ucl())), num(b.map(|b| b.lcl())))},
        ]}),
    ];
    let members = members_text(c);
    if !members.is_empty() {
        let list: Vec<String> = members.iter().take(10).map(|m| format!("• {m}")).collect();
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
            "text": format!("*Also in this incident*\n{}", list.join("\n"))}]}));
    }
    blocks.push(json!({"type": "actions", "elements": [{"type": "button", "text": {"type": "plain_text", "text": "Open in LLMscope"}, "url": link}]}));
    blocks
}

/// The Block Kit message for a digest (at most 10 notifications spelled out; Slack allows 50
/// blocks).
pub fn message(cfg: &AlertsConfig, d: &Digest) -> Value {
    let title = d.title();
    let icon = if d.items.iter().all(|c| c.event == AlertEvent::Resolved) {
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

//! PagerDuty Events API v2: `trigger` when an incident opens and `resolve` when it resolves,
//! with `dedup_key` = the incident's id (its lead violation's) so both land on one PagerDuty
//! incident. The routing key is the
//! channel secret; the endpoint is configurable (EU region, tests). Not grouped: one event
//! per violation change, no reminders (PagerDuty keeps the incident open itself).

use llmscope_model::{AlertEvent, Severity, Violation};
use llmscope_store::alerts::{ChannelRow, Claimed};
use serde_json::{Value, json};

use super::{Channel, SendContext};
use crate::config::AlertsConfig;
use crate::digest::Digest;
use crate::transport::{SendResult, post_json};

/// The public endpoint.
pub const DEFAULT_URL: &str = "https://events.pagerduty.com/v2/enqueue";

/// PagerDuty Events API v2.
pub struct PagerDuty;

impl Channel for PagerDuty {
    fn validate(&self, config: &Value, has_secret: bool) -> Result<Value, String> {
        let out = super::http_config(config, Some(DEFAULT_URL), None)?;
        if !has_secret {
            return Err("PagerDuty needs the routing key as the secret".into());
        }
        Ok(out)
    }

    fn grouped(&self) -> bool {
        false
    }

    /// PagerDuty takes one event per request, so each notification is its own event.
    async fn send(&self, ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
        let mut last = SendResult::default();
        for c in d.items.iter().filter(|c| c.event != AlertEvent::Repeat) {
            let body = event(ctx.cfg, ch, c).to_string();
            last = post_json(ctx, ch, body, &[]).await;
            if !last.ok() {
                return last;
            }
        }
        last
    }

    /// A `trigger` followed by a `resolve` of the same test incident.
    async fn test(&self, ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
        let r = self.send(ctx, ch, d).await;
        if r.ok() {
            let mut resolve = d.clone();
            for c in &mut resolve.items {
                c.event = AlertEvent::Resolved;
            }
            let _ = self.send(ctx, ch, &resolve).await;
        }
        r
    }
}

/// The event severity: the channel's `severity` map by rule number or detector
/// (`{"1": "critical", "cusum": "warning"}`), else the notification's `severity` label,
/// else `error`.
pub fn severity(ch_config: &Value, v: Option<&Violation>, label: &str) -> Severity {
    let key = match v {
        Some(v) if v.detector == llmscope_model::Detector::Nelson => v.rule.to_string(),
        Some(v) => v.detector.to_string(),
        None => String::new(),
    };
    ch_config["severity"][key]
        .as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| label.parse().ok())
        .unwrap_or(Severity::Error)
}

/// The event body for a notification.
pub fn event(cfg: &AlertsConfig, ch: &ChannelRow, c: &Claimed) -> Value {
    let id = c.violation_id.clone();
    if c.event == AlertEvent::Resolved {
        return json!({"routing_key": ch.secret, "event_action": "resolve", "dedup_key": id});
    }
    let conf: Value = serde_json::from_str(&ch.config).unwrap_or(Value::Null);
    let labels: Value = serde_json::from_str(&c.labels).unwrap_or(Value::Null);
    let v = c.violation.as_ref();
    let s = v.map(|v| &v.series);
    let summary: String = format!(
        "LLMscope: {} {} on {}/{} out of control ({}) — {}",
        s.map_or("?", |s| s.model.as_str()),
        s.map_or("?", |s| s.metric.as_str()),
        s.map_or("?", |s| s.site_label()),
        s.map_or("?", |s| s.host_label()),
        v.map_or_else(|| "?".to_owned(), crate::digest::headline),
        s.map(ToString::to_string).unwrap_or_default()
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
            "source": s.map_or("llmscope", |s| s.host_label()),
            "severity": severity(&conf, v, labels["severity"].as_str().unwrap_or("")),
            "component": s.map(|s| &s.model),
            "group": s.map(|s| s.site_label()),
            "class": v.map_or_else(|| "unknown".to_owned(), |v| match v.detector {
                llmscope_model::Detector::Nelson => format!("nelson_rule_{}", v.rule),
                d => d.to_string(),
            }),
            "custom_details": {
                "series_key": s, "metric": s.map(|s| s.metric), "provider": s.map(|s| &s.provider),
                "baseline": v.map(|v| &v.baseline), "points": v.map(|v| &v.points),
                "opened_at_ms": v.map(|v| llmscope_model::time::ms(v.opened_at)),
                "incident_members": crate::digest::members_text(c),
            },
        },
        "links": [{"href": cfg.link(&id), "text": "Open in LLMscope"}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severity_defaults_and_overrides() {
        assert_eq!(severity(&Value::Null, None, "critical"), Severity::Critical);
        assert_eq!(severity(&Value::Null, None, "info"), Severity::Info);
        let test = crate::channel::test_digest(
            &ChannelRow {
                name: "pd".into(),
                kind: llmscope_model::ChannelKind::PagerDuty,
                config: "{}".into(),
                secret: "k".into(),
                max_attempts: 1,
                source: "api".into(),
            },
            1_000_000,
        );
        let v = test.items[0].violation.as_ref();
        assert_eq!(
            severity(&json!({"severity": {"cusum": "warning"}}), v, "info"),
            Severity::Warning
        );
        assert_eq!(severity(&Value::Null, v, "loud"), Severity::Error);
    }
}

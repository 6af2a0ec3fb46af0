//! Alert channels: one file per kind, each implementing [`Channel`] — how its configuration
//! is validated, whether its notifications are grouped, how a digest is sent and how a test
//! notification goes out. Adding a kind means one file here and one arm in `on_kind!`.

pub mod email;
pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use llmscope_model::{
    AlertEvent, BaselineMode, ChannelKind, Detector, FrozenBaseline, Metric, Point, Scope,
    SeriesId, Violation,
};
use llmscope_store::alerts::{ChannelRow, Claimed};
use serde_json::{Value, json};

use crate::config::{AlertsConfig, severity_map};
use crate::digest::Digest;
use crate::transport::SendResult;

/// What a send needs besides the channel and the digest.
#[derive(Clone, Copy)]
pub struct SendContext<'a> {
    /// The HTTP client.
    pub client: &'a reqwest::Client,
    /// Alert settings (timeout, public URL).
    pub cfg: &'a AlertsConfig,
    /// Now, Unix µs.
    pub now_us: i64,
}

/// One kind of alert channel.
pub trait Channel {
    /// Validates a channel's JSON configuration and returns the normalized form that is
    /// stored (never the secret). Errors say which key is wrong.
    fn validate(&self, config: &Value, has_secret: bool) -> Result<Value, String>;

    /// Whether notifications are grouped into digests (with `group_wait`,
    /// `group_interval` and reminders). Ungrouped channels get one message per violation
    /// change and no reminders.
    fn grouped(&self) -> bool {
        true
    }

    /// Sends one digest.
    fn send(
        &self,
        ctx: SendContext<'_>,
        ch: &ChannelRow,
        d: &Digest,
    ) -> impl Future<Output = SendResult> + Send;

    /// Sends a test notification and returns the receiver's real answer.
    fn test(
        &self,
        ctx: SendContext<'_>,
        ch: &ChannelRow,
        d: &Digest,
    ) -> impl Future<Output = SendResult> + Send {
        self.send(ctx, ch, d)
    }
}

/// Runs `$body` with `$c` bound to the channel implementation of `$kind`.
macro_rules! on_kind {
    ($kind:expr, $c:ident => $body:expr) => {
        match $kind {
            ChannelKind::Webhook => {
                let $c = webhook::Webhook;
                $body
            }
            ChannelKind::Slack => {
                let $c = slack::Slack;
                $body
            }
            ChannelKind::PagerDuty => {
                let $c = pagerduty::PagerDuty;
                $body
            }
            ChannelKind::Email => {
                let $c = email::Email;
                $body
            }
        }
    };
}

/// Validates a configuration for its kind (see [`Channel::validate`]).
pub fn validate(kind: ChannelKind, config: &Value, has_secret: bool) -> Result<Value, String> {
    on_kind!(kind, c => c.validate(config, has_secret))
}

/// Whether a kind's notifications are grouped (see [`Channel::grouped`]).
pub fn grouped(kind: ChannelKind) -> bool {
    on_kind!(kind, c => c.grouped())
}

/// Sends a digest through the channel (see [`Channel::send`]).
pub async fn send(ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
    on_kind!(ch.kind, c => c.send(ctx, ch, d).await)
}

/// Sends a test notification through the channel (see [`Channel::test`]).
pub async fn test(ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
    on_kind!(ch.kind, c => c.test(ctx, ch, d).await)
}

/// `min_interval_ms` of a configuration: absent, or a non-negative integer.
pub(crate) fn min_interval_ms(config: &Value) -> Result<Option<u64>, String> {
    match config.get("min_interval_ms") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| "`min_interval_ms` must be a non-negative integer".into()),
    }
}

/// A trimmed string field of a configuration ("" when absent).
pub(crate) fn text(config: &Value, key: &str) -> String {
    config
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// The normalized configuration of an HTTP channel: `url` (`default_url` when empty), the
/// per-rule `severity` map and `min_interval_ms` (at least `min_floor_ms`).
pub(crate) fn http_config(
    config: &Value,
    default_url: Option<&str>,
    min_floor_ms: Option<u64>,
) -> Result<Value, String> {
    let mut url = text(config, "url");
    if url.is_empty()
        && let Some(d) = default_url
    {
        url = d.to_owned();
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err("`url` must start with http:// or https://".into());
    }
    let severity = config.get("severity").cloned().unwrap_or(json!({}));
    severity_map(&severity)?;
    let min = match (min_floor_ms, min_interval_ms(config)?) {
        (Some(floor), m) => Some(m.unwrap_or(floor).max(floor)),
        (None, m) => m,
    };
    Ok(json!({"url": url, "severity": severity, "min_interval_ms": min}))
}

/// The channel's `min_interval_ms` as stored.
pub fn min_interval(ch: &ChannelRow) -> Option<Duration> {
    serde_json::from_str::<Value>(&ch.config)
        .ok()
        .and_then(|c| c["min_interval_ms"].as_u64())
        .map(Duration::from_millis)
}

/// The digest of a test notification: a made-up open incident led by a CUSUM violation on
/// `test-site / test-host / test-model / latency_ms`, value 1234.5 against centre 800.
pub fn test_digest(ch: &ChannelRow, now_us: i64) -> Digest {
    let series = SeriesId::series(
        "test-site",
        "test-host",
        "test",
        "test-model",
        Metric::LatencyMs,
    );
    let baseline = llmscope_spc::Baseline::given(800.0, 100.0, 3.0, llmscope_spc::Transform::None)
        .map(|b| FrozenBaseline::new(0, Scope::Series, b, (now_us, now_us), BaselineMode::Manual))
        .ok();
    let violation = baseline.map(|b| {
        let mut v = Violation::finding(
            series,
            Scope::Series,
            Detector::Cusum,
            0,
            now_us,
            vec![Point::sample(uuid::Uuid::nil(), now_us, 1234.5)],
            b,
        );
        v.id = format!("test-{}", uuid::Uuid::new_v4());
        v.incident = Some(v.id.clone());
        v
    });
    let id = violation
        .as_ref()
        .map(|v| v.id.clone())
        .unwrap_or_else(|| "test".into());
    Digest {
        group_key: "test".into(),
        items: vec![Claimed {
            outbox_id: 0,
            channel: ch.name.clone(),
            attempts: 0,
            event: AlertEvent::Test,
            violation_id: id,
            labels:
                json!({"site": "test-site", "model": "test-model", "severity": "error", "rule": "0", "detector": "cusum"})
                    .to_string(),
            violation,
            members: Vec::new(),
        }],
    }
}

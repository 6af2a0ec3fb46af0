//! The generic webhook channel: a JSON POST signed with HMAC-SHA256.
//!
//! Body (one message per group of notifications, see the README for an example):
//! `{"version": "2", "group_key", "count", "title", "event", "violation_id", "violation",
//! "dashboard_url", "notifications": [{"event", "delivery_id", "violation_id", "severity",
//! "labels", "series", "rule", "baseline", "points", "violation", "dashboard_url"}, …],
//! "delivery_id", "sent_at"}` — the top-level `event`, `violation_id`, `violation` and
//! `dashboard_url` repeat the first notification for receivers that handle one at a time.
//! Headers: `X-LLMscope-Event`, `X-LLMscope-Delivery` (the first notification's outbox id,
//! the same on retries), `X-LLMscope-Timestamp` (Unix seconds) and
//! `X-LLMscope-Signature: v1=<hex>` where `<hex>` is HMAC-SHA256 with the channel secret over
//! `"<timestamp>.<raw body>"`. Receivers recompute it over the raw body and compare in
//! constant time, and reject timestamps older than a few minutes (replays).
//!
//! Version 2 (this one) gives every time in the body — `sent_at`, the violation's
//! `opened_at`, `last_point_at`, `resolved_at`, its points' and baseline window's `ts` — in
//! Unix milliseconds, as the REST API does; version 1 gave the violation's times in µs.

use hmac::{Hmac, Mac};
use llmscope_store::alerts::ChannelRow;
use sha2::Sha256;

use super::{Channel, SendContext};
use crate::config::AlertsConfig;
use crate::digest::Digest;
use crate::transport::{SendResult, post_json};

/// The generic webhook.
pub struct Webhook;

impl Channel for Webhook {
    fn validate(&self, config: &serde_json::Value, _: bool) -> Result<serde_json::Value, String> {
        super::http_config(config, None, None)
    }

    async fn send(&self, ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
        send(ctx, ch, d).await
    }
}

/// The signature header value for a timestamp and body.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(), // HMAC accepts keys of any length
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The JSON body for a digest (`sent_at` in Unix ms).
pub fn body(cfg: &AlertsConfig, d: &Digest, sent_at: i64) -> serde_json::Value {
    let items = d.item_json(cfg);
    let first = items.first().cloned().unwrap_or_default();
    serde_json::json!({
        "version": "2",
        "group_key": d.group_key,
        "count": items.len(),
        "title": d.title(),
        "event": first["event"],
        "violation_id": first["violation_id"],
        "violation": first["violation"],
        "dashboard_url": first["dashboard_url"],
        "delivery_id": first["delivery_id"],
        "notifications": items,
        "sent_at": sent_at,
    })
}

async fn send(ctx: SendContext<'_>, ch: &ChannelRow, d: &Digest) -> SendResult {
    let ts = ctx.now_us.div_euclid(1_000_000);
    let body = body(ctx.cfg, d, llmscope_model::time::ms(ctx.now_us)).to_string();
    let first = d.items.first();
    // the signature covers exactly the bytes sent
    let headers = [
        (
            "x-llmscope-event",
            first.map(|c| c.event.to_string()).unwrap_or_default(),
        ),
        (
            "x-llmscope-delivery",
            first.map(|c| c.outbox_id.to_string()).unwrap_or_default(),
        ),
        ("x-llmscope-timestamp", ts.to_string()),
        (
            "x-llmscope-signature",
            signature(&ch.secret, ts, body.as_bytes()),
        ),
    ];
    post_json(ctx, ch, body, &headers).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_an_independent_implementation() {
        // computed with Python: hmac.new(b"secret", b'1700000000.{"a":1}', hashlib.sha256)
        assert_eq!(
            signature("secret", 1_700_000_000, br#"{"a":1}"#),
            "v1=49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
        );
    }
}

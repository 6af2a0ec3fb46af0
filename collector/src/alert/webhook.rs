//! The generic webhook channel: a JSON POST signed with HMAC-SHA256.
//!
//! Body: `{"event": "opened"|"resolved", "violation_id", "violation": {…}, "dashboard_url",
//! "delivery_id", "sent_at"}`. Headers: `X-LLMscope-Event`, `X-LLMscope-Delivery` (the outbox
//! id: the same on retries, for deduplication), `X-LLMscope-Timestamp` (Unix seconds) and
//! `X-LLMscope-Signature: v1=<hex>` where `<hex>` is HMAC-SHA256 with the channel secret over
//! `"<timestamp>.<raw body>"`. Receivers recompute it over the raw body and compare in
//! constant time, and reject timestamps older than a few minutes (replays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{AlertsConfig, SendResult, post_json};
use crate::store::alerts::{ChannelRow, Claimed};

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

/// Sends one notification.
pub async fn send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    c: &Claimed,
) -> SendResult {
    let payload: serde_json::Value =
        serde_json::from_str(&c.payload).unwrap_or(serde_json::Value::Null);
    let violation_id = payload
        .get("violation_id")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_owned();
    let ts = crate::store::now_us() / 1_000_000;
    let body = serde_json::json!({
        "event": c.event,
        "violation_id": violation_id,
        "violation": payload.get("violation"),
        "dashboard_url": format!("{}/violations/{violation_id}", cfg.public_url.trim_end_matches('/')),
        "delivery_id": c.outbox_id,
        "sent_at": ts,
    })
    .to_string();
    // the signature covers exactly the bytes sent
    let headers = [
        ("x-llmscope-event", c.event.clone()),
        ("x-llmscope-delivery", c.outbox_id.to_string()),
        ("x-llmscope-timestamp", ts.to_string()),
        (
            "x-llmscope-signature",
            signature(&ch.secret, ts, body.as_bytes()),
        ),
    ];
    post_json(client, cfg, ch, body, &headers).await
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

//! HTTP transport of the HTTP channels: a JSON body POSTed byte for byte, and what the
//! receiver answered ([`SendResult`]).

use std::time::Duration;

use llmscope_store::alerts::ChannelRow;

use crate::channel::SendContext;
use serde::Serialize;

/// What a channel answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SendResult {
    /// HTTP status (SMTP reply code for email), if any.
    pub status: Option<u16>,
    /// Error text on failure.
    pub error: Option<String>,
    /// `Retry-After`, if the receiver sent one.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The receiver's answer (body or SMTP reply), at most 2 KiB.
    pub response: String,
}

impl SendResult {
    /// Whether the receiver accepted it.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// A failure without an answer from the receiver.
    pub fn failed(error: String) -> SendResult {
        SendResult {
            error: Some(error),
            ..SendResult::default()
        }
    }
}

/// POSTs a serialized JSON body (sent byte for byte) to the channel's `url` with extra
/// headers; any 2xx is success.
pub async fn post_json(
    ctx: SendContext<'_>,
    ch: &ChannelRow,
    body: String,
    headers: &[(&str, String)],
) -> SendResult {
    let url = serde_json::from_str::<serde_json::Value>(&ch.config)
        .ok()
        .and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_owned))
        .unwrap_or_default();
    if ctx.cfg.deny_private_targets {
        // names are checked by the client's resolver; literals never reach it
        if let Err(e) = crate::targets::check_literal(&url) {
            return SendResult::failed(e);
        }
    }
    let mut rb = ctx
        .client
        .post(&url)
        .timeout(ctx.cfg.timeout)
        .header("user-agent", "llmscope-collector")
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    match rb.send().await {
        // the URL may carry a secret (Slack webhooks): report without it
        Err(e) => SendResult::failed(format!("request failed: {}", e.without_url())),
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let ok = (200..300).contains(&status);
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(2048)
                .collect();
            SendResult {
                status: Some(status),
                error: (!ok).then(|| {
                    format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                }),
                retry_after,
                response: text,
            }
        }
    }
}

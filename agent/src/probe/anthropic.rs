//! Anthropic `/v1/messages` (SSE: `message_start` with input usage, `content_block_delta`
//! with text, `message_delta` with output usage, `message_stop`; `x-api-key` and
//! `anthropic-version` headers).

use serde_json::{Value, json};

use super::{Observed, Target, error_text, u32_at};

/// The API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Builds the streaming canary request.
pub fn request(client: &reqwest::Client, t: &Target) -> reqwest::RequestBuilder {
    let body = json!({
        "model": t.cfg.model,
        "max_tokens": t.cfg.max_tokens,
        "messages": [{"role": "user", "content": t.cfg.prompt}],
        "stream": true,
        "temperature": 0,
    });
    let mut rb = client
        .post(format!("{}/v1/messages", t.base_url))
        .header("anthropic-version", ANTHROPIC_VERSION)
        .header("accept", "text/event-stream")
        .json(&body);
    if let Some(k) = &t.api_key {
        rb = rb.header("x-api-key", k);
    }
    rb
}

/// Reads one event; returns whether it carried content.
pub fn on_event(event: &str, v: &Value, obs: &mut Observed) -> bool {
    let kind = v.get("type").and_then(Value::as_str).unwrap_or(event);
    match kind {
        "error" => {
            obs.error = error_text(v).or(Some("error event in the stream".into()));
            false
        }
        "message_start" => {
            obs.tokens_in = u32_at(v, "/message/usage/input_tokens").or(obs.tokens_in);
            obs.tokens_out = u32_at(v, "/message/usage/output_tokens").or(obs.tokens_out);
            false
        }
        "content_block_delta" => {
            let text = v
                .pointer("/delta/text")
                .or_else(|| v.pointer("/delta/partial_json"))
                .and_then(Value::as_str)
                .unwrap_or("");
            !text.is_empty()
        }
        "message_delta" => {
            obs.tokens_out = u32_at(v, "/usage/output_tokens").or(obs.tokens_out);
            false
        }
        "message_stop" => {
            obs.done = true;
            false
        }
        "message" => {
            // non-streaming body
            obs.tokens_in = u32_at(v, "/usage/input_tokens").or(obs.tokens_in);
            obs.tokens_out = u32_at(v, "/usage/output_tokens").or(obs.tokens_out);
            obs.done = true;
            true
        }
        _ => false,
    }
}

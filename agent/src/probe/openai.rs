//! OpenAI `/v1/chat/completions` (SSE with `stream_options.include_usage`); also any
//! OpenAI-compatible server (vLLM, llama.cpp server, TGI) and the simulated provider.

use serde_json::{Value, json};

use super::{Observed, Target, error_text, u32_at};

/// Builds the streaming canary request.
pub fn request(client: &reqwest::Client, t: &Target) -> reqwest::RequestBuilder {
    let body = json!({
        "model": t.cfg.model,
        "messages": [{"role": "user", "content": t.cfg.prompt}],
        "stream": true,
        "stream_options": {"include_usage": true},
        "temperature": 0,
        "max_tokens": t.cfg.max_tokens,
    });
    let mut rb = client
        .post(format!("{}/v1/chat/completions", t.base_url))
        .header("accept", "text/event-stream")
        .json(&body);
    if let Some(k) = &t.api_key {
        rb = rb.bearer_auth(k);
    }
    rb
}

/// Reads one chunk object; returns whether it carried content.
pub fn on_event(v: &Value, obs: &mut Observed) -> bool {
    if let Some(e) = error_text(v) {
        obs.error = Some(e);
        return false;
    }
    if v.get("usage").is_some_and(|u| !u.is_null()) {
        obs.tokens_in = u32_at(v, "/usage/prompt_tokens").or(obs.tokens_in);
        obs.tokens_out = u32_at(v, "/usage/completion_tokens").or(obs.tokens_out);
    }
    let mut content = false;
    if let Some(choices) = v.get("choices").and_then(Value::as_array) {
        for c in choices {
            let text = c
                .pointer("/delta/content")
                .or_else(|| c.pointer("/message/content"))
                .or_else(|| c.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("");
            let tool = c.pointer("/delta/tool_calls").is_some_and(|t| !t.is_null());
            content |= !text.is_empty() || tool;
        }
    }
    // a non-streaming body is complete by definition
    if v.get("object").and_then(Value::as_str) == Some("chat.completion") {
        obs.done = true;
    }
    content
}

//! Ollama `/api/chat` (NDJSON stream). Token counts come from the final chunk
//! (`prompt_eval_count`, `eval_count`; `eval_duration` in ns).

use serde_json::{Value, json};

use super::{Observed, Target, error_text, u32_at};

/// Builds the streaming canary request.
pub fn request(client: &reqwest::Client, t: &Target) -> reqwest::RequestBuilder {
    let body = json!({
        "model": t.cfg.model,
        "messages": [{"role": "user", "content": t.cfg.prompt}],
        "stream": true,
        "options": {"temperature": 0, "num_predict": t.cfg.max_tokens},
    });
    client.post(format!("{}/api/chat", t.base_url)).json(&body)
}

/// Reads one NDJSON line; returns whether it carried content.
pub fn on_event(v: &Value, obs: &mut Observed) -> bool {
    if let Some(e) = error_text(v) {
        obs.error = Some(e);
        return false;
    }
    let text = v
        .pointer("/message/content")
        .or_else(|| v.get("response"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if v.get("done").and_then(Value::as_bool) == Some(true) {
        obs.done = true;
        obs.tokens_in = u32_at(v, "/prompt_eval_count").or(obs.tokens_in);
        obs.tokens_out = u32_at(v, "/eval_count").or(obs.tokens_out);
    }
    !text.is_empty()
}

//! Incremental framing of streamed responses (NDJSON lines, SSE events, or one JSON body)
//! into provider events, recording the time of the first content chunk and the usage.

use std::time::Instant;

use serde_json::Value;

use super::{anthropic, ollama, openai};
use crate::config::Provider;

/// How a response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Newline-delimited JSON (Ollama).
    Ndjson,
    /// Server-sent events (OpenAI, Anthropic).
    Sse,
    /// A single JSON document (non-streaming calls through the proxy).
    Json,
}

impl Format {
    /// From a response `content-type`.
    pub fn from_content_type(ct: &str) -> Option<Format> {
        let ct = ct.to_ascii_lowercase();
        if ct.starts_with("text/event-stream") {
            Some(Format::Sse)
        } else if ct.starts_with("application/x-ndjson") || ct.starts_with("application/jsonl") {
            Some(Format::Ndjson)
        } else if ct.starts_with("application/json") {
            Some(Format::Json)
        } else {
            None
        }
    }
}

/// What was learned from a stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// When the first chunk with content arrived.
    pub first_token: Option<Instant>,
    /// Prompt tokens reported.
    pub tokens_in: Option<u32>,
    /// Completion tokens reported.
    pub tokens_out: Option<u32>,
    /// A failure found in the stream (error event, missing end marker).
    pub error: Option<String>,
    /// Whether the provider's end-of-stream marker arrived.
    pub done: bool,
    /// Events that carried content (one token each for llama.cpp, vLLM and Ollama streams).
    pub content_chunks: u32,
    /// `tokens_out` was counted from content chunks because the stream carried no usage.
    pub tokens_out_estimated: bool,
}

/// Feeds response bytes as they arrive; see the module docs.
#[derive(Debug)]
pub struct Observer {
    provider: Provider,
    format: Format,
    buf: Vec<u8>,
    obs: Observed,
    /// SSE event name of the event being read.
    event: String,
    data: String,
    start: Instant,
}

impl Observer {
    /// An observer for one response.
    pub fn new(provider: Provider, format: Format, start: Instant) -> Self {
        Observer {
            provider,
            format,
            buf: Vec::new(),
            obs: Observed::default(),
            event: String::new(),
            data: String::new(),
            start,
        }
    }

    /// When the call started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Whether a content chunk has been seen.
    pub fn has_first_token(&self) -> bool {
        self.obs.first_token.is_some()
    }

    /// Feeds one chunk of the body.
    pub fn feed(&mut self, chunk: &[u8], now: Instant) {
        self.buf.extend_from_slice(chunk);
        if self.format == Format::Json {
            return;
        }
        // whole lines, read in place; the consumed prefix is dropped once per chunk
        let buf = std::mem::take(&mut self.buf);
        let mut at = 0;
        while let Some(nl) = buf[at..].iter().position(|&b| b == b'\n') {
            let raw = &buf[at..at + nl];
            at += nl + 1;
            let line = String::from_utf8_lossy(raw);
            let line = line.trim_end_matches('\r');
            match self.format {
                Format::Ndjson => {
                    if !line.trim().is_empty() {
                        self.json_event(line, now);
                    }
                }
                Format::Sse => self.sse_line(line, now),
                Format::Json => {}
            }
        }
        self.buf = buf;
        self.buf.drain(..at);
    }

    fn sse_line(&mut self, line: &str, now: Instant) {
        if line.is_empty() {
            // dispatch the event
            if !self.data.is_empty() || !self.event.is_empty() {
                let data = std::mem::take(&mut self.data);
                let event = std::mem::take(&mut self.event);
                if data.trim() == "[DONE]" {
                    self.obs.done = true;
                } else if !data.is_empty() {
                    self.dispatch(&event, &data, now);
                }
            }
            return;
        }
        if line.starts_with(':') {
            return; // comment / keep-alive
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }

    fn json_event(&mut self, text: &str, now: Instant) {
        self.dispatch("", text, now);
    }

    fn dispatch(&mut self, event: &str, data: &str, now: Instant) {
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            return;
        };
        let content = match self.provider {
            Provider::Ollama => ollama::on_event(&v, &mut self.obs),
            Provider::Anthropic => anthropic::on_event(event, &v, &mut self.obs),
            Provider::Openai | Provider::OpenaiCompatible | Provider::Simulated => {
                openai::on_event(&v, &mut self.obs)
            }
        };
        if content {
            self.obs.content_chunks = self.obs.content_chunks.saturating_add(1);
            if self.obs.first_token.is_none() {
                self.obs.first_token = Some(now);
            }
        }
    }

    /// Ends the body: flushes a trailing unterminated event and checks the end marker.
    pub fn finish(mut self, now: Instant) -> Observed {
        match self.format {
            Format::Json => {
                let body = std::mem::take(&mut self.buf);
                let text = String::from_utf8_lossy(&body).into_owned();
                self.dispatch("", &text, now);
                // time to first token is defined for streams only: a whole-body answer has
                // none (its latency is the whole call), and so no TPOT or tokens/s either
                self.obs.first_token = None;
                return self.obs;
            }
            Format::Ndjson => {
                let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                if !rest.trim().is_empty() {
                    self.json_event(rest.trim(), now);
                }
            }
            Format::Sse => {
                if !self.buf.is_empty() {
                    let rest = String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned();
                    self.sse_line(rest.trim_end(), now);
                }
                self.sse_line("", now);
            }
        }
        if self.obs.error.is_none() && !self.obs.done {
            self.obs.error = Some(match self.provider {
                Provider::Ollama => "stream ended before the final `done` chunk".into(),
                Provider::Anthropic => "stream ended before `message_stop`".into(),
                _ => "stream ended before `data: [DONE]`".into(),
            });
        }
        // a server that ignores `stream_options.include_usage` (llama.cpp's): count the
        // content chunks, one token each, so TPOT and tokens/s exist; the sample says so
        if self.obs.error.is_none() && self.obs.tokens_out.is_none() && self.obs.content_chunks > 0
        {
            self.obs.tokens_out = Some(self.obs.content_chunks);
            self.obs.tokens_out_estimated = true;
        }
        self.obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run(provider: Provider, format: Format, chunks: &[&str]) -> Observed {
        let t0 = Instant::now();
        let mut o = Observer::new(provider, format, t0);
        for (i, c) in chunks.iter().enumerate() {
            o.feed(
                c.as_bytes(),
                t0 + Duration::from_millis(10 * (i as u64 + 1)),
            );
        }
        o.finish(t0 + Duration::from_secs(1))
    }

    #[test]
    fn openai_sse_split_across_chunks() {
        let t0 = Instant::now();
        let mut o = Observer::new(Provider::Openai, Format::Sse, t0);
        o.feed(
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            t0 + Duration::from_millis(5),
        );
        assert!(!o.has_first_token(), "role-only chunk carries no content");
        o.feed(
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hel",
            t0 + Duration::from_millis(20),
        );
        o.feed(b"lo\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}\n\ndata: [DONE]\n\n", t0 + Duration::from_millis(30));
        let obs = o.finish(t0 + Duration::from_millis(40));
        assert_eq!(
            obs.first_token,
            Some(t0 + Duration::from_millis(30)),
            "content completes in the third chunk"
        );
        assert_eq!((obs.tokens_in, obs.tokens_out), (Some(9), Some(2)));
        assert!(obs.done && obs.error.is_none());
    }

    #[test]
    fn a_stream_without_usage_counts_its_content_chunks() {
        // llama.cpp's server ignores stream_options.include_usage
        let obs = run(
            Provider::OpenaiCompatible,
            Format::Sse,
            &[
                "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n",
                "data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n",
                "data: {\"choices\":[{\"delta\":{\"content\":\"b\"}}]}\n\n",
                "data: {\"choices\":[{\"delta\":{\"content\":\"c\"}}]}\n\n",
                "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            ],
        );
        assert_eq!((obs.tokens_out, obs.tokens_out_estimated), (Some(3), true));
        assert_eq!(obs.tokens_in, None);
        // a whole-body answer has no TTFT
        let obs = run(
            Provider::Openai,
            Format::Json,
            &[
                "{\"choices\":[{\"message\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}",
            ],
        );
        assert_eq!(obs.first_token, None);
        assert_eq!((obs.tokens_out, obs.tokens_out_estimated), (Some(1), false));
    }

    #[test]
    fn openai_missing_done_and_error_events() {
        let obs = run(
            Provider::Openai,
            Format::Sse,
            &["data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n"],
        );
        assert_eq!(
            obs.error.as_deref(),
            Some("stream ended before `data: [DONE]`")
        );
        let obs = run(
            Provider::Openai,
            Format::Sse,
            &["data: {\"error\":{\"message\":\"overloaded\"}}\n\n"],
        );
        assert_eq!(obs.error.as_deref(), Some("overloaded"));
    }

    #[test]
    fn ollama_ndjson_uses_final_counts() {
        let obs = run(
            Provider::Ollama,
            Format::Ndjson,
            &[
                "{\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n",
                "{\"message\":{\"content\":\"\"},\"done\":true,\"prompt_eval_count\":12,\"eval_count\":7,\"eval_duration\":12345}\n",
            ],
        );
        assert!(obs.first_token.is_some());
        assert_eq!((obs.tokens_in, obs.tokens_out), (Some(12), Some(7)));
        assert!(obs.error.is_none());
        let obs = run(
            Provider::Ollama,
            Format::Ndjson,
            &["{\"error\":\"model not found\"}\n"],
        );
        assert_eq!(obs.error.as_deref(), Some("model not found"));
    }

    #[test]
    fn anthropic_events() {
        let obs = run(
            Provider::Anthropic,
            Format::Sse,
            &[
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n",
                "event: ping\ndata: {\"type\":\"ping\"}\n\n",
                "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
                "event: message_delta\ndata: {\"type\":\"message_delta\",\"usage\":{\"output_tokens\":15}}\n\n",
                "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ],
        );
        assert_eq!((obs.tokens_in, obs.tokens_out), (Some(25), Some(15)));
        assert!(obs.done && obs.error.is_none());
        let obs = run(
            Provider::Anthropic,
            Format::Sse,
            &[
                "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            ],
        );
        assert_eq!(obs.error.as_deref(), Some("Overloaded"));
    }

    #[test]
    fn whole_json_bodies() {
        let obs = run(
            Provider::Openai,
            Format::Json,
            &[
                "{\"choices\":[{\"message\":{\"content\":\"x\"}}],",
                "\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
            ],
        );
        assert_eq!((obs.tokens_in, obs.tokens_out), (Some(3), Some(4)));
        let obs = run(
            Provider::Anthropic,
            Format::Json,
            &[
                "{\"type\":\"message\",\"content\":[{\"text\":\"x\"}],\"usage\":{\"input_tokens\":5,\"output_tokens\":6}}",
            ],
        );
        assert_eq!((obs.tokens_in, obs.tokens_out), (Some(5), Some(6)));
    }
}

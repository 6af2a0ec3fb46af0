//! Canary probes: one synthetic streaming call per target on an interval with jitter.
//!
//! Every provider module has the same shape: `request()` builds the provider's real request
//! (streaming on, temperature 0, a small `max_tokens`) and `on_event()` reads one decoded
//! stream event (an NDJSON line or an SSE `data:` payload) into the call's [`Observed`]
//! state. [`stream::Observer`] does the framing and is shared with the timing proxy, so a
//! probe and a proxied call are measured the same way: latency from sending the request to
//! the last byte, time to first token at the first chunk that carries content, tokens from
//! the provider's own usage report. Timeouts, connection errors, HTTP errors and broken
//! streams become error samples with the status and a short reason, never latency points.

pub mod anthropic;
pub mod ollama;
pub mod openai;
pub mod stream;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Provider, TargetConfig};
pub use stream::{Format, Observed, Observer};

/// Outcome of one model call, probe or proxied.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Whole-call latency, ms.
    pub latency_ms: f64,
    /// Time to first token, ms.
    pub ttft_ms: Option<f64>,
    /// Prompt tokens.
    pub tokens_in: Option<u32>,
    /// Completion tokens.
    pub tokens_out: Option<u32>,
    /// `tokens_out` was counted from the stream's content chunks (no usage reported).
    pub tokens_out_estimated: bool,
    /// `ok`, `error` or `timeout`.
    pub status: CallStatus,
    /// HTTP status, when a response arrived.
    pub http_status: Option<u32>,
    /// Short reason for failures.
    pub error: String,
}

/// Outcome classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallStatus {
    /// Completed.
    Ok,
    /// Failed.
    Error,
    /// Timed out.
    Timeout,
}

/// A probe target with its key resolved.
#[derive(Clone)]
pub struct Target {
    /// Config.
    pub cfg: TargetConfig,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// API key (never logged; `Debug` hides it).
    pub api_key: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.cfg.name)
            .field("provider", &self.cfg.provider)
            .field("base_url", &self.base_url)
            .field("model", &self.cfg.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Shortens a failure reason to at most `max` bytes on a char boundary.
pub fn short(reason: &str, max: usize) -> String {
    let one_line: String = reason.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.len() <= max {
        return one_line;
    }
    let mut end = max;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &one_line[..end])
}

/// A JSON number as u32.
pub fn u32_at(v: &Value, ptr: &str) -> Option<u32> {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .map(|n| n.min(u64::from(u32::MAX)) as u32)
}

/// An error message from a JSON error object or string.
pub fn error_text(v: &Value) -> Option<String> {
    let e = v.get("error")?;
    Some(short(
        e.get("message")
            .and_then(Value::as_str)
            .or(e.as_str())
            .unwrap_or("error event in the stream"),
        200,
    ))
}

fn wire_format(p: Provider) -> Format {
    match p {
        Provider::Ollama => Format::Ndjson,
        _ => Format::Sse,
    }
}

/// Runs one probe call against `target`.
pub async fn probe_once(client: &reqwest::Client, target: &Target) -> Outcome {
    let start = Instant::now();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let timeout = target.cfg.timeout;
    let req = match target.cfg.provider {
        Provider::Ollama => ollama::request(client, target),
        Provider::Anthropic => anthropic::request(client, target),
        Provider::Openai | Provider::OpenaiCompatible | Provider::Simulated => {
            openai::request(client, target)
        }
    };
    let run = async {
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return failure(start, None, connect_reason(&e)),
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return failure(
                start,
                Some(status.as_u16() as u32),
                http_reason(status.as_u16(), &body),
            );
        }
        let mut observer =
            Observer::new(target.cfg.provider, wire_format(target.cfg.provider), start);
        let mut resp = resp;
        loop {
            match resp.chunk().await {
                Ok(Some(chunk)) => observer.feed(&chunk, Instant::now()),
                Ok(None) => break,
                Err(e) => {
                    return failure(
                        start,
                        Some(status.as_u16() as u32),
                        format!("stream broken: {}", short(&e.to_string(), 200)),
                    );
                }
            }
        }
        let obs = observer.finish(Instant::now());
        let http = Some(status.as_u16() as u32);
        if let Some(err) = obs.error {
            return failure(start, http, err);
        }
        Outcome {
            latency_ms: ms(start.elapsed()),
            ttft_ms: obs.first_token.map(|t| ms(t.duration_since(start))),
            tokens_in: obs.tokens_in,
            tokens_out: obs.tokens_out,
            tokens_out_estimated: obs.tokens_out_estimated,
            status: CallStatus::Ok,
            http_status: http,
            error: String::new(),
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(o) => o,
        Err(_) => Outcome {
            latency_ms: ms(start.elapsed()),
            ttft_ms: None,
            tokens_in: None,
            tokens_out: None,
            tokens_out_estimated: false,
            status: CallStatus::Timeout,
            http_status: None,
            error: format!("timed out after {}", humantime_fmt(timeout)),
        },
    }
}

fn humantime_fmt(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn failure(start: Instant, http: Option<u32>, error: String) -> Outcome {
    Outcome {
        latency_ms: start.elapsed().as_secs_f64() * 1e3,
        ttft_ms: None,
        tokens_in: None,
        tokens_out: None,
        tokens_out_estimated: false,
        status: CallStatus::Error,
        http_status: http,
        error,
    }
}

fn connect_reason(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg = s.to_string();
        src = s.source();
    }
    let kind = if e.is_connect() {
        "connect"
    } else if e.is_timeout() {
        "timeout"
    } else {
        "request"
    };
    format!("{kind}: {}", short(&msg, 200))
}

/// `HTTP 429: rate limited` from a status and an error body (JSON `error.message` when present).
pub fn http_reason(status: u16, body: &str) -> String {
    let detail = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .or_else(|| v.get("error"))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .unwrap_or_else(|| body.to_owned());
    let detail = short(&detail, 200);
    if detail.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {detail}")
    }
}

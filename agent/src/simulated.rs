//! The `simulated` provider: a built-in OpenAI-compatible model endpoint for demos and the
//! quick start. Time to first token is log-normal around a median, then tokens stream at a
//! steady rate; an optional schedule applies degradations (a shift, a drift, a noisy period)
//! relative to the agent's start, so control charts have something to catch. Everything it
//! produces is labelled `simulated` (provider and model name).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng;
use serde_json::{Value, json};

use crate::config::{DegradationKind, SimulatedConfig};

struct Sim {
    cfg: SimulatedConfig,
    started: Instant,
}

/// The timing of one simulated call: time to first token and the time per further token, ms.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Draw {
    /// Time to the first token.
    pub ttft_ms: f64,
    /// Time between two tokens.
    pub per_token_ms: f64,
}

impl Draw {
    /// The whole call's duration for `tokens` output tokens (what a streaming client sees).
    pub fn latency_ms(&self, tokens: u32) -> f64 {
        self.ttft_ms + self.per_token_ms * f64::from(tokens.saturating_sub(1))
    }
}

/// (latency multiplier, sigma multiplier) of `cfg`'s schedule at `t` after the start.
pub fn degradation(cfg: &SimulatedConfig, t: Duration) -> (f64, f64) {
    let mut mult = 1.0;
    let mut sigma = 1.0;
    for d in &cfg.schedule {
        if t < d.after || t >= d.after + d.duration {
            continue;
        }
        match d.kind {
            DegradationKind::Shift => mult *= d.factor,
            DegradationKind::Drift => {
                let frac = (t - d.after).as_secs_f64() / d.duration.as_secs_f64().max(1e-9);
                mult *= 1.0 + (d.factor - 1.0) * frac;
            }
            DegradationKind::Noise => sigma *= d.factor,
        }
    }
    (mult, sigma)
}

/// Draws the timing of a call made `t` after the start (the endpoint sleeps accordingly;
/// tests draw from it directly with a clock of their own).
pub fn draw(cfg: &SimulatedConfig, t: Duration, rng: &mut impl Rng) -> Draw {
    let (mult, sigma_mult) = degradation(cfg, t);
    Draw {
        ttft_ms: lognormal(rng, cfg.ttft_median_ms, cfg.ttft_sigma * sigma_mult) * mult,
        per_token_ms: 1000.0 / cfg.tokens_per_s * mult,
    }
}

/// Draws from a log-normal with the given median and shape (Box-Muller).
pub fn lognormal(rng: &mut impl Rng, median: f64, sigma: f64) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    median * (sigma * z).exp()
}

/// Starts the endpoint; returns its bound address.
pub async fn start(cfg: SimulatedConfig) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let sim = Arc::new(Sim {
        cfg,
        started: Instant::now(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/models", get(models))
        .with_state(sim);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "simulated endpoint stopped");
        }
    });
    Ok(addr)
}

async fn models(State(sim): State<Arc<Sim>>) -> impl IntoResponse {
    axum::Json(
        json!({"object": "list", "data": [{"id": sim.cfg.model, "object": "model", "owned_by": "simulated"}]}),
    )
}

async fn chat(State(sim): State<Arc<Sim>>, body: axum::Json<Value>) -> Response {
    let max_tokens = body
        .get("max_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(16)
        .clamp(1, 4096) as u32;
    let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let prompt_tokens = body
        .get("messages")
        .map(|m| m.to_string().split_whitespace().count() as u32)
        .unwrap_or(1);
    let (ttft, per_token) = {
        let d = draw(&sim.cfg, sim.started.elapsed(), &mut rand::rng());
        (d.ttft_ms, d.per_token_ms)
    };
    let model = sim.cfg.model.clone();
    if !stream {
        tokio::time::sleep(Duration::from_secs_f64(
            (ttft + per_token * f64::from(max_tokens)) / 1e3,
        ))
        .await;
        return axum::Json(json!({
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "simulated ".repeat(max_tokens as usize)}, "finish_reason": "length"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens, "total_tokens": prompt_tokens + max_tokens}
        }))
        .into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(8);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs_f64(ttft / 1e3)).await;
        for i in 0..max_tokens {
            if i > 0 {
                tokio::time::sleep(Duration::from_secs_f64(per_token / 1e3)).await;
            }
            let chunk = json!({"object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": "sim "}}]});
            if tx.send(Ok(format!("data: {chunk}\n\n"))).await.is_err() {
                return;
            }
        }
        let usage = json!({"object": "chat.completion.chunk", "model": model, "choices": [], "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": max_tokens, "total_tokens": prompt_tokens + max_tokens}});
        let _ = tx.send(Ok(format!("data: {usage}\n\n"))).await;
        let _ = tx.send(Ok("data: [DONE]\n\n".into())).await;
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

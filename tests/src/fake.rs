//! Fake model servers that speak each provider's real wire format, streaming included:
//! Ollama `/api/chat` (NDJSON), OpenAI `/v1/chat/completions` (SSE with usage, or one JSON
//! body), Anthropic `/v1/messages` (SSE events). Timing and failures are scripted, so tests
//! can check measured latency, time to first token and usage against known values.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

/// What the server does with the next requests.
#[derive(Debug, Clone, PartialEq)]
pub enum Behavior {
    /// Stream normally.
    Normal,
    /// Answer with this status and JSON error message, e.g. 429 or 500.
    Status(u16, String),
    /// Send the first token, then an error event (or, for Ollama, an error line).
    MidStreamError,
    /// Send the first token, then close the connection without the end marker.
    Cut,
    /// Never answer.
    Hang,
    /// Send the first token (OpenAI streams), then nothing more while keeping the connection
    /// open.
    Stall,
}

/// Timing and usage the server reports.
#[derive(Debug, Clone)]
pub struct Script {
    /// Delay before the first content chunk.
    pub first_token: Duration,
    /// Delay between further content chunks.
    pub per_token: Duration,
    /// Content chunks (= completion tokens reported).
    pub tokens: u32,
    /// Prompt tokens reported.
    pub prompt_tokens: u32,
    /// Behaviour.
    pub behavior: Behavior,
    /// The Prometheus page served at `/metrics` (vLLM's format); 404 when `None`.
    pub metrics_page: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            first_token: Duration::from_millis(120),
            per_token: Duration::from_millis(10),
            tokens: 8,
            prompt_tokens: 11,
            behavior: Behavior::Normal,
            metrics_page: None,
        }
    }
}

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Path.
    pub path: String,
    /// Headers.
    pub headers: HeaderMap,
    /// JSON body.
    pub body: Value,
}

/// A running fake server.
#[derive(Clone)]
pub struct FakeServer {
    /// Address.
    pub addr: SocketAddr,
    script: Arc<Mutex<Script>>,
    received: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct St {
    script: Arc<Mutex<Script>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeServer {
    /// Starts on 127.0.0.1 with a free port.
    pub async fn start(script: Script) -> FakeServer {
        FakeServer::start_on("127.0.0.1:0", script).await
    }

    /// [`FakeServer::start`] on a given address (a server that appears on a known port).
    pub async fn start_on(addr: &str, script: Script) -> FakeServer {
        let st = St {
            script: Arc::new(Mutex::new(script)),
            received: Arc::default(),
        };
        let app = Router::new()
            .route("/api/chat", post(ollama))
            .route(
                "/api/tags",
                get(|| async { axum::Json(json!({"models": [{"name": "llama3.1:8b"}]})) }),
            )
            .route("/v1/chat/completions", post(openai))
            .route(
                "/v1/models",
                get(|| async {
                    axum::Json(json!({"object": "list", "data": [{"id": "fake-model"}]}))
                }),
            )
            .route("/v1/messages", post(anthropic))
            .route("/metrics", get(metrics_page))
            .route(
                "/api/ps",
                get(|| async {
                    // Ollama's /api/ps: the loaded models, with their size in VRAM
                    axum::Json(json!({"models": [{
                        "name": "llama3.1:8b", "model": "llama3.1:8b", "size": 6_654_289_920_u64,
                        "digest": "46e0c10c039e019119339687c3c1757cc81b9da49709a3b3924863ba87ca666e",
                        "details": {"parent_model": "", "format": "gguf", "family": "llama",
                                    "families": ["llama"], "parameter_size": "8.0B",
                                    "quantization_level": "Q4_K_M"},
                        "expires_at": "2026-12-06T21:04:12.345678901Z",
                        "size_vram": 6_654_289_920_u64
                    }]}))
                }),
            )
            .with_state(st.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeServer {
            addr,
            script: st.script,
            received: st.received,
        }
    }

    /// Base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Changes the script for the next requests.
    pub fn set(&self, f: impl FnOnce(&mut Script)) {
        if let Ok(mut s) = self.script.lock() {
            f(&mut s);
        }
    }

    /// Requests received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

fn note(st: &St, path: &str, headers: &HeaderMap, body: &Value) -> Script {
    if let Ok(mut r) = st.received.lock() {
        r.push(Received {
            path: path.into(),
            headers: headers.clone(),
            body: body.clone(),
        });
    }
    st.script.lock().map(|s| s.clone()).unwrap_or_default()
}

type Tx = tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>;

fn streaming(content_type: &'static str) -> (Tx, Response) {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    let resp = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    (tx, resp)
}

async fn early(s: &Script) -> Option<Response> {
    match &s.behavior {
        Behavior::Status(code, msg) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = (
                status,
                axum::Json(json!({"error": {"message": msg, "type": "fake"}})),
            )
                .into_response();
            if *code == 429 {
                r.headers_mut()
                    .insert("retry-after", header::HeaderValue::from_static("1"));
            }
            Some(r)
        }
        Behavior::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        _ => None,
    }
}

async fn send(tx: &Tx, s: String) -> bool {
    tx.send(Ok(Bytes::from(s))).await.is_ok()
}

async fn ollama(
    State(st): State<St>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let s = note(&st, "/api/chat", &headers, &body);
    if let Some(r) = early(&s).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(json!("?"));
    let (tx, resp) = streaming("application/x-ndjson");
    tokio::spawn(async move {
        tokio::time::sleep(s.first_token).await;
        for i in 0..s.tokens {
            if i > 0 {
                tokio::time::sleep(s.per_token).await;
            }
            let line = json!({"model": model, "message": {"role": "assistant", "content": format!("t{i} ")}, "done": false});
            if !send(&tx, format!("{line}\n")).await {
                return;
            }
            if i == 0 {
                match s.behavior {
                    Behavior::MidStreamError => {
                        let _ = send(
                            &tx,
                            format!(
                                "{}\n",
                                json!({"error": "llama runner process has terminated"})
                            ),
                        )
                        .await;
                        return;
                    }
                    Behavior::Cut => return,
                    _ => {}
                }
            }
        }
        let done = json!({"model": model, "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": "stop",
            "total_duration": 1, "prompt_eval_count": s.prompt_tokens, "eval_count": s.tokens, "eval_duration": 1});
        let _ = send(&tx, format!("{done}\n")).await;
    });
    resp
}

async fn openai(
    State(st): State<St>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let s = note(&st, "/v1/chat/completions", &headers, &body);
    if let Some(r) = early(&s).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(json!("?"));
    let usage = json!({"prompt_tokens": s.prompt_tokens, "completion_tokens": s.tokens, "total_tokens": s.prompt_tokens + s.tokens});
    if body.get("stream").and_then(Value::as_bool) != Some(true) {
        tokio::time::sleep(s.first_token).await;
        return axum::Json(json!({"id": "chatcmpl-fake", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "fixed answer"}, "finish_reason": "stop"}], "usage": usage}))
        .into_response();
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let (tx, resp) = streaming("text/event-stream");
    tokio::spawn(async move {
        let role = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]});
        if !send(&tx, format!("data: {role}\n\n")).await {
            return;
        }
        tokio::time::sleep(s.first_token).await;
        for i in 0..s.tokens {
            if i > 0 {
                tokio::time::sleep(s.per_token).await;
            }
            let c = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {"content": format!("t{i} ")}}]});
            if !send(&tx, format!("data: {c}\n\n")).await {
                return;
            }
            if i == 0 {
                match s.behavior {
                    Behavior::MidStreamError => {
                        let _ = send(&tx, format!("data: {}\n\n", json!({"error": {"message": "upstream overloaded", "type": "server_error"}}))).await;
                        return;
                    }
                    Behavior::Cut => return,
                    Behavior::Stall => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    _ => {}
                }
            }
        }
        let fin = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
        let _ = send(&tx, format!("data: {fin}\n\n")).await;
        if include_usage {
            let u = json!({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model, "choices": [], "usage": usage});
            let _ = send(&tx, format!("data: {u}\n\n")).await;
        }
        let _ = send(&tx, "data: [DONE]\n\n".into()).await;
    });
    resp
}

async fn anthropic(
    State(st): State<St>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let s = note(&st, "/v1/messages", &headers, &body);
    if let Some(r) = early(&s).await {
        return r;
    }
    let model = body.get("model").cloned().unwrap_or(json!("?"));
    let (tx, resp) = streaming("text/event-stream");
    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    tokio::spawn(async move {
        let start = json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model, "content": [],
            "usage": {"input_tokens": s.prompt_tokens, "output_tokens": 1}}});
        if !send(&tx, ev("message_start", start)).await {
            return;
        }
        let _ = send(&tx, ev("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}))).await;
        let _ = send(&tx, ev("ping", json!({"type": "ping"}))).await;
        tokio::time::sleep(s.first_token).await;
        for i in 0..s.tokens {
            if i > 0 {
                tokio::time::sleep(s.per_token).await;
            }
            let d = json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": format!("t{i} ")}});
            if !send(&tx, ev("content_block_delta", d)).await {
                return;
            }
            if i == 0 {
                match s.behavior {
                    Behavior::MidStreamError => {
                        let _ = send(&tx, ev("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))).await;
                        return;
                    }
                    Behavior::Cut => return,
                    _ => {}
                }
            }
        }
        let _ = send(
            &tx,
            ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ),
        )
        .await;
        let _ = send(&tx, ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": s.tokens}}))).await;
        let _ = send(&tx, ev("message_stop", json!({"type": "message_stop"}))).await;
    });
    resp
}

async fn metrics_page(State(st): State<St>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let page = st.script.lock().expect("script").metrics_page.clone();
    match page {
        Some(p) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            p,
        )
            .into_response(),
        None => axum::http::StatusCode::NOT_FOUND.into_response(),
    }
}

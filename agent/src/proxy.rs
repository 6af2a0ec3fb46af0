//! The timing reverse proxy: forwards requests to an upstream model server unchanged and
//! streams the response back chunk by chunk (no buffering), timing each inference call like a
//! probe: model from the request body, time to first token at the first content chunk, usage
//! from the response or its final stream event. HTTP/1.1 with keep-alive and HTTP/2 (h2c)
//! on the listener; request bodies above `max_body_bytes` get 413; upstream errors are passed
//! through as they are (a connection failure becomes 502) and recorded as error samples.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use llmscope_proto::v1;
use tokio::sync::mpsc;

use crate::config::{Provider, ProxyConfig};
use crate::metrics::Metrics;
use crate::probe::{CallStatus, Format, Observer, Outcome, http_reason, short};
use crate::record::{Record, SampleContext, now_ns, sample};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// The hyper client the proxy forwards with: a pooled keep-alive connection per upstream,
/// plain HTTP or TLS (webpki roots, HTTP/2 by ALPN), bodies streamed frame by frame.
pub type UpstreamClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<Bytes>,
>;

/// A client for one proxy: `connect_timeout` bounds opening a connection.
pub fn upstream_client(connect_timeout: Duration) -> UpstreamClient {
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.enforce_http(false);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https)
}

/// What every connection of one proxy shares.
pub struct ProxyState {
    /// Listener config.
    pub cfg: ProxyConfig,
    /// Upstream client (keep-alive pool; see [`upstream_client`]).
    pub client: UpstreamClient,
    /// Where samples go.
    pub records: mpsc::Sender<Record>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
}

const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (k, v) in from {
        if !HOP_BY_HOP.contains(&k.as_str()) {
            to.append(k.clone(), v.clone());
        }
    }
}

/// Which inference API a path belongs to, if any (only these are timed).
fn inference_api(path: &str) -> Option<Provider> {
    match path {
        "/api/chat" | "/api/generate" => Some(Provider::Ollama),
        "/v1/messages" => Some(Provider::Anthropic),
        "/v1/chat/completions" | "/v1/completions" => Some(Provider::Openai),
        _ => None,
    }
}

fn json_error(status: StatusCode, msg: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"message": msg, "type": "llmscope_proxy"}}).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(
            Full::new(Bytes::from(body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        )
        .unwrap_or_else(|_| {
            Response::new(
                Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            )
        })
}

/// Binds the listener and serves until the returned task is aborted; returns the bound
/// address and the accept task.
pub async fn start(
    state: Arc<ProxyState>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(state.cfg.listen).await?;
    let addr = listener.local_addr()?;
    tracing::info!(proxy = %state.cfg.name, %addr, upstream = %state.cfg.upstream, "timing proxy listening");
    let task = tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "proxy accept failed");
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let st = state.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(req, st.clone()));
                if let Err(e) = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await
                {
                    tracing::debug!(error = %e, "proxy connection ended with an error");
                }
            });
        }
    });
    Ok((addr, task))
}

struct Call {
    st: Arc<ProxyState>,
    model: String,
    ts: i64,
    start: Instant,
    /// The inference route (`/v1/chat/completions`, `/api/chat`, …): label `route`.
    route: String,
    /// Whether the answer streams (from the response's content type once it arrives, before
    /// that from the request): label `stream`.
    streamed: bool,
}

impl Call {
    fn record(&self, o: Outcome) {
        let provider = self.st.cfg.provider.as_str();
        let ctx = SampleContext {
            site: &self.st.site,
            host: &self.st.host,
            provider,
            model: &self.model,
            source: v1::Source::Proxy,
            target: &self.st.cfg.name,
        };
        self.st
            .metrics
            .observe_call(&self.st.cfg.name, "proxy", provider, &self.model, &o);
        let mut smp = sample(&ctx, self.ts, &o);
        smp.labels.insert("route".into(), self.route.clone());
        smp.labels
            .insert("stream".into(), self.streamed.to_string());
        if self.st.records.try_send(Record::Sample(smp)).is_err() {
            tracing::warn!(proxy = %self.st.cfg.name, "sample queue full; a proxy sample was dropped");
        }
    }

    fn fail(&self, http: Option<u32>, error: String) {
        self.fail_with(CallStatus::Error, http, error);
    }

    fn fail_with(&self, status: CallStatus, http: Option<u32>, error: String) {
        self.record(Outcome {
            latency_ms: self.start.elapsed().as_secs_f64() * 1e3,
            ttft_ms: None,
            tokens_in: None,
            tokens_out: None,
            tokens_out_estimated: false,
            status,
            http_status: http,
            error,
        });
    }
}

async fn handle(req: Request<Incoming>, st: Arc<ProxyState>) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let ts = now_ns();
    let (parts, body) = req.into_parts();
    let max = st.cfg.max_body_bytes;
    let bytes = match Limited::new(body, max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            let too_big = e
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some();
            return Ok(if too_big {
                json_error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    &format!("request body exceeds {max} bytes (proxy max_body_bytes)"),
                )
            } else {
                json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("cannot read the request body: {e}"),
                )
            });
        }
    };
    let path_q = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let api = (parts.method == http::Method::POST)
        .then(|| inference_api(parts.uri.path()))
        .flatten();
    let call = api.map(|provider| {
        // only the two fields the sample needs: serde skips the rest (the prompt) without
        // building it
        #[derive(serde::Deserialize)]
        struct Head<'a> {
            #[serde(borrow, default)]
            model: Option<std::borrow::Cow<'a, str>>,
            #[serde(default)]
            stream: Option<bool>,
        }
        let head = serde_json::from_slice::<Head<'_>>(&bytes).ok();
        let (model, stream) = match head {
            Some(h) => (h.model.map(|m| m.into_owned()), h.stream),
            None => (None, None),
        };
        Call {
            model: model.unwrap_or_else(|| "unknown".into()),
            // Ollama streams unless told not to; the others only when asked
            streamed: stream.unwrap_or(provider == Provider::Ollama),
            route: parts.uri.path().to_owned(),
            st: st.clone(),
            ts,
            start,
        }
    });
    let url = format!("{}{}", st.cfg.upstream.trim_end_matches('/'), path_q);
    let uri = match url.parse::<http::Uri>() {
        Ok(u) => u,
        Err(e) => {
            return Ok(json_error(
                StatusCode::BAD_REQUEST,
                &format!("the request path does not make an upstream URL: {e}"),
            ));
        }
    };
    let mut up = Request::new(Full::new(bytes));
    *up.method_mut() = parts.method.clone();
    *up.uri_mut() = uri;
    copy_headers(&parts.headers, up.headers_mut());
    // limits: connect (the client's), first byte (response headers), then idle time between
    // chunks and an optional whole-response deadline, both in the body below
    let deadline = st
        .cfg
        .max_duration
        .map(|d| tokio::time::Instant::from_std(start) + d);
    let first_byte = match st.cfg.max_duration {
        Some(d) => st.cfg.timeout.min(d),
        None => st.cfg.timeout,
    };
    let upstream = match tokio::time::timeout(first_byte, st.client.request(up)).await {
        Ok(r) => r,
        Err(_) => {
            let which = if first_byte < st.cfg.timeout {
                "max_duration"
            } else {
                "timeout"
            };
            let msg = format!(
                "upstream {} sent no response headers within {} (proxy {which})",
                st.cfg.upstream,
                humantime_serde::re::humantime::format_duration(first_byte)
            );
            if let Some(c) = &call {
                c.fail_with(CallStatus::Timeout, None, msg.clone());
            }
            return Ok(json_error(StatusCode::GATEWAY_TIMEOUT, &msg));
        }
    };
    let resp = match upstream {
        Ok(r) => r,
        Err(e) => {
            let mut reason = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(x) = src {
                reason = format!("{reason}: {x}");
                src = x.source();
            }
            let msg = format!(
                "upstream {} unreachable: {}",
                st.cfg.upstream,
                short(&reason, 200)
            );
            if let Some(c) = &call {
                c.fail(None, msg.clone());
            }
            return Ok(json_error(StatusCode::BAD_GATEWAY, &msg));
        }
    };
    let status = resp.status();
    let mut builder = Response::builder().status(status.as_u16());
    if let Some(h) = builder.headers_mut() {
        copy_headers(resp.headers(), h);
    }
    let format = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(Format::from_content_type)
        .unwrap_or(Format::Json);
    let idle = st.cfg.idle_timeout;
    let call = call.map(|mut c| {
        c.streamed = format != Format::Json;
        c
    });
    let observed = ObservedBody {
        inner: resp.into_body(),
        idle,
        idle_timer: Box::pin(tokio::time::sleep(idle)),
        last_frame: tokio::time::Instant::now(),
        deadline: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
        max_duration: st.cfg.max_duration,
        ended: false,
        call: call.map(|c| {
            let provider = api.unwrap_or(Provider::Openai);
            CallState {
                observer: Some(Observer::new(provider, format, c.start)),
                call: c,
                http: status.as_u16() as u32,
                ok: status.is_success(),
                head: Vec::new(),
            }
        }),
    };
    let body = observed.boxed_unsync();
    Ok(builder.body(body).unwrap_or_else(|_| {
        json_error(StatusCode::BAD_GATEWAY, "invalid upstream response headers")
    }))
}

struct CallState {
    call: Call,
    observer: Option<Observer>,
    http: u32,
    ok: bool,
    /// The first KiB of an error body, for the sample's reason.
    head: Vec<u8>,
}

impl CallState {
    fn finish(&mut self, broken: Option<String>) {
        self.finish_as(broken, CallStatus::Error);
    }

    /// Records the call; `broken` (the body did not end normally) with `status`.
    fn finish_as(&mut self, broken: Option<String>, broken_status: CallStatus) {
        let Some(observer) = self.observer.take() else {
            return;
        };
        let now = Instant::now();
        let obs = observer.finish(now);
        let ms = |t: Instant| t.duration_since(self.call.start).as_secs_f64() * 1e3;
        let timed_out = broken.is_some() && broken_status == CallStatus::Timeout;
        let error = if let Some(b) = broken {
            Some(b)
        } else if !self.ok {
            Some(http_reason(
                self.http as u16,
                &String::from_utf8_lossy(&self.head),
            ))
        } else {
            obs.error.clone()
        };
        self.call.record(Outcome {
            latency_ms: ms(now),
            ttft_ms: if error.is_none() {
                obs.first_token.map(ms)
            } else {
                None
            },
            tokens_in: obs.tokens_in,
            tokens_out: obs.tokens_out,
            tokens_out_estimated: obs.tokens_out_estimated,
            status: if error.is_none() {
                CallStatus::Ok
            } else if timed_out {
                CallStatus::Timeout
            } else {
                CallStatus::Error
            },
            http_status: Some(self.http),
            error: error.unwrap_or_default(),
        });
    }
}

/// Forwards upstream chunks as they arrive, observing them; records the call at the end (or
/// when the client goes away). A body that sends nothing for `idle`, or runs past the
/// optional deadline, is cut: the client sees the stream end with an error, the sample says
/// which limit hit.
struct ObservedBody {
    inner: Incoming,
    call: Option<CallState>,
    /// Most time between two chunks.
    idle: Duration,
    /// Fires `idle` after the last chunk — lazily: a chunk only notes its time, and the
    /// timer is moved on when it fires early (no timer-wheel work per chunk).
    idle_timer: Pin<Box<tokio::time::Sleep>>,
    /// When the last chunk arrived.
    last_frame: tokio::time::Instant,
    /// Fires at the whole-response deadline (`max_duration`), when set.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    max_duration: Option<Duration>,
    /// The body ended (normally, broken or cut): nothing more is polled.
    ended: bool,
}

impl ObservedBody {
    /// Cuts the body because a limit hit: records the call and ends the body with an error.
    fn cut(&mut self, reason: String) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.ended = true;
        if let Some(c) = &mut self.call {
            c.finish_as(Some(reason.clone()), CallStatus::Timeout);
        }
        Poll::Ready(Some(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            reason,
        ))))
    }
}

impl hyper::body::Body for ObservedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Pending => {
                if let Some(d) = self.deadline.as_mut()
                    && d.as_mut().poll(cx).is_ready()
                {
                    let limit = self.max_duration.unwrap_or_default();
                    return self.cut(format!(
                        "the response ran past {} (proxy max_duration) and was cut",
                        humantime_serde::re::humantime::format_duration(limit)
                    ));
                }
                while self.idle_timer.as_mut().poll(cx).is_ready() {
                    let due = self.last_frame + self.idle;
                    if due > tokio::time::Instant::now() {
                        // a chunk came since the timer was set: wait from that chunk
                        self.idle_timer.as_mut().reset(due);
                        continue;
                    }
                    let idle = self.idle;
                    return self.cut(format!(
                        "upstream sent nothing for {} in the middle of the response (proxy idle_timeout); the stream was cut",
                        humantime_serde::re::humantime::format_duration(idle)
                    ));
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                self.last_frame = tokio::time::Instant::from_std(now);
                if let Some(chunk) = frame.data_ref()
                    && let Some(c) = &mut self.call
                {
                    if let Some(o) = &mut c.observer {
                        o.feed(chunk, now);
                    }
                    if !c.ok && c.head.len() < 1024 {
                        let take = (1024 - c.head.len()).min(chunk.len());
                        c.head.extend_from_slice(&chunk[..take]);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.ended = true;
                if let Some(c) = &mut self.call {
                    c.finish(Some(format!(
                        "upstream stream broken: {}",
                        short(&e.to_string(), 200)
                    )));
                }
                Poll::Ready(Some(Err(std::io::Error::other(e))))
            }
            Poll::Ready(None) => {
                self.ended = true;
                if let Some(c) = &mut self.call {
                    c.finish(None);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        if let Some(c) = &mut self.call {
            c.finish(Some("client disconnected before the response ended".into()));
        }
    }
}

/// Header name helper for tests.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

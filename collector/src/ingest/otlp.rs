//! OTLP receivers: OpenTelemetry spans following the semantic conventions for generative AI
//! become samples (source `otlp`), through the same validation, storage and live SPC as the
//! native ingest. Served as the OTLP/gRPC `TraceService` on the gRPC listener and as
//! OTLP/HTTP `POST /v1/traces` (protobuf or JSON, optionally gzip) on the HTTP listener, with
//! the ingest token as `Authorization: Bearer …` (what `OTEL_EXPORTER_OTLP_HEADERS` sends).
//!
//! The GenAI conventions are still "Development": current and deprecated names are both read
//! (`gen_ai.provider.name` / `gen_ai.system`, `gen_ai.usage.input_tokens` /
//! `gen_ai.usage.prompt_tokens`, …). Spans that are not model calls are ignored and counted by
//! reason in `/metrics` (`llmscope_otlp_spans_ignored_total`).

use std::collections::BTreeMap;
use std::io::Read;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use llmscope_proto::wire;
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    metrics_service_server::{MetricsService, MetricsServiceServer},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::{Span, status::StatusCode as SpanStatus};
use prost::Message;
use tonic::{Request, Status};

use super::otlp_metrics;
use super::service::IngestServer;

/// Operations that are one call to a model.
const MODEL_OPERATIONS: &[&str] = &[
    "chat",
    "text_completion",
    "generate_content",
    "completion",
    "embeddings",
];

/// Why a span did not become a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ignored {
    /// No `gen_ai.operation.name`: not a GenAI span.
    NotGenAi,
    /// A GenAI span that is not a model call (a tool, an agent).
    Operation,
    /// Neither `gen_ai.response.model` nor `gen_ai.request.model`.
    NoModel,
    /// End before start, or no times.
    BadTimes,
}

impl Ignored {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NotGenAi => "not_genai",
            Ignored::Operation => "operation",
            Ignored::NoModel => "no_model",
            Ignored::BadTimes => "bad_times",
        }
    }
}

/// Spans mapped to samples.
#[derive(Debug, Default)]
pub struct Mapped {
    /// One sample per model-call span.
    pub samples: Vec<wire::Sample>,
    /// Spans left out, by reason.
    pub ignored: BTreeMap<Ignored, u64>,
}

pub(crate) fn text(v: &AnyValue) -> Option<String> {
    match v.value.as_ref()? {
        any_value::Value::StringValue(s) => Some(s.clone()),
        any_value::Value::IntValue(i) => Some(i.to_string()),
        any_value::Value::DoubleValue(d) => Some(d.to_string()),
        any_value::Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

fn number(v: &AnyValue) -> Option<f64> {
    match v.value.as_ref()? {
        any_value::Value::IntValue(i) => Some(*i as f64),
        any_value::Value::DoubleValue(d) => Some(*d),
        any_value::Value::StringValue(s) => s.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) struct Attrs<'a>(pub &'a [KeyValue]);

impl Attrs<'_> {
    fn get(&self, key: &str) -> Option<&AnyValue> {
        self.0
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
    }
    pub(crate) fn text(&self, keys: &[&str]) -> Option<String> {
        keys.iter()
            .find_map(|k| self.get(k).and_then(text))
            .filter(|s| !s.trim().is_empty())
    }
    fn number(&self, keys: &[&str]) -> Option<f64> {
        keys.iter().find_map(|k| self.get(k).and_then(number))
    }
}

/// The sample id of a span: the same span sent twice (an exporter's retry) is stored once.
fn span_id(span: &Span) -> String {
    let mut name = span.trace_id.clone();
    name.extend_from_slice(&span.span_id);
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &name).to_string()
}

fn label(key: &str, value: String) -> wire::LabelEntry {
    wire::LabelEntry {
        key: key.as_bytes().to_vec(),
        value: value.into_bytes(),
    }
}

/// Maps one span (with its resource's attributes) to a sample, or says why not.
fn span_sample(span: &Span, resource: &Attrs<'_>) -> Result<wire::Sample, Ignored> {
    let a = Attrs(&span.attributes);
    let op = a
        .text(&["gen_ai.operation.name"])
        .ok_or(Ignored::NotGenAi)?;
    if !MODEL_OPERATIONS.contains(&op.as_str()) {
        return Err(Ignored::Operation);
    }
    let model = a
        .text(&["gen_ai.response.model", "gen_ai.request.model"])
        .ok_or(Ignored::NoModel)?;
    if span.start_time_unix_nano == 0 || span.end_time_unix_nano < span.start_time_unix_nano {
        return Err(Ignored::BadTimes);
    }
    let latency_ms = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6;
    let provider = a
        .text(&["gen_ai.provider.name", "gen_ai.system"])
        .unwrap_or_else(|| "unknown".into());
    let host = a
        .text(&["server.address"])
        .or_else(|| resource.text(&["host.name"]))
        .unwrap_or_else(|| "unknown".into());
    let ttft_ms = a
        .number(&["gen_ai.response.time_to_first_chunk"])
        .map(|s| s * 1e3)
        .filter(|t| t.is_finite() && *t >= 0.0 && *t <= latency_ms);
    let tokens = |keys: &[&str]| {
        a.number(keys)
            .filter(|n| n.is_finite() && *n >= 0.0 && *n <= f64::from(u32::MAX))
            .map(|n| n as u32)
    };
    let error_type = a.text(&["error.type"]);
    let failed = span.status.as_ref().map(|s| s.code) == Some(SpanStatus::Error as i32)
        || error_type.is_some();
    let error = if failed {
        let msg = span
            .status
            .as_ref()
            .map(|s| s.message.clone())
            .filter(|m| !m.is_empty());
        match (error_type, msg) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (Some(t), None) => t,
            (None, Some(m)) => m,
            (None, None) => "error".into(),
        }
    } else {
        String::new()
    };
    let mut labels = vec![label("gen_ai.operation.name", op)];
    for key in [
        "service.name",
        "deployment.environment.name",
        "deployment.environment",
    ] {
        if let Some(v) = resource.text(&[key]) {
            labels.push(label(key, v));
        }
    }
    Ok(wire::Sample {
        id: span_id(span).into_bytes(),
        ts_unix_nanos: i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX),
        site: String::new().into_bytes(),
        host: host.into_bytes(),
        provider: provider.into_bytes(),
        model: model.into_bytes(),
        source: wire::Source::Otlp as i32,
        latency_ms,
        ttft_ms,
        tokens_in: tokens(&["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"]),
        tokens_out: tokens(&[
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
        ]),
        status: if failed {
            wire::CallStatus::Error as i32
        } else {
            wire::CallStatus::Ok as i32
        },
        http_status: None,
        error: error.into_bytes(),
        labels,
    })
}

/// Maps an export request's spans to samples.
pub fn map_spans(req: &ExportTraceServiceRequest) -> Mapped {
    let mut out = Mapped::default();
    for rs in &req.resource_spans {
        let empty = Vec::new();
        let resource = Attrs(rs.resource.as_ref().map_or(&empty, |r| &r.attributes));
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                match span_sample(span, &resource) {
                    Ok(mut s) => {
                        // with --insecure-no-auth the resource names the site
                        if let Some(site) = resource.text(&["llmscope.site"]) {
                            s.site = site.into_bytes();
                        }
                        out.samples.push(s)
                    }
                    Err(why) => *out.ignored.entry(why).or_default() += 1,
                }
            }
        }
    }
    out
}

/// What one export did: accepted samples, rejected spans with the first reason, ignored ones.
struct Outcome {
    rejected: i64,
    message: String,
}

impl IngestServer {
    /// Stores the GenAI spans of an export as samples of the token's site; answers once they
    /// are durable.
    async fn export_spans(
        &self,
        req: ExportTraceServiceRequest,
        who: &crate::auth::Principal,
    ) -> Result<Outcome, Status> {
        let mapped = map_spans(&req);
        crate::metrics::otlp_spans(
            mapped.samples.len() as u64,
            mapped.ignored.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        let mut rejected = 0i64;
        let mut first = None;
        // one batch per max_items, in order
        for chunk in mapped.samples.chunks(self.max_items().max(1)) {
            let batch = wire::IngestRequest {
                batch_seq: 0,
                samples: chunk.to_vec(),
                telemetry: Vec::new(),
            };
            let ack = self.start_batch(batch, who).await?.await?;
            rejected += ack.rejected.len() as i64;
            if first.is_none() {
                first = ack
                    .rejected
                    .first()
                    .map(|r| format!("{}: {}", r.field, r.reason));
            }
        }
        let ignored: u64 = mapped.ignored.values().sum();
        let mut parts = Vec::new();
        if let Some(f) = first {
            parts.push(format!("{rejected} GenAI span(s) rejected, first: {f}"));
        }
        if ignored > 0 {
            let why: Vec<String> = mapped
                .ignored
                .iter()
                .map(|(k, v)| format!("{} {v}", k.as_str()))
                .collect();
            parts.push(format!(
                "{ignored} span(s) are not model calls and were ignored ({})",
                why.join(", ")
            ));
        }
        Ok(Outcome {
            rejected,
            message: parts.join("; "),
        })
    }
}

fn response(o: Outcome) -> ExportTraceServiceResponse {
    ExportTraceServiceResponse {
        partial_success: (o.rejected > 0 || !o.message.is_empty()).then_some(
            ExportTracePartialSuccess {
                rejected_spans: o.rejected,
                error_message: o.message,
            },
        ),
    }
}

/// What the OTLP receivers share: the ingest service (authentication, limits, the sample
/// path) and the store the metrics' intervals are written to.
#[derive(Clone)]
pub struct Otlp {
    /// The native ingest: spans go its way.
    pub ingest: IngestServer,
    /// Where GenAI metrics' intervals and cumulative streams are kept.
    pub store: llmscope_store::Store,
    /// When this collector started, Unix ns (a cumulative stream that started earlier has a
    /// history partly missed: its first point is a reference only).
    pub started_ns: u64,
}

/// What one metrics export did.
fn metrics_response(
    rejected: &[otlp_metrics::Rejected],
    ignored: &BTreeMap<otlp_metrics::Ignored, u64>,
) -> ExportMetricsServiceResponse {
    let mut parts = Vec::new();
    if let Some(f) = rejected.first() {
        parts.push(format!(
            "{} data point(s) rejected, first: {}",
            rejected.len(),
            f.reason
        ));
    }
    let n: u64 = ignored.values().sum();
    if n > 0 {
        let why: Vec<String> = ignored
            .iter()
            .map(|(k, v)| format!("{} {v}", k.as_str()))
            .collect();
        parts.push(format!(
            "{n} data point(s) not stored as GenAI intervals ({})",
            why.join(", ")
        ));
    }
    ExportMetricsServiceResponse {
        partial_success: (!parts.is_empty()).then(|| ExportMetricsPartialSuccess {
            rejected_data_points: rejected.len() as i64,
            error_message: parts.join("; "),
        }),
    }
}

impl Otlp {
    /// Turns the GenAI histograms of an export into intervals of the caller's site and stores
    /// them (with the cumulative streams' new points) in one transaction before answering.
    async fn export_metrics(
        &self,
        req: ExportMetricsServiceRequest,
        who: &crate::auth::Principal,
    ) -> Result<ExportMetricsServiceResponse, Status> {
        let mut mapped = otlp_metrics::map_metrics(&req, who.site.as_deref());
        let mut streams: Vec<String> = mapped
            .points
            .iter()
            .filter(|p| p.cumulative)
            .map(|p| p.stream.clone())
            .collect();
        streams.sort();
        streams.dedup();
        let unavailable = |e: llmscope_store::StoreError| {
            tracing::warn!(error = %e, "otlp metrics: the store failed");
            crate::error::ErrorCode::Unavailable
                .status(format!("the database is unavailable, retry later: {e}"))
        };
        let saved = self
            .store
            .otlp_streams(&streams)
            .await
            .map_err(unavailable)?;
        let mut previous: std::collections::HashMap<String, otlp_metrics::Cumulative> = saved
            .into_iter()
            .filter_map(|(k, v)| serde_json::from_str(&v).ok().map(|c| (k, c)))
            .collect();
        let mut rows = Vec::new();
        let mut touched = std::collections::BTreeSet::new();
        for p in &mapped.points {
            let (r, state) = otlp_metrics::resolve(p, previous.get(&p.stream), self.started_ns);
            if let Some(c) = state {
                previous.insert(p.stream.clone(), c);
                touched.insert(p.stream.clone());
            }
            match r {
                Ok(i) => rows.push(i),
                Err(why) => *mapped.ignored.entry(why).or_default() += 1,
            }
        }
        // each touched stream's last point, as the next export's reference
        let states: Vec<llmscope_store::intervals::StreamState> = touched
            .into_iter()
            .filter_map(|stream| {
                let state = serde_json::to_string(previous.get(&stream)?).ok()?;
                Some(llmscope_store::intervals::StreamState { stream, state })
            })
            .collect();
        let now = llmscope_model::now_us();
        self.store
            .write_intervals(&rows, &states, now)
            .await
            .map_err(unavailable)?;
        crate::metrics::otlp_points(
            rows.len() as u64,
            mapped.rejected.len() as u64,
            mapped.ignored.iter().map(|(k, v)| (k.as_str(), *v)),
        );
        Ok(metrics_response(&mapped.rejected, &mapped.ignored))
    }
}

/// The OTLP/gRPC trace service.
#[derive(Clone)]
pub struct OtlpTraces(pub IngestServer);

#[tonic::async_trait]
impl TraceService for OtlpTraces {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, Status> {
        let who = self.0.authenticate(request.metadata()).await?;
        let outcome = self.0.export_spans(request.into_inner(), &who).await?;
        Ok(tonic::Response::new(response(outcome)))
    }
}

/// The OTLP/gRPC metrics service.
#[derive(Clone)]
pub struct OtlpMetrics(pub Otlp);

#[tonic::async_trait]
impl MetricsService for OtlpMetrics {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, Status> {
        let who = self.0.ingest.authenticate(request.metadata()).await?;
        let r = self.0.export_metrics(request.into_inner(), &who).await?;
        Ok(tonic::Response::new(r))
    }
}

/// The OTLP/gRPC trace and metrics services over `otlp` (gzip accepted, requests up to
/// `ingest.max_message_bytes`), for the gRPC listener and the OTLP listener alike.
pub fn grpc_services(
    otlp: Otlp,
) -> (
    TraceServiceServer<OtlpTraces>,
    MetricsServiceServer<OtlpMetrics>,
) {
    let max = otlp.ingest.max_message_bytes();
    let gzip = tonic::codec::CompressionEncoding::Gzip;
    (
        TraceServiceServer::new(OtlpTraces(otlp.ingest.clone()))
            .accept_compressed(gzip)
            .max_decoding_message_size(max),
        MetricsServiceServer::new(OtlpMetrics(otlp))
            .accept_compressed(gzip)
            .max_decoding_message_size(max),
    )
}

/// An OTLP/HTTP error: the status and a `google.rpc.Status`-shaped body in the request's
/// encoding.
fn http_error(status: StatusCode, json: bool, message: String) -> Response {
    if json {
        let body = serde_json::json!({"code": status.as_u16(), "message": message});
        return (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response();
    }
    // google.rpc.Status { int32 code = 1; string message = 2; }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let body = RpcStatus {
        code: i32::from(status.as_u16()),
        message,
    }
    .encode_to_vec();
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}

/// The status code an ingest error answers with over HTTP.
fn http_status(s: &Status) -> StatusCode {
    match s.code() {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Decodes an OTLP/HTTP body: `application/x-protobuf` or `application/json`, optionally
/// `Content-Encoding: gzip`, at most `limit` bytes once decompressed; the error is the answer.
fn decode<T>(
    headers: &HeaderMap,
    body: &Bytes,
    limit: usize,
    what: &str,
) -> Result<(T, bool), Box<Response>>
where
    T: Message + Default + serde::de::DeserializeOwned,
{
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let json = match ctype.as_str() {
        "application/x-protobuf" | "application/protobuf" => false,
        "application/json" => true,
        other => {
            return Err(Box::new(http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                true,
                format!(
                    "content-type `{other}` is not OTLP: send application/x-protobuf or application/json"
                ),
            )));
        }
    };
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let raw = match gzip.as_deref() {
        None | Some("identity") => body.to_vec(),
        Some("gzip") => {
            let mut out = Vec::new();
            let read = flate2::read::GzDecoder::new(&body[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out);
            if let Err(e) = read {
                return Err(Box::new(http_error(
                    StatusCode::BAD_REQUEST,
                    json,
                    format!("the gzip body does not decompress: {e}"),
                )));
            }
            out
        }
        Some(other) => {
            return Err(Box::new(http_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json,
                format!("content-encoding `{other}` is not supported: send gzip or none"),
            )));
        }
    };
    if raw.len() > limit {
        return Err(Box::new(http_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            json,
            format!(
                "the request is over {limit} bytes (ingest.max_message_bytes): export smaller batches"
            ),
        )));
    }
    let req = if json {
        serde_json::from_slice::<T>(&raw)
            .map_err(|e| format!("the body is not an OTLP JSON {what}: {e}"))
    } else {
        T::decode(&raw[..]).map_err(|e| format!("the body is not an OTLP protobuf {what}: {e}"))
    };
    req.map(|r| (r, json))
        .map_err(|m| Box::new(http_error(StatusCode::BAD_REQUEST, json, m)))
}

/// The answer to an OTLP/HTTP export: the response message, or the error with Retry-After
/// when the collector cannot take it now.
fn http_answer<T: Message + serde::Serialize>(r: Result<T, Status>, json: bool) -> Response {
    match r {
        Ok(r) => {
            if json {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::to_string(&r).unwrap_or_else(|_| "{}".into()),
                )
                    .into_response()
            } else {
                (
                    StatusCode::OK,
                    [(header::CONTENT_TYPE, "application/x-protobuf")],
                    r.encode_to_vec(),
                )
                    .into_response()
            }
        }
        Err(s) => {
            let code = http_status(&s);
            let mut r = http_error(code, json, s.message().to_owned());
            if code == StatusCode::SERVICE_UNAVAILABLE {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            r
        }
    }
}

/// Authenticates an OTLP/HTTP caller (after the body was read: an unauthenticated caller
/// learns nothing about its body).
async fn http_caller(
    otlp: &Otlp,
    headers: &HeaderMap,
    json: bool,
) -> Result<crate::auth::Principal, Box<Response>> {
    otlp.ingest
        .authenticate_headers(headers)
        .await
        .map_err(|s| Box::new(http_error(http_status(&s), json, s.message().to_owned())))
}

/// `POST /v1/traces`: OTLP/HTTP, `application/x-protobuf` or `application/json`, optionally
/// `Content-Encoding: gzip`.
async fn http_traces(State(otlp): State<Otlp>, headers: HeaderMap, body: Bytes) -> Response {
    let limit = otlp.ingest.max_message_bytes();
    let (req, json) = match decode::<ExportTraceServiceRequest>(
        &headers,
        &body,
        limit,
        "ExportTraceServiceRequest",
    ) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let who = match http_caller(&otlp, &headers, json).await {
        Ok(w) => w,
        Err(e) => return *e,
    };
    http_answer(
        otlp.ingest.export_spans(req, &who).await.map(response),
        json,
    )
}

/// `POST /v1/metrics`: as `/v1/traces`, for GenAI histograms.
async fn http_metrics(State(otlp): State<Otlp>, headers: HeaderMap, body: Bytes) -> Response {
    let limit = otlp.ingest.max_message_bytes();
    let (req, json) = match decode::<ExportMetricsServiceRequest>(
        &headers,
        &body,
        limit,
        "ExportMetricsServiceRequest",
    ) {
        Ok(r) => r,
        Err(e) => return *e,
    };
    let who = match http_caller(&otlp, &headers, json).await {
        Ok(w) => w,
        Err(e) => return *e,
    };
    http_answer(otlp.export_metrics(req, &who).await, json)
}

/// The OTLP/HTTP routes (`/v1/traces`, `/v1/metrics`), outside the REST API's sign-in: they
/// take ingest tokens.
pub fn http_router(otlp: Otlp) -> axum::Router {
    let limit = otlp.ingest.max_message_bytes();
    axum::Router::new()
        .route("/v1/traces", axum::routing::post(http_traces))
        .route("/v1/metrics", axum::routing::post(http_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(otlp)
}

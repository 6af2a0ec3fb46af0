//! The REST API under `/api/v1` (see `docs/api.md`). Every route has a policy in the route
//! table ([`openapi::ENDPOINTS`]) that [`crate::access::guard`] enforces: who may call it
//! (viewer < editor < admin, or public), identified by a session cookie (changes also carry
//! the session's CSRF token) or a bearer token; handlers get the [`Caller`] to filter reads
//! to its sites and to write the audit log. Every error — the handlers' and the HTTP stack's
//! own (a malformed query, a body over the limit, an unknown route) — is JSON
//! `{"error": "...", "field": "..."?}` with the status of its [`ErrorCode`].

pub mod admin;
pub mod alerts;
pub mod analysis;
pub mod audit;
pub mod auth;
pub mod capacity;
pub mod cluster;
pub mod detection;
pub mod events;
pub mod incidents;
pub mod openapi;
pub mod otlp;
pub mod plan;
pub mod read;
pub mod users;
pub mod violations;
pub mod web;

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llmscope_alert::{AlertsConfig, Dispatcher};
use llmscope_model::{LiveEvent, SharedClock};
use llmscope_store::audit::Audit;
use llmscope_store::{Store, StoreError};
use serde_json::json;
use tokio::sync::broadcast;

pub use llmscope_model::time::ms;

use crate::access::AuthConfig;
pub use crate::access::Caller;
use crate::access::limiter::Limiter;
use crate::access::password::Hasher;
use crate::config::SpcConfig;
use crate::error::ErrorCode;

/// Largest request body the API reads.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// Alerting settings (timeouts, public URL, default route).
    pub alerts: Arc<AlertsConfig>,
    /// The alert dispatcher (channel test sends).
    pub dispatcher: Dispatcher,
    /// SHA-256 of the admin token from the config, if one is set.
    pub admin_hash: Option<String>,
    /// SPC settings (re-baselining, rule defaults).
    pub spc: Arc<SpcConfig>,
    /// The gRPC address agents connect to (for the setup wizard).
    pub grpc_addr: String,
    /// The OTLP receivers' own addresses (gRPC, HTTP), when on (for the setup wizard).
    pub otlp_addrs: (Option<String>, Option<String>),
    /// Live events of this process (changes made through the API are announced here too).
    pub events: broadcast::Sender<LiveEvent>,
    /// What the dashboards' server-sent events carry: this process's events and, in cluster
    /// mode, the other replicas'.
    pub sse: broadcast::Sender<llmscope_cluster::Frame>,
    /// Cluster mode: this replica's membership (`None`: one collector).
    pub cluster: Option<llmscope_cluster::Cluster>,
    /// This replica's row in the `replicas` table.
    pub replica_id: String,
    /// Where "now" comes from.
    pub clock: SharedClock,
    /// Turns true when the collector shuts down (ends event streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
    /// `[auth]`.
    pub auth: Arc<AuthConfig>,
    /// Password hashing with `[auth]`'s cost.
    pub hasher: Arc<Hasher>,
    /// Sign-in attempts.
    pub limiter: Arc<Limiter>,
    /// Whether the HTTP listener has TLS (session cookies are then `Secure`).
    pub tls: bool,
    /// The OpenID Connect provider, when `[auth.oidc]` is set.
    pub oidc: Option<Arc<crate::access::oidc::Provider>>,
}

impl ApiState {
    /// Now, Unix µs.
    pub fn now(&self) -> i64 {
        self.clock.now_us()
    }

    /// Announces a live event (nobody listening is fine).
    pub fn announce(&self, e: LiveEvent) {
        let _ = self.events.send(e);
    }

    /// An audit entry of `caller` now.
    pub fn audit(&self, caller: &Caller, action: &str, target: impl Into<String>) -> Audit {
        caller.audit(self.now(), action, target)
    }
}

/// 404 for an object of a site the caller may not see, worded as if it did not exist.
pub fn hidden(what: &str) -> ApiError {
    ApiError::not_found(format!("no {what}"))
}

/// Every API route plus the dashboard fallback.
pub fn router(state: ApiState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .merge(alerts::routes())
        .merge(read::routes())
        .merge(analysis::routes())
        .merge(plan::routes())
        .merge(otlp::routes())
        .merge(violations::routes())
        .merge(incidents::routes())
        .merge(detection::routes())
        .merge(admin::routes())
        .merge(auth::routes())
        .merge(users::routes())
        .merge(audit::routes())
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/cluster", get(cluster::status))
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        // every route above: its policy, the caller, the role (the dashboard's files below
        // are public: the sign-in page is one of them)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::access::guard::guard,
        ))
        .fallback(web::serve)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(json_errors))
        .with_state(state)
}

/// Leader-elected job keeping the minute rollups and the series catalogue current.
pub async fn rollup_job(
    store: Store,
    interval: std::time::Duration,
    lag: std::time::Duration,
    clock: SharedClock,
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = clock.now_us();
        let lease = (interval.as_micros() as i64) * 4 + 5_000_000;
        match store.try_lease("rollup", &holder, now, now + lease).await {
            Ok(true) => {
                let upper = now - lag.as_micros() as i64;
                if let Err(e) = store.rollup_once(upper).await {
                    tracing::warn!(error = %e, "rollup: run failed; will retry");
                }
                // hourly and daily rollups, usage, SLO minutes (their own watermark)
                if let Err(e) = store.rollup_long(upper).await {
                    tracing::warn!(error = %e, "long-horizon rollup: run failed; will retry");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "rollup: lease check failed"),
        }
    }
}

/// An API error: a code, a message saying what is wrong, and where.
#[derive(Debug)]
pub struct ApiError {
    /// What kind of failure (gives the HTTP status).
    pub code: ErrorCode,
    /// What is wrong.
    pub message: String,
    /// The parameter or body path at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// An error of `code` without a field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
        }
    }

    /// 400 naming the field.
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            field: Some(field.to_owned()),
            ..ApiError::new(ErrorCode::InvalidArgument, message)
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// This error naming `field`.
    pub fn at(mut self, field: &str) -> ApiError {
        self.field = Some(field.to_owned());
        self
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::warn!(error = %e, "api: store error");
        ApiError::new(
            ErrorCode::Unavailable,
            format!("the database is unavailable: {e}"),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.code.http(), Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Turns the HTTP stack's own error responses under `/api/` (axum's rejections: a query
/// that does not parse, a body over [`MAX_BODY_BYTES`], a wrong method) from plain text
/// into the API's JSON error, keeping the status.
async fn json_errors(req: Request, next: Next) -> Response {
    let api = req.uri().path().starts_with("/api/");
    let resp = next.run(req).await;
    let status = resp.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return resp;
    }
    let text = axum::body::to_bytes(resp.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_lowercase()
    } else {
        text
    };
    let mut e = ApiError::new(ErrorCode::from_http(status), message);
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        e = ApiError::new(
            ErrorCode::TooLarge,
            format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
        )
        .at("body");
    }
    let mut r = e.into_response();
    *r.status_mut() = status;
    r
}

/// `Query<T>` whose rejection is the API's JSON error naming the parameter at fault.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let field = e.path().to_string();
                let field = if field == "." {
                    "query".to_owned()
                } else {
                    field
                };
                ApiError::bad(&field, format!("`{field}`: {}", e.inner()))
            })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// Parses a JSON body, turning serde's message into a 400 that names the path.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        ApiError::bad(
            if path == "." { "body" } else { &path },
            format!("invalid request body: {}", e.inner()),
        )
    })
}

/// A time in a JSON body (Unix milliseconds or an RFC 3339 string) → Unix µs; the error
/// names the field.
pub fn time_json(field: &str, v: &serde_json::Value) -> ApiResult<i64> {
    let text = match v {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.clone(),
        _ => {
            return Err(ApiError::bad(
                field,
                format!("`{field}` must be Unix milliseconds or an RFC 3339 time"),
            ));
        }
    };
    llmscope_model::time::parse_time(&text).map_err(|e| ApiError::bad(field, e))
}

//! The REST API under `/api/v1` (see `docs/api.md`). Reading is open; every change needs an
//! admin token as `Authorization: Bearer …`. Errors are JSON `{"error", "field"?}`.

pub mod admin;
pub mod alerts;
pub mod events;
pub mod openapi;
pub mod read;
pub mod violations;
pub mod web;

use std::sync::Arc;

use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::alert::AlertsConfig;
use crate::store::{Role, Store, StoreError};

/// What the API handlers share.
#[derive(Clone)]
pub struct ApiState {
    /// The store.
    pub store: Store,
    /// Alerting settings (timeouts, public URL, default route).
    pub alerts: Arc<AlertsConfig>,
    /// HTTP client for channel test sends.
    pub http: reqwest::Client,
    /// SHA-256 of the admin token from the config, if one is set.
    pub admin_hash: Option<String>,
    /// SPC settings (re-baselining, rule defaults).
    pub spc: Arc<crate::config::SpcConfig>,
    /// The gRPC address agents connect to (for the setup wizard).
    pub grpc_addr: String,
    /// Turns true when the collector shuts down (ends event streams).
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Every API route plus the dashboard fallback.
pub fn router(state: ApiState) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .merge(alerts::routes())
        .merge(read::routes())
        .merge(violations::routes())
        .merge(admin::routes())
        .route("/api/v1/events", get(events::events))
        .route(
            "/api/v1/openapi.json",
            get(|| async { Json(openapi::document()) }),
        )
        .fallback(web::serve)
        .with_state(state)
}

/// Leader-elected job keeping the minute rollups and the series catalogue current.
pub async fn rollup_job(store: Store, interval: std::time::Duration, lag: std::time::Duration) {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = crate::store::now_us();
        let lease = (interval.as_micros() as i64) * 4 + 5_000_000;
        match store.try_lease("rollup", &holder, now, now + lease).await {
            Ok(true) => {
                if let Err(e) = store.rollup_once(now - lag.as_micros() as i64).await {
                    tracing::warn!(error = %e, "rollup: run failed; will retry");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "rollup: lease check failed"),
        }
    }
}

/// An API error: status plus a message saying what is wrong (and where).
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// What is wrong.
    pub message: String,
    /// The parameter or body path at fault.
    pub field: Option<String>,
}

impl ApiError {
    /// 400 naming the field.
    pub fn bad(field: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            field: Some(field.to_owned()),
        }
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            field: None,
        }
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::CONFLICT,
            message: message.into(),
            field: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        tracing::warn!(error = %e, "api: store error");
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!("the database is unavailable: {e}"),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match &self.field {
            Some(f) => json!({"error": self.message, "field": f}),
            None => json!({"error": self.message}),
        };
        (self.status, Json(body)).into_response()
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// Checks the admin token; returns the token id (or `config`) for audit fields.
pub async fn require_admin(st: &ApiState, headers: &HeaderMap) -> ApiResult<String> {
    let unauthorized = |m: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        message: m.to_owned(),
        field: Some("authorization".into()),
    };
    let text = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            unauthorized(
                "this change needs an admin token: `Authorization: Bearer <token>` (create one with `llmscope-collector token create --admin`)",
            )
        })?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("the authorization header must be `Bearer <token>`"))?
        .trim();
    let hash = crate::auth::hash_token(token);
    if st.admin_hash.as_deref() == Some(hash.as_str()) {
        return Ok("config".into());
    }
    match st.store.find_token(&hash).await? {
        Some(t) if t.revoked_at_us.is_some() => Err(unauthorized("this token has been revoked")),
        Some(t) if t.role == Role::Admin => Ok(t.id),
        Some(_) => Err(ApiError {
            status: StatusCode::FORBIDDEN,
            message: "this is an ingest token; changes need an admin token".into(),
            field: Some("authorization".into()),
        }),
        None => Err(unauthorized("unknown token")),
    }
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
    match v {
        serde_json::Value::Number(n) => n
            .as_i64()
            .map(|x| x.saturating_mul(1000))
            .ok_or_else(|| ApiError::bad(field, format!("`{field}` must be Unix milliseconds"))),
        serde_json::Value::String(s) => {
            crate::alert::parse_time(s).map_err(|e| ApiError::bad(field, e))
        }
        _ => Err(ApiError::bad(
            field,
            format!("`{field}` must be Unix milliseconds or an RFC 3339 time"),
        )),
    }
}

/// Unix µs → ms for responses.
pub fn ms(us: i64) -> i64 {
    us.div_euclid(1000)
}

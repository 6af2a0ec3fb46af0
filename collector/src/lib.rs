//! The LLMscope collector.
//!
//! # Layout
//! - [`analyze`]: offline SPC over a CSV or JSON file (`llmscope-collector analyze`).
//! - [`config`]: the configuration (file, `LLMSCOPE_…` environment, flags).
//! - [`store`]: the storage interface and its SQLite and PostgreSQL backends.
//! - [`auth`]: ingest tokens (hashed) and request authentication.
//! - [`ingest`]: validation, group commit with durable acks, the gRPC service.
//! - [`http`]: the HTTP listener (health, the REST API, the dashboard).
//! - [`api`]: the REST API under `/api/v1`.
//! - [`alert`]: alert routing, grouping, silences and delivery.
//! - [`tls`]: rustls configuration for both listeners.
//! - [`metrics`]: the collector's Prometheus metrics (`GET /metrics`).
//! - [`telemetry`]: OpenTelemetry tracing (OTLP), configured by `OTEL_*` variables.
//! - [`serve`]: wiring and ordered shutdown.

pub mod alert;
pub mod analyze;
pub mod api;
pub mod auth;
pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod metrics;
pub mod serve;
pub mod store;
pub mod telemetry;
pub mod tls;

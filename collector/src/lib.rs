//! The LLMscope collector: the service that composes the other crates.
//!
//! **Owns** configuration composition (the file, `LLMSCOPE_…` variables and flags), ingest
//! (gRPC), the REST API and dashboard, the HTTP listener, the collector's own metrics and
//! OpenTelemetry tracing, `serve` (wiring and ordered shutdown) and the command line. The
//! domain types come from `llmscope-model`, storage from `llmscope-store`, judging from
//! `llmscope-live` and alerting from `llmscope-alert`; nothing below depends on this crate.
//!
//! # Layout
//! - [`config`]: the configuration (file, `LLMSCOPE_…` environment, flags); `[spc]` and
//!   `[alerts]` are the live and alert crates' own sections.
//! - [`error`]: the one error-code enum, mapped to gRPC codes and HTTP statuses.
//! - [`auth`]: ingest tokens (hashed) and request authentication.
//! - [`ingest`]: validation, group commit with durable acks, the gRPC service.
//! - [`http`]: the HTTP listener (health, the REST API, the dashboard).
//! - [`api`]: the REST API under `/api/v1`, server-sent events, the dashboard files.
//! - [`tls`]: rustls configuration for both listeners.
//! - [`metrics`]: the collector's Prometheus metrics (`GET /metrics`), fed by live events.
//! - [`otel`]: OpenTelemetry tracing (OTLP), configured by `OTEL_*` variables.
//! - [`analyze`]: offline SPC over a CSV or JSON file (`llmscope-collector analyze`).
//! - [`serve`]: wiring and ordered shutdown.

pub mod access;
pub mod analyze;
pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod http;
pub mod idle;
pub mod ingest;
pub mod metrics;
pub mod otel;
pub mod replica;
pub mod serve;
pub mod tls;

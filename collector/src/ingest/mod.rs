//! Ingest: validation, group commit with durable acks, and the gRPC service.
//!
//! Data flow: a request is authenticated, validated item by item ([`validate`]), and its
//! valid rows are handed to the [`sink`] — the [`writer`] (one collector), or the cluster log
//! (cluster mode); the ack is sent only when they are durable (committed, or stored by
//! JetStream). Bounded queues between the two give backpressure.

pub mod otlp;
pub mod otlp_metrics;
pub mod service;
pub mod sink;
pub mod validate;
pub mod writer;

pub use service::IngestServer;
pub use sink::Sink;
pub use writer::{WriteError, Writer, WriterConfig};

//! Ingest: validation, group commit with durable acks, and the gRPC service.
//!
//! Data flow: a request is authenticated, validated item by item ([`validate`]), and its
//! valid rows are handed to the [`writer`]; the ack is sent only when the writer reports the
//! commit that contains them. Bounded queues between the two give backpressure.

pub mod service;
pub mod validate;
pub mod writer;

pub use service::IngestServer;
pub use writer::{WriteError, Writer, WriterConfig};

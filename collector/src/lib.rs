//! The LLMscope collector.
//!
//! # Layout
//! - [`analyze`]: offline SPC over a CSV or JSON file (`llmscope-collector analyze`).
//!
//! Ingest, storage, the live SPC engine, alerts and the HTTP API arrive in later issues and
//! each gets its own module here.

pub mod analyze;
pub mod config;
pub mod store;

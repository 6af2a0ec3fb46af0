//! The public LLMscope ingest contract: `llmscope/v1/*.proto` and the generated types.
//!
//! The protocol definitions arrive with the ingest work; this crate holds the layout.

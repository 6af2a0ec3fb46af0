//! End-to-end harness for LLMscope: starts collectors and agents as real processes and
//! waits on conditions. The harness grows with the ingest and agent work.

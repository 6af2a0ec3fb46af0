//! The public LLMscope ingest contract.
//!
//! **Owns** the protobuf messages and services agents and custom clients speak. **Must not
//! depend on** any other LLMscope crate: it is the contract the others build on.
//!
//! - [`v1`]: types, client and server generated from `proto/llmscope/v1/ingest.proto` — what
//!   agents and Rust clients use.
//! - [`wire`]: the collector's decoding variant of the same messages, with text fields as
//!   bytes so that invalid UTF-8 rejects one item instead of the whole request. Field numbers
//!   and wire types are identical (checked by a test).
//! - [`FILE_DESCRIPTOR_SET`]: the encoded descriptors of the public contract, for gRPC server
//!   reflection.

#![allow(
    missing_docs,
    clippy::doc_lazy_continuation,
    clippy::large_enum_variant
)]

/// Generated from `llmscope/v1/ingest.proto` (package `llmscope.v1`).
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/public/llmscope.v1.rs"));
}

/// Server-side decoding variant of `llmscope.v1` (see the crate docs).
pub mod wire {
    include!(concat!(env!("OUT_DIR"), "/wire/llmscope.v1.rs"));
}

/// Encoded `FileDescriptorSet` of the public contract, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/llmscope_v1_descriptor.bin"));

/// Path of the public .proto inside the repository, for documentation and client generators.
pub const PROTO_PATH: &str = "proto/llmscope/v1/ingest.proto";

#[cfg(test)]
mod tests {
    use super::{v1, wire};
    use prost::Message;

    #[test]
    fn wire_variant_decodes_what_the_public_contract_encodes() {
        let sample = v1::Sample {
            id: "0190f0f0-0000-7000-8000-000000000001".into(),
            ts_unix_nanos: 1_764_000_000_000_000_000,
            site: "eu-west".into(),
            host: "gpu-1".into(),
            provider: "ollama".into(),
            model: "llama3.1:8b".into(),
            source: v1::Source::Probe as i32,
            latency_ms: 812.5,
            ttft_ms: Some(120.25),
            tokens_in: Some(12),
            tokens_out: Some(64),
            status: v1::CallStatus::Ok as i32,
            http_status: Some(200),
            error: "none".into(),
            labels: [("replica".to_string(), "b".to_string())]
                .into_iter()
                .collect(),
        };
        let telemetry = v1::Telemetry {
            ts_unix_nanos: 5,
            site: "eu-west".into(),
            host: "gpu-1".into(),
            cpu_pct: 12.5,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 0.5,
            gpus: vec![v1::GpuStats {
                index: 1,
                uuid: "GPU-1".into(),
                name: "H100".into(),
                util_pct: Some(90.0),
                mem_used_bytes: Some(3),
                mem_total_bytes: Some(4),
                temp_c: Some(70.0),
                power_w: None,
                sm_clock_mhz: Some(1980),
                throttle_reasons: Some(4),
                mig_index: Some(2),
                ecc_corrected_volatile: Some(0),
                ecc_uncorrected_volatile: None,
                xid_errors: vec![79, 48],
            }],
            server_metrics: vec![v1::ServerMetric {
                target: "vllm".into(),
                model: "qwen".into(),
                metric: "requests_waiting".into(),
                value: 3.0,
            }],
        };
        let req = v1::IngestRequest {
            batch_seq: 7,
            samples: vec![sample.clone()],
            telemetry: vec![telemetry],
        };
        let bytes = req.encode_to_vec();
        let w = wire::IngestRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(w.batch_seq, 7);
        let s = &w.samples[0];
        assert_eq!(s.id, sample.id.as_bytes());
        assert_eq!(s.site, b"eu-west");
        assert_eq!(s.host, b"gpu-1");
        assert_eq!(s.provider, b"ollama");
        assert_eq!(s.model, b"llama3.1:8b");
        assert_eq!(s.error, b"none");
        assert_eq!(s.ts_unix_nanos, sample.ts_unix_nanos);
        assert_eq!((s.latency_ms, s.ttft_ms), (812.5, Some(120.25)));
        assert_eq!(
            (s.tokens_in, s.tokens_out, s.http_status),
            (Some(12), Some(64), Some(200))
        );
        assert_eq!((s.source, s.status), (sample.source, sample.status));
        assert_eq!(s.labels.len(), 1);
        assert_eq!(
            (s.labels[0].key.as_slice(), s.labels[0].value.as_slice()),
            (&b"replica"[..], &b"b"[..])
        );
        let t = &w.telemetry[0];
        assert_eq!(
            (t.site.as_slice(), t.host.as_slice()),
            (&b"eu-west"[..], &b"gpu-1"[..])
        );
        assert_eq!(
            (t.cpu_pct, t.mem_used_bytes, t.mem_total_bytes, t.load1),
            (12.5, 1, 2, 0.5)
        );
        let g = &t.gpus[0];
        assert_eq!(
            (g.uuid.as_slice(), g.name.as_slice()),
            (&b"GPU-1"[..], &b"H100"[..])
        );
        assert_eq!(
            (g.index, g.sm_clock_mhz, g.throttle_reasons),
            (1, Some(1980), Some(4))
        );
        // absent stays absent, 0 stays 0: proto3 `optional` keeps presence on the wire
        assert_eq!(
            (g.util_pct, g.temp_c, g.power_w),
            (Some(90.0), Some(70.0), None)
        );
        assert_eq!(
            (g.ecc_corrected_volatile, g.ecc_uncorrected_volatile),
            (Some(0), None)
        );
        assert_eq!(
            (g.mig_index, g.xid_errors.as_slice()),
            (Some(2), &[79, 48][..])
        );
        let m = &t.server_metrics[0];
        assert_eq!(
            (m.target.as_slice(), m.metric.as_slice(), m.value),
            (&b"vllm"[..], &b"requests_waiting"[..], 3.0)
        );
        // and the ack round-trips between the two
        let ack = wire::IngestAck {
            batch_seq: 7,
            accepted_samples: 1,
            accepted_telemetry: 1,
            rejected: vec![wire::Rejection {
                kind: wire::ItemKind::Sample as i32,
                index: 0,
                field: "id".into(),
                reason: "r".into(),
            }],
        };
        let back = v1::IngestAck::decode(ack.encode_to_vec().as_slice()).unwrap();
        assert_eq!(back.rejected[0].field, "id");
    }
}

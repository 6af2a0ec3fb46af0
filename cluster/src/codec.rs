//! The cluster log's messages: validated items ↔ protobuf (`proto/llmscope/cluster/v1`), split
//! to fit the server's largest message, each with a deduplication id derived from what it
//! carries (a resent batch is dropped by JetStream within its duplicate window).

use std::collections::BTreeMap;

use llmscope_model::{CallStatus, Gpu, Sample, ServerMetric, Source, Telemetry};
use prost::Message;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Generated from `proto/llmscope/cluster/v1/log.proto`.
#[allow(missing_docs, clippy::doc_lazy_continuation)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/llmscope.cluster.v1.rs"));
}

/// A message of the log that cannot be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cluster log message cannot be read: {0}")]
pub struct DecodeError(pub String);

/// What one log message carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Samples.
    pub samples: Vec<Sample>,
    /// Telemetry snapshots.
    pub telemetry: Vec<Telemetry>,
    /// When the accepting replica received them, Unix µs.
    pub received_us: i64,
}

fn sample_pb(s: &Sample) -> pb::LogSample {
    pb::LogSample {
        id: s.id.as_bytes().to_vec(),
        ts_us: s.ts_us,
        site: s.site.clone(),
        host: s.host.clone(),
        provider: s.provider.clone(),
        model: s.model.clone(),
        source: s.source.as_str().to_owned(),
        latency_ms: s.latency_ms,
        ttft_ms: s.ttft_ms,
        tokens_in: s.tokens_in,
        tokens_out: s.tokens_out,
        status: s.status.as_str().to_owned(),
        http_status: s.http_status,
        error: s.error.clone(),
        labels: s.labels.clone(),
    }
}

fn telemetry_pb(t: &Telemetry) -> pb::LogTelemetry {
    pb::LogTelemetry {
        ts_us: t.ts_us,
        site: t.site.clone(),
        host: t.host.clone(),
        cpu_pct: t.cpu_pct,
        mem_used_bytes: t.mem_used_bytes,
        mem_total_bytes: t.mem_total_bytes,
        load1: t.load1,
        gpus: t
            .gpus
            .iter()
            .map(|g| pb::LogGpu {
                index: g.index,
                uuid: g.uuid.clone(),
                name: g.name.clone(),
                util_pct: g.util_pct,
                mem_used_bytes: g.mem_used_bytes,
                mem_total_bytes: g.mem_total_bytes,
                temp_c: g.temp_c,
                power_w: g.power_w,
                sm_clock_mhz: g.sm_clock_mhz,
                throttle_reasons: g.throttle_reasons,
                mig_index: g.mig_index,
                ecc_corrected_volatile: g.ecc_corrected_volatile,
                ecc_uncorrected_volatile: g.ecc_uncorrected_volatile,
                xid_errors: g.xid_errors.clone(),
            })
            .collect(),
        server_metrics: t
            .server_metrics
            .iter()
            .map(|m| pb::LogServerMetric {
                target: m.target.clone(),
                model: m.model.clone(),
                metric: m.metric.clone(),
                value: m.value,
            })
            .collect(),
    }
}

fn sample_of(s: pb::LogSample) -> Result<Sample, DecodeError> {
    let id = Uuid::from_slice(&s.id).map_err(|e| DecodeError(format!("sample id: {e}")))?;
    let source: Source = s
        .source
        .parse()
        .map_err(|e| DecodeError(format!("sample {id}: {e}")))?;
    let status: CallStatus = s
        .status
        .parse()
        .map_err(|e| DecodeError(format!("sample {id}: {e}")))?;
    Ok(Sample {
        id,
        ts_us: s.ts_us,
        site: s.site,
        host: s.host,
        provider: s.provider,
        model: s.model,
        source,
        latency_ms: s.latency_ms,
        ttft_ms: s.ttft_ms,
        tokens_in: s.tokens_in,
        tokens_out: s.tokens_out,
        status,
        http_status: s.http_status,
        error: s.error,
        labels: s.labels,
    })
}

fn telemetry_of(t: pb::LogTelemetry) -> Telemetry {
    Telemetry {
        ts_us: t.ts_us,
        site: t.site,
        host: t.host,
        cpu_pct: t.cpu_pct,
        mem_used_bytes: t.mem_used_bytes,
        mem_total_bytes: t.mem_total_bytes,
        load1: t.load1,
        gpus: t
            .gpus
            .into_iter()
            .map(|g| Gpu {
                index: g.index,
                uuid: g.uuid,
                name: g.name,
                util_pct: g.util_pct,
                mem_used_bytes: g.mem_used_bytes,
                mem_total_bytes: g.mem_total_bytes,
                temp_c: g.temp_c,
                power_w: g.power_w,
                sm_clock_mhz: g.sm_clock_mhz,
                throttle_reasons: g.throttle_reasons,
                mig_index: g.mig_index,
                ecc_corrected_volatile: g.ecc_corrected_volatile,
                ecc_uncorrected_volatile: g.ecc_uncorrected_volatile,
                xid_errors: g.xid_errors,
            })
            .collect(),
        server_metrics: t
            .server_metrics
            .into_iter()
            .map(|m| ServerMetric {
                target: m.target,
                model: m.model,
                metric: m.metric,
                value: m.value,
            })
            .collect(),
    }
}

/// Reads one log message.
pub fn decode(bytes: &[u8]) -> Result<Decoded, DecodeError> {
    let b = pb::LogBatch::decode(bytes).map_err(|e| DecodeError(e.to_string()))?;
    Ok(Decoded {
        samples: b
            .samples
            .into_iter()
            .map(sample_of)
            .collect::<Result<_, _>>()?,
        telemetry: b.telemetry.into_iter().map(telemetry_of).collect(),
        received_us: b.received_us,
    })
}

/// One message to append: its payload and deduplication id.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    /// The protobuf payload.
    pub payload: Vec<u8>,
    /// `Nats-Msg-Id`: a SHA-256 (128 bits, hex) of the subject and the identities of the
    /// items (sample ids; telemetry site, host and time), not of the receipt time.
    pub msg_id: String,
}

/// Encodes the items of one subject as messages of at most `max_bytes` each (one message
/// per item at least, however large).
pub fn encode(
    subject: &str,
    samples: &[&Sample],
    telemetry: &[&Telemetry],
    received_us: i64,
    max_bytes: usize,
) -> Vec<Encoded> {
    // room for the batch's own fields and headers
    let budget = max_bytes.saturating_sub(256).max(1024);
    let mut out = Vec::new();
    let mut cur = pb::LogBatch {
        received_us,
        ..Default::default()
    };
    let mut size = 0usize;
    let mut hash = Sha256::new();
    hash.update(subject.as_bytes());
    let flush = |cur: &mut pb::LogBatch, hash: &mut Sha256, out: &mut Vec<Encoded>| {
        if cur.samples.is_empty() && cur.telemetry.is_empty() {
            return;
        }
        let done = std::mem::replace(
            cur,
            pb::LogBatch {
                received_us,
                ..Default::default()
            },
        );
        let digest = std::mem::replace(hash, Sha256::new()).finalize();
        hash.update(subject.as_bytes());
        out.push(Encoded {
            payload: done.encode_to_vec(),
            msg_id: hex::encode(&digest[..16]),
        });
    };
    for s in samples {
        let m = sample_pb(s);
        let len = m.encoded_len() + 4;
        if size > 0 && size + len > budget {
            flush(&mut cur, &mut hash, &mut out);
            size = 0;
        }
        hash.update(b"s");
        hash.update(s.id.as_bytes());
        cur.samples.push(m);
        size += len;
    }
    for t in telemetry {
        let m = telemetry_pb(t);
        let len = m.encoded_len() + 4;
        if size > 0 && size + len > budget {
            flush(&mut cur, &mut hash, &mut out);
            size = 0;
        }
        hash.update(b"t");
        for part in [t.site.as_bytes(), b"\x1f", t.host.as_bytes()] {
            hash.update(part);
        }
        hash.update(t.ts_us.to_le_bytes());
        cur.telemetry.push(m);
        size += len;
    }
    flush(&mut cur, &mut hash, &mut out);
    out
}

/// An empty label map (tests and callers building samples).
pub fn no_labels() -> BTreeMap<String, String> {
    BTreeMap::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(i: u128) -> Sample {
        let mut labels = no_labels();
        labels.insert("endpoint".into(), "chat".into());
        Sample {
            id: Uuid::from_u128(i),
            ts_us: 1_700_000_000_000_000 + i as i64,
            site: "eu".into(),
            host: "gpu-1".into(),
            provider: "ollama".into(),
            model: "llama3".into(),
            source: Source::Otlp,
            latency_ms: 812.5,
            ttft_ms: Some(95.0),
            tokens_in: Some(12),
            tokens_out: None,
            status: CallStatus::Timeout,
            http_status: Some(504),
            error: Some("deadline".into()),
            labels,
        }
    }

    fn snapshot() -> Telemetry {
        Telemetry {
            ts_us: 5,
            site: "eu".into(),
            host: "gpu-1".into(),
            cpu_pct: 12.5,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 0.5,
            gpus: vec![
                Gpu {
                    index: 0,
                    uuid: "GPU-1".into(),
                    name: "H100".into(),
                    util_pct: Some(99.0),
                    mem_used_bytes: Some(3),
                    mem_total_bytes: Some(4),
                    temp_c: Some(70.0),
                    power_w: Some(500.0),
                    sm_clock_mhz: Some(1980),
                    throttle_reasons: Some(4),
                    ecc_corrected_volatile: Some(2),
                    xid_errors: vec![79, 48],
                    ..Gpu::default()
                },
                Gpu {
                    index: 0,
                    mig_index: Some(1),
                    uuid: "MIG-1".into(),
                    mem_used_bytes: Some(7),
                    ..Gpu::default()
                },
            ],
            server_metrics: vec![ServerMetric {
                target: "vllm".into(),
                model: "m".into(),
                metric: "requests_waiting".into(),
                value: 3.0,
            }],
        }
    }

    #[test]
    fn round_trip_keeps_every_field() {
        let (s, t) = (sample(1), snapshot());
        let enc = encode("p.samples.1", &[&s], &[&t], 42, 1 << 20);
        assert_eq!(enc.len(), 1);
        let d = decode(&enc[0].payload).unwrap();
        assert_eq!(d.samples, vec![s]);
        assert_eq!(d.telemetry, vec![t]);
        assert_eq!(d.received_us, 42);
    }

    #[test]
    fn large_batches_are_split_and_ids_follow_the_content() {
        let samples: Vec<Sample> = (0..2_000).map(sample).collect();
        let refs: Vec<&Sample> = samples.iter().collect();
        let enc = encode("p.samples.1", &refs, &[], 1, 64 * 1024);
        assert!(enc.len() > 1);
        assert!(enc.iter().all(|e| e.payload.len() <= 64 * 1024));
        let back: Vec<Sample> = enc
            .iter()
            .flat_map(|e| decode(&e.payload).unwrap().samples)
            .collect();
        assert_eq!(back, samples);
        // the same items give the same ids whenever they are received; others differ
        let again = encode("p.samples.1", &refs, &[], 999, 64 * 1024);
        let ids = |e: &[Encoded]| e.iter().map(|x| x.msg_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&enc), ids(&again));
        let other = encode("p.samples.2", &refs, &[], 1, 64 * 1024);
        assert_ne!(ids(&enc)[0], ids(&other)[0]);
        let mut uniq = ids(&enc);
        uniq.dedup();
        assert_eq!(uniq.len(), enc.len());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(b"\xff\xff\xff").is_err());
        let bad = pb::LogBatch {
            samples: vec![pb::LogSample {
                id: vec![1, 2, 3],
                ..Default::default()
            }],
            ..Default::default()
        };
        let e = decode(&bad.encode_to_vec()).unwrap_err();
        assert!(e.to_string().contains("sample id"), "{e}");
    }
}

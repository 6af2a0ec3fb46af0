//! What the agent buffers and ships: one sample or one telemetry snapshot per record, encoded
//! as a one-byte tag (`S` or `T`) followed by the protobuf message of the public contract.

use llmscope_proto::v1;
use prost::Message;

use crate::probe::{CallStatus, Outcome};

/// One buffered item.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A timed model call.
    Sample(v1::Sample),
    /// A host snapshot.
    Telemetry(v1::Telemetry),
}

/// A record whose bytes do not decode.
#[derive(Debug, thiserror::Error)]
#[error("undecodable buffer record: {0}")]
pub struct DecodeError(String);

impl Record {
    /// Encodes for the disk buffer.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Record::Sample(s) => {
                let mut v = Vec::with_capacity(1 + s.encoded_len());
                v.push(b'S');
                s.encode(&mut v).expect("vec grows");
                v
            }
            Record::Telemetry(t) => {
                let mut v = Vec::with_capacity(1 + t.encoded_len());
                v.push(b'T');
                t.encode(&mut v).expect("vec grows");
                v
            }
        }
    }

    /// Decodes a buffered record.
    pub fn decode(bytes: &[u8]) -> Result<Record, DecodeError> {
        match bytes.split_first() {
            Some((b'S', rest)) => v1::Sample::decode(rest)
                .map(Record::Sample)
                .map_err(|e| DecodeError(e.to_string())),
            Some((b'T', rest)) => v1::Telemetry::decode(rest)
                .map(Record::Telemetry)
                .map_err(|e| DecodeError(e.to_string())),
            Some((tag, _)) => Err(DecodeError(format!("unknown tag {tag}"))),
            None => Err(DecodeError("empty record".into())),
        }
    }
}

/// Where a sample came from and what it measured.
#[derive(Debug, Clone)]
pub struct SampleContext<'a> {
    /// Site.
    pub site: &'a str,
    /// Host.
    pub host: &'a str,
    /// Provider name.
    pub provider: &'a str,
    /// Model.
    pub model: &'a str,
    /// Probe or proxy.
    pub source: v1::Source,
    /// Target or proxy name (label `target`).
    pub target: &'a str,
}

/// Builds the sample for a finished call that started at `ts_unix_nanos`.
pub fn sample(ctx: &SampleContext<'_>, ts_unix_nanos: i64, o: &Outcome) -> v1::Sample {
    let mut labels = std::collections::HashMap::new();
    labels.insert("target".to_owned(), ctx.target.to_owned());
    if ctx.provider == "simulated" {
        labels.insert("simulated".to_owned(), "true".to_owned());
    }
    if o.tokens_out_estimated {
        labels.insert("tokens_out".to_owned(), "estimated_from_chunks".to_owned());
    }
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos,
        site: ctx.site.to_owned(),
        host: ctx.host.to_owned(),
        provider: ctx.provider.to_owned(),
        model: ctx.model.to_owned(),
        source: ctx.source as i32,
        latency_ms: o.latency_ms,
        ttft_ms: o.ttft_ms.map(|t| t.min(o.latency_ms)),
        tokens_in: o.tokens_in,
        tokens_out: o.tokens_out,
        status: match o.status {
            CallStatus::Ok => v1::CallStatus::Ok,
            CallStatus::Error => v1::CallStatus::Error,
            CallStatus::Timeout => v1::CallStatus::Timeout,
        } as i32,
        http_status: o.http_status,
        error: o.error.clone(),
        labels,
    }
}

/// Now as Unix nanoseconds.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_garbage_is_an_error() {
        let o = Outcome {
            latency_ms: 10.0,
            ttft_ms: Some(2.0),
            tokens_in: Some(1),
            tokens_out: Some(2),
            tokens_out_estimated: false,
            status: CallStatus::Ok,
            http_status: Some(200),
            error: String::new(),
        };
        let ctx = SampleContext {
            site: "s",
            host: "h",
            provider: "simulated",
            model: "m",
            source: v1::Source::Probe,
            target: "t",
        };
        let r = Record::Sample(sample(&ctx, 5, &o));
        assert_eq!(Record::decode(&r.encode()).unwrap(), r);
        if let Record::Sample(s) = &r {
            assert_eq!(s.labels["simulated"], "true");
        }
        assert!(Record::decode(b"").is_err());
        assert!(Record::decode(b"X123").is_err());
    }
}

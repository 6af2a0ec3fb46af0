//! Ingest's side of the log: a validated batch is split by partition (samples by model and
//! host, telemetry by host), appended to the stream, and reported stored once JetStream has
//! acknowledged every part (on as many servers as the stream has replicas).

use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::time::Duration;

use async_nats::HeaderMap;
use futures::future::join_all;
use llmscope_model::{Sample, Telemetry};

use crate::codec;
use crate::connect::Nats;
use crate::names::partition_of;

/// Why a batch was not appended. Nothing of it counts as accepted: the producer resends it
/// (parts that did reach the log are dropped as duplicates, or stored idempotently).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// NATS is unreachable or did not confirm in time.
    #[error("the cluster log (NATS JetStream) is unavailable: {0}")]
    Unavailable(String),
    /// The log is full (`cluster.log_max_bytes`): storage or judging lag behind.
    #[error(
        "the cluster log is full (`cluster.log_max_bytes`): the database or the partition owners are behind; retry later"
    )]
    Full,
}

/// Appends validated batches to the log.
#[derive(Clone)]
pub struct Publisher {
    nats: std::sync::Arc<Nats>,
}

impl Publisher {
    /// A publisher on `nats`.
    pub fn new(nats: Nats) -> Publisher {
        Publisher {
            nats: std::sync::Arc::new(nats),
        }
    }

    /// Appends a batch; returns once every part is stored by JetStream.
    pub async fn append(
        &self,
        samples: &[Sample],
        telemetry: &[Telemetry],
        received_us: i64,
    ) -> Result<(), AppendError> {
        if !self.nats.connected() {
            return Err(AppendError::Unavailable(
                "not connected to NATS; reconnecting".into(),
            ));
        }
        let n = self.nats.partitions;
        let names = &self.nats.names;
        let mut parts: BTreeMap<String, (Vec<&Sample>, Vec<&Telemetry>)> = BTreeMap::new();
        for s in samples {
            let p = partition_of(&s.site, &s.host, &s.provider, &s.model, n);
            parts.entry(names.samples(p)).or_default().0.push(s);
        }
        for t in telemetry {
            let p = partition_of(&t.site, &t.host, "*", "*", n);
            parts.entry(names.telemetry(p)).or_default().1.push(t);
        }
        let max = self.nats.client.server_info().max_payload.max(64 * 1024);
        let mut acks = Vec::new();
        for (subject, (s, t)) in parts {
            for m in codec::encode(&subject, &s, &t, received_us, max) {
                let mut headers = HeaderMap::new();
                headers.insert("Nats-Msg-Id", m.msg_id.as_str());
                let ack = self
                    .nats
                    .js
                    .publish_with_headers(subject.clone(), headers, m.payload.into())
                    .await
                    .map_err(|e| AppendError::Unavailable(e.to_string()))?;
                acks.push(ack.into_future());
            }
        }
        // confirmations arrive together: one round trip for the whole batch
        let results = tokio::time::timeout(Duration::from_secs(10), join_all(acks))
            .await
            .map_err(|_| AppendError::Unavailable("no confirmation within 10 s".into()))?;
        for r in results {
            if let Err(e) = r {
                let text = e.to_string();
                // JetStream's "maximum bytes exceeded" (err_code 10047 / 10077)
                if text.contains("maximum") && text.contains("exceeded") {
                    return Err(AppendError::Full);
                }
                return Err(AppendError::Unavailable(text));
            }
        }
        Ok(())
    }
}

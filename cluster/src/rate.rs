//! Channel rate limits shared by every replica: the time a channel may send next is kept in
//! the `<prefix>-rates` KV bucket and taken with compare-and-set, so "one Slack message a
//! second" holds for the cluster, not per replica.

use futures::future::BoxFuture;
use llmscope_alert::RateGate;

use crate::connect::Nats;

/// A [`RateGate`] in the rates bucket.
#[derive(Clone)]
pub struct KvRateGate {
    nats: Nats,
}

impl KvRateGate {
    /// The gate of this installation.
    pub fn new(nats: Nats) -> KvRateGate {
        KvRateGate { nats }
    }
}

/// Channel names may hold characters KV keys cannot: the key is the name in hex.
fn key(channel: &str) -> String {
    format!("ch.{}", hex::encode(channel.as_bytes()))
}

impl RateGate for KvRateGate {
    fn reserve<'a>(
        &'a self,
        channel: &'a str,
        gap_us: i64,
        now_us: i64,
    ) -> BoxFuture<'a, Result<Option<i64>, String>> {
        Box::pin(async move {
            let kv = &self.nats.rates_kv;
            let k = key(channel);
            let next = now_us.saturating_add(gap_us).to_string();
            // a few rounds: another replica may take the slot between the read and the write
            for _ in 0..5 {
                let entry = kv
                    .entry(k.clone())
                    .await
                    .map_err(|e| format!("rate limit of {channel}: {e}"))?;
                let won = match entry {
                    Some(e) if e.operation == async_nats::jetstream::kv::Operation::Put => {
                        let at: i64 = String::from_utf8_lossy(&e.value).parse().unwrap_or(0);
                        if at > now_us {
                            return Ok(Some(at));
                        }
                        kv.update(k.clone(), next.clone().into_bytes().into(), e.revision)
                            .await
                            .is_ok()
                    }
                    _ => kv
                        .create(k.clone(), next.clone().into_bytes().into())
                        .await
                        .is_ok(),
                };
                if won {
                    return Ok(None);
                }
            }
            Err(format!("rate limit of {channel}: contended"))
        })
    }
}

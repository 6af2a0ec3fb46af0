//! Live events across replicas: each replica publishes what its dashboards' server-sent
//! events carry (`points`, `violation`) on the core NATS subject `<prefix>.events`, and
//! forwards what the others published to its own dashboards. Delivery is best effort, as for
//! server-sent events themselves: a dashboard refetches on its own timer as well.

use async_nats::HeaderMap;
use futures::{Stream, StreamExt};

use crate::connect::Nats;

/// Header naming the replica an event comes from.
const ORIGIN: &str = "Llmscope-Origin";
/// Header naming the event.
const KIND: &str = "Llmscope-Event";

/// One live event as the dashboards receive it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// SSE event name (`points`, `violation`).
    pub kind: String,
    /// JSON data.
    pub data: String,
}

/// Publishes and receives live events.
#[derive(Clone)]
pub struct EventBus {
    nats: Nats,
    origin: String,
}

impl EventBus {
    /// The bus of replica `origin`.
    pub fn new(nats: Nats, origin: &str) -> EventBus {
        EventBus {
            nats,
            origin: origin.to_owned(),
        }
    }

    /// Publishes one of this replica's events (dropped while NATS is unreachable).
    pub async fn publish(&self, f: &Frame) {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, self.origin.as_str());
        h.insert(KIND, f.kind.as_str());
        if let Err(e) = self
            .nats
            .client
            .publish_with_headers(self.nats.names.events(), h, f.data.clone().into())
            .await
        {
            tracing::debug!(error = %e, "cluster: live event not published");
        }
    }

    /// The other replicas' events.
    pub async fn others(&self) -> Result<impl Stream<Item = Frame> + use<>, String> {
        let sub = self
            .nats
            .client
            .subscribe(self.nats.names.events())
            .await
            .map_err(|e| format!("live events: {e}"))?;
        let me = self.origin.clone();
        Ok(sub.filter_map(move |m| {
            let me = me.clone();
            async move {
                let h = m.headers.as_ref()?;
                if h.get(ORIGIN).map(|v| v.as_str()) == Some(me.as_str()) {
                    return None;
                }
                let kind = h.get(KIND)?.as_str().to_owned();
                let data = String::from_utf8(m.payload.to_vec()).ok()?;
                Some(Frame { kind, data })
            }
        }))
    }
}

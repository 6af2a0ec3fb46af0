//! Server-sent events at `/api/v1/events` for live dashboards, from the [`LiveEvent`]s:
//! `points` (series keys whose new points the engine evaluated, at most 500 per event) and
//! `violation` (opened, resolved, acknowledged). [`relay`] turns this process's events into
//! frames for its dashboards; in cluster mode it also publishes them over NATS and
//! [`forward`] brings the other replicas' frames in, so a dashboard behind a load balancer
//! sees every replica's events (it refetches on its own timer as well).

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use llmscope_cluster::{EventBus, Frame};
use llmscope_model::{LiveEvent, SharedClock};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// Most series keys in one `points` event.
pub const MAX_KEYS: usize = 500;

/// The SSE event (name, data) of a live event.
pub fn sse_of(e: &LiveEvent, now_ms: i64) -> Option<(&'static str, Value)> {
    let violation = |id: &str, event: &str, key: &llmscope_model::SeriesId, rule: u8| json!({"id": id, "event": event, "key": key, "rule": rule});
    match e {
        LiveEvent::Evaluated { series, .. } if !series.is_empty() => {
            let keys: Vec<&llmscope_model::SeriesId> =
                series.iter().take(MAX_KEYS).map(|e| &e.series).collect();
            Some(("points", json!({"keys": keys, "ts": now_ms})))
        }
        LiveEvent::Evaluated { .. } => None,
        LiveEvent::ViolationOpened(v) => {
            Some(("violation", violation(&v.id, "opened", &v.series, v.rule)))
        }
        LiveEvent::ViolationResolved {
            id, series, rule, ..
        } => Some(("violation", violation(id, "resolved", series, *rule))),
        LiveEvent::ViolationAcknowledged { id, series, rule } => {
            Some(("violation", violation(id, "acknowledged", series, *rule)))
        }
    }
}

/// Turns this process's live events into SSE frames for its dashboards (`hub`) and, in
/// cluster mode, for the other replicas' (`bus`); runs until `events` closes.
pub async fn relay(
    mut events: broadcast::Receiver<LiveEvent>,
    hub: broadcast::Sender<Frame>,
    bus: Option<EventBus>,
    clock: SharedClock,
) {
    loop {
        let e = match events.recv().await {
            Ok(e) => e,
            // a slow relay just misses events; dashboards refetch on their timer
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if bus.is_none() && hub.receiver_count() == 0 {
            continue; // no dashboard listens: nothing to encode
        }
        let Some((kind, data)) = sse_of(&e, llmscope_model::time::ms(clock.now_us())) else {
            continue;
        };
        let frame = Frame {
            kind: kind.to_owned(),
            data: data.to_string(),
        };
        if let Some(bus) = &bus {
            bus.publish(&frame).await;
        }
        let _ = hub.send(frame);
    }
}

/// Cluster mode: the other replicas' frames to this process's dashboards; resubscribes
/// after NATS outages.
pub async fn forward(bus: EventBus, hub: broadcast::Sender<Frame>) {
    loop {
        match bus.others().await {
            Ok(frames) => {
                let mut frames = std::pin::pin!(frames);
                while let Some(f) = frames.next().await {
                    let _ = hub.send(f);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cluster: live events not followed; retrying"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Whether a series key (text) belongs to a site the caller may see (pooled `global` charts
/// are fleet-wide: only for callers who see every site).
fn key_visible(caller: &super::Caller, key: &Value) -> bool {
    if caller.site_limit().is_none() {
        return true;
    }
    key.as_str()
        .and_then(|k| k.parse::<llmscope_model::SeriesId>().ok())
        .is_some_and(|k| k.scope != llmscope_model::Scope::Global && caller.may_see(&k.site))
}

/// A frame as `caller` may see it: keys of other sites removed, `None` when nothing is left.
pub fn visible_frame(caller: &super::Caller, f: Frame) -> Option<Frame> {
    if caller.site_limit().is_none() {
        return Some(f);
    }
    let mut v: Value = serde_json::from_str(&f.data).ok()?;
    match f.kind.as_str() {
        "points" => {
            let keys: Vec<Value> = v["keys"]
                .as_array()?
                .iter()
                .filter(|k| key_visible(caller, k))
                .cloned()
                .collect();
            if keys.is_empty() {
                return None;
            }
            v["keys"] = Value::Array(keys);
            Some(Frame {
                kind: f.kind,
                data: v.to_string(),
            })
        }
        "violation" if key_visible(caller, &v["key"]) => Some(f),
        _ => None,
    }
}

/// `GET /api/v1/events`; the stream ends when the collector shuts down.
pub async fn events(
    axum::extract::State(st): axum::extract::State<super::ApiState>,
    axum::Extension(caller): axum::Extension<super::Caller>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let mut stop = st.shutdown.clone();
    let live = BroadcastStream::new(st.sse.subscribe()).filter_map(move |m| {
        // a slow client that lagged just misses events; it refetches on its timer
        let f = visible_frame(&caller, m.ok()?)?;
        Some(Ok(Event::default().event(f.kind).data(f.data)))
    });
    // a first comment gets the response head out at once
    let stream = futures::StreamExt::take_until(
        tokio_stream::once(Ok(Event::default().comment("connected"))).chain(live),
        Box::pin(async move {
            let _ = stop.wait_for(|s| *s).await;
        }),
    );
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

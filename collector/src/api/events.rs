//! Server-sent events at `/api/v1/events` for live dashboards, from the process's
//! [`LiveEvent`]s: `points` (series keys whose new points the engine evaluated, at most 500
//! per event) and `violation` (opened, resolved, acknowledged). Events are process-local: a
//! dashboard behind a load balancer sees the events of the replica it is connected to, and
//! refetches on its own timer as well.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use llmscope_model::LiveEvent;
use serde_json::{Value, json};
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

/// `GET /api/v1/events`; the stream ends when the collector shuts down.
pub async fn events(
    axum::extract::State(st): axum::extract::State<super::ApiState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let mut stop = st.shutdown.clone();
    let clock = st.clock.clone();
    let live = BroadcastStream::new(st.events.subscribe()).filter_map(move |m| {
        // a slow client that lagged just misses events; it refetches on its timer
        let e = m.ok()?;
        let (kind, data) = sse_of(&e, llmscope_model::time::ms(clock.now_us()))?;
        Some(Ok(Event::default().event(kind).data(data.to_string())))
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

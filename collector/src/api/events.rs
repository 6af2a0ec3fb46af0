//! Server-sent events at `/api/v1/events` for live dashboards: `points` (series keys whose
//! new points the engine evaluated) and `violation` (opened, resolved, acknowledged).
//! Events are process-local: a dashboard behind a load balancer sees the events of the
//! replica it is connected to, and refetches on its own timer as well.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

static EVENTS: LazyLock<broadcast::Sender<(String, Value)>> =
    LazyLock::new(|| broadcast::channel(1024).0);

/// Publishes one event to every connected client (dropped when nobody listens).
pub fn publish(kind: &str, data: Value) {
    let _ = EVENTS.send((kind.to_owned(), data));
}

/// Whether any client is connected (skip building events otherwise).
pub fn listening() -> bool {
    EVENTS.receiver_count() > 0
}

/// Publishes a `points` event for the keys (at most 500 per event).
pub fn publish_points<'a>(keys: impl Iterator<Item = &'a str>) {
    if !listening() {
        return;
    }
    let keys: Vec<&str> = keys.take(500).collect();
    if !keys.is_empty() {
        publish(
            "points",
            json!({"keys": keys, "ts": crate::store::now_us() / 1000}),
        );
    }
}

/// `GET /api/v1/events`; the stream ends when the collector shuts down.
pub async fn events(
    axum::extract::State(st): axum::extract::State<super::ApiState>,
) -> Sse<impl tokio_stream::Stream<Item = Result<Event, Infallible>>> {
    let mut stop = st.shutdown.clone();
    let live = BroadcastStream::new(EVENTS.subscribe()).filter_map(|m| {
        // a slow client that lagged just misses events; it refetches on its timer
        m.ok()
            .map(|(kind, data)| Ok(Event::default().event(kind).data(data.to_string())))
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

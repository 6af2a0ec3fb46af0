//! The agent's HTTP endpoint: `/healthz` (JSON: buffer and collector state) and `/metrics`
//! (Prometheus text format).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::metrics::Metrics;
use crate::ship::SharedBuffer;

#[derive(Clone)]
struct St {
    metrics: Arc<Metrics>,
    buffer: SharedBuffer,
}

/// Binds and serves; returns the bound address.
pub async fn start(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    buffer: SharedBuffer,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .with_state(St { metrics, buffer });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "agent http endpoint stopped");
        }
    });
    Ok(bound)
}

async fn healthz(State(st): State<St>) -> impl IntoResponse {
    let stats = st.buffer.lock().map(|b| b.stats()).ok();
    axum::Json(serde_json::json!({
        "status": "ok",
        "collector_connected": st.metrics.connected.get() == 1,
        "buffer_bytes": stats.as_ref().map(|s| s.bytes_on_disk),
        "buffer_dropped_records": stats.as_ref().map(|s| s.dropped_records),
    }))
}

async fn metrics_text(State(st): State<St>) -> impl IntoResponse {
    let stats = crate::ship::lock(&st.buffer).stats();
    st.metrics.sync_buffer(&stats);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
}

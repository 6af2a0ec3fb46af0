//! The HTTP listener: `/healthz` (the process is up) and `/readyz` (the database answers,
//! commits succeed and, in cluster mode, NATS is reachable), and the REST API
//! ([`crate::api`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ingest::Writer;
use llmscope_store::Store;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// The ingest writer (for readiness).
    pub writer: Writer,
    /// Cluster mode: ready only while NATS is reachable.
    pub cluster: Option<llmscope_cluster::Cluster>,
    /// The REST API.
    pub api: crate::api::ApiState,
}

/// The router with every HTTP route.
pub fn router(state: AppState) -> Router {
    let api = crate::api::router(state.api.clone());
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(api)
        .merge(crate::metrics::router())
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let ping = tokio::time::timeout(Duration::from_secs(2), st.store.ping()).await;
    let reason = match ping {
        Err(_) => Some("the database did not answer within 2 s".to_owned()),
        Ok(Err(e)) => Some(format!("the database is unavailable: {e}")),
        Ok(Ok(())) if !st.writer.stats().db_ok.load(Ordering::Relaxed) => {
            Some("database commits are failing; ingest is paused".to_owned())
        }
        Ok(Ok(())) if st.cluster.as_ref().is_some_and(|c| !c.nats.connected()) => Some(
            "NATS (the cluster log) is unreachable; ingest answers UNAVAILABLE until it is back"
                .to_owned(),
        ),
        Ok(Ok(())) => None,
    };
    match reason {
        None => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "backend": st.store.backend(), "queued_batches": st.writer.queued(),
                    "cluster": st.cluster.as_ref().map(|c| c.id.clone())}),
            ),
        ),
        Some(r) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": r})),
        ),
    }
}

/// Serves `router` on `listener`, with TLS when `tls` is set, until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let Some(tls) = tls else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
    };
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => r?,
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let stream =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "tls handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(router),
            );
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(%peer, error = %e, "http connection ended with an error");
                    }
                }
                _ = async { let _ = conn_shutdown.wait_for(|s| *s).await; } => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}

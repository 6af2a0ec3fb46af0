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
    /// The OTLP/HTTP receivers.
    pub otlp: crate::ingest::otlp::Otlp,
}

/// The router with every HTTP route.
pub fn router(state: AppState) -> Router {
    let api = crate::api::router(state.api.clone());
    let otlp = state.otlp.clone();
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(api)
        .merge(crate::ingest::otlp::http_router(otlp))
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

/// How long an HTTP connection may stay without any traffic (server-sent events send a
/// comment every 15 s).
pub const HTTP_IDLE: Duration = Duration::from_secs(75);
/// How long a client may take to send a request's headers.
pub const HEADER_READ: Duration = Duration::from_secs(10);

/// Serves `router` on `listener`, with TLS when `tls` is set, until `shutdown` turns true.
/// Each connection knows its peer (`ConnectInfo`), must send its first bytes within
/// [`crate::idle::FIRST_BYTES`] and a request's headers within [`HEADER_READ`], and is closed
/// after [`HTTP_IDLE`] without traffic.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let (tcp, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                // too many open files and the like: keep serving the others
                Err(e) => {
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return Ok(()),
        };
        let acceptor = acceptor.clone();
        let svc = tower::ServiceExt::map_request(
            router.clone(),
            move |mut req: hyper::Request<hyper::body::Incoming>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req.map(axum::body::Body::new)
            },
        );
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let io = crate::idle::Idle::new(tcp, crate::idle::FIRST_BYTES, HTTP_IDLE);
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ);
            builder
                .http2()
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(20));
            let svc = TowerToHyperService::new(svc);
            let result = match acceptor {
                None => {
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), svc);
                    drive(conn, &mut conn_shutdown).await
                }
                Some(acceptor) => {
                    let stream =
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(io))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "tls handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    drive(conn, &mut conn_shutdown).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "http connection ended with an error");
            }
        });
    }
}

/// Runs one connection until it ends or the collector shuts down (then gracefully).
async fn drive<C, E>(conn: C, shutdown: &mut watch::Receiver<bool>) -> Result<(), E>
where
    C: std::future::Future<Output = Result<(), E>> + GracefulShutdown,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => r,
        _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful();
            conn.await
        }
    }
}

/// A connection that can finish gracefully.
trait GracefulShutdown {
    fn graceful(self: std::pin::Pin<&mut Self>);
}

impl<I, S, E> GracefulShutdown for auto::UpgradeableConnection<'_, I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: hyper::body::Body + Send + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn graceful(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

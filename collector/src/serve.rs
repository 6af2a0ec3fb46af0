//! `llmscope-collector serve`: wires the store, the writer, the gRPC ingest server (with
//! health and reflection), the HTTP listener and the retention job, and shuts them down in
//! order: stop accepting, end streams after acking what is in flight, drain the writer.

use std::net::SocketAddr;
use std::time::Duration;

use llmscope_proto::wire::ingest_service_server::IngestServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use std::sync::Arc;

use llmscope_alert::Dispatcher;
use llmscope_live::{BaselinePolicy, Engine, EngineConfig};
use llmscope_model::{LiveEvent, SharedClock, SystemClock};
use llmscope_store::{Store, StoreError};
use tokio::sync::broadcast;

use crate::auth::Authenticator;
use crate::config::{Config, redact_url};
use crate::http;
use crate::ingest::service::IngestLimits;
use crate::ingest::sink::WriterSink;
use crate::ingest::writer::{CommitHook, WriterTasks};
use crate::ingest::{IngestServer, Sink, Writer, WriterConfig};
use crate::tls::{self, TlsError};

/// How long shutdown waits for in-flight batches to commit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
/// Rows per retention delete statement.
const RETENTION_BATCH: i64 = 5_000;
/// How long a gRPC connection may stay without traffic (the server pings every 30 s).
const GRPC_IDLE: Duration = Duration::from_secs(120);
/// Live events buffered per receiver before a slow one starts missing them.
const EVENTS_CAPACITY: usize = 1024;

/// Why the collector could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The database could not be opened or migrated.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// TLS files are unusable.
    #[error("{0}")]
    Tls(#[from] TlsError),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The gRPC server failed.
    #[error("grpc server: {0}")]
    Grpc(#[from] tonic::transport::Error),
    /// The HTTP server failed.
    #[error("http server: {0}")]
    Http(std::io::Error),
    /// Alert channels, routes or silences could not be set up.
    #[error("alerts: {0}")]
    Alerts(String),
    /// Cluster mode could not start (NATS unreachable, no JetStream, mismatched settings).
    #[error("cluster mode: {0}")]
    Cluster(llmscope_cluster::ClusterError),
    /// Another live replica runs on the database without cluster mode.
    #[error("{0}")]
    Replica(crate::replica::ReplicaError),
}

impl From<llmscope_cluster::ClusterError> for ServeError {
    fn from(e: llmscope_cluster::ClusterError) -> ServeError {
        ServeError::Cluster(e)
    }
}

impl From<crate::replica::ReplicaError> for ServeError {
    fn from(e: crate::replica::ReplicaError) -> ServeError {
        ServeError::Replica(e)
    }
}

/// A running collector.
pub struct Running {
    /// Bound gRPC address.
    pub grpc_addr: SocketAddr,
    /// Bound HTTP address.
    pub http_addr: SocketAddr,
    /// Bound OTLP/gRPC address (`otlp_grpc_listen`), when on.
    pub otlp_grpc_addr: Option<SocketAddr>,
    /// Bound OTLP/HTTP address (`otlp_http_listen`), when on.
    pub otlp_http_addr: Option<SocketAddr>,
    /// The store (tests and tools read it).
    pub store: Store,
    /// The live events of this process (tests subscribe to them).
    pub events: broadcast::Sender<LiveEvent>,
    /// Cluster mode: this replica's membership.
    pub cluster: Option<llmscope_cluster::Cluster>,
    shutdown: watch::Sender<bool>,
    cluster_stop: watch::Sender<bool>,
    /// Storage consumer and coordinator: stopped by `cluster_stop` and waited for.
    cluster_tasks: Vec<JoinHandle<()>>,
    /// Event relays and metric followers: aborted.
    background: Vec<JoinHandle<()>>,
    registration: crate::replica::Registration,
    grpc: JoinHandle<Result<(), tonic::transport::Error>>,
    http: JoinHandle<std::io::Result<()>>,
    /// The OTLP listeners' servers, when on.
    otlp: Vec<JoinHandle<()>>,
    retention: JoinHandle<()>,
    writer_tasks: WriterTasks,
    engine: Option<JoinHandle<()>>,
    buckets: Option<JoinHandle<()>>,
    dispatcher: JoinHandle<()>,
    rollup: JoinHandle<()>,
    metrics: JoinHandle<()>,
}

impl Running {
    /// Graceful stop: streams ack what they have in flight and end, the writer drains.
    pub async fn stop(self) -> Result<(), ServeError> {
        let _ = self.shutdown.send(true);
        for t in &self.background {
            t.abort();
        }
        self.retention.abort();
        self.dispatcher.abort();
        self.rollup.abort();
        self.metrics.abort();
        let grpc = tokio::time::timeout(SHUTDOWN_GRACE, self.grpc).await;
        let http = tokio::time::timeout(Duration::from_secs(5), self.http).await;
        for t in self.otlp {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        // cluster mode: hand the partitions back (what was judged is acknowledged), finish
        // the storage consumer's commits
        let _ = self.cluster_stop.send(true);
        for t in self.cluster_tasks {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, t).await;
        }
        self.writer_tasks.shutdown(SHUTDOWN_GRACE).await;
        if let Some(b) = self.buckets {
            b.abort();
        }
        // the writers are gone: the engine finishes what it was given, then stops
        if let Some(e) = self.engine {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, e).await;
        }
        self.registration.remove().await;
        if let Ok(Ok(Err(e))) = grpc {
            return Err(ServeError::Grpc(e));
        }
        if let Ok(Ok(Err(e))) = http {
            return Err(ServeError::Http(e));
        }
        Ok(())
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Opens the store and starts every listener on the system clock; returns once they are
/// bound.
pub async fn start(cfg: &Config) -> Result<Running, ServeError> {
    start_with_clock(cfg, SystemClock::shared()).await
}

/// [`start`] with a given clock.
pub async fn start_with_clock(cfg: &Config, clock: SharedClock) -> Result<Running, ServeError> {
    tls::install_crypto_provider();
    let store = Store::connect(&cfg.database_url, cfg.database_max_connections).await?;
    tracing::info!(backend = store.backend(), url = %redact_url(&cfg.database_url), "database ready");
    if let Store::Postgres(pg) = &store {
        match pg.setup_timescale(cfg.retention).await {
            Ok(true) => {
                tracing::info!("timescaledb: hypertables with compression and retention policies")
            }
            Ok(false) => {
                tracing::info!("timescaledb not available: plain tables with a retention job")
            }
            Err(e) => {
                tracing::warn!(error = %e, "timescaledb setup failed: using plain tables with a retention job")
            }
        }
    }
    if cfg.insecure_no_auth {
        tracing::warn!(
            "ingest authentication is OFF (--insecure-no-auth): anyone who can reach the gRPC port can write any site"
        );
    }
    let grpc_tls = tls::grpc_config(&cfg.tls)?;
    cfg.alerts
        .reconcile(&store, clock.now_us())
        .await
        .map_err(|e| ServeError::Alerts(e.to_string()))?;
    {
        // SLOs, prices and budgets of the file replace the earlier file's
        let (slos, prices, budgets) = cfg.plans().map_err(ServeError::Alerts)?;
        let now = clock.now_us();
        let raw_reach = now - i64::try_from(cfg.retention.as_micros()).unwrap_or(i64::MAX);
        store
            .sync_config_plans(&slos, &prices, &budgets, now, raw_reach)
            .await?;
    }
    let mut http_client = reqwest::Client::builder();
    if cfg.alerts.deny_private_targets {
        http_client = llmscope_alert::targets::harden(http_client);
    }
    let http_client = http_client
        .build()
        .map_err(|e| ServeError::Tls(TlsError::Rustls(format!("http client: {e}"))))?;
    // cluster mode: NATS first — the log's consumers must exist before a batch is accepted
    let cluster = if cfg.cluster.enabled() {
        Some(llmscope_cluster::Cluster::start(&cfg.cluster, cfg.spc.enabled).await?)
    } else {
        None
    };
    // what the engine, the bucket charts and the API announce; the dispatcher, /metrics and
    // the server-sent events follow it
    let (events, _) = broadcast::channel::<LiveEvent>(EVENTS_CAPACITY);
    let alerts = Arc::new(cfg.alerts.clone());
    let mut dispatcher = Dispatcher::new(
        store.clone(),
        alerts.clone(),
        http_client,
        clock.clone(),
        Arc::new(crate::metrics::DeliveryMetrics),
    );
    if let Some(c) = &cluster {
        // channel rate limits hold across replicas
        dispatcher = dispatcher.with_rate_gate(c.rate_gate());
    }
    let dispatcher_task = tokio::spawn(dispatcher.clone().run(events.subscribe()));
    let metrics = tokio::spawn(crate::metrics::follow(store.clone(), events.subscribe()));
    let (judge, engine, buckets): (Option<CommitHook>, _, _) = if cfg.spc.enabled {
        let engine_cfg = EngineConfig {
            severity: cfg.alerts.severities(),
            // cluster mode: the log hands unjudged points over again, not the database
            replay_unevaluated: cluster.is_none(),
            ..EngineConfig::from(&cfg.spc)
        };
        let mut engine = Engine::new(store.clone(), engine_cfg, clock.clone(), events.clone());
        if let Some(c) = &cluster {
            let owned = c.ownership.clone();
            engine.set_ownership(Arc::new(move |s: &str, h: &str, p: &str, m: &str| {
                owned.owns(s, h, p, m)
            }));
        }
        let (tx, task) = engine.spawn();
        let b = tokio::spawn(llmscope_live::buckets::job(
            store.clone(),
            cfg.spc.clone(),
            clock.clone(),
            events.clone(),
        ));
        if cfg.spc.baseline_mode == BaselinePolicy::Rolling {
            // lives as long as the process (it only takes a lease and re-estimates)
            tokio::spawn(llmscope_live::rebaseline::rolling_job(
                store.clone(),
                cfg.spc.rolling_interval,
                cfg.spc.rolling_points,
                cfg.spc.sigma_method,
                cfg.spc.transform,
                clock.clone(),
            ));
        }
        (Some(tx), Some(task), Some(b))
    } else {
        (None, None, None)
    };
    let http_tls = tls::http_config(&cfg.tls)?;

    // standalone the writer hands every commit to the engine; in cluster mode the partition
    // owners read the log and the writer only stores
    let hook = if cluster.is_none() {
        judge.clone()
    } else {
        None
    };
    let (writer, writer_tasks) = Writer::start(
        store.clone(),
        WriterConfig {
            queue_capacity: cfg.ingest.queue_capacity,
            commit_max_rows: cfg.ingest.commit_max_rows,
            writers: cfg.ingest.writers,
            note_agents: cluster.is_some(),
        },
        hook,
    );
    let (shutdown, shutdown_rx) = watch::channel(false);

    let grpc_listener = bind(cfg.grpc_listen).await?;
    let http_listener = bind(cfg.http_listen).await?;
    let otlp_grpc_listener = match cfg.otlp_grpc_addr() {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let otlp_http_listener = match cfg.otlp_http_addr() {
        Some(a) => Some(bind(a).await?),
        None => None,
    };
    let local = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (otlp_grpc_addr, otlp_http_addr) = (local(&otlp_grpc_listener), local(&otlp_http_listener));
    let grpc_addr = grpc_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: cfg.grpc_listen,
            source,
        })?;
    let http_addr = http_listener
        .local_addr()
        .map_err(|source| ServeError::Bind {
            addr: cfg.http_listen,
            source,
        })?;
    // refuses to run next to another live replica outside one cluster
    let registration = crate::replica::register(
        &store,
        grpc_addr,
        http_addr,
        cluster.as_ref().map(|c| c.nats.names.prefix()),
        clock.now_us(),
    )
    .await?;

    let (cluster_stop, cluster_stop_rx) = watch::channel(false);
    let mut cluster_tasks = Vec::new();
    let sink = match &cluster {
        None => Sink::Direct(writer.clone()),
        Some(c) => {
            let store_sink: Arc<dyn llmscope_cluster::BatchSink> =
                Arc::new(WriterSink(writer.clone()));
            cluster_tasks.push(c.spawn_storage(store_sink.clone(), cluster_stop_rx.clone()));
            if let Some(engine) = &judge {
                let me = llmscope_cluster::Member {
                    id: c.id.clone(),
                    host: hostname::get()
                        .map(|h| h.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    http: http_addr.to_string(),
                    grpc: grpc_addr.to_string(),
                    started_ms: llmscope_model::time::ms(clock.now_us()),
                };
                cluster_tasks.push(c.spawn_coordinator(
                    engine.clone(),
                    store_sink,
                    me,
                    cluster_stop_rx.clone(),
                ));
            }
            Sink::Log(c.publisher())
        }
    };
    // the dashboards' live events: this process's, and the other replicas' in cluster mode
    let (sse, _) = broadcast::channel::<llmscope_cluster::Frame>(EVENTS_CAPACITY);
    let mut background = vec![tokio::spawn(crate::api::events::relay(
        events.subscribe(),
        sse.clone(),
        cluster.as_ref().map(|c| c.events()),
        clock.clone(),
    ))];
    if let Some(c) = &cluster {
        background.push(tokio::spawn(crate::api::events::forward(
            c.events(),
            sse.clone(),
        )));
        background.push(tokio::spawn(crate::metrics::follow_cluster(c.clone())));
    }

    let svc = IngestServer::new(
        Authenticator::new(store.clone(), cfg.insecure_no_auth),
        sink,
        IngestLimits {
            max_items: cfg.ingest.max_items_per_batch,
            max_future: cfg.ingest.max_future_skew,
            retention: cfg.retention,
            stream_window: cfg.ingest.stream_window,
            max_message_bytes: cfg.ingest.max_message_bytes,
        },
        shutdown_rx.clone(),
    );
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<IngestServiceServer<IngestServer>>()
        .await;
    // reflection v1 (grpcurl ≥ 1.9, grpc_cli) and v1alpha (grpcurl 1.8, Postman, older tools),
    // of the ingest, health and OTLP services
    let described = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(llmscope_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(opentelemetry_proto::DESCRIPTORS)
    };
    let reflection_err = |e: tonic_reflection::server::Error| {
        ServeError::Tls(TlsError::Rustls(format!("reflection: {e}")))
    };
    let reflection = described().build_v1().map_err(reflection_err)?;
    let reflection_v1alpha = described().build_v1alpha().map_err(reflection_err)?;

    let max_bytes = cfg.ingest.max_message_bytes;
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        // statuses the HTTP/2 stack sets before a handler runs, in words a client can act on
        .layer(tower::util::MapResponseLayer::new(
            move |r: axum::http::Response<tonic::body::Body>| match tonic::Status::from_header_map(
                r.headers(),
            )
            .and_then(|s| crate::ingest::service::remap_status(&s, max_bytes))
            {
                Some(s) => s.into_http(),
                None => r,
            },
        ));
    if let Some(t) = grpc_tls.clone() {
        builder = builder.tls_config(t)?;
    }
    let ingest = IngestServiceServer::new(svc.clone())
        .max_decoding_message_size(cfg.ingest.max_message_bytes)
        .max_encoding_message_size(cfg.ingest.max_message_bytes);
    let otlp = crate::ingest::otlp::Otlp {
        ingest: svc.clone(),
        store: store.clone(),
        started_ns: u64::try_from(llmscope_model::now_us()).unwrap_or(0) * 1000,
    };
    let (otlp_traces, otlp_metrics) = crate::ingest::otlp::grpc_services(otlp.clone());
    let mut grpc_shutdown = shutdown_rx.clone();
    let grpc_future = builder
        .add_service(health_service)
        .add_service(reflection)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(otlp_traces)
        .add_service(otlp_metrics)
        .serve_with_incoming_shutdown(
            tokio_stream::StreamExt::map(TcpListenerStream::new(grpc_listener), |r| {
                // connections that send nothing are closed; agents' streams carry batches
                // and HTTP/2 pings
                r.map(|s| crate::idle::Idle::new(s, crate::idle::FIRST_BYTES, GRPC_IDLE))
            }),
            async move {
                let _ = grpc_shutdown.wait_for(|s| *s).await;
                health_reporter
                    .set_not_serving::<IngestServiceServer<IngestServer>>()
                    .await;
            },
        );
    let grpc = tokio::spawn(grpc_future);

    let auth = Arc::new(cfg.auth.clone());
    let hasher = Arc::new(
        crate::access::password::Hasher::new(&cfg.auth)
            .map_err(|e| ServeError::Alerts(format!("auth: {e}")))?,
    );
    let limiter = Arc::new(crate::access::limiter::Limiter::new(
        cfg.auth.login_window,
        cfg.auth.login_max_failures,
        cfg.auth.login_max_failures_per_client,
    ));
    let oidc = match &cfg.auth.oidc {
        Some(o) => Some(Arc::new(
            crate::access::oidc::Provider::new(o.clone())
                .map_err(|e| ServeError::Alerts(format!("auth.oidc: {e}")))?,
        )),
        None => None,
    };
    if cfg.auth.anonymous_role.is_some() {
        tracing::warn!(role = ?cfg.auth.anonymous_role, "anonymous callers may use the API with this role ([auth] anonymous_role)");
    }
    let app = http::router(http::AppState {
        otlp: otlp.clone(),
        store: store.clone(),
        writer: writer.clone(),
        cluster: cluster.clone(),
        api: crate::api::ApiState {
            store: store.clone(),
            alerts,
            dispatcher,
            admin_hash: cfg
                .admin_token
                .as_ref()
                .map(|t| crate::auth::hash_token(&t.0)),
            spc: Arc::new(cfg.spc.clone()),
            grpc_addr: grpc_addr.to_string(),
            otlp_addrs: (
                otlp_grpc_addr.map(|a| a.to_string()),
                otlp_http_addr.map(|a| a.to_string()),
            ),
            events: events.clone(),
            sse,
            cluster: cluster.clone(),
            replica_id: registration.id().to_owned(),
            clock: clock.clone(),
            shutdown: shutdown_rx.clone(),
            auth,
            hasher,
            limiter,
            tls: cfg.tls.cert.is_some(),
            oidc,
        },
    });
    let http = tokio::spawn(http::serve(
        http_listener,
        app,
        http_tls.clone(),
        shutdown_rx.clone(),
    ));
    drop(writer);

    // the OTLP receivers' own listeners (OTLP is served on the main listeners as well)
    let mut otlp_tasks = Vec::new();
    if let Some(l) = otlp_grpc_listener {
        let mut b = tonic::transport::Server::builder();
        if let Some(t) = grpc_tls {
            b = b.tls_config(t)?;
        }
        let (traces, metrics) = crate::ingest::otlp::grpc_services(otlp.clone());
        let mut stop = shutdown_rx.clone();
        let fut = b
            .add_service(traces)
            .add_service(metrics)
            .serve_with_incoming_shutdown(
                tokio_stream::StreamExt::map(TcpListenerStream::new(l), |r| {
                    r.map(|s| crate::idle::Idle::new(s, crate::idle::FIRST_BYTES, GRPC_IDLE))
                }),
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            );
        otlp_tasks.push(tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!(error = %e, "the OTLP/gRPC listener failed");
            }
        }));
    }
    if let Some(l) = otlp_http_listener {
        let fut = http::serve(
            l,
            crate::ingest::otlp::http_router(otlp.clone()),
            http_tls,
            shutdown_rx.clone(),
        );
        otlp_tasks.push(tokio::spawn(async move {
            if let Err(e) = fut.await {
                tracing::error!(error = %e, "the OTLP/HTTP listener failed");
            }
        }));
    }

    let rollup = tokio::spawn(crate::api::rollup_job(
        store.clone(),
        cfg.api.rollup_interval,
        cfg.api.rollup_lag,
        clock.clone(),
    ));
    let retention = tokio::spawn(retention_job(
        store.clone(),
        (cfg.retention, cfg.rollup_retention),
        cfg.retention_interval,
        clock.clone(),
        cfg.auth.clone(),
    ));
    tracing::info!(%grpc_addr, %http_addr, otlp_grpc = ?otlp_grpc_addr, otlp_http = ?otlp_http_addr, tls = cfg.tls.cert.is_some(), mtls = cfg.tls.client_ca.is_some(), cluster = cluster.as_ref().map(|c| c.id.as_str()).unwrap_or("off"), "collector listening");
    Ok(Running {
        grpc_addr,
        http_addr,
        otlp_grpc_addr,
        otlp_http_addr,
        otlp: otlp_tasks,
        store,
        events,
        cluster,
        shutdown,
        cluster_stop,
        cluster_tasks,
        background,
        registration,
        grpc,
        http,
        retention,
        writer_tasks,
        engine,
        buckets,
        dispatcher: dispatcher_task,
        rollup,
        metrics,
    })
}

/// Runs `batch` (a delete of at most [`RETENTION_BATCH`] rows) until one comes back short;
/// logs what it deleted, or the failure (the next tick retries).
async fn prune_in_batches<F, Fut>(what: &'static str, mut batch: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<u64, llmscope_store::StoreError>>,
{
    let mut total = 0u64;
    loop {
        match batch().await {
            Ok(n) => {
                total += n;
                if n < RETENTION_BATCH as u64 {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, what, "retention failed; will retry");
                break;
            }
        }
    }
    if total > 0 {
        tracing::info!(rows = total, what, "retention: deleted expired rows");
    }
}

async fn retention_job(
    store: Store,
    (retention, rollup_retention): (Duration, Duration),
    every: Duration,
    clock: SharedClock,
    auth: crate::access::AuthConfig,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = clock.now_us();
        let cutoff = now - retention.as_micros() as i64;
        // the audit log keeps its own retention (90 days by default), whatever the samples'
        let audit_cutoff =
            now - i64::try_from(auth.audit_retention.as_micros()).unwrap_or(i64::MAX);
        prune_in_batches("audit entries", || {
            store.prune_audit(audit_cutoff, RETENTION_BATCH)
        })
        .await;
        let idle = now - i64::try_from(auth.session_idle.as_micros()).unwrap_or(i64::MAX);
        if let Err(e) = store.prune_sessions(now, idle).await {
            tracing::warn!(error = %e, "session clean-up failed; will retry");
        }
        // the API's minute rollups follow the same retention as the samples they summarise
        match store.prune_rollups(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "retention: deleted expired rollups"),
            Err(e) => tracing::warn!(error = %e, "rollup retention failed; will retry"),
        }
        // the hourly and daily rollups, usage and SLO minutes keep their own (400 days)
        let long_cutoff = now - i64::try_from(rollup_retention.as_micros()).unwrap_or(i64::MAX);
        match store.prune_long(long_cutoff, now).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "retention: pruned long-horizon rollups"),
            Err(e) => tracing::warn!(error = %e, "long-horizon retention failed; will retry"),
        }
        // so do the OTLP metrics' intervals (and streams not exported since)
        prune_in_batches("otlp intervals", || {
            store.prune_intervals(cutoff, RETENTION_BATCH)
        })
        .await;
        if store.timescale() {
            continue; // the TimescaleDB policy does the samples and telemetry
        }
        match store.delete_older_than(cutoff, RETENTION_BATCH).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "retention: deleted expired rows"),
            Err(e) => tracing::warn!(error = %e, "retention job failed; will retry"),
        }
    }
}

//! The LLMscope agent: runs on every inference host and is the only part that touches the
//! model servers.
//!
//! **Owns** probing, the timing proxy, host telemetry, the disk buffer and shipping to the
//! collector over the public gRPC contract (`llmscope-proto`).
//!
//! **Must not depend on** any server crate (`llmscope-model`, `-store`, `-live`, `-alert`,
//! the collector): it speaks to the collector only through the wire contract, as any custom
//! client does.
//!
//! # Layout
//! - [`config`]: the configuration (TOML file, environment, flags).
//! - [`probe`]: canary probes, one module per provider wire format, and the stream observer
//!   shared with the proxy.
//! - [`proxy`]: the timing reverse proxy for real traffic.
//! - [`simulated`]: the built-in simulated model endpoint (demos, quick start).
//! - [`telemetry`]: CPU/memory via sysinfo, GPUs via NVML.
//! - [`record`]: what is buffered and shipped.
//! - [`buffer`]: the durable disk buffer.
//! - [`ship`]: buffer writer and the collector stream with acks, reconnects and replay.
//! - [`metrics`], [`http`]: `/metrics` and `/healthz`.

pub mod buffer;
pub mod config;
pub mod discover;
pub mod http;
pub mod metrics;
pub mod probe;
pub mod proxy;
pub mod record;
pub mod scrape;
pub mod ship;
pub mod simulated;
pub mod telemetry;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmscope_proto::v1;
use rand::Rng;
use tokio::sync::{Notify, mpsc, watch};

use crate::buffer::{BufferConfig, DiskBuffer};
use crate::config::{AgentConfig, Provider, TargetConfig};
use crate::metrics::Metrics;
use crate::probe::Target;
use crate::record::{Record, SampleContext, now_ns, sample};

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// Bad configuration.
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    /// The disk buffer could not be opened.
    #[error("disk buffer: {0}")]
    Buffer(#[from] buffer::BufferError),
    /// A listener could not be bound.
    #[error("cannot listen: {0}")]
    Io(#[from] std::io::Error),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// Kubernetes discovery could not start.
    #[error("{0}")]
    Discover(#[from] discover::DiscoverError),
}

/// A running agent.
pub struct Running {
    /// The `/metrics` and `/healthz` address.
    pub http_addr: SocketAddr,
    /// Proxy listeners by name.
    pub proxies: Vec<(String, SocketAddr)>,
    /// The simulated endpoint, when started.
    pub simulated: Option<SocketAddr>,
    /// Probe targets in use.
    pub targets: Vec<String>,
    stop_sources: watch::Sender<bool>,
    stop_writer: watch::Sender<bool>,
    stop_ship: watch::Sender<bool>,
    sources: Vec<tokio::task::JoinHandle<()>>,
    proxy_tasks: Vec<tokio::task::JoinHandle<()>>,
    writer: tokio::task::JoinHandle<()>,
    shipper: tokio::task::JoinHandle<()>,
    syncer: tokio::task::JoinHandle<()>,
    buffer: ship::SharedBuffer,
}

impl Running {
    /// Graceful stop, in order: probes finish their current call and stop, the proxies stop
    /// accepting, every measurement still queued is written to the disk buffer, the shipper
    /// sends what it can within 10 s while connected, and the buffer is synced. What was not
    /// acked stays on disk and is replayed at the next start.
    pub async fn stop(self) {
        let _ = self.stop_sources.send(true);
        for t in self.sources {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
        for t in &self.proxy_tasks {
            t.abort();
        }
        let _ = self.stop_writer.send(true);
        let _ = self.writer.await;
        let _ = self.stop_ship.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.shipper).await;
        self.syncer.abort();
        let b = self.buffer.clone();
        let _ = tokio::task::spawn_blocking(move || ship::lock(&b).sync()).await;
    }
}

async fn answers(client: &reqwest::Client, url: &str) -> Option<serde_json::Value> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// URL of `host:port` (IPv6 addresses bracketed).
fn host_url(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// With `auto_targets` and no targets configured: the first model server answering on
/// `auto_hosts` — Ollama on `auto_ollama_ports` (`/api/tags`), else an OpenAI-compatible one
/// on `auto_openai_ports` (`/v1/models`) — as a probe target with its first model.
async fn auto_targets(client: &reqwest::Client, cfg: &AgentConfig) -> Option<TargetConfig> {
    // found servers' own metrics are read too: Ollama's /api/ps; for an OpenAI-compatible
    // server vLLM's /metrics (another server answers 404 there, and nothing is shipped)
    let base = |provider, name: String, base_url: String, model: String| TargetConfig {
        name,
        provider,
        base_url: Some(base_url),
        model,
        interval: Duration::from_secs(5),
        jitter: 0.1,
        timeout: Duration::from_secs(60),
        prompt: config::DEFAULT_PROMPT.into(),
        max_tokens: 16,
        api_key_env: None,
        api_key_file: None,
        server_metrics: Some(if provider == Provider::Ollama {
            scrape::ServerKind::Ollama
        } else {
            scrape::ServerKind::Vllm
        }),
        server_metrics_url: None,
    };
    for host in &cfg.auto_hosts {
        for port in &cfg.auto_ollama_ports {
            let url = host_url(host, *port);
            if let Some(tags) = answers(client, &format!("{url}/api/tags")).await
                && let Some(model) = tags.pointer("/models/0/name").and_then(|m| m.as_str())
            {
                tracing::info!(model, %url, "found ollama; probing it");
                return Some(base(
                    Provider::Ollama,
                    format!("ollama-{host}-{port}"),
                    url,
                    model.into(),
                ));
            }
        }
        for port in &cfg.auto_openai_ports {
            let url = host_url(host, *port);
            if let Some(models) = answers(client, &format!("{url}/v1/models")).await
                && let Some(model) = models.pointer("/data/0/id").and_then(|m| m.as_str())
            {
                tracing::info!(model, %url, "found an openai-compatible server; probing it");
                return Some(base(
                    Provider::OpenaiCompatible,
                    format!("openai-compatible-{host}-{port}"),
                    url,
                    model.into(),
                ));
            }
        }
    }
    None
}

/// Starts everything the configuration asks for.
pub async fn start(cfg: AgentConfig) -> Result<Running, AgentError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let host = cfg.host_name();
    let token = cfg.read_token()?;
    let read = |p: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, AgentError> {
        p.as_ref()
            .map(|p| {
                std::fs::read(p).map_err(|source| config::ConfigError::Read {
                    path: p.display().to_string(),
                    source,
                })
            })
            .transpose()
            .map_err(AgentError::from)
    };
    let ca_pem = read(&cfg.ca_cert)?;
    let identity = match (read(&cfg.client_cert)?, read(&cfg.client_key)?) {
        (Some(c), Some(k)) => Some((c, k)),
        _ => None,
    };
    let metrics = Metrics::new();
    let client = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .build()
        .map_err(|e| AgentError::Client(e.to_string()))?;

    // buffer
    let buf_cfg = BufferConfig {
        dir: cfg.data_dir.join("buffer"),
        max_bytes: cfg.buffer_max_bytes,
        // the cap drops whole segments: keep each a small fraction of it
        segment_bytes: (cfg.buffer_max_bytes / 8).clamp(64 << 10, 8 << 20),
    };
    let (disk, report) = tokio::task::spawn_blocking(move || DiskBuffer::open(buf_cfg))
        .await
        .map_err(|e| AgentError::Client(e.to_string()))??;
    tracing::info!(
        segments = report.segments,
        truncated_bytes = report.truncated_bytes,
        "disk buffer open"
    );
    let buffer = Arc::new(Mutex::new(disk));
    let notify = Arc::new(Notify::new());
    let (records_tx, records_rx) = mpsc::channel::<Record>(4096);
    let (stop_sources, sources_rx) = watch::channel(false);
    let (stop_writer, writer_rx) = watch::channel(false);
    let (stop_ship, ship_rx) = watch::channel(false);
    let mut sources = Vec::new();
    let writer = tokio::spawn(ship::buffer_writer(
        records_rx,
        buffer.clone(),
        notify.clone(),
        metrics.clone(),
        writer_rx,
    ));
    let syncer = tokio::spawn(ship::buffer_syncer(buffer.clone(), Duration::from_secs(1)));
    let shipper = tokio::spawn(ship::shipper(
        ship::ShipConfig {
            collector: cfg.collector.clone(),
            token,
            ca_pem,
            identity,
            batch_max: cfg.batch_max,
            window: cfg.ship_window,
        },
        buffer.clone(),
        notify.clone(),
        metrics.clone(),
        ship_rx,
    ));

    // targets, and the model servers whose own metrics are read
    let scrape_list: scrape::ScrapeList = Arc::default();
    let mut targets = cfg.targets.clone();
    let mut simulated = None;
    if cfg.kubernetes.discover {
        // the model servers are the pods found on this node: no looking on auto_hosts
        let kube = discover::client(&cfg.kubernetes).await?;
        let start_probe = discovered_prober(
            client.clone(),
            cfg.kubernetes.probe_interval,
            records_tx.clone(),
            metrics.clone(),
            cfg.site.clone(),
            host.clone(),
            scrape_list.clone(),
        );
        let (k, stop) = (cfg.kubernetes.clone(), sources_rx.clone());
        sources.push(tokio::spawn(async move {
            if let Err(e) = discover::follow(kube, k, start_probe, stop).await {
                tracing::error!(error = %e, "kubernetes discovery stopped");
            }
        }));
    } else if targets.is_empty() && cfg.auto_targets {
        match auto_targets(&client, &cfg).await {
            Some(t) => targets.push(t),
            None if !cfg.auto_simulated => {
                // in production nothing is invented: keep looking for a model server that
                // starts after the agent (a pod scheduled later on this node)
                tracing::info!(
                    hosts = ?cfg.auto_hosts,
                    "no model server answered; no probes yet (auto_simulated = false), looking again every auto_retry"
                );
                sources.push(tokio::spawn(look_for_targets(
                    client.clone(),
                    cfg.clone(),
                    scrape_list.clone(),
                    records_tx.clone(),
                    metrics.clone(),
                    host.clone(),
                    sources_rx.clone(),
                )));
            }
            None => {
                tracing::info!(
                    "no local model server answered; probing the built-in simulated provider"
                );
                targets.push(TargetConfig {
                    name: "simulated".into(),
                    provider: Provider::Simulated,
                    base_url: None,
                    model: cfg.simulated.model.clone(),
                    interval: Duration::from_secs(2),
                    jitter: 0.1,
                    timeout: Duration::from_secs(30),
                    prompt: config::DEFAULT_PROMPT.into(),
                    max_tokens: 16,
                    api_key_env: None,
                    api_key_file: None,
                    server_metrics: None,
                    server_metrics_url: None,
                });
            }
        }
    }
    if targets.iter().any(|t| t.provider == Provider::Simulated) {
        let addr = simulated::start(cfg.simulated.clone()).await?;
        tracing::info!(%addr, "simulated model endpoint listening (provider `simulated`)");
        simulated = Some(addr);
    }
    let mut names = Vec::new();
    for t in targets {
        let api_key = t.api_key()?;
        let base_url = match (t.provider, &t.base_url) {
            (Provider::Simulated, _) => format!(
                "http://{}",
                simulated.map(|a| a.to_string()).unwrap_or_default()
            ),
            (_, Some(u)) => u.trim_end_matches('/').to_owned(),
            (p, None) => p.default_base_url().to_owned(),
        };
        names.push(t.name.clone());
        if let Some(st) = t.scrape_target() {
            scrape_list
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(st);
        }
        let target = Target {
            cfg: t,
            base_url,
            api_key,
        };
        sources.push(tokio::spawn(probe_loop(
            client.clone(),
            target,
            records_tx.clone(),
            metrics.clone(),
            cfg.site.clone(),
            host.clone(),
            sources_rx.clone(),
        )));
    }

    // proxies
    let mut proxies = Vec::new();
    let mut proxy_tasks = Vec::new();
    for p in &cfg.proxies {
        let st = Arc::new(proxy::ProxyState {
            cfg: p.clone(),
            client: proxy::upstream_client(p.connect_timeout),
            records: records_tx.clone(),
            metrics: metrics.clone(),
            site: cfg.site.clone(),
            host: host.clone(),
        });
        let (addr, task) = proxy::start(st).await?;
        proxies.push((p.name.clone(), addr));
        proxy_tasks.push(task);
    }

    // telemetry
    sources.push(tokio::spawn(telemetry_loop(
        cfg.telemetry_interval,
        client.clone(),
        scrape_list,
        records_tx.clone(),
        metrics.clone(),
        cfg.site.clone(),
        host.clone(),
        sources_rx.clone(),
    )));
    drop(records_tx);

    let http_addr = http::start(cfg.http_listen, metrics.clone(), buffer.clone()).await?;
    tracing::info!(%http_addr, site = %cfg.site, %host, collector = %cfg.collector, "agent running");
    Ok(Running {
        http_addr,
        proxies,
        simulated,
        targets: names,
        stop_sources,
        stop_writer,
        stop_ship,
        sources,
        proxy_tasks,
        writer,
        shipper,
        syncer,
        buffer,
    })
}

/// How a discovered pod is probed: find its model (the annotation, else the first the server
/// lists, asked again every interval until the server answers), read its own metrics, probe
/// it until its sender is dropped.
fn discovered_prober(
    client: reqwest::Client,
    interval: Duration,
    records: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    site: String,
    host: String,
    scrape_list: scrape::ScrapeList,
) -> discover::StartProbe {
    Box::new(move |pod, mut stop| {
        let (client, records, metrics) = (client.clone(), records.clone(), metrics.clone());
        let (site, host, scrape_list) = (site.clone(), host.clone(), scrape_list.clone());
        tokio::spawn(async move {
            let model = loop {
                if let Some(m) = &pod.model {
                    break m.clone();
                }
                let listed = match pod.provider {
                    Provider::Ollama => answers(&client, &format!("{}/api/tags", pod.base_url))
                        .await
                        .and_then(|v| {
                            v.pointer("/models/0/name")
                                .and_then(|m| m.as_str())
                                .map(str::to_owned)
                        }),
                    _ => answers(&client, &format!("{}/v1/models", pod.base_url))
                        .await
                        .and_then(|v| {
                            v.pointer("/data/0/id")
                                .and_then(|m| m.as_str())
                                .map(str::to_owned)
                        }),
                };
                if let Some(m) = listed {
                    break m;
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
            };
            let cfg = pod.config(model, interval);
            let scraped = cfg.scrape_target();
            if let Some(st) = &scraped {
                scrape_list
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(st.clone());
            }
            let target = Target {
                base_url: pod.base_url.clone(),
                cfg,
                api_key: None,
            };
            probe_loop(client, target, records, metrics, site, host, stop).await;
            if let Some(st) = scraped {
                scrape_list
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|x| *x != st);
            }
        });
    })
}

/// Looks for a model server every `auto_retry` until one answers, then probes it.
async fn look_for_targets(
    client: reqwest::Client,
    cfg: AgentConfig,
    scrape_list: scrape::ScrapeList,
    records: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    host: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(cfg.auto_retry) => {}
            _ = stop.changed() => return,
        }
        if let Some(t) = auto_targets(&client, &cfg).await {
            let base_url = t.base_url.clone().unwrap_or_default();
            if let Some(st) = t.scrape_target() {
                scrape_list
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(st);
            }
            let target = Target {
                cfg: t,
                base_url,
                api_key: None,
            };
            probe_loop(
                client,
                target,
                records,
                metrics,
                cfg.site.clone(),
                host,
                stop,
            )
            .await;
            return;
        }
    }
}

async fn probe_loop(
    client: reqwest::Client,
    target: Target,
    records: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    site: String,
    host: String,
    mut stop: watch::Receiver<bool>,
) {
    let interval = target.cfg.interval;
    let jitter = target.cfg.jitter;
    // spread the first probes of many targets
    let first = interval.mul_f64(rand::rng().random_range(0.0..=jitter.max(0.01)));
    tokio::select! {
        _ = tokio::time::sleep(first) => {}
        _ = stop.wait_for(|s| *s) => return,
    }
    loop {
        let ts = now_ns();
        let outcome = probe::probe_once(&client, &target).await;
        let provider = target.cfg.provider.as_str();
        metrics.observe_call(
            &target.cfg.name,
            "probe",
            provider,
            &target.cfg.model,
            &outcome,
        );
        if outcome.status != probe::CallStatus::Ok {
            tracing::debug!(target = %target.cfg.name, error = %outcome.error, "probe failed");
        }
        let ctx = SampleContext {
            site: &site,
            host: &host,
            provider,
            model: &target.cfg.model,
            source: v1::Source::Probe,
            target: &target.cfg.name,
        };
        if records
            .send(Record::Sample(sample(&ctx, ts, &outcome)))
            .await
            .is_err()
        {
            return;
        }
        let factor = 1.0 + rand::rng().random_range(-jitter..=jitter);
        tokio::select! {
            _ = tokio::time::sleep(interval.mul_f64(factor.max(0.0))) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn telemetry_loop(
    every: Duration,
    client: reqwest::Client,
    scrape_list: scrape::ScrapeList,
    records: mpsc::Sender<Record>,
    metrics: Arc<Metrics>,
    site: String,
    host: String,
    mut stop: watch::Receiver<bool>,
) {
    let sampler = Arc::new(Mutex::new(None::<telemetry::Sampler>));
    let mut scraper = scrape::Scraper::new();
    // a model server's metrics page must not hold up the host snapshot for long
    let scrape_timeout = every.clamp(Duration::from_millis(100), Duration::from_secs(2));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let s = sampler.clone();
        let (site2, host2) = (site.clone(), host.clone());
        let snap = tokio::task::spawn_blocking(move || {
            let mut guard = s.lock().unwrap_or_else(|p| p.into_inner());
            let sm = guard.get_or_insert_with(telemetry::Sampler::new);
            sm.sample_with_gpus(&site2, &host2)
        })
        .await;
        let servers = scrape_list
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let server_metrics = if servers.is_empty() {
            Vec::new()
        } else {
            scraper.scrape(&client, &servers, scrape_timeout).await
        };
        match snap {
            Ok((mut t, gpus)) => {
                t.server_metrics = server_metrics;
                metrics.telemetry.inc();
                metrics.set_gpus(&host, &gpus);
                if records.send(Record::Telemetry(t)).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::warn!(error = %e, "telemetry sampling failed"),
        }
    }
}

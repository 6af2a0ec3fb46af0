//! Connecting to NATS and setting up what this installation keeps there: the stream, its
//! consumers and the KV buckets. Every replica does this at start, idempotently, before it
//! accepts ingest (the stream keeps a message only while some consumer still needs it, so
//! the consumers must exist first).

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{Client, ConnectOptions};

use crate::config::{ClusterConfig, redact};
use crate::names::Names;

/// How long a JetStream request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the storage consumer's messages wait for an ack before redelivery.
pub const STORE_ACK_WAIT: Duration = Duration::from_secs(30);
/// How long a partition consumer's messages wait for an ack before redelivery.
pub const SPC_ACK_WAIT: Duration = Duration::from_secs(60);
/// Deduplication window of the stream (a batch resent within it is dropped by JetStream).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Why cluster mode could not start or an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// NATS cannot be reached.
    #[error("cannot reach NATS at {url}: {why}")]
    Connect {
        /// The URL(s), redacted.
        url: String,
        /// Why.
        why: String,
    },
    /// The server runs without JetStream.
    #[error(
        "NATS at {url} answers no JetStream request ({why}): start nats-server with -js (or `jetstream {{}}` in its configuration)"
    )]
    NoJetStream {
        /// The URL(s), redacted.
        url: String,
        /// What the request answered.
        why: String,
    },
    /// Replicas disagree on a setting that must be the same everywhere.
    #[error("{0}")]
    Mismatch(String),
    /// A JetStream operation failed.
    #[error("nats jetstream: {0}")]
    JetStream(String),
}

impl ClusterError {
    pub(crate) fn js(what: &str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream(format!("{what}: {e}"))
    }
}

/// A connection to NATS with this installation's stream, consumers and buckets set up.
#[derive(Clone)]
pub struct Nats {
    /// The client.
    pub client: Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// The names under the prefix.
    pub names: Names,
    /// Partitions of the log.
    pub partitions: u16,
    /// Members and leases (entries live `lease_ttl`).
    pub cluster_kv: kv::Store,
    /// Channel rate limits.
    pub rates_kv: kv::Store,
    /// The configuration.
    pub cfg: ClusterConfig,
}

async fn options(cfg: &ClusterConfig, name: &str) -> Result<ConnectOptions, ClusterError> {
    let url = redact(cfg.nats_url.as_deref().unwrap_or_default());
    let mut o = match &cfg.credentials_file {
        Some(p) => ConnectOptions::with_credentials_file(p.clone())
            .await
            .map_err(|e| ClusterError::Connect {
                url: url.clone(),
                why: format!(
                    "`cluster.credentials_file` {} cannot be read: {e}",
                    p.display()
                ),
            })?,
        None => ConnectOptions::new(),
    };
    if let (Some(u), Some(p)) = (&cfg.user, &cfg.password) {
        o = o.user_and_password(u.clone(), p.0.clone());
    }
    if let Some(t) = &cfg.token {
        o = o.token(t.0.clone());
    }
    if let Some(ca) = &cfg.tls_ca {
        o = o.add_root_certificates(ca.clone());
    }
    if let (Some(c), Some(k)) = (&cfg.tls_cert, &cfg.tls_key) {
        o = o.add_client_certificate(c.clone(), k.clone());
    }
    Ok(o.require_tls(cfg.require_tls)
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        // reconnect forever, at most 2 s apart: a NATS restart is a short outage
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        })
        .event_callback(|e| async move {
            match e {
                async_nats::Event::Connected => tracing::info!("nats: connected"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("nats: disconnected; reconnecting")
                }
                other => tracing::debug!(event = %other, "nats event"),
            }
        }))
}

/// Connects, retrying until `cluster.connect_timeout`.
pub async fn connect_client(cfg: &ClusterConfig, name: &str) -> Result<Client, ClusterError> {
    let url = redact(cfg.nats_url.as_deref().unwrap_or_default());
    let deadline = tokio::time::Instant::now() + cfg.connect_timeout;
    let mut wait = Duration::from_millis(200);
    loop {
        let o = options(cfg, name).await?;
        match o.connect(cfg.urls()).await {
            Ok(c) => return Ok(c),
            Err(e) if tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(url = %url, error = %e, "nats not reachable yet; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(3));
            }
            Err(e) => {
                return Err(ClusterError::Connect {
                    url,
                    why: format!(
                        "{e} (gave up after `cluster.connect_timeout` = {})",
                        humantime::format_duration(cfg.connect_timeout)
                    ),
                });
            }
        }
    }
}

impl Nats {
    /// Connects and sets everything up; `spc` says whether this replica judges partitions
    /// (the partition consumers are created only then).
    pub async fn connect(cfg: &ClusterConfig, name: &str, spc: bool) -> Result<Nats, ClusterError> {
        let url = redact(cfg.nats_url.as_deref().unwrap_or_default());
        let client = connect_client(cfg, name).await?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        if !client.server_info().jetstream {
            return Err(ClusterError::NoJetStream {
                url,
                why: "the server's INFO says jetstream is off".into(),
            });
        }
        let names = Names::new(&cfg.nats_prefix);
        let replicas = match cfg.stream_replicas {
            0 if client.server_info().cluster.is_some() => 3,
            0 => 1,
            n => n,
        };
        let meta = bucket(
            &js,
            &names.meta_bucket(),
            "LLMscope: settings every replica must agree on",
            Duration::ZERO,
            replicas,
        )
        .await?;
        agree_on_partitions(&meta, &names, cfg.partitions).await?;
        let stream = js
            .get_or_create_stream(stream::Config {
                name: names.stream(),
                description: Some(
                    "LLMscope: accepted ingest batches, partitioned by model and host".into(),
                ),
                subjects: names.subjects(),
                // a message stays until the storage consumer and its partition's consumer
                // both took it; a full log refuses new batches (ingest answers UNAVAILABLE)
                retention: stream::RetentionPolicy::Interest,
                discard: stream::DiscardPolicy::New,
                max_bytes: cfg.log_max_bytes,
                storage: stream::StorageType::File,
                num_replicas: replicas,
                duplicate_window: DUPLICATE_WINDOW,
                ..Default::default()
            })
            .await
            .map_err(|e| ClusterError::js("stream", e))?;
        stream
            .get_or_create_consumer(
                &names.store_consumer(),
                consumer::pull::Config {
                    durable_name: Some(names.store_consumer()),
                    description: Some("LLMscope: writes every batch to the database".into()),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: STORE_ACK_WAIT,
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ClusterError::js("storage consumer", e))?;
        if spc {
            for p in 0..cfg.partitions {
                stream
                    .get_or_create_consumer(&names.spc_consumer(p), spc_consumer_config(&names, p))
                    .await
                    .map_err(|e| ClusterError::js("partition consumer", e))?;
            }
        } else {
            // nobody would take these messages: the log would keep them and fill up
            let mut removed = 0;
            for p in 0..cfg.partitions {
                if stream.delete_consumer(&names.spc_consumer(p)).await.is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::warn!(
                    removed,
                    "cluster: spc.enabled = false: removed the partition consumers (replicas judging partitions must all have spc.enabled = true; they recreate them at start)"
                );
            }
        }
        let cluster_kv = bucket(
            &js,
            &names.cluster_bucket(),
            "LLMscope: live replicas and partition leases",
            cfg.lease_ttl,
            replicas,
        )
        .await?;
        let rates_kv = bucket(
            &js,
            &names.rates_bucket(),
            "LLMscope: when each rate-limited alert channel may send next",
            Duration::ZERO,
            replicas,
        )
        .await?;
        tracing::info!(url = %url, prefix = %cfg.nats_prefix, partitions = cfg.partitions, stream_replicas = replicas, "cluster mode: nats jetstream ready");
        Ok(Nats {
            client,
            js,
            names,
            partitions: cfg.partitions,
            cluster_kv,
            rates_kv,
            cfg: cfg.clone(),
        })
    }

    /// The stream.
    pub async fn stream(&self) -> Result<stream::Stream, ClusterError> {
        self.js
            .get_stream(self.names.stream())
            .await
            .map_err(|e| ClusterError::js("stream", e))
    }

    /// Whether the client is connected now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Deletes the stream and every bucket of the installation `prefix` on the NATS at `url`
/// (tests; retiring a `cluster.nats_prefix`). What does not exist is skipped.
pub async fn delete_installation(url: &str, prefix: &str) -> Result<(), ClusterError> {
    let client = async_nats::connect(url)
        .await
        .map_err(|e| ClusterError::Connect {
            url: redact(url),
            why: e.to_string(),
        })?;
    let js = jetstream::new(client);
    let names = Names::new(prefix);
    let _ = js.delete_stream(names.stream()).await;
    for b in [
        names.cluster_bucket(),
        names.meta_bucket(),
        names.rates_bucket(),
    ] {
        let _ = js.delete_stream(format!("KV_{b}")).await;
    }
    Ok(())
}

/// A KV bucket (history 1, entries living `max_age`; zero: forever), created the way the
/// KV API creates one, without its account-information request: async-nats reads fields
/// into that answer that NATS 2.9 does not send.
async fn bucket(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    max_age: Duration,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    let what = format!("bucket {name}");
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{name}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| ClusterError::js(&what, e))?;
    js.get_key_value(name)
        .await
        .map_err(|e| ClusterError::js(&what, e))
}

/// The partition consumer's configuration.
pub fn spc_consumer_config(names: &Names, p: u16) -> consumer::pull::Config {
    consumer::pull::Config {
        durable_name: Some(names.spc_consumer(p)),
        description: Some(format!("LLMscope: partition {p}, read by its owner")),
        filter_subject: names.samples(p),
        // read in order by one owner; acknowledging a message acknowledges all before it
        ack_policy: consumer::AckPolicy::All,
        ack_wait: SPC_ACK_WAIT,
        max_ack_pending: 100_000,
        ..Default::default()
    }
}

async fn agree_on_partitions(meta: &kv::Store, names: &Names, n: u16) -> Result<(), ClusterError> {
    let mismatch = |have: &str| {
        ClusterError::Mismatch(format!(
            "the cluster log `{}` has {have} partitions and this replica is configured with {n} (`cluster.partitions`): use the same value on every replica, or another `cluster.nats_prefix`",
            names.prefix()
        ))
    };
    for _ in 0..3 {
        match meta.get("partitions").await {
            Ok(Some(v)) => {
                let have = String::from_utf8_lossy(&v).to_string();
                return if have == n.to_string() {
                    Ok(())
                } else {
                    Err(mismatch(&have))
                };
            }
            Ok(None) => {
                if meta
                    .create("partitions", n.to_string().into_bytes().into())
                    .await
                    .is_ok()
                {
                    return Ok(());
                }
                // another replica created it first: read it again
            }
            Err(e) => return Err(ClusterError::js("meta bucket", e)),
        }
    }
    Err(ClusterError::JetStream(
        "cannot read or write the partition count in the meta bucket".into(),
    ))
}

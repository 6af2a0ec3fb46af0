//! Cluster mode: several collector replicas on one database, coordinated through NATS
//! JetStream (ARCHITECTURE §7).
//!
//! **Owns** everything the replicas share through NATS: the partitioned ingest log (stream
//! `<prefix>-ingest`, subjects `<prefix>.samples.<p>` and `<prefix>.telemetry.<p>`), the
//! storage consumer shared by all replicas, one consumer per partition read by its owner,
//! membership and partition leases (KV `<prefix>-cluster`), the partition count every
//! replica must agree on (KV `<prefix>-meta`), channel rate limits (KV `<prefix>-rates`) and
//! live events for dashboards (`<prefix>.events`).
//!
//! **Must not depend on** the collector: it is handed a [`storage::BatchSink`] (the
//! collector's database writer) and an [`llmscope_live::EngineHandle`].
//!
//! Guarantees:
//! - Ingest acknowledges a batch only after JetStream stored every part of it ([`publish`]);
//!   a batch resent within two minutes is dropped as a duplicate, later resends are stored
//!   idempotently (sample ids) and judged once (the engine skips points at or before the
//!   newest judged one).
//! - Every message is written to the database by exactly one replica at a time and
//!   acknowledged after the commit ([`storage`]); nothing leaves the log before it is stored
//!   and judged (interest retention).
//! - Each partition is judged by one replica at a time, in log order, exactly once per
//!   tenure; a new owner first stores what its predecessor judged, then judges what its
//!   predecessor received but did not acknowledge ([`partition`], [`coordinator`]).
//!
//! # Layout
//! - [`config`]: the `[cluster]` section.
//! - [`names`]: names under the prefix; [`names::partition_of`].
//! - [`codec`]: the log's messages (`proto/llmscope/cluster/v1/log.proto`).
//! - [`connect`]: connecting and setting up the stream, consumers and buckets.
//! - [`publish`]: appending accepted batches.
//! - [`storage`]: the storage consumer.
//! - [`assign`]: which replica should own which partition.
//! - [`coordinator`]: membership, leases, handing partitions over.
//! - [`partition`]: judging one owned partition.
//! - [`events`]: live events across replicas.
//! - [`rate`]: channel rate limits across replicas.

pub mod assign;
pub mod codec;
pub mod config;
pub mod connect;
pub mod coordinator;
pub mod events;
pub mod names;
pub mod partition;
pub mod publish;
pub mod rate;
pub mod storage;

use std::sync::Arc;

pub use config::ClusterConfig;
pub use connect::{ClusterError, Nats};
pub use coordinator::{Member, Ownership, Snapshot};
pub use events::{EventBus, Frame};
pub use partition::PartitionStats;
pub use publish::{AppendError, Publisher};
pub use storage::{BatchSink, StorageStats};

use llmscope_live::EngineHandle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A replica's membership in the cluster.
#[derive(Clone)]
pub struct Cluster {
    /// NATS with everything set up.
    pub nats: Nats,
    /// This replica's id.
    pub id: String,
    /// The partitions it owns.
    pub ownership: Arc<Ownership>,
    /// Partition runners' counters.
    pub partition_stats: Arc<PartitionStats>,
    /// The storage consumer's counters.
    pub storage_stats: Arc<StorageStats>,
}

/// This replica's id: `cluster.replica_id`, else the host name (letters, digits, `-`, `_`)
/// and a random suffix.
pub fn replica_id(cfg: &ClusterConfig) -> String {
    if let Some(id) = &cfg.replica_id {
        return id.clone();
    }
    let host: String = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "collector".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(24)
        .collect();
    format!("{host}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

impl Cluster {
    /// Connects and sets up; `spc` says whether this replica judges partitions.
    pub async fn start(cfg: &ClusterConfig, spc: bool) -> Result<Cluster, ClusterError> {
        let id = replica_id(cfg);
        let nats = Nats::connect(cfg, &format!("llmscope-collector {id}"), spc).await?;
        Ok(Cluster {
            ownership: Arc::new(Ownership::new(nats.partitions)),
            nats,
            id,
            partition_stats: Arc::default(),
            storage_stats: Arc::default(),
        })
    }

    /// Appends accepted batches.
    pub fn publisher(&self) -> Publisher {
        Publisher::new(self.nats.clone())
    }

    /// Runs the storage consumer until `stop`.
    pub fn spawn_storage(
        &self,
        sink: Arc<dyn BatchSink>,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(storage::run(
            self.nats.clone(),
            sink,
            self.storage_stats.clone(),
            stop,
        ))
    }

    /// Runs membership and the owned partitions until `stop`, then hands them back.
    pub fn spawn_coordinator(
        &self,
        engine: EngineHandle,
        sink: Arc<dyn BatchSink>,
        me: Member,
        stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        let ctx = partition::RunnerCtx {
            nats: self.nats.clone(),
            engine,
            sink,
            stats: self.partition_stats.clone(),
        };
        tokio::spawn(coordinator::Coordinator::new(ctx, me, self.ownership.clone()).run(stop))
    }

    /// Live events across replicas.
    pub fn events(&self) -> EventBus {
        EventBus::new(self.nats.clone(), &self.id)
    }

    /// Channel rate limits across replicas.
    pub fn rate_gate(&self) -> Arc<dyn llmscope_alert::RateGate> {
        Arc::new(rate::KvRateGate::new(self.nats.clone()))
    }

    /// Members and owners, read from NATS.
    pub async fn snapshot(&self) -> Result<Snapshot, String> {
        coordinator::snapshot(&self.nats).await
    }
}

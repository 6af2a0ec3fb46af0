//! This process as a replica on its database: registered with a heartbeat (table
//! `replicas`), so that a second collector on the same database can tell it is not alone.
//! Without cluster mode a second live replica would judge half of every series with its own
//! state (detection silently lost), so it refuses to start, naming `cluster.nats_url`.
//! A replica that died leaves a row that stops counting as live after [`STALE_AFTER`]; a
//! restart on the same host is recognised by the old process being gone.

use std::net::SocketAddr;
use std::time::Duration;

use llmscope_store::replicas::ReplicaRow;
use llmscope_store::{Store, StoreError};
use tokio::task::JoinHandle;

/// How often the heartbeat is written.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A replica whose heartbeat is older than this is not live.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

/// Why this replica may not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// Another live replica without (or in another) cluster.
    #[error("{0}")]
    Refused(String),
    /// The database failed.
    #[error("{0}")]
    Store(#[from] StoreError),
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn host_name() -> String {
    hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether process `pid` of this host is still running (Linux: `/proc/<pid>`).
fn alive(pid: i64) -> bool {
    if pid <= 0 {
        return false;
    }
    let proc_dir = std::path::Path::new("/proc");
    if !proc_dir.join("self").exists() {
        return true; // cannot tell: assume it runs
    }
    proc_dir.join(pid.to_string()).exists()
}

/// Whether `r` is a live replica other than this process.
fn is_other_live(r: &ReplicaRow, me: &ReplicaRow) -> bool {
    if r.id == me.id {
        return false;
    }
    if r.host == me.host {
        // this very process (started twice in one process: tests) or a dead one of this host
        if r.pid == me.pid || !alive(r.pid) {
            return false;
        }
    }
    true
}

/// A registered replica.
pub struct Registration {
    store: Store,
    id: String,
    heartbeat: JoinHandle<()>,
}

/// Registers this process, refusing to run next to another live replica unless both are in
/// the same cluster (`cluster`: its NATS prefix in cluster mode).
pub async fn register(
    store: &Store,
    grpc: SocketAddr,
    http: SocketAddr,
    cluster: Option<&str>,
    now_us: i64,
) -> Result<Registration, ReplicaError> {
    let host = host_name();
    let pid = i64::from(std::process::id());
    let me = ReplicaRow {
        id: format!("{host}/{pid}/{grpc}/{http}"),
        host,
        pid,
        grpc: grpc.to_string(),
        http: http.to_string(),
        cluster: cluster.map(str::to_owned),
        started_at: now_us,
        seen_at: now_us,
    };
    // register first, then look: of two replicas starting together, at least one sees the
    // other
    store.register_replica(&me).await?;
    let live = store.replicas_seen_since(now_us - us(STALE_AFTER)).await?;
    let conflict = live
        .iter()
        .find(|r| is_other_live(r, &me) && (cluster.is_none() || r.cluster.as_deref() != cluster));
    if let Some(other) = conflict {
        let _ = store.remove_replica(&me.id, i64::MIN).await;
        let age_s = (now_us - other.seen_at).max(0) as f64 / 1e6;
        let what = match (cluster, other.cluster.as_deref()) {
            (None, _) => "set `cluster.nats_url` (--nats-url, LLMSCOPE_NATS_URL) on every replica to run more than one collector on one database, or stop the other one. Without cluster mode two collectors would each judge part of every series and miss changes".to_owned(),
            (Some(_), None) => "it runs without cluster mode: restart it with the same `cluster.nats_url` (--nats-url, LLMSCOPE_NATS_URL), or stop it; it would judge every series a second time with its own state".to_owned(),
            (Some(mine), Some(theirs)) => format!("it belongs to the cluster `{theirs}` and this one to `{mine}` (`cluster.nats_prefix`): the replicas of one database share one prefix, or two clusters would each judge part of every series"),
        };
        return Err(ReplicaError::Refused(format!(
            "another collector is running on this database (host {}, pid {}, http {}, heartbeat {age_s:.1} s ago); {what}",
            other.host, other.pid, other.http
        )));
    }
    let id = me.id.clone();
    let (s, beat_id) = (store.clone(), me.id.clone());
    let heartbeat = tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let now = llmscope_model::now_us();
            match s.touch_replica(&beat_id, now).await {
                Ok(true) => {}
                Ok(false) => {
                    let row = ReplicaRow {
                        seen_at: now,
                        ..me.clone()
                    };
                    if let Err(e) = s.register_replica(&row).await {
                        tracing::warn!(error = %e, "replica heartbeat: cannot register again");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "replica heartbeat failed; will retry"),
            }
        }
    });
    Ok(Registration {
        store: store.clone(),
        id,
        heartbeat,
    })
}

impl Registration {
    /// Stops the heartbeat and removes this replica (and long-dead ones).
    pub async fn remove(self) {
        self.heartbeat.abort();
        let stale = llmscope_model::now_us() - us(STALE_AFTER) * 40;
        if let Err(e) = self.store.remove_replica(&self.id, stale).await {
            tracing::debug!(error = %e, "replica row not removed; it goes stale");
        }
    }

    /// This replica's id in the table.
    pub fn id(&self) -> &str {
        &self.id
    }
}

//! Membership and partition ownership, through the cluster KV bucket (entries live
//! `lease_ttl` after their last write; NATS 2.9 has no per-key TTL, so the bucket's
//! `max_age` is the TTL):
//! - every replica writes `member.<id>` every tick (1 s);
//! - the live members (sorted) decide every partition's desired owner ([`crate::assign`]);
//! - a replica takes a free partition it should own by creating `lease.<p>` (compare-and-set
//!   on "no such key"), renews its leases every `lease_ttl`/3 with compare-and-set on the
//!   revision, and hands a partition another live replica should own back (stops judging it,
//!   acknowledges what it judged, deletes the lease at its revision);
//! - a replica that cannot renew a lease for `lease_ttl` − 1.5 s stops judging it before the
//!   entry expires (self-fencing), so two replicas never judge one partition at once;
//! - when a replica dies, its member and lease entries expire after `lease_ttl` and the
//!   others take its partitions at their next tick.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use llmscope_live::HostFilter;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::assign::assign;
use crate::connect::Nats;
use crate::names::{lease_key, member_key, partition_of};
use crate::partition::{self, RunnerCtx};

/// How often membership and leases are looked at.
pub const TICK: Duration = Duration::from_secs(1);

/// What a replica says about itself in its member entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Replica id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Its HTTP address.
    pub http: String,
    /// Its gRPC address.
    pub grpc: String,
    /// When it started, Unix ms.
    pub started_ms: i64,
}

/// The partitions this replica owns now (read by the engine's silence check and `/metrics`).
#[derive(Debug)]
pub struct Ownership {
    owned: Vec<AtomicBool>,
}

impl Ownership {
    /// Nothing owned yet.
    pub fn new(partitions: u16) -> Ownership {
        Ownership {
            owned: (0..partitions).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Partitions.
    pub fn partitions(&self) -> u16 {
        self.owned.len() as u16
    }

    /// Whether partition `p` is owned.
    pub fn owns_partition(&self, p: u16) -> bool {
        self.owned
            .get(usize::from(p))
            .is_some_and(|b| b.load(Ordering::Relaxed))
    }

    /// Whether the model-host is in an owned partition.
    pub fn owns(&self, site: &str, host: &str, provider: &str, model: &str) -> bool {
        self.owns_partition(partition_of(site, host, provider, model, self.partitions()))
    }

    /// The owned partitions.
    pub fn owned(&self) -> Vec<u16> {
        (0..self.partitions())
            .filter(|p| self.owns_partition(*p))
            .collect()
    }

    fn set(&self, p: u16, v: bool) {
        if let Some(b) = self.owned.get(usize::from(p)) {
            b.store(v, Ordering::Relaxed);
        }
    }

    /// A filter selecting the model-hosts of partition `p`.
    pub fn filter_of(&self, p: u16) -> HostFilter {
        let n = self.partitions();
        Arc::new(move |s: &str, h: &str, pr: &str, m: &str| partition_of(s, h, pr, m, n) == p)
    }
}

struct Held {
    revision: u64,
    renewed: Instant,
    stop: watch::Sender<bool>,
    fenced: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// The coordinator of one replica.
pub struct Coordinator {
    ctx: RunnerCtx,
    me: Member,
    ownership: Arc<Ownership>,
    held: BTreeMap<u16, Held>,
    ttl: Duration,
    /// Members seen live at the last tick.
    known: BTreeSet<String>,
}

impl Coordinator {
    /// A coordinator for replica `me`.
    pub fn new(ctx: RunnerCtx, me: Member, ownership: Arc<Ownership>) -> Coordinator {
        let ttl = ctx.nats.cfg.lease_ttl;
        Coordinator {
            ctx,
            me,
            ownership,
            held: BTreeMap::new(),
            ttl,
            known: BTreeSet::new(),
        }
    }

    /// Runs until `stop` turns true, then hands every partition back.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            if let Err(e) = self.tick().await {
                tracing::warn!(error = %e, "cluster: membership or lease update failed; will retry");
            }
            self.fence();
        }
        let all: Vec<u16> = self.held.keys().copied().collect();
        for p in all {
            self.release(p).await;
        }
        let _ = self
            .ctx
            .nats
            .cluster_kv
            .delete(member_key(&self.me.id))
            .await;
        tracing::info!(replica = %self.me.id, "cluster: left; partitions handed back");
    }

    /// Stops judging partitions whose lease could not be renewed in time.
    fn fence(&mut self) {
        let limit = self.ttl.saturating_sub(Duration::from_millis(1_500));
        let stale: Vec<u16> = self
            .held
            .iter()
            .filter(|(_, h)| h.renewed.elapsed() > limit)
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            tracing::warn!(
                partition = p,
                "cluster: lease not renewed in time; stopped judging the partition"
            );
            self.lost(p);
        }
    }

    fn lost(&mut self, p: u16) {
        if let Some(h) = self.held.remove(&p) {
            h.fenced.store(true, Ordering::SeqCst);
            let _ = h.stop.send(true);
            self.ownership.set(p, false);
            let engine = self.ctx.engine.clone();
            let filter = self.ownership.filter_of(p);
            tokio::spawn(async move {
                let _ = h.task.await;
                let _ = engine.forget(filter).await;
            });
        }
    }

    async fn tick(&mut self) -> Result<(), String> {
        let kv = self.ctx.nats.cluster_kv.clone();
        let me = serde_json::to_vec(&self.me).map_err(|e| e.to_string())?;
        kv.put(member_key(&self.me.id), me.into())
            .await
            .map_err(|e| format!("member entry: {e}"))?;
        let members = confirmed_members(&self.ctx.nats, &self.known).await?;
        self.known = members.clone();
        if !members.contains(&self.me.id) {
            return Err("own member entry not visible yet".into());
        }
        let ids: Vec<String> = members.iter().cloned().collect();
        let desired: Vec<bool> = assign(&ids, self.ctx.nats.partitions)
            .into_iter()
            .map(|o| o.is_some_and(|i| ids[i] == self.me.id))
            .collect();
        let mine = |p: u16| desired.get(usize::from(p)).copied().unwrap_or(false);
        // hand back what another live replica should own; renew the rest
        let held: Vec<u16> = self.held.keys().copied().collect();
        for p in held {
            if !mine(p) {
                self.release(p).await;
                continue;
            }
            let due = self
                .held
                .get(&p)
                .is_some_and(|h| h.renewed.elapsed() >= self.ttl / 3);
            if !due {
                continue;
            }
            let rev = self.held.get(&p).map_or(0, |h| h.revision);
            match kv
                .update(lease_key(p), self.me.id.clone().into_bytes().into(), rev)
                .await
            {
                Ok(r) => {
                    if let Some(h) = self.held.get_mut(&p) {
                        h.revision = r;
                        h.renewed = Instant::now();
                    }
                }
                Err(e)
                    if e.kind()
                        == async_nats::jetstream::kv::UpdateErrorKind::WrongLastRevision =>
                {
                    tracing::warn!(
                        partition = p,
                        "cluster: lease taken by another replica; stopped judging the partition"
                    );
                    self.lost(p);
                }
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "cluster: lease renewal failed; will retry")
                }
            }
        }
        // take free partitions this replica should own
        for p in 0..self.ctx.nats.partitions {
            if !mine(p) || self.held.contains_key(&p) {
                continue;
            }
            match kv
                .create(lease_key(p), self.me.id.clone().into_bytes().into())
                .await
            {
                Ok(rev) => self.acquire(p, rev).await,
                Err(e) if e.kind() == async_nats::jetstream::kv::CreateErrorKind::AlreadyExists => {
                }
                Err(e) => {
                    tracing::debug!(partition = p, error = %e, "cluster: lease not taken; will retry")
                }
            }
        }
        Ok(())
    }

    async fn acquire(&mut self, p: u16, revision: u64) {
        let (stop, stop_rx) = watch::channel(false);
        let fenced = Arc::new(AtomicBool::new(false));
        let (ctx, filter, f) = (
            self.ctx.clone(),
            self.ownership.filter_of(p),
            fenced.clone(),
        );
        let task = tokio::spawn(async move {
            // a partition owned before and lost meanwhile must not keep its old series
            // state (in the runner: taking many partitions at once waits on no engine)
            let _ = ctx.engine.forget(filter).await;
            partition::run(ctx, p, stop_rx, f).await
        });
        self.ownership.set(p, true);
        self.held.insert(
            p,
            Held {
                revision,
                renewed: Instant::now(),
                stop,
                fenced,
                task,
            },
        );
        tracing::info!(partition = p, replica = %self.me.id, "cluster: partition taken");
    }

    /// Hands `p` back: stops its runner (which acknowledges what it judged), forgets its
    /// series and deletes the lease at its revision.
    async fn release(&mut self, p: u16) {
        let Some(h) = self.held.remove(&p) else {
            return;
        };
        let _ = h.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), h.task).await;
        self.ownership.set(p, false);
        // the next owner may start now; this engine drops the partition's state meanwhile
        let (engine, filter) = (self.ctx.engine.clone(), self.ownership.filter_of(p));
        tokio::spawn(async move {
            let _ = engine.forget(filter).await;
        });
        if let Err(e) = self
            .ctx
            .nats
            .cluster_kv
            .delete_expect_revision(lease_key(p), Some(h.revision))
            .await
        {
            tracing::debug!(partition = p, error = %e, "cluster: lease not deleted; it expires");
        }
        tracing::info!(partition = p, replica = %self.me.id, "cluster: partition handed back");
    }
}

/// The ids of the live members.
pub async fn live_members(nats: &Nats) -> Result<BTreeSet<String>, String> {
    let mut keys = nats
        .cluster_kv
        .keys()
        .await
        .map_err(|e| format!("member list: {e}"))?;
    let mut out = BTreeSet::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| format!("member list: {e}"))?;
        if let Some(id) = k.strip_prefix("member.") {
            out.insert(id.to_owned());
        }
    }
    Ok(out)
}

/// The live members: those listed now or live at the last tick, each confirmed by reading
/// its entry. A listing of the bucket can miss an entry that is being rewritten at that
/// moment (history 1); reading the entry itself cannot, so a live member never seems to
/// vanish for a tick (which would move its partitions away and back).
pub async fn confirmed_members(
    nats: &Nats,
    known: &BTreeSet<String>,
) -> Result<BTreeSet<String>, String> {
    let mut candidates = live_members(nats).await?;
    candidates.extend(known.iter().cloned());
    let mut out = BTreeSet::new();
    for id in candidates {
        match nats.cluster_kv.get(member_key(&id)).await {
            Ok(Some(_)) => {
                out.insert(id);
            }
            Ok(None) => {}
            Err(e) => return Err(format!("member {id}: {e}")),
        }
    }
    Ok(out)
}

/// Who is in the cluster and who owns what, read from the bucket.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// Live members.
    pub members: Vec<Member>,
    /// Owner of each partition (`None`: free).
    pub owners: Vec<Option<String>>,
}

/// Reads the bucket.
pub async fn snapshot(nats: &Nats) -> Result<Snapshot, String> {
    let kv = &nats.cluster_kv;
    let mut keys = kv
        .keys()
        .await
        .map_err(|e| format!("cluster bucket: {e}"))?;
    let mut members = Vec::new();
    let mut owners = vec![None; usize::from(nats.partitions)];
    // a listing can name a key twice (rewritten while it was read)
    let mut seen = BTreeSet::new();
    while let Some(k) = keys.next().await {
        let k = k.map_err(|e| format!("cluster bucket: {e}"))?;
        if !seen.insert(k.clone()) {
            continue;
        }
        let Ok(Some(v)) = kv.get(k.clone()).await else {
            continue;
        };
        if k.starts_with("member.") {
            if let Ok(m) = serde_json::from_slice::<Member>(&v) {
                members.push(m);
            }
        } else if let Some(p) = k
            .strip_prefix("lease.")
            .and_then(|p| p.parse::<usize>().ok())
            && p < owners.len()
        {
            owners[p] = Some(String::from_utf8_lossy(&v).into_owned());
        }
    }
    members.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Snapshot { members, owners })
}

//! Group commit with durable acks.
//!
//! Guarantees:
//! - A batch's [`Writer::submit`] receiver resolves `Ok` only after the transaction holding
//!   all of the batch's rows has committed. The ack is sent after that, never before.
//! - Batches from every stream share commits: a writer task takes one batch from the queue,
//!   then everything else already waiting (up to `commit_max_rows`), and writes them with one
//!   statement per table in one transaction. With several writers (PostgreSQL), one commits
//!   while the next gathers, so commits overlap.
//! - The queue is bounded. When the database is slow or down, writers keep retrying the
//!   commit they hold (transient errors, with backoff), the queue fills, `submit` waits, and
//!   the gRPC handlers stop reading their streams: backpressure instead of unbounded memory
//!   or dropped data. Nothing unacked is lost: the producer still holds it.
//! - On shutdown the queue is closed and drained; a commit that cannot finish before the
//!   abort deadline fails its batches, which are then simply not acked.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use tracing::Instrument;

use llmscope_model::{Sample, Telemetry};
use llmscope_store::Store;

/// Receives the samples of each commit, after the batches are acked: the live SPC engine's
/// [`llmscope_live::EngineHandle`]. Sending waits when the receiver lags, which slows ingest
/// rather than skipping evaluation.
pub use llmscope_live::EngineHandle as CommitHook;

/// Writer tuning.
#[derive(Debug, Clone, Copy)]
pub struct WriterConfig {
    /// Batches waiting before `submit` blocks.
    pub queue_capacity: usize,
    /// Most rows (samples + telemetry) per commit.
    pub commit_max_rows: usize,
    /// Concurrent writer tasks (forced to 1 on SQLite).
    pub writers: usize,
    /// Record each commit's agents (newest telemetry, receipt time) for the silence check
    /// here. Cluster mode: the engine does not see telemetry, which goes from the log to the
    /// database only. Standalone the engine records them.
    pub note_agents: bool,
}

/// Why a batch was not stored.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The collector is shutting down.
    #[error("the collector is shutting down")]
    Closed,
    /// The database refused the commit for a reason retrying will not fix.
    #[error("the database refused the batch: {0}")]
    Failed(String),
    /// Cluster mode: the log is unreachable or full; resending later succeeds.
    #[error("{0}")]
    Unavailable(String),
}

struct Job {
    samples: Vec<Sample>,
    telemetry: Vec<Telemetry>,
    done: oneshot::Sender<Result<(), WriteError>>,
}

/// Counters the health endpoints and metrics read.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Commits done.
    pub commits: AtomicU64,
    /// Samples committed.
    pub samples: AtomicU64,
    /// Telemetry snapshots committed.
    pub telemetry: AtomicU64,
    /// False while commits fail with transient errors.
    pub db_ok: AtomicBool,
}

/// Handle to the writer tasks; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    stats: Arc<WriterStats>,
    abort: Arc<AtomicBool>,
}

/// Join handle of the writer tasks, for shutdown.
pub struct WriterTasks {
    set: JoinSet<()>,
    abort: Arc<AtomicBool>,
}

impl WriterTasks {
    /// Waits until the queue is drained (all [`Writer`] clones dropped) or `grace` passes;
    /// after that, commits still retrying give up and their batches stay unacked.
    pub async fn shutdown(mut self, grace: Duration) {
        let drained = tokio::time::timeout(grace, async {
            while self.set.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                "writer did not drain within the grace period; unacked batches will be resent by their producers"
            );
            self.abort.store(true, Ordering::SeqCst);
            while self.set.join_next().await.is_some() {}
        }
    }
}

impl Writer {
    /// Starts the writer tasks.
    pub fn start(
        store: Store,
        cfg: WriterConfig,
        hook: Option<CommitHook>,
    ) -> (Writer, WriterTasks) {
        let (tx, rx) = mpsc::channel(cfg.queue_capacity.max(1));
        let rx = Arc::new(Mutex::new(rx));
        let stats = Arc::new(WriterStats {
            db_ok: AtomicBool::new(true),
            ..Default::default()
        });
        let abort = Arc::new(AtomicBool::new(false));
        let n = if store.concurrent_writers() {
            cfg.writers.max(1)
        } else {
            1
        };
        let mut set = JoinSet::new();
        for worker in 0..n {
            set.spawn(run_worker(
                Worker {
                    id: worker,
                    store: store.clone(),
                    max_rows: cfg.commit_max_rows.max(1),
                    note_agents: cfg.note_agents,
                    stats: stats.clone(),
                    abort: abort.clone(),
                    hook: hook.clone(),
                },
                rx.clone(),
            ));
        }
        (
            Writer {
                tx,
                stats,
                abort: abort.clone(),
            },
            WriterTasks { set, abort },
        )
    }

    /// Queues a batch (waiting while the queue is full) and returns the receiver that
    /// resolves once it is committed.
    pub async fn submit(
        &self,
        samples: Vec<Sample>,
        telemetry: Vec<Telemetry>,
    ) -> Result<oneshot::Receiver<Result<(), WriteError>>, WriteError> {
        let (done, rx) = oneshot::channel();
        if self.abort.load(Ordering::Relaxed) {
            return Err(WriteError::Closed);
        }
        self.tx
            .send(Job {
                samples,
                telemetry,
                done,
            })
            .await
            .map_err(|_| WriteError::Closed)?;
        crate::metrics::set_queue_depth(self.queued());
        Ok(rx)
    }

    /// Queues a batch and waits for its commit.
    pub async fn write(
        &self,
        samples: Vec<Sample>,
        telemetry: Vec<Telemetry>,
    ) -> Result<(), WriteError> {
        let rx = self.submit(samples, telemetry).await?;
        rx.await.unwrap_or(Err(WriteError::Closed))
    }

    /// Counters.
    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Batches waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether the queue is full (producers are being slowed down).
    pub fn saturated(&self) -> bool {
        self.tx.capacity() == 0
    }
}

/// One writer task's settings and shared handles.
struct Worker {
    id: usize,
    store: Store,
    max_rows: usize,
    note_agents: bool,
    stats: Arc<WriterStats>,
    abort: Arc<AtomicBool>,
    hook: Option<CommitHook>,
}

async fn run_worker(w: Worker, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let Worker {
        id: worker,
        store,
        max_rows,
        note_agents,
        stats,
        abort,
        hook,
    } = w;
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { break };
            let mut rows = first.samples.len() + first.telemetry.len();
            jobs.push(first);
            while rows < max_rows {
                match rx.try_recv() {
                    Ok(j) => {
                        rows += j.samples.len() + j.telemetry.len();
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            crate::metrics::set_queue_depth(rx.len());
        }
        let (samples, telemetry) = if jobs.len() == 1 {
            (
                std::mem::take(&mut jobs[0].samples),
                std::mem::take(&mut jobs[0].telemetry),
            )
        } else {
            let mut s = Vec::with_capacity(jobs.iter().map(|j| j.samples.len()).sum());
            let mut t = Vec::new();
            for j in &mut jobs {
                s.append(&mut j.samples);
                t.append(&mut j.telemetry);
            }
            (s, t)
        };
        let span = tracing::info_span!(
            "ingest_commit",
            batches = jobs.len(),
            samples = samples.len(),
            telemetry = telemetry.len()
        );
        let result = commit(worker, &store, &samples, &telemetry, &stats, &abort)
            .instrument(span)
            .await;
        if result.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .samples
                .fetch_add(samples.len() as u64, Ordering::Relaxed);
            stats
                .telemetry
                .fetch_add(telemetry.len() as u64, Ordering::Relaxed);
        }
        if result.is_ok() && note_agents && !telemetry.is_empty() {
            let agents = llmscope_live::Committed::agents_of(&telemetry);
            if let Err(e) = store.note_agents(&agents, llmscope_model::now_us()).await {
                tracing::warn!(worker, error = %e, "cannot record the agents' telemetry for the silence check");
            }
        }
        for j in jobs {
            let _ = j.done.send(result.clone());
        }
        if result.is_ok()
            && (!samples.is_empty() || !telemetry.is_empty())
            && let Some(h) = &hook
        {
            let agents = llmscope_live::Committed::agents_of(&telemetry);
            let _ = h.send(llmscope_live::Committed { samples, agents }).await;
        }
    }
}

async fn commit(
    worker: usize,
    store: &Store,
    samples: &[Sample],
    telemetry: &[Telemetry],
    stats: &WriterStats,
    abort: &AtomicBool,
) -> Result<(), WriteError> {
    let mut backoff = Duration::from_millis(50);
    loop {
        match store.write_batch(samples, telemetry).await {
            Ok(()) => {
                if !stats.db_ok.swap(true, Ordering::Relaxed) {
                    tracing::info!(worker, "database writes succeed again");
                }
                return Ok(());
            }
            Err(e) if e.is_transient() => {
                if stats.db_ok.swap(false, Ordering::Relaxed) {
                    tracing::warn!(worker, error = %e, "database write failed; holding the batch and retrying (producers are slowed down)");
                }
                if abort.load(Ordering::SeqCst) {
                    return Err(WriteError::Closed);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(worker, error = %e, samples = samples.len(), "database refused a commit");
                return Err(WriteError::Failed(e.to_string()));
            }
        }
    }
}

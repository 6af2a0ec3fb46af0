//! One owned partition: hands its samples to the engine in log order, exactly once per
//! tenure, and acknowledges the partition's consumer after they are judged.
//!
//! Taking over (after a release or a crash of the previous owner):
//! 1. The consumer's ack floor `S` is where the previous owner's judging is known to end;
//!    its delivered sequence `D` where what it received ends.
//! 2. Messages of the partition the storage consumer has not acknowledged up to `S` are
//!    stored first (idempotently), so the engine's warm-up reads every point judged before.
//! 3. Messages in `(S, D]` — received by the previous owner, maybe judged, not acknowledged —
//!    are read from the stream in order and judged (a point judged before is late and skipped
//!    by the engine).
//! 4. Then the consumer's own deliveries follow. Should deliveries have gone elsewhere (a pull
//!    request of the previous owner still open), the gap in the consumer's delivery sequence
//!    is filled from the stream the same way. Anything at or below the last judged sequence
//!    that comes again is only acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::consumer::{self, PullConsumer};
use async_nats::jetstream::{Message, stream};
use futures::{FutureExt, StreamExt};
use llmscope_live::{Committed, EngineHandle};
use llmscope_model::Sample;
use tokio::sync::watch;

use crate::codec;
use crate::connect::{ClusterError, Nats};
use crate::storage::BatchSink;

/// Most log messages judged together.
const BATCH_MESSAGES: usize = 500;
/// Most samples judged together.
const BATCH_SAMPLES: usize = 20_000;

/// What the partition runners did, for `/metrics` and the status API.
#[derive(Debug, Default)]
pub struct PartitionStats {
    /// Log messages judged.
    pub judged: AtomicU64,
    /// Messages read from the stream to fill a gap or finish a previous owner's work.
    pub caught_up: AtomicU64,
    /// Messages stored on a takeover because the storage consumer had not yet.
    pub stored_on_takeover: AtomicU64,
    /// Partitions taken over.
    pub takeovers: AtomicU64,
}

/// Everything a runner needs.
#[derive(Clone)]
pub struct RunnerCtx {
    /// NATS.
    pub nats: Nats,
    /// The engine.
    pub engine: EngineHandle,
    /// The database writer (step 2).
    pub sink: Arc<dyn BatchSink>,
    /// Counters.
    pub stats: Arc<PartitionStats>,
}

/// Reads partition `p` until `stop` turns true. `fenced` turns true when the lease is lost:
/// nothing is acknowledged after that (the next owner takes it from the ack floor).
pub async fn run(ctx: RunnerCtx, p: u16, mut stop: watch::Receiver<bool>, fenced: Arc<AtomicBool>) {
    let mut backoff = Duration::from_millis(200);
    let mut judged_to: Option<u64> = None;
    loop {
        if *stop.borrow() || fenced.load(Ordering::SeqCst) {
            return;
        }
        match own(&ctx, p, &mut stop, &fenced, &mut judged_to).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "cluster: partition reader interrupted; resuming");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(3));
            }
        }
    }
}

fn seqs(m: &Message) -> (u64, u64) {
    m.info()
        .map(|i| (i.stream_sequence, i.consumer_sequence))
        .unwrap_or((0, 0))
}

async fn own(
    ctx: &RunnerCtx,
    p: u16,
    stop: &mut watch::Receiver<bool>,
    fenced: &AtomicBool,
    judged_to: &mut Option<u64>,
) -> Result<(), ClusterError> {
    let names = &ctx.nats.names;
    let stream = ctx.nats.stream().await?;
    let consumer: PullConsumer = stream
        .get_or_create_consumer(
            &names.spc_consumer(p),
            crate::connect::spc_consumer_config(names, p),
        )
        .await
        .map_err(|e| ClusterError::js("partition consumer", e))?;
    let info = consumer
        .get_info()
        .await
        .map_err(|e| ClusterError::js("partition consumer info", e))?;
    let (floor, delivered) = (
        info.ack_floor.stream_sequence,
        info.delivered.stream_sequence,
    );
    let mut next_delivery = info.delivered.consumer_sequence + 1;
    let subject = names.samples(p);
    let first_time = judged_to.is_none();
    if first_time {
        // 2: what the previous owner judged is in the database before anything is warmed
        let store: PullConsumer = stream
            .get_consumer(&names.store_consumer())
            .await
            .map_err(|e| ClusterError::js("storage consumer", e))?;
        let stored = store
            .get_info()
            .await
            .map_err(|e| ClusterError::js("storage consumer info", e))?
            .ack_floor
            .stream_sequence;
        if stored < floor {
            let msgs = read_range(&stream, &subject, stored + 1, floor).await?;
            let n = msgs.len() as u64;
            for m in msgs {
                if let Ok(d) = codec::decode(&m.payload) {
                    ctx.sink
                        .store(d.samples, d.telemetry)
                        .await
                        .map_err(ClusterError::JetStream)?;
                }
            }
            ctx.stats.stored_on_takeover.fetch_add(n, Ordering::Relaxed);
        }
        ctx.stats.takeovers.fetch_add(1, Ordering::Relaxed);
    }
    let mut to = judged_to.unwrap_or(floor).max(floor);
    // 3: what the previous owner (or this one, before an interruption) received
    if delivered > to {
        let msgs = read_range(&stream, &subject, to + 1, delivered).await?;
        ctx.stats
            .caught_up
            .fetch_add(msgs.len() as u64, Ordering::Relaxed);
        for chunk in msgs.chunks(BATCH_MESSAGES) {
            judge(ctx, chunk).await?;
        }
        to = delivered;
        *judged_to = Some(to);
    }
    *judged_to = Some(to);
    tracing::debug!(
        partition = p,
        floor,
        delivered,
        "cluster: reading partition"
    );
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(BATCH_MESSAGES)
        // what one partition may hold prefetched (64 of them per replica)
        .max_bytes_per_batch(2 * 1024 * 1024)
        .expires(Duration::from_secs(5))
        .heartbeat(Duration::from_millis(2_500))
        .messages()
        .await
        .map_err(|e| ClusterError::js("partition messages", e))?;
    loop {
        let first = tokio::select! {
            m = messages.next() => m,
            _ = stop.wait_for(|s| *s) => return Ok(()),
        };
        let first = match first {
            Some(Ok(m)) => m,
            Some(Err(e)) => return Err(ClusterError::js("partition messages", e)),
            None => return Err(ClusterError::JetStream("partition stream ended".into())),
        };
        let mut batch = vec![first];
        let mut samples_hint = 0usize;
        while batch.len() < BATCH_MESSAGES && samples_hint < BATCH_SAMPLES {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    samples_hint += m.payload.len() / 64;
                    batch.push(m)
                }
                Some(Some(Err(e))) => return Err(ClusterError::js("partition messages", e)),
                _ => break,
            }
        }
        let mut fresh: Vec<Message> = Vec::with_capacity(batch.len());
        // with AckPolicy::All, acknowledging the highest sequence covers the batch
        let mut last: Option<(u64, &Message)> = None;
        for m in &batch {
            let (s, c) = seqs(m);
            if c > next_delivery && s > to + 1 {
                // 4: deliveries went elsewhere; take them from the stream, in order
                let missed = read_range(&stream, &subject, to + 1, s - 1).await?;
                ctx.stats
                    .caught_up
                    .fetch_add(missed.len() as u64, Ordering::Relaxed);
                fresh.extend(missed);
            }
            next_delivery = c + 1;
            if s > to {
                to = s;
                fresh.push(m.clone());
            }
            if last.is_none_or(|(ls, _)| s > ls) {
                last = Some((s, m));
            }
        }
        for chunk in fresh.chunks(BATCH_MESSAGES) {
            judge(ctx, chunk).await?;
        }
        *judged_to = Some(to);
        ctx.stats
            .judged
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        if fenced.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some((_, m)) = last
            && let Err(e) = m.ack().await
        {
            tracing::debug!(partition = p, error = %e, "cluster: partition ack lost; the next one covers it");
        }
    }
}

/// Hands the samples of `msgs` (in order) to the engine and waits until they are judged.
async fn judge(ctx: &RunnerCtx, msgs: &[Message]) -> Result<(), ClusterError> {
    let mut samples: Vec<Sample> = Vec::new();
    for m in msgs {
        match codec::decode(&m.payload) {
            Ok(d) => samples.extend(d.samples),
            Err(e) => {
                tracing::error!(error = %e, subject = %m.subject, "cluster: unreadable log message skipped by the engine")
            }
        }
    }
    if samples.is_empty() {
        return Ok(());
    }
    ctx.engine
        .judge(Committed {
            samples,
            agents: Vec::new(),
        })
        .await
        .map_err(|e| ClusterError::JetStream(e.to_string()))
}

/// The messages of `subject` with stream sequences in `from..=to`, in order.
pub async fn read_range(
    stream: &stream::Stream,
    subject: &str,
    from: u64,
    to: u64,
) -> Result<Vec<Message>, ClusterError> {
    if from > to {
        return Ok(Vec::new());
    }
    let reader: PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            filter_subject: subject.to_owned(),
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: from,
            },
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::js("range reader", e))?;
    let mut out = Vec::new();
    'read: loop {
        let mut got = 0;
        let mut batch = reader
            .fetch()
            .max_messages(1_000)
            .messages()
            .await
            .map_err(|e| ClusterError::js("range read", e))?;
        while let Some(m) = batch.next().await {
            let m = m.map_err(|e| ClusterError::js("range read", e))?;
            got += 1;
            if seqs(&m).0 > to {
                break 'read;
            }
            out.push(m);
        }
        if got == 0 {
            break;
        }
    }
    let name = reader.cached_info().name.clone();
    let _ = stream.delete_consumer(&name).await;
    Ok(out)
}

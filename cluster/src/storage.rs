//! The storage side of the log: one durable pull consumer shared by every replica (each
//! message goes to one of them) writes each batch to the database and acknowledges it to
//! JetStream only after the commit. The database write is idempotent on sample ids and the
//! telemetry key, so a redelivery after a crash stores nothing twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::AckKind;
use async_nats::jetstream::consumer::PullConsumer;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use llmscope_model::{Sample, Telemetry};
use tokio::sync::watch;

use crate::codec;
use crate::connect::Nats;

/// Writes batches to the database (the collector's group-commit writer).
pub trait BatchSink: Send + Sync + 'static {
    /// Queues a batch; the future resolves once it is committed (`Err`: not stored, with why).
    fn store(
        &self,
        samples: Vec<Sample>,
        telemetry: Vec<Telemetry>,
    ) -> BoxFuture<'static, Result<(), String>>;
}

/// Writer jobs whose commit may be outstanding at once (the writer's queue bounds them too).
const IN_FLIGHT: usize = 64;
/// Most log messages in one writer job.
const JOB_MESSAGES: usize = 1_000;
/// About the most rows in one writer job (estimated from the payload sizes).
const JOB_ROWS: usize = 20_000;

/// What the storage consumer did, for `/metrics`.
#[derive(Debug, Default)]
pub struct StorageStats {
    /// Log messages stored and acknowledged.
    pub stored: AtomicU64,
    /// Log messages that could not be read (terminated, logged).
    pub unreadable: AtomicU64,
    /// Commits that failed (the message is redelivered).
    pub failed: AtomicU64,
}

/// Runs the storage consumer until `stop` turns true; in-flight commits are waited for and
/// acknowledged before it returns.
pub async fn run(
    nats: Nats,
    sink: Arc<dyn BatchSink>,
    stats: Arc<StorageStats>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(200);
    loop {
        if *stop.borrow() {
            return;
        }
        match consume(&nats, &sink, &stats, &mut stop).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cluster: storage consumer interrupted; resuming");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(3));
            }
        }
    }
}

type Pending = BoxFuture<'static, ()>;

async fn consume(
    nats: &Nats,
    sink: &Arc<dyn BatchSink>,
    stats: &Arc<StorageStats>,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let consumer: PullConsumer = nats
        .stream()
        .await
        .map_err(|e| e.to_string())?
        .get_consumer(&nats.names.store_consumer())
        .await
        .map_err(|e| e.to_string())?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(1_000)
        .max_bytes_per_batch(16 * 1024 * 1024)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| e.to_string())?;
    let mut inflight: FuturesUnordered<Pending> = FuturesUnordered::new();
    enum Event<M> {
        Committed,
        Stop,
        Message(M),
    }
    let result = loop {
        let event = tokio::select! {
            biased;
            Some(()) = inflight.next(), if !inflight.is_empty() => Event::Committed,
            _ = stop.wait_for(|s| *s) => Event::Stop,
            m = messages.next(), if inflight.len() < IN_FLIGHT => Event::Message(m),
        };
        let m = match event {
            Event::Committed => continue,
            Event::Stop => break Ok(()),
            Event::Message(m) => m,
        };
        let first = match m {
            Some(Ok(msg)) => msg,
            Some(Err(e)) => break Err(e.to_string()),
            None => break Err("the consumer's message stream ended".into()),
        };
        // take what else is already here: one writer job (one commit) for many messages,
        // as many batches of agents share one commit on the direct path
        let mut msgs = vec![first];
        let mut failed = None;
        let mut rows = 0usize;
        while msgs.len() < JOB_MESSAGES && rows < JOB_ROWS {
            match messages.next().now_or_never() {
                Some(Some(Ok(m))) => {
                    rows += m.payload.len() / 96;
                    msgs.push(m);
                }
                Some(Some(Err(e))) => {
                    failed = Some(e.to_string());
                    break;
                }
                _ => break,
            }
        }
        let (mut samples, mut telemetry) = (Vec::new(), Vec::new());
        let mut readable = Vec::with_capacity(msgs.len());
        for msg in msgs {
            match codec::decode(&msg.payload) {
                Ok(d) => {
                    samples.extend(d.samples);
                    telemetry.extend(d.telemetry);
                    readable.push(msg);
                }
                Err(e) => {
                    stats.unreadable.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(error = %e, subject = %msg.subject, "cluster: unreadable log message dropped");
                    let _ = msg.ack_with(AckKind::Term).await;
                }
            }
        }
        if !readable.is_empty() {
            let commit = sink.store(samples, telemetry);
            let stats = stats.clone();
            inflight.push(
                async move {
                    match commit.await {
                        Ok(()) => {
                            let n = readable.len() as u64;
                            for msg in readable {
                                if let Err(e) = msg.ack().await {
                                    tracing::debug!(error = %e, "cluster: storage ack lost; the batch is redelivered and stored idempotently");
                                }
                            }
                            stats.stored.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(e) => {
                            stats.failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(error = %e, "cluster: batch not stored; redelivering");
                            for msg in readable {
                                let _ = msg
                                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                                    .await;
                            }
                        }
                    }
                }
                .boxed(),
            );
        }
        if let Some(e) = failed {
            break Err(e);
        }
    };
    // what was handed to the writer is committed (or failed) and acknowledged
    while inflight.next().await.is_some() {}
    result
}

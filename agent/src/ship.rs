//! Shipping: records flow from probes, the proxy and telemetry into the disk buffer, and from
//! the buffer to the collector over the bidirectional `Stream`.
//!
//! Guarantees: a record is written to the buffer before anything is sent; it leaves the
//! buffer only when the collector has acknowledged the batch that carried it (acks arrive in
//! request order, so one watermark suffices). After a disconnect or a restart everything
//! unacked is replayed from the buffer; the collector's idempotent storage makes the replay
//! harmless. Reconnects use exponential backoff with full jitter.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use rand::Rng;
use tokio::sync::{Notify, mpsc, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::buffer::{DiskBuffer, Position};
use crate::metrics::Metrics;
use crate::record::Record;

/// The buffer shared by the writer and the shipper (calls run under `spawn_blocking`).
pub type SharedBuffer = Arc<Mutex<DiskBuffer>>;

/// Connection settings.
#[derive(Clone)]
pub struct ShipConfig {
    /// `http(s)://host:port`.
    pub collector: String,
    /// Ingest token.
    pub token: Option<String>,
    /// CA PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// Client cert and key PEM.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Records per batch.
    pub batch_max: usize,
    /// Batches in flight.
    pub window: usize,
}

impl std::fmt::Debug for ShipConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipConfig")
            .field("collector", &self.collector)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Locks the buffer, recovering from a poisoned lock (the buffer's state is on disk).
pub fn lock(b: &SharedBuffer) -> std::sync::MutexGuard<'_, DiskBuffer> {
    b.lock().unwrap_or_else(|p| p.into_inner())
}

/// Appends records arriving on `rx` to the buffer, in groups, and wakes the shipper.
pub async fn buffer_writer(
    mut rx: mpsc::Receiver<Record>,
    buffer: SharedBuffer,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = stop.wait_for(|s| *s) => match rx.try_recv() {
                Ok(r) => r,
                Err(_) => return,
            },
        };
        let mut group = vec![first.encode()];
        while group.len() < 1024 {
            match rx.try_recv() {
                Ok(r) => group.push(r.encode()),
                Err(_) => break,
            }
        }
        let b = buffer.clone();
        let res = tokio::task::spawn_blocking(move || {
            let mut buf = lock(&b);
            for rec in &group {
                buf.append(rec)?;
            }
            Ok::<_, crate::buffer::BufferError>(buf.stats())
        })
        .await;
        match res {
            Ok(Ok(stats)) => metrics.sync_buffer(&stats),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot append to the disk buffer; records lost")
            }
            Err(e) => tracing::error!(error = %e, "buffer writer task failed"),
        }
        notify.notify_one();
    }
}

/// Periodically fsyncs the buffer.
pub async fn buffer_syncer(buffer: SharedBuffer, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let b = buffer.clone();
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || lock(&b).sync()).await {
            tracing::warn!(error = %e, "buffer fsync failed");
        }
    }
}

async fn connect(cfg: &ShipConfig) -> Result<Channel, tonic::transport::Error> {
    let mut ep = Endpoint::from_shared(cfg.collector.clone())?
        .connect_timeout(Duration::from_secs(5))
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(20))
        .tcp_nodelay(true);
    if cfg.collector.starts_with("https://") {
        let mut tls = ClientTlsConfig::new().with_enabled_roots();
        if let Some(ca) = &cfg.ca_pem {
            tls = tls.ca_certificate(Certificate::from_pem(ca));
        }
        if let Some((c, k)) = &cfg.identity {
            tls = tls.identity(Identity::from_pem(c, k));
        }
        ep = ep.tls_config(tls)?;
    }
    ep.connect().await
}

/// Exponential backoff with full jitter: a random delay in [0, min(cap, base·2^attempt)].
pub fn backoff(attempt: u32) -> Duration {
    let cap = 30_000.0;
    let base = 250.0 * 2f64.powi(attempt.min(16) as i32);
    let ms = rand::rng().random_range(0.0..=base.min(cap));
    Duration::from_millis(ms.max(50.0) as u64)
}

/// Ships the buffer to the collector until `shutdown` turns true.
pub async fn shipper(
    cfg: ShipConfig,
    buffer: SharedBuffer,
    notify: Arc<Notify>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt = 0u32;
    let mut warned = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match ship_session(&cfg, &buffer, &notify, &metrics, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                metrics.connected.set(0);
                if !warned {
                    tracing::warn!(collector = %cfg.collector, error = %e, "collector unreachable; buffering on disk and retrying");
                    warned = true;
                } else {
                    tracing::debug!(error = %e, "reconnect failed");
                }
                metrics.reconnects.inc();
                let wait = backoff(attempt);
                attempt = attempt.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
        // a session that got far enough to be acked resets the backoff
        if metrics.connected.get() == 1 {
            attempt = 0;
            warned = false;
        }
    }
}

struct Inflight {
    seq: u64,
    next: Position,
}

async fn read_batch(
    buffer: &SharedBuffer,
    from: Position,
    max: usize,
) -> Result<(Vec<Record>, Position, usize), String> {
    let b = buffer.clone();
    let batch = tokio::task::spawn_blocking(move || lock(&b).read(from, max, 8 << 20))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let n = batch.records.len();
    let mut out = Vec::with_capacity(n);
    for bytes in &batch.records {
        match Record::decode(bytes) {
            Ok(r) => out.push(r),
            Err(e) => tracing::warn!(error = %e, "skipping an undecodable buffer record"),
        }
    }
    Ok((out, batch.next, n))
}

/// One connection: stream everything unacked, then new records as they come.
async fn ship_session(
    cfg: &ShipConfig,
    buffer: &SharedBuffer,
    notify: &Notify,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), String> {
    let channel = connect(cfg).await.map_err(|e| format!("connect: {e}"))?;
    let token = cfg.token.clone();
    let mut client =
        IngestServiceClient::with_interceptor(channel, move |mut req: tonic::Request<()>| {
            if let Some(t) = &token {
                let v = format!("Bearer {t}").parse().map_err(|_| {
                    tonic::Status::invalid_argument(
                        "the token has characters not allowed in metadata",
                    )
                })?;
                req.metadata_mut().insert("authorization", v);
            }
            Ok(req)
        })
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (tx, rx) = mpsc::channel::<IngestRequest>(cfg.window.max(1));
    let mut acks = client
        .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .map_err(|s| format!("{}: {}", s.code(), s.message()))?
        .into_inner();
    metrics.connected.set(1);
    tracing::info!(collector = %cfg.collector, "connected to the collector");
    let b = buffer.clone();
    let mut cursor = tokio::task::spawn_blocking(move || lock(&b).start())
        .await
        .map_err(|e| e.to_string())?;
    let mut inflight: VecDeque<Inflight> = VecDeque::new();
    let mut seq = 0u64;
    let tx = Some(tx);
    let mut draining = *shutdown.borrow();
    loop {
        // fill the window from the buffer
        while inflight.len() < cfg.window.max(1)
            && let Some(sender) = &tx
        {
            let (records, next, n) = read_batch(buffer, cursor, cfg.batch_max).await?;
            if n == 0 {
                break;
            }
            seq += 1;
            let mut req = IngestRequest {
                batch_seq: seq,
                samples: Vec::new(),
                telemetry: Vec::new(),
            };
            for r in records {
                match r {
                    Record::Sample(s) => req.samples.push(s),
                    Record::Telemetry(t) => req.telemetry.push(t),
                }
            }
            sender
                .send(req)
                .await
                .map_err(|_| "the stream closed".to_string())?;
            inflight.push_back(Inflight { seq, next });
            cursor = next;
        }
        tokio::select! {
            ack = acks.message() => {
                let ack = match ack {
                    Ok(Some(a)) => a,
                    Ok(None) => return Err("the collector closed the stream".into()),
                    Err(s) => return Err(format!("{}: {}", s.code(), s.message())),
                };
                let Some(front) = inflight.pop_front() else {
                    return Err(format!("unexpected ack for batch {}", ack.batch_seq));
                };
                if front.seq != ack.batch_seq {
                    return Err(format!("ack for batch {} while {} was expected", ack.batch_seq, front.seq));
                }
                log_rejections(&ack);
                metrics.shipped.inc_by(u64::from(ack.accepted_samples + ack.accepted_telemetry));
                metrics.rejected.inc_by(ack.rejected.len() as u64);
                let b = buffer.clone();
                let pos = front.next;
                tokio::task::spawn_blocking(move || lock(&b).ack_through(pos))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("buffer ledger: {e}"))?;
            }
            _ = notify.notified(), if tx.is_some() && !draining => {}
            _ = tokio::time::sleep(Duration::from_millis(500)), if tx.is_some() && !draining => {}
            _ = shutdown.changed(), if !draining => {
                // drain: send what the buffer still holds, then stop
                draining = *shutdown.borrow();
            }
        }
        if draining && inflight.is_empty() {
            // nothing in flight and (after the fill above) nothing left to read
            let b = buffer.clone();
            let left = tokio::task::spawn_blocking(move || {
                let mut g = lock(&b);
                let start = g.start();
                g.read(start, 1, 1 << 20)
                    .map(|r| r.records.len())
                    .unwrap_or(0)
            })
            .await
            .unwrap_or(0);
            if left == 0 {
                return Ok(());
            }
        }
    }
}

fn log_rejections(ack: &v1::IngestAck) {
    for r in &ack.rejected {
        let kind = if r.kind == v1::ItemKind::Telemetry as i32 {
            "telemetry"
        } else {
            "sample"
        };
        tracing::warn!(batch_seq = ack.batch_seq, kind, index = r.index, field = %r.field, reason = %r.reason, "collector rejected a record; it will not be resent");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..100 {
            assert!(backoff(0) <= Duration::from_millis(250));
            assert!(backoff(30) <= Duration::from_secs(30));
            assert!(backoff(3) >= Duration::from_millis(50));
        }
    }
}

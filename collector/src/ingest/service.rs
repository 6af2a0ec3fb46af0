//! The gRPC `llmscope.v1.IngestService`: `Push` (unary) and `Stream` (bidirectional).
//!
//! Each request: authenticate (once per stream), check whole-request limits, validate item by
//! item, queue the valid rows for the group commit, and answer with the ack once the commit
//! holding them is done. A stream keeps up to `stream_window` batches in flight and answers
//! them in request order. On shutdown a stream stops reading, acks what it has in flight and
//! ends with `UNAVAILABLE`, so the producer reconnects elsewhere or later.

use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::FuturesOrdered;
use futures::{Stream, StreamExt};
use llmscope_proto::wire::{IngestAck, IngestRequest, ingest_service_server::IngestService};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::error::ErrorCode;
use tracing::Instrument;

use super::sink::Sink;
use super::validate::{self, Bounds};
use super::writer::WriteError;
use crate::auth::{Authenticator, Principal};
use llmscope_model::now_us;

/// Request limits and windows.
#[derive(Debug, Clone, Copy)]
pub struct IngestLimits {
    /// Most items per request.
    pub max_items: usize,
    /// Allowed clock skew into the future.
    pub max_future: Duration,
    /// Retention: older items are rejected.
    pub retention: Duration,
    /// Batches one stream may have in flight.
    pub stream_window: usize,
    /// Largest request, bytes (named in the error of a larger one).
    pub max_message_bytes: usize,
}

/// The ingest service.
#[derive(Clone)]
pub struct IngestServer {
    auth: Authenticator,
    sink: Sink,
    limits: IngestLimits,
    shutdown: watch::Receiver<bool>,
}

type AckStream = Pin<Box<dyn Stream<Item = Result<IngestAck, Status>> + Send>>;

impl IngestServer {
    /// A service storing through `sink`; `shutdown` turning true ends open streams.
    pub fn new(
        auth: Authenticator,
        sink: Sink,
        limits: IngestLimits,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        IngestServer {
            auth,
            sink,
            limits,
            shutdown,
        }
    }

    fn check_limits(&self, req: &IngestRequest) -> Result<(), Status> {
        let items = req.samples.len() + req.telemetry.len();
        if items > self.limits.max_items {
            return Err(ErrorCode::TooLarge.status(format!(
                "batch {} has {items} items (samples + telemetry); the limit is {} per request (ingest.max_items_per_batch): split it",
                req.batch_seq, self.limits.max_items
            )));
        }
        Ok(())
    }

    fn bounds(&self) -> Bounds {
        Bounds {
            now_us: now_us(),
            max_future_us: self.limits.max_future.as_micros() as i64,
            retention_us: self.limits.retention.as_micros() as i64,
        }
    }

    /// Authenticates a caller by its `authorization` metadata.
    pub(crate) async fn authenticate(
        &self,
        md: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, Status> {
        self.auth.authenticate(md).await
    }

    /// Authenticates an HTTP caller (OTLP/HTTP) by its `Authorization` header.
    pub(crate) async fn authenticate_headers(
        &self,
        headers: &axum::http::HeaderMap,
    ) -> Result<Principal, Status> {
        let md = tonic::metadata::MetadataMap::from_headers(headers.clone());
        self.auth.authenticate(&md).await
    }

    /// Most items per request (`ingest.max_items_per_batch`).
    pub(crate) fn max_items(&self) -> usize {
        self.limits.max_items
    }

    /// Largest request in bytes (`ingest.max_message_bytes`).
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.limits.max_message_bytes
    }

    /// Validates and queues one request; the returned future resolves to its ack once the
    /// rows are committed.
    pub(crate) async fn start_batch(
        &self,
        req: IngestRequest,
        who: &Principal,
    ) -> Result<impl Future<Output = Result<IngestAck, Status>> + Send + 'static, Status> {
        let started = Instant::now();
        self.check_limits(&req)?;
        let seq = req.batch_seq;
        tracing::Span::current().record("items", req.samples.len() + req.telemetry.len());
        let v = validate::validate(req, who, &self.bounds());
        let tally = v.tally();
        let ack = IngestAck {
            batch_seq: seq,
            accepted_samples: v.samples.len() as u32,
            accepted_telemetry: v.telemetry.len() as u32,
            rejected: v.rejected,
        };
        if !ack.rejected.is_empty() {
            tracing::debug!(
                batch_seq = seq,
                rejected = ack.rejected.len(),
                "items rejected"
            );
        }
        let pending = if v.samples.is_empty() && v.telemetry.is_empty() {
            None
        } else {
            Some(
                self.sink
                    .submit(v.samples, v.telemetry)
                    .await
                    .map_err(write_status)?,
            )
        };
        Ok(async move {
            if let Some(durable) = pending {
                durable.await.map_err(write_status)?;
            }
            tally.record(started.elapsed());
            Ok(ack)
        })
    }
}

/// What the HTTP/2 stack says of a malformed or oversized request, in words a client can act
/// on: a message that is not protobuf is `INVALID_ARGUMENT` (tonic says `INTERNAL`), one over
/// the limit names `ingest.max_message_bytes`. `None`: keep the status.
pub fn remap_status(s: &Status, max_message_bytes: usize) -> Option<Status> {
    let m = s.message();
    if s.code() == tonic::Code::Internal && m.contains("decode") {
        return Some(ErrorCode::InvalidArgument.status(format!(
            "the request is not a valid llmscope.v1 protobuf message ({m}); see proto/llmscope/v1/ingest.proto"
        )));
    }
    if matches!(
        s.code(),
        tonic::Code::OutOfRange | tonic::Code::ResourceExhausted
    ) && m.contains("too large")
    {
        return Some(ErrorCode::TooLarge.status(format!(
            "the request is larger than ingest.max_message_bytes ({max_message_bytes} bytes): split the batch ({m})"
        )));
    }
    None
}

fn write_status(e: WriteError) -> Status {
    match e {
        WriteError::Closed => {
            ErrorCode::Unavailable.status("the collector is shutting down; resend unacked batches")
        }
        WriteError::Failed(m) => ErrorCode::Internal.status(format!("batch not stored: {m}")),
        WriteError::Unavailable(m) => ErrorCode::Unavailable.status(format!(
            "{m}; nothing of this batch was accepted: resend it"
        )),
    }
}

#[tonic::async_trait]
impl IngestService for IngestServer {
    async fn push(&self, request: Request<IngestRequest>) -> Result<Response<IngestAck>, Status> {
        let who = self.auth.authenticate(request.metadata()).await?;
        let req = request.into_inner();
        let span = tracing::info_span!(
            "ingest_batch",
            batch_seq = req.batch_seq,
            rpc = "push",
            site = who.site.as_deref().unwrap_or("*"),
            items = tracing::field::Empty
        );
        async move {
            let ack = self.start_batch(req, &who).await?.await?;
            Ok(Response::new(ack))
        }
        .instrument(span)
        .await
    }

    type StreamStream = AckStream;

    async fn stream(
        &self,
        request: Request<Streaming<IngestRequest>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let who = self.auth.authenticate(request.metadata()).await?;
        let mut inbound = request.into_inner();
        let window = self.limits.stream_window.max(1);
        let (tx, rx) = mpsc::channel::<Result<IngestAck, Status>>(window + 1);
        let this = self.clone();
        let mut shutdown = self.shutdown.clone();
        tracing::info!(
            token = who.token_id.as_deref().unwrap_or("-"),
            "ingest stream opened"
        );
        tokio::spawn(async move {
            let mut inflight = FuturesOrdered::new();
            let mut reading = true;
            let mut end_status: Option<Status> = None;
            loop {
                if !reading && inflight.is_empty() {
                    break;
                }
                tokio::select! {
                    biased;
                    Some(done) = inflight.next(), if !inflight.is_empty() => {
                        match done {
                            Ok(ack) => {
                                if tx.send(Ok(ack)).await.is_err() {
                                    return; // client went away
                                }
                            }
                            Err(status) => {
                                let _ = tx.send(Err(status)).await;
                                return;
                            }
                        }
                    }
                    _ = shutdown.changed(), if reading => {
                        if *shutdown.borrow() {
                            reading = false;
                            end_status = Some(ErrorCode::Unavailable.status("the collector is shutting down; reconnect and resend unacked batches"));
                        }
                    }
                    msg = inbound.message(), if reading && inflight.len() < window => {
                        match msg {
                            Ok(Some(req)) => {
                                let seq = req.batch_seq;
                                // the span lasts until the batch is committed
                                let span = tracing::info_span!("ingest_batch", batch_seq = seq, rpc = "stream", site = who.site.as_deref().unwrap_or("*"), items = tracing::field::Empty);
                                match this.start_batch(req, &who).instrument(span.clone()).await {
                                    Ok(fut) => inflight.push_back(Box::pin(fut.instrument(span))),
                                    Err(status) => {
                                        reading = false;
                                        end_status = Some(status);
                                    }
                                }
                            }
                            Ok(None) => reading = false,
                            Err(status) => {
                                tracing::debug!(%status, "ingest stream read failed");
                                reading = false;
                                end_status = Some(
                                    remap_status(&status, this.limits.max_message_bytes)
                                        .unwrap_or(status),
                                );
                            }
                        }
                    }
                }
            }
            if let Some(status) = end_status {
                let _ = tx.send(Err(status)).await;
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

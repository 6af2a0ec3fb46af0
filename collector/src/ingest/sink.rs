//! Where validated batches go: the database writer (one collector), or the cluster log
//! (cluster mode: JetStream stores the batch, the storage consumer writes it to the database
//! and the partition owners judge it). Either way a batch counts as accepted only once it is
//! durable.

use futures::FutureExt;
use futures::future::BoxFuture;
use llmscope_cluster::{AppendError, Publisher};
use llmscope_model::{Sample, Telemetry};

use super::writer::{WriteError, Writer};

/// The destination of accepted batches.
#[derive(Clone)]
pub enum Sink {
    /// Group commit into the database.
    Direct(Writer),
    /// Append to the cluster log.
    Log(Publisher),
}

/// Resolves once a queued batch is durable.
pub type Durable = BoxFuture<'static, Result<(), WriteError>>;

impl Sink {
    /// Queues a batch (waiting while the writer's queue is full); the returned future
    /// resolves once it is durable.
    pub async fn submit(
        &self,
        samples: Vec<Sample>,
        telemetry: Vec<Telemetry>,
    ) -> Result<Durable, WriteError> {
        match self {
            Sink::Direct(w) => {
                let rx = w.submit(samples, telemetry).await?;
                Ok(async move { rx.await.unwrap_or(Err(WriteError::Closed)) }.boxed())
            }
            Sink::Log(p) => {
                let p = p.clone();
                let received = llmscope_model::now_us();
                Ok(async move {
                    p.append(&samples, &telemetry, received)
                        .await
                        .map_err(|e| match e {
                            AppendError::Unavailable(_) | AppendError::Full => {
                                WriteError::Unavailable(e.to_string())
                            }
                        })
                }
                .boxed())
            }
        }
    }
}

/// The writer as the cluster's storage consumer sees it.
pub struct WriterSink(pub Writer);

impl llmscope_cluster::BatchSink for WriterSink {
    fn store(
        &self,
        samples: Vec<Sample>,
        telemetry: Vec<Telemetry>,
    ) -> BoxFuture<'static, Result<(), String>> {
        let w = self.0.clone();
        async move { w.write(samples, telemetry).await.map_err(|e| e.to_string()) }.boxed()
    }
}

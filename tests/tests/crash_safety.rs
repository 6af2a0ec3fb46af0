//! Crash safety: kill -9 the collector while a client streams, restart it, let the client
//! resend what was not acked; afterwards every sample the client was told was accepted is
//! stored exactly once — and so is everything it resent.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use llmscope_e2e::{Collector, collector_cmd};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use llmscope_store::Store;
use tonic::Request;

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn batch(seq: u64) -> IngestRequest {
    IngestRequest {
        batch_seq: seq,
        samples: (0..200)
            .map(|i| v1::Sample {
                id: uuid::Uuid::now_v7().to_string(),
                ts_unix_nanos: now_ns(),
                site: "eu".into(),
                host: "gpu-1".into(),
                provider: "ollama".into(),
                model: "llama3.1:8b".into(),
                source: v1::Source::Client as i32,
                latency_ms: 800.0 + i as f64,
                status: v1::CallStatus::Ok as i32,
                ..Default::default()
            })
            .collect(),
        telemetry: vec![],
    }
}

/// Acks the client has received (the kill waits for at least one).
static ACKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Streams `pending` batches (resending everything unacked) until the stream breaks or
/// `stop_after` acks arrived; moves acked batches out of `pending`.
async fn stream_until(
    addr: &str,
    token: &str,
    pending: &mut BTreeMap<u64, IngestRequest>,
    acked: &mut HashSet<String>,
    stop_after: usize,
) -> Result<(), tonic::Status> {
    let mut c = IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let outbound: Vec<IngestRequest> = pending.values().cloned().collect();
    let mut req = Request::new(tokio_stream::iter(outbound));
    req.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let mut acks = c.stream(req).await?.into_inner();
    let mut n = 0;
    while let Some(ack) = acks.message().await? {
        let b = pending
            .remove(&ack.batch_seq)
            .expect("ack for a batch we sent");
        assert_eq!(ack.accepted_samples as usize, b.samples.len());
        acked.extend(b.samples.into_iter().map(|s| s.id));
        ACKS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        n += 1;
        if n >= stop_after {
            break;
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/llmscope.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "eu", "--database-url", &url]).await;

    let collector = Collector::start(&url, &[]).await;
    let mut pending: BTreeMap<u64, IngestRequest> = (1..=200).map(|s| (s, batch(s))).collect();
    let mut acked = HashSet::new();
    let all_ids: HashSet<String> = pending
        .values()
        .flat_map(|b| b.samples.iter().map(|s| s.id.clone()))
        .collect();

    // stream in the background, kill -9 once some batches are acked and more are in flight
    let addr = collector.grpc.clone();
    let tok = token.clone();
    let mut p = std::mem::take(&mut pending);
    let streaming = tokio::spawn(async move {
        let mut a = HashSet::new();
        let r = stream_until(&addr, &tok, &mut p, &mut a, usize::MAX).await;
        (r, p, a)
    });
    let probe = Store::connect(&url, 1).await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), async {
        // committed rows in the database and at least one ack back at the client (on a loaded
        // machine the acks can trail the commits)
        while probe.count_samples().await.unwrap_or(0) < 2_000
            || ACKS.load(std::sync::atomic::Ordering::SeqCst) == 0
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("samples arrive");
    collector.kill9().await;
    let (result, rest, got) = streaming.await.unwrap();
    assert!(result.is_err(), "the stream breaks when the collector dies");
    assert!(!rest.is_empty(), "batches were still unacked at the crash");
    pending = rest;
    acked.extend(got);
    let acked_before_crash = acked.len();
    assert!(
        acked_before_crash > 0,
        "some batches were acked before the crash"
    );

    // restart on the same database; resend everything unacked until all is acked
    let collector = Collector::start(&url, &[]).await;
    for _ in 0..10 {
        if pending.is_empty() {
            break;
        }
        let _ = stream_until(
            &collector.grpc,
            &token,
            &mut pending,
            &mut acked,
            usize::MAX,
        )
        .await;
    }
    assert!(pending.is_empty(), "everything is eventually acked");
    assert!(collector.terminate().await, "clean exit on SIGTERM");

    let store = Store::connect(&url, 1).await.unwrap();
    let counts = store.sample_id_counts().await.unwrap();
    let stored: HashSet<String> = counts.iter().map(|(id, _)| id.to_string()).collect();
    assert!(counts.iter().all(|(_, n)| *n == 1), "no duplicates");
    assert_eq!(acked, all_ids, "every batch was acked in the end");
    assert_eq!(
        stored, all_ids,
        "every acked sample stored exactly once, nothing else"
    );
}

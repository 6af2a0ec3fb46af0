//! The same store test suite against SQLite and PostgreSQL.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use llmscope_model::{CallStatus, Gpu, Sample, ServerMetric, Source, Telemetry, now_us};
use llmscope_store::Store;
use llmscope_store::testing::{BACKENDS, TestDb, each_backend};
use uuid::Uuid;

fn row(i: i64) -> Sample {
    Sample {
        id: Uuid::now_v7(),
        ts_us: now_us() - 1_000_000 + i,
        site: "eu-west".into(),
        host: "gpu-1".into(),
        provider: "ollama".into(),
        model: "llama3.1:8b".into(),
        source: Source::Probe,
        latency_ms: 800.0 + i as f64,
        ttft_ms: Some(100.5),
        tokens_in: Some(12),
        tokens_out: Some(64),
        status: CallStatus::Ok,
        http_status: Some(200),
        error: None,
        labels: BTreeMap::from([("replica".to_owned(), "a\"b'c".to_owned())]),
    }
}

fn tele(ts_us: i64, gpus: i32) -> Telemetry {
    Telemetry {
        ts_us,
        site: "eu-west".into(),
        host: "gpu-1".into(),
        cpu_pct: 12.5,
        mem_used_bytes: 1 << 33,
        mem_total_bytes: 1 << 36,
        load1: 0.75,
        gpus: (0..gpus)
            .map(|i| Gpu {
                index: i,
                uuid: format!("GPU-{i}"),
                name: "H100".into(),
                util_pct: Some(99.0),
                mem_used_bytes: Some(1 << 35),
                mem_total_bytes: Some(80 << 30),
                temp_c: Some(70.0),
                power_w: Some(700.0),
                sm_clock_mhz: Some(1980),
                throttle_reasons: Some(4),
                ..Gpu::default()
            })
            .collect(),
        server_metrics: Vec::new(),
    }
}

#[tokio::test]
async fn gpu_truth_mig_instances_and_server_metrics_round_trip() {
    each_backend(|store, backend| async move {
        let ts = now_us();
        let mut t = tele(ts, 1);
        // a consumer GPU without ECC or power reading; an XID error; a MIG instance
        t.gpus.push(Gpu {
            index: 1,
            uuid: "GPU-1".into(),
            name: "RTX 4090".into(),
            util_pct: Some(5.0),
            xid_errors: vec![13, 79],
            ..Gpu::default()
        });
        t.gpus[0].ecc_corrected_volatile = Some(3);
        t.gpus.push(Gpu {
            index: 0,
            mig_index: Some(1),
            uuid: "MIG-1".into(),
            name: "H100 MIG 1g.10gb".into(),
            mem_used_bytes: Some(1 << 30),
            mem_total_bytes: Some(10 << 30),
            ..Gpu::default()
        });
        t.server_metrics = vec![ServerMetric {
            target: "vllm".into(),
            model: "qwen".into(),
            metric: "requests_waiting".into(),
            value: 17.0,
        }];
        store.write_batch(&[], &[t.clone(), t]).await.unwrap();
        assert_eq!(store.count_gpu_rows().await.unwrap(), 2, "{backend:?}");
        let got = store
            .telemetry_range("eu-west", "gpu-1", ts - 1, ts + 1, 10)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        let v = &got[0].1;
        assert_eq!(
            v["gpus"][0]["ecc_corrected_volatile"], 3,
            "{backend:?}: {v}"
        );
        assert_eq!(v["gpus"][1]["power_w"], serde_json::Value::Null);
        assert_eq!(
            v["gpus"][1]["ecc_corrected_volatile"],
            serde_json::Value::Null
        );
        assert_eq!(v["gpus"][1]["xid_errors"], serde_json::json!([13, 79]));
        assert_eq!(v["mig_instances"][0]["mig_index"], 1);
        assert_eq!(v["mig_instances"][0]["mem_total_bytes"], 10i64 << 30);
        assert_eq!(v["server_metrics"][0]["metric"], "requests_waiting");
        assert_eq!(v["server_metrics"][0]["value"], 17.0);
        // retention takes them with the snapshot
        store.delete_older_than(ts + 10, 100).await.unwrap();
        let left = store
            .telemetry_range("eu-west", "gpu-1", 0, i64::MAX / 2, 10)
            .await
            .unwrap();
        assert!(left.is_empty());
    })
    .await;
}

#[tokio::test]
async fn batches_round_trip_every_field() {
    each_backend(|store, backend| async move {
        let mut failed = row(1);
        failed.status = CallStatus::Timeout;
        failed.ttft_ms = None;
        failed.tokens_in = None;
        failed.tokens_out = None;
        failed.http_status = None;
        failed.error = Some("read timeout after 30s".into());
        failed.labels.clear();
        let rows = vec![row(0), failed.clone()];
        store
            .write_batch(&rows, &[tele(now_us(), 2)])
            .await
            .unwrap();
        for r in &rows {
            let got = store.get_sample(r.id).await.unwrap().expect("stored");
            assert_eq!(&got, r, "{backend:?}");
        }
        assert_eq!(store.count_telemetry().await.unwrap(), 1);
        assert_eq!(store.count_gpu_rows().await.unwrap(), 2);
        assert!(store.get_sample(Uuid::now_v7()).await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn writes_are_idempotent_within_and_across_batches() {
    each_backend(|store, backend| async move {
        let rows: Vec<Sample> = (0..500).map(row).collect();
        let t = tele(now_us(), 1);
        store
            .write_batch(&rows, std::slice::from_ref(&t))
            .await
            .unwrap();
        // resend the same batch, and a batch that repeats an id inside itself
        store
            .write_batch(&rows, std::slice::from_ref(&t))
            .await
            .unwrap();
        let dup = vec![rows[0].clone(), rows[0].clone(), row(900)];
        store.write_batch(&dup, &[t.clone(), t]).await.unwrap();
        assert_eq!(store.count_samples().await.unwrap(), 501, "{backend:?}");
        assert_eq!(store.count_telemetry().await.unwrap(), 1);
        assert_eq!(store.count_gpu_rows().await.unwrap(), 1);
        let counts = store.sample_id_counts().await.unwrap();
        assert_eq!(counts.len(), 501);
        assert!(counts.iter().all(|(_, n)| *n == 1));
    })
    .await;
}

#[tokio::test]
async fn large_batches_are_one_statement() {
    each_backend(|store, _| async move {
        let rows: Vec<Sample> = (0..20_000).map(row).collect();
        store.write_batch(&rows, &[]).await.unwrap();
        assert_eq!(store.count_samples().await.unwrap(), 20_000);
    })
    .await;
}

#[tokio::test]
async fn retention_deletes_only_old_rows_in_batches() {
    each_backend(|store, backend| async move {
        let now = now_us();
        let mut rows = Vec::new();
        for i in 0..25 {
            let mut r = row(i);
            r.ts_us = now - 40 * 86_400_000_000 + i; // 40 days old
            rows.push(r);
        }
        let fresh: Vec<Sample> = (0..5).map(row).collect();
        rows.extend(fresh.iter().cloned());
        store
            .write_batch(&rows, &[tele(now - 40 * 86_400_000_000, 1), tele(now, 1)])
            .await
            .unwrap();
        let cutoff = now - 30 * 86_400_000_000;
        // the API's minute rollups follow the same retention
        store.rollup_once(now_us() + 1_000_000).await.unwrap();
        let key = store
            .catalog(None, None, None, Some(llmscope_model::Metric::LatencyMs))
            .await
            .unwrap()[0]
            .key
            .clone();
        let all = |s: &llmscope_store::Store| {
            let (s, key) = (s.clone(), key.clone());
            async move {
                s.rollup_buckets(
                    &key,
                    now - 50 * 86_400_000_000,
                    now + 60_000_000,
                    60_000_000,
                )
                .await
                .unwrap()
            }
        };
        assert_eq!(
            all(&store).await.iter().map(|b| b.count).sum::<i64>(),
            30,
            "{backend:?}"
        );
        assert!(store.prune_rollups(cutoff).await.unwrap() >= 1);
        assert_eq!(
            all(&store).await.iter().map(|b| b.count).sum::<i64>(),
            5,
            "old minutes pruned, fresh kept"
        );
        assert_eq!(store.prune_rollups(cutoff).await.unwrap(), 0);
        let deleted = store.delete_older_than(cutoff, 10).await.unwrap();
        assert_eq!(deleted, 25 + 1 + 1, "{backend:?}");
        assert_eq!(store.count_samples().await.unwrap(), 5);
        assert_eq!(store.count_telemetry().await.unwrap(), 1);
        assert_eq!(store.count_gpu_rows().await.unwrap(), 1);
        for r in fresh {
            assert!(store.get_sample(r.id).await.unwrap().is_some());
        }
    })
    .await;
}

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let r = row(3);
        {
            let store = db.store().await;
            store
                .write_batch(std::slice::from_ref(&r), &[])
                .await
                .unwrap();
        }
        let store = db.store().await;
        assert_eq!(store.get_sample(r.id).await.unwrap().as_ref(), Some(&r));
        store.ping().await.unwrap();
        assert!(!store.timescale(), "no timescaledb extension here");
        db.drop_db().await;
    }
}

#[tokio::test]
async fn bad_urls_are_clear() {
    let e = Store::connect("mysql://x", 1).await.unwrap_err();
    assert!(e.to_string().contains("unsupported scheme"), "{e}");
}

#[tokio::test]
async fn otlp_intervals_round_trip_idempotently_and_expire() {
    use llmscope_store::intervals::{Interval, IntervalKey, StreamState};
    each_backend(|store, backend| async move {
        let key = IntervalKey {
            site: "eu".into(),
            host: "gpu-7".into(),
            provider: "vllm".into(),
            model: "llama-3-8b".into(),
            operation: "chat".into(),
            instrument: "gen_ai.server.time_to_first_token".into(),
            token_type: String::new(),
        };
        let row = |end: i64, error: &str| Interval {
            id: format!("{end}-{error}"),
            key: key.clone(),
            error_type: error.into(),
            start_us: end - 60_000_000,
            end_us: end,
            count: 4,
            sum: 400.5,
            min: Some(90.0),
            max: None,
            quantiles: [Some(100.0), Some(110.0), None, Some(120.0)],
            temporality: "cumulative".into(),
            kind: "exponential".into(),
        };
        let rows = vec![
            row(1_000_000_000, ""),
            row(1_060_000_000, ""),
            row(1_060_000_000, "timeout"),
        ];
        let st = StreamState {
            stream: "abc".into(),
            state: "{\"n\":1}".into(),
        };
        assert_eq!(
            store
                .write_intervals(&rows, std::slice::from_ref(&st), 5)
                .await
                .unwrap(),
            3,
            "{backend:?}"
        );
        // an exporter's retry: nothing new; the stream's state moves on
        let st2 = StreamState {
            state: "{\"n\":2}".into(),
            ..st
        };
        assert_eq!(store.write_intervals(&rows, &[st2], 6).await.unwrap(), 0);
        let saved = store
            .otlp_streams(&["abc".into(), "other".into()])
            .await
            .unwrap();
        assert_eq!(saved.len(), 1);
        assert_eq!(saved["abc"], "{\"n\":2}");
        let back = store.intervals(&key, 0, i64::MAX, 100).await.unwrap();
        assert_eq!(
            back,
            vec![
                row(1_000_000_000, ""),
                row(1_060_000_000, ""),
                row(1_060_000_000, "timeout")
            ]
        );
        let other = IntervalKey {
            token_type: "input".into(),
            ..key.clone()
        };
        assert!(
            store
                .intervals(&other, 0, i64::MAX, 100)
                .await
                .unwrap()
                .is_empty()
        );
        let series = store.interval_series().await.unwrap();
        assert_eq!(series.len(), 1);
        assert_eq!((series[0].intervals, series[0].last_us), (2, 1_060_000_000));
        // retention: the older interval and the stream (last updated at 6 µs) go
        assert_eq!(store.prune_intervals(1_030_000_000, 1000).await.unwrap(), 1);
        assert_eq!(
            store.intervals(&key, 0, i64::MAX, 100).await.unwrap().len(),
            2
        );
        assert!(
            store
                .otlp_streams(&["abc".into()])
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

//! The read model and the one definition of the derived metrics: the SQL the charts and
//! rollups use gives the values `Metric::value` gives, and the catalogue's `last_value` is
//! the value of the newest point (both backends).

#![allow(clippy::unwrap_used)]

use llmscope_model::{CallStatus, Metric, Sample, SeriesId, Source, now_us};
use llmscope_store::samples::PointSelector;
use llmscope_store::testing::each_backend;
use uuid::Uuid;

const MINUTE: i64 = 60_000_000;

fn sample(ts_us: i64, latency: f64, ttft: Option<f64>, tokens_out: Option<i64>) -> Sample {
    Sample {
        id: Uuid::now_v7(),
        ts_us,
        site: "eu".into(),
        host: "gpu-1".into(),
        provider: "vllm".into(),
        model: "m".into(),
        source: Source::Probe,
        latency_ms: latency,
        ttft_ms: ttft,
        tokens_in: Some(10),
        tokens_out,
        status: CallStatus::Ok,
        http_status: Some(200),
        error: None,
        labels: Default::default(),
    }
}

/// Calls that exercise every branch of the formulas: no TTFT, one output token, zero output
/// tokens, TTFT equal to the latency, ordinary streams.
fn calls(t0: i64) -> Vec<Sample> {
    let shapes = [
        (900.0, None, None),
        (900.0, Some(100.0), Some(1)),
        (900.0, Some(100.0), Some(0)),
        (500.0, Some(500.0), Some(40)),
        (1200.0, Some(200.0), Some(51)),
        (2400.5, Some(310.25), Some(129)),
        (640.0, Some(40.0), None),
    ];
    shapes
        .iter()
        .enumerate()
        .map(|(i, &(l, t, n))| sample(t0 + i as i64 * MINUTE, l, t, n))
        .collect()
}

#[tokio::test]
async fn derived_metrics_in_sql_equal_the_rust_formulas() {
    each_backend(|store, backend| async move {
        let t0 = (now_us() / MINUTE - 60) * MINUTE;
        let rows = calls(t0);
        store.write_batch(&rows, &[]).await.unwrap();
        store.rollup_once(now_us() + 1_000_000).await.unwrap();
        let sel = PointSelector {
            site: "eu".into(),
            host: "gpu-1".into(),
            provider: "vllm".into(),
            model: "m".into(),
            source: llmscope_model::Source::Probe,
        };
        let to = t0 + rows.len() as i64 * MINUTE;
        for m in Metric::ALL.iter().copied() {
            let want: Vec<(i64, f64)> = rows
                .iter()
                .filter_map(|r| Some((r.ts_us, r.value(m)?)))
                .collect();
            // raw samples aggregated in SQL, one sample per bucket
            let raw = store.raw_buckets(&sel, m, t0, to, MINUTE).await.unwrap();
            let got: Vec<(i64, f64)> = raw.iter().map(|b| (b.ts, b.mean)).collect();
            assert_eq!(
                got.len(),
                want.len(),
                "{backend:?} {m}: {got:?} vs {want:?}"
            );
            for ((ta, a), (tb, b)) in got.iter().zip(&want) {
                assert_eq!(ta, tb);
                assert!((a - b).abs() < 1e-9, "{backend:?} {m}: sql {a} vs rust {b}");
            }
            // the minute rollups computed by the rollup job
            let id = SeriesId::series("eu", "gpu-1", "vllm", "m", m);
            let rolled = store.rollup_buckets(&id, t0, to, MINUTE).await.unwrap();
            let got: Vec<(i64, f64)> = rolled.iter().map(|b| (b.ts, b.mean)).collect();
            assert_eq!(got.len(), want.len(), "{backend:?} {m} rollups");
            for ((_, a), (_, b)) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-9,
                    "{backend:?} {m}: rollup {a} vs rust {b}"
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn the_catalogue_keeps_the_value_of_the_newest_point() {
    each_backend(|store, backend| async move {
        let t0 = (now_us() / MINUTE - 30) * MINUTE;
        // two points in the same minute: the last one's value, not the minute's mean
        let first = vec![
            sample(t0, 100.0, None, None),
            sample(t0 + 10_000_000, 200.0, None, None),
        ];
        store.write_batch(&first, &[]).await.unwrap();
        store.rollup_once(now_us()).await.unwrap();
        let last = |s: llmscope_store::Store| async move {
            let c = s
                .catalog(None, None, None, Some(Metric::LatencyMs))
                .await
                .unwrap();
            assert_eq!(c.len(), 1);
            (c[0].last_ts, c[0].last_value)
        };
        assert_eq!(
            last(store.clone()).await,
            (t0 + 10_000_000, 200.0),
            "{backend:?}"
        );
        // a late point (older than the newest) does not replace it (rollups run on the
        // receive time, so it is rolled up by the next run)
        store
            .write_batch(&[sample(t0 + 5_000_000, 999.0, None, None)], &[])
            .await
            .unwrap();
        store.rollup_once(now_us()).await.unwrap();
        assert_eq!(
            last(store.clone()).await,
            (t0 + 10_000_000, 200.0),
            "{backend:?}"
        );
        // a newer one does
        store
            .write_batch(&[sample(t0 + MINUTE, 300.0, None, None)], &[])
            .await
            .unwrap();
        store.rollup_once(now_us()).await.unwrap();
        assert_eq!(
            last(store.clone()).await,
            (t0 + MINUTE, 300.0),
            "{backend:?}"
        );
    })
    .await;
}

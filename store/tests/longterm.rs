//! The long horizon on both backends: 400 days of samples become daily and hourly rollups
//! whose quantiles are within the sketch's 0.5 % of the exact ones, usage per hour, and SLO
//! minutes; pruning the raw samples at 30 days keeps the rollups; a late batch folds into
//! the day it belongs to; an SLO made later is back-filled without counting a sample twice.

#![allow(clippy::unwrap_used)]

use llmscope_model::plan::Slo;
use llmscope_model::{CallStatus, Metric, Sample, SeriesId, Source, now_us};
use llmscope_spc::sketch::RELATIVE_ERROR;
use llmscope_store::longterm::{DAY_US, HOUR_US};
use llmscope_store::testing::each_backend;
use uuid::Uuid;

fn sample(ts_us: i64, latency: f64, ok: bool) -> Sample {
    Sample {
        id: Uuid::now_v7(),
        ts_us,
        site: "eu".into(),
        host: "gpu-1".into(),
        provider: "vllm".into(),
        model: "m".into(),
        source: Source::Probe,
        latency_ms: latency,
        ttft_ms: Some(latency / 4.0),
        tokens_in: Some(100),
        tokens_out: Some(50),
        status: if ok {
            CallStatus::Ok
        } else {
            CallStatus::Error
        },
        http_status: Some(if ok { 200 } else { 500 }),
        error: (!ok).then(|| "boom".into()),
        labels: Default::default(),
    }
}

fn exact(mut v: Vec<f64>, q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((q * v.len() as f64).ceil() as usize).max(1) - 1]
}

#[tokio::test]
async fn a_year_of_daily_rollups_outlives_the_raw_samples() {
    each_backend(|store, backend| async move {
        let now = now_us();
        let today = now.div_euclid(DAY_US) * DAY_US;
        // 400 days, 24 calls a day (one an hour), latency rising 1 ms a day, a failure a day
        let days = 400i64;
        let mut by_day: Vec<Vec<f64>> = Vec::new();
        let mut rows = Vec::new();
        for d in 0..days {
            let day0 = today - (days - d) * DAY_US;
            let mut v = Vec::new();
            for h in 0..24i64 {
                let lat = 500.0 + d as f64 + ((h * 37 + d * 11) % 23) as f64 * 7.5;
                let ok = h != 5;
                if ok {
                    v.push(lat);
                }
                rows.push(sample(day0 + h * HOUR_US + 60_000_000, lat, ok));
            }
            by_day.push(v);
        }
        for chunk in rows.chunks(2_000) {
            store.write_batch(chunk, &[]).await.unwrap();
        }
        // a first run catches up in bounded steps; call until the watermark stops moving
        let mut wm = 0;
        for _ in 0..10 {
            let w = store.rollup_long(now_us()).await.unwrap();
            if w == wm {
                break;
            }
            wm = w;
        }
        let key = SeriesId::series("eu", "gpu-1", "vllm", "m", Metric::LatencyMs).to_string();
        let daily = store
            .long_rows(&key, true, today - days * DAY_US, now)
            .await
            .unwrap();
        assert_eq!(daily.len(), days as usize, "{backend:?}");
        for (row, want) in daily.iter().zip(&by_day) {
            assert_eq!(row.n, want.len() as i64);
            for (got, q) in [(row.p50, 0.5), (row.p95, 0.95), (row.p99, 0.99)] {
                let w = exact(want.clone(), q);
                assert!(
                    ((got - w) / w).abs() <= RELATIVE_ERROR + 1e-12,
                    "{backend:?} q{q}: {got} vs {w}"
                );
            }
            let mean = want.iter().sum::<f64>() / want.len() as f64;
            assert!((row.mean - mean).abs() < 1e-9);
        }
        let hourly = store
            .long_rows(&key, false, today - 2 * DAY_US, now)
            .await
            .unwrap();
        assert_eq!(hourly.len(), 46, "{backend:?}: 23 successful hours a day");
        // usage: every call, failures counted, tokens summed
        let usage = store
            .usage(today - days * DAY_US, now, Some("eu"))
            .await
            .unwrap();
        assert_eq!(usage.iter().map(|u| u.calls).sum::<i64>(), days * 24);
        assert_eq!(usage.iter().map(|u| u.errors).sum::<i64>(), days);
        assert_eq!(
            usage.iter().map(|u| u.tokens_out).sum::<i64>(),
            days * 24 * 50
        );

        // the raw samples go at 30 days; the rollups stay
        let cutoff = now - 30 * DAY_US;
        while store.delete_older_than(cutoff, 5_000).await.unwrap() > 0 {}
        assert!(
            store.prune_long(now - 401 * DAY_US, now).await.unwrap() > 0,
            "hour sketches older than 2 days dropped"
        );
        let after = store
            .long_rows(&key, true, today - days * DAY_US, now)
            .await
            .unwrap();
        assert_eq!(
            after, daily,
            "{backend:?}: daily rollups survive the samples' retention"
        );
        let hourly_after = store
            .long_rows(&key, false, today - 2 * DAY_US, now)
            .await
            .unwrap();
        assert_eq!(
            hourly_after, hourly,
            "quantiles of hours stay without their sketches"
        );
        // rollup retention: 100 days
        store.prune_long(now - 100 * DAY_US, now).await.unwrap();
        let kept = store
            .long_rows(&key, true, today - days * DAY_US, now)
            .await
            .unwrap();
        assert!(kept.len() <= 101 && kept.len() >= 99, "{}", kept.len());

        // a late batch (an agent replaying its buffer) folds into its day
        let late_day = today - 3 * DAY_US;
        let before = store
            .long_rows(&key, true, late_day, late_day)
            .await
            .unwrap()[0]
            .clone();
        store
            .write_batch(&[sample(late_day + 90_000_000, 9_000.0, true)], &[])
            .await
            .unwrap();
        store.rollup_long(now_us()).await.unwrap();
        let folded = store
            .long_rows(&key, true, late_day, late_day)
            .await
            .unwrap()[0]
            .clone();
        assert_eq!(folded.n, before.n + 1);
        assert_eq!(folded.max, 9_000.0);

        // an SLO made now is back-filled from the raw samples kept (30 days), once
        let slo = Slo {
            id: "slo-test".into(),
            name: "ttft".into(),
            site: "eu".into(),
            model: String::new(),
            source: String::new(),
            metric: "ttft_ms".into(),
            threshold: Some(130.0),
            objective: 0.9,
            window_days: 30,
            origin: "api".into(),
        };
        store.put_slo(&slo, now, now - 30 * DAY_US).await.unwrap();
        let kept_rows: Vec<&Sample> = rows.iter().filter(|s| s.ts_us >= cutoff).collect();
        let total = kept_rows
            .iter()
            .filter(|s| s.status == CallStatus::Ok)
            .count() as i64
            + 1;
        let bad = kept_rows
            .iter()
            .filter(|s| s.status == CallStatus::Ok && s.ttft_ms.unwrap() > 130.0)
            .count() as i64
            + 1;
        let c = store
            .slo_count("slo-test", now - 31 * DAY_US, now + 60_000_000)
            .await
            .unwrap();
        assert_eq!((c.total, c.bad), (total, bad), "{backend:?}");
        // later samples are counted by the pass, the back-filled ones not again
        store
            .write_batch(
                &[
                    sample(now - 1_000_000, 400.0, true),
                    sample(now - 2_000_000, 400.0, false),
                ],
                &[],
            )
            .await
            .unwrap();
        store.rollup_long(now_us()).await.unwrap();
        let c2 = store
            .slo_count("slo-test", now - 31 * DAY_US, now + 60_000_000)
            .await
            .unwrap();
        assert_eq!(
            (c2.total, c2.bad),
            (total + 1, bad),
            "a failed call is not a TTFT call"
        );
        assert!(store.delete_slo("slo-test").await.unwrap());
        assert_eq!(
            store
                .slo_count("slo-test", 0, i64::MAX)
                .await
                .unwrap()
                .total,
            0
        );
    })
    .await;
}

//! A/B verdicts and capability through the REST API on both backends: the answer is the spc
//! crate's statistics (checked against scipy in spc/tests) over exactly the points stored for
//! the series and range asked for; bad requests name the parameter.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    BACKENDS, TestDb, call, config, enc, ingest_token, now_ns, push_all, series_samples, start,
};
use llmscope_collector::config::Secret;
use reqwest::Method;

const ADMIN: &str = "analysis-admin";

/// Lognormal-ish latencies around `median` (deterministic).
fn latencies(seed: u64, n: usize, median: f64) -> Vec<f64> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            let mut s = 0.0;
            for _ in 0..6 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            // sum of 6 uniforms: mean 3, variance 0.5
            (median.ln() + 0.25 * (s - 3.0) / 0.5f64.sqrt()).exp()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abtest_and_capability_answer_from_the_stored_points() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let mut cfg = config(db.url());
        cfg.admin_token = Some(Secret(ADMIN.into()));
        cfg.api.rollup_interval = std::time::Duration::from_millis(100);
        cfg.api.rollup_lag = std::time::Duration::from_millis(800);
        let running = start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;
        let t0 = now_ns() - 3_600 * 1_000_000_000;
        let a = latencies(1, 300, 500.0);
        let b = latencies(2, 280, 440.0);
        let mut all = series_samples("model-a", &a, t0);
        all.extend(series_samples("model-b", &b, t0));
        // model-a later gets slower: the before/after form on one series
        let a_later = latencies(3, 200, 560.0);
        all.extend(series_samples(
            "model-a",
            &a_later,
            t0 + 1_000 * 1_000_000_000,
        ));
        push_all(running.grpc_addr, &token, all, vec![]).await;

        let ka = "series|lab|gpu-1|ollama|model-a|latency_ms";
        let kb = "series|lab|gpu-1|ollama|model-b|latency_ms";
        let from = (t0 / 1_000_000) - 1;
        let mid = from + 600_000;
        let path = format!(
            "/api/v1/abtest?a={}&b={}&from={from}&to={mid}",
            enc(ka),
            enc(kb)
        );
        let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
        assert_eq!(code, 200, "{backend:?}: {text}");
        let want = llmscope_spc::compare::ab_test(&a, &b).unwrap();
        assert_eq!(
            (r["n_a"].as_u64(), r["n_b"].as_u64()),
            (Some(300), Some(280))
        );
        let close = |got: &serde_json::Value, want: f64| {
            let g = got.as_f64().unwrap();
            assert!(
                (g - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{g} vs {want}"
            );
        };
        close(&r["welch"]["t"], want.welch.t);
        close(&r["welch"]["p_value"], want.welch.p_value);
        close(&r["mann_whitney"]["u"], want.mann_whitney.u);
        close(&r["hodges_lehmann"]["shift"], want.hodges_lehmann.estimate);
        close(&r["ratio"]["estimate"], want.ratio.estimate);
        close(&r["ratio"]["ci"][1], want.ratio.ci[1]);
        let verdict = r["verdict"].as_str().unwrap();
        assert!(
            verdict.starts_with("B's latency is") && verdict.contains("lower"),
            "{verdict}"
        );
        assert_eq!(r["welch"]["scale"], "ln");

        // before/after on one series: the later period is slower
        let path = format!(
            "/api/v1/abtest?key={}&a_from={from}&a_to={mid}&b_from={}&b_to={}",
            enc(ka),
            from + 900_000,
            from + 1_300_000
        );
        let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
        assert_eq!(code, 200, "{text}");
        assert_eq!(
            (r["n_a"].as_u64(), r["n_b"].as_u64()),
            (Some(300), Some(200))
        );
        assert!(r["verdict"].as_str().unwrap().contains("higher"), "{r}");

        // capability against an SLO of 900 ms, on the ln scale
        let path = format!(
            "/api/v1/capability?key={}&from={from}&to={mid}&usl=900",
            enc(ka)
        );
        let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
        assert_eq!(code, 200, "{text}");
        let ln: Vec<f64> = a.iter().map(|v| v.ln()).collect();
        let c = llmscope_spc::capability::capability(&ln, 900f64.ln(), None).unwrap();
        close(&r["cpk"]["estimate"], c.cpk.estimate);
        close(&r["ppk"]["ci"][0], c.ppk.ci[0]);
        assert_eq!(r["scale"], "ln");
        assert_eq!(r["cp"], serde_json::Value::Null, "Cp needs two limits");
        let counts: u64 = r["histogram"]["counts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .sum();
        assert_eq!(counts, 300);

        // bad requests name the parameter
        for (path, field) in [
            (format!("/api/v1/abtest?a={}", enc(ka)), "a"),
            (
                format!("/api/v1/abtest?key={}&a_from={from}&a_to={mid}", enc(ka)),
                "b_from",
            ),
            (
                format!(
                    "/api/v1/abtest?a={}&b={}&from={from}&to={mid}",
                    enc(ka),
                    enc("series|lab|gpu-1|ollama|model-b|ttft_ms")
                ),
                "b",
            ),
            (format!("/api/v1/capability?key={}&usl=-1", enc(ka)), "usl"),
            (
                format!("/api/v1/capability?key={}&usl=900&lsl=1000", enc(ka)),
                "lsl",
            ),
        ] {
            let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
            assert_eq!(code, 400, "{path}: {text}");
            assert_eq!(r["field"], field, "{path}: {text}");
        }
        // trend: ten days of a series whose level rises 5 ms a day, every 10 minutes
        let day_ns = 86_400 * 1_000_000_000i64;
        let today0 = now_ns().div_euclid(day_ns) * day_ns;
        let mut rising = Vec::new();
        let mut exact_p95 = Vec::new();
        for d in 0..10i64 {
            let base = today0 - (10 - d) * day_ns;
            let day: Vec<f64> = latencies(100 + d as u64, 144, 400.0 + 5.0 * d as f64)
                .into_iter()
                .map(|v| v.min(2_000.0))
                .collect();
            let mut sorted = day.clone();
            sorted.sort_by(f64::total_cmp);
            // the lower quantile: the value of rank ceil(0.95 n)
            exact_p95.push(sorted[(0.95 * sorted.len() as f64).ceil() as usize - 1]);
            let mut s = series_samples("model-trend", &day, base);
            for (i, x) in s.iter_mut().enumerate() {
                x.ts_unix_nanos = base + i as i64 * 600 * 1_000_000_000;
            }
            rising.extend(s);
        }
        push_all(running.grpc_addr, &token, rising, vec![]).await;
        let kt = "series|lab|gpu-1|ollama|model-trend|latency_ms";
        let path = format!("/api/v1/trend?key={}&days=12&slo=900&horizon=60", enc(kt));
        // the daily rollups follow the samples within a few rollup runs
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let (r, text) = loop {
            let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
            assert_eq!(code, 200, "{text}");
            let full = r["daily"]
                .as_array()
                .is_some_and(|d| d.len() == 10 && d.iter().all(|x| x["n"] == 144));
            if full || std::time::Instant::now() > deadline {
                break (r, text);
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        };
        let daily = r["daily"].as_array().unwrap();
        assert_eq!(daily.len(), 10, "{text}");
        assert!(daily.iter().all(|d| d["n"] == 144), "{text}");
        // quantiles from the sketch: within 0.5 % of the exact ones
        for (d, want) in daily.iter().zip(&exact_p95) {
            let got = d["p95"].as_f64().unwrap();
            assert!(
                ((got - want) / want).abs() <= llmscope_spc::sketch::RELATIVE_ERROR + 1e-9,
                "{got} vs {want}"
            );
        }
        let csv_path = format!("/api/v1/trend?key={}&days=12&format=csv", enc(kt));
        let (code, _, csv_text) = call(Method::GET, &base, &csv_path, Some(ADMIN), None).await;
        assert_eq!(code, 200);
        assert!(
            csv_text.starts_with("day_ms,n,mean,min,max,p50,p95,p99\n"),
            "{csv_text}"
        );
        assert_eq!(csv_text.lines().count(), 11, "{csv_text}");
        let slope = r["theil_sen"]["slope_per_day"].as_f64().unwrap();
        let ci = &r["theil_sen"]["slope_ci"];
        // p95 of a lognormal around a median rising 5 ms/day rises ~7.5 ms/day
        assert!(slope > 2.0 && slope < 14.0, "{slope}");
        assert!(ci[0].as_f64().unwrap() <= slope && slope <= ci[1].as_f64().unwrap());
        assert_eq!(r["forecast"].as_array().unwrap().len(), 60);
        let days = r["days_to_slo"].as_u64();
        assert!(days.is_some_and(|d| d > 0), "{text}");
        assert!(
            r["summary"].as_str().unwrap().contains("reaches 900"),
            "{text}"
        );
        for (path, field) in [
            (format!("/api/v1/trend?key={}&days=1", enc(kt)), "days"),
            (format!("/api/v1/trend?key={}&slo=0", enc(kt)), "slo"),
            (
                format!("/api/v1/trend?key={}&horizon=1000", enc(kt)),
                "horizon",
            ),
        ] {
            let (code, r, text) = call(Method::GET, &base, &path, Some(ADMIN), None).await;
            assert_eq!(code, 400, "{path}: {text}");
            assert_eq!(r["field"], field, "{path}: {text}");
        }
        running.stop().await.unwrap();
    }
}

//! A/B through the API over two 30-day series (run by hand, both backends side by side):
//!
//! `cargo bench -p llmscope-collector --bench abtest_api -- 2592000 3`
//!   N samples for each of two series at 1 Hz (written with SQL), then
//!   `GET /api/v1/abtest?a=…&b=…&from=&to=` R times through a real collector. Split in the
//!   same run: the database read of both sides with the one-column read the endpoint uses
//!   (`Store::metric_values`), the previous read (`Store::sample_points`, whole rows), and the
//!   statistics alone (`spc::compare::ab_test`).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use llmscope_collector::config::Config;
use llmscope_model::{Metric, SeriesId, now_us};
use llmscope_store::samples::PointSelector;

async fn fill(url: &str, backend: &str, n: i64) -> i64 {
    let t_end = now_us();
    let t0 = t_end - n * 1_000_000;
    for (k, model, median) in [(0, "model-a", 800.0), (1, "model-b", 760.0)] {
        if backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query(&format!(
                "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {})
                 INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels, received_at)
                 SELECT printf('00000000-0000-7000-800{k}-%012d', i), {t0} + i * 1000000, 'bench', 'gpu-1', 'vllm', '{model}', 'probe',
                        {median} * (0.8 + 0.4 * ((i * 7919 + {k} * 31) % 997) / 997.0), 120, 12, 64, 'ok', 200, NULL, '{{}}', {t_end} FROM s",
                n - 1
            ))
            .execute(&pool)
            .await
            .unwrap();
        } else {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query(&format!(
                "INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels, received_at)
                 SELECT ('00000000-0000-7000-800{k}-' || lpad(i::text, 12, '0'))::uuid, 'epoch'::timestamptz + ({t0} + i * 1000000) * interval '1 microsecond',
                        'bench', 'gpu-1', 'vllm', '{model}', 'probe', {median} * (0.8 + 0.4 * ((i * 7919 + {k} * 31) % 997) / 997.0), 120, 12, 64, 'ok', 200, NULL, '{{}}', now()
                 FROM generate_series(0::int8, {}::int8) AS i",
                n - 1
            ))
            .execute(&pool)
            .await
            .unwrap();
            sqlx::query("ANALYZE").execute(&pool).await.unwrap();
        }
    }
    t_end
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

async fn run(backend: &str, n: i64, rounds: usize) {
    let (url, _dir) = support::database(backend, "abtest").await;
    let mut cfg = Config {
        database_url: url.clone(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    cfg.spc.enabled = false;
    // the first sample is exactly 30 days old: keep the retention job away from it
    cfg.retention = Duration::from_secs(90 * 86_400);
    let admin = "llms_bench_abtest_admin_token";
    cfg.admin_token = Some(llmscope_collector::config::Secret(admin.into()));
    cfg.api.rollup_interval = Duration::from_secs(3600);
    let running = llmscope_collector::serve::start(&cfg).await.unwrap();
    // the range of the samples written (a slow fill must not move it)
    let t_end = fill(&url, backend, n).await;
    let to = t_end / 1000 + 1_000;
    let from = (t_end - n * 1_000_000) / 1000 - 1_000;
    let key = |m: &str| format!("series%7Cbench%7Cgpu-1%7Cvllm%7C{m}%7Clatency_ms");
    let api = format!(
        "http://{}/api/v1/abtest?a={}&b={}&from={from}&to={to}",
        running.http_addr,
        key("model-a"),
        key("model-b")
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let sel = |m: &str| {
        PointSelector::of(&SeriesId::series(
            "bench",
            "gpu-1",
            "vllm",
            m,
            Metric::LatencyMs,
        ))
    };
    let (f_us, t_us) = (from * 1000, to * 1000);
    let (mut api_s, mut lean_s, mut rows_s, mut stats_s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let v: serde_json::Value = client
            .get(&api)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        api_s.push(secs(t));
        assert_eq!(v["n_a"], n, "{v}");
        let t = Instant::now();
        let a = running
            .store
            .metric_values(&sel("model-a"), Metric::LatencyMs, f_us, t_us, 6_000_000)
            .await
            .unwrap();
        let b = running
            .store
            .metric_values(&sel("model-b"), Metric::LatencyMs, f_us, t_us, 6_000_000)
            .await
            .unwrap();
        lean_s.push(secs(t));
        let t = Instant::now();
        let ra = running
            .store
            .sample_points(&sel("model-a"), f_us, t_us, false, 6_000_000)
            .await
            .unwrap();
        let rb = running
            .store
            .sample_points(&sel("model-b"), f_us, t_us, false, 6_000_000)
            .await
            .unwrap();
        rows_s.push(secs(t));
        assert_eq!((ra.len(), rb.len()), (a.len(), b.len()));
        let t = Instant::now();
        let r = llmscope_spc::compare::ab_test(&a, &b).unwrap();
        stats_s.push(secs(t));
        assert_eq!(r.n_a, a.len());
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{backend:>8}: 2 x {n} points; best of {rounds}: GET /api/v1/abtest {:.2} s | read, one column (the endpoint's) {:.2} s | read, whole rows (before) {:.2} s | ab_test alone {:.2} s",
        min(&api_s),
        min(&lean_s),
        min(&rows_s),
        min(&stats_s)
    );
    running.stop().await.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let n: i64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_592_000);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    for backend in ["postgres", "sqlite"] {
        run(backend, n, rounds).await;
    }
}

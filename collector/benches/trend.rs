//! Long-horizon trend through the API (run by hand, both backends side by side):
//!
//! `cargo bench -p llmscope-collector --bench trend -- 1000 365 200`
//!   S series × D days of daily rollups (written with SQL: what the rollup pass keeps), then
//!   `GET /api/v1/trend?key=…&days=D&slo=…` for R randomly chosen series through a real
//!   collector: p50 / p95 / max per call (daily rows read, Theil–Sen, Holt fit, forecast,
//!   incident and re-baseline marks). Then a forecast backtest: 200 synthetic daily-p95
//!   series (linear trend + AR(1) noise), Holt fitted on the first D − 30 days, the share of
//!   the last 30 days inside the 95 % prediction interval.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use llmscope_collector::config::Config;
use llmscope_model::now_us;

const DAY: i64 = 86_400_000_000;

async fn fill(url: &str, backend: &str, series: i64, days: i64) {
    let today = now_us().div_euclid(DAY) * DAY;
    let first = today - (days - 1) * DAY;
    // key, day, n, sum, min, max, p50, p95, p99, sketch — p95 rising with the series' own slope
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(&format!(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {}),
                            d(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM d WHERE j < {})
             INSERT INTO rollup_1d (series_key, day, n, sum, min, max, p50, p95, p99, sketch)
             SELECT 'series|bench|gpu-' || i || '|vllm|llama|ttft_ms', {first} + j * {DAY}, 1440, 1440 * 300.0, 100, 2000,
                    300 + j * (i % 7) * 0.1, 400 + j * (i % 7) * 0.2 + ((i * 31 + j * 17) % 23), 600 + j * 0.3, '' FROM s, d",
            series - 1,
            days - 1
        ))
        .execute(&pool)
        .await
        .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO rollup_1d (series_key, day, n, sum, min, max, p50, p95, p99, sketch)
             SELECT 'series|bench|gpu-' || i || '|vllm|llama|ttft_ms', {first} + j * {DAY}, 1440, 1440 * 300.0, 100, 2000,
                    300 + j * (i % 7) * 0.1, 400 + j * (i % 7) * 0.2 + ((i * 31 + j * 17) % 23), 600 + j * 0.3, ''
             FROM generate_series(0, {}) AS i, generate_series(0, {}) AS j",
            series - 1,
            days - 1
        ))
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(backend: &str, series: i64, days: i64, rounds: usize) {
    let (url, _dir) = support::database(backend, "trend").await;
    let mut cfg = Config {
        database_url: url.clone(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    cfg.spc.enabled = false;
    let admin = "llms_bench_trend_admin_token";
    cfg.admin_token = Some(llmscope_collector::config::Secret(admin.into()));
    cfg.api.rollup_interval = Duration::from_secs(3600);
    let running = llmscope_collector::serve::start(&cfg).await.unwrap();
    let t = Instant::now();
    fill(&url, backend, series, days).await;
    let fill_s = t.elapsed().as_secs_f64();
    let client = reqwest::Client::new();
    let mut times = Vec::new();
    let mut x: u64 = 12345;
    for i in 0..rounds + 5 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let s = (x >> 33) as i64 % series;
        let url = format!(
            "http://{}/api/v1/trend?key=series%7Cbench%7Cgpu-{s}%7Cvllm%7Cllama%7Cttft_ms&days={days}&slo=800&horizon=90",
            running.http_addr
        );
        let t = Instant::now();
        let v: serde_json::Value = client
            .get(&url)
            .bearer_auth(admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(
            v["daily"].as_array().map(Vec::len),
            Some(days as usize),
            "{v}"
        );
        if i >= 5 {
            times.push(ms);
        }
    }
    println!(
        "{backend:>8}: {series} series x {days} days ({} rows) filled in {fill_s:.1} s; trend of one series through the API: p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms  ({rounds} calls)",
        series * days,
        pct(&mut times, 0.5),
        pct(&mut times, 0.95),
        pct(&mut times, 1.0)
    );
    running.stop().await.unwrap();
}

/// Holt on synthetic trends: the share of held-out days inside the 95 % interval.
fn backtest(days: usize) {
    let (mut inside, mut total) = (0usize, 0usize);
    let mut x: u64 = 99;
    let mut normal = || {
        let mut s = 0.0;
        for _ in 0..12 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s += (x >> 11) as f64 / (1u64 << 53) as f64;
        }
        s - 6.0
    };
    for k in 0..200 {
        let slope = 0.5 + (k % 10) as f64 * 0.3;
        let mut e = 0.0;
        let y: Vec<f64> = (0..days)
            .map(|d| {
                e = 0.3 * e + 8.0 * normal();
                400.0 + slope * d as f64 + e
            })
            .collect();
        let fit = llmscope_spc::trend::Holt::fit(&y[..days - 30]).unwrap();
        for (s, actual) in y[days - 30..].iter().enumerate() {
            let f = fit.forecast(s + 1);
            total += 1;
            if f.interval[0] <= *actual && *actual <= f.interval[1] {
                inside += 1;
            }
        }
    }
    println!(
        "backtest: 200 synthetic daily-p95 series ({days} days, slopes 0.5..3.2 ms/day, AR(1) noise), Holt on the first {} days: {:.1} % of the last 30 days inside the 95 % prediction interval",
        days - 30,
        inside as f64 * 100.0 / total as f64
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().filter(|a| !a.starts_with("--")).collect();
    let series: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let days: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(365);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(200);
    for backend in ["postgres", "sqlite"] {
        run(backend, series, days, rounds).await;
    }
    backtest(days as usize);
}

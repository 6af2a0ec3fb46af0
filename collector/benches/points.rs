//! Points query over a long range (run by hand, both backends side by side):
//!
//! `cargo bench -p llmscope-collector --bench points -- 2592000 20`
//!   N samples of one series at 1 Hz (2 592 000 = 30 days), inserted with SQL, rolled up by
//!   the collector's rollup job code, then `GET /api/v1/series/points` for the whole range
//!   with `max_points=2000` through a real collector, R times: p50 / p95 / max, bucket count.
//!   Asked in alternation by two callers: an admin (every site, no filter) and a viewer limited
//!   to the series' site by a personal token (the permission filter), so the filter's cost is
//!   read side by side from one run.

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use llmscope_collector::config::Config;
use llmscope_model::now_us;

/// Inserts `n` samples, one per second ending now, with a daily wave and noise.
async fn fill(url: &str, backend: &str, n: i64) {
    let t_end = now_us();
    let t0 = t_end - n * 1_000_000;
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query(&format!(
            "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {})
             INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels, received_at)
             SELECT printf('00000000-0000-7000-8000-%012d', i), {t0} + i * 1000000, 'bench', 'gpu-1', 'vllm', 'llama', 'probe',
                    800 + 50 * ((i * 7919) % 97) / 97.0, 120 + (i % 13), 12, 64, 'ok', 200, NULL, '{{}}', {t_end} FROM s",
            n - 1
        ))
        .execute(&pool)
        .await
        .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query(&format!(
            "INSERT INTO samples (id, ts, site, host, provider, model, source, latency_ms, ttft_ms, tokens_in, tokens_out, status, http_status, error, labels, received_at)
             SELECT ('00000000-0000-7000-8000-' || lpad(i::text, 12, '0'))::uuid, 'epoch'::timestamptz + ({t0} + i * 1000000) * interval '1 microsecond',
                    'bench', 'gpu-1', 'vllm', 'llama', 'probe', 800 + 50 * ((i * 7919) % 97) / 97.0, 120 + (i % 13), 12, 64, 'ok', 200, NULL, '{{}}', now()
             FROM generate_series(0::int8, {}::int8) AS i",
            n - 1
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

async fn run(backend: &str, n: i64, rounds: usize) {
    let (url, _dir) = support::database(backend, "points").await;
    let mut cfg = Config {
        database_url: url.clone(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    cfg.spc.enabled = false;
    let admin = "llms_bench_points_admin_token";
    cfg.admin_token = Some(llmscope_collector::config::Secret(admin.into()));
    cfg.api.rollup_interval = Duration::from_secs(3600); // the bench rolls up itself
    let running = llmscope_collector::serve::start(&cfg).await.unwrap();
    let t = Instant::now();
    fill(&url, backend, n).await;
    let fill_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    // everything was received just now (after the job's first run at start)
    running
        .store
        .rollup_once(now_us() + 1_000_000)
        .await
        .unwrap();
    let rollup_s = t.elapsed().as_secs_f64();
    let key = "series%7Cbench%7Cgpu-1%7Cvllm%7Cllama%7Clatency_ms";
    let to = now_us() / 1000;
    let from = to - n * 1000 - 60_000;
    let url = format!(
        "http://{}/api/v1/series/points?key={key}&from={from}&to={to}&max_points=2000",
        running.http_addr
    );
    let client = reqwest::Client::new();
    let viewer = viewer_token(&client, running.http_addr, admin).await;
    let mut times = [Vec::new(), Vec::new()];
    let mut buckets = [0, 0];
    let mut count = [0, 0];
    for i in 0..rounds + 2 {
        for (c, token) in [admin, viewer.as_str()].into_iter().enumerate() {
            let t = Instant::now();
            let v: serde_json::Value = client
                .get(&url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let ms = t.elapsed().as_secs_f64() * 1e3;
            if i >= 2 {
                times[c].push(ms); // two warm-up rounds
            }
            let b = v["buckets"].as_array().unwrap_or_else(|| panic!("{v}"));
            buckets[c] = b.len();
            count[c] = b.iter().map(|x| x["count"].as_i64().unwrap()).sum::<i64>();
        }
    }
    assert_eq!(buckets[0], buckets[1], "both callers see the same buckets");
    assert_eq!(count[0], count[1], "both callers see the same samples");
    // the peer: the same 2 000 buckets aggregated from raw samples in one SQL statement
    let width = (n * 1_000_000 + 60_000_000) / 2000;
    let (from_us, to_us) = (from * 1000, to * 1000);
    let raw_sql = if backend == "sqlite" {
        format!("SELECT (ts - {from_us}) / {width} AS b, MIN(latency_ms), MAX(latency_ms), AVG(latency_ms), COUNT(*) FROM samples
                 WHERE site = 'bench' AND host = 'gpu-1' AND provider = 'vllm' AND model = 'llama' AND status = 'ok' AND ts >= {from_us} AND ts <= {to_us} GROUP BY 1")
    } else {
        format!("SELECT ((extract(epoch from ts) * 1000000)::int8 - {from_us}) / {width} AS b, MIN(latency_ms), MAX(latency_ms), AVG(latency_ms), COUNT(*) FROM samples
                 WHERE site = 'bench' AND host = 'gpu-1' AND provider = 'vllm' AND model = 'llama' AND status = 'ok'
                   AND ts >= 'epoch'::timestamptz + {from_us} * interval '1 microsecond' AND ts <= 'epoch'::timestamptz + {to_us} * interval '1 microsecond' GROUP BY 1")
    };
    let mut raw_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let rows = if backend == "sqlite" {
            let pool = sqlx::SqlitePool::connect(&cfg.database_url).await.unwrap();
            sqlx::query(&raw_sql).fetch_all(&pool).await.unwrap().len()
        } else {
            let pool = sqlx::PgPool::connect(&cfg.database_url).await.unwrap();
            sqlx::query(&raw_sql).fetch_all(&pool).await.unwrap().len()
        };
        assert!(rows > 1900 && rows <= 2001, "{rows} buckets");
        raw_times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{backend:<8} peer: one GROUP BY over the raw samples (no rollups, SQL only, no HTTP): p50 {:.0} ms over 3",
        pct(&mut raw_times, 0.5)
    );
    let [mut all, mut limited] = times;
    println!(
        "{backend:<8} {n} samples (insert {fill_s:.1} s, rollup {rollup_s:.1} s): points query over the whole range → {} buckets covering {} samples:",
        buckets[0], count[0]
    );
    for (who, t) in [
        ("admin (every site, no filter)", &mut all),
        ("viewer limited to the site (filter)", &mut limited),
    ] {
        println!(
            "{backend:<8}   {who:<38} p50 {:.1} ms  p95 {:.1} ms  max {:.1} ms over {rounds}",
            pct(t, 0.5),
            pct(t, 0.95),
            pct(t, 1.0)
        );
    }
    running.stop().await.unwrap();
}

/// A viewer limited to site `bench`, and its personal token, created through the API.
async fn viewer_token(client: &reqwest::Client, http: std::net::SocketAddr, admin: &str) -> String {
    let user: serde_json::Value = client
        .post(format!("http://{http}/api/v1/users"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"email": "bench-viewer@example.com", "role": "viewer", "sites": ["bench"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = user["id"].as_str().unwrap_or_else(|| panic!("{user}"));
    let token: serde_json::Value = client
        .post(format!("http://{http}/api/v1/users/{id}/tokens"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"name": "bench"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{token}"))
        .to_owned()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: i64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_592_000);
    let rounds: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(20);
    for backend in ["postgres", "sqlite"] {
        run(backend, n, rounds).await;
    }
}

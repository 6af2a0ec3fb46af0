//! Live SPC benchmarks (release build, run by hand):
//!
//! `cargo bench -p llmscope-collector --bench live_spc -- memory 100000 [1|4]`
//!   resident memory of the engine with N active series (each past Phase I and judging): one
//!   metric per model-host (the worst case: every series carries its model-host's call
//!   state), or 4 (a probe: latency, TTFT, TPOT, tokens/s share one);
//! `cargo bench -p llmscope-collector --bench live_spc -- latency 300`
//!   time from a sample's commit (its ack) to its violation row, over N violations, with a
//!   real collector on SQLite and PostgreSQL.

#![allow(missing_docs, clippy::unwrap_used)]

use std::time::{Duration, Instant};

use llmscope_collector::config::Config;
use llmscope_live::{Engine, EngineConfig};
use llmscope_model::{CallStatus, LiveEvent, Sample, SeriesId, Source, SystemClock, now_us};
use llmscope_proto::v1;
use llmscope_store::Store;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn row(series: usize, i: i64, t0: i64, v: f64) -> Sample {
    row_of(series, i, t0, v, false)
}

/// A probe sample of model-host `host`; with `full`, TTFT and tokens too (4 metrics).
fn row_of(host: usize, i: i64, t0: i64, v: f64, full: bool) -> Sample {
    let series = host;
    Sample {
        id: uuid::Uuid::now_v7(),
        ts_us: t0 + i * 1_000_000,
        site: format!("site-{}", series % 10),
        host: format!("gpu-{series}"),
        provider: "vllm".into(),
        model: "llama".into(),
        source: Source::Probe,
        latency_ms: v,
        ttft_ms: full.then_some(v / 4.0 + (i % 3) as f64),
        tokens_in: None,
        tokens_out: full.then_some(16 + i % 2),
        status: CallStatus::Ok,
        http_status: None,
        error: None,
        labels: Default::default(),
    }
}

async fn memory(n: usize, per_host: usize) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/m.db", dir.path().display()), 4)
        .await
        .unwrap();
    // a listener as in the collector (metrics, dispatcher): the engine builds its events
    let (events, mut rx) = tokio::sync::broadcast::channel::<LiveEvent>(1024);
    tokio::spawn(async move {
        while !matches!(
            rx.recv().await,
            Err(tokio::sync::broadcast::error::RecvError::Closed)
        ) {}
    });
    let mut engine = Engine::new(
        store,
        EngineConfig {
            baseline_points: 5,
            ..EngineConfig::default()
        },
        SystemClock::shared(),
        events,
    );
    let t0 = now_us() - 3_600_000_000;
    // warm the allocator and the connection pool before the first reading
    engine
        .process(&[row(usize::MAX / 2, 0, t0, 1.0)])
        .await
        .unwrap();
    let before = rss_kib();
    let started = Instant::now();
    let mut half = 0;
    let hosts = n / per_host;
    let chunk_hosts = 2_000 / per_host;
    for (k, chunk) in (0..hosts)
        .collect::<Vec<_>>()
        .chunks(chunk_hosts)
        .enumerate()
    {
        if k * chunk_hosts == hosts / 2 {
            half = rss_kib();
        }
        let mut batch = Vec::with_capacity(chunk.len() * 15);
        for &s in chunk {
            for i in 0..15 {
                let v = 100.0 + ((s as i64 * 7 + i * 13) % 11) as f64;
                batch.push(row_of(s, i, t0, v, per_host == 4));
            }
        }
        engine.process(&batch).await.unwrap();
    }
    let after = rss_kib();
    let per = (after.saturating_sub(before)) as f64 * 1024.0 / n as f64;
    // the second half's growth per series: per-series state without start-up and transient
    // batch allocations
    let marginal = (after.saturating_sub(half)) as f64 * 1024.0 / (n - n / 2) as f64;
    println!(
        "{{\"series\":{},\"metrics_per_model_host\":{per_host},\"engine_series\":{},\"rss_before_kib\":{before},\"rss_half_kib\":{half},\"rss_after_kib\":{after},\"bytes_per_series\":{per:.0},\"marginal_bytes_per_series\":{marginal:.0},\"seconds\":{:.1}}}",
        n,
        engine.series_count(),
        started.elapsed().as_secs_f64()
    );
}

async fn latency(n: usize, url: &str) -> (f64, f64, f64) {
    let mut cfg = Config {
        database_url: url.to_owned(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        insecure_no_auth: true,
        ..Default::default()
    };
    // a 50-point Phase I (the loop below sends 50 per series)
    cfg.spc.baseline_points = 50;
    let running = llmscope_collector::serve::start(&cfg).await.unwrap();
    let mut client = v1::ingest_service_client::IngestServiceClient::connect(format!(
        "http://{}",
        running.grpc_addr
    ))
    .await
    .unwrap();
    let t0 = (now_us() - 3_000_000_000) * 1000;
    let sample = |series: usize, i: i64, v: f64| v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: t0 + i * 1_000_000_000,
        site: "bench".into(),
        host: format!("gpu-{series}"),
        provider: "vllm".into(),
        model: "llama".into(),
        source: v1::Source::Probe as i32,
        latency_ms: v,
        status: v1::CallStatus::Ok as i32,
        ..Default::default()
    };
    // Phase I for every series
    for s in 0..n {
        let batch: Vec<v1::Sample> = (0..50)
            .map(|i| sample(s, i, 100.0 + ((i * 7) % 5) as f64))
            .collect();
        client
            .push(v1::IngestRequest {
                batch_seq: 0,
                samples: batch,
                telemetry: vec![],
            })
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut lat = Vec::with_capacity(n);
    for s in 0..n {
        let key: SeriesId = format!("series|bench|gpu-{s}|vllm|llama|latency_ms")
            .parse()
            .unwrap();
        client
            .push(v1::IngestRequest {
                batch_seq: 1,
                samples: vec![sample(s, 60, 500.0)],
                telemetry: vec![],
            })
            .await
            .unwrap();
        let acked = Instant::now();
        loop {
            if !running
                .store
                .open_violations(&key)
                .await
                .unwrap()
                .is_empty()
            {
                lat.push(acked.elapsed().as_secs_f64() * 1e3);
                break;
            }
            if acked.elapsed() > Duration::from_secs(10) {
                panic!("no violation for {key}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    running.stop().await.unwrap();
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
    (p(0.5), p(0.99), p(1.0))
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("memory") => {
            memory(
                args.get(1).and_then(|s| s.parse().ok()).unwrap_or(100_000),
                if args.get(2).map(String::as_str) == Some("4") {
                    4
                } else {
                    1
                },
            )
            .await
        }
        Some("latency") => {
            let n = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(300);
            let dir = tempfile::tempdir().unwrap();
            let lite = latency(n, &format!("sqlite://{}/l.db", dir.path().display())).await;
            println!(
                "{{\"backend\":\"sqlite\",\"violations\":{n},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
                lite.0, lite.1, lite.2
            );
            let admin = std::env::var("LLMSCOPE_TEST_DATABASE_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
            let name = format!("llmscope_bench_{}", uuid::Uuid::new_v4().simple());
            let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
            {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            let pg = latency(n, &format!("{base}/{name}")).await;
            println!(
                "{{\"backend\":\"postgres\",\"violations\":{n},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
                pg.0, pg.1, pg.2
            );
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&admin).await.unwrap();
            let _ = sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
                .execute(&mut c)
                .await;
        }
        _ => {
            // `cargo bench` with no arguments (e.g. in CI builds) does nothing
            eprintln!(
                "usage: cargo bench -p llmscope-collector --bench live_spc -- memory N | latency N"
            );
        }
    }
}

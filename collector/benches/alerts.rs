//! Alert delivery benchmarks (release build, run by hand; both backends side by side):
//!
//! `cargo bench -p llmscope-collector --bench alerts -- latency 200`
//!   time from a violation's commit (the transaction that writes it and its outbox row) to
//!   the webhook receiver getting it, over N violations opened one at a time (each its own
//!   group, default dispatcher settings: poll 250 ms, group_wait 0);
//! `cargo bench -p llmscope-collector --bench alerts -- throughput 5000`
//!   N violations in N groups committed at once; time until the receiver has all of them
//!   (signed webhook per group, a receiver that answers 200 at once).

#![allow(missing_docs, clippy::unwrap_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use llmscope_alert::config::{AlertsConfig, ChannelConfig};
use llmscope_collector::config::{Config, Secret};
use llmscope_model::{
    BaselineMode, FrozenBaseline, Metric, Point, Scope, SeriesId, Violation, now_us,
};
use llmscope_store::Store;
use llmscope_store::violations::ViolationOp;

type Seen = Arc<Mutex<HashMap<String, Instant>>>;

async fn hook(State(seen): State<Seen>, body: Bytes) -> &'static str {
    let now = Instant::now();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut s = seen.lock().unwrap();
    for n in v["notifications"].as_array().into_iter().flatten() {
        s.entry(n["violation_id"].as_str().unwrap_or("").to_owned())
            .or_insert(now);
    }
    "ok"
}

async fn receiver() -> (String, Seen) {
    let seen = Seen::default();
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(seen.clone());
    tokio::spawn(async move { axum::serve(l, app).await });
    (url, seen)
}

fn op(i: usize) -> ViolationOp {
    let m = format!("model-{i}");
    let series = SeriesId::series("bench", "gpu-1", "vllm", &m, Metric::LatencyMs);
    let b = llmscope_spc::Baseline::given(100.0, 10.0, 3.0, llmscope_spc::Transform::None).unwrap();
    let mut v = Violation::open(
        series,
        Scope::Series,
        1,
        1,
        vec![Point::sample(uuid::Uuid::nil(), 1, 250.0)],
        FrozenBaseline::new(0, Scope::Series, b, (0, 0), BaselineMode::Auto),
    );
    v.id = format!("bench-{i}");
    ViolationOp::Open(v.leading(llmscope_model::Severity::Critical))
}

async fn start(url: &str, hook: &str) -> llmscope_collector::serve::Running {
    let mut cfg = Config {
        database_url: url.into(),
        grpc_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        ..Config::default()
    };
    cfg.spc.enabled = false;
    cfg.alerts = AlertsConfig {
        channels: vec![ChannelConfig {
            name: "bench".into(),
            kind: "webhook".into(),
            url: hook.into(),
            secret: Some(Secret("bench-secret".into())),
            ..ChannelConfig::default()
        }],
        ..AlertsConfig::default()
    };
    llmscope_collector::serve::start(&cfg).await.unwrap()
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn latency(backend: &str, n: usize) {
    let (url, _dir) = support::database(backend, "alerts").await;
    let (hook, seen) = receiver().await;
    let running = start(&url, &hook).await;
    let store: &Store = &running.store;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        store.apply_violations(&[op(i)], now_us()).await.unwrap();
        let t0 = Instant::now();
        let id = format!("bench-{i}");
        loop {
            if let Some(t) = seen.lock().unwrap().get(&id) {
                lat.push((*t - t0).as_secs_f64() * 1e3);
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        // de-phase from the dispatcher's tick
        tokio::time::sleep(Duration::from_millis(7 + (i % 13) as u64)).await;
    }
    println!(
        "{backend:<8} commit → webhook received over {n}: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0)
    );
    running.stop().await.unwrap();
}

async fn throughput(backend: &str, n: usize) {
    let (url, _dir) = support::database(backend, "alerts").await;
    let (hook, seen) = receiver().await;
    let running = start(&url, &hook).await;
    let ops: Vec<ViolationOp> = (0..n).map(op).collect();
    for chunk in ops.chunks(1000) {
        running
            .store
            .apply_violations(chunk, now_us())
            .await
            .unwrap();
    }
    let t0 = Instant::now();
    while seen.lock().unwrap().len() < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{backend:<8} dispatcher: {n} notifications in {n} groups delivered in {s:.2} s = {:.0} messages/s",
        n as f64 / s
    );
    running.stop().await.unwrap();
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let mode = args.first().map(String::as_str).unwrap_or("latency");
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    for backend in ["sqlite", "postgres"] {
        match mode {
            "latency" => latency(backend, n).await,
            "throughput" => throughput(backend, n).await,
            other => panic!("unknown mode {other}; use latency or throughput"),
        }
    }
}

//! Shared test support: one database per test on each backend, in-process collectors, and
//! sample builders.
#![allow(dead_code, unused_imports)]

use std::time::{SystemTime, UNIX_EPOCH};

use llmscope_collector::config::Config;
use llmscope_collector::serve::{self, Running};
use llmscope_proto::v1;
use llmscope_store::Store;

pub use llmscope_store::testing::{BACKENDS, Backend, TestDb};

/// Percent-encodes a query value (series keys hold `|`).
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A collector config on random local ports. The engine reads rule configuration and
/// baselines before every batch (`spc.refresh_interval = 0s`), so a test that changes them
/// need not wait for a refresh.
pub fn config(url: &str) -> Config {
    let mut c = Config {
        database_url: url.to_owned(),
        grpc_listen: "127.0.0.1:0".parse().expect("addr"),
        http_listen: "127.0.0.1:0".parse().expect("addr"),
        ..Default::default()
    };
    c.spc.refresh_interval = std::time::Duration::ZERO;
    c
}

/// [`config`] with the first release's Phase I (50 points, σ from moving ranges, no
/// transform), for tests that check Nelson rule episodes against the `spc` crate's
/// prediction. The paging CUSUM is designed for one false page per 2 000 probes, which a
/// 50-point Phase I can deliver.
pub fn nelson_config(url: &str) -> Config {
    let mut c = config(url);
    c.spc.baseline_points = 50;
    c.spc.sigma_method = llmscope_spc::SigmaMethod::Mrbar;
    c.spc.transform = llmscope_spc::Transform::None;
    c.spc.arl0 = 2000.0;
    c
}

pub async fn start(cfg: &Config) -> Running {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("warn"))
        .with_test_writer()
        .try_init();
    serve::start(cfg).await.expect("collector starts")
}

pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as i64
}

/// A valid sample with a fresh UUIDv7.
pub fn sample(site: &str, host: &str, latency_ms: f64) -> v1::Sample {
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: now_ns(),
        site: site.to_owned(),
        host: host.to_owned(),
        provider: "ollama".into(),
        model: "llama3.1:8b".into(),
        source: v1::Source::Probe as i32,
        latency_ms,
        ttft_ms: Some(latency_ms / 10.0),
        tokens_in: Some(12),
        tokens_out: Some(64),
        status: v1::CallStatus::Ok as i32,
        http_status: Some(200),
        error: String::new(),
        labels: [("replica".to_owned(), "a".to_owned())]
            .into_iter()
            .collect(),
    }
}

pub fn telemetry(site: &str, host: &str, gpus: u32) -> v1::Telemetry {
    v1::Telemetry {
        ts_unix_nanos: now_ns(),
        site: site.to_owned(),
        host: host.to_owned(),
        cpu_pct: 42.5,
        mem_used_bytes: 8 << 30,
        mem_total_bytes: 64 << 30,
        load1: 1.25,
        gpus: (0..gpus)
            .map(|i| v1::GpuStats {
                index: i,
                uuid: format!("GPU-{i}"),
                name: "NVIDIA H100 80GB HBM3".into(),
                util_pct: Some(97.0),
                mem_used_bytes: Some(70 << 30),
                mem_total_bytes: Some(80 << 30),
                temp_c: Some(71.0),
                power_w: Some(650.5),
                sm_clock_mhz: Some(1980),
                throttle_reasons: Some(0),
                ..Default::default()
            })
            .collect(),
        server_metrics: Vec::new(),
    }
}

/// The values of the public vectors' last case (in control, then a shift and a drift).
pub fn public_vector() -> Vec<f64> {
    let doc: serde_json::Value = serde_json::from_str(include_str!(
        "../../../spc/tests/fixtures/nelson-vectors.json"
    ))
    .expect("fixture");
    doc["cases"]
        .as_array()
        .expect("cases")
        .last()
        .expect("a case")["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_f64().expect("a number"))
        .collect()
}

/// Creates an ingest token for `site` and returns it.
pub async fn ingest_token(store: &Store, site: &str) -> String {
    let (t, rec) = llmscope_collector::auth::generate_token(
        llmscope_store::tokens::Role::Ingest,
        Some(site.into()),
        "test",
    );
    store.insert_token(&rec, None).await.expect("token stored");
    t
}

/// Pushes samples (in chunks of 25) and telemetry (with the first chunk) over gRPC and
/// checks nothing was rejected.
pub async fn push_all(
    addr: std::net::SocketAddr,
    token: &str,
    samples: Vec<v1::Sample>,
    telemetry: Vec<v1::Telemetry>,
) {
    let mut c = v1::ingest_service_client::IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    for (i, chunk) in samples.chunks(25).enumerate() {
        let mut r = tonic::Request::new(v1::IngestRequest {
            batch_seq: i as u64,
            samples: chunk.to_vec(),
            telemetry: if i == 0 { telemetry.clone() } else { vec![] },
        });
        r.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
        let ack = c.push(r).await.expect("push").into_inner();
        assert!(ack.rejected.is_empty(), "{:?}", ack.rejected);
    }
}

/// Probe samples of one series (site `lab`, host `gpu-1`, provider `ollama`), one per second
/// from `t0_ns`.
pub fn series_samples(model: &str, values: &[f64], t0_ns: i64) -> Vec<v1::Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v1::Sample {
            id: uuid::Uuid::now_v7().to_string(),
            ts_unix_nanos: t0_ns + i as i64 * 1_000_000_000,
            site: "lab".into(),
            host: "gpu-1".into(),
            provider: "ollama".into(),
            model: model.into(),
            source: v1::Source::Probe as i32,
            latency_ms: *v,
            status: v1::CallStatus::Ok as i32,
            ..Default::default()
        })
        .collect()
}

/// One HTTP call: (status, JSON body or `Null`, raw body).
pub async fn call(
    method: reqwest::Method,
    base: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value, String) {
    let mut rb = reqwest::Client::new().request(method, format!("{base}{path}"));
    if let Some(t) = token {
        rb = rb.bearer_auth(t);
    }
    if let Some(b) = body {
        rb = rb.json(&b);
    }
    let r = rb.send().await.expect("request");
    let code = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        code,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        text,
    )
}

//! The dashboard against the real collector: a collector process on SQLite with an admin
//! token and fast rollups, seeded over gRPC (an in-control latency series with one point far
//! beyond 3σ, a series whose model name is an XSS string, host and GPU telemetry), then
//! `scripts/test-web.sh` drives `web/tests/e2e.mjs` in headless Chromium against it.
//! Screenshots land in `artifacts/screenshots` at the repository root.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use llmscope_e2e::{Collector, collector_cmd, http_get_as, wait_until};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use serde_json::{Value, json};

const XSS_MODEL: &str = "<img src=x onerror=window.__xss=1>";

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Deterministic noise around 0 with a standard deviation of about 1 (sum of 12 uniforms − 6).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

fn sample(model: &str, latency_ms: f64, ts: i64) -> v1::Sample {
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: ts,
        site: "lab".into(),
        host: "gpu-1".into(),
        provider: "ollama".into(),
        model: model.into(),
        source: v1::Source::Probe as i32,
        latency_ms,
        ttft_ms: Some(latency_ms / 10.0),
        tokens_in: Some(12),
        tokens_out: Some(64),
        status: v1::CallStatus::Ok as i32,
        http_status: Some(200),
        ..Default::default()
    }
}

fn telemetry(ts: i64, load: f64) -> v1::Telemetry {
    v1::Telemetry {
        ts_unix_nanos: ts,
        site: "lab".into(),
        host: "gpu-1".into(),
        cpu_pct: 30.0 + 20.0 * load,
        mem_used_bytes: (24 << 30) + ((4u64 << 30) as f64 * load) as u64,
        mem_total_bytes: 64 << 30,
        load1: 1.0 + 2.0 * load,
        gpus: vec![v1::GpuStats {
            index: 0,
            uuid: "GPU-0".into(),
            name: "NVIDIA H100 80GB HBM3".into(),
            util_pct: Some(60.0 + 35.0 * load),
            mem_used_bytes: Some((60 << 30) + ((10u64 << 30) as f64 * load) as u64),
            mem_total_bytes: Some(80 << 30),
            temp_c: Some(60.0 + 12.0 * load),
            power_w: Some(400.0 + 250.0 * load),
            sm_clock_mhz: Some(1980),
            throttle_reasons: Some(0),
            ecc_corrected_volatile: Some(0),
            ecc_uncorrected_volatile: Some(0),
            ..Default::default()
        }],
        // the model server's queue grows with the load (vLLM /metrics as the agent ships it)
        server_metrics: vec![
            v1::ServerMetric {
                target: "vllm".into(),
                model: "llama3.1:8b".into(),
                metric: "requests_waiting".into(),
                value: (12.0 * load).round(),
            },
            v1::ServerMetric {
                target: "vllm".into(),
                model: "llama3.1:8b".into(),
                metric: "kv_cache_usage_pct".into(),
                value: 40.0 + 55.0 * load,
            },
        ],
    }
}

/// Pushes in batches of 25, in time order, and checks nothing was rejected.
async fn push(grpc: &str, token: &str, samples: Vec<v1::Sample>, telemetry: Vec<v1::Telemetry>) {
    let mut c = IngestServiceClient::connect(format!("http://{grpc}"))
        .await
        .unwrap();
    let mut tel = Some(telemetry);
    for (seq, chunk) in (1u64..).zip(samples.chunks(25)) {
        let mut r = tonic::Request::new(IngestRequest {
            batch_seq: seq,
            samples: chunk.to_vec(),
            telemetry: tel.take().unwrap_or_default(),
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let ack = c.push(r).await.unwrap().into_inner();
        assert!(ack.rejected.is_empty(), "rejected: {:?}", ack.rejected);
    }
}

async fn get_json(http: &str, token: &str, path: &str) -> Value {
    serde_json::from_str(&http_get_as(http, path, Some(token)).await).unwrap_or(Value::Null)
}

/// 40 one-minute delta intervals of a model server's TTFT histogram over OTLP/HTTP JSON
/// (explicit buckets), the last 8 about 40 % slower: the OTLP metrics page's X̄ chart marks them.
async fn push_otlp_metrics(http: &str, token: &str) {
    let mut noise = Noise(0x005E_ED0F_0071);
    let end = now_ns();
    let kv = |k: &str, v: &str| json!({"key": k, "value": {"stringValue": v}});
    let bounds = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0];
    let points: Vec<Value> = (0..40i64)
        .map(|i| {
            let t = end - (39 - i) * 60_000_000_000;
            let centre = if i >= 32 { 0.21 } else { 0.15 };
            let values: Vec<f64> = (0..30).map(|_| (centre + 0.02 * noise.normal()).max(0.01)).collect();
            let mut counts = vec![0u64; bounds.len() + 1];
            for v in &values {
                counts[bounds.iter().position(|b| v <= b).unwrap_or(bounds.len())] += 1;
            }
            json!({"attributes": [kv("gen_ai.operation.name", "chat"), kv("gen_ai.provider.name", "vllm"),
                    kv("gen_ai.request.model", "llama3"), kv("server.address", "gpu-lab-1")],
                "startTimeUnixNano": (t - 60_000_000_000).to_string(), "timeUnixNano": t.to_string(),
                "count": values.len().to_string(), "sum": values.iter().sum::<f64>(),
                "min": values.iter().copied().fold(f64::MAX, f64::min), "max": values.iter().copied().fold(f64::MIN, f64::max),
                "bucketCounts": counts.iter().map(u64::to_string).collect::<Vec<_>>(), "explicitBounds": bounds})
        })
        .collect();
    let body = json!({"resourceMetrics": [{"resource": {"attributes": [kv("service.name", "vllm")]},
        "scopeMetrics": [{"metrics": [{"name": "gen_ai.server.time_to_first_token", "unit": "s",
            "histogram": {"aggregationTemporality": 1, "dataPoints": points}}]}]}]});
    let r = reqwest::Client::new()
        .post(format!("http://{http}/v1/metrics"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let text = r.text().await.unwrap();
    assert!(
        status.is_success() && !text.contains("rejected"),
        "{status} {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_e2e_against_the_real_collector() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        "[api]\nrollup_interval = \"200ms\"\nrollup_lag = \"0s\"\n\n[spc]\nbaseline_points = 20\narl0 = 1000\n",
    )
    .unwrap();
    let admin = format!("llms_e2e_admin_{}", uuid::Uuid::new_v4().simple());
    let collector = Collector::start_with_env(
        &url,
        &["--config", cfg.to_str().unwrap()],
        &[("LLMSCOPE_ADMIN_TOKEN", &admin)],
    )
    .await;

    // 40 in-control points (the first 20 estimate the baseline), one far beyond 3σ (a rule-1
    // marker), then a sustained +30 % shift (the paging CUSUM opens an incident with the rule
    // markers as members) that is still going on, 1 s apart, ending now. The seed gives
    // noise whose Phase I spread matches the rest.
    let mut noise = Noise(0x78DD_E6E5_FD29_F054);
    let n = 60i64;
    let end = now_ns() - 1_000_000_000;
    let ts = |i: i64| end - (n - 1 - i) * 1_000_000_000;
    let mut samples: Vec<v1::Sample> = (0..n)
        .map(|i| {
            let v = if i == 40 {
                2_000.0
            } else if i >= 48 {
                260.0 + 8.0 * noise.normal()
            } else {
                200.0 + 8.0 * noise.normal()
            };
            sample("llama3", v, ts(i))
        })
        .collect();
    // the XSS-named model: in control, enough points for a baseline
    samples
        .extend((0..30).map(|i| sample(XSS_MODEL, 120.0 + 5.0 * noise.normal(), ts(n - 30 + i))));
    samples.sort_by_key(|s| s.ts_unix_nanos);
    let tel: Vec<v1::Telemetry> = (0..n)
        .step_by(4)
        .map(|i| telemetry(ts(i), ((i as f64) / 9.0).sin().abs()))
        .collect();
    push(&collector.grpc, &token, samples, tel).await;

    push_otlp_metrics(&collector.http, &token).await;

    let http = collector.http.clone();
    let ready = wait_until(Duration::from_secs(60), || {
        let (http, admin) = (http.clone(), admin.clone());
        async move {
            let open = get_json(&http, &admin, "/api/v1/violations?status=open").await;
            let incidents = get_json(&http, &admin, "/api/v1/incidents?status=open").await;
            let series = get_json(&http, &admin, "/api/v1/series").await;
            let has_open = open["items"].as_array().is_some_and(|a| !a.is_empty())
                && incidents["items"].as_array().is_some_and(|a| !a.is_empty());
            let models: Vec<&str> = series
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["model"].as_str())
                .collect();
            has_open && models.contains(&"llama3") && models.contains(&XSS_MODEL)
        }
    })
    .await;
    assert!(
        ready,
        "no open violation, incident or series listed within 60 s: violations {} series {}",
        http_get_as(
            &collector.http,
            "/api/v1/violations?status=open",
            Some(&admin)
        )
        .await,
        http_get_as(&collector.http, "/api/v1/series", Some(&admin)).await
    );

    let shots = root.join("artifacts/screenshots");
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(root.join("scripts/test-web.sh"))
        .current_dir(&root)
        .env("LLMSCOPE_URL", format!("http://{}", collector.http))
        .env("LLMSCOPE_ADMIN_TOKEN", &admin)
        .env("LLMSCOPE_SCREENSHOTS", &shots)
        .env("LLMSCOPE_XSS_MODEL", XSS_MODEL)
        .output()
        .await
        .expect("bash scripts/test-web.sh runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scripts/test-web.sh failed ({}) after {:?}:\n{stdout}\n{stderr}",
        out.status,
        started.elapsed()
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}\n{stderr}");
    println!("{stdout}\n{stderr}");
    assert!(collector.terminate().await);
}

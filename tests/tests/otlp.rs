//! OpenTelemetry into LLMscope with clients nobody here wrote: the Python OpenTelemetry SDK
//! with its OTLP gRPC and HTTP exporters and the official OpenAI instrumentation
//! (`opentelemetry-instrumentation-openai-v2`) around the official `openai` client, calling the
//! project's fake OpenAI-compatible server with streaming on (`tests/clients/otel/`); and
//! grpcurl 1.8 (reflection v1alpha only) listing and describing the collector's services.
//! Bad input over OTLP/HTTP: malformed protobuf and JSON, a wrong token, an oversized body.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use llmscope_e2e::fake::{FakeServer, Script};
use llmscope_e2e::{Collector, collector_cmd, http_get_as, sum_metric, wait_until};
use serde_json::Value;

fn peers() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/otel")
}

/// The peers' venv (created on first use).
fn python() -> String {
    let out = std::process::Command::new("bash")
        .arg(peers().join("setup.sh"))
        .output()
        .expect("bash tests/clients/otel/setup.sh");
    assert!(
        out.status.success(),
        "setup.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_owned()
}

/// Runs one of the peer scripts (`genai_app.py`, `genai_metrics.py`) and reads the JSON line
/// it prints last: what it sent.
async fn app(py: &str, script: &str, args: &[&str]) -> Value {
    let out = tokio::process::Command::new(py)
        .arg(peers().join(script))
        .args(args)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{script} {args:?} failed:\n{stdout}\n{stderr}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

async fn series_of(http: &str, admin: &str, model: &str) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&http_get_as(http, "/api/v1/series", Some(admin)).await).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter(|s| s["model"] == model)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_and_the_openai_instrumentation_export_genai_spans() {
    let py = python();
    let fake = FakeServer::start(Script {
        first_token: Duration::from_millis(40),
        per_token: Duration::from_millis(5),
        tokens: 6,
        prompt_tokens: 9,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&[
        "token",
        "create",
        "--site",
        "otel-eu",
        "--database-url",
        &url,
    ])
    .await;
    let admin = format!("llms_otlp_admin_{}", uuid::Uuid::new_v4().simple());
    let cfg = dir.path().join("collector.toml");
    std::fs::write(
        &cfg,
        "[api]\nrollup_interval = \"200ms\"\nrollup_lag = \"0s\"\n",
    )
    .unwrap();
    let collector = Collector::start_with_env(
        &url,
        &["--config", cfg.to_str().unwrap()],
        &[("LLMSCOPE_ADMIN_TOKEN", admin.as_str())],
    )
    .await;
    let openai = format!("{}/v1", fake.url());

    // gRPC exporter to the gRPC listener, HTTP/protobuf to the HTTP listener, then both to the
    // OTLP listeners of their own, each with its own model name so the paths are told apart
    for (protocol, endpoint, model, streamed, plain) in [
        (
            "grpc",
            format!("http://{}", collector.grpc),
            "gpt-4o-mini",
            12,
            3,
        ),
        (
            "http",
            format!("http://{}", collector.http),
            "gpt-4.1-nano",
            8,
            2,
        ),
        // the receivers' own listeners (--otlp-grpc-listen, --otlp-http-listen)
        (
            "grpc",
            format!("http://{}", collector.otlp_grpc),
            "gpt-4.1",
            3,
            1,
        ),
        (
            "http",
            format!("http://{}", collector.otlp_http),
            "o3-mini",
            3,
            1,
        ),
    ] {
        let sent = app(
            &py,
            "genai_app.py",
            &[
                "--openai",
                &openai,
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--token",
                &token,
                "--model",
                model,
                "--streamed",
                &streamed.to_string(),
                "--plain",
                &plain.to_string(),
            ],
        )
        .await;
        assert_eq!(sent["flushed"], true, "{sent}");
        let calls = streamed + plain;
        let arrived = wait_until(Duration::from_secs(30), || {
            let (http, admin) = (collector.http.clone(), admin.clone());
            async move {
                let csv = http_get_as(
                    &http,
                    &format!("/api/v1/samples.csv?site=otel-eu&model={model}&from=0"),
                    Some(&admin),
                )
                .await;
                csv.lines().count() > calls
            }
        })
        .await;
        let csv = http_get_as(
            &collector.http,
            &format!("/api/v1/samples.csv?site=otel-eu&model={model}&from=0"),
            Some(&admin),
        )
        .await;
        assert!(arrived, "{protocol}: {calls} samples expected:\n{csv}");
        let mut rows = csv::Reader::from_reader(csv.as_bytes());
        let header = rows.headers().unwrap().clone();
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let recs: Vec<csv::StringRecord> = rows.records().map(Result::unwrap).collect();
        assert_eq!(
            recs.len(),
            calls,
            "{protocol}: one sample per model call\n{csv}"
        );
        for r in &recs {
            assert_eq!(&r[col("site")], "otel-eu", "the token's site");
            assert_eq!(&r[col("provider")], "openai");
            assert_eq!(&r[col("source")], "otlp");
            assert_eq!(&r[col("host")], "127.0.0.1", "server.address");
            assert_eq!(&r[col("status")], "ok");
            let latency: f64 = r[col("latency_ms")].parse().unwrap();
            // the fake answers after 40 ms, then 5 ms per further chunk
            assert!((30.0..5_000.0).contains(&latency), "latency {latency}");
            assert_eq!(&r[col("tokens_in")], "9", "input tokens from usage");
            assert_eq!(&r[col("tokens_out")], "6", "output tokens from usage");
        }
        // the series catalogue (updated with the rollups) lists the model's otlp series
        let listed = wait_until(Duration::from_secs(30), || {
            let (http, admin) = (collector.http.clone(), admin.clone());
            async move {
                series_of(&http, &admin, model)
                    .await
                    .iter()
                    .any(|s| s["metric"] == "latency_ms" && s["source"] == "otlp")
            }
        })
        .await;
        assert!(
            listed,
            "{:?}",
            series_of(&collector.http, &admin, model).await
        );
    }

    // the ordinary HTTP span and the chat span without a model were counted, not stored
    let metrics = http_get_as(&collector.http, "/metrics", None).await;
    assert!(
        sum_metric(&metrics, "llmscope_otlp_spans_total{outcome=\"not_genai\"}") >= 4.0,
        "{metrics}"
    );
    assert!(
        sum_metric(&metrics, "llmscope_otlp_spans_total{outcome=\"no_model\"}") >= 4.0,
        "{metrics}"
    );
    assert!(sum_metric(&metrics, "llmscope_otlp_spans_total{outcome=\"sample\"}") >= 33.0);
    assert!(collector.terminate().await);
}

async fn get_json(http: &str, path: &str, admin: &str) -> Value {
    let body = http_get_as(http, path, Some(admin)).await;
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Percent-encodes a query value (series keys hold `|`).
fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The interval series of `model` for `instrument` (and token type).
async fn interval_series(
    http: &str,
    admin: &str,
    model: &str,
    instrument: &str,
    token_type: &str,
) -> Option<Value> {
    let all = get_json(http, "/api/v1/otlp/series?site=otel-eu", admin).await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|s| {
            s["model"] == model && s["instrument"] == instrument && s["token_type"] == token_type
        })
        .cloned()
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_exports_genai_metrics_delta_and_cumulative() {
    let py = python();
    let fake = FakeServer::start(Script {
        first_token: Duration::from_millis(20),
        per_token: Duration::from_millis(2),
        tokens: 6,
        prompt_tokens: 9,
        ..Script::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&[
        "token",
        "create",
        "--site",
        "otel-eu",
        "--database-url",
        &url,
    ])
    .await;
    let admin = format!("llms_otlp_admin_{}", uuid::Uuid::new_v4().simple());
    let collector =
        Collector::start_with_env(&url, &[], &[("LLMSCOPE_ADMIN_TOKEN", admin.as_str())]).await;
    let openai = format!("{}/v1", fake.url());
    let (rounds, calls) = (3usize, 4usize);

    for (temporality, protocol, endpoint, model, server_model) in [
        (
            "delta",
            "grpc",
            format!("http://{}", collector.otlp_grpc),
            "gpt-4o-mini",
            "llama-3-8b",
        ),
        (
            "cumulative",
            "http",
            format!("http://{}", collector.http),
            "gpt-4.1-nano",
            "llama-3-70b",
        ),
    ] {
        let sent = app(
            &py,
            "genai_metrics.py",
            &[
                "--openai",
                &openai,
                "--protocol",
                protocol,
                "--endpoint",
                &endpoint,
                "--token",
                &token,
                "--temporality",
                temporality,
                "--model",
                model,
                "--server-model",
                server_model,
                "--rounds",
                &rounds.to_string(),
                "--calls",
                &calls.to_string(),
            ],
        )
        .await;
        let sent_rounds = sent["rounds"].as_array().unwrap();
        assert_eq!(sent_rounds.len(), rounds, "{sent}");

        // the model server's TTFT, exponential buckets: one interval per round, exact count and
        // mean, quantiles from the buckets close to the values'
        let s = interval_series(
            &collector.http,
            &admin,
            server_model,
            "gen_ai.server.time_to_first_token",
            "",
        )
        .await
        .unwrap_or_else(|| panic!("{temporality}: no TTFT interval series"));
        assert_eq!(
            (
                s["host"].as_str(),
                s["provider"].as_str(),
                s["unit"].as_str()
            ),
            (Some("gpu-7"), Some("vllm"), Some("ms")),
            "{s}"
        );
        let key = s["key"].as_str().unwrap();
        let iv = get_json(
            &collector.http,
            &format!("/api/v1/otlp/intervals?key={}&from=0", enc(key)),
            &admin,
        )
        .await;
        assert_eq!(iv["kind"], "exponential", "{iv}");
        assert_eq!(iv["temporality"], temporality, "{iv}");
        let pts = iv["points"].as_array().unwrap();
        assert_eq!(
            pts.len(),
            rounds,
            "{temporality}: one interval per export\n{iv}"
        );
        for (p, r) in pts.iter().zip(sent_rounds) {
            let values: Vec<f64> = r["ttft_s"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() * 1e3)
                .collect();
            assert_eq!(p["count"].as_u64().unwrap() as usize, values.len(), "{p}");
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let got = p["mean"].as_f64().unwrap();
            assert!(
                (got - mean).abs() <= 1e-9 * mean,
                "{temporality}: mean {got} vs {mean}"
            );
            let p50 = p["p50"].as_f64().unwrap();
            let med = median(&values);
            let (lo, hi) = (
                values.iter().copied().fold(f64::MAX, f64::min),
                values.iter().copied().fold(f64::MIN, f64::max),
            );
            assert!(
                p50 >= lo - 1e-6 && p50 <= hi + 1e-6,
                "p50 {p50} outside [{lo}, {hi}]"
            );
            assert!(
                (p50 - med).abs() / med < 0.05,
                "{temporality}: p50 {p50} vs median {med}"
            );
            let p99 = p["p99"].as_f64().unwrap();
            assert!(p99 >= p50 && p99 <= hi * 1.01, "p99 {p99}");
        }
        // consecutive intervals of a cumulative stream join up
        if temporality == "cumulative" {
            for w in pts.windows(2) {
                assert_eq!(w[1]["start"], w[0]["end"], "{iv}");
            }
        }
        // TTFT rises by 20 ms a round: three means, too few for limits — the chart says why
        assert!(
            iv["chart"]["none"].as_str().unwrap().contains("at least"),
            "{iv}"
        );

        // the OpenAI instrumentation's own histograms (explicit buckets)
        let d = interval_series(
            &collector.http,
            &admin,
            model,
            "gen_ai.client.operation.duration",
            "",
        )
        .await
        .unwrap_or_else(|| panic!("{temporality}: no operation.duration series"));
        assert_eq!(
            (
                d["provider"].as_str(),
                d["host"].as_str(),
                d["operation"].as_str()
            ),
            (Some("openai"), Some("127.0.0.1"), Some("chat")),
            "{d}"
        );
        let dv = get_json(
            &collector.http,
            &format!(
                "/api/v1/otlp/intervals?key={}&from=0",
                enc(d["key"].as_str().unwrap())
            ),
            &admin,
        )
        .await;
        assert_eq!(dv["kind"], "explicit", "{dv}");
        let dp = dv["points"].as_array().unwrap();
        assert_eq!(dp.len(), rounds, "{dv}");
        for p in dp {
            assert_eq!(p["count"].as_u64().unwrap() as usize, calls, "{p}");
            let mean = p["mean"].as_f64().unwrap();
            // the fake answers after ≥ 20 ms; the client's own overhead on top
            assert!((15.0..5_000.0).contains(&mean), "duration mean {mean} ms");
            let p95 = p["p95"].as_f64().unwrap();
            assert!(p95 > 0.0 && p95 < 10_000.0, "{p}");
        }
        // token usage: input 9 and output 6 per call, exactly
        for (ty, per_call) in [("input", 9.0), ("output", 6.0)] {
            let t = interval_series(
                &collector.http,
                &admin,
                model,
                "gen_ai.client.token.usage",
                ty,
            )
            .await;
            let t = t.or(if ty == "output" {
                interval_series(
                    &collector.http,
                    &admin,
                    model,
                    "gen_ai.client.token.usage",
                    "completion",
                )
                .await
            } else {
                None
            });
            let t = t.unwrap_or_else(|| panic!("{temporality}: no {ty} token series"));
            assert_eq!(t["unit"], "tokens");
            let tv = get_json(
                &collector.http,
                &format!(
                    "/api/v1/otlp/intervals?key={}&from=0",
                    enc(t["key"].as_str().unwrap())
                ),
                &admin,
            )
            .await;
            let tp = tv["points"].as_array().unwrap();
            assert_eq!(tp.len(), rounds, "{tv}");
            for p in tp {
                assert_eq!(p["count"].as_u64().unwrap() as usize, calls);
                assert_eq!(p["mean"].as_f64().unwrap(), per_call, "{p}");
            }
        }
    }
    let metrics = http_get_as(&collector.http, "/metrics", None).await;
    // 2 runs × 3 rounds × (TTFT, duration, 2 token types)
    assert!(
        sum_metric(
            &metrics,
            "llmscope_otlp_metric_points_total{outcome=\"interval\"}"
        ) >= 24.0,
        "{metrics}"
    );
    assert!(collector.terminate().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_http_answers_bad_input_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "eu", "--database-url", &url]).await;
    let collector = Collector::start(&url, &["--config", "/dev/null"]).await;
    // a fresh connection per request: the server closes the one an oversized body came on,
    // and a pooled client could otherwise send the next request on it
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let post = |path: &str, ctype: &str, token: &str, body: Vec<u8>| {
        http.post(format!("http://{}{path}", collector.http))
            .header("content-type", ctype)
            .bearer_auth(token)
            .body(body)
            .send()
    };
    // both endpoints answer bad input alike
    for (path, what, bad_json) in [
        (
            "/v1/traces",
            "ExportTraceServiceRequest",
            "{\"resourceSpans\": 3}",
        ),
        (
            "/v1/metrics",
            "ExportMetricsServiceRequest",
            "{\"resourceMetrics\": {}}",
        ),
    ] {
        // malformed protobuf → 400 with a protobuf Status naming the problem
        let r = post(
            path,
            "application/x-protobuf",
            &token,
            vec![0xff, 0xff, 0xff],
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let body = r.bytes().await.unwrap();
        assert!(
            String::from_utf8_lossy(&body).contains(&format!("not an OTLP protobuf {what}")),
            "{path}: {body:?}"
        );
        // malformed JSON → 400 with a JSON message
        let r = post(path, "application/json", &token, bad_json.into())
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
        let v: Value = r.json().await.unwrap();
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains(&format!("OTLP JSON {what}")),
            "{path}: {v}"
        );
        // a wrong token → 401
        let r = post(path, "application/json", "llms_wrong", b"{}".to_vec())
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
        // oversized (over ingest.max_message_bytes = 16 MiB) → 413
        let r = post(path, "application/x-protobuf", &token, vec![0u8; 17 << 20])
            .await
            .unwrap();
        assert_eq!(r.status(), 413, "{path}");
    }
    // the same over OTLP/gRPC: a wrong token → UNAUTHENTICATED, too large → RESOURCE_EXHAUSTED
    {
        use opentelemetry_proto::tonic::collector::trace::v1::{
            ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
        };
        use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
        let mut c = TraceServiceClient::connect(format!("http://{}", collector.grpc))
            .await
            .unwrap()
            .max_encoding_message_size(64 << 20);
        let with = |token: &str, req: ExportTraceServiceRequest| {
            let mut r = tonic::Request::new(req);
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
            r
        };
        let err = c
            .export(with("llms_wrong", ExportTraceServiceRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err}");
        let big = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![Span {
                        name: "x".repeat(17 << 20),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let err = c.export(with(&token, big)).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");
        assert!(err.message().contains("max_message_bytes"), "{err}");
    }
    // not OTLP at all → 415
    let r = post("/v1/traces", "text/plain", &token, b"hello".to_vec())
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // a valid JSON export (hex ids, string nanos) with one GenAI span and one without a model:
    // the span is stored, the other ignored and said so
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let span = |id: &str, attrs: Value| {
        serde_json::json!({"traceId": "5b8efff798038103d269b633813fc60c", "spanId": id, "name": "chat m",
            "kind": 3, "startTimeUnixNano": (now - 900_000_000).to_string(), "endTimeUnixNano": now.to_string(),
            "attributes": attrs, "status": {}})
    };
    let kv = |k: &str, v: Value| serde_json::json!({"key": k, "value": v});
    let body = serde_json::json!({"resourceSpans": [{"resource": {"attributes": [kv("service.name", serde_json::json!({"stringValue": "svc"}))]},
    "scopeSpans": [{"scope": {"name": "manual"}, "spans": [
        span("eee19b7ec3c1b174", serde_json::json!([
            kv("gen_ai.operation.name", serde_json::json!({"stringValue": "chat"})),
            kv("gen_ai.provider.name", serde_json::json!({"stringValue": "vllm"})),
            kv("gen_ai.request.model", serde_json::json!({"stringValue": "llama-3.1-8b"})),
            kv("server.address", serde_json::json!({"stringValue": "gpu-7"})),
            kv("gen_ai.response.time_to_first_chunk", serde_json::json!({"doubleValue": 0.25})),
            kv("gen_ai.usage.input_tokens", serde_json::json!({"intValue": "12"})),
            kv("gen_ai.usage.output_tokens", serde_json::json!({"intValue": 40})),
        ])),
        span("eee19b7ec3c1b175", serde_json::json!([kv("gen_ai.operation.name", serde_json::json!({"stringValue": "chat"}))])),
    ]}]}]});
    let r = post(
        "/v1/traces",
        "application/json",
        &token,
        body.to_string().into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("no_model 1")),
        "{v}"
    );
    let csv = http_get_as(
        &collector.http,
        "/api/v1/samples.csv?site=eu&model=llama-3.1-8b&from=0",
        Some(&token_admin(&url).await),
    )
    .await;
    let line = csv.lines().nth(1).unwrap_or_else(|| panic!("{csv}"));
    assert!(
        line.contains("gpu-7") && line.contains("vllm") && line.contains("otlp"),
        "{csv}"
    );
    assert!(
        line.contains(",250,") || line.contains(",250.0,"),
        "TTFT 0.25 s: {csv}"
    );

    // one histogram with a model, one without (ignored and counted), one whose buckets do not
    // add up (rejected, saying so), and a gauge that is not GenAI: the first is kept
    let hist = |attrs: Value, counts: Value, count: &str| {
        serde_json::json!({"attributes": attrs, "startTimeUnixNano": (now - 60_000_000_000).to_string(),
            "timeUnixNano": now.to_string(), "count": count, "sum": 1.5, "bucketCounts": counts,
            "explicitBounds": [0.25, 0.5, 1.0]})
    };
    let s = |v: &str| serde_json::json!({"stringValue": v});
    let attrs = serde_json::json!([
        kv("gen_ai.operation.name", s("chat")),
        kv("gen_ai.provider.name", s("vllm")),
        kv("gen_ai.request.model", s("qwen-2.5")),
        kv("server.address", s("gpu-9"))
    ]);
    let body = serde_json::json!({"resourceMetrics": [{"resource": {"attributes": []}, "scopeMetrics": [{"metrics": [
        {"name": "gen_ai.client.operation.duration", "unit": "s", "histogram": {"aggregationTemporality": 1, "dataPoints": [
            hist(attrs.clone(), serde_json::json!(["0", "2", "1", "0"]), "3"),
            hist(serde_json::json!([kv("gen_ai.operation.name", s("chat"))]), serde_json::json!(["1", "0", "0", "0"]), "1"),
            hist(attrs.clone(), serde_json::json!(["1", "1", "1", "1"]), "9"),
        ]}},
        {"name": "process.cpu.utilization", "unit": "1", "gauge": {"dataPoints": [{"asDouble": 0.5, "timeUnixNano": now.to_string()}]}},
    ]}]}]});
    let r = post(
        "/v1/metrics",
        "application/json",
        &token,
        body.to_string().into_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let msg = v["partialSuccess"]["errorMessage"]
        .as_str()
        .unwrap_or_default();
    // int64 as a number or, as the OTLP JSON mapping prefers, a decimal string
    let rejected = &v["partialSuccess"]["rejectedDataPoints"];
    assert!(rejected == 1 || rejected == "1", "{v}");
    assert!(msg.contains("add up to 4, not the point's count 9"), "{v}");
    assert!(
        msg.contains("no_model 1") && msg.contains("not_genai 1"),
        "{v}"
    );
    let admin = token_admin(&url).await;
    let series = http_get_as(&collector.http, "/api/v1/otlp/series", Some(&admin)).await;
    let series: Value = serde_json::from_str(&series).unwrap();
    let listed: Vec<&Value> = series.as_array().unwrap().iter().collect();
    assert_eq!(listed.len(), 1, "{series}");
    assert_eq!(listed[0]["model"], "qwen-2.5");
    let iv = http_get_as(
        &collector.http,
        &format!(
            "/api/v1/otlp/intervals?key={}&from=0",
            enc(listed[0]["key"].as_str().unwrap())
        ),
        Some(&admin),
    )
    .await;
    let iv: Value = serde_json::from_str(&iv).unwrap();
    let p = &iv["points"][0];
    // 3 calls, sum 1.5 s → mean 500 ms; p50: rank 1.5 of 2 in (0.25, 0.5] → 437.5 ms
    assert_eq!(
        (p["count"].as_i64(), p["mean"].as_f64()),
        (Some(3), Some(500.0)),
        "{iv}"
    );
    assert_eq!(p["p50"].as_f64(), Some(437.5), "{iv}");
    // a malformed key names the field
    let r = http
        .get(format!(
            "http://{}/api/v1/otlp/intervals?key=series%7Cx",
            collector.http
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["field"], "key", "{v}");
    assert!(collector.terminate().await);
}

/// An admin token made with the CLI (the collector reads tokens from the database).
async fn token_admin(url: &str) -> String {
    collector_cmd(&["token", "create", "--admin", "--database-url", url]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_1_8_lists_and_describes_by_reflection_v1alpha() {
    let py = python();
    let grpcurl = Path::new(&py).with_file_name("grpcurl");
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let collector = Collector::start(&url, &[]).await;
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&grpcurl)
            .args(["-plaintext"])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "grpcurl {args:?}: {text}");
        text
    };
    let version = std::process::Command::new(&grpcurl)
        .arg("-version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_string()
        + &String::from_utf8_lossy(&version.stderr);
    assert!(version.contains("1.8."), "{version}");
    let list = run(&[&collector.grpc, "list"]);
    assert!(list.contains("llmscope.v1.IngestService"), "{list}");
    assert!(list.contains("grpc.health.v1.Health"), "{list}");
    assert!(
        list.contains("opentelemetry.proto.collector.trace.v1.TraceService"),
        "{list}"
    );
    assert!(
        list.contains("opentelemetry.proto.collector.metrics.v1.MetricsService"),
        "{list}"
    );
    let metrics = run(&[
        &collector.grpc,
        "describe",
        "opentelemetry.proto.collector.metrics.v1.MetricsService",
    ]);
    assert!(metrics.contains("rpc Export"), "{metrics}");
    let described = run(&[&collector.grpc, "describe", "llmscope.v1.IngestService"]);
    assert!(
        described.contains("rpc Push") && described.contains("rpc Stream"),
        "{described}"
    );
    let msg = run(&[&collector.grpc, "describe", "llmscope.v1.Sample"]);
    assert!(msg.contains("latency_ms"), "{msg}");
    assert!(collector.terminate().await);
}

//! Against llama.cpp's real OpenAI-compatible server (`llama-cpp-python[server]` serving a
//! tiny random-weight GGUF model on CPU): probes and proxied calls are timed like an
//! independent client times them; streams carry TTFT and output tokens (counted from the
//! content chunks when the server sends no usage); a non-streamed call has no TTFT.
//!
//! Ignored in `make test` (the server's build takes ~12 minutes on a new machine):
//! `make test-real-model` installs and starts it, then runs these with `--ignored`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmscope_agent::config::{Provider, ProxyConfig, TargetConfig};
use llmscope_agent::metrics::Metrics;
use llmscope_agent::probe::{CallStatus, Target, probe_once};
use llmscope_agent::proxy::{ProxyState, start};
use llmscope_agent::record::Record;
use llmscope_proto::v1;
use serde_json::json;
use tokio::sync::mpsc;

fn server() -> String {
    std::env::var("LLMSCOPE_REAL_MODEL_URL")
        .expect("LLMSCOPE_REAL_MODEL_URL: run through `make test-real-model`")
}

async fn model(base: &str) -> String {
    let v: serde_json::Value = reqwest::get(format!("{base}/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"][0]["id"].as_str().unwrap().to_owned()
}

async fn proxy(upstream: &str) -> (String, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(64);
    let cfg = ProxyConfig::new(
        "llama",
        "127.0.0.1:0".parse().unwrap(),
        upstream,
        Provider::OpenaiCompatible,
    );
    let st = Arc::new(ProxyState {
        cfg,
        client: llmscope_agent::proxy::upstream_client(Duration::from_secs(10)),
        records: tx,
        metrics: Metrics::new(),
        site: "lab".into(),
        host: "cpu-1".into(),
    });
    let (addr, _task) = start(st).await.unwrap();
    (format!("http://{addr}"), rx)
}

async fn next_sample(rx: &mut mpsc::Receiver<Record>) -> v1::Sample {
    match tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Record::Sample(s) => s,
        Record::Telemetry(_) => panic!("telemetry from a proxy"),
    }
}

#[tokio::test]
#[ignore = "needs llama.cpp's server: make test-real-model"]
async fn probes_of_llama_cpp_have_ttft_and_tokens() {
    let base = server();
    let model = model(&base).await;
    let target = Target {
        cfg: TargetConfig {
            name: "llama".into(),
            provider: Provider::OpenaiCompatible,
            base_url: Some(base.clone()),
            model,
            interval: Duration::from_secs(5),
            jitter: 0.1,
            timeout: Duration::from_secs(60),
            prompt: "Reply with the single word: ready".into(),
            max_tokens: 12,
            api_key_env: None,
            api_key_file: None,
            server_metrics: None,
            server_metrics_url: None,
        },
        base_url: base,
        api_key: None,
    };
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let o = probe_once(&client, &target).await;
        assert_eq!(o.status, CallStatus::Ok, "{o:?}");
        let ttft = o.ttft_ms.unwrap();
        assert!(ttft > 0.0 && ttft <= o.latency_ms, "{o:?}");
        let n = o.tokens_out.unwrap();
        assert!(n >= 1, "{o:?}");
        eprintln!(
            "probe: latency {:.1} ms, ttft {ttft:.1} ms, tokens_out {n} (estimated: {})",
            o.latency_ms, o.tokens_out_estimated
        );
    }
}

#[tokio::test]
#[ignore = "needs llama.cpp's server: make test-real-model"]
async fn proxied_calls_are_timed_like_an_independent_client() {
    let base = server();
    let model = model(&base).await;
    let (proxy, mut rx) = proxy(&base).await;
    let client = reqwest::Client::new();

    // streamed, through the proxy: the client's own clock against the sample
    let body = json!({"model": model, "stream": true, "max_tokens": 12,
                      "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "Say ready"}]});
    let t0 = Instant::now();
    let resp = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut first_content = None;
    let mut stream = resp.bytes_stream();
    let mut text = String::new();
    use futures::StreamExt;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        let s = String::from_utf8_lossy(&chunk);
        // the first SSE event whose delta carries text, as the client parses it
        let has_content = s.lines().filter_map(|l| l.strip_prefix("data: ")).any(|d| {
            serde_json::from_str::<serde_json::Value>(d)
                .ok()
                .and_then(|v| {
                    v.pointer("/choices/0/delta/content")
                        .and_then(|c| c.as_str())
                        .map(|c| !c.is_empty())
                })
                .unwrap_or(false)
        });
        if first_content.is_none() && has_content {
            first_content = Some(t0.elapsed());
        }
        text.push_str(&s);
    }
    let client_latency = t0.elapsed().as_secs_f64() * 1000.0;
    assert!(text.contains("[DONE]"), "the stream arrived whole: {text}");
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Ok as i32, "{s:?}");
    let ttft = s.ttft_ms.unwrap();
    assert!(s.tokens_out.unwrap() >= 1, "{s:?}");
    assert_eq!(s.labels.get("stream").map(String::as_str), Some("true"));
    eprintln!(
        "proxy stream: sample latency {:.1} ms / client {client_latency:.1} ms; sample ttft {ttft:.1} ms / client {:?}; tokens_out {:?}, labels {:?}",
        s.latency_ms, first_content, s.tokens_out, s.labels
    );
    // the proxy's clock starts after the client sent and stops before the client read the
    // end: within a few ms of the client's own
    assert!(s.latency_ms <= client_latency + 1.0, "{s:?}");
    assert!(
        client_latency - s.latency_ms < 50.0,
        "{s:?} vs {client_latency}"
    );
    let fc = first_content
        .expect("the stream carried text")
        .as_secs_f64()
        * 1000.0;
    assert!((fc - ttft).abs() < 50.0, "ttft {ttft} vs client {fc}");

    // not streamed: no TTFT (and so no TPOT), tokens from the usage block
    let resp = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&json!({"model": model, "stream": false, "max_tokens": 12,
                      "messages": [{"role": "user", "content": "Say ready"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Ok as i32, "{s:?}");
    assert_eq!(s.ttft_ms, None, "a non-streamed call has no TTFT: {s:?}");
    assert_eq!(
        s.tokens_out.map(u64::from),
        answer["usage"]["completion_tokens"].as_u64(),
        "{s:?}"
    );
    assert_eq!(s.labels.get("stream").map(String::as_str), Some("false"));
}

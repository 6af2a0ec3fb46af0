//! The timing proxy: a real HTTP client through the proxy gets byte-identical responses, and
//! the samples recorded match what the upstream did.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use llmscope_agent::config::{Provider, ProxyConfig};
use llmscope_agent::metrics::Metrics;
use llmscope_agent::proxy::{ProxyState, start};
use llmscope_agent::record::Record;
use llmscope_e2e::fake::{Behavior, FakeServer, Script};
use llmscope_proto::v1;
use serde_json::json;
use tokio::sync::mpsc;

async fn proxy_to(upstream: String, max_body: usize) -> (String, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(64);
    let st = Arc::new(ProxyState {
        cfg: ProxyConfig {
            name: "p".into(),
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream,
            provider: Provider::OpenaiCompatible,
            max_body_bytes: max_body,
            timeout: Duration::from_secs(5),
        },
        client: reqwest::Client::new(),
        records: tx,
        metrics: Metrics::new(),
        site: "lab".into(),
        host: "gpu-1".into(),
    });
    let (addr, _task) = start(st).await.unwrap();
    (format!("http://{addr}"), rx)
}

async fn next_sample(rx: &mut mpsc::Receiver<Record>) -> v1::Sample {
    match tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
    {
        Record::Sample(s) => s,
        Record::Telemetry(_) => panic!("telemetry from a proxy"),
    }
}

#[tokio::test]
async fn streams_are_byte_identical_and_timed() {
    let server = FakeServer::start(Script {
        first_token: Duration::from_millis(150),
        per_token: Duration::from_millis(15),
        tokens: 5,
        prompt_tokens: 9,
        behavior: Behavior::Normal,
    })
    .await;
    let (proxy, mut rx) = proxy_to(server.url(), 1 << 20).await;
    let client = reqwest::Client::new();
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "m1", "stream": true, "stream_options": {"include_usage": true}, "messages": []}),
        ),
        (
            "/api/chat",
            json!({"model": "m2", "stream": true, "messages": []}),
        ),
        (
            "/v1/messages",
            json!({"model": "m3", "stream": true, "max_tokens": 5, "messages": []}),
        ),
        (
            "/v1/chat/completions",
            json!({"model": "m4", "stream": false, "messages": []}),
        ),
    ] {
        let direct = client
            .post(format!("{}{path}", server.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        let direct_ct = direct.headers()["content-type"].clone();
        let direct_bytes = direct.bytes().await.unwrap();
        let via = client
            .post(format!("{proxy}{path}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(via.status(), 200);
        assert_eq!(via.headers()["content-type"], direct_ct);
        let via_bytes = via.bytes().await.unwrap();
        // the fake's ids and text are deterministic: the bytes must match exactly
        assert_eq!(via_bytes, direct_bytes, "{path}");
        let s = next_sample(&mut rx).await;
        assert_eq!(
            s.model,
            body["model"].as_str().unwrap(),
            "model from the request body"
        );
        assert_eq!(s.source, v1::Source::Proxy as i32);
        assert_eq!(s.status, v1::CallStatus::Ok as i32, "{path}: {}", s.error);
        assert_eq!(s.tokens_in, Some(9), "{path}");
        assert_eq!(
            s.tokens_out,
            Some(5),
            "{path}: usage from the response or final event"
        );
        let ttft = s.ttft_ms.unwrap();
        assert!(
            ttft >= 150.0 && ttft <= s.latency_ms,
            "{path}: ttft {ttft} latency {}",
            s.latency_ms
        );
        if body["stream"] == true {
            assert!(
                s.latency_ms - ttft >= 55.0,
                "{path}: 4 more tokens at 15 ms"
            );
        }
        assert_eq!(
            (s.site.as_str(), s.host.as_str(), s.provider.as_str()),
            ("lab", "gpu-1", "openai_compatible")
        );
    }
    // non-inference paths pass through and are not timed
    let models = client
        .get(format!("{proxy}/v1/models"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(models.contains("fake-model"));
    assert!(
        tokio::time::timeout(Duration::from_millis(200), rx.recv())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn http2_clients_and_keep_alive_work() {
    let server = FakeServer::start(Script {
        first_token: Duration::from_millis(5),
        ..Script::default()
    })
    .await;
    let (proxy, mut rx) = proxy_to(server.url(), 1 << 20).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    for i in 0..3 {
        let r = h2
            .post(format!("{proxy}/v1/chat/completions"))
            .json(&json!({"model": format!("h2-{i}"), "stream": true, "messages": []}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
        assert_eq!(next_sample(&mut rx).await.model, format!("h2-{i}"));
    }
}

#[tokio::test]
async fn upstream_errors_pass_through_and_limits_apply() {
    let server = FakeServer::start(Script::default()).await;
    let (proxy, mut rx) = proxy_to(server.url(), 2048).await;
    let client = reqwest::Client::new();

    server.set(|s| s.behavior = Behavior::Status(429, "slow down".into()));
    let direct = client
        .post(format!("{}/v1/chat/completions", server.url()))
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    let direct_body = direct.bytes().await.unwrap();
    let via = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(via.status(), 429);
    assert_eq!(via.headers()["retry-after"], "1");
    assert_eq!(via.bytes().await.unwrap(), direct_body);
    let s = next_sample(&mut rx).await;
    assert_eq!(
        (s.status, s.http_status),
        (v1::CallStatus::Error as i32, Some(429))
    );
    assert_eq!(s.error, "HTTP 429: slow down");
    assert!(s.ttft_ms.is_none());

    server.set(|s| s.behavior = Behavior::Normal);
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let r = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(r.text().await.unwrap().contains("exceeds 2048 bytes"));

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let (proxy2, mut rx2) = proxy_to(format!("http://{dead}"), 2048).await;
    let r = client
        .post(format!("{proxy2}/v1/chat/completions"))
        .json(&json!({"model": "m"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let s = next_sample(&mut rx2).await;
    assert_eq!(s.status, v1::CallStatus::Error as i32);
    assert!(s.error.contains("unreachable"), "{}", s.error);
}

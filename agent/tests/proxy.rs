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
    proxy_with(upstream, |c| {
        c.max_body_bytes = max_body;
        c.timeout = Duration::from_secs(5);
    })
    .await
}

async fn proxy_with(
    upstream: String,
    set: impl FnOnce(&mut ProxyConfig),
) -> (String, mpsc::Receiver<Record>) {
    let (tx, rx) = mpsc::channel(64);
    let mut cfg = ProxyConfig::new(
        "p",
        "127.0.0.1:0".parse().unwrap(),
        &upstream,
        Provider::OpenaiCompatible,
    );
    set(&mut cfg);
    let st = Arc::new(ProxyState {
        cfg,
        client: llmscope_agent::proxy::upstream_client(Duration::from_secs(10)),
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
        metrics_page: None,
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
        if body["stream"] == true {
            let ttft = s.ttft_ms.unwrap();
            assert!(
                ttft >= 150.0 && ttft <= s.latency_ms,
                "{path}: ttft {ttft} latency {}",
                s.latency_ms
            );
            assert!(
                s.latency_ms - ttft >= 55.0,
                "{path}: 4 more tokens at 15 ms"
            );
        } else {
            // TTFT is defined for streams only: a whole-body answer has none (and so no TPOT)
            assert_eq!(s.ttft_ms, None, "{path}: a non-streamed call has no TTFT");
            assert!(s.latency_ms >= 150.0, "{path}: {}", s.latency_ms);
        }
        assert_eq!(
            (s.site.as_str(), s.host.as_str(), s.provider.as_str()),
            ("lab", "gpu-1", "openai_compatible")
        );
        // where the sample came from: the proxy, the route, streaming or not
        assert_eq!(s.labels["target"], "p");
        assert_eq!(s.labels["route"], path);
        assert_eq!(s.labels["stream"], body["stream"].to_string(), "{path}");
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

fn stream_body() -> serde_json::Value {
    json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "long answer please"}]})
}

#[tokio::test]
async fn a_long_stream_passes_whole_through_a_short_first_byte_timeout() {
    // 12 chunks, one every 200 ms (≈ 2.3 s), through a proxy whose first-byte timeout is
    // 500 ms and idle limit 1 s: nothing limits the whole response, so all of it arrives
    let server = FakeServer::start(Script {
        first_token: Duration::from_millis(100),
        per_token: Duration::from_millis(200),
        tokens: 12,
        prompt_tokens: 7,
        behavior: Behavior::Normal,
        metrics_page: None,
    })
    .await;
    let (proxy, mut rx) = proxy_with(server.url(), |c| {
        c.timeout = Duration::from_millis(500);
        c.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let client = reqwest::Client::new();
    let direct = client
        .post(format!("{}/v1/chat/completions", server.url()))
        .json(&stream_body())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    let via = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&stream_body())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(t0.elapsed() >= Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(via, direct, "the whole stream, byte for byte");
    assert!(String::from_utf8_lossy(&via).contains("data: [DONE]"));
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Ok as i32, "{}", s.error);
    assert_eq!(s.tokens_out, Some(12));
    assert!(s.latency_ms >= 2_000.0, "{}", s.latency_ms);
}

#[tokio::test]
async fn a_stalled_stream_is_cut_by_the_idle_limit_and_says_so() {
    let server = FakeServer::start(Script {
        first_token: Duration::from_millis(50),
        per_token: Duration::from_millis(10),
        tokens: 5,
        prompt_tokens: 7,
        behavior: Behavior::Stall,
        metrics_page: None,
    })
    .await;
    let (proxy, mut rx) = proxy_with(server.url(), |c| {
        c.idle_timeout = Duration::from_millis(600);
    })
    .await;
    let t0 = std::time::Instant::now();
    let resp = reqwest::Client::new()
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "the headers had been sent");
    // the body ends in an error: the stream was cut, not completed
    let body = resp.bytes().await;
    assert!(
        body.is_err(),
        "a cut stream must not look complete: {body:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Timeout as i32, "{}", s.error);
    assert!(s.error.contains("idle_timeout"), "{}", s.error);
    assert!(s.error.contains("600ms"), "{}", s.error);
}

#[tokio::test]
async fn max_duration_and_the_first_byte_limit_cut_with_their_own_reasons() {
    let server = FakeServer::start(Script {
        first_token: Duration::from_millis(50),
        per_token: Duration::from_millis(200),
        tokens: 20,
        prompt_tokens: 7,
        behavior: Behavior::Normal,
        metrics_page: None,
    })
    .await;
    let (proxy, mut rx) = proxy_with(server.url(), |c| {
        c.max_duration = Some(Duration::from_millis(700));
    })
    .await;
    let client = reqwest::Client::new();
    let body = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&stream_body())
        .send()
        .await
        .unwrap()
        .bytes()
        .await;
    assert!(body.is_err(), "cut at max_duration");
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Timeout as i32, "{}", s.error);
    assert!(s.error.contains("max_duration"), "{}", s.error);

    // an upstream that never answers: 504 after the first-byte timeout
    server.set(|s| s.behavior = Behavior::Hang);
    let (proxy, mut rx) = proxy_with(server.url(), |c| {
        c.timeout = Duration::from_millis(400);
    })
    .await;
    let r = client
        .post(format!("{proxy}/v1/chat/completions"))
        .json(&stream_body())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    let s = next_sample(&mut rx).await;
    assert_eq!(s.status, v1::CallStatus::Timeout as i32, "{}", s.error);
    assert!(
        s.error
            .contains("no response headers within 400ms (proxy timeout)"),
        "{}",
        s.error
    );
}

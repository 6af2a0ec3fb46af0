//! Probes against fake servers speaking each provider's real wire format: measured latency,
//! time to first token and usage agree with the servers' scripted timing; failures become
//! error samples with a status and a reason, never latency points.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use llmscope_agent::config::{Provider, TargetConfig};
use llmscope_agent::probe::{CallStatus, Target, probe_once};
use llmscope_e2e::fake::{Behavior, FakeServer, Script};

fn target(provider: Provider, base_url: String, api_key: Option<&str>) -> Target {
    Target {
        cfg: TargetConfig {
            name: "t".into(),
            provider,
            base_url: Some(base_url.clone()),
            model: "fake-model".into(),
            interval: Duration::from_secs(1),
            jitter: 0.0,
            timeout: Duration::from_millis(1500),
            prompt: "Reply with the single word: ready".into(),
            max_tokens: 16,
            api_key_env: None,
            api_key_file: None,
            server_metrics: None,
            server_metrics_url: None,
        },
        base_url,
        api_key: api_key.map(str::to_owned),
    }
}

const PROVIDERS: [Provider; 4] = [
    Provider::Ollama,
    Provider::Openai,
    Provider::Anthropic,
    Provider::OpenaiCompatible,
];

#[tokio::test]
async fn every_provider_is_timed_from_its_own_stream() {
    let client = reqwest::Client::new();
    for p in PROVIDERS {
        let script = Script {
            first_token: Duration::from_millis(150),
            per_token: Duration::from_millis(20),
            tokens: 6,
            prompt_tokens: 13,
            behavior: Behavior::Normal,
            metrics_page: None,
        };
        let server = FakeServer::start(script).await;
        let o = probe_once(&client, &target(p, server.url(), Some("sk-secret"))).await;
        assert_eq!(o.status, CallStatus::Ok, "{p:?}: {}", o.error);
        assert_eq!(o.http_status, Some(200));
        let ttft = o.ttft_ms.expect("ttft");
        // first token after ≥ 150 ms; the whole call ≥ 150 + 5×20 ms
        // upper bounds are loose: the machine may be busy with other tests
        assert!((150.0..2000.0).contains(&ttft), "{p:?} ttft {ttft}");
        assert!(
            o.latency_ms >= 250.0 && o.latency_ms < 4000.0,
            "{p:?} latency {}",
            o.latency_ms
        );
        assert!(
            o.latency_ms - ttft >= 95.0,
            "{p:?}: tokens after the first take ≥ 100 ms"
        );
        assert_eq!((o.tokens_in, o.tokens_out), (Some(13), Some(6)), "{p:?}");
        // the request was the provider's real one: streaming, temperature 0, small max_tokens
        let r = &server.received()[0];
        assert_eq!(r.body["stream"], true, "{p:?}");
        assert_eq!(r.body["model"], "fake-model");
        match p {
            Provider::Ollama => {
                assert_eq!(r.path, "/api/chat");
                assert_eq!(r.body["options"]["temperature"], 0);
                assert_eq!(r.body["options"]["num_predict"], 16);
            }
            Provider::Anthropic => {
                assert_eq!(r.path, "/v1/messages");
                assert_eq!(r.headers["x-api-key"], "sk-secret");
                assert_eq!(r.headers["anthropic-version"], "2023-06-01");
                assert_eq!(r.body["max_tokens"], 16);
            }
            _ => {
                assert_eq!(r.path, "/v1/chat/completions");
                assert_eq!(r.headers["authorization"], "Bearer sk-secret");
                assert_eq!(r.body["stream_options"]["include_usage"], true);
                assert_eq!(r.body["temperature"], 0);
            }
        }
    }
}

#[tokio::test]
async fn failures_become_error_samples_with_a_reason() {
    let client = reqwest::Client::new();
    for p in PROVIDERS {
        let server = FakeServer::start(Script::default()).await;
        let t = target(p, server.url(), None);

        server.set(|s| s.behavior = Behavior::Status(429, "rate limit reached".into()));
        let o = probe_once(&client, &t).await;
        assert_eq!(
            (o.status, o.http_status),
            (CallStatus::Error, Some(429)),
            "{p:?}"
        );
        assert_eq!(o.error, "HTTP 429: rate limit reached");
        assert!(o.ttft_ms.is_none());

        server.set(|s| s.behavior = Behavior::Status(500, "boom".into()));
        let o = probe_once(&client, &t).await;
        assert_eq!((o.status, o.http_status), (CallStatus::Error, Some(500)));

        server.set(|s| s.behavior = Behavior::MidStreamError);
        let o = probe_once(&client, &t).await;
        assert_eq!(o.status, CallStatus::Error, "{p:?} mid-stream error");
        assert!(!o.error.is_empty());
        assert!(
            o.ttft_ms.is_none(),
            "a failed call is never a latency point"
        );

        server.set(|s| s.behavior = Behavior::Cut);
        let o = probe_once(&client, &t).await;
        assert_eq!(o.status, CallStatus::Error, "{p:?} cut stream");
        assert!(
            o.error.contains("stream ended before") || o.error.contains("broken"),
            "{p:?}: {}",
            o.error
        );

        server.set(|s| s.behavior = Behavior::Hang);
        let o = probe_once(&client, &t).await;
        assert_eq!(o.status, CallStatus::Timeout, "{p:?}");
        assert_eq!(o.error, "timed out after 1500ms");
        assert!(o.latency_ms >= 1500.0);
    }
}

#[tokio::test]
async fn connection_refused_is_an_error_sample_and_keys_stay_hidden() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = listener.local_addr().unwrap();
    drop(listener);
    let t = target(
        Provider::Openai,
        format!("http://{dead}"),
        Some("sk-very-secret"),
    );
    let o = probe_once(&reqwest::Client::new(), &t).await;
    assert_eq!(o.status, CallStatus::Error);
    assert!(o.error.starts_with("connect:"), "{}", o.error);
    assert!(o.http_status.is_none());
    let dbg = format!("{t:?}");
    assert!(
        !dbg.contains("sk-very-secret") && dbg.contains("***"),
        "{dbg}"
    );
}

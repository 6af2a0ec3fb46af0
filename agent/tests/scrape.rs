//! Model-server metrics read over HTTP: a vLLM `/metrics` page in vLLM's own exposition
//! format (two engines, `model_name` labels, histograms with `_sum`/`_count`, HELP/TYPE
//! lines and unrelated process metrics) served by the fake server, read twice; and
//! Ollama's `/api/ps`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use llmscope_agent::config::{Provider, TargetConfig};
use llmscope_agent::scrape::{ScrapeTarget, Scraper, ServerKind};
use llmscope_e2e::fake::{FakeServer, Script};
use llmscope_proto::v1::ServerMetric;

const PAGE_1: &str = include_str!("fixtures/vllm-metrics-1.txt");
const PAGE_2: &str = include_str!("fixtures/vllm-metrics-2.txt");
const MODEL: &str = "Qwen/Qwen2.5-7B-Instruct";

fn value(m: &[ServerMetric], model: &str, name: &str) -> Option<f64> {
    m.iter()
        .find(|x| x.model == model && x.metric == name)
        .map(|x| x.value)
}

#[tokio::test]
async fn vllm_metrics_become_gauges_and_interval_means() {
    let server = FakeServer::start(Script {
        metrics_page: Some(PAGE_1.into()),
        ..Script::default()
    })
    .await;
    let cfg = TargetConfig {
        name: "vllm-a".into(),
        provider: Provider::OpenaiCompatible,
        base_url: Some(format!("{}/v1", server.url())),
        model: MODEL.into(),
        interval: Duration::from_secs(5),
        jitter: 0.1,
        timeout: Duration::from_secs(5),
        prompt: "hi".into(),
        max_tokens: 4,
        api_key_env: None,
        api_key_file: None,
        server_metrics: Some(ServerKind::Vllm),
        server_metrics_url: None,
    };
    let target = cfg.scrape_target().unwrap();
    assert_eq!(target.url, format!("{}/metrics", server.url()));
    let client = reqwest::Client::new();
    let mut scraper = Scraper::new();
    let timeout = Duration::from_secs(2);

    let first = scraper
        .scrape(&client, std::slice::from_ref(&target), timeout)
        .await;
    assert!(first.iter().all(|m| m.target == "vllm-a"));
    // gauges summed over the two engines; KV usage as a percentage, averaged
    assert_eq!(value(&first, MODEL, "requests_running"), Some(23.0));
    assert_eq!(value(&first, MODEL, "requests_waiting"), Some(5.0));
    let kv = value(&first, MODEL, "kv_cache_usage_pct").unwrap();
    assert!((kv - 60.0).abs() < 1e-9, "{kv}");
    // one page gives no interval: no means, no preemption count yet
    assert_eq!(value(&first, MODEL, "ttft_mean_ms"), None);
    assert_eq!(value(&first, MODEL, "preemptions"), None);
    // nothing from the process metrics or the by-reason breakdown
    assert_eq!(first.len(), 3, "{first:?}");

    server.set(|s| s.metrics_page = Some(PAGE_2.into()));
    let second = scraper
        .scrape(&client, std::slice::from_ref(&target), timeout)
        .await;
    assert_eq!(value(&second, MODEL, "requests_waiting"), Some(17.0));
    let kv = value(&second, MODEL, "kv_cache_usage_pct").unwrap();
    assert!((kv - 93.0).abs() < 1e-9, "{kv}");
    // 80 calls in the interval: TTFT sum +24 s → 300 ms; end-to-end +400 s → 5 000 ms
    let ttft = value(&second, MODEL, "ttft_mean_ms").unwrap();
    assert!((ttft - 300.0).abs() < 1e-6, "{ttft}");
    let e2e = value(&second, MODEL, "e2e_mean_ms").unwrap();
    assert!((e2e - 5000.0).abs() < 1e-6, "{e2e}");
    assert_eq!(value(&second, MODEL, "preemptions"), Some(3.0));

    // a server restart (counts fall): no mean from the reset interval
    server.set(|s| s.metrics_page = Some(PAGE_1.into()));
    let third = scraper
        .scrape(&client, std::slice::from_ref(&target), timeout)
        .await;
    assert_eq!(value(&third, MODEL, "ttft_mean_ms"), None);
    assert_eq!(value(&third, MODEL, "preemptions"), None);
    assert_eq!(value(&third, MODEL, "requests_waiting"), Some(5.0));

    // a server without the page (404) or down: nothing, and no error escapes
    server.set(|s| s.metrics_page = None);
    let none = scraper
        .scrape(&client, std::slice::from_ref(&target), timeout)
        .await;
    assert!(none.is_empty());
}

#[tokio::test]
async fn ollama_ps_reports_loaded_models() {
    let server = FakeServer::start(Script::default()).await;
    let target = ScrapeTarget {
        target: "ollama".into(),
        kind: ServerKind::Ollama,
        url: ServerKind::Ollama.default_url(&server.url()),
    };
    let got = Scraper::new()
        .scrape(&reqwest::Client::new(), &[target], Duration::from_secs(2))
        .await;
    assert_eq!(value(&got, "", "models_loaded"), Some(1.0));
    assert_eq!(
        value(&got, "llama3.1:8b", "model_vram_bytes"),
        Some(6_654_289_920.0)
    );
}

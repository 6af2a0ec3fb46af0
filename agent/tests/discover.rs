//! Kubernetes discovery against a fake API server answering list and watch in the API's
//! JSON format: the agent probes the labelled model-server pods of its own node, stops when
//! a pod goes, starts again when one comes back, and never probes other nodes' pods.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use llmscope_agent::config::{AgentConfig, KubernetesConfig};
use llmscope_e2e::fake::{FakeServer, Script};
use llmscope_e2e::fake_k8s::{FakeKube, pod};
use serde_json::json;

fn calls(s: &FakeServer) -> usize {
    s.received()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .count()
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_this_node_are_probed_while_they_run() {
    let kube = FakeKube::start().await;
    let vllm = FakeServer::start(Script::default()).await;
    let elsewhere = FakeServer::start(Script::default()).await;
    let unlabelled = FakeServer::start(Script::default()).await;
    let labels = json!({"app": "vllm", "llmscope.io/model-server": "true"});
    // before the agent starts: one pod here (found by the initial list), one on another
    // node, one here without the label
    kube.add(pod(
        "llm",
        "vllm-0",
        "uid-1",
        "node-a",
        vllm.addr,
        labels.clone(),
        json!({"llmscope.io/server-metrics": "none"}),
    ));
    kube.add(pod(
        "llm",
        "vllm-1",
        "uid-2",
        "node-b",
        elsewhere.addr,
        labels.clone(),
        json!({}),
    ));
    kube.add(pod(
        "llm",
        "web-0",
        "uid-3",
        "node-a",
        unlabelled.addr,
        json!({"app": "web"}),
        json!({}),
    ));

    let dir = tempfile::tempdir().unwrap();
    let cfg = AgentConfig {
        collector: "http://127.0.0.1:9".into(),
        data_dir: dir.path().to_path_buf(),
        http_listen: "127.0.0.1:0".parse().unwrap(),
        auto_targets: false,
        kubernetes: KubernetesConfig {
            discover: true,
            api_url: Some(kube.url()),
            node_name: Some("node-a".into()),
            probe_interval: Duration::from_millis(200),
            ..KubernetesConfig::default()
        },
        ..AgentConfig::default()
    };
    cfg.validate().unwrap();
    let agent = llmscope_agent::start(cfg).await.unwrap();

    // the listed pod: probed with the model its server lists (no annotation)
    wait_for("probes of llm/vllm-0", || calls(&vllm) >= 2).await;
    let first = vllm
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(first.body["model"], "fake-model");
    // the agent asked for its node's labelled pods only
    let queries = kube.queries();
    assert!(
        queries
            .iter()
            .any(|q| q.contains("fieldSelector=spec.nodeName%3Dnode-a")
                && q.contains("labelSelector=llmscope.io%2Fmodel-server%3Dtrue")),
        "{queries:?}"
    );
    assert!(
        queries.iter().any(|q| q.contains("watch=true")),
        "the agent watches after listing: {queries:?}"
    );

    // the pod goes: its probes stop
    kube.delete("llm", "vllm-0");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after_delete = calls(&vllm);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(
        calls(&vllm) <= after_delete + 1,
        "probes went on after the pod was deleted ({after_delete} → {})",
        calls(&vllm)
    );

    // a new pod arrives through the watch, annotated with its model: probed
    let vllm2 = FakeServer::start(Script::default()).await;
    kube.add(pod(
        "llm",
        "vllm-0",
        "uid-4",
        "node-a",
        vllm2.addr,
        labels.clone(),
        json!({"llmscope.io/model": "qwen2.5-7b"}),
    ));
    wait_for("probes of the new llm/vllm-0", || calls(&vllm2) >= 2).await;
    let got = vllm2
        .received()
        .into_iter()
        .find(|r| r.path == "/v1/chat/completions")
        .unwrap();
    assert_eq!(got.body["model"], "qwen2.5-7b");

    // the pod stops running (phase Failed): probes stop
    let mut failed = pod(
        "llm",
        "vllm-0",
        "uid-4",
        "node-a",
        vllm2.addr,
        labels,
        json!({"llmscope.io/model": "qwen2.5-7b"}),
    );
    failed["status"]["phase"] = json!("Failed");
    kube.modify(failed);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after_fail = calls(&vllm2);
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert!(calls(&vllm2) <= after_fail + 1);

    // never probed: the pod on another node, the pod without the label
    assert_eq!(calls(&elsewhere), 0);
    assert_eq!(calls(&unlabelled), 0);
    agent.stop().await;
}

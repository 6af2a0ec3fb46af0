//! Agent and collector as real processes: probes and telemetry arrive; a collector outage
//! loses nothing and duplicates nothing; kill -9 of the agent with unacked data on disk is
//! replayed; a corrupt buffer record is skipped and counted; without NVML telemetry flows.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use llmscope_e2e::fake::{FakeServer, Script};
use llmscope_e2e::{Agent, Collector, collector_cmd, free_port, wait_until};
use llmscope_store::Store;

fn agent_config(
    dir: &Path,
    collector: &str,
    token: &str,
    fake: Option<&str>,
) -> std::path::PathBuf {
    let mut text = format!(
        "collector = \"http://{collector}\"\ntoken = \"{token}\"\nsite = \"lab\"\nhost = \"gpu-node-1\"\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\ntelemetry_interval = \"300ms\"\nauto_targets = false\nbatch_max = 50\n",
        dir.join("agent-data").display()
    );
    if let Some(url) = fake {
        text.push_str(&format!(
            "\n[[targets]]\nname = \"fake-ollama\"\nprovider = \"ollama\"\nbase_url = \"{url}\"\nmodel = \"llama3.1:8b\"\ninterval = \"100ms\"\njitter = 0.1\ntimeout = \"5s\"\n"
        ));
    }
    let path = dir.join(if fake.is_some() {
        "agent.toml"
    } else {
        "agent-drain.toml"
    });
    std::fs::write(&path, text).unwrap();
    path
}

/// A test PKI written to `dir` (rcgen): a CA, a server certificate for `localhost` and a
/// client certificate, as PEM file paths.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
        };
        let write = |name: &str, text: String| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.display().to_string()
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);
        let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
            p.extended_key_usages = vec![usage];
            let cert = p.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (sc, sk) = leaf("localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (cc, ck) = leaf("agent.gpu-node-1", ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("s.pem", sc),
            server_key: write("s.key", sk),
            client_cert: write("a.pem", cc),
            client_key: write("a.key", ck),
        }
    }
}

fn quick() -> Script {
    Script {
        first_token: Duration::from_millis(20),
        per_token: Duration::from_millis(2),
        tokens: 4,
        prompt_tokens: 7,
        ..Script::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_telemetry_arrive_and_an_outage_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let port = free_port();
    let grpc = format!("127.0.0.1:{port}");
    let collector = Collector::start(&url, &["--grpc-listen", &grpc]).await;
    let fake = FakeServer::start(quick()).await;
    let agent = Agent::start(&agent_config(dir.path(), &grpc, &token, Some(&fake.url()))).await;
    let store = Store::connect(&url, 1).await.unwrap();

    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= 5 && store.count_telemetry().await.unwrap() >= 2
        })
        .await,
        "samples and telemetry arrive"
    );
    assert_eq!(
        store.count_gpu_rows().await.unwrap(),
        0,
        "no NVML here: telemetry without GPUs"
    );
    let ids = store.sample_id_counts().await.unwrap();
    let s = store.get_sample(ids[0].0).await.unwrap().unwrap();
    assert_eq!(
        (
            s.site.as_str(),
            s.host.as_str(),
            s.provider.as_str(),
            s.model.as_str()
        ),
        ("lab", "gpu-node-1", "ollama", "llama3.1:8b")
    );
    assert_eq!((s.tokens_in, s.tokens_out), (Some(7), Some(4)));
    assert!(s.ttft_ms.unwrap() >= 20.0 && s.latency_ms >= s.ttft_ms.unwrap());
    let metrics = agent.metrics().await;
    assert!(
        metrics.contains("gen_ai_client_operation_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("gen_ai_server_time_to_first_token_seconds"));
    assert!(llmscope_e2e::sum_metric(&metrics, "llmscope_agent_shipped_records_total") > 0.0);

    // outage: the collector goes away, probing goes on into the disk buffer
    collector.kill9().await;
    let during = fake.received().len();
    assert!(
        wait_until(Duration::from_secs(20), || async {
            fake.received().len() >= during + 15
        })
        .await
    );
    assert!(agent.counter("llmscope_agent_buffer_bytes").await > 0.0);
    let collector = Collector::start(&url, &["--grpc-listen", &grpc]).await;
    // stop the agent gracefully: it finishes its probes and drains the buffer
    assert!(agent.terminate().await, "agent exits cleanly on SIGTERM");
    let calls = fake.received().len() as i64;
    // anything not drained at shutdown is replayed by the next start
    let drain = Agent::start(&agent_config(dir.path(), &grpc, &token, None)).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= calls
        })
        .await,
        "every probe arrives: {} of {calls}",
        store.count_samples().await.unwrap()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        store.count_samples().await.unwrap(),
        calls,
        "exactly once: one sample per probe call"
    );
    assert!(drain.terminate().await);
    assert!(collector.terminate().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_unacked_data_replays_and_corruption_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let grpc = format!("127.0.0.1:{}", free_port());
    let fake = FakeServer::start(quick()).await;
    // the collector is down the whole time: everything stays in the agent's buffer
    let agent = Agent::start(&agent_config(dir.path(), &grpc, &token, Some(&fake.url()))).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            agent.counter("llmscope_agent_calls_total").await >= 20.0
        })
        .await
    );
    let calls = agent.counter("llmscope_agent_calls_total").await as i64;
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent.kill9().await;

    // corrupt one record's payload in the oldest segment
    let seg_dir = dir.path().join("agent-data/buffer");
    let mut segs: Vec<_> = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    segs.sort();
    let mut bytes = std::fs::read(&segs[0]).unwrap();
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap()) as usize;
    bytes[8 + len / 2] ^= 0xff;
    std::fs::write(&segs[0], &bytes).unwrap();

    let collector = Collector::start(&url, &["--grpc-listen", &grpc]).await;
    let drain = Agent::start(&agent_config(dir.path(), &grpc, &token, None)).await;
    let store = Store::connect(&url, 1).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= calls - 1
        })
        .await,
        "the samples buffered before kill -9 are replayed: {} of {calls}",
        store.count_samples().await.unwrap()
    );
    assert_eq!(
        drain
            .counter("llmscope_agent_buffer_corrupt_records_total")
            .await,
        1.0,
        "the corrupt record is counted"
    );
    let counts = store.sample_id_counts().await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 1));
    assert!((counts.len() as i64) <= fake.received().len() as i64);
    assert!(drain.terminate().await);
    assert!(collector.terminate().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_ships_over_tls_verifying_the_collector_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let port = free_port();
    let grpc = format!("127.0.0.1:{port}");
    let collector = Collector::start(
        &url,
        &[
            "--grpc-listen",
            &grpc,
            "--tls-cert",
            &pki.server_cert,
            "--tls-key",
            &pki.server_key,
        ],
    )
    .await;
    let fake = FakeServer::start(quick()).await;
    let cfg = agent_config(
        dir.path(),
        &format!("localhost:{port}"),
        &token,
        Some(&fake.url()),
    );
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("collector = \"http://", "collector = \"https://")
        .replacen("\n", &format!("\nca_cert = \"{}\"\n", pki.ca), 1);
    std::fs::write(&cfg, text).unwrap();
    let agent = Agent::start(&cfg).await;
    let store = Store::connect(&url, 1).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= 3
        })
        .await,
        "samples arrive over TLS"
    );
    assert_eq!(
        agent.counter("llmscope_agent_collector_connected").await,
        1.0
    );
    assert!(agent.terminate().await);
    assert!(collector.terminate().await);
}

/// An agent with automatic targets on a node: `auto_simulated = false` (what the Helm chart
/// sets) invents nothing when no model server answers; a server on a configured address and
/// port is found and probed (here the fake OpenAI-compatible server, as the node's vLLM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automatic_targets_look_where_configured_and_never_invent_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let port = free_port();
    let grpc = format!("127.0.0.1:{port}");
    let collector = Collector::start(&url, &["--grpc-listen", &grpc]).await;
    let store = Store::connect(&url, 1).await.unwrap();
    let config = |name: &str, openai_port: u16| {
        let text = format!(
            "collector = \"http://{grpc}\"\ntoken = \"{token}\"\nsite = \"lab\"\nhost = \"{name}\"\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\ntelemetry_interval = \"300ms\"\nbatch_max = 50\nauto_targets = true\nauto_hosts = [\"127.0.0.1\"]\nauto_ollama_ports = [{}]\nauto_openai_ports = [{openai_port}]\nauto_simulated = false\nauto_retry = \"1s\"\n",
            dir.path().join(name).display(),
            free_port(),
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    // nothing listens on either port: telemetry only, no sample at all
    let empty = Agent::start(&config("node-without-model", free_port())).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_telemetry().await.unwrap() >= 3
        })
        .await,
        "telemetry arrives"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        store.count_samples().await.unwrap(),
        0,
        "no simulated (or any) samples without a model server"
    );
    let m = empty.metrics().await;
    assert!(!m.contains("simulated"), "{m}");
    drop(empty);

    // a server that starts after the agent (a pod scheduled later on the node) is found at
    // the next look (auto_retry) and probed
    let late_port = free_port();
    let _found = Agent::start(&config("node-with-vllm", late_port)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        store.count_samples().await.unwrap(),
        0,
        "nothing before the server starts"
    );
    let _fake = FakeServer::start_on(&format!("127.0.0.1:{late_port}"), quick()).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= 3
        })
        .await,
        "probes of the found server arrive"
    );
    for (id, _) in store.sample_id_counts().await.unwrap() {
        let s = store.get_sample(id).await.unwrap().unwrap();
        assert_eq!(
            (s.host.as_str(), s.provider.as_str(), s.model.as_str()),
            ("node-with-vllm", "openai_compatible", "fake-model")
        );
        assert!(!s.labels.contains_key("simulated"), "{:?}", s.labels);
    }
    assert!(collector.terminate().await);
}

/// Mutual TLS end to end: the collector requires a client certificate signed by its client
/// CA (`--tls-client-ca`); an agent presenting one (`client_cert`, `client_key`, made with
/// rcgen) ships, an agent without one is refused at the handshake and ships nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_the_agent_with_a_client_certificate_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let ca_pem = &pki.ca;
    let url = format!("sqlite://{}/c.db", dir.path().display());
    let token = collector_cmd(&["token", "create", "--site", "lab", "--database-url", &url]).await;
    let port = free_port();
    let collector = Collector::start(
        &url,
        &[
            "--grpc-listen",
            &format!("127.0.0.1:{port}"),
            "--tls-cert",
            &pki.server_cert,
            "--tls-key",
            &pki.server_key,
            "--tls-client-ca",
            &pki.ca,
        ],
    )
    .await;
    let fake = FakeServer::start(quick()).await;
    let store = Store::connect(&url, 1).await.unwrap();
    let config = |name: &str, client: Option<(&str, &str)>| {
        let mut text = format!(
            "collector = \"https://localhost:{port}\"\ntoken = \"{token}\"\nsite = \"lab\"\nhost = \"{name}\"\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\ntelemetry_interval = \"300ms\"\nauto_targets = false\nbatch_max = 50\nca_cert = \"{ca_pem}\"\n",
            dir.path().join(name).display()
        );
        if let Some((c, k)) = client {
            text.push_str(&format!("client_cert = \"{c}\"\nclient_key = \"{k}\"\n"));
        }
        text.push_str(&format!(
            "\n[[targets]]\nname = \"fake\"\nprovider = \"ollama\"\nbase_url = \"{}\"\nmodel = \"llama3.1:8b\"\ninterval = \"100ms\"\njitter = 0.1\ntimeout = \"5s\"\n",
            fake.url()
        ));
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    // without a client certificate: refused, nothing stored, the agent keeps its data
    let refused = Agent::start(&config("no-cert", None)).await;
    // it probed, tried to ship and was turned away (at least twice)
    assert!(
        wait_until(Duration::from_secs(30), || async {
            refused
                .counter("llmscope_agent_collector_reconnects_total")
                .await
                >= 2.0
        })
        .await,
        "the agent without a certificate kept trying: {}",
        refused.metrics().await
    );
    assert_eq!(
        refused.counter("llmscope_agent_collector_connected").await,
        0.0
    );
    assert_eq!(
        store.count_samples().await.unwrap(),
        0,
        "nothing without a client certificate"
    );
    // its probes wait in its disk buffer, not lost
    assert!(refused.counter("llmscope_agent_buffer_bytes").await > 0.0);
    assert!(refused.terminate().await);
    // with one: shipped
    let admitted = Agent::start(&config(
        "with-cert",
        Some((&pki.client_cert, &pki.client_key)),
    ))
    .await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap() >= 3
        })
        .await,
        "samples arrive over mutual TLS"
    );
    assert_eq!(
        admitted.counter("llmscope_agent_collector_connected").await,
        1.0
    );
    for (id, _) in store.sample_id_counts().await.unwrap() {
        let s = store.get_sample(id).await.unwrap().unwrap();
        assert_eq!(s.host, "with-cert");
    }
    assert!(admitted.terminate().await);
    assert!(collector.terminate().await);
}

//! The cluster's NATS parts against a real NATS server with JetStream (127.0.0.1:4222 on
//! the project's machines and in CI): appending with deduplication and backpressure, the
//! partition count every replica must agree on, the shared rate gate and the live events;
//! and connecting over mutual TLS with a token to a `nats-server` of the test's own. Each test
//! uses its own prefix and deletes what it created.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use llmscope_alert::RateGate;
use llmscope_cluster::connect::delete_installation;
use llmscope_cluster::{
    AppendError, ClusterConfig, ClusterError, EventBus, Frame, Nats, Publisher,
};
use llmscope_model::{CallStatus, Sample, Source};

const URL: &str = "nats://127.0.0.1:4222";

fn cfg(name: &str, partitions: u16) -> ClusterConfig {
    ClusterConfig {
        nats_url: Some(URL.into()),
        nats_prefix: format!("u{name}{}{:04x}", std::process::id(), rand::random::<u16>()),
        partitions,
        log_max_bytes: 4 * 1024 * 1024,
        ..ClusterConfig::default()
    }
}

fn sample(i: u64, host: &str) -> Sample {
    Sample {
        id: uuid::Uuid::now_v7(),
        ts_us: 1_800_000_000_000_000 + i as i64,
        site: "eu".into(),
        host: host.into(),
        provider: "ollama".into(),
        model: "m".into(),
        source: Source::Probe,
        latency_ms: 100.0 + i as f64,
        ttft_ms: None,
        tokens_in: None,
        tokens_out: None,
        status: CallStatus::Ok,
        http_status: None,
        error: None,
        labels: BTreeMap::new(),
    }
}

async fn messages(n: &Nats) -> u64 {
    n.stream()
        .await
        .unwrap()
        .get_info()
        .await
        .unwrap()
        .state
        .messages
}

#[tokio::test]
async fn appends_split_by_partition_and_resends_are_dropped() {
    let c = cfg("append", 8);
    let n = Nats::connect(&c, "test", true).await.unwrap();
    let p = Publisher::new(n.clone());
    let batch: Vec<Sample> = (0..40).map(|i| sample(i, &format!("h{}", i % 4))).collect();
    p.append(&batch, &[], 1).await.unwrap();
    let parts = messages(&n).await;
    assert!(
        (1..=4).contains(&parts),
        "one message per partition touched: {parts}"
    );
    // the same batch again (a producer that missed the ack): JetStream drops it
    p.append(&batch, &[], 2).await.unwrap();
    assert_eq!(messages(&n).await, parts, "a resend adds nothing");
    // a different batch is appended
    p.append(&[sample(99, "h0")], &[], 3).await.unwrap();
    assert_eq!(messages(&n).await, parts + 1);
    delete_installation(URL, &c.nats_prefix).await.unwrap();
}

#[tokio::test]
async fn a_full_log_refuses_instead_of_losing() {
    let mut c = cfg("full", 1);
    c.log_max_bytes = 1024 * 1024;
    let n = Nats::connect(&c, "test", true).await.unwrap();
    let p = Publisher::new(n.clone());
    let mut refused = None;
    for round in 0..100u64 {
        let batch: Vec<Sample> = (0..500).map(|i| sample(round * 1000 + i, "h")).collect();
        if let Err(e) = p.append(&batch, &[], 1).await {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("1 MiB fills up");
    assert!(matches!(e, AppendError::Full), "{e}");
    assert!(e.to_string().contains("cluster.log_max_bytes"), "{e}");
    delete_installation(URL, &c.nats_prefix).await.unwrap();
}

#[tokio::test]
async fn every_replica_must_use_the_same_partition_count() {
    let c = cfg("parts", 4);
    let _first = Nats::connect(&c, "a", false).await.unwrap();
    let other = ClusterConfig {
        partitions: 8,
        ..c.clone()
    };
    let e = Nats::connect(&other, "b", false).await.err().unwrap();
    assert!(matches!(e, ClusterError::Mismatch(_)), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("has 4 partitions") && msg.contains("`cluster.partitions`"),
        "{msg}"
    );
    delete_installation(URL, &c.nats_prefix).await.unwrap();
}

#[tokio::test]
async fn the_rate_limit_holds_across_replicas() {
    let c = cfg("rate", 4);
    let a = Nats::connect(&c, "a", false).await.unwrap();
    let b = Nats::connect(&c, "b", false).await.unwrap();
    let (ga, gb) = (
        llmscope_cluster::rate::KvRateGate::new(a),
        llmscope_cluster::rate::KvRateGate::new(b),
    );
    // both replicas want to send at the same moment: one wins, the other learns when
    let now = 1_000_000_000;
    let gap = 1_000_000;
    let (ra, rb) = tokio::join!(
        ga.reserve("slack-ops", gap, now),
        gb.reserve("slack-ops", gap, now)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert!(
        matches!((ra, rb), (None, Some(t)) | (Some(t), None) if t == now + gap),
        "{ra:?} {rb:?}"
    );
    // within the gap nobody sends; after it, one may again
    assert_eq!(
        gb.reserve("slack-ops", gap, now + 10).await.unwrap(),
        Some(now + gap)
    );
    assert_eq!(gb.reserve("slack-ops", gap, now + gap).await.unwrap(), None);
    // channels are independent, whatever their names hold
    assert_eq!(ga.reserve("ops: pager/β", gap, now).await.unwrap(), None);
    delete_installation(URL, &c.nats_prefix).await.unwrap();
}

#[tokio::test]
async fn live_events_reach_the_other_replicas_only() {
    let c = cfg("events", 4);
    let n = Nats::connect(&c, "test", false).await.unwrap();
    let (a, b) = (EventBus::new(n.clone(), "a"), EventBus::new(n.clone(), "b"));
    let mut at_a = Box::pin(a.others().await.unwrap());
    let mut at_b = Box::pin(b.others().await.unwrap());
    let f = Frame {
        kind: "violation".into(),
        data: r#"{"id":"v1","event":"opened"}"#.into(),
    };
    a.publish(&f).await;
    let got = tokio::time::timeout(Duration::from_secs(5), at_b.next())
        .await
        .unwrap();
    assert_eq!(got, Some(f));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), at_a.next())
            .await
            .is_err(),
        "a replica does not hear itself"
    );
    delete_installation(URL, &c.nats_prefix).await.unwrap();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files.
fn pki(dir: &std::path::Path) -> [std::path::PathBuf; 5] {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let sk = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&sk, &issuer)
        .unwrap();
    let ck = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["collector".to_string()])
        .unwrap()
        .signed_by(&ck, &issuer)
        .unwrap();
    let files = [
        ("ca.pem", ca.pem()),
        ("server.pem", server.pem()),
        ("server.key", sk.serialize_pem()),
        ("client.pem", client.pem()),
        ("client.key", ck.serialize_pem()),
    ];
    files.map(|(name, text)| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    })
}

#[tokio::test]
async fn connects_over_mutual_tls_with_a_token_and_says_why_not_otherwise() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key, ccert, ckey] = pki(dir.path());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = std::process::Command::new("nats-server")
        .args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--auth",
            "s3cret",
        ])
        .args(["--tlsverify", "--tlscert"])
        .arg(&cert)
        .arg("--tlskey")
        .arg(&key)
        .arg("--tlscacert")
        .arg(&ca)
        .arg("-sd")
        .arg(dir.path().join("store"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server runs");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let good = ClusterConfig {
        nats_url: Some(format!("tls://127.0.0.1:{port}")),
        tls_ca: Some(ca.clone()),
        tls_cert: Some(ccert.clone()),
        tls_key: Some(ckey.clone()),
        token: Some(llmscope_model::Secret("s3cret".into())),
        require_tls: true,
        connect_timeout: Duration::from_secs(2),
        ..cfg("tls", 2)
    };
    good.validate().unwrap();
    let n = Nats::connect(&good, "tls-test", true).await.unwrap();
    Publisher::new(n.clone())
        .append(&[sample(1, "h")], &[], 1)
        .await
        .unwrap();
    assert_eq!(messages(&n).await, 1, "appended over TLS");
    // no token: refused, and the error says where
    let e = Nats::connect(
        &ClusterConfig {
            token: None,
            ..good.clone()
        },
        "tls-test",
        false,
    )
    .await
    .err()
    .unwrap();
    let msg = e.to_string();
    assert!(
        msg.contains("cannot reach NATS at tls://127.0.0.1"),
        "{msg}"
    );
    assert!(!msg.contains("s3cret"), "no secret in errors: {msg}");
    // no client certificate: refused too
    let e = Nats::connect(
        &ClusterConfig {
            tls_cert: None,
            tls_key: None,
            ..good.clone()
        },
        "tls-test",
        false,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(e, ClusterError::Connect { .. }), "{e}");
    let _ = server.kill();
    let _ = server.wait();
}

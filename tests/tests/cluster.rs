//! Cluster mode end to end: collector processes on one PostgreSQL database coordinated
//! through NATS JetStream (127.0.0.1:4222; one test owns its own `nats-server`). Each test
//! uses its own prefix and deletes its stream and buckets.
//!
//! - Three replicas and a client spraying batches across them (what per-request balancing
//!   does): the violations are what `llmscope-collector analyze` predicts for the series,
//!   and each notification is delivered once.
//! - kill -9 of the owner of the series' partition mid-stream: another replica takes the
//!   partition within 10 s, nothing acknowledged is lost, no violation or notification twice.
//! - NATS stopped and started: ingest answers UNAVAILABLE meanwhile, the agent buffers and
//!   replays, nothing acknowledged is lost.
//! - A replica without `cluster.nats_url` next to a live one refuses to start, naming it.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use llmscope_e2e::{Agent, Collector, bin, collector_cmd, free_port, http_get, wait_until};
use llmscope_model::{Detector, SeriesId, Violation};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use llmscope_store::Store;
use llmscope_store::testing::{Backend, TestDb};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const NATS: &str = "nats://127.0.0.1:4222";
const SITE: &str = "lab";
const KEY: &str = "series|lab|gpu-1|ollama|m|latency_ms";

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A prefix no other test run uses.
fn prefix(name: &str) -> String {
    format!("t{name}{}{:04x}", std::process::id(), rand::random::<u16>())
}

/// Webhook bodies received.
#[derive(Clone, Default)]
struct Hook(Arc<Mutex<Vec<Value>>>);

impl Hook {
    async fn start() -> (SocketAddr, Hook) {
        let hook = Hook::default();
        let h = hook.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: axum::Json<Value>| {
                let h = h.clone();
                async move {
                    h.0.lock().unwrap().push(body.0);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (addr, hook)
    }

    /// (violation id, event) of every notification received, with repeats.
    fn notifications(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .flat_map(|b| b["notifications"].as_array().cloned().unwrap_or_default())
            .map(|n| {
                (
                    n["violation_id"].as_str().unwrap_or("").to_owned(),
                    n["event"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

/// One installation: a PostgreSQL database, a NATS prefix, a webhook, a config file.
struct Install {
    db: TestDb,
    _guard: NatsGuard,
    prefix: String,
    nats: String,
    dir: tempfile::TempDir,
    config: PathBuf,
    hook: Hook,
    token: String,
}

impl Install {
    async fn new(name: &str, nats: &str) -> Install {
        let db = TestDb::new(Backend::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        let (addr, hook) = Hook::start().await;
        let config = dir.path().join("collector.toml");
        std::fs::write(
            &config,
            format!(
                "[cluster]\nlog_max_bytes = 67108864\n\n# the tests read the API without signing in\n[auth]\nanonymous_role = \"viewer\"\n\n[spc]\nrefresh_interval = \"0s\"\n\n[alerts]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\npoll_interval = \"200ms\"\n\n[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://{addr}/hook\"\n"
            ),
        )
        .unwrap();
        let token = collector_cmd(&[
            "token",
            "create",
            "--site",
            SITE,
            "--database-url",
            db.url(),
        ])
        .await;
        let prefix = prefix(name);
        Install {
            db,
            _guard: NatsGuard {
                url: nats.to_owned(),
                prefix: prefix.clone(),
            },
            prefix,
            nats: nats.to_owned(),
            dir,
            config,
            hook,
            token,
        }
    }

    async fn start(&self) -> Collector {
        Collector::start(
            self.db.url(),
            &[
                "--config",
                self.config.to_str().unwrap(),
                "--nats-url",
                &self.nats,
                "--nats-prefix",
                &self.prefix,
            ],
        )
        .await
    }

    async fn cleanup(self) {
        // the NATS side goes with `self._guard`, also when a test fails
        self.db.drop_db().await;
    }
}

/// Deletes an installation's stream and buckets when dropped (a failed test too).
struct NatsGuard {
    url: String,
    prefix: String,
}

impl Drop for NatsGuard {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = rt.block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    llmscope_cluster::connect::delete_installation(&url, &prefix),
                )
                .await
            });
        })
        .join();
    }
}

async fn cluster_state(http: &str) -> Value {
    serde_json::from_str(&http_get(http, &format!("/api/v1/cluster?key={KEY}")).await)
        .unwrap_or(Value::Null)
}

/// Waits until `n` members each own their even share of the partitions, seen from `http`.
async fn settled(http: &str, n: usize) -> bool {
    wait_until(Duration::from_secs(60), || async {
        let s = cluster_state(http).await;
        let Some(members) = s["members"].as_array().filter(|m| m.len() == n) else {
            return false;
        };
        let Some(owners) = s["owners"].as_array() else {
            return false;
        };
        let p = owners.len();
        members.iter().all(|m| {
            let mine = owners.iter().filter(|o| **o == m["id"]).count();
            mine == p / n || mine == p.div_ceil(n)
        })
    })
    .await
}

/// `n` log-normal points (log-sd 0.3) with `shift(i)` sigmas added.
fn series(n: usize, seed: u64, shift: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let (u1, u2): (f64, f64) = (r.random::<f64>().max(1e-12), r.random());
            let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            (6.5 + 0.3 * (z + shift(i))).exp()
        })
        .collect()
}

fn samples(values: &[f64], t0_ns: i64) -> Vec<v1::Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v1::Sample {
            id: uuid::Uuid::now_v7().to_string(),
            ts_unix_nanos: t0_ns + i as i64 * 1_000_000_000,
            site: SITE.into(),
            host: "gpu-1".into(),
            provider: "ollama".into(),
            model: "m".into(),
            source: v1::Source::Probe as i32,
            latency_ms: *v,
            status: v1::CallStatus::Ok as i32,
            ..Default::default()
        })
        .collect()
}

async fn push(grpc: &str, token: &str, seq: u64, s: &[v1::Sample]) -> Result<(), tonic::Status> {
    let mut c = IngestServiceClient::connect(format!("http://{grpc}"))
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut r = tonic::Request::new(IngestRequest {
        batch_seq: seq,
        samples: s.to_vec(),
        telemetry: vec![],
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let ack = c.push(r).await?.into_inner();
    assert_eq!(ack.accepted_samples as usize, s.len(), "{:?}", ack.rejected);
    Ok(())
}

/// What `llmscope-collector analyze` predicts for `values` (defaults: the live engine's).
fn predict(values: &[f64]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("values.json");
    std::fs::write(&file, serde_json::to_string(values).unwrap()).unwrap();
    let out = std::process::Command::new(bin("llmscope-collector"))
        .args(["analyze", file.to_str().unwrap(), "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Rule episodes (rule, first index), CUSUM episodes (first index) and incidents (lead's
/// first index, members' (rule, first index)).
type Outcome = (
    BTreeSet<(u8, usize)>,
    Vec<usize>,
    Vec<(usize, BTreeSet<(u8, usize)>)>,
);

fn predicted(a: &Value) -> Outcome {
    let at = |e: &Value, k: &str| e[k].as_u64().unwrap() as usize;
    let rules = a["episodes_after_phase1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["rule"].as_u64().unwrap() as u8, at(e, "start")))
        .collect();
    let cusum = a["detectors"]["cusum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| at(e, "start"))
        .collect();
    let incidents = a["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                at(i, "start"),
                i["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| (m["rule"].as_u64().unwrap() as u8, at(m, "start")))
                    .collect(),
            )
        })
        .collect();
    (rules, cusum, incidents)
}

fn observed(all: &[Violation], t0_us: i64) -> Outcome {
    let idx = |ts: i64| ((ts - t0_us) / 1_000_000) as usize;
    let rules = all
        .iter()
        .filter(|v| v.detector == Detector::Nelson)
        .map(|v| (v.rule, idx(v.opened_at)))
        .collect();
    let mut cusum: Vec<usize> = all
        .iter()
        .filter(|v| v.detector == Detector::Cusum)
        .map(|v| idx(v.opened_at))
        .collect();
    cusum.sort();
    let mut incidents: Vec<(usize, BTreeSet<(u8, usize)>)> = all
        .iter()
        .filter(|v| v.leads())
        .map(|l| {
            (
                idx(l.opened_at),
                all.iter()
                    .filter(|m| {
                        m.detector == Detector::Nelson
                            && m.incident.as_deref() == Some(l.id.as_str())
                    })
                    .map(|m| (m.rule, idx(m.opened_at)))
                    .collect(),
            )
        })
        .collect();
    incidents.sort();
    (rules, cusum, incidents)
}

/// Waits until the series' newest point is judged, then until the leads' notifications
/// have arrived (and a little longer, for any that would come twice).
async fn judged_and_notified(store: &Store, last_us: i64, hook: &Hook) -> Vec<Violation> {
    let key: SeriesId = KEY.parse().unwrap();
    assert!(
        wait_until(Duration::from_secs(60), || async {
            store
                .counters(&key)
                .await
                .is_ok_and(|c| c.last_evaluated >= last_us)
        })
        .await,
        "the series is judged to its last point"
    );
    let leads = || async {
        let all = store.list_violations(None, 10_000).await.unwrap();
        all.into_iter().filter(|v| v.leads()).count()
    };
    let n = leads().await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let got: HashSet<String> = hook
                .notifications()
                .into_iter()
                .filter(|(_, e)| e == "opened")
                .map(|(id, _)| id)
                .collect();
            got.len() >= n
        })
        .await,
        "every incident's opening is notified"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    store.list_violations(None, 10_000).await.unwrap()
}

/// Every notification once, and the openings exactly the incidents' leads.
fn notified_once(hook: &Hook, all: &[Violation]) {
    let got = hook.notifications();
    let uniq: BTreeSet<&(String, String)> = got.iter().collect();
    assert_eq!(uniq.len(), got.len(), "a notification came twice: {got:?}");
    let opened: BTreeSet<&str> = got
        .iter()
        .filter(|(_, e)| e == "opened")
        .map(|(id, _)| id.as_str())
        .collect();
    let leads: BTreeSet<&str> = all
        .iter()
        .filter(|v| v.leads())
        .map(|v| v.id.as_str())
        .collect();
    assert_eq!(opened, leads, "one opening per incident");
    assert!(!leads.is_empty(), "the shift pages");
}

/// The violations are what `analyze` predicts for `values` (sent from `t0_ns`, 1 s apart);
/// returns the prediction.
fn as_predicted(values: &[f64], violations: &[Violation], t0_ns: i64) -> Outcome {
    let want = predicted(&predict(values));
    let got = observed(violations, t0_ns / 1000);
    assert_eq!(got.0, want.0, "rule episodes");
    assert_eq!(got.1, want.1, "CUSUM episodes");
    assert_eq!(got.2, want.2, "incidents and their members");
    want
}

/// An installation with three replicas that have shared out the partitions.
async fn three_replicas(name: &str) -> (Install, Vec<Collector>) {
    let inst = Install::new(name, NATS).await;
    let mut replicas = Vec::new();
    for _ in 0..3 {
        replicas.push(inst.start().await);
    }
    assert!(
        settled(&replicas[0].http, 3).await,
        "64 partitions over 3 replicas"
    );
    (inst, replicas)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_sprayed_judge_like_one() {
    let (inst, replicas) = three_replicas("spray").await;
    let state = cluster_state(&replicas[2].http).await;
    let owned = state["owned"].as_array().unwrap().len();
    assert!((21..=22).contains(&owned), "an even share: {state}");

    // a 2σ shift after a 300-point Phase I, in batches of 5 sent to the replicas in turn
    let values = series(600, 11, |i| if i >= 450 { 2.0 } else { 0.0 });
    let t0 = now_ns() - (values.len() as i64 + 30) * 1_000_000_000;
    let all = samples(&values, t0);
    for (k, chunk) in all.chunks(5).enumerate() {
        let r = &replicas[k % 3];
        push(&r.grpc, &inst.token, k as u64, chunk).await.unwrap();
    }
    let store = inst.db.store().await;
    let last_us = (t0 + (values.len() as i64 - 1) * 1_000_000_000) / 1000;
    let violations = judged_and_notified(&store, last_us, &inst.hook).await;

    let want = as_predicted(&values, &violations, t0);
    notified_once(&inst.hook, &violations);
    assert_eq!(store.count_samples().await.unwrap(), 600);
    println!(
        "three replicas: {} rule episodes, {} CUSUM episodes, {} incidents as predicted; {} notifications once each",
        want.0.len(),
        want.1.len(),
        want.2.len(),
        inst.hook.notifications().len()
    );
    for r in replicas {
        assert!(r.terminate().await, "clean exit");
    }
    inst.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_owner_moves_its_partition_and_loses_nothing() {
    let (inst, mut replicas) = three_replicas("kill").await;
    let state = cluster_state(&replicas[0].http).await;
    let partition = state["series"]["partition"].as_u64().unwrap() as usize;
    let owner_id = state["series"]["owner"].as_str().unwrap().to_owned();
    let owner_http = state["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == owner_id.as_str())
        .unwrap()["http"]
        .as_str()
        .unwrap()
        .to_owned();
    let victim = replicas.iter().position(|r| r.http == owner_http).unwrap();

    let values = series(600, 12, |i| if i >= 450 { 2.0 } else { 0.0 });
    let t0 = now_ns() - (values.len() as i64 + 30) * 1_000_000_000;
    let all = samples(&values, t0);
    let mut acked: HashSet<String> = HashSet::new();
    let mut watch = None;
    let mut next = 0usize;
    for (k, chunk) in all.chunks(5).enumerate() {
        if k == 72 {
            // mid-stream, after Phase I: the owner of the series' partition dies
            replicas.remove(victim).kill9().await;
            let killed_at = Instant::now();
            let (survivor, owner) = (replicas[0].http.clone(), owner_id.clone());
            // how long until a survivor holds the partition's lease
            watch = Some(tokio::spawn(async move {
                while killed_at.elapsed() < Duration::from_secs(30) {
                    let s = cluster_state(&survivor).await;
                    if s["owners"][partition].as_str().is_some_and(|o| o != owner) {
                        return Some(killed_at.elapsed());
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                None
            }));
        }
        // per-request balancing; a failed send goes to the next replica
        let mut sent = false;
        for _ in 0..(replicas.len() * 20) {
            let r = &replicas[next % replicas.len()];
            next += 1;
            if push(&r.grpc, &inst.token, k as u64, chunk).await.is_ok() {
                sent = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(sent, "batch {k} acknowledged by a live replica");
        acked.extend(chunk.iter().map(|s| s.id.clone()));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let takeover = watch
        .unwrap()
        .await
        .unwrap()
        .expect("the partition has a new owner within 30 s");
    assert!(
        takeover <= Duration::from_secs(10),
        "takeover within 10 s, took {takeover:?}"
    );
    let survivor = replicas[0].http.clone();

    let store = inst.db.store().await;
    let last_us = (t0 + (values.len() as i64 - 1) * 1_000_000_000) / 1000;
    let violations = judged_and_notified(&store, last_us, &inst.hook).await;
    let s = cluster_state(&survivor).await;
    assert_eq!(
        s["members"].as_array().unwrap().len(),
        2,
        "the dead one left"
    );

    // nothing acknowledged is lost, nothing is stored twice
    let counts = store.sample_id_counts().await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 1), "no duplicates");
    let stored: HashSet<String> = counts.iter().map(|(id, _)| id.to_string()).collect();
    assert_eq!(stored, acked, "every acknowledged sample is stored");
    // no violation twice: the same outcome as one collector judging the whole series
    as_predicted(&values, &violations, t0);
    notified_once(&inst.hook, &violations);
    println!(
        "kill -9 of the owner: partition {partition} taken over {:.1} s after the kill (polled every 0.1 s)",
        takeover.as_secs_f64()
    );
    for r in replicas {
        assert!(r.terminate().await, "clean exit");
    }
    inst.cleanup().await;
}

/// A `nats-server -js` of the test's own, on a free port with its own store directory.
struct OwnNats {
    child: Option<std::process::Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnNats {
    fn start() -> OwnNats {
        let mut n = OwnNats {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
        };
        n.restart();
        n
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn restart(&mut self) {
        let child = std::process::Command::new("nats-server")
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs (Debian package nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server listens");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        self.stop();
    }
}

fn agent_config(dir: &Path, grpc: &str, token: &str) -> PathBuf {
    let path = dir.join("agent.toml");
    std::fs::write(
        &path,
        format!(
            "collector = \"http://{grpc}\"\ntoken = \"{token}\"\nsite = \"{SITE}\"\nhost = \"gpu-node-1\"\ndata_dir = \"{}\"\nhttp_listen = \"127.0.0.1:0\"\ntelemetry_interval = \"500ms\"\nauto_targets = false\nbatch_max = 20\n\n[[targets]]\nname = \"sim\"\nprovider = \"simulated\"\nmodel = \"simulated-llm\"\ninterval = \"100ms\"\njitter = 0.1\ntimeout = \"5s\"\nmax_tokens = 2\n\n[simulated]\nmodel = \"simulated-llm\"\nttft_median_ms = 2\nttft_sigma = 0.1\ntokens_per_s = 2000\n",
            dir.join("agent-data").display()
        ),
    )
    .unwrap();
    path
}

fn metric(text: &str, name: &str) -> f64 {
    llmscope_e2e::sum_metric(text, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_means_unavailable_and_the_agent_replays_everything() {
    let mut nats = OwnNats::start();
    let inst = Install::new("natsdown", &nats.url()).await;
    let collector = inst.start().await;
    assert!(
        settled(&collector.http, 1).await,
        "one replica owns every partition"
    );
    let agent = Agent::start(&agent_config(inst.dir.path(), &collector.grpc, &inst.token)).await;
    let store = inst.db.store().await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            store.count_samples().await.unwrap_or(0) >= 20
        })
        .await,
        "the agent's probes arrive through the log"
    );

    nats.stop();
    // ingest refuses with UNAVAILABLE; readiness says why
    let s = samples(&[100.0], now_ns());
    let mut refused = None;
    for _ in 0..100 {
        match push(&collector.grpc, &inst.token, 1, &s).await {
            Err(st) => {
                refused = Some(st);
                break;
            }
            Ok(()) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let st = refused.expect("ingest refuses while NATS is down");
    assert_eq!(st.code(), tonic::Code::Unavailable, "{st:?}");
    assert!(st.message().contains("NATS"), "{}", st.message());
    let ready = http_get(&collector.http, "/readyz").await;
    assert!(ready.contains("NATS"), "{ready}");
    // the agent keeps probing into its buffer; nothing more is acknowledged
    let text = agent.metrics().await;
    let (shipped_at_stop, buffered_at_stop) = (
        metric(&text, "llmscope_agent_shipped_records_total"),
        metric(&text, "llmscope_agent_buffer_bytes"),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = agent.metrics().await;
    let buffered = metric(&text, "llmscope_agent_buffer_bytes");
    assert!(
        buffered > buffered_at_stop,
        "the agent buffers while the collector refuses: {buffered_at_stop} → {buffered} bytes"
    );
    assert!(metric(&text, "llmscope_agent_shipped_records_total") <= shipped_at_stop + 50.0);

    nats.restart();
    // the agent replays its buffer: what it acknowledged catches up with what it produced
    let backlog = |t: &str| {
        metric(t, "llmscope_agent_calls_total")
            + metric(t, "llmscope_agent_telemetry_snapshots_total")
            - metric(t, "llmscope_agent_shipped_records_total")
    };
    let at_restart = backlog(&agent.metrics().await);
    assert!(
        at_restart > 20.0,
        "records waited in the buffer: {at_restart}"
    );
    assert!(
        wait_until(Duration::from_secs(60), || async {
            backlog(&agent.metrics().await) <= 25.0
        })
        .await,
        "the agent's backlog is replayed after NATS is back"
    );
    let shipped = metric(
        &agent.metrics().await,
        "llmscope_agent_shipped_records_total",
    );
    assert!(
        shipped > shipped_at_stop,
        "the buffered records were acknowledged"
    );
    let stored = || async {
        (store.count_samples().await.unwrap() + store.count_telemetry().await.unwrap()) as f64
    };
    assert!(
        wait_until(Duration::from_secs(30), || async {
            stored().await >= shipped
        })
        .await,
        "every acknowledged record is stored: {} of {shipped}",
        stored().await
    );
    let counts = store.sample_id_counts().await.unwrap();
    assert!(counts.iter().all(|(_, n)| *n == 1), "no duplicates");
    assert!(agent.terminate().await, "agent exits cleanly");
    println!(
        "NATS outage: ingest UNAVAILABLE, {buffered} bytes buffered by the agent, {shipped} records acknowledged and stored after the replay"
    );
    assert!(collector.terminate().await);
    inst.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_without_nats_refuses_to_start() {
    let db = TestDb::new(Backend::Postgres).await;
    let first = Collector::start(db.url(), &[]).await;
    let refused = |extra: &[&str]| {
        let out = std::process::Command::new(bin("llmscope-collector"))
            .args(["serve", "--database-url", db.url()])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--otlp-grpc-listen",
                "off",
                "--otlp-http-listen",
                "off",
            ])
            .args(extra)
            .env("LLMSCOPE_LOG", "warn")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = refused(&[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("another collector is running on this database")
            && err.contains("cluster.nats_url")
            && err.contains(&first.http),
        "{err}"
    );
    // a cluster replica next to a collector without cluster mode refuses too
    let guard = NatsGuard {
        url: NATS.into(),
        prefix: prefix("refuse"),
    };
    let (code, err) = refused(&["--nats-url", NATS, "--nats-prefix", &guard.prefix]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("runs without cluster mode"), "{err}");
    drop(guard);
    // cluster mode on SQLite is a configuration error naming the keys
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite://{}/x.db", dir.path().display());
    let out = std::process::Command::new(bin("llmscope-collector"))
        .args(["serve", "--database-url", &sqlite, "--nats-url", NATS])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cluster.nats_url") && err.contains("PostgreSQL"),
        "{err}"
    );
    // once the first is gone (a clean stop removes its heartbeat), a new one starts
    assert!(first.terminate().await);
    let second = Collector::start(db.url(), &[]).await;
    assert!(second.terminate().await);
    db.drop_db().await;
}

//! The paging detectors and incidents on a real store, driven through the engine with a
//! manual clock: a shift of two metrics of one model-host is one incident and one page with
//! the rule markers as members; three failed calls page `down` (with the failed calls as
//! points) once across a restart; a failure rate rising from 1 % to 10 % pages `error_rate`;
//! a model that stops sending is `silent`, an agent that stops sending telemetry `agent
//! silent` (the model's silence joins it), once across a restart and two engines on one
//! PostgreSQL, and old samples being replayed are a sign of life; canary probes and proxied
//! traffic are separate series.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use llmscope_live::{Committed, Engine, EngineConfig};
use llmscope_model::{
    CallStatus, Detector, ManualClock, Metric, Sample, SeriesId, Severity, Source, Telemetry,
    Violation, ViolationStatus,
};
use llmscope_spc::detect::rng::Rng;
use llmscope_store::Store;
use llmscope_store::testing::{Backend, TestDb};
use tokio::sync::broadcast;

const T0: i64 = 1_800_000_000_000_000;
/// Probe interval, µs.
const STEP: i64 = 10_000_000;

fn call(host: &str, source: Source, i: i64, latency_ms: f64, ttft_ms: Option<f64>) -> Sample {
    Sample {
        id: uuid::Uuid::now_v7(),
        ts_us: T0 + i * STEP,
        site: "lab".into(),
        host: host.into(),
        provider: "vllm".into(),
        model: "m".into(),
        source,
        latency_ms,
        ttft_ms,
        tokens_in: None,
        tokens_out: None,
        status: CallStatus::Ok,
        http_status: Some(200),
        error: None,
        labels: Default::default(),
    }
}

fn failed(mut s: Sample) -> Sample {
    s.status = CallStatus::Error;
    s.http_status = Some(503);
    s.error = Some("upstream unavailable".into());
    s
}

/// A probe of a log-normal model: latency ~ e^(6.5 + 0.3 z), TTFT ~ e^(5.3 + 0.3 z'), both
/// shifted by `shift` sigmas.
fn probe(r: &mut Rng, i: i64, shift: f64) -> Sample {
    let lat = (6.5 + 0.3 * (r.normal() + shift)).exp();
    let ttft = (5.3 + 0.3 * (r.normal() + shift)).exp().min(lat * 0.99);
    call("gpu-1", Source::Probe, i, lat, Some(ttft))
}

fn config() -> EngineConfig {
    EngineConfig {
        baseline_points: 100,
        refresh_interval: Duration::ZERO,
        ..EngineConfig::default()
    }
}

struct Rig {
    store: Store,
    clock: std::sync::Arc<ManualClock>,
    engine: Engine,
}

impl Rig {
    fn new(store: Store, clock: std::sync::Arc<ManualClock>) -> Rig {
        let (events, _) = broadcast::channel(1024);
        let engine = Engine::new(store.clone(), config(), clock.clone(), events);
        Rig {
            store,
            clock,
            engine,
        }
    }

    /// Commits the samples (as the ingest writer does), then hands them to the engine in
    /// batches of `batch`, moving the clock to the newest one.
    async fn feed(&mut self, samples: &[Sample], batch: usize) {
        for chunk in samples.chunks(batch) {
            self.store.write_batch(chunk, &[]).await.unwrap();
            let newest = chunk.iter().map(|s| s.ts_us).max().unwrap_or(0);
            if newest > self.clock_now() {
                self.clock.set(newest);
            }
            self.engine.process(chunk).await.unwrap();
        }
    }

    fn clock_now(&self) -> i64 {
        use llmscope_model::Clock;
        self.clock.now_us()
    }

    async fn all(&self) -> Vec<Violation> {
        self.store.list_violations(None, 10_000).await.unwrap()
    }

    async fn opened_outbox(&self) -> Vec<String> {
        self.store
            .outbox_events()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e == "opened")
            .map(|(id, _)| id)
            .collect()
    }
}

async fn sqlite() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/d.db", dir.path().display()), 4)
        .await
        .unwrap();
    (dir, store)
}

#[tokio::test]
async fn a_shift_of_two_metrics_is_one_incident_and_one_page() {
    for batch in [1, 7, 500] {
        let (_dir, store) = sqlite().await;
        let mut rig = Rig::new(store, ManualClock::new(T0));
        let mut r = Rng::new(42);
        let mut s: Vec<Sample> = (0..400).map(|i| probe(&mut r, i, 0.0)).collect();
        s.extend((400..460).map(|i| probe(&mut r, i, 2.0)));
        s.extend((460..800).map(|i| probe(&mut r, i, 0.0)));
        rig.feed(&s, batch).await;
        let all = rig.all().await;
        let leads: Vec<&Violation> = all.iter().filter(|v| v.leads()).collect();
        assert_eq!(leads.len(), 1, "batch {batch}: one incident: {all:#?}");
        let lead = leads[0];
        assert_eq!(lead.detector, Detector::Cusum);
        assert!(lead.severity.is_page());
        assert!(
            lead.opened_at >= T0 + 400 * STEP && lead.opened_at <= T0 + 420 * STEP,
            "paged within 20 probes of the shift"
        );
        let members: Vec<&Violation> = all
            .iter()
            .filter(|v| v.incident.as_deref() == Some(lead.id.as_str()) && !v.leads())
            .collect();
        let cusums: Vec<Metric> = all
            .iter()
            .filter(|v| v.detector == Detector::Cusum)
            .map(|v| v.series.metric)
            .collect();
        assert_eq!(cusums.len(), 2, "both metrics moved: {cusums:?}");
        assert!(
            all.iter()
                .filter(|v| v.detector == Detector::Cusum)
                .all(|v| v.incident.as_deref() == Some(lead.id.as_str())),
            "the second metric's CUSUM joins the first's incident"
        );
        assert!(
            members.iter().any(|m| m.detector == Detector::Nelson),
            "rule markers are members"
        );
        assert!(
            all.iter()
                .filter(|v| v.detector == Detector::Nelson)
                .all(|v| !v.severity.is_page()),
            "rules are markers by default"
        );
        assert_eq!(rig.opened_outbox().await, vec![lead.id.clone()], "one page");
        // the shift ended 340 probes ago: the incident is over, its end notified once
        assert_eq!(lead.status, ViolationStatus::Resolved, "{lead:#?}");
        let resolved: Vec<String> = rig
            .store
            .outbox_events()
            .await
            .unwrap()
            .into_iter()
            .filter(|(_, e)| e == "resolved")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(resolved, vec![lead.id.clone()]);
        let members_stored = rig.store.incident_members(&lead.id).await.unwrap();
        assert_eq!(members_stored[0].id, lead.id, "the lead first");
        assert_eq!(members_stored.len(), members.len() + 1);
    }
}

#[tokio::test]
async fn a_healthy_model_host_raises_no_page_only_markers() {
    let (_dir, store) = sqlite().await;
    let mut rig = Rig::new(store, ManualClock::new(T0));
    let mut r = Rng::new(7);
    let s: Vec<Sample> = (0..3000).map(|i| probe(&mut r, i, 0.0)).collect();
    rig.feed(&s, 50).await;
    let all = rig.all().await;
    assert!(all.iter().all(|v| !v.severity.is_page()), "{all:#?}");
    assert!(rig.opened_outbox().await.is_empty());
}

#[tokio::test]
async fn three_failed_calls_page_down_once_across_a_restart() {
    let (_dir, store) = sqlite().await;
    let clock = ManualClock::new(T0);
    let mut rig = Rig::new(store.clone(), clock.clone());
    let mut r = Rng::new(1);
    let mut s: Vec<Sample> = (0..20).map(|i| probe(&mut r, i, 0.0)).collect();
    s.extend((20..24).map(|i| failed(probe(&mut r, i, 0.0))));
    rig.feed(&s, 5).await;
    let down: Vec<Violation> = rig
        .all()
        .await
        .into_iter()
        .filter(|v| v.detector == Detector::Down)
        .collect();
    assert_eq!(down.len(), 1, "{down:#?}");
    let d = &down[0];
    assert_eq!(d.severity, Severity::Critical);
    assert!(d.leads());
    assert_eq!(
        d.opened_at,
        T0 + 20 * STEP,
        "opened at the first failed call"
    );
    let failed_ids: Vec<_> = s[20..23].iter().map(|x| Some(x.id)).collect();
    let got: Vec<_> = d.points.iter().take(3).map(|p| p.id).collect();
    assert_eq!(got, failed_ids, "the failed calls are its points");
    assert_eq!(d.series.metric, Metric::LatencyMs);

    // a restart during the outage: more failures, no second page
    drop(rig);
    let mut rig = Rig::new(store.clone(), clock.clone());
    let more: Vec<Sample> = (24..30).map(|i| failed(probe(&mut r, i, 0.0))).collect();
    rig.feed(&more, 2).await;
    assert_eq!(
        rig.opened_outbox().await,
        vec![d.id.clone()],
        "paged once across the restart"
    );
    // the model answers again
    rig.feed(&[probe(&mut r, 30, 0.0)], 1).await;
    let d = store.get_violation(&d.id).await.unwrap().unwrap();
    assert_eq!(d.status, ViolationStatus::Resolved);
    assert!(
        d.points.len() >= 9,
        "every failed call recorded: {}",
        d.points.len()
    );
}

#[tokio::test]
async fn an_error_rate_rising_from_1_to_10_percent_pages() {
    let (_dir, store) = sqlite().await;
    let mut rig = Rig::new(store, ManualClock::new(T0));
    let mut r = Rng::new(5);
    let mut u = Rng::new(6);
    let mut s = Vec::new();
    for i in 0..3000 {
        let p = if i < 2000 { 0.01 } else { 0.10 };
        let x = probe(&mut r, i, 0.0);
        // isolated failures only: consecutive ones would page `down` first
        let prev_failed = s
            .last()
            .is_some_and(|l: &Sample| l.status != CallStatus::Ok);
        s.push(if u.uniform() < p && !prev_failed {
            failed(x)
        } else {
            x
        });
    }
    rig.feed(&s, 100).await;
    let er: Vec<Violation> = rig
        .all()
        .await
        .into_iter()
        .filter(|v| v.detector == Detector::ErrorRate)
        .collect();
    assert_eq!(er.len(), 1, "{er:#?}");
    let at = (er[0].opened_at - T0) / STEP;
    assert!(
        at > 2000 && at < 2000 + 400,
        "detected within 400 calls of the rise, at call {at}"
    );
    assert!(er[0].severity.is_page() && er[0].leads());
}

fn telemetry(host: &str, ts_us: i64) -> Telemetry {
    Telemetry {
        ts_us,
        site: "lab".into(),
        host: host.into(),
        cpu_pct: 10.0,
        mem_used_bytes: 1,
        mem_total_bytes: 2,
        load1: 0.5,
        gpus: vec![],
        server_metrics: vec![],
    }
}

async fn silence_case(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let clock = ManualClock::new(T0);
    let mut a = Rig::new(store.clone(), clock.clone());
    let mut r = Rng::new(3);
    let s: Vec<Sample> = (0..30).map(|i| probe(&mut r, i, 0.0)).collect();
    let tel: Vec<Telemetry> = (0..30).map(|i| telemetry("gpu-1", T0 + i * STEP)).collect();
    store.write_batch(&[], &tel).await.unwrap();
    a.feed(&s, 10).await;
    // the writer hands each commit's telemetry to the engine
    a.engine
        .process_committed(&Committed {
            samples: Vec::new(),
            agents: Committed::agents_of(&tel),
        })
        .await
        .unwrap();
    let last = T0 + 29 * STEP;
    // 100 s later: quiet, but not yet silent (5 × 10 s is less than the 2 min floor)
    clock.set(last + 100_000_000);
    a.engine.check_silence().await.unwrap();
    assert!(a.all().await.is_empty());
    // 3 minutes later: the agent and the model are silent; a second engine (another
    // replica, or a restart) checks too
    clock.set(last + 180_000_000);
    let mut b = Rig::new(store.clone(), clock.clone());
    a.engine.check_silence().await.unwrap();
    b.engine.check_silence().await.unwrap();
    a.engine.check_silence().await.unwrap();
    let all = a.all().await;
    let agent: Vec<&Violation> = all
        .iter()
        .filter(|v| v.detector == Detector::AgentSilent)
        .collect();
    let model: Vec<&Violation> = all
        .iter()
        .filter(|v| v.detector == Detector::Silent)
        .collect();
    assert_eq!((agent.len(), model.len()), (1, 1), "{backend:?}: {all:#?}");
    assert!(agent[0].leads(), "the agent's silence leads");
    assert_eq!(
        model[0].incident.as_deref(),
        Some(agent[0].id.as_str()),
        "the model's silence joins its agent's incident"
    );
    assert_eq!(model[0].opened_at, last, "opened at the last sign of life");
    assert_eq!(
        a.opened_outbox().await,
        vec![agent[0].id.clone()],
        "{backend:?}: one page"
    );
    // data returns: both resolve, one `resolved`
    let back = T0 + 48 * STEP;
    let tel = [telemetry("gpu-1", back)];
    store.write_batch(&[], &tel).await.unwrap();
    b.feed(&[probe(&mut r, 48, 0.0)], 1).await;
    b.engine
        .process_committed(&Committed {
            samples: Vec::new(),
            agents: Committed::agents_of(&tel),
        })
        .await
        .unwrap();
    clock.set(back + 1_000_000);
    b.engine.check_silence().await.unwrap();
    a.engine.check_silence().await.unwrap();
    let all = a.all().await;
    assert!(
        all.iter().all(|v| v.status == ViolationStatus::Resolved),
        "{backend:?}: {all:#?}"
    );
    let resolved = store
        .outbox_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|(_, e)| e == "resolved")
        .count();
    assert_eq!(resolved, 1, "{backend:?}");
    db.drop_db().await;
}

#[tokio::test]
async fn silent_models_and_agents_page_once_across_engines_sqlite() {
    silence_case(Backend::Sqlite).await;
}

#[tokio::test]
async fn silent_models_and_agents_page_once_across_engines_postgres() {
    silence_case(Backend::Postgres).await;
}

#[tokio::test]
async fn probes_and_proxied_traffic_are_separate_series() {
    let (_dir, store) = sqlite().await;
    let mut rig = Rig::new(store.clone(), ManualClock::new(T0));
    let mut r = Rng::new(9);
    let mut s = Vec::new();
    for i in 0..200 {
        s.push(probe(&mut r, i, 0.0));
        // proxied calls of the same model: ten times slower in total (long answers), same TTFT
        let ttft = (5.3 + 0.3 * r.normal()).exp();
        let mut p = call("gpu-1", Source::Proxy, i, 10.0 * (6.5f64).exp(), Some(ttft));
        p.ts_us += 1;
        s.push(p);
    }
    rig.feed(&s, 40).await;
    let probe_lat = SeriesId::series("lab", "gpu-1", "vllm", "m", Metric::LatencyMs);
    let proxy_ttft =
        SeriesId::series("lab", "gpu-1", "vllm", "m", Metric::TtftMs).with_source(Source::Proxy);
    let proxy_lat = probe_lat.clone().with_source(Source::Proxy);
    let b = store.current_baseline(&probe_lat).await.unwrap().unwrap();
    assert!(
        (b.frozen.center_original() / (6.5f64).exp() - 1.0).abs() < 0.1,
        "the probes' latency baseline is the probes' own"
    );
    assert!(
        store.current_baseline(&proxy_ttft).await.unwrap().is_some(),
        "proxied TTFT has its own baseline"
    );
    assert!(
        store.current_baseline(&proxy_lat).await.unwrap().is_none(),
        "proxied latency depends on the answer's length: not judged"
    );
    assert_eq!(
        proxy_ttft.to_string(),
        "series|lab|gpu-1|vllm|m|ttft_ms|proxy"
    );
}

#[tokio::test]
async fn an_agent_replaying_old_samples_and_telemetry_is_not_silent() {
    let (_dir, store) = sqlite().await;
    // an hour after the calls were made, the agent's buffer is replayed
    let clock = ManualClock::new(T0 + 3_600_000_000);
    let (events, _) = broadcast::channel(64);
    let mut engine = Engine::new(store.clone(), config(), clock.clone(), events);
    let mut r = Rng::new(8);
    let s: Vec<Sample> = (0..60).map(|i| probe(&mut r, i, 0.0)).collect();
    for chunk in s.chunks(10) {
        let tel: Vec<Telemetry> = chunk.iter().map(|x| telemetry("gpu-1", x.ts_us)).collect();
        store.write_batch(chunk, &tel).await.unwrap();
        engine
            .process_committed(&Committed {
                samples: chunk.to_vec(),
                agents: Committed::agents_of(&tel),
            })
            .await
            .unwrap();
        engine.check_silence().await.unwrap();
        clock.advance(Duration::from_secs(1));
    }
    let all = store.list_violations(None, 100).await.unwrap();
    assert!(
        all.iter()
            .all(|v| v.detector != Detector::Silent && v.detector != Detector::AgentSilent),
        "receiving old samples and telemetry is a sign of life: {all:#?}"
    );
    // once nothing more arrives for longer than the limit, both are silent
    clock.advance(Duration::from_secs(180));
    engine.check_silence().await.unwrap();
    let all = store.list_violations(None, 100).await.unwrap();
    let count = |d: Detector| all.iter().filter(|v| v.detector == d).count();
    assert_eq!(
        (count(Detector::Silent), count(Detector::AgentSilent)),
        (1, 1)
    );
}

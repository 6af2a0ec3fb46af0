//! The quick start's promise with an accelerated clock: the configs `make run` uses
//! (`examples/quick-start/`) and the simulated model's own timing (`llmscope_agent::simulated`),
//! one probe every 2 s (±10 %, as the agent jitters), fed through the live engine on a real
//! SQLite store with a manual clock. A healthy model raises no page in 30 minutes (five
//! different seeds: 2½ hours); with the quick start's schedule the baseline is learnt within
//! about 3 minutes and the slowdown at minute 7 opens exactly one page-level incident, which
//! resolves after the model is back to normal.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use llmscope_agent::config::{AgentConfig, Overrides as AgentOverrides, SimulatedConfig};
use llmscope_collector::config::{Config, Overrides};
use llmscope_live::{Engine, EngineConfig};
use llmscope_model::{CallStatus, ManualClock, Metric, Sample, SeriesId, Source, Violation};
use llmscope_store::Store;
use rand::{Rng, SeedableRng};

const T0: i64 = 1_800_000_000_000_000;
const TOKENS: u32 = 16;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn configs() -> (Config, SimulatedConfig) {
    let c = Config::load(
        Some(&root().join("examples/quick-start/collector.toml")),
        Vec::<(String, String)>::new(),
        &Overrides::default(),
    )
    .unwrap();
    let a = AgentConfig::load(
        Some(&root().join("examples/quick-start/agent.toml")),
        &AgentOverrides::default(),
    )
    .unwrap();
    (c, a.simulated)
}

/// `minutes` of probes of the simulated model: (samples, the clock's end).
fn probes(sim: &SimulatedConfig, minutes: u64, seed: u64) -> Vec<Sample> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Vec::new();
    let mut t = Duration::from_secs(1);
    while t < Duration::from_secs(minutes * 60) {
        let d = llmscope_agent::simulated::draw(sim, t, &mut rng);
        out.push(Sample {
            id: uuid::Uuid::now_v7(),
            ts_us: T0 + t.as_micros() as i64,
            site: "local".into(),
            host: "dev".into(),
            provider: "simulated".into(),
            model: sim.model.clone(),
            source: Source::Probe,
            latency_ms: d.latency_ms(TOKENS),
            ttft_ms: Some(d.ttft_ms),
            tokens_in: Some(20),
            tokens_out: Some(i64::from(TOKENS)),
            status: CallStatus::Ok,
            http_status: Some(200),
            error: None,
            labels: Default::default(),
        });
        // the agent's schedule: 2 s ± 10 %, after the call
        let gap = 2.0 * (1.0 + rng.random_range(-0.1..0.1));
        t += Duration::from_secs_f64(gap + d.latency_ms(TOKENS) / 1000.0);
    }
    out
}

/// Runs the samples through an engine configured as `cfg` (agents ship about once a second,
/// so batches of one or two probes); returns every violation.
async fn run(cfg: &Config, samples: &[Sample]) -> (tempfile::TempDir, Store, Vec<Violation>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/q.db", dir.path().display()), 4)
        .await
        .unwrap();
    let clock = ManualClock::new(T0);
    let (events, _) = tokio::sync::broadcast::channel(1024);
    let engine_cfg = EngineConfig {
        severity: cfg.alerts.severities(),
        ..EngineConfig::from(&cfg.spc)
    };
    let mut engine = Engine::new(store.clone(), engine_cfg, clock.clone(), events);
    for chunk in samples.chunks(2) {
        store.write_batch(chunk, &[]).await.unwrap();
        clock.set(chunk[chunk.len() - 1].ts_us + 500_000);
        engine.process(chunk).await.unwrap();
    }
    let all = store.list_violations(None, 100_000).await.unwrap();
    (dir, store, all)
}

#[tokio::test]
async fn a_healthy_simulated_model_pages_never_in_30_minutes() {
    let (cfg, mut sim) = configs();
    sim.schedule.clear();
    let mut markers = 0;
    for seed in 1..=5 {
        let s = probes(&sim, 30, seed);
        assert!(s.len() > 700, "{} probes in 30 minutes", s.len());
        let (_dir, store, all) = run(&cfg, &s).await;
        let pages: Vec<&Violation> = all.iter().filter(|v| v.severity.is_page()).collect();
        assert!(
            pages.is_empty(),
            "seed {seed}: pages on a healthy model: {pages:#?}"
        );
        assert!(
            store.outbox_events().await.unwrap().is_empty(),
            "seed {seed}: nothing to notify"
        );
        markers += all.len();
    }
    println!("5 × 30 healthy minutes: no page, {markers} chart markers");
}

#[tokio::test]
async fn the_quick_start_schedule_opens_exactly_one_incident() {
    let (cfg, sim) = configs();
    assert_eq!(
        sim.schedule.len(),
        1,
        "the quick start schedules one slowdown"
    );
    let shift = &sim.schedule[0];
    let s = probes(&sim, 30, 42);
    let (_dir, store, all) = run(&cfg, &s).await;
    let key = SeriesId::series("local", "dev", "simulated", &sim.model, Metric::LatencyMs);
    let b = store.current_baseline(&key).await.unwrap().unwrap();
    let learnt = Duration::from_micros((b.frozen.window_to - T0) as u64);
    assert!(
        learnt < Duration::from_secs(200),
        "baseline learnt after {learnt:?} (README: about 3 minutes)"
    );
    let leads: Vec<&Violation> = all.iter().filter(|v| v.leads()).collect();
    assert_eq!(leads.len(), 1, "exactly one incident: {all:#?}");
    let lead = leads[0];
    assert!(lead.severity.is_page());
    let start = T0 + shift.after.as_micros() as i64;
    let end = start + shift.duration.as_micros() as i64;
    assert!(
        lead.opened_at >= start && lead.opened_at <= start + 60_000_000,
        "paged within a minute of the slowdown: {} s after it",
        (lead.opened_at - start) / 1_000_000
    );
    let resolved = lead.resolved_at.expect("the incident resolves");
    assert!(
        resolved > end && resolved < end + 600_000_000,
        "resolved {} s after the model was back",
        (resolved - end) / 1_000_000
    );
    let outbox = store.outbox_events().await.unwrap();
    assert_eq!(
        outbox,
        vec![
            (lead.id.clone(), "opened".to_owned()),
            (lead.id.clone(), "resolved".to_owned())
        ],
        "one page, one resolution"
    );
    let members = store.incident_members(&lead.id).await.unwrap();
    assert!(
        members.len() > 1,
        "the shift's other findings join the incident"
    );
    assert!(
        all.iter()
            .filter(|v| v.severity.is_page())
            .all(|v| v.incident.as_deref() == Some(lead.id.as_str())),
        "every page belongs to the one incident"
    );
}

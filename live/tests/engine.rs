//! The engine on a real SQLite store with a manual clock: rule configuration changed in the
//! database applies only once the refresh interval has passed on the engine's clock (no
//! sleeping), and what the engine does is announced as live events.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use llmscope_live::{Engine, EngineConfig};
use llmscope_model::{CallStatus, LiveEvent, ManualClock, Sample, Source};
use llmscope_store::Store;
use tokio::sync::broadcast;

const T0: i64 = 1_800_000_000_000_000;

fn sample(host: &str, i: i64, latency_ms: f64) -> Sample {
    Sample {
        id: uuid::Uuid::now_v7(),
        ts_us: T0 + i * 1_000_000,
        site: "lab".into(),
        host: host.into(),
        provider: "vllm".into(),
        model: "m".into(),
        source: Source::Probe,
        latency_ms,
        ttft_ms: None,
        tokens_in: None,
        tokens_out: None,
        status: CallStatus::Ok,
        http_status: None,
        error: None,
        labels: Default::default(),
    }
}

fn phase1(host: &str) -> Vec<Sample> {
    [100.0, 102.0, 98.0, 101.0, 99.0]
        .iter()
        .enumerate()
        .map(|(i, v)| sample(host, i as i64, *v))
        .collect()
}

fn opened(rx: &mut broadcast::Receiver<LiveEvent>) -> Vec<(String, u8)> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let LiveEvent::ViolationOpened(v) = e {
            out.push((v.series.host.clone(), v.rule));
        }
    }
    out
}

#[tokio::test]
async fn rule_settings_apply_after_the_refresh_interval_on_the_engine_clock() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}/e.db", dir.path().display()), 4)
        .await
        .unwrap();
    let clock = ManualClock::new(T0 + 3_600_000_000);
    let (events, mut rx) = broadcast::channel(256);
    let mut engine = Engine::new(
        store.clone(),
        EngineConfig {
            baseline_points: 5,
            refresh_interval: Duration::from_secs(10),
            ..EngineConfig::default()
        },
        clock.clone(),
        events,
    );
    engine.process(&phase1("h1")).await.unwrap();
    engine.process(&phase1("h2")).await.unwrap();
    let mut evaluated = 0;
    while let Ok(e) = rx.try_recv() {
        if let LiveEvent::Evaluated {
            series, tracked, ..
        } = e
        {
            evaluated += series.len();
            assert!(tracked >= 1);
        }
    }
    assert_eq!(evaluated, 2, "one announcement per series and batch");

    // rule 1 switched off for the model; the engine has not refreshed yet
    store
        .set_rule_config(
            "model",
            "m",
            r#"{"params":{"1.enabled":"false"}}"#,
            "test",
            0,
            None,
        )
        .await
        .unwrap();
    engine.process(&[sample("h1", 10, 1000.0)]).await.unwrap();
    assert_eq!(
        opened(&mut rx),
        vec![("h1".to_owned(), 1)],
        "before the refresh interval the old settings judge"
    );

    clock.advance(Duration::from_secs(11));
    engine.process(&[sample("h2", 10, 1000.0)]).await.unwrap();
    assert!(
        opened(&mut rx).iter().all(|(_, rule)| *rule != 1),
        "after it, rule 1 is off"
    );
    let stored: Vec<(String, u8)> = store
        .list_violations(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|v| (v.series.host.clone(), v.rule))
        .collect();
    assert_eq!(stored, vec![("h1".to_owned(), 1)]);
}

async fn sqlite(dir: &tempfile::TempDir) -> Store {
    Store::connect(&format!("sqlite://{}/e.db", dir.path().display()), 4)
        .await
        .unwrap()
}

fn small_phase1() -> EngineConfig {
    EngineConfig {
        baseline_points: 5,
        refresh_interval: Duration::ZERO,
        ..EngineConfig::default()
    }
}

/// Nine points just above the centre, neither rising nor falling six in a row: rule 2 at
/// the ninth.
fn run_above(host: &str) -> Vec<Sample> {
    [
        100.8, 100.6, 101.0, 100.7, 100.9, 100.6, 101.1, 100.8, 100.9,
    ]
    .iter()
    .enumerate()
    .map(|(i, v)| sample(host, 10 + i as i64, *v))
    .collect()
}

fn rule_openings(all: &[llmscope_model::Violation]) -> Vec<(u8, i64)> {
    let mut v: Vec<(u8, i64)> = all.iter().map(|v| (v.rule, v.opened_at)).collect();
    v.sort();
    v
}

#[tokio::test]
async fn points_sent_again_are_late_and_never_judged_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(&dir).await;
    let clock = ManualClock::new(T0 + 3_600_000_000);
    let (events, _rx) = broadcast::channel(256);
    let mut engine = Engine::new(store.clone(), small_phase1(), clock, events);
    engine.process(&phase1("h1")).await.unwrap();
    let run = run_above("h1");
    engine.process(&run[..5]).await.unwrap();
    // a producer that missed the ack resends its last batch: every point is late, including
    // the newest one (same time, same id), so the rule sees five points, not six or ten
    engine.process(&run[..5]).await.unwrap();
    let key = "series|lab|h1|vllm|m|latency_ms".parse().unwrap();
    let c = store.counters(&key).await.unwrap();
    assert_eq!(c.late_points, 5, "{c:?}");
    assert_eq!(c.last_evaluated, run[4].ts_us);
    // two calls at the same instant are both judged (ordered by id)
    let mut twin = run[5].clone();
    twin.id = uuid::Uuid::now_v7();
    engine.process(&[run[5].clone(), twin]).await.unwrap();
    assert_eq!(store.counters(&key).await.unwrap().late_points, 5);
    // the run completes with one more point than the original series: rule 2 opens at the
    // eighth point of the run (the twin counts), exactly once
    engine.process(&run[6..8]).await.unwrap();
    let all = store.list_violations(None, 100).await.unwrap();
    assert_eq!(rule_openings(&all), vec![(2, run[7].ts_us)], "{all:?}");
}

#[tokio::test]
async fn a_forgotten_model_host_is_warmed_from_the_database_and_judged_the_same() {
    // one engine sees the whole run; another forgets the model-host in the middle (its
    // partition moved away and back) through the handle the cluster uses
    let mut outcomes = Vec::new();
    for forget in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let store = sqlite(&dir).await;
        let clock = ManualClock::new(T0 + 3_600_000_000);
        let (events, _rx) = broadcast::channel(256);
        let (handle, task) = Engine::new(store.clone(), small_phase1(), clock, events).spawn();
        let judge = |s: Vec<Sample>| {
            let (h, st) = (handle.clone(), store.clone());
            async move {
                // what the cluster's storage consumer does: the points are in the database
                st.write_batch(&s, &[]).await.unwrap();
                h.judge(llmscope_live::Committed {
                    samples: s,
                    agents: Vec::new(),
                })
                .await
                .unwrap();
            }
        };
        judge(phase1("h1")).await;
        judge(phase1("h2")).await;
        let run = run_above("h1");
        judge(run[..5].to_vec()).await;
        let key = "series|lab|h1|vllm|m|latency_ms".parse().unwrap();
        // judge() returns once the outcome is written
        assert_eq!(
            store.counters(&key).await.unwrap().last_evaluated,
            run[4].ts_us
        );
        if forget {
            handle
                .forget(std::sync::Arc::new(|_: &str, h: &str, _: &str, _: &str| {
                    h == "h1"
                }))
                .await
                .unwrap();
        }
        judge(run[5..].to_vec()).await;
        let all = store.list_violations(None, 100).await.unwrap();
        outcomes.push(rule_openings(&all));
        drop(handle);
        task.await.unwrap();
    }
    assert!(!outcomes[0].is_empty(), "the run opens rule 2");
    assert_eq!(outcomes[0], outcomes[1], "forgetting changes nothing");
}

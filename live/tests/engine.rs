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

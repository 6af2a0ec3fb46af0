//! `analyze` = the live defaults: the same series pushed over gRPC into a collector and given
//! to `llmscope-collector analyze` (the binary, default options but the Phase I size) give
//! the same rule episodes after Phase I, the same CUSUM episodes (signal and end) and the
//! same incidents with the same members — on the public vectors' shift-and-drift case and on
//! the detection families (log-normal and AR(1) with a 1.5σ shift, a drift, a Phase I with
//! outliers).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use assert_cmd::Command;
use common::{
    TestDb, config, ingest_token, now_ns, public_vector, push_all, series_samples, start,
};
use llmscope_model::{Detector, Violation};
use llmscope_spc::detect::rng::Rng;
use serde_json::Value;

/// A detection family: `n` log-normal points (log-sd 0.3, optional AR(1) φ), `shift(i)` sigmas
/// added, Phase I outliers at 5σ when asked.
fn family(n: usize, phi: f64, outliers: bool, seed: u64, shift: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut r = Rng::new(seed);
    let mut ar = 0.0;
    (0..n)
        .map(|i| {
            ar = phi * ar + (1.0 - phi * phi).sqrt() * r.normal();
            let z = if outliers && i < 300 && i % 20 == 7 {
                5.0
            } else {
                ar
            };
            (6.5 + 0.3 * (z + shift(i))).exp()
        })
        .collect()
}

/// (rule or 0 for the CUSUM, first index, end index or None while open).
type Ep = (u8, usize, Option<usize>);

fn analyze(values: &[f64], phase1: usize) -> Value {
    let text = serde_json::to_string(values).unwrap();
    let out = Command::cargo_bin("llmscope-collector")
        .unwrap()
        .args(["analyze", "-", "--format", "json", "--baseline-points"])
        .arg(phase1.to_string())
        .write_stdin(text)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

async fn live(db: &TestDb, values: &[f64], phase1: usize) -> (Vec<Violation>, i64) {
    let mut cfg = config(db.url());
    cfg.spc.baseline_points = phase1;
    let running = start(&cfg).await;
    let token = ingest_token(&running.store, "lab").await;
    let t0 = now_ns() - (values.len() as i64 + 60) * 1_000_000_000;
    push_all(
        running.grpc_addr,
        &token,
        series_samples("m", values, t0),
        vec![],
    )
    .await;
    let key = "series|lab|gpu-1|ollama|m|latency_ms".parse().unwrap();
    let last = (t0 + (values.len() as i64 - 1) * 1_000_000_000) / 1000;
    for _ in 0..400 {
        if running.store.counters(&key).await.unwrap().last_evaluated >= last {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let all = running.store.list_violations(None, 10_000).await.unwrap();
    running.stop().await.unwrap();
    (all, t0 / 1000)
}

fn idx(ts: i64, t0: i64) -> usize {
    ((ts - t0) / 1_000_000) as usize
}

async fn check(name: &str, values: &[f64], phase1: usize) {
    let db = TestDb::new(common::Backend::Sqlite).await;
    let a = analyze(values, phase1);
    let (all, t0) = live(&db, values, phase1).await;
    let n = values.len();
    // rule episodes after Phase I
    let want: BTreeSet<(u8, usize)> = a["episodes_after_phase1"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["rule"].as_u64().unwrap() as u8,
                e["start"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    let got: BTreeSet<(u8, usize)> = all
        .iter()
        .filter(|v| v.detector == Detector::Nelson)
        .map(|v| (v.rule, idx(v.opened_at, t0)))
        .collect();
    assert_eq!(got, want, "{name}: rule episodes");
    // CUSUM episodes
    let want: Vec<Ep> = a["detectors"]["cusum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                0,
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().map(|x| x as usize),
            )
        })
        .collect();
    let mut got: Vec<Ep> = all
        .iter()
        .filter(|v| v.detector == Detector::Cusum)
        .map(|v| {
            (
                0,
                idx(v.opened_at, t0),
                v.resolved_at.map(|r| idx(r, t0)).filter(|i| *i < n),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "{name}: CUSUM episodes");
    // incidents and their members
    let want: Vec<(usize, BTreeSet<(u8, usize)>)> = a["incidents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["start"].as_u64().unwrap() as usize,
                i["members"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| {
                        (
                            m["rule"].as_u64().unwrap() as u8,
                            m["start"].as_u64().unwrap() as usize,
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    let mut got: Vec<(usize, BTreeSet<(u8, usize)>)> = all
        .iter()
        .filter(|v| v.leads())
        .map(|l| {
            (
                idx(l.opened_at, t0),
                all.iter()
                    .filter(|m| {
                        m.detector == Detector::Nelson
                            && m.incident.as_deref() == Some(l.id.as_str())
                    })
                    .map(|m| (m.rule, idx(m.opened_at, t0)))
                    .collect(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want, "{name}: incidents");
    println!(
        "{name}: {} rule episodes, {} CUSUM episodes, {} incidents agree",
        a["episodes_after_phase1"].as_array().unwrap().len(),
        a["detectors"]["cusum"].as_array().unwrap().len(),
        want.len()
    );
    db.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analyze_and_the_live_engine_agree() {
    check("public vector", &public_vector(), 50).await;
    check(
        "log-normal, 1.5σ shift",
        &family(700, 0.0, false, 1, |i| {
            if (400..480).contains(&i) { 1.5 } else { 0.0 }
        }),
        300,
    )
    .await;
    check(
        "AR(1) φ 0.3, 2σ shift to the end",
        &family(600, 0.3, false, 2, |i| if i >= 450 { 2.0 } else { 0.0 }),
        300,
    )
    .await;
    check(
        "drift 0.05σ a point",
        &family(600, 0.0, false, 3, |i| {
            if i >= 400 {
                0.05 * (i - 400) as f64
            } else {
                0.0
            }
        }),
        300,
    )
    .await;
    check(
        "Phase I with 5 % outliers, then a 1σ shift",
        &family(700, 0.0, true, 4, |i| if i >= 450 { 1.0 } else { 0.0 }),
        300,
    )
    .await;
}

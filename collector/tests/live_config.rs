//! Rule configuration applied live, re-baselining from a range (library and CLI), and the
//! `rules`, `baseline` and `violations` commands through the real binary.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use assert_cmd::Command;
use common::{Backend, TestDb, nelson_config, now_ns, start};
use llmscope_collector::auth::generate_token;
use llmscope_live::rebaseline::{self, Outcome, Request as Rebaseline, Selector};
use llmscope_model::now_us;
use llmscope_model::{SeriesId, ViolationStatus};
use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use llmscope_store::Store;
use llmscope_store::tokens::Role;
use tonic::Request;

const KEY: &str = "series|lab|gpu-1|ollama|m|latency_ms";

fn key() -> SeriesId {
    KEY.parse().unwrap()
}

async fn push(addr: std::net::SocketAddr, store: &Store, values: &[f64], t0: i64) -> i64 {
    let (tok, rec) = generate_token(Role::Ingest, Some("lab".into()), "t");
    store.insert_token(&rec, None).await.unwrap();
    let mut c = IngestServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut r = Request::new(IngestRequest {
        batch_seq: 1,
        samples: common::series_samples("m", values, t0),
        telemetry: vec![],
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    c.push(r).await.unwrap();
    let last = (t0 + (values.len() as i64 - 1) * 1_000_000_000) / 1000;
    for _ in 0..400 {
        if store.counters(&key()).await.unwrap().last_evaluated >= last {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not evaluated");
}

fn phase1() -> Vec<f64> {
    (0..50)
        .map(|i| if i % 2 == 0 { 98.0 } else { 102.0 })
        .collect()
}

/// In-control noise around 100 (the public vector's first points).
fn noise() -> Vec<f64> {
    let doc: serde_json::Value =
        serde_json::from_str(include_str!("../../spc/tests/fixtures/nelson-vectors.json")).unwrap();
    doc["cases"].as_array().unwrap().last().unwrap()["values"]
        .as_array()
        .unwrap()[..60]
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rule_configuration_applies_live() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&nelson_config(db.url())).await;
    running
        .store
        .set_rule_config(
            "model",
            "m",
            r#"{"params":{"1.enabled":"false"}}"#,
            "test",
            now_us(),
            None,
        )
        .await
        .unwrap();
    let t0 = now_ns() - 300 * 1_000_000_000;
    let mut v = phase1();
    v.extend([100.0, 150.0, 150.0]); // far beyond 3σ twice: rule 1 off, rule 5 on
    push(running.grpc_addr, &running.store, &v, t0).await;
    let rules: Vec<i64> = running
        .store
        .list_violations(None, 10)
        .await
        .unwrap()
        .iter()
        .map(|x| i64::from(x.rule))
        .collect();
    assert!(
        !rules.contains(&1),
        "rule 1 is disabled for this model: {rules:?}"
    );
    assert!(rules.contains(&5), "rule 5 still fires: {rules:?}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebaseline_from_a_range_and_the_engine_follows() {
    let db = TestDb::new(Backend::Postgres).await;
    let running = start(&nelson_config(db.url())).await;
    let t0 = now_ns() - 900 * 1_000_000_000;
    let n = noise();
    let mut v = n[..50].to_vec();
    let shifted: Vec<f64> = n[..30].iter().map(|x| x + 100.0).collect();
    v.extend(&shifted);
    let last = push(running.grpc_addr, &running.store, &v, t0).await;
    let before = running
        .store
        .list_violations(None, 100)
        .await
        .unwrap()
        .len();
    assert!(before >= 1, "the shift is caught against the old baseline");
    // after the deploy the new level is normal: re-baseline from the shifted points
    let from = (t0 + 50 * 1_000_000_000) / 1000;
    let sel = Selector {
        model: Some("m".into()),
        ..Default::default()
    };
    let out = rebaseline::rebaseline(
        &running.store,
        &Rebaseline {
            selector: &sel,
            from_us: from,
            to_us: last,
            method: llmscope_spc::SigmaMethod::Mrbar,
            transform: llmscope_spc::Transform::None,
            reason: "deploy 1.2.3",
            by: "test",
            now_us: now_us(),
            audit: None,
        },
    )
    .await
    .unwrap();
    let Outcome::Set(b) = &out[0] else {
        panic!("{out:?}")
    };
    let want = shifted.iter().sum::<f64>() / 30.0;
    let (center, points) = (b.frozen.baseline.center, b.frozen.baseline.points);
    assert!((center - want).abs() < 1e-9, "{center}");
    assert_eq!((b.frozen.mode.as_str(), points), ("manual", 30));
    let all = running.store.list_baselines(false).await.unwrap();
    assert_eq!(
        all.iter()
            .filter(|b| b.key.metric == llmscope_model::Metric::LatencyMs)
            .count(),
        2,
        "history kept"
    );
    // the same level again, now normal: rule 1 stops firing and its episode resolves after
    // 20 quiet points (against the old baseline it would fire on every point)
    let more: Vec<f64> = n[30..55].iter().map(|x| x + 100.0).collect();
    push(
        running.grpc_addr,
        &running.store,
        &more,
        t0 + 80 * 1_000_000_000,
    )
    .await;
    let after = running.store.list_violations(None, 100).await.unwrap();
    let r1: Vec<_> = after.iter().filter(|x| x.rule == 1).collect();
    assert_eq!(r1.len(), 1, "one rule 1 episode, from the shift");
    assert_eq!(r1[0].status, ViolationStatus::Resolved);
    assert!(
        r1[0].last_point_at <= last,
        "rule 1 never fired against the new baseline"
    );
    running.stop().await.unwrap();
    db.drop_db().await;
}

fn cli() -> Command {
    Command::cargo_bin("llmscope-collector").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_baseline_and_violations_commands() {
    let db = TestDb::new(Backend::Sqlite).await;
    let url = db.url().to_owned();
    let running = start(&nelson_config(&url)).await;
    let t0 = now_ns() - 300 * 1_000_000_000;
    let mut v = phase1();
    v.extend([100.0, 180.0]);
    push(running.grpc_addr, &running.store, &v, t0).await;
    running.stop().await.unwrap();

    let ok = |args: &[&str]| {
        let out = cli()
            .args(args)
            .args(["--database-url", &url])
            .assert()
            .success()
            .get_output()
            .clone();
        String::from_utf8(out.stdout).unwrap()
    };
    let fails = |args: &[&str]| {
        let out = cli()
            .args(args)
            .args(["--database-url", &url])
            .assert()
            .code(2)
            .get_output()
            .clone();
        String::from_utf8(out.stderr).unwrap()
    };
    ok(&[
        "rules",
        "set",
        "--site",
        "lab",
        "--param",
        "2.run=7",
        "--param",
        "4.enabled=false",
        "--scope",
        "site",
        "--resolve-after",
        "5",
    ]);
    let shown = ok(&["rules", "show"]);
    assert!(
        shown.contains("\"2.run\": \"7\"") && shown.contains("\"scope\": \"site\""),
        "{shown}"
    );
    let e = fails(&["rules", "set", "--global", "--param", "5.window=99"]);
    assert!(e.contains("rule5.window"), "{e}");
    let e = fails(&["rules", "set", "--param", "2.run=7"]);
    assert!(e.contains("--global, --model NAME or --site NAME"), "{e}");
    let e = fails(&["rules", "set", "--global", "--scope", "planet"]);
    assert!(e.contains("series, site or global"), "{e}");

    let list: serde_json::Value =
        serde_json::from_str(&ok(&["violations", "list", "--format", "json"])).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["rule"], 1);
    ok(&[
        "violations",
        "ack",
        &id,
        "--by",
        "oncall",
        "--note",
        "known deploy",
    ]);
    let list: serde_json::Value = serde_json::from_str(&ok(&[
        "violations",
        "list",
        "--format",
        "json",
        "--status",
        "open",
    ]))
    .unwrap();
    assert_eq!(list[0]["acked_by"], "oncall");
    let e = fails(&["violations", "ack", "nope", "--by", "x"]);
    assert!(e.contains("no violation with id `nope`"), "{e}");

    let out = ok(&[
        "baseline",
        "set",
        "--model",
        "m",
        "--metric",
        "latency_ms",
        "--from",
        "-1h",
        "--reason",
        "cli test",
    ]);
    assert!(
        out.contains("set series|lab|gpu-1|ollama|m|latency_ms"),
        "{out}"
    );
    let b: serde_json::Value =
        serde_json::from_str(&ok(&["baseline", "list", "--format", "json"])).unwrap();
    assert_eq!(b[0]["mode"], "manual");
    assert_eq!(b[0]["reason"], "cli test");
    let e = fails(&["baseline", "set", "--from", "yesterday"]);
    assert!(e.contains("`yesterday`"), "{e}");
    let e = fails(&["baseline", "set", "--from", "-1h", "--metric", "speed"]);
    assert!(e.contains("--metric `speed`"), "{e}");
    let e = fails(&[
        "baseline",
        "set",
        "--from",
        "-1h",
        "--model",
        "nothing-here",
    ]);
    assert!(e.contains("no series has samples"), "{e}");
}

fn host_samples(
    host: &str,
    values: &[f64],
    t0_ns: i64,
    step_s: i64,
    offset_s: i64,
) -> Vec<v1::Sample> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| v1::Sample {
            id: uuid::Uuid::now_v7().to_string(),
            ts_unix_nanos: t0_ns + (i as i64 * step_s + offset_s) * 1_000_000_000,
            site: "lab".into(),
            host: host.into(),
            provider: "ollama".into(),
            model: "m".into(),
            // probes: latency is judged for probes only (real traffic varies with its output)
            source: v1::Source::Probe as i32,
            latency_ms: *v,
            status: v1::CallStatus::Ok as i32,
            ..Default::default()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_scope_judges_every_host_against_the_pooled_baseline() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&nelson_config(db.url())).await;
    running
        .store
        .set_rule_config("site", "lab", r#"{"scope":"site"}"#, "test", now_us(), None)
        .await
        .unwrap();
    let (tok, rec) = generate_token(Role::Ingest, Some("lab".into()), "t");
    running.store.insert_token(&rec, None).await.unwrap();
    let mut c = IngestServiceClient::connect(format!("http://{}", running.grpc_addr))
        .await
        .unwrap();
    let n = noise();
    let t0 = now_ns() - 900 * 1_000_000_000;
    // three hosts, 20 points each, interleaved in time: 60 pooled points
    let mut batch = Vec::new();
    for (k, h) in ["a", "b", "c"].iter().enumerate() {
        batch.extend(host_samples(h, &n[k * 20..k * 20 + 20], t0, 3, k as i64));
    }
    // then host b alone jumps by 40 % of the level
    let jump: Vec<f64> = n[..5].iter().map(|x| x * 1.4).collect();
    batch.extend(host_samples("b", &jump, t0 + 70 * 1_000_000_000, 1, 0));
    let mut r = Request::new(IngestRequest {
        batch_seq: 1,
        samples: batch,
        telemetry: vec![],
    });
    r.metadata_mut()
        .insert("authorization", format!("Bearer {tok}").parse().unwrap());
    c.push(r).await.unwrap();
    let key_b = "series|lab|b|ollama|m|latency_ms";
    for _ in 0..400 {
        if running
            .store
            .counters(&key_b.parse().unwrap())
            .await
            .unwrap()
            .last_evaluated
            >= (t0 + 74 * 1_000_000_000) / 1000
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let b_key: SeriesId = key_b.parse().unwrap();
    let site = running
        .store
        .current_baseline(&b_key.pooled(llmscope_model::Scope::Site))
        .await
        .unwrap()
        .expect("a pooled site baseline");
    assert_eq!(
        site.frozen.baseline.points, 50,
        "Phase I pooled over the hosts"
    );
    assert!(
        running
            .store
            .current_baseline(&b_key)
            .await
            .unwrap()
            .is_none(),
        "no per-host baseline under site scope"
    );
    let v = running.store.list_violations(None, 100).await.unwrap();
    let on_b: Vec<_> = v
        .iter()
        .filter(|x| x.series == b_key && x.rule == 1)
        .collect();
    assert!(
        !on_b.is_empty(),
        "host b's jump is judged against the site baseline: {v:?}"
    );
    assert_eq!(on_b[0].scope, llmscope_model::Scope::Site);
    assert_eq!(on_b[0].baseline.scope, llmscope_model::Scope::Site);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_baselines_follow_recent_points_unless_a_violation_is_open() {
    use llmscope_store::violations::ViolationOp;
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&nelson_config(db.url())).await;
    // no rule fires on its own here: the open violation below is the only one
    let off = (1..=8)
        .map(|r| format!("\"{r}.enabled\":\"false\""))
        .collect::<Vec<_>>()
        .join(",");
    running
        .store
        .set_rule_config(
            "model",
            "m",
            &format!("{{\"params\":{{{off}}}}}"),
            "test",
            now_us(),
            None,
        )
        .await
        .unwrap();
    let n = noise();
    let t0 = now_ns() - 900 * 1_000_000_000;
    let mut v = n[..50].to_vec();
    v.extend(n[..40].iter().map(|x| x + 1.0));
    push(running.grpc_addr, &running.store, &v, t0).await;
    let store = &running.store;
    let current = store.current_baseline(&key()).await.unwrap().unwrap();
    let mut v = llmscope_model::Violation::open(
        key(),
        llmscope_model::Scope::Series,
        2,
        1,
        vec![],
        current.frozen,
    );
    v.id = "v-test".into();
    let open = ViolationOp::Open(v);
    store.apply_violations(&[open], now_us()).await.unwrap();
    let roll = || {
        rebaseline::roll_once(
            store,
            40,
            llmscope_spc::SigmaMethod::Mrbar,
            llmscope_spc::Transform::None,
            now_us(),
        )
    };
    assert_eq!(
        roll().await.unwrap(),
        0,
        "a series with an open violation keeps its baseline"
    );
    let current = store.current_baseline(&key()).await.unwrap().unwrap();
    assert_eq!(current.frozen.mode, llmscope_model::BaselineMode::Auto);
    store
        .apply_violations(
            &[ViolationOp::Resolve {
                id: "v-test".into(),
                series: key(),
                rule: 2,
                at: 2,
                points: None,
            }],
            now_us(),
        )
        .await
        .unwrap();
    assert_eq!(roll().await.unwrap(), 1);
    let current = store.current_baseline(&key()).await.unwrap().unwrap();
    let (center, points) = (
        current.frozen.baseline.center,
        current.frozen.baseline.points,
    );
    assert_eq!((current.frozen.mode.as_str(), points), ("rolling", 40));
    let want = n[..40].iter().map(|x| x + 1.0).sum::<f64>() / 40.0;
    assert!((center - want).abs() < 1e-9, "{center} vs {want}");
    running.stop().await.unwrap();
}

//! Live SPC end to end: samples sent over gRPC produce exactly the violations the `spc` crate
//! predicts for the same values; a restart in the middle of a run of 9 still fires rule 2
//! once at the right point; two collectors on one PostgreSQL write one violation and one
//! notification per incident; late points are stored, not evaluated; site and global bucket
//! charts on two sites with three hosts each.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{
    BACKENDS, Backend, TestDb, ingest_token, nelson_config, now_ns, public_vector, push_all,
    series_samples, start,
};
use llmscope_live::buckets;
use llmscope_model::{Detector, Scope, SeriesId, Violation, ViolationStatus};
use llmscope_proto::v1;
use llmscope_spc::{Baseline, BaselineOptions, NelsonConfig, episode, nelson};
use llmscope_store::Store;

const KEY: &str = "series|lab|gpu-1|ollama|llama3.1:8b|latency_ms";

fn key() -> SeriesId {
    KEY.parse().unwrap()
}

/// Waits until the engine has evaluated up to `ts_us` on the series.
async fn evaluated(store: &Store, key: &str, ts_us: i64) {
    let key: SeriesId = key.parse().unwrap();
    for _ in 0..400 {
        if store.counters(&key).await.unwrap().last_evaluated >= ts_us {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("engine did not evaluate up to {ts_us}");
}

/// The Nelson rule episodes of the test series: (rule, opened at).
fn series_violations(all: &[Violation]) -> BTreeSet<(i64, i64)> {
    all.iter()
        .filter(|v| v.series == key() && v.detector == Detector::Nelson)
        .map(|v| (i64::from(v.rule), v.opened_at))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violations_match_what_the_spc_crate_predicts() {
    let values = public_vector();
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let running = start(&nelson_config(db.url())).await;
        let tok = ingest_token(&running.store, "lab").await;
        let t0 = now_ns() - 600 * 1_000_000_000;
        let tele = vec![v1::Telemetry {
            ts_unix_nanos: t0 + 60 * 1_000_000_000,
            site: "lab".into(),
            host: "gpu-1".into(),
            cpu_pct: 55.0,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 1.0,
            gpus: vec![],
            server_metrics: vec![],
        }];
        push_all(
            running.grpc_addr,
            &tok,
            series_samples("llama3.1:8b", &values, t0),
            tele,
        )
        .await;
        let ts = |i: usize| (t0 + i as i64 * 1_000_000_000) / 1_000;
        evaluated(&running.store, KEY, ts(values.len() - 1)).await;

        // the prediction: Phase I = first 50 points, then rules on the rest, episodes end
        // after 20 quiet points
        let b = Baseline::estimate(&values[..50], &BaselineOptions::default()).unwrap();
        let flags = nelson::evaluate_values(&values[50..], &b, &NelsonConfig::default()).unwrap();
        let eps = episode::episodes(&flags, &NelsonConfig::default(), 20);
        let want: BTreeSet<(i64, i64)> = eps
            .iter()
            .map(|e| (i64::from(e.rule), ts(50 + e.start as usize)))
            .collect();
        assert!(want.len() >= 5, "the vector has several episodes: {want:?}");

        let got = running.store.list_violations(None, 1000).await.unwrap();
        assert_eq!(series_violations(&got), want, "{backend:?}");
        let stored = running
            .store
            .current_baseline(&key())
            .await
            .unwrap()
            .unwrap()
            .frozen;
        let sb = stored.baseline;
        assert!((sb.center - b.center).abs() < 1e-9 && (sb.sigma - b.sigma).abs() < 1e-9);
        assert_eq!(
            (sb.points, sb.method.as_str(), stored.mode.as_str()),
            (50, "mrbar", "auto")
        );
        for v in got
            .iter()
            .filter(|v| v.series == key() && v.detector == Detector::Nelson)
        {
            assert!(!v.severity.is_page(), "rules are chart markers by default");
            let e = eps
                .iter()
                .find(|e| ts(50 + e.start as usize) == v.opened_at && e.rule == v.rule)
                .unwrap();
            assert_eq!(
                v.last_point_at,
                ts(50 + e.end as usize),
                "last flagged point of rule {}",
                v.rule
            );
            let resolved = (e.end as usize) + 20 < flags.len();
            assert_eq!(
                v.status,
                if resolved {
                    ViolationStatus::Resolved
                } else {
                    ViolationStatus::Open
                },
                "rule {} at {}",
                v.rule,
                v.opened_at
            );
            // points are rewritten every 32 new points and at resolution
            let last_pt = v.points.last().unwrap().ts;
            if v.status == ViolationStatus::Resolved {
                assert_eq!(last_pt, v.last_point_at);
            } else {
                assert!(last_pt <= v.last_point_at);
            }
            assert!((v.baseline.baseline.center - sb.center).abs() < 1e-9);
            assert!(
                v.context.is_empty(),
                "a marker's context is read from the samples when shown"
            );
        }
        // a page stores its context: the points before the trigger with the host's telemetry
        for v in got.iter().filter(|v| v.severity.is_page()) {
            let before = &v.context;
            assert!(!before.is_empty() && before.len() <= 11, "{v:#?}");
            assert_eq!(
                before.last().unwrap().point.ts,
                v.opened_at,
                "context ends at the trigger"
            );
            assert!(
                before
                    .iter()
                    .all(|p| p.telemetry.as_ref().is_some_and(|t| t["cpu_pct"] == 55.0)),
                "nearest telemetry attached"
            );
        }
        // notifications are per incident: one `opened` per lead (a page), one `resolved` per
        // resolved lead, none for the members
        check_incident_outbox(&running.store, &got).await;
        assert!(
            got.iter()
                .any(|v| v.detector == Detector::Cusum && v.leads()),
            "the shifts of the vector page through the CUSUM: {got:?}"
        );
        assert!(
            got.iter()
                .any(|v| v.detector == Detector::Nelson && v.incident.is_some()),
            "rule episodes during the incident are its members"
        );

        // acknowledge
        assert!(
            running
                .store
                .ack_violation(&got[0].id, "oncall@example.com", "looking", 1, None)
                .await
                .unwrap()
        );
        let acked = running.store.list_violations(None, 1000).await.unwrap();
        assert!(
            acked
                .iter()
                .filter_map(|v| v.ack.as_ref())
                .any(|a| a.by == "oncall@example.com" && a.note == "looking")
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

/// Outbox rows are per incident: `opened` exactly for the leads, each a page; `resolved`
/// exactly for the resolved leads; members point at an existing lead.
async fn check_incident_outbox(store: &Store, got: &[Violation]) {
    let outbox = store.outbox_events().await.unwrap();
    let opened: Vec<&String> = outbox
        .iter()
        .filter(|(_, e)| e == "opened")
        .map(|(id, _)| id)
        .collect();
    let leads: Vec<&Violation> = got.iter().filter(|v| v.leads()).collect();
    let mut want: Vec<&String> = leads.iter().map(|v| &v.id).collect();
    let mut have = opened.clone();
    want.sort();
    have.sort();
    assert_eq!(have, want, "one opened notification per incident");
    assert!(leads.iter().all(|v| v.severity.is_page()));
    let resolved = outbox.iter().filter(|(_, e)| e == "resolved").count();
    assert_eq!(
        resolved,
        leads
            .iter()
            .filter(|v| v.status == ViolationStatus::Resolved)
            .count(),
        "one resolved notification per resolved incident"
    );
    for v in got {
        if let Some(i) = &v.incident {
            assert!(leads.iter().any(|l| &l.id == i), "{} joins a lead", v.id);
        }
    }
}

fn run_of_nine_data() -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let phase1: Vec<f64> = (0..50)
        .map(|i| if i % 2 == 0 { 98.0 } else { 102.0 })
        .collect();
    (phase1, vec![101.0; 5], vec![101.0; 4])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_a_run_of_9_still_fires_rule_2_once() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let (p1, first5, last4) = run_of_nine_data();
        let t0 = now_ns() - 600 * 1_000_000_000;
        let mut all = p1.clone();
        all.extend(&first5);
        all.extend(&last4);
        let s = series_samples("llama3.1:8b", &all, t0);
        let ts = |i: usize| (t0 + i as i64 * 1_000_000_000) / 1_000;

        let running = start(&nelson_config(db.url())).await;
        let tok = ingest_token(&running.store, "lab").await;
        push_all(running.grpc_addr, &tok, s[..55].to_vec(), vec![]).await;
        evaluated(&running.store, KEY, ts(54)).await;
        running.stop().await.unwrap();

        let running = start(&nelson_config(db.url())).await;
        push_all(running.grpc_addr, &tok, s[55..].to_vec(), vec![]).await;
        evaluated(&running.store, KEY, ts(58)).await;
        let got = running.store.list_violations(None, 100).await.unwrap();
        assert_eq!(
            series_violations(&got),
            BTreeSet::from([(2, ts(58))]),
            "{backend:?}: rule 2 once, at the 9th point of the run"
        );
        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_points_are_stored_and_not_evaluated() {
    let db = TestDb::new(Backend::Sqlite).await;
    let running = start(&nelson_config(db.url())).await;
    let tok = ingest_token(&running.store, "lab").await;
    let (p1, _, _) = run_of_nine_data();
    let t0 = now_ns() - 600 * 1_000_000_000;
    push_all(
        running.grpc_addr,
        &tok,
        series_samples("llama3.1:8b", &p1, t0),
        vec![],
    )
    .await;
    let ts = |i: usize| (t0 + i as i64 * 1_000_000_000) / 1_000;
    evaluated(&running.store, KEY, ts(49)).await;
    // a wild point older than the last evaluated one
    let mut late = series_samples("llama3.1:8b", &[5000.0], t0 + 10 * 1_000_000_000);
    late[0].id = uuid::Uuid::now_v7().to_string();
    push_all(running.grpc_addr, &tok, late.clone(), vec![]).await;
    for _ in 0..200 {
        if running.store.counters(&key()).await.unwrap().late_points == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        running.store.counters(&key()).await.unwrap().late_points,
        1,
        "counted as late"
    );
    assert!(
        running
            .store
            .get_sample(late[0].id.parse().unwrap())
            .await
            .unwrap()
            .is_some(),
        "stored"
    );
    assert!(
        running
            .store
            .list_violations(None, 10)
            .await
            .unwrap()
            .is_empty(),
        "not evaluated"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_postgres_write_each_episode_once() {
    let db = TestDb::new(Backend::Postgres).await;
    let a = start(&nelson_config(db.url())).await;
    let b = start(&nelson_config(db.url())).await;
    let tok = ingest_token(&a.store, "lab").await;
    let values = public_vector();
    let t0 = now_ns() - 600 * 1_000_000_000;
    let s = series_samples("llama3.1:8b", &values, t0);
    // both replicas receive the same samples (a resend after a failover, or a misrouted agent)
    for chunk in s.chunks(30) {
        push_all(a.grpc_addr, &tok, chunk.to_vec(), vec![]).await;
        push_all(b.grpc_addr, &tok, chunk.to_vec(), vec![]).await;
    }
    let last = (t0 + (values.len() as i64 - 1) * 1_000_000_000) / 1_000;
    evaluated(&a.store, KEY, last).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = a.store.list_violations(None, 1000).await.unwrap();
    let keys: Vec<(Detector, u8, i64)> = got
        .iter()
        .map(|v| (v.detector, v.rule, v.opened_at))
        .collect();
    let unique: BTreeSet<(Detector, u8, i64)> = keys.iter().copied().collect();
    assert_eq!(keys.len(), unique.len(), "one row per episode");
    assert!(unique.len() >= 5);
    check_incident_outbox(&a.store, &got).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();
    db.drop_db().await;
}

/// Deterministic noise in [-1, 1].
fn noise(i: u64) -> f64 {
    let x = (i.wrapping_mul(2_654_435_761) ^ 0x5bd1_e995) % 10_007;
    (x as f64 / 10_006.0) * 2.0 - 1.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_and_global_bucket_charts_on_two_sites_with_three_hosts() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let minute = 60_000_000i64;
        let now = llmscope_model::now_us();
        let start_min = (now / minute) * minute - 40 * minute;
        let mut rows = Vec::new();
        let mut k = 0u64;
        for m in 0..35i64 {
            for site in ["eu", "us"] {
                for host in ["h1", "h2", "h3"] {
                    for j in 0..6i64 {
                        k += 1;
                        let shift = if site == "us" && m >= 28 { 30.0 } else { 0.0 };
                        rows.push(llmscope_model::Sample {
                            id: uuid::Uuid::now_v7(),
                            ts_us: start_min + m * minute + j * 10_000_000,
                            site: site.into(),
                            host: host.into(),
                            provider: "vllm".into(),
                            model: "llama".into(),
                            source: llmscope_model::Source::Probe,
                            latency_ms: 100.0 + 10.0 * noise(k) + shift,
                            ttft_ms: None,
                            tokens_in: None,
                            tokens_out: None,
                            status: llmscope_model::CallStatus::Ok,
                            http_status: None,
                            error: None,
                            labels: Default::default(),
                        });
                    }
                }
            }
        }
        store.write_batch(&rows, &[]).await.unwrap();
        let cfg = llmscope_collector::config::SpcConfig::default();
        let out = buckets::run_once(&store, &cfg, now).await.unwrap();
        assert_eq!(
            out.buckets,
            35 * 3,
            "35 closed buckets on eu, us and global"
        );
        assert_eq!(
            buckets::run_once(&store, &cfg, now).await.unwrap().buckets,
            0,
            "nothing evaluated twice"
        );
        let opened = out
            .events
            .iter()
            .filter(|e| matches!(e, llmscope_model::LiveEvent::ViolationOpened(_)))
            .count();
        let baselines = store.list_baselines(true).await.unwrap();
        for (scope, site) in [
            (Scope::Site, "eu"),
            (Scope::Site, "us"),
            (Scope::Global, ""),
        ] {
            let b = baselines
                .iter()
                .find(|b| {
                    b.key.scope == scope
                        && b.key.site == site
                        && b.key.metric == llmscope_model::Metric::LatencyMs
                })
                .unwrap();
            let c = b.frozen.baseline.center;
            assert_eq!(b.frozen.baseline.method.as_str(), "xbar_s");
            assert!((c - 100.0).abs() < 3.0, "{scope} {site}: {c}");
        }
        let v = store.list_violations(None, 100).await.unwrap();
        assert_eq!(opened, v.len(), "every opened violation announced");
        let at = |scope: Scope, site: &str| {
            v.iter()
                .filter(|x| x.scope == scope && x.series.site_label() == site)
                .count()
        };
        assert!(
            at(Scope::Site, "us") >= 1,
            "the shifted site is caught: {v:?}"
        );
        assert_eq!(at(Scope::Site, "eu"), 0, "the stable site is not");
        assert!(
            at(Scope::Global, "*") >= 1,
            "the global chart sees half the fleet shift"
        );
        assert!(
            v.iter()
                .filter(|x| x.scope == Scope::Site)
                .all(|x| x.opened_at >= start_min + 28 * minute)
        );
        // one holder at a time
        assert!(
            store
                .try_lease(buckets::LEASE, "a", now, now + 1000)
                .await
                .unwrap()
        );
        assert!(
            !store
                .try_lease(buckets::LEASE, "b", now + 10, now + 2000)
                .await
                .unwrap()
        );
        assert!(
            store
                .try_lease(buckets::LEASE, "a", now + 20, now + 3000)
                .await
                .unwrap()
        );
        assert!(
            store
                .try_lease(buckets::LEASE, "b", now + 4000, now + 9000)
                .await
                .unwrap(),
            "an expired lease moves"
        );
        db.drop_db().await;
    }
}

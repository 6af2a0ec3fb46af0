//! Incidents and the detection view through a real collector on both backends: a shift of a
//! probe's latency and TTFT pushed over gRPC is one incident (two CUSUM pages, the rule
//! markers as members) listed by `/api/v1/incidents`; the violation filters by detector,
//! severity and source, with errors naming the parameter; `/api/v1/detection` gives the
//! series' probe rate and the expected false pages and markers per day, the markers figure
//! checked against an independent simulation (the rules' reference implementation and the
//! batch episode grouping over simulated Phase I draws).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{BACKENDS, TestDb, call, config, ingest_token, now_ns, push_all, start};
use llmscope_proto::v1;
use llmscope_spc::detect::rng::Rng;
use llmscope_spc::{Baseline, BaselineOptions, NelsonConfig, SigmaMethod, Transform};
use reqwest::Method;
use serde_json::Value;

async fn get(base: &str, path: &str) -> Value {
    let (code, v, text) = call(Method::GET, base, path, None, None).await;
    assert_eq!(code, 200, "GET {path}: {text}");
    v
}

/// Probes one second apart: latency ~ e^(6.5 + 0.3 z), TTFT ~ e^(5.3 + 0.3 z'), 64 tokens,
/// shifted by `shift(i)` sigmas.
fn probes(n: usize, t0: i64, shift: impl Fn(usize) -> f64) -> Vec<v1::Sample> {
    let mut r = Rng::new(17);
    (0..n)
        .map(|i| {
            let d = shift(i);
            let lat = (6.5 + 0.3 * (r.normal() + d)).exp();
            let ttft = (5.3 + 0.3 * (r.normal() + d)).exp().min(lat * 0.9);
            let mut s = common::sample("lab", "gpu-1", lat);
            s.ts_unix_nanos = t0 + i as i64 * 1_000_000_000;
            s.model = "m".into();
            s.ttft_ms = Some(ttft);
            s
        })
        .collect()
}

/// Marker episodes per point, counted independently: Phase I draws of `phase1` normals with
/// the robust estimator, the rules' reference implementation on 2 000 points each, episodes
/// by the batch grouping.
fn independent_marker_rate(phase1: usize, resolve_after: u32) -> f64 {
    let cfg = NelsonConfig::default();
    let opts = BaselineOptions {
        method: SigmaMethod::Robust,
        transform: Transform::None,
        k: 3.0,
    };
    let mut r = Rng::new(2024);
    let (mut eps, mut pts) = (0usize, 0usize);
    for _ in 0..300 {
        let p1: Vec<f64> = (0..phase1).map(|_| r.normal()).collect();
        let b = Baseline::estimate(&p1, &opts).unwrap();
        let zs: Vec<f64> = (0..2000).map(|_| b.z(0, r.normal()).unwrap()).collect();
        let flags = llmscope_spc::nelson::reference::evaluate(&zs, &cfg);
        eps += llmscope_spc::episode::episodes(&flags, &cfg, resolve_after).len();
        pts += zs.len();
    }
    eps as f64 / pts as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incidents_and_expected_false_alarms() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let mut cfg = config(db.url());
        cfg.spc.baseline_points = 100;
        // a wall screen: anonymous reading turned back on
        cfg.auth.anonymous_role = Some(llmscope_collector::access::Role::Viewer);
        let running = start(&cfg).await;
        let base = format!("http://{}", running.http_addr);
        let token = ingest_token(&running.store, "lab").await;
        let n = 600;
        let t0 = now_ns() - (n as i64 + 60) * 1_000_000_000;
        let s = probes(n, t0, |i| if (300..360).contains(&i) { 2.0 } else { 0.0 });
        push_all(running.grpc_addr, &token, s, vec![]).await;
        let key: llmscope_model::SeriesId = "series|lab|gpu-1|ollama|m|latency_ms".parse().unwrap();
        let last = (t0 + (n as i64 - 1) * 1_000_000_000) / 1000;
        for _ in 0..400 {
            if running.store.counters(&key).await.unwrap().last_evaluated >= last {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }

        let inc = get(&base, "/api/v1/incidents").await;
        let items = inc["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{backend:?}: one incident: {inc:#}");
        let i = &items[0];
        assert_eq!(i["lead"]["detector"], "cusum");
        assert_eq!(i["severity"], "error");
        assert_eq!(i["pages"], 2, "latency and TTFT both paged: {i:#}");
        let metrics = i["metrics"].as_array().unwrap();
        assert!(metrics.contains(&"latency_ms".into()) && metrics.contains(&"ttft_ms".into()));
        assert!(
            i["members"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["detector"] == "nelson" && m["incident_id"] == i["id"]),
            "rule markers are members"
        );
        assert_eq!(i["status"], "resolved", "the shift ended 240 probes ago");
        let id = i["id"].as_str().unwrap();
        let one = get(&base, &format!("/api/v1/incidents/{id}")).await;
        assert_eq!(one["id"], i["id"]);
        assert_eq!(one["members"], i["members"]);
        let (code, e, _) = call(Method::GET, &base, "/api/v1/incidents/nope", None, None).await;
        assert_eq!(code, 404, "{e}");
        // a member is not an incident
        let member = i["members"][0]["id"].as_str().unwrap();
        let (code, _, _) = call(
            Method::GET,
            &base,
            &format!("/api/v1/incidents/{member}"),
            None,
            None,
        )
        .await;
        assert_eq!(code, 404);

        // a marker's detail shows the points around it, read from the samples
        let marker = i["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["detector"] == "nelson")
            .unwrap();
        let d = get(
            &base,
            &format!("/api/v1/violations/{}", marker["id"].as_str().unwrap()),
        )
        .await;
        let pts = d["context"]["points"].as_array().unwrap();
        assert!(pts.len() >= 11, "{}", d["context"]);
        assert!(
            pts.iter().any(|p| p["ts"] == d["opened_at"]),
            "the trigger is among them"
        );
        let cusum = get(&base, "/api/v1/violations?detector=cusum").await;
        assert_eq!(cusum["items"].as_array().unwrap().len(), 2);
        let markers = get(&base, "/api/v1/violations?detector=nelson").await;
        assert!(
            markers["items"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v["page"] == false)
        );
        let by_incident = get(&base, &format!("/api/v1/violations?incident={id}")).await;
        assert_eq!(
            by_incident["items"].as_array().unwrap().len(),
            1 + i["members"].as_array().unwrap().len()
        );
        let proxy = get(&base, "/api/v1/violations?source=proxy").await;
        assert!(proxy["items"].as_array().unwrap().is_empty());
        for (q, field) in [
            ("detector=loud", "detector"),
            ("source=carrier", "source"),
            ("severity=meh", "severity"),
        ] {
            let (code, e, _) = call(
                Method::GET,
                &base,
                &format!("/api/v1/violations?{q}"),
                None,
                None,
            )
            .await;
            assert_eq!((code, e["field"].as_str()), (400, Some(field)), "{q}: {e}");
        }

        // expected false alarms at the series' own rate (one probe a second)
        let d = get(&base, "/api/v1/detection").await;
        let hosts = d["model_hosts"].as_array().unwrap();
        assert_eq!(hosts.len(), 1, "{d:#}");
        let h = &hosts[0];
        assert_eq!(
            (h["host"].as_str(), h["source"].as_str()),
            (Some("gpu-1"), Some("probe"))
        );
        assert!(
            (h["interval_s"].as_f64().unwrap() - 1.0).abs() < 1e-6,
            "{h}"
        );
        let per_day = 86_400.0;
        let pages = h["false_pages_per_day"]["cusum"].as_f64().unwrap();
        assert!((pages - per_day / 100_000.0).abs() < 1e-9, "{pages}");
        assert_eq!(h["judged_metrics"], 4);
        let markers = h["false_markers_per_day"].as_f64().unwrap();
        let want = per_day * 4.0 * independent_marker_rate(100, 20);
        assert!(
            (markers / want - 1.0).abs() < 0.15,
            "{backend:?}: {markers} markers a day vs {want} by an independent simulation"
        );
        let fleet = d["fleet"]["false_pages_per_day"].as_f64().unwrap();
        let er = h["false_pages_per_day"]["error_rate"].as_f64().unwrap();
        assert!((fleet - pages - er).abs() < 1e-9);
        assert!(
            d["design"]["probe"]["h"].as_f64().unwrap()
                > d["design"]["probe"]["h_known"].as_f64().unwrap()
        );
        let rules = get(&base, "/api/v1/rules").await;
        let arl = rules["defaults"]["marker_arl0"].as_f64().unwrap();
        assert!((arl - h["marker_arl0"].as_f64().unwrap()).abs() < 1e-9);

        running.stop().await.unwrap();
        db.drop_db().await;
    }
}

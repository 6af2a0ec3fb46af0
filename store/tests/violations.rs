//! Violations through the store: the typed violation (points, frozen baseline, context with
//! telemetry, acknowledgement, detector, severity, incident) survives the round trip; an
//! incident's lead writes one `opened` outbox row and one `resolved` row when its incident is
//! over, members none, and the report says what changed (both backends).

#![allow(clippy::unwrap_used)]

use llmscope_model::{
    BaselineMode, ContextPoint, Detector, FrozenBaseline, Metric, Point, Scope, SeriesId, Severity,
    Source, Violation, ViolationStatus,
};
use llmscope_store::testing::each_backend;
use llmscope_store::violations::{Resolved, ViolationOp};
use uuid::Uuid;

fn violation() -> Violation {
    let series = SeriesId::series("eu", "gpu-1", "vllm", "m", Metric::TtftMs);
    let b = llmscope_spc::Baseline::given(5.0, 0.2, 3.0, llmscope_spc::Transform::Log).unwrap();
    let frozen = FrozenBaseline::new(7, Scope::Series, b, (1_000, 50_000), BaselineMode::Auto);
    let points: Vec<Point> = (0..3)
        .map(|i| Point::sample(Uuid::now_v7(), 100_000 + i, 400.0 + i as f64))
        .collect();
    let mut v = Violation::open(series, Scope::Series, 5, 100_002, points.clone(), frozen);
    v.severity = Severity::Error;
    v.incident = Some(v.id.clone());
    v.context = points
        .iter()
        .map(|p| ContextPoint {
            point: *p,
            telemetry: Some(serde_json::json!({"cpu_pct": 12.5})),
        })
        .collect();
    v
}

#[tokio::test]
async fn a_violation_round_trips_and_each_change_writes_one_outbox_row() {
    each_backend(|store, backend| async move {
        let v = violation();
        let r = store
            .apply_violations(&[ViolationOp::Open(v.clone())], 1)
            .await
            .unwrap();
        assert_eq!(r.opened, vec![v.id.clone()]);
        let again = store
            .apply_violations(&[ViolationOp::Open(v.clone())], 2)
            .await
            .unwrap();
        assert!(
            again.opened.is_empty(),
            "{backend:?}: the insert is won once"
        );
        let got = store.get_violation(&v.id).await.unwrap().unwrap();
        assert_eq!(got, v, "{backend:?}: typed round trip");
        assert_eq!(
            store.open_violations(&v.series).await.unwrap().len(),
            1,
            "{backend:?}"
        );
        let more: Vec<Point> = (3..40)
            .map(|i| Point::sample(Uuid::now_v7(), 100_000 + i, 400.0))
            .collect();
        store
            .apply_violations(
                &[ViolationOp::Extend {
                    id: v.id.clone(),
                    last_point_at: 100_039,
                    points: Some(more.clone()),
                }],
                3,
            )
            .await
            .unwrap();
        let resolve = ViolationOp::Resolve {
            id: v.id.clone(),
            series: v.series.clone(),
            rule: v.rule,
            at: 100_060,
            points: None,
        };
        let r = store
            .apply_violations(std::slice::from_ref(&resolve), 4)
            .await
            .unwrap();
        assert_eq!(
            r.resolved,
            vec![Resolved {
                id: v.id.clone(),
                series: v.series.clone(),
                rule: 5,
                lead: true,
                notifies: true,
            }]
        );
        assert!(
            store
                .apply_violations(&[resolve], 5)
                .await
                .unwrap()
                .resolved
                .is_empty(),
            "resolved once"
        );
        let got = store.get_violation(&v.id).await.unwrap().unwrap();
        assert_eq!(got.status, ViolationStatus::Resolved);
        assert_eq!(
            (got.last_point_at, got.resolved_at),
            (100_039, Some(100_060))
        );
        assert_eq!(got.points, more);
        assert!(
            store
                .ack_violation(&v.id, "ops", "known", 9, None)
                .await
                .unwrap()
        );
        let got = store.get_violation(&v.id).await.unwrap().unwrap();
        let ack = got.ack.unwrap();
        assert_eq!(
            (ack.by.as_str(), ack.at, ack.note.as_str()),
            ("ops", 9, "known")
        );
        let outbox = store.outbox_events().await.unwrap();
        assert_eq!(
            outbox,
            vec![
                (v.id.clone(), "opened".into()),
                (v.id.clone(), "resolved".into())
            ],
            "{backend:?}"
        );
    })
    .await;
}

fn finding(detector: Detector, metric: Metric, at: i64, incident: Option<&str>) -> Violation {
    let series = SeriesId::series("eu", "gpu-2", "vllm", "m", metric).with_source(Source::Proxy);
    let b = llmscope_spc::Baseline::given(5.0, 0.2, 3.0, llmscope_spc::Transform::Log).unwrap();
    let frozen = FrozenBaseline::new(1, Scope::Series, b, (0, 10), BaselineMode::Auto);
    let rule = if detector == Detector::Nelson { 1 } else { 0 };
    let p = vec![Point::sample(Uuid::now_v7(), at, 300.0)];
    let mut v = Violation::finding(series, Scope::Series, detector, rule, at, p, frozen);
    v.incident = incident.map(str::to_owned);
    v
}

fn resolve(v: &Violation, at: i64) -> ViolationOp {
    ViolationOp::Resolve {
        id: v.id.clone(),
        series: v.series.clone(),
        rule: v.rule,
        at,
        points: None,
    }
}

#[tokio::test]
async fn an_incident_pages_once_and_resolves_with_its_last_paging_member() {
    each_backend(|store, backend| async move {
        // a marker opens first, then the CUSUM leads an incident and the marker joins it
        let marker = finding(Detector::Nelson, Metric::TtftMs, 1_000, None);
        let mut lead = finding(Detector::Cusum, Metric::TtftMs, 2_000, None);
        lead.incident = Some(lead.id.clone());
        let member = finding(Detector::Cusum, Metric::TpotMs, 2_500, Some(&lead.id));
        let down = finding(Detector::Down, Metric::LatencyMs, 2_500, Some(&lead.id));
        assert_eq!(lead.severity, Severity::Error);
        assert_eq!(down.severity, Severity::Critical);
        store
            .apply_violations(&[ViolationOp::Open(marker.clone())], 1)
            .await
            .unwrap();
        let r = store
            .apply_violations(
                &[
                    ViolationOp::Open(lead.clone()),
                    ViolationOp::Attach {
                        incident: lead.id.clone(),
                        ids: vec![marker.id.clone()],
                    },
                    ViolationOp::Open(member.clone()),
                    ViolationOp::Open(down.clone()),
                ],
                2,
            )
            .await
            .unwrap();
        assert_eq!(
            r.opened.len(),
            3,
            "{backend:?}: detectors with one series and time coexist"
        );
        let members = store.incident_members(&lead.id).await.unwrap();
        assert_eq!(members.len(), 4, "{backend:?}");
        assert_eq!(members[0].id, lead.id, "the lead comes first");
        assert!(
            members
                .iter()
                .all(|m| m.incident.as_deref() == Some(lead.id.as_str()))
        );
        let got = store.get_violation(&down.id).await.unwrap().unwrap();
        assert_eq!(
            (got.detector, got.severity),
            (Detector::Down, Severity::Critical)
        );
        assert_eq!(got.series.source, Source::Proxy);
        assert_eq!(
            store
                .open_incident("eu", "gpu-2", "vllm", "m")
                .await
                .unwrap(),
            Some(lead.id.clone())
        );
        // the lead's detector goes quiet: the incident stays open (paging members are)
        let r = store
            .apply_violations(&[resolve(&lead, 3_000)], 3)
            .await
            .unwrap();
        assert!(r.resolved.is_empty(), "{backend:?}: {r:?}");
        assert_eq!(
            store.get_violation(&lead.id).await.unwrap().unwrap().status,
            ViolationStatus::Open
        );
        // a member resolves: still one paging member open
        let r = store
            .apply_violations(&[resolve(&member, 3_500)], 4)
            .await
            .unwrap();
        assert_eq!(r.resolved.len(), 1);
        assert!(!r.resolved[0].lead);
        // the marker (warning) does not hold the incident; the last paging member does
        let r = store
            .apply_violations(&[resolve(&down, 4_000)], 5)
            .await
            .unwrap();
        let ids: Vec<(&str, bool)> = r.resolved.iter().map(|x| (x.id.as_str(), x.lead)).collect();
        assert!(
            ids.contains(&(lead.id.as_str(), true)),
            "{backend:?}: {ids:?}"
        );
        let got = store.get_violation(&lead.id).await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.resolved_at),
            (ViolationStatus::Resolved, Some(4_000))
        );
        assert_eq!(
            store
                .open_incident("eu", "gpu-2", "vllm", "m")
                .await
                .unwrap(),
            None
        );
        let outbox = store.outbox_events().await.unwrap();
        assert_eq!(
            outbox,
            vec![
                (lead.id.clone(), "opened".into()),
                (lead.id.clone(), "resolved".into())
            ],
            "{backend:?}: one page, one resolution"
        );
    })
    .await;
}

#[tokio::test]
async fn resolving_a_lead_by_hand_closes_its_incident() {
    each_backend(|store, backend| async move {
        let mut lead = finding(Detector::Down, Metric::LatencyMs, 5_000, None);
        lead.incident = Some(lead.id.clone());
        let member = finding(
            Detector::ErrorRate,
            Metric::LatencyMs,
            5_100,
            Some(&lead.id),
        );
        store
            .apply_violations(
                &[
                    ViolationOp::Open(lead.clone()),
                    ViolationOp::Open(member.clone()),
                ],
                1,
            )
            .await
            .unwrap();
        assert!(
            store
                .resolve_violation(&lead, "ops", "fixed", 9_000, None)
                .await
                .unwrap()
        );
        for id in [&lead.id, &member.id] {
            let v = store.get_violation(id).await.unwrap().unwrap();
            assert_eq!(v.status, ViolationStatus::Resolved, "{backend:?}");
        }
        assert!(
            !store
                .resolve_violation(&lead, "ops", "again", 9_500, None)
                .await
                .unwrap()
        );
        let events: Vec<String> = store
            .outbox_events()
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(events, vec!["opened", "resolved"], "{backend:?}");
    })
    .await;
}

//! Violations through the store: the typed violation (points, frozen baseline, context with
//! telemetry, acknowledgement) survives the round trip; an open writes one `opened` outbox
//! row, a resolve one `resolved` row, and the report says what changed (both backends).

#![allow(clippy::unwrap_used)]

use llmscope_model::{
    BaselineMode, ContextPoint, FrozenBaseline, Metric, Point, Scope, SeriesId, Violation,
    ViolationStatus,
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
                rule: 5
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
        assert!(store.ack_violation(&v.id, "ops", "known", 9).await.unwrap());
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

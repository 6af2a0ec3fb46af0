//! The context stored with a violation when it opens: the 10 points before the trigger and
//! the trigger, each with the host's nearest telemetry snapshot (within 5 minutes). One
//! telemetry range read per host and batch.

use std::collections::{BTreeMap, HashMap};

use llmscope_model::ContextPoint;
use llmscope_store::samples::Snapshot;
use llmscope_store::violations::ViolationOp;
use llmscope_store::{Store, StoreError};

use crate::state::PendingContext;

/// How far from a point its telemetry may be.
const MARGIN_US: i64 = 300_000_000;

/// Attaches the contexts to the `Open` operations they belong to.
pub async fn attach(
    store: &Store,
    contexts: Vec<PendingContext>,
    ops: &mut [ViolationOp],
) -> Result<(), StoreError> {
    let mut hosts: BTreeMap<(String, String), (i64, i64)> = BTreeMap::new();
    for c in &contexts {
        let (lo, hi) = c.points.iter().fold((i64::MAX, i64::MIN), |(lo, hi), p| {
            (lo.min(p.ts), hi.max(p.ts))
        });
        let e = hosts
            .entry((c.site.clone(), c.host.clone()))
            .or_insert((lo, hi));
        *e = (e.0.min(lo), e.1.max(hi));
    }
    let mut snaps: HashMap<(String, String), Vec<Snapshot>> = HashMap::new();
    for ((site, host), (lo, hi)) in hosts {
        let t = store
            .telemetry_range(
                &site,
                &host,
                lo.saturating_sub(MARGIN_US),
                hi.saturating_add(MARGIN_US),
                100_000,
            )
            .await?;
        snaps.insert((site, host), t);
    }
    for c in contexts {
        let t = snaps.get(&(c.site.clone(), c.host.clone()));
        let ctx: Vec<ContextPoint> = c
            .points
            .iter()
            .map(|p| ContextPoint {
                point: p.point(),
                telemetry: t.and_then(|t| nearest(t, p.ts)),
            })
            .collect();
        if let Some(ViolationOp::Open(v)) = ops.get_mut(c.op) {
            v.context = ctx;
        }
    }
    Ok(())
}

/// The snapshot nearest to `ts` in a time-sorted list, if within [`MARGIN_US`].
fn nearest(snaps: &[Snapshot], ts: i64) -> Option<serde_json::Value> {
    let i = snaps.partition_point(|s| s.0 < ts);
    let best = [i.checked_sub(1), (i < snaps.len()).then_some(i)]
        .into_iter()
        .flatten()
        .min_by_key(|&j| (snaps[j].0 - ts).abs())?;
    ((snaps[best].0 - ts).abs() <= MARGIN_US).then(|| snaps[best].1.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nearest_snapshot_within_the_margin() {
        let s: Vec<Snapshot> = vec![
            (100, serde_json::json!(1)),
            (200, serde_json::json!(2)),
            (1_000_000_000, serde_json::json!(3)),
        ];
        assert_eq!(nearest(&s, 140), Some(serde_json::json!(1)));
        assert_eq!(nearest(&s, 160), Some(serde_json::json!(2)));
        assert_eq!(nearest(&s, 500_000_000), None);
        assert_eq!(nearest(&[], 5), None);
    }
}

//! Silence: a model on a host with no call of a source in `silent_sources` (probes by
//! default) for `silent_factor` × its median interval (at least `silent_min`) opens a
//! `silent` violation; an agent with no telemetry for
//! `agent_silent_after` opens an `agent_silent` one (filed under the series
//! `series|SITE|HOST|*|*|latency_ms`). Both are opened at the last sign of life (so every
//! replica computes the same id and one row wins) and resolve when data returns. Silence is
//! judged on receipt too: samples or telemetry received within the limit are a sign of life
//! even when they are old (an agent replaying its buffer after an outage). The check reads
//! the database only (the models' liveness from the counters, the agents' from the `agents`
//! table the engine keeps from each commit's telemetry), so it holds across restarts and
//! replicas.

use std::collections::HashMap;

use llmscope_model::{Detector, Metric, Scope, SeriesId, Violation};
use llmscope_store::StoreError;
use llmscope_store::violations::ViolationOp;

use crate::calls::reference;
use crate::engine::Engine;

/// Models silent for longer than this are not looked at again (their violation stays open
/// until data returns).
const MAX_AGE_US: i64 = 7 * 86_400_000_000;

fn us(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Engine {
    /// Opens and resolves `silent` and `agent_silent` violations (one check).
    pub async fn check_silence(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now_us();
        let mut ops = Vec::new();
        // agents first: a model's silence joins its agent's incident
        let after = us(self.cfg.agent_silent_after);
        let open: HashMap<(String, String), Violation> = self
            .store
            .open_of_detector(Detector::AgentSilent)
            .await?
            .into_iter()
            .filter(|v| self.owns(&v.series.site, &v.series.host, "*", "*"))
            .map(|v| ((v.series.site.clone(), v.series.host.clone()), v))
            .collect();
        let window = (after * 5).max(600_000_000);
        for (site, host, last, received) in self.store.agents_seen(now - window).await? {
            if !self.owns(&site, &host, "*", "*") {
                continue; // cluster mode: another replica judges this agent
            }
            match open.get(&(site.clone(), host.clone())) {
                Some(v) if last > v.opened_at => ops.push(self.resolve(v, last)),
                Some(_) => {}
                // silent: nothing received for the limit (old telemetry being replayed is a
                // sign of life)
                None if received < now - after && last < now - after => {
                    let key = SeriesId::series(&site, &host, "*", "*", Metric::LatencyMs);
                    let limit_ms = after as f64 / 1000.0;
                    let mut v = Violation::finding(
                        key,
                        Scope::Series,
                        Detector::AgentSilent,
                        0,
                        last,
                        Vec::new(),
                        reference(0.0, limit_ms, (last, last)),
                    );
                    v.severity = self.cfg.severity.severity(Detector::AgentSilent, 0);
                    self.incidents.opened(&mut v);
                    ops.push(ViolationOp::Open(v));
                }
                None => {}
            }
        }
        let open_models: HashMap<SeriesId, Violation> = self
            .store
            .open_of_detector(Detector::Silent)
            .await?
            .into_iter()
            .filter(|v| {
                let s = &v.series;
                self.owns(&s.site, &s.host, &s.provider, &s.model)
            })
            .map(|v| (v.series.clone(), v))
            .collect();
        for (key, v) in &open_models {
            let last = self.store.last_seen(key).await?;
            if last > v.opened_at {
                ops.push(self.resolve(v, last));
            }
        }
        let quiet = self
            .store
            .quiet_series(
                now,
                i64::from(self.cfg.silent_factor),
                us(self.cfg.silent_min),
                MAX_AGE_US,
            )
            .await?;
        for (key, last, interval) in quiet {
            if open_models.contains_key(&key)
                || !self.cfg.silent_sources.contains(&key.source)
                || !self.owns(&key.site, &key.host, &key.provider, &key.model)
            {
                continue;
            }
            let limit = (interval * i64::from(self.cfg.silent_factor)).max(us(self.cfg.silent_min));
            let mut v = Violation::finding(
                key,
                Scope::Series,
                Detector::Silent,
                0,
                last,
                Vec::new(),
                reference(
                    interval as f64 / 1000.0,
                    limit as f64 / 1000.0,
                    (last, last),
                ),
            );
            v.severity = self.cfg.severity.severity(Detector::Silent, 0);
            self.incidents.opened(&mut v);
            ops.push(ViolationOp::Open(v));
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.finish_incidents(&mut ops).await?;
        self.commit(ops).await
    }
}

impl Engine {
    /// Resolves a silence that ended; a page leaves its incident.
    pub(crate) fn resolve(&mut self, v: &Violation, at: i64) -> ViolationOp {
        if v.severity.is_page() {
            self.incidents.page_resolved(&v.series, &v.id);
        }
        ViolationOp::Resolve {
            id: v.id.clone(),
            series: v.series.clone(),
            rule: 0,
            at,
            points: None,
        }
    }
}

//! A violation: one episode of one detector (or Nelson rule) on one series (ARCHITECTURE
//! §3), typed, with its severity and the incident it belongs to. The
//! database keeps it in its own encoding (see `llmscope-store`); everything else — the REST
//! API, the webhook, Slack, PagerDuty, email — reads this type, and its one wire shape is
//! [`Violation`]'s `Serialize` (times in Unix milliseconds).

use llmscope_spc::{NelsonConfig, Rule};
use serde::ser::SerializeMap;
use uuid::Uuid;

use crate::alert::Severity;
use crate::baseline::{FrozenBaseline, Scope};
use crate::detector::Detector;
use crate::series::SeriesId;
use crate::time::ms;

/// Whether an episode is still going on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViolationStatus {
    /// The rule fired recently.
    Open,
    /// Quiet for `resolve_after` points, or resolved by hand.
    Resolved,
}

crate::text_enum!(ViolationStatus, "violation status", { Open => "open", Resolved => "resolved" });

/// One point of a violation: a judged sample, or a bucket of an X̄ chart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The sample's id (`None` for a bucket).
    pub id: Option<Uuid>,
    /// Call start (or bucket start), Unix µs.
    pub ts: i64,
    /// The metric's value (or the bucket mean).
    pub value: f64,
    /// Bucket size (X̄ charts).
    pub n: Option<u32>,
    /// Bucket standard deviation (X̄ charts).
    pub sd: Option<f64>,
    /// The bucket's z-score (X̄ charts).
    pub z: Option<f64>,
}

impl Point {
    /// A judged sample.
    pub fn sample(id: Uuid, ts: i64, value: f64) -> Point {
        Point {
            id: Some(id),
            ts,
            value,
            n: None,
            sd: None,
            z: None,
        }
    }
}

impl serde::Serialize for Point {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(id) = self.id {
            m.serialize_entry("id", &id)?;
        }
        m.serialize_entry("ts", &ms(self.ts))?;
        m.serialize_entry("value", &self.value)?;
        if let Some(n) = self.n {
            m.serialize_entry("n", &n)?;
        }
        if let Some(sd) = self.sd {
            m.serialize_entry("sd", &sd)?;
        }
        if let Some(z) = self.z {
            m.serialize_entry("z", &z)?;
        }
        m.end()
    }
}

/// A point before the trigger, with the host's nearest telemetry snapshot.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContextPoint {
    /// The point.
    #[serde(flatten)]
    pub point: Point,
    /// The host's snapshot nearest in time (within 5 minutes), as the API shows telemetry.
    pub telemetry: Option<serde_json::Value>,
}

/// Who acknowledged a violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// Who.
    pub by: String,
    /// When, Unix µs.
    pub at: i64,
    /// A note.
    pub note: String,
}

/// One episode of one detector (or Nelson rule) on one series.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    /// Deterministic id ([`violation_id`] of the series, detector or rule and first point).
    pub id: String,
    /// The series (or pooled chart) it happened on.
    pub series: SeriesId,
    /// The scope of the baseline that judged it.
    pub scope: Scope,
    /// What found it.
    pub detector: Detector,
    /// Nelson rule number, 1..=8 (0 for the other detectors).
    pub rule: u8,
    /// How loud it is (fixed when it opens, from `[alerts] severity`).
    pub severity: Severity,
    /// The incident it belongs to: the id of the incident's lead violation (its own id when
    /// it leads one).
    pub incident: Option<String>,
    /// First flagged point, Unix µs.
    pub opened_at: i64,
    /// Last flagged point, Unix µs.
    pub last_point_at: i64,
    /// Resolution time, Unix µs.
    pub resolved_at: Option<i64>,
    /// Open or resolved.
    pub status: ViolationStatus,
    /// The points of its qualifying windows, oldest first.
    pub points: Vec<Point>,
    /// The baseline in force when it opened (a frozen copy).
    pub baseline: FrozenBaseline,
    /// The points before the trigger (and the trigger), with telemetry.
    pub context: Vec<ContextPoint>,
    /// Acknowledgement.
    pub ack: Option<Ack>,
}

/// The violation id of a Nelson rule's episode: the same on every replica for the same
/// episode (UUIDv5 of the series, the rule and the first flagged point).
pub fn violation_id(series: &SeriesId, rule: u8, opened_at: i64) -> String {
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{series}|{rule}|{opened_at}").as_bytes(),
    )
    .to_string()
}

/// The violation id of any detector's episode (Nelson's: [`violation_id`]).
pub fn finding_id(series: &SeriesId, detector: Detector, rule: u8, opened_at: i64) -> String {
    if detector == Detector::Nelson {
        return violation_id(series, rule, opened_at);
    }
    Uuid::new_v5(
        &Uuid::NAMESPACE_OID,
        format!("{series}|{detector}|{opened_at}").as_bytes(),
    )
    .to_string()
}

/// A finding's short title: the rule's for Nelson, else the detector's.
pub fn finding_title(detector: Detector, rule: u8) -> &'static str {
    match detector {
        Detector::Nelson => rule_title(rule),
        d => d.title(),
    }
}

/// A rule's short title for lists and notifications.
pub fn rule_title(rule: u8) -> &'static str {
    match rule {
        1 => "Beyond 3σ",
        2 => "Shift (same side)",
        3 => "Trend",
        4 => "Oscillation",
        5 => "2 of 3 beyond 2σ",
        6 => "4 of 5 beyond 1σ",
        7 => "Hugging the centre",
        8 => "Avoiding the centre",
        _ => "Unknown rule",
    }
}

/// A rule in plain words, with the default parameters.
pub fn rule_text(rule: u8) -> String {
    Rule::from_number(rule)
        .map(|r| r.explain(&NelsonConfig::default()))
        .unwrap_or_default()
}

impl Violation {
    /// A new open violation opened at `ts` by Nelson rule `rule` on `series` (default
    /// severity, no incident).
    pub fn open(
        series: SeriesId,
        scope: Scope,
        rule: u8,
        ts: i64,
        points: Vec<Point>,
        baseline: FrozenBaseline,
    ) -> Violation {
        Violation::finding(series, scope, Detector::Nelson, rule, ts, points, baseline)
    }

    /// A new open violation of `detector` (`rule` for Nelson's rules, else 0) at `ts`, with
    /// the detector's default severity and no incident.
    pub fn finding(
        series: SeriesId,
        scope: Scope,
        detector: Detector,
        rule: u8,
        ts: i64,
        points: Vec<Point>,
        baseline: FrozenBaseline,
    ) -> Violation {
        Violation {
            id: finding_id(&series, detector, rule, ts),
            series,
            scope,
            detector,
            rule,
            severity: Severity::default_for(detector, rule),
            incident: None,
            opened_at: ts,
            last_point_at: ts,
            resolved_at: None,
            status: ViolationStatus::Open,
            points,
            baseline,
            context: Vec::new(),
            ack: None,
        }
    }

    /// `open`, `acknowledged` (open and acknowledged) or `resolved`.
    pub fn display_status(&self) -> &'static str {
        match (self.status, &self.ack) {
            (ViolationStatus::Open, Some(_)) => "acknowledged",
            (s, _) => s.as_str(),
        }
    }

    /// The same violation as a page of `severity` leading its own incident (what the engine
    /// makes of a paging finding that opens while no incident is open for its model-host).
    pub fn leading(mut self, severity: Severity) -> Violation {
        self.severity = severity;
        self.incident = Some(self.id.clone());
        self
    }

    /// Whether it leads its incident (its notifications are the incident's).
    pub fn leads(&self) -> bool {
        self.incident.as_deref() == Some(self.id.as_str())
    }

    /// Its title: the Nelson rule's or the detector's.
    pub fn title(&self) -> &'static str {
        finding_title(self.detector, self.rule)
    }

    /// The triggering point's value (the last qualifying point).
    pub fn last_value(&self) -> Option<f64> {
        self.points.last().map(|p| p.value)
    }

    /// The wire shape without points, baseline and context (for lists).
    pub fn summary(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            for k in ["points", "baseline", "context"] {
                o.remove(k);
            }
        }
        v
    }
}

impl serde::Serialize for Violation {
    /// The one wire shape of a violation (times in Unix milliseconds).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        let k = &self.series;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("key", k)?;
        m.serialize_entry("scope", &self.scope)?;
        m.serialize_entry("site", k.site_label())?;
        m.serialize_entry("host", k.host_label())?;
        m.serialize_entry("provider", &k.provider)?;
        m.serialize_entry("model", &k.model)?;
        m.serialize_entry("metric", &k.metric)?;
        m.serialize_entry("source", &k.source)?;
        m.serialize_entry("detector", &self.detector)?;
        m.serialize_entry("rule", &self.rule)?;
        m.serialize_entry("rule_name", self.title())?;
        match self.detector {
            Detector::Nelson => m.serialize_entry("rule_text", &rule_text(self.rule))?,
            d => m.serialize_entry("rule_text", d.text())?,
        }
        m.serialize_entry("severity", &self.severity)?;
        m.serialize_entry("page", &self.severity.is_page())?;
        m.serialize_entry("incident_id", &self.incident)?;
        m.serialize_entry("status", self.display_status())?;
        m.serialize_entry("opened_at", &ms(self.opened_at))?;
        m.serialize_entry("last_point_at", &ms(self.last_point_at))?;
        m.serialize_entry("resolved_at", &self.resolved_at.map(ms))?;
        m.serialize_entry("acked_by", &self.ack.as_ref().map(|a| &a.by))?;
        m.serialize_entry("acked_at", &self.ack.as_ref().map(|a| ms(a.at)))?;
        m.serialize_entry("ack_note", &self.ack.as_ref().map(|a| &a.note))?;
        m.serialize_entry("points", &self.points)?;
        m.serialize_entry("baseline", &self.baseline)?;
        m.serialize_entry("context", &serde_json::json!({ "before": self.context }))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::BaselineMode;
    use crate::metric::Metric;
    use llmscope_spc::Baseline;

    fn v() -> Violation {
        let b = Baseline::given(100.0, 10.0, 3.0, llmscope_spc::Transform::None).unwrap();
        let s = SeriesId::series("eu", "h", "p", "m", Metric::LatencyMs);
        let p = Point::sample(Uuid::nil(), 2_000_000, 150.0);
        Violation::open(
            s,
            Scope::Series,
            1,
            2_000_000,
            vec![p],
            FrozenBaseline::new(3, Scope::Series, b, (0, 1_000_000), BaselineMode::Auto),
        )
    }

    #[test]
    fn the_wire_shape_speaks_milliseconds() {
        let mut x = v();
        let j = serde_json::to_value(&x).unwrap();
        assert_eq!(j["key"], "series|eu|h|p|m|latency_ms");
        assert_eq!(j["opened_at"], 2000);
        assert_eq!(j["points"][0]["ts"], 2000);
        assert_eq!(j["baseline"]["ucl"], 130.0);
        assert_eq!(j["status"], "open");
        assert_eq!(j["rule_name"], "Beyond 3σ");
        assert_eq!(j["detector"], "nelson");
        assert_eq!(j["severity"], "warning");
        assert_eq!(j["page"], false);
        assert_eq!(j["source"], "probe");
        x.ack = Some(Ack {
            by: "ops".into(),
            at: 3_000_000,
            note: String::new(),
        });
        let s = x.summary();
        assert_eq!(s["status"], "acknowledged");
        assert_eq!(s["acked_at"], 3000);
        assert!(s.get("points").is_none());
    }

    #[test]
    fn ids_depend_on_series_rule_and_start() {
        let s = SeriesId::series("eu", "h", "p", "m", Metric::LatencyMs);
        assert_eq!(violation_id(&s, 1, 5), violation_id(&s, 1, 5));
        assert_ne!(violation_id(&s, 1, 5), violation_id(&s, 2, 5));
        assert_ne!(violation_id(&s, 1, 5), violation_id(&s, 1, 6));
        assert_eq!(
            finding_id(&s, Detector::Nelson, 1, 5),
            violation_id(&s, 1, 5)
        );
        assert_ne!(
            finding_id(&s, Detector::Cusum, 0, 5),
            finding_id(&s, Detector::Down, 0, 5)
        );
    }
}

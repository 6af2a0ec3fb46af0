//! The reference a series is judged against: [`FrozenBaseline`], built once from an
//! [`llmscope_spc::Baseline`] with its limits computed at construction, and the stored
//! [`BaselineRecord`] that names its series and says who set it and why.

use llmscope_spc::{Baseline, SigmaMethod, SpcError, Transform};

use crate::series::SeriesId;
use crate::time::ms;

/// Which baseline judges a series (and the scope of a pooled chart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Scope {
    /// The series' own baseline.
    #[default]
    Series,
    /// Pooled over the site's hosts (same provider, model, metric).
    Site,
    /// Pooled over every site.
    Global,
}

crate::text_enum!(Scope, "scope", { Series => "series", Site => "site", Global => "global" });

/// How a baseline came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BaselineMode {
    /// Phase I: the first points of a series, then frozen.
    Auto,
    /// Re-estimated on a schedule from recent in-control points.
    Rolling,
    /// Set by a person from a chosen time range.
    Manual,
}

crate::text_enum!(BaselineMode, "baseline mode", { Auto => "auto", Rolling => "rolling", Manual => "manual" });

/// A baseline as the rules use it: centre and sigma (on the transformed scale), the window
/// it came from, and its limits in original units, computed once.
#[derive(Debug, Clone, PartialEq)]
pub struct FrozenBaseline {
    /// Row id (0 before it is stored).
    pub id: i64,
    /// The scope it pools over.
    pub scope: Scope,
    /// Centre, sigma, k, method, transform, points.
    pub baseline: Baseline,
    /// Window start, Unix µs.
    pub window_from: i64,
    /// Window end, Unix µs.
    pub window_to: i64,
    /// How it was set.
    pub mode: BaselineMode,
    /// Bucket width of an X̄-S chart, µs (pooled bucket charts only).
    pub bucket_us: Option<i64>,
    center_original: f64,
    ucl: f64,
    lcl: f64,
}

impl FrozenBaseline {
    /// A baseline of `scope` from `baseline`, estimated over `[window_from, window_to]`.
    pub fn new(
        id: i64,
        scope: Scope,
        baseline: Baseline,
        window: (i64, i64),
        mode: BaselineMode,
    ) -> FrozenBaseline {
        FrozenBaseline {
            id,
            scope,
            center_original: baseline.center_original(),
            ucl: baseline.ucl(),
            lcl: baseline.lcl(),
            baseline,
            window_from: window.0,
            window_to: window.1,
            mode,
            bucket_us: None,
        }
    }

    /// The limits of an X̄-S chart over buckets of `bucket_us` (no transform, 3σ).
    pub fn xbar_s(scope: Scope, center: f64, sigma: f64, bucket_us: i64) -> FrozenBaseline {
        let b = Baseline {
            center,
            sigma,
            k: llmscope_spc::baseline::DEFAULT_K,
            method: SigmaMethod::XbarS,
            transform: Transform::None,
            points: 0,
            phi: 0.0,
        };
        FrozenBaseline {
            bucket_us: Some(bucket_us),
            ..FrozenBaseline::new(0, scope, b, (0, 0), BaselineMode::Auto)
        }
    }

    /// Centre line in original units.
    pub fn center_original(&self) -> f64 {
        self.center_original
    }

    /// Upper control limit in original units.
    pub fn ucl(&self) -> f64 {
        self.ucl
    }

    /// Lower control limit in original units.
    pub fn lcl(&self) -> f64 {
        self.lcl
    }

    /// z-score of a raw value (see [`Baseline::z`]).
    pub fn z(&self, x: f64) -> Result<f64, SpcError> {
        self.baseline.z(0, x)
    }

    /// Whether a point at `ts` belongs to the window it was estimated from (and so is never
    /// judged by it).
    pub fn covers(&self, ts: i64) -> bool {
        ts <= self.window_to
    }
}

impl serde::Serialize for FrozenBaseline {
    /// The wire shape (times in Unix milliseconds).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let b = &self.baseline;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("scope", &self.scope)?;
        m.serialize_entry("center", &b.center)?;
        m.serialize_entry("center_original", &self.center_original)?;
        m.serialize_entry("sigma", &b.sigma)?;
        m.serialize_entry("k", &b.k)?;
        m.serialize_entry("ucl", &self.ucl)?;
        m.serialize_entry("lcl", &self.lcl)?;
        m.serialize_entry("method", b.method.as_str())?;
        m.serialize_entry("transform", b.transform.as_str())?;
        m.serialize_entry("points", &b.points)?;
        m.serialize_entry("phi", &b.phi)?;
        m.serialize_entry("mode", &self.mode)?;
        m.serialize_entry("window_from", &ms(self.window_from))?;
        m.serialize_entry("window_to", &ms(self.window_to))?;
        if let Some(w) = self.bucket_us {
            m.serialize_entry("bucket_ms", &ms(w))?;
        }
        m.end()
    }
}

/// A stored baseline: which series (or pooled chart) it belongs to, the baseline itself,
/// and its history fields.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRecord {
    /// The series or pooled chart it judges (its `scope` is the baseline's scope).
    pub key: SeriesId,
    /// The baseline.
    pub frozen: FrozenBaseline,
    /// Why it was set.
    pub reason: String,
    /// Who set it.
    pub created_by: String,
    /// In force from, Unix µs.
    pub valid_from: i64,
    /// Replaced at, Unix µs (`None`: current).
    pub valid_to: Option<i64>,
}

impl serde::Serialize for BaselineRecord {
    /// The baseline's wire shape plus its series, history and key (times in ms).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap};
        let serde_json::Value::Object(head) =
            serde_json::to_value(&self.frozen).map_err(S::Error::custom)?
        else {
            return Err(S::Error::custom("a baseline serializes to an object"));
        };
        let mut m = s.serialize_map(None)?;
        for (k, v) in &head {
            m.serialize_entry(k, v)?;
        }
        m.serialize_entry("key", &self.key)?;
        m.serialize_entry("site", &self.key.site)?;
        m.serialize_entry("host", &self.key.host)?;
        m.serialize_entry("provider", &self.key.provider)?;
        m.serialize_entry("model", &self.key.model)?;
        m.serialize_entry("metric", &self.key.metric)?;
        m.serialize_entry("valid_from", &ms(self.valid_from))?;
        m.serialize_entry("valid_to", &self.valid_to.map(ms))?;
        m.serialize_entry("reason", &self.reason)?;
        m.serialize_entry("created_by", &self.created_by)?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llmscope_spc::BaselineOptions;

    #[test]
    fn limits_are_those_of_the_spc_baseline() {
        let opts = BaselineOptions {
            transform: Transform::Log,
            ..BaselineOptions::default()
        };
        let b = Baseline::estimate(&[100.0, 110.0, 90.0, 105.0, 95.0], &opts).unwrap();
        let f = FrozenBaseline::new(7, Scope::Series, b, (1, 2), BaselineMode::Auto);
        assert_eq!(f.ucl(), b.ucl());
        assert_eq!(f.lcl(), b.lcl());
        assert_eq!(f.center_original(), b.center_original());
        let j = serde_json::to_value(&f).unwrap();
        assert_eq!(j["transform"], "log");
        assert_eq!(j["ucl"], b.ucl());
        assert_eq!(j["window_to"], 0, "µs become ms");
        assert!(f.covers(2) && !f.covers(3));
    }
}

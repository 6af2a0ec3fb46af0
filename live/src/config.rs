//! `[spc]` in the collector config: the live engine's settings (rule parameters live in the
//! database: `llmscope-collector rules`).

use std::time::Duration;

use llmscope_spc::{SigmaMethod, Transform};
use serde::{Deserialize, Serialize};

/// How often the engine picks up rule configuration and baseline changes by default.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// Live SPC settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpcConfig {
    /// Evaluate rules on ingest.
    pub enabled: bool,
    /// Phase I size: successful points that estimate a baseline.
    pub baseline_points: usize,
    /// `mrbar` or `median`.
    pub sigma_method: SigmaMethod,
    /// `none` or `log`.
    pub transform: Transform,
    /// Quiet points after which an episode resolves (overridable per model and site).
    pub resolve_after: u32,
    /// Points replayed when a series is first seen by a process.
    pub warmup_points: usize,
    /// How often rule configuration and baselines set elsewhere (API, CLI, other replicas)
    /// are picked up (0s: before every batch).
    #[serde(with = "humantime_serde")]
    pub refresh_interval: Duration,
    /// Bucket width of the site and global X̄ charts.
    #[serde(with = "humantime_serde")]
    pub bucket: Duration,
    /// Wait after a bucket ends before it is evaluated (late samples).
    #[serde(with = "humantime_serde")]
    pub bucket_grace: Duration,
    /// Buckets that estimate a site or global chart's baseline.
    pub bucket_baseline: usize,
    /// How often the bucket job runs.
    #[serde(with = "humantime_serde")]
    pub bucket_interval: Duration,
    /// `frozen` (default: Phase I, then fixed) or `rolling` (re-estimated on a schedule from
    /// recent points of series without open violations).
    pub baseline_mode: BaselinePolicy,
    /// Rolling mode: points the re-estimate uses.
    pub rolling_points: usize,
    /// Rolling mode: how often.
    #[serde(with = "humantime_serde")]
    pub rolling_interval: Duration,
}

/// How baselines evolve after Phase I.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselinePolicy {
    /// Fixed after Phase I until re-baselined.
    Frozen,
    /// Re-estimated on a schedule.
    Rolling,
}

impl Default for SpcConfig {
    fn default() -> Self {
        SpcConfig {
            enabled: true,
            baseline_points: 50,
            sigma_method: SigmaMethod::Mrbar,
            transform: Transform::None,
            resolve_after: 20,
            warmup_points: 64,
            refresh_interval: DEFAULT_REFRESH_INTERVAL,
            bucket: Duration::from_secs(60),
            bucket_grace: Duration::from_secs(15),
            bucket_baseline: 20,
            bucket_interval: Duration::from_secs(15),
            baseline_mode: BaselinePolicy::Frozen,
            rolling_points: 200,
            rolling_interval: Duration::from_secs(3600),
        }
    }
}

/// A `[spc]` value that is out of range; the message quotes the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SpcConfigError(pub String);

impl SpcConfig {
    /// Checks ranges; messages quote the key.
    pub fn validate(&self) -> Result<(), SpcConfigError> {
        let bad = |m: &str| Err(SpcConfigError(m.to_owned()));
        if self.baseline_points < 2 {
            return bad("`spc.baseline_points` must be at least 2");
        }
        if !matches!(self.sigma_method, SigmaMethod::Mrbar | SigmaMethod::Median) {
            return bad("`spc.sigma_method` must be `mrbar` or `median`");
        }
        if self.resolve_after == 0 {
            return bad("`spc.resolve_after` must be at least 1");
        }
        if self.bucket_baseline < 2 {
            return bad("`spc.bucket_baseline` must be at least 2");
        }
        if self.bucket < Duration::from_secs(1) {
            return bad("`spc.bucket` must be at least 1s");
        }
        if self.bucket_interval.is_zero() || self.rolling_interval.is_zero() {
            return bad("`spc.bucket_interval` and `spc.rolling_interval` must be more than 0s");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_name_the_key() {
        let c = SpcConfig {
            baseline_points: 1,
            ..SpcConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .0
                .contains("`spc.baseline_points`")
        );
        let c = SpcConfig {
            sigma_method: SigmaMethod::Given,
            ..SpcConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("`spc.sigma_method`"));
        assert!(SpcConfig::default().validate().is_ok());
    }
}

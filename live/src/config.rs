//! `[spc]` in the collector config: the live engine's settings (rule parameters live in the
//! database: `llmscope-collector rules`).

use std::time::Duration;

use llmscope_model::Source;
use llmscope_spc::detect::defaults;
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
    /// `robust` (default: outliers set aside, process sigma, lag-1 autocorrelation),
    /// `mrbar` or `median`.
    pub sigma_method: SigmaMethod,
    /// `log` (default: latency, TTFT, TPOT and tokens/s are right-skewed; limits are drawn
    /// back-transformed) or `none`.
    pub transform: Transform,
    /// Designed in-control run length of the paging CUSUM, in points per model and host
    /// (and source): one false page per this many probes, shared among the series it watches.
    pub arl0: f64,
    /// The CUSUM's reference value in sigmas (the shift it is tuned to is 2k).
    pub cusum_k: f64,
    /// Consecutive failed calls that page `down`.
    pub down_after: u32,
    /// The in-control failure rate the error-rate chart assumes.
    pub error_rate_p0: f64,
    /// The failure rate it is designed to detect, as a multiple of `error_rate_p0`.
    pub error_rate_factor: f64,
    /// Designed in-control run length of the error-rate chart, in calls.
    pub error_rate_arl0: f64,
    /// A model on a host is `silent` after this many times its median interval without a
    /// call …
    pub silent_factor: u32,
    /// … and at least this long.
    #[serde(with = "humantime_serde")]
    pub silent_min: Duration,
    /// The sources whose silence pages (default: probes only; real traffic has quiet hours,
    /// and an agent that stops is `agent_silent` whatever it carried).
    pub silent_sources: Vec<Source>,
    /// An agent is `agent_silent` after this long without telemetry.
    #[serde(with = "humantime_serde")]
    pub agent_silent_after: Duration,
    /// How often silence is checked.
    #[serde(with = "humantime_serde")]
    pub silence_interval: Duration,
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
            baseline_points: defaults::PHASE1,
            sigma_method: SigmaMethod::Robust,
            transform: Transform::Log,
            arl0: defaults::ARL0_MODEL_HOST,
            cusum_k: defaults::K,
            down_after: defaults::DOWN_AFTER,
            error_rate_p0: defaults::ERROR_RATE_P0,
            error_rate_factor: defaults::ERROR_RATE_FACTOR,
            error_rate_arl0: defaults::ERROR_RATE_ARL0,
            silent_factor: 5,
            silent_min: Duration::from_secs(120),
            silent_sources: vec![Source::Probe],
            agent_silent_after: Duration::from_secs(120),
            silence_interval: Duration::from_secs(10),
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
        if !matches!(
            self.sigma_method,
            SigmaMethod::Mrbar | SigmaMethod::Median | SigmaMethod::Robust
        ) {
            return bad("`spc.sigma_method` must be `robust`, `mrbar` or `median`");
        }
        if self.down_after == 0 {
            return bad("`spc.down_after` must be at least 1");
        }
        if self.silent_factor == 0 {
            return bad("`spc.silent_factor` must be at least 1");
        }
        if self.silence_interval.is_zero() || self.agent_silent_after.is_zero() {
            return bad("`spc.silence_interval` and `spc.agent_silent_after` must be more than 0s");
        }
        if !(self.error_rate_factor > 1.0 && self.error_rate_p0 * self.error_rate_factor < 1.0) {
            return bad(
                "`spc.error_rate_factor` must be more than 1 and `spc.error_rate_p0` × it less than 1",
            );
        }
        if let Err(e) = llmscope_spc::detect::design_error_rate(
            self.error_rate_p0,
            self.error_rate_p0 * self.error_rate_factor,
            self.error_rate_arl0,
        ) {
            return Err(SpcConfigError(format!(
                "`spc.error_rate_p0` / `spc.error_rate_arl0`: {e}"
            )));
        }
        self.check_design()?;
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

    /// The paging CUSUM can be designed for `arl0` from a Phase I of `baseline_points`
    /// (independent points; autocorrelated series get their own design at run time).
    fn check_design(&self) -> Result<(), SpcConfigError> {
        if !(self.cusum_k > 0.0 && self.cusum_k <= 3.0) {
            return Err(SpcConfigError(format!(
                "`spc.cusum_k` must be in (0, 3], got {}",
                self.cusum_k
            )));
        }
        if !(100.0..=1e9).contains(&self.arl0) {
            return Err(SpcConfigError(format!(
                "`spc.arl0` must be from 100 to 1e9 points, got {}",
                self.arl0
            )));
        }
        let worst = self.arl0 * 2.0; // two paging series per model and host
        llmscope_spc::detect::design_cusum(self.cusum_k, worst, self.baseline_points)
            .map(|_| ())
            .map_err(|e| {
                SpcConfigError(format!(
                    "`spc.arl0` = {} cannot be delivered with `spc.baseline_points` = {} (each of a model-host's two paging series needs {worst} points per false alarm): {e}",
                    self.arl0, self.baseline_points
                ))
            })
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
        let c = SpcConfig {
            baseline_points: 30,
            arl0: 1e7,
            ..SpcConfig::default()
        };
        let e = c.validate().unwrap_err().0;
        assert!(
            e.contains("`spc.arl0`") && e.contains("`spc.baseline_points` = 30"),
            "{e}"
        );
        let c = SpcConfig {
            cusum_k: 0.0,
            ..SpcConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("`spc.cusum_k`"));
        let c = SpcConfig {
            error_rate_factor: 200.0,
            ..SpcConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .0
                .contains("`spc.error_rate_factor`")
        );
    }
}

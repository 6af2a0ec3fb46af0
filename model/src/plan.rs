//! What planners set: service level objectives ([`Slo`]), prices ([`Price`]) and monthly
//! budgets ([`Budget`]). Each comes from the configuration file (`origin = "config"`, read
//! only through the API) or the API (`origin = "api"`); [`Slo::validate`] and friends say
//! what is wrong and in which field.

use serde::{Deserialize, Serialize};

use crate::metric::Metric;
use crate::sample::Source;

/// Where a definition came from.
pub const ORIGIN_CONFIG: &str = "config";
/// Made through the API (or the dashboard).
pub const ORIGIN_API: &str = "api";

/// The longest SLO window (days).
pub const MAX_WINDOW_DAYS: i64 = 90;

/// A service level objective: the fraction `objective` of calls must be good over `window`.
/// A call is good when its `metric` is at most `threshold` (a time metric in ms), or, for
/// `metric = "errors"`, when it succeeded. "TTFT p95 ≤ 800 ms" is `metric = "ttft_ms"`,
/// `threshold = 800`, `objective = 0.95`; "error rate ≤ 1 %" is `metric = "errors"`,
/// `objective = 0.99`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// Stable id (`slo-` + a hash of the name when made from config).
    #[serde(default)]
    pub id: String,
    /// Unique name, shown in alerts.
    pub name: String,
    /// Site it covers (`""` = every site).
    #[serde(default)]
    pub site: String,
    /// Model it covers (`""` = every model).
    #[serde(default)]
    pub model: String,
    /// Source of the calls it counts (`""` = every source).
    #[serde(default)]
    pub source: String,
    /// `latency_ms`, `ttft_ms`, `tpot_ms` or `errors`.
    pub metric: String,
    /// Limit of a good call in ms (time metrics only).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Fraction of good calls, in (0, 1) (e.g. 0.95, 0.999).
    pub objective: f64,
    /// Window in days (1..=90, default 30).
    #[serde(default = "default_window")]
    pub window_days: i64,
    /// `config` or `api`.
    #[serde(default)]
    pub origin: String,
}

fn default_window() -> i64 {
    30
}

/// A field at fault and what is wrong with it.
pub type FieldError = (&'static str, String);

fn name_ok(field: &'static str, v: &str, max: usize) -> Result<(), FieldError> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err((
            field,
            format!("must be 1 to {max} printable characters, got `{v}`"),
        ));
    }
    crate::series::SeriesId::check_part(v).map_err(|e| (field, format!("`{v}` {e}")))
}

fn filter_ok(field: &'static str, v: &str) -> Result<(), FieldError> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 200 || v == "*" {
        return Err((
            field,
            format!("`{v}` is not a name (at most 200 characters; leave it empty for all)"),
        ));
    }
    crate::series::SeriesId::check_part(v).map_err(|e| (field, format!("`{v}` {e}")))
}

impl Slo {
    /// The time metric it judges (`None` for `errors`).
    pub fn time_metric(&self) -> Option<Metric> {
        self.metric.parse().ok()
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        name_ok("name", &self.name, 100)?;
        filter_ok("site", &self.site)?;
        filter_ok("model", &self.model)?;
        if !self.source.is_empty() && self.source.parse::<Source>().is_err() {
            return Err((
                "source",
                format!("`{}` is not one of {}", self.source, Source::names()),
            ));
        }
        match self.metric.as_str() {
            "errors" => {
                if self.threshold.is_some() {
                    return Err((
                        "threshold",
                        "an `errors` SLO has no threshold (a good call is a successful one)".into(),
                    ));
                }
            }
            "latency_ms" | "ttft_ms" | "tpot_ms" => match self.threshold {
                Some(t) if t.is_finite() && t > 0.0 => {}
                Some(t) => return Err(("threshold", format!("must be a time in ms > 0, got {t}"))),
                None => {
                    return Err((
                        "threshold",
                        format!("a `{}` SLO needs `threshold` (ms)", self.metric),
                    ));
                }
            },
            m => {
                return Err((
                    "metric",
                    format!("`{m}` is not one of latency_ms, ttft_ms, tpot_ms, errors"),
                ));
            }
        }
        if !(self.objective > 0.0 && self.objective < 1.0) {
            return Err((
                "objective",
                format!(
                    "must be a fraction in (0, 1) such as 0.95 or 0.999, got {}",
                    self.objective
                ),
            ));
        }
        if !(1..=MAX_WINDOW_DAYS).contains(&self.window_days) {
            return Err((
                "window_days",
                format!(
                    "must be 1 to {MAX_WINDOW_DAYS} days, got {}",
                    self.window_days
                ),
            ));
        }
        Ok(())
    }

    /// The objective in words ("95 % of ttft_ms ≤ 800 ms over 30 days").
    pub fn describe(&self) -> String {
        let pct = self.objective * 100.0;
        match self.threshold {
            Some(t) => format!(
                "{pct} % of calls with {} ≤ {t} ms over {} days",
                self.metric, self.window_days
            ),
            None => format!("{pct} % of calls succeed over {} days", self.window_days),
        }
    }
}

/// The price of a model: per million input and output tokens (a provider's list price), or,
/// self-hosted, `gpu_hour` × `gpus` per host-hour in which the model served calls. Both may
/// be set; they add up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Provider (`openai`, `anthropic`, `vllm`, …).
    pub provider: String,
    /// Model name as the samples carry it.
    pub model: String,
    /// Price per million input (prompt) tokens.
    #[serde(default)]
    pub input_per_m: f64,
    /// Price per million output (completion) tokens.
    #[serde(default)]
    pub output_per_m: f64,
    /// Price of one GPU for one hour (self-hosted).
    #[serde(default)]
    pub gpu_hour: f64,
    /// GPUs one serving host uses for this model (self-hosted).
    #[serde(default)]
    pub gpus: i32,
    /// `config` or `api`.
    #[serde(default)]
    pub origin: String,
}

impl Price {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        name_ok("provider", &self.provider, 200)?;
        filter_ok("provider", &self.provider)?;
        name_ok("model", &self.model, 200)?;
        filter_ok("model", &self.model)?;
        for (f, v) in [
            ("input_per_m", self.input_per_m),
            ("output_per_m", self.output_per_m),
            ("gpu_hour", self.gpu_hour),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((f, format!("must be a price ≥ 0, got {v}")));
            }
        }
        if !(0..=1024).contains(&self.gpus) {
            return Err(("gpus", format!("must be 0 to 1024, got {}", self.gpus)));
        }
        if (self.gpu_hour > 0.0) != (self.gpus > 0) {
            return Err((
                "gpus",
                "`gpu_hour` and `gpus` go together: set both or neither".into(),
            ));
        }
        if self.input_per_m == 0.0 && self.output_per_m == 0.0 && self.gpu_hour == 0.0 {
            return Err(("input_per_m", "set token prices (`input_per_m`, `output_per_m`) or a GPU price (`gpu_hour`, `gpus`)".into()));
        }
        Ok(())
    }

    /// The cost of `tokens_in` and `tokens_out` tokens and `host_hours` serving host-hours.
    pub fn cost(&self, tokens_in: u64, tokens_out: u64, host_hours: u64) -> f64 {
        tokens_in as f64 / 1e6 * self.input_per_m
            + tokens_out as f64 / 1e6 * self.output_per_m
            + host_hours as f64 * self.gpu_hour * f64::from(self.gpus)
    }
}

/// A monthly budget for a site and/or model (`""` = all): an alert opens when the month's
/// forecast (spend so far plus the recent daily rate for the days left) exceeds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// Stable id.
    #[serde(default)]
    pub id: String,
    /// Unique name.
    pub name: String,
    /// Site (`""` = every site).
    #[serde(default)]
    pub site: String,
    /// Model (`""` = every model).
    #[serde(default)]
    pub model: String,
    /// The amount for one calendar month (UTC), in the prices' currency.
    pub monthly: f64,
    /// `config` or `api`.
    #[serde(default)]
    pub origin: String,
}

impl Budget {
    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<(), FieldError> {
        name_ok("name", &self.name, 100)?;
        filter_ok("site", &self.site)?;
        filter_ok("model", &self.model)?;
        if !(self.monthly.is_finite() && self.monthly > 0.0) {
            return Err((
                "monthly",
                format!("must be an amount > 0, got {}", self.monthly),
            ));
        }
        Ok(())
    }
}

/// Calls and tokens of one model on one host and source in one hour (the store's
/// `usage_1h`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Source (`probe`, `proxy`, …).
    pub source: String,
    /// Hour start (µs).
    pub hour: i64,
    /// Calls.
    pub calls: i64,
    /// Failed calls.
    pub errors: i64,
    /// Input tokens.
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
}

/// Cost of one model on one site over one period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    /// Site.
    pub site: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Period start (µs).
    pub period: i64,
    /// Calls.
    pub calls: i64,
    /// Input tokens.
    pub tokens_in: i64,
    /// Output tokens.
    pub tokens_out: i64,
    /// Host-hours in which the model served at least one call.
    pub host_hours: i64,
    /// Cost (`None` without a price for the provider and model).
    pub cost: Option<f64>,
}

impl CostLine {
    /// Cost per call.
    pub fn per_call(&self) -> Option<f64> {
        self.cost
            .filter(|_| self.calls > 0)
            .map(|c| c / self.calls as f64)
    }

    /// Cost per 1 000 tokens (input and output together).
    pub fn per_1k_tokens(&self) -> Option<f64> {
        let t = self.tokens_in + self.tokens_out;
        self.cost.filter(|_| t > 0).map(|c| c / t as f64 * 1000.0)
    }
}

/// Adds usage up per site, provider, model and period of `period_us` (aligned on the Unix
/// epoch: UTC days for a day) and prices it.
pub fn cost_lines(usage: &[Usage], prices: &[Price], period_us: i64) -> Vec<CostLine> {
    use std::collections::{BTreeMap, BTreeSet};
    type Key = (String, String, String, i64);
    let mut acc: BTreeMap<Key, (CostLine, BTreeSet<(String, i64)>)> = BTreeMap::new();
    for u in usage {
        let period = u.hour.div_euclid(period_us.max(1)) * period_us.max(1);
        let key = (u.site.clone(), u.provider.clone(), u.model.clone(), period);
        let (line, hours) = acc.entry(key).or_insert_with(|| {
            (
                CostLine {
                    site: u.site.clone(),
                    provider: u.provider.clone(),
                    model: u.model.clone(),
                    period,
                    calls: 0,
                    tokens_in: 0,
                    tokens_out: 0,
                    host_hours: 0,
                    cost: None,
                },
                BTreeSet::new(),
            )
        });
        line.calls += u.calls;
        line.tokens_in += u.tokens_in;
        line.tokens_out += u.tokens_out;
        if u.calls > 0 {
            hours.insert((u.host.clone(), u.hour));
        }
    }
    acc.into_values()
        .map(|(mut line, hours)| {
            line.host_hours = hours.len() as i64;
            line.cost = prices
                .iter()
                .find(|p| p.provider == line.provider && p.model == line.model)
                .map(|p| {
                    p.cost(
                        line.tokens_in.max(0) as u64,
                        line.tokens_out.max(0) as u64,
                        line.host_hours as u64,
                    )
                });
            line
        })
        .collect()
}

/// A stable id for a definition made from its kind and name (`slo-1a2b3c4d`).
pub fn stable_id(kind: &str, name: &str) -> String {
    // FNV-1a: stable across versions and replicas, no dependency
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{kind}-{:016x}", h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slo() -> Slo {
        Slo {
            id: String::new(),
            name: "chat ttft".into(),
            site: "eu".into(),
            model: String::new(),
            source: String::new(),
            metric: "ttft_ms".into(),
            threshold: Some(800.0),
            objective: 0.95,
            window_days: 30,
            origin: ORIGIN_API.into(),
        }
    }

    #[test]
    fn slos_name_the_bad_field() {
        assert!(slo().validate().is_ok());
        let mut s = slo();
        s.objective = 95.0;
        assert_eq!(s.validate().unwrap_err().0, "objective");
        let mut s = slo();
        s.threshold = None;
        assert_eq!(s.validate().unwrap_err().0, "threshold");
        let mut s = slo();
        s.metric = "errors".into();
        assert_eq!(s.validate().unwrap_err().0, "threshold");
        s.threshold = None;
        assert!(s.validate().is_ok());
        s.metric = "tokens_per_s".into();
        assert_eq!(s.validate().unwrap_err().0, "metric");
        let mut s = slo();
        s.window_days = 400;
        assert_eq!(s.validate().unwrap_err().0, "window_days");
        let mut s = slo();
        s.site = "a|b".into();
        assert_eq!(s.validate().unwrap_err().0, "site");
    }

    #[test]
    fn prices_add_tokens_and_gpu_hours() {
        let p = Price {
            provider: "vllm".into(),
            model: "llama".into(),
            input_per_m: 0.5,
            output_per_m: 1.5,
            gpu_hour: 2.0,
            gpus: 4,
            origin: ORIGIN_CONFIG.into(),
        };
        assert!(p.validate().is_ok());
        // 2 M in × 0.5 + 1 M out × 1.5 + 3 host-hours × 4 GPUs × 2.0
        assert!((p.cost(2_000_000, 1_000_000, 3) - (1.0 + 1.5 + 24.0)).abs() < 1e-12);
        let mut q = p.clone();
        q.gpus = 0;
        assert_eq!(q.validate().unwrap_err().0, "gpus");
        assert_ne!(stable_id("slo", "a"), stable_id("slo", "b"));
    }
}

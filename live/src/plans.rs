//! SLO burn-rate and budget alerts, judged with the silence check (every
//! `silence_interval`) from the database only, so they hold across restarts and replicas.
//!
//! - **Burn rate** (the SRE workbook's multiwindow alerts): the fraction of bad calls over a
//!   window divided by the error budget `1 - objective`. `fast` when it is ≥ 14.4 over both
//!   1 h and 5 min (2 % of a 30-day budget gone in an hour), `slow` when ≥ 6 over both 6 h
//!   and 30 min (5 % in six hours). One `slo_burn` violation per SLO while either holds
//!   (`rule` 1 fast, 2 slow), filed under `series|SITE|*|slo:NAME|MODEL|METRIC` (`*` for
//!   all); it resolves when neither holds (the short windows make that quick).
//! - **Budget**: the month's spend so far plus the last seven days' daily rate for the days
//!   left; a `budget` violation (under `series|SITE|*|budget:NAME|MODEL|latency_ms`) opens
//!   when that forecast exceeds the monthly amount and resolves when it no longer does (a
//!   new month starts from zero). Budgets are judged every 30 silence checks (5 min by
//!   default): they read a month of hourly usage.
//!
//! Both are routed, grouped, silenced and delivered like every other violation.

use std::collections::HashMap;

use llmscope_model::plan::{Budget, Slo, cost_lines};
use llmscope_model::{Detector, Metric, Point, Scope, SeriesId, Violation};
use llmscope_store::StoreError;
use llmscope_store::violations::ViolationOp;

use crate::calls::reference;
use crate::engine::Engine;

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// Burn-rate alert windows: (long, short, threshold, rule).
pub const BURN_WINDOWS: [(i64, i64, f64, u8); 2] =
    [(HOUR, 5 * MINUTE, 14.4, 1), (6 * HOUR, 30 * MINUTE, 6.0, 2)];

/// The series an SLO's alerts are filed under.
pub fn slo_key(s: &Slo) -> SeriesId {
    let metric = s.time_metric().unwrap_or(Metric::LatencyMs);
    SeriesId::series(
        or_all(&s.site),
        "*",
        &format!("slo:{}", s.name),
        or_all(&s.model),
        metric,
    )
}

/// The series a budget's alerts are filed under.
pub fn budget_key(b: &Budget) -> SeriesId {
    SeriesId::series(
        or_all(&b.site),
        "*",
        &format!("budget:{}", b.name),
        or_all(&b.model),
        Metric::LatencyMs,
    )
}

fn or_all(s: &str) -> &str {
    if s.is_empty() { "*" } else { s }
}

/// Burn rates of `minutes` (minute, total, bad) at `now` over `window`: bad fraction over the
/// error budget; `None` without calls.
pub fn burn_rate(
    minutes: &[(i64, i64, i64)],
    now: i64,
    window: i64,
    objective: f64,
) -> Option<f64> {
    let (t, b) = minutes
        .iter()
        .filter(|(m, _, _)| *m + MINUTE > now - window)
        .fold((0i64, 0i64), |(t, b), (_, tt, bb)| (t + tt, b + bb));
    (t > 0).then(|| (b as f64 / t as f64) / (1.0 - objective).max(1e-9))
}

/// The start of the UTC calendar month holding `now` and of the next one (µs).
pub fn month_bounds(now: i64) -> (i64, i64) {
    let days = now.div_euclid(DAY);
    let (y, m, _) = civil(days);
    let start = days_from_civil(y, m, 1) * DAY;
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    (start, days_from_civil(ny, nm, 1) * DAY)
}

// Howard Hinnant's civil-date algorithms (days since 1970-01-01 <-> y-m-d)
fn civil(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A month's spend and forecast.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Spent since the month began.
    pub spent: f64,
    /// Mean daily cost over the last seven days.
    pub daily_rate: f64,
    /// Spent plus the daily rate for the days left.
    pub forecast: f64,
    /// Days left in the month.
    pub days_left: f64,
}

/// The month's forecast for the costs matching `site` and `model` (`""` = all).
pub async fn month_forecast(
    store: &llmscope_store::Store,
    site: &str,
    model: &str,
    now: i64,
) -> Result<Forecast, StoreError> {
    let (start, end) = month_bounds(now);
    let from = start.min(now - 7 * DAY);
    let usage: Vec<_> = store
        .usage(from, now, (!site.is_empty()).then_some(site))
        .await?
        .into_iter()
        .filter(|u| model.is_empty() || u.model == model)
        .collect();
    let prices = store.prices().await?;
    let hourly = cost_lines(&usage, &prices, HOUR);
    let sum = |lo: i64| -> f64 {
        hourly
            .iter()
            .filter(|l| l.period >= lo)
            .filter_map(|l| l.cost)
            .sum()
    };
    let spent = sum(start);
    let daily_rate = sum(now - 7 * DAY) / 7.0;
    let days_left = (end - now).max(0) as f64 / DAY as f64;
    Ok(Forecast {
        spent,
        daily_rate,
        forecast: spent + daily_rate * days_left,
        days_left,
    })
}

impl Engine {
    /// Opens and resolves `slo_burn` and `budget` violations (one check).
    pub async fn check_plans(&mut self) -> Result<(), StoreError> {
        let now = self.clock.now_us();
        let mut ops = Vec::new();
        let open: HashMap<SeriesId, Violation> = self
            .store
            .open_of_detector(Detector::SloBurn)
            .await?
            .into_iter()
            .chain(self.store.open_of_detector(Detector::Budget).await?)
            .filter(|v| self.owns(&v.series.site, "*", &v.series.provider, &v.series.model))
            .map(|v| (v.series.clone(), v))
            .collect();
        let mut judged = Vec::new();
        for slo in self.store.slos().await? {
            let key = slo_key(&slo);
            if !self.owns(&key.site, "*", &key.provider, &key.model) {
                continue;
            }
            judged.push(key.clone());
            let minutes = self
                .store
                .slo_minutes(&slo.id, now - 6 * HOUR - MINUTE, now + MINUTE)
                .await?;
            let firing = BURN_WINDOWS.iter().find_map(|(long, short, limit, rule)| {
                let l = burn_rate(&minutes, now, *long, slo.objective)?;
                let s = burn_rate(&minutes, now, *short, slo.objective)?;
                (l >= *limit && s >= *limit).then_some((*rule, l, *limit))
            });
            match (open.get(&key), firing) {
                (Some(v), None) => ops.push(self.resolve(v, now)),
                (None, Some((rule, burn, limit))) => {
                    ops.push(self.open_plan(key, Detector::SloBurn, rule, now, burn, 1.0, limit));
                }
                _ => {}
            }
        }
        // budgets move slowly and read a month of usage: every 30 silence checks (5 min)
        let every =
            i64::try_from(self.cfg.silence_interval.as_micros()).unwrap_or(i64::MAX / 64) * 30;
        let budgets_due = self.budgets_checked.is_none_or(|t| now - t >= every);
        if budgets_due {
            self.budgets_checked = Some(now);
        }
        for b in self.store.budgets().await? {
            let key = budget_key(&b);
            if !self.owns(&key.site, "*", &key.provider, &key.model) {
                continue;
            }
            judged.push(key.clone());
            if !budgets_due {
                continue;
            }
            let f = month_forecast(&self.store, &b.site, &b.model, now).await?;
            match (open.get(&key), f.forecast > b.monthly) {
                (Some(v), false) => ops.push(self.resolve(v, now)),
                (None, true) => {
                    ops.push(self.open_plan(
                        key,
                        Detector::Budget,
                        0,
                        now,
                        f.forecast,
                        f.spent,
                        b.monthly,
                    ));
                }
                _ => {}
            }
        }
        // an SLO or budget deleted while its alert was open
        for (key, v) in &open {
            if !judged.contains(key) {
                ops.push(self.resolve(v, now));
            }
        }
        if ops.is_empty() {
            return Ok(());
        }
        self.finish_incidents(&mut ops).await?;
        self.commit(ops).await
    }

    #[allow(clippy::too_many_arguments)]
    fn open_plan(
        &mut self,
        key: SeriesId,
        detector: Detector,
        rule: u8,
        now: i64,
        value: f64,
        center: f64,
        limit: f64,
    ) -> ViolationOp {
        let point = Point {
            id: None,
            ts: now,
            value,
            n: None,
            sd: None,
            z: None,
        };
        let mut v = Violation::finding(
            key,
            Scope::Series,
            detector,
            rule,
            now,
            vec![point],
            reference(center, limit, (now, now)),
        );
        v.severity = self.cfg.severity.severity(detector, rule);
        self.incidents.opened(&mut v);
        ViolationOp::Open(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_calendar_months() {
        // 2026-12-06T12:00Z
        let now = 1_796_558_400_000_000;
        let (s, e) = month_bounds(now);
        assert_eq!(s, 1_796_083_200_000_000); // 2026-12-01
        assert_eq!(e, 1_798_761_600_000_000); // 2027-01-01
        let (s, e) = month_bounds(1_709_208_000_000_000); // 2024-02-29T12:00Z
        assert_eq!((e - s) / DAY, 29);
    }

    #[test]
    fn burn_is_the_bad_fraction_over_the_budget() {
        let now = 100 * MINUTE;
        let m: Vec<(i64, i64, i64)> = (40..100)
            .map(|i| (i * MINUTE, 10, if i >= 95 { 10 } else { 0 }))
            .collect();
        // last 5 minutes all bad: 1 / 0.01 = 100; last hour: 50 / 600 / 0.01
        assert!((burn_rate(&m, now, 5 * MINUTE, 0.99).unwrap() - 100.0).abs() < 1e-9);
        assert!((burn_rate(&m, now, HOUR, 0.99).unwrap() - 50.0 / 600.0 / 0.01).abs() < 1e-9);
        assert_eq!(burn_rate(&[], now, HOUR, 0.99), None);
    }
}

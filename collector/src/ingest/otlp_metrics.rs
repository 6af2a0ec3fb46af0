//! OTLP GenAI metrics → per-interval aggregates (issue 16).
//!
//! The histograms of the GenAI semantic conventions (`gen_ai.client.operation.duration`,
//! `gen_ai.client.operation.time_to_first_chunk`, `gen_ai.server.time_to_first_token`,
//! `gen_ai.server.time_per_output_token`, `gen_ai.server.request.duration`,
//! `gen_ai.client.token.usage`), with explicit or exponential buckets and delta or cumulative
//! temporality, become one [`Interval`] per export interval and series: the count, the sum
//! (hence the exact mean), min/max when the exporter sent them for that interval, and p50, p90,
//! p95, p99 estimated from the buckets.
//!
//! **Quantiles from buckets.** The rank `q · count` is located in the cumulative bucket
//! counts and interpolated inside its bucket: linearly for explicit buckets (as Prometheus'
//! `histogram_quantile`), geometrically for exponential buckets (their bounds grow by a
//! constant factor). The lowest and highest buckets are closed by the point's min and max when
//! known (else 0 and the last finite bound), and every bucket is clipped to [min, max].
//!
//! **Cumulative points** become deltas against the stream's previous point (kept in the
//! database): same start time and a later time → the difference of counts, sums and buckets
//! (exponential buckets first brought to the coarser scale), over (previous time, this time];
//! min and max are dropped, being since the start. A stream's first point covers its own
//! start (the whole history) when that start is after this collector started; otherwise it is
//! kept as the reference only, since the history it sums was partly missed. A new start time
//! (the application restarted) starts over.

use std::collections::BTreeMap;

use llmscope_model::series::SeriesId;
use llmscope_store::intervals::{Interval, IntervalKey};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, metric::Data,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::otlp::Attrs;

/// The instruments read, with whether they measure time (else tokens).
pub const INSTRUMENTS: &[(&str, bool)] = &[
    ("gen_ai.client.operation.duration", true),
    ("gen_ai.client.operation.time_to_first_chunk", true),
    ("gen_ai.server.time_to_first_token", true),
    ("gen_ai.server.time_per_output_token", true),
    ("gen_ai.server.request.duration", true),
    ("gen_ai.client.token.usage", false),
];

/// The quantiles estimated per interval.
pub const QUANTILES: [f64; 4] = [0.5, 0.9, 0.95, 0.99];

/// Longest host, model, provider, operation or site.
const MAX_NAME: usize = 256;

/// Why a data point did not become an interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Ignored {
    /// Not one of the GenAI instruments read.
    NotGenAi,
    /// A GenAI instrument sent as something other than a histogram.
    NotHistogram,
    /// A time unit other than s, ms, us or ns.
    Unit,
    /// Neither `gen_ai.response.model` nor `gen_ai.request.model`.
    NoModel,
    /// No time, or a start after the end.
    BadTimes,
    /// No sum (negative values were recorded), or negative buckets.
    NoSum,
    /// No calls in the interval.
    Empty,
    /// A cumulative stream's first point whose start predates this collector: kept as the
    /// reference for the next one.
    Reference,
    /// A cumulative point not newer than the one before (a resent export).
    Stale,
}

impl Ignored {
    /// The reason as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Ignored::NotGenAi => "not_genai",
            Ignored::NotHistogram => "not_histogram",
            Ignored::Unit => "unit",
            Ignored::NoModel => "no_model",
            Ignored::BadTimes => "bad_times",
            Ignored::NoSum => "no_sum",
            Ignored::Empty => "empty",
            Ignored::Reference => "reference",
            Ignored::Stale => "stale",
        }
    }
}

/// A histogram's buckets, in either layout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Buckets {
    /// Explicit bounds: `counts[i]` in (bounds[i-1], bounds[i]], the last one above every
    /// bound.
    Explicit {
        /// Upper bounds, ascending.
        bounds: Vec<f64>,
        /// One more count than bounds.
        counts: Vec<u64>,
    },
    /// Base-2 exponential buckets: index i is (base^i, base^(i+1)], base = 2^(2^-scale).
    Exponential {
        /// Resolution.
        scale: i32,
        /// Values within ±`zero_threshold`.
        zero_count: u64,
        /// Width of the zero bucket.
        zero_threshold: f64,
        /// Index of `counts[0]`.
        offset: i32,
        /// Positive buckets from `offset` up.
        counts: Vec<u64>,
    },
}

impl Buckets {
    /// The values counted in the buckets.
    fn total(&self) -> u64 {
        match self {
            Buckets::Explicit { counts, .. } => counts.iter().sum(),
            Buckets::Exponential {
                zero_count, counts, ..
            } => zero_count + counts.iter().sum::<u64>(),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Buckets::Explicit { .. } => "explicit",
            Buckets::Exponential { .. } => "exponential",
        }
    }

    /// `self − earlier`, when both have the same layout (exponential buckets are compared at
    /// the coarser scale) and no count goes down.
    fn minus(&self, earlier: &Buckets) -> Option<Buckets> {
        match (self, earlier) {
            (
                Buckets::Explicit { bounds, counts },
                Buckets::Explicit {
                    bounds: b0,
                    counts: c0,
                },
            ) => {
                if bounds != b0 || counts.len() != c0.len() {
                    return None;
                }
                let counts = counts
                    .iter()
                    .zip(c0)
                    .map(|(a, b)| a.checked_sub(*b))
                    .collect::<Option<Vec<_>>>()?;
                Some(Buckets::Explicit {
                    bounds: bounds.clone(),
                    counts,
                })
            }
            (
                Buckets::Exponential {
                    scale,
                    zero_count,
                    zero_threshold,
                    ..
                },
                Buckets::Exponential {
                    scale: s0,
                    zero_count: z0,
                    ..
                },
            ) => {
                let common = (*scale).min(*s0);
                let now = self.downscaled(common);
                let then = earlier.downscaled(common);
                let mut diff = BTreeMap::new();
                for (i, c) in &now {
                    let before = then.get(i).copied().unwrap_or(0);
                    diff.insert(*i, c.checked_sub(before)?);
                }
                if then.keys().any(|i| !now.contains_key(i)) {
                    return None;
                }
                let offset = diff.keys().next().copied().unwrap_or(0);
                let last = diff.keys().last().copied().unwrap_or(offset);
                let counts = (offset..=last)
                    .map(|i| diff.get(&i).copied().unwrap_or(0))
                    .collect();
                Some(Buckets::Exponential {
                    scale: common,
                    zero_count: zero_count.checked_sub(*z0)?,
                    zero_threshold: *zero_threshold,
                    offset,
                    counts: if diff.is_empty() { Vec::new() } else { counts },
                })
            }
            _ => None,
        }
    }

    /// Exponential buckets at a coarser `scale`: index → count (empty for explicit ones).
    fn downscaled(&self, scale: i32) -> BTreeMap<i32, u64> {
        let mut out = BTreeMap::new();
        if let Buckets::Exponential {
            scale: s,
            offset,
            counts,
            ..
        } = self
        {
            let shift = (s - scale).clamp(0, 31);
            for (k, c) in counts.iter().enumerate() {
                if *c > 0 {
                    let i = offset.saturating_add(k as i32) >> shift;
                    *out.entry(i).or_insert(0) += c;
                }
            }
        }
        out
    }

    /// The buckets as ranges (lower, upper, count, geometric), ascending, clipped to
    /// [min, max] where known.
    fn ranges(&self, min: Option<f64>, max: Option<f64>, mean: f64) -> Vec<(f64, f64, u64, bool)> {
        let mut out = Vec::new();
        match self {
            Buckets::Explicit { bounds, counts } => {
                for (i, c) in counts.iter().enumerate() {
                    let lo = if i == 0 {
                        min.unwrap_or_else(|| bounds.first().map_or(0.0, |b| b.min(0.0)))
                    } else {
                        bounds[i - 1]
                    };
                    let hi = match bounds.get(i) {
                        Some(b) => *b,
                        None => {
                            max.unwrap_or_else(|| bounds.last().copied().unwrap_or(mean).max(lo))
                        }
                    };
                    out.push((lo, hi, *c, false));
                }
            }
            Buckets::Exponential {
                scale,
                zero_count,
                zero_threshold,
                offset,
                counts,
            } => {
                out.push((0.0, *zero_threshold, *zero_count, false));
                let step = 2f64.powi(-*scale);
                for (k, c) in counts.iter().enumerate() {
                    let i = f64::from(offset.saturating_add(k as i32));
                    out.push(((i * step).exp2(), ((i + 1.0) * step).exp2(), *c, true));
                }
            }
        }
        for r in &mut out {
            if let Some(m) = min {
                r.0 = r.0.max(m);
                r.1 = r.1.max(m);
            }
            if let Some(m) = max {
                r.0 = r.0.min(m);
                r.1 = r.1.min(m);
            }
        }
        out
    }

    /// The `q` quantile estimated from the buckets (see the module's doc); `None` without
    /// counts.
    pub fn quantile(&self, q: f64, min: Option<f64>, max: Option<f64>, mean: f64) -> Option<f64> {
        let ranges = self.ranges(min, max, mean);
        let total: u64 = ranges.iter().map(|r| r.2).sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (lo, hi, c, geometric) in &ranges {
            if *c == 0 {
                continue;
            }
            if (below + c) as f64 >= rank {
                let frac = ((rank - below as f64) / *c as f64).clamp(0.0, 1.0);
                let v = if *geometric && *lo > 0.0 && *hi > 0.0 {
                    lo * (hi / lo).powf(frac)
                } else {
                    lo + (hi - lo) * frac
                };
                return Some(v);
            }
            below += c;
        }
        ranges.iter().rev().find(|r| r.2 > 0).map(|r| r.1)
    }
}

/// A histogram data point read from an export, before temporality is resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The series.
    pub key: IntervalKey,
    /// `error.type`, empty for successful calls.
    pub error_type: String,
    /// The stream's identity (site, instrument, resource and point attributes).
    pub stream: String,
    /// Cumulative (else delta).
    pub cumulative: bool,
    /// Start, Unix ns.
    pub start_ns: u64,
    /// Time, Unix ns.
    pub time_ns: u64,
    /// Recorded values.
    pub count: u64,
    /// Their sum, in the instrument's unit.
    pub sum: f64,
    /// Smallest, in the instrument's unit.
    pub min: Option<f64>,
    /// Largest, in the instrument's unit.
    pub max: Option<f64>,
    /// The buckets, in the instrument's unit.
    pub buckets: Buckets,
    /// Multiplier to the stored unit (s → ms: 1000; tokens: 1).
    pub factor: f64,
}

/// A cumulative stream's last point, as kept in `otlp_streams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cumulative {
    /// Start, Unix ns.
    pub start_ns: u64,
    /// Time, Unix ns.
    pub time_ns: u64,
    /// Recorded values since the start.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// The buckets.
    pub buckets: Buckets,
}

/// A data point refused: which field and why (counted in the partial success).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// What is wrong, naming the attribute.
    pub reason: String,
}

/// What an export's metrics yield.
#[derive(Debug, Default)]
pub struct MappedMetrics {
    /// Histogram points of GenAI instruments.
    pub points: Vec<Point>,
    /// Data points left out, by reason.
    pub ignored: BTreeMap<Ignored, u64>,
    /// Data points refused, each with its reason.
    pub rejected: Vec<Rejected>,
}

fn unit_factor(unit: &str, time: bool) -> Option<f64> {
    if !time {
        return Some(1.0);
    }
    match unit.trim() {
        "s" | "" => Some(1e3),
        "ms" => Some(1.0),
        "us" | "µs" => Some(1e-3),
        "ns" => Some(1e-6),
        _ => None,
    }
}

fn name_part(field: &str, v: String) -> Result<String, Rejected> {
    if v.len() > MAX_NAME {
        return Err(Rejected {
            reason: format!("{field} is {} bytes; the limit is {MAX_NAME}", v.len()),
        });
    }
    SeriesId::check_part(&v).map_err(|e| Rejected {
        reason: format!("{field} {e}"),
    })?;
    Ok(v)
}

fn attrs_text(kvs: &[KeyValue]) -> String {
    let mut parts: Vec<String> = kvs
        .iter()
        .map(|kv| {
            let v = kv
                .value
                .as_ref()
                .and_then(super::otlp::text)
                .unwrap_or_default();
            format!("{}={v}", kv.key)
        })
        .collect();
    parts.sort();
    parts.join("\u{1f}")
}

/// The identity of the stream a point belongs to.
fn stream_id(site: &str, metric: &str, resource: &str, scope: &str, point: &[KeyValue]) -> String {
    let mut h = Sha256::new();
    for part in [site, metric, resource, scope, &attrs_text(point)] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// What is common to the data points of one metric.
struct Ctx<'a> {
    site: &'a str,
    resource: &'a Attrs<'a>,
    resource_text: &'a str,
    scope: &'a str,
    instrument: &'a str,
    time: bool,
    factor: f64,
    cumulative: bool,
}

/// The series key of a point with `attributes`, or why not.
fn key_of(
    c: &Ctx<'_>,
    attributes: &[KeyValue],
) -> Result<Result<(IntervalKey, String), Ignored>, Rejected> {
    let a = Attrs(attributes);
    let Some(model) = a.text(&["gen_ai.response.model", "gen_ai.request.model"]) else {
        return Ok(Err(Ignored::NoModel));
    };
    let key = IntervalKey {
        site: c.site.to_owned(),
        host: name_part(
            "server.address",
            a.text(&["server.address"])
                .or_else(|| c.resource.text(&["host.name"]))
                .unwrap_or_else(|| "unknown".into()),
        )?,
        provider: name_part(
            "gen_ai.provider.name",
            a.text(&["gen_ai.provider.name", "gen_ai.system"])
                .unwrap_or_else(|| "unknown".into()),
        )?,
        model: name_part("gen_ai.request.model", model)?,
        operation: name_part(
            "gen_ai.operation.name",
            a.text(&["gen_ai.operation.name"])
                .unwrap_or_else(|| "unknown".into()),
        )?,
        instrument: c.instrument.to_owned(),
        token_type: if c.time {
            String::new()
        } else {
            name_part(
                "gen_ai.token.type",
                a.text(&["gen_ai.token.type"])
                    .unwrap_or_else(|| "unknown".into()),
            )?
        },
    };
    let error_type = name_part("error.type", a.text(&["error.type"]).unwrap_or_default())?;
    Ok(Ok((key, error_type)))
}

fn times(start: u64, time: u64, cumulative: bool) -> Result<(), Ignored> {
    if time == 0 || start > time || (!cumulative && start == 0) {
        return Err(Ignored::BadTimes);
    }
    Ok(())
}

/// What both histogram layouts carry besides their buckets.
struct Common<'a> {
    attributes: &'a [KeyValue],
    start_ns: u64,
    time_ns: u64,
    count: u64,
    /// `None` when there is no usable sum (absent, not finite, negative values recorded).
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
}

/// A point from what both layouts carry; `buckets` is read only for a point that is not
/// ignored before (no model, bad times, no sum), and must add up to the point's count.
fn point(
    c: &Ctx<'_>,
    p: Common<'_>,
    buckets: impl FnOnce() -> Result<Buckets, Rejected>,
) -> Result<Result<Point, Ignored>, Rejected> {
    let (key, error_type) = match key_of(c, p.attributes)? {
        Ok(k) => k,
        Err(i) => return Ok(Err(i)),
    };
    if let Err(i) = times(p.start_ns, p.time_ns, c.cumulative) {
        return Ok(Err(i));
    }
    let Some(sum) = p.sum else {
        return Ok(Err(Ignored::NoSum));
    };
    let buckets = buckets()?;
    if buckets.total() != p.count {
        return Err(Rejected {
            reason: format!(
                "{}: the bucket counts add up to {}, not the point's count {}",
                c.instrument,
                buckets.total(),
                p.count
            ),
        });
    }
    Ok(Ok(Point {
        stream: stream_id(c.site, c.instrument, c.resource_text, c.scope, p.attributes),
        key,
        error_type,
        cumulative: c.cumulative,
        start_ns: p.start_ns,
        time_ns: p.time_ns,
        count: p.count,
        sum,
        min: p.min.filter(|v| v.is_finite()),
        max: p.max.filter(|v| v.is_finite()),
        buckets,
        factor: c.factor,
    }))
}

fn explicit(c: &Ctx<'_>, p: &HistogramDataPoint) -> Result<Result<Point, Ignored>, Rejected> {
    let common = Common {
        attributes: &p.attributes,
        start_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        count: p.count,
        sum: p.sum.filter(|s| s.is_finite()),
        min: p.min,
        max: p.max,
    };
    point(c, common, || {
        let sorted = p.explicit_bounds.windows(2).all(|w| w[0] < w[1]);
        let layout_ok =
            p.bucket_counts.is_empty() || p.bucket_counts.len() == p.explicit_bounds.len() + 1;
        if !sorted || !layout_ok || p.explicit_bounds.iter().any(|b| !b.is_finite()) {
            return Err(Rejected {
                reason: format!(
                    "{}: {} bucket counts for {} explicit bounds (want bounds + 1, bounds finite and ascending)",
                    c.instrument,
                    p.bucket_counts.len(),
                    p.explicit_bounds.len()
                ),
            });
        }
        Ok(if p.bucket_counts.is_empty() {
            Buckets::Explicit {
                bounds: Vec::new(),
                counts: vec![p.count],
            }
        } else {
            Buckets::Explicit {
                bounds: p.explicit_bounds.clone(),
                counts: p.bucket_counts.clone(),
            }
        })
    })
}

fn exponential(
    c: &Ctx<'_>,
    p: &ExponentialHistogramDataPoint,
) -> Result<Result<Point, Ignored>, Rejected> {
    let negative: u64 = p
        .negative
        .as_ref()
        .map_or(0, |b| b.bucket_counts.iter().sum());
    let common = Common {
        attributes: &p.attributes,
        start_ns: p.start_time_unix_nano,
        time_ns: p.time_unix_nano,
        count: p.count,
        sum: p.sum.filter(|s| s.is_finite() && negative == 0),
        min: p.min,
        max: p.max,
    };
    point(c, common, || {
        if !(-10..=20).contains(&p.scale) {
            return Err(Rejected {
                reason: format!(
                    "{}: exponential scale {} is outside -10..=20",
                    c.instrument, p.scale
                ),
            });
        }
        let (offset, counts) = p
            .positive
            .as_ref()
            .map_or((0, Vec::new()), |b| (b.offset, b.bucket_counts.clone()));
        Ok(Buckets::Exponential {
            scale: p.scale,
            zero_count: p.zero_count,
            zero_threshold: if p.zero_threshold.is_finite() {
                p.zero_threshold.max(0.0)
            } else {
                0.0
            },
            offset,
            counts,
        })
    })
}

/// The site a resource's points belong to: the token's, or with `--insecure-no-auth` the
/// resource attribute `llmscope.site`.
pub(crate) fn site_of(token_site: Option<&str>, resource: &Attrs<'_>) -> Result<String, Rejected> {
    match token_site {
        Some(s) => Ok(s.to_owned()),
        None => resource
            .text(&["llmscope.site"])
            .ok_or_else(|| Rejected {
                reason: "no site: with --insecure-no-auth set the resource attribute llmscope.site"
                    .into(),
            })
            .and_then(|s| name_part("llmscope.site", s)),
    }
}

/// Reads the GenAI histogram points of an export.
pub fn map_metrics(req: &ExportMetricsServiceRequest, token_site: Option<&str>) -> MappedMetrics {
    let mut out = MappedMetrics::default();
    for rm in &req.resource_metrics {
        let empty = Vec::new();
        let rattrs = rm.resource.as_ref().map_or(&empty, |r| &r.attributes);
        let resource = Attrs(rattrs);
        let resource_text = attrs_text(rattrs);
        let site = site_of(token_site, &resource);
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref().map_or("", |s| s.name.as_str());
            for m in &sm.metrics {
                let points = match &m.data {
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                    None => 0,
                } as u64;
                let Some((instrument, time)) =
                    INSTRUMENTS.iter().find(|(n, _)| *n == m.name).copied()
                else {
                    *out.ignored.entry(Ignored::NotGenAi).or_default() += points;
                    continue;
                };
                let Some(factor) = unit_factor(&m.unit, time) else {
                    *out.ignored.entry(Ignored::Unit).or_default() += points;
                    continue;
                };
                let site = match &site {
                    Ok(s) => s.as_str(),
                    Err(r) => {
                        out.rejected
                            .extend(std::iter::repeat_n(r.clone(), points as usize));
                        continue;
                    }
                };
                let cumulative = |t: i32| t == AggregationTemporality::Cumulative as i32;
                let mut ctx = Ctx {
                    site,
                    resource: &resource,
                    resource_text: &resource_text,
                    scope,
                    instrument,
                    time,
                    factor,
                    cumulative: false,
                };
                let results: Vec<Result<Result<Point, Ignored>, Rejected>> = match &m.data {
                    Some(Data::Histogram(h)) => {
                        ctx.cumulative = cumulative(h.aggregation_temporality);
                        h.data_points.iter().map(|p| explicit(&ctx, p)).collect()
                    }
                    Some(Data::ExponentialHistogram(h)) => {
                        ctx.cumulative = cumulative(h.aggregation_temporality);
                        h.data_points.iter().map(|p| exponential(&ctx, p)).collect()
                    }
                    _ => {
                        *out.ignored.entry(Ignored::NotHistogram).or_default() += points;
                        continue;
                    }
                };
                for r in results {
                    match r {
                        Ok(Ok(p)) => out.points.push(p),
                        Ok(Err(i)) => *out.ignored.entry(i).or_default() += 1,
                        Err(rej) => out.rejected.push(rej),
                    }
                }
            }
        }
    }
    out
}

fn interval_id(stream: &str, start_ns: u64, end_ns: u64) -> String {
    let name = format!("{stream}|{start_ns}|{end_ns}");
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, name.as_bytes()).to_string()
}

/// One interval's numbers, before the unit factor.
struct Delta<'a> {
    start_ns: u64,
    count: u64,
    sum: f64,
    min: Option<f64>,
    max: Option<f64>,
    buckets: &'a Buckets,
}

/// The interval of `p` ending at its time with the numbers of `d`.
fn interval(p: &Point, d: Delta<'_>) -> Result<Interval, Ignored> {
    if d.count == 0 {
        return Err(Ignored::Empty);
    }
    let us = |ns: u64| i64::try_from(ns / 1000).unwrap_or(i64::MAX);
    let mean = d.sum / d.count as f64;
    let f = p.factor;
    Ok(Interval {
        id: interval_id(&p.stream, d.start_ns, p.time_ns),
        key: p.key.clone(),
        error_type: p.error_type.clone(),
        start_us: us(d.start_ns),
        end_us: us(p.time_ns),
        count: i64::try_from(d.count).unwrap_or(i64::MAX),
        sum: d.sum * f,
        min: d.min.map(|v| v * f),
        max: d.max.map(|v| v * f),
        quantiles: QUANTILES.map(|q| d.buckets.quantile(q, d.min, d.max, mean).map(|v| v * f)),
        temporality: if p.cumulative { "cumulative" } else { "delta" }.into(),
        kind: d.buckets.kind().into(),
    })
}

/// The interval a point stands for, given the stream's previous cumulative point, and the
/// stream's new state (cumulative points only, a resent one excepted). `started_ns`: when
/// this collector started.
pub fn resolve(
    p: &Point,
    previous: Option<&Cumulative>,
    started_ns: u64,
) -> (Result<Interval, Ignored>, Option<Cumulative>) {
    // the point's own numbers: a delta point, or a cumulative one covering its whole history
    let whole = || {
        interval(
            p,
            Delta {
                start_ns: p.start_ns,
                count: p.count,
                sum: p.sum,
                min: p.min,
                max: p.max,
                buckets: &p.buckets,
            },
        )
    };
    if !p.cumulative {
        return (whole(), None);
    }
    let r = match previous {
        Some(prev) if prev.start_ns == p.start_ns && p.time_ns <= prev.time_ns => {
            return (Err(Ignored::Stale), None);
        }
        Some(prev) if prev.start_ns == p.start_ns => {
            match (
                p.buckets.minus(&prev.buckets),
                p.count.checked_sub(prev.count),
            ) {
                // min and max are since the start: not this interval's
                (Some(b), Some(n)) => interval(
                    p,
                    Delta {
                        start_ns: prev.time_ns,
                        count: n,
                        sum: p.sum - prev.sum,
                        min: None,
                        max: None,
                        buckets: &b,
                    },
                ),
                // counts went down with the same start: a reset the exporter did not mark;
                // start over from this point
                _ => Err(Ignored::Reference),
            }
        }
        // a new start (the application restarted), or a stream that started after this
        // collector did: its whole history is here
        Some(_) => whole(),
        None if p.start_ns >= started_ns && p.start_ns > 0 => whole(),
        None => Err(Ignored::Reference),
    };
    let now = Cumulative {
        start_ns: p.start_ns,
        time_ns: p.time_ns,
        count: p.count,
        sum: p.sum,
        buckets: p.buckets.clone(),
    };
    (r, Some(now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explicit(bounds: &[f64], counts: &[u64]) -> Buckets {
        Buckets::Explicit {
            bounds: bounds.to_vec(),
            counts: counts.to_vec(),
        }
    }

    #[test]
    fn explicit_quantiles_interpolate_like_histogram_quantile() {
        // 10 values: 2 in (0,1], 6 in (1,2], 2 in (2,4]; no min/max
        let b = explicit(&[1.0, 2.0, 4.0], &[2, 6, 2, 0]);
        // p50: rank 5 → 3 into the second bucket of 6 → 1 + 0.5
        assert_eq!(b.quantile(0.5, None, None, 1.6), Some(1.5));
        // p90: rank 9 → 1 into the third bucket of 2 → 2 + 2 · 0.5
        assert_eq!(b.quantile(0.9, None, None, 1.6), Some(3.0));
        // p10: rank 1 → half of the first bucket (0, 1]
        assert_eq!(b.quantile(0.1, None, None, 1.6), Some(0.5));
        // min and max close and clip the outer buckets
        assert_eq!(b.quantile(0.1, Some(0.6), Some(3.0), 1.6), Some(0.8));
        // rank 9.5: 1.5 into (2, 4] clipped to (2, 3]
        assert_eq!(b.quantile(0.95, Some(0.6), Some(3.0), 1.6), Some(2.75));
        // the +Inf bucket without a max ends at the last bound
        let b = explicit(&[1.0, 2.0], &[0, 0, 4]);
        assert_eq!(b.quantile(0.5, None, None, 7.0), Some(2.0));
        assert_eq!(
            explicit(&[1.0], &[0, 0]).quantile(0.5, None, None, 0.0),
            None
        );
    }

    #[test]
    fn exponential_quantiles_interpolate_geometrically() {
        // scale 0: base 2; index 0 = (1, 2], index 1 = (2, 4]
        let b = Buckets::Exponential {
            scale: 0,
            zero_count: 0,
            zero_threshold: 0.0,
            offset: 0,
            counts: vec![2, 2],
        };
        // rank 2 of 4 ends the first bucket
        assert_eq!(b.quantile(0.5, None, None, 2.0), Some(2.0));
        // rank 3: half of (2, 4] geometrically = 2·√2
        let v = b.quantile(0.75, None, None, 2.0).unwrap();
        assert!((v - 2.0 * 2f64.sqrt()).abs() < 1e-12, "{v}");
        // scale 1: base √2, offset 2 → (2, 2√2]
        let b = Buckets::Exponential {
            scale: 1,
            zero_count: 1,
            zero_threshold: 0.0,
            offset: 2,
            counts: vec![1],
        };
        assert_eq!(b.quantile(0.25, None, None, 1.0), Some(0.0));
        let v = b.quantile(1.0, None, None, 1.0).unwrap();
        assert!((v - 2.0 * 2f64.sqrt()).abs() < 1e-12, "{v}");
    }

    #[test]
    fn cumulative_exponential_buckets_subtract_at_the_coarser_scale() {
        let before = Buckets::Exponential {
            scale: 2,
            zero_count: 1,
            zero_threshold: 0.0,
            offset: 4,
            counts: vec![1, 1, 0, 1],
        };
        // downscaled to scale 1: indexes 4,5 → 2; 7 → 3
        let after = Buckets::Exponential {
            scale: 1,
            zero_count: 3,
            zero_threshold: 0.0,
            offset: 2,
            counts: vec![5, 1],
        };
        let d = after.minus(&before).unwrap();
        assert_eq!(
            d,
            Buckets::Exponential {
                scale: 1,
                zero_count: 2,
                zero_threshold: 0.0,
                offset: 2,
                counts: vec![3, 0],
            }
        );
        // a count that went down is no delta
        assert!(before.minus(&after).is_none());
        assert!(
            explicit(&[1.0], &[1, 1])
                .minus(&explicit(&[2.0], &[0, 0]))
                .is_none()
        );
    }

    fn point(
        cumulative: bool,
        start: u64,
        time: u64,
        count: u64,
        sum: f64,
        counts: &[u64],
    ) -> Point {
        Point {
            key: IntervalKey {
                site: "eu".into(),
                host: "h".into(),
                provider: "openai".into(),
                model: "m".into(),
                operation: "chat".into(),
                instrument: "gen_ai.client.operation.duration".into(),
                token_type: String::new(),
            },
            error_type: String::new(),
            stream: "s".into(),
            cumulative,
            start_ns: start,
            time_ns: time,
            count,
            sum,
            min: Some(0.5),
            max: Some(3.0),
            buckets: explicit(&[1.0, 2.0], counts),
            factor: 1000.0,
        }
    }

    #[test]
    fn cumulative_points_become_deltas() {
        let started = 1_000;
        let first = point(true, 2_000_000, 62_000_000_000, 4, 6.0, &[1, 2, 1]);
        let (i, s) = resolve(&first, None, started);
        let i = i.unwrap();
        assert_eq!((i.start_us, i.end_us, i.count), (2_000, 62_000_000, 4));
        assert_eq!(i.sum, 6000.0);
        assert_eq!(i.min, Some(500.0));
        let prev = s.unwrap();
        let second = point(true, 2_000_000, 122_000_000_000, 10, 16.0, &[1, 6, 3]);
        let (i, _) = resolve(&second, Some(&prev), started);
        let i = i.unwrap();
        assert_eq!(
            (i.start_us, i.end_us, i.count),
            (62_000_000, 122_000_000, 6)
        );
        assert_eq!(i.sum, 10_000.0);
        assert_eq!((i.min, i.max), (None, None));
        // 6 values: 4 in (1,2], 2 in (2, +Inf) closed at 2 → p50 = rank 3 of 4 in (1,2]
        assert_eq!(i.quantiles[0], Some(1750.0));
        // a resend of the same point
        assert_eq!(resolve(&first, Some(&prev), started).0, Err(Ignored::Stale));
        // a stream seen first long after its start is a reference only
        let (i, s) = resolve(&second, None, 5_000_000);
        assert_eq!(i, Err(Ignored::Reference));
        assert!(s.is_some());
        // an application restart (new start) covers its own history
        let restarted = point(true, 130_000_000_000, 190_000_000_000, 2, 2.0, &[1, 1, 0]);
        let i = resolve(&restarted, Some(&prev), started).0.unwrap();
        assert_eq!((i.start_us, i.count), (130_000_000, 2));
        // delta points are taken as they are; an empty one is skipped
        let d = point(false, 60, 120, 3, 3.0, &[3, 0, 0]);
        assert_eq!(resolve(&d, None, started).0.unwrap().count, 3);
        let e = point(false, 60, 120, 0, 0.0, &[0, 0, 0]);
        assert_eq!(resolve(&e, None, started).0, Err(Ignored::Empty));
    }
}

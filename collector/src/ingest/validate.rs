//! Item-by-item validation of an ingest request.
//!
//! Each sample and telemetry snapshot is checked on its own; a bad item becomes a
//! [`Rejection`] naming the field and what is wrong, and the rest of the batch is stored.

use std::collections::BTreeMap;

use llmscope_proto::wire::{self, ItemKind, Rejection};
use uuid::Uuid;

use llmscope_model::{CallStatus, Gpu, Sample, SeriesId, ServerMetric, Source, Telemetry};

use crate::auth::Principal;

/// Most labels one sample may carry.
pub const MAX_LABELS: usize = 16;
/// Longest label key, bytes.
pub const MAX_LABEL_KEY: usize = 64;
/// Longest label value, bytes.
pub const MAX_LABEL_VALUE: usize = 256;
/// Longest host, model or site, bytes.
pub const MAX_NAME: usize = 256;
/// Longest provider, bytes.
pub const MAX_PROVIDER: usize = 64;
/// Longest error text, bytes.
pub const MAX_ERROR: usize = 1024;
/// Most GPUs (and MIG instances) in one snapshot.
pub const MAX_GPUS: usize = 64;
/// Most XID errors one GPU entry may carry.
pub const MAX_XIDS: usize = 32;
/// Most model-server gauges in one snapshot.
pub const MAX_SERVER_METRICS: usize = 256;
/// Longest model-server metric name, bytes.
pub const MAX_METRIC_NAME: usize = 64;

/// Time bounds for timestamps.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// Now, Unix µs.
    pub now_us: i64,
    /// Allowed clock skew into the future, µs.
    pub max_future_us: i64,
    /// Retention, µs: older items are rejected.
    pub retention_us: i64,
}

/// The outcome of validating one request.
#[derive(Debug, Default)]
pub struct Validated {
    /// Samples to store.
    pub samples: Vec<Sample>,
    /// Telemetry to store.
    pub telemetry: Vec<Telemetry>,
    /// Items refused, with reasons.
    pub rejected: Vec<Rejection>,
    /// GPU readings inside refused telemetry snapshots.
    pub rejected_gpus: usize,
}

impl Validated {
    /// What this request adds to the ingest metrics (recorded once it is acked).
    pub fn tally(&self) -> crate::metrics::IngestTally {
        let mut t = crate::metrics::IngestTally {
            samples: self.samples.len() as u64,
            telemetry: self.telemetry.len() as u64,
            gpus: self.telemetry.iter().map(|t| t.gpus.len() as u64).sum(),
            rejected_gpus: self.rejected_gpus as u64,
            rejected: Vec::new(),
        };
        t.reject_all(&self.rejected);
        t
    }
}

type Fail = (String, String);

fn fail(field: &str, reason: impl Into<String>) -> Fail {
    (field.to_owned(), reason.into())
}

fn text(field: &str, bytes: Vec<u8>, max: usize, required: bool) -> Result<String, Fail> {
    let s =
        String::from_utf8(bytes).map_err(|_| fail(field, format!("{field} is not valid UTF-8")))?;
    if required && s.trim().is_empty() {
        return Err(fail(field, format!("{field} is empty")));
    }
    if s.len() > max {
        return Err(fail(
            field,
            format!("{field} is {} bytes; at most {max} allowed", s.len()),
        ));
    }
    Ok(s)
}

/// A name that becomes part of a series id (site, host, provider, model).
fn name(field: &str, bytes: Vec<u8>, max: usize, required: bool) -> Result<String, Fail> {
    let s = text(field, bytes, max, required)?;
    SeriesId::check_part(&s).map_err(|e| fail(field, format!("{field} {e}")))?;
    Ok(s)
}

fn site(field: &str, raw: Vec<u8>, who: &Principal) -> Result<String, Fail> {
    let s = name(field, raw, MAX_NAME, false)?;
    match (&who.site, s.is_empty()) {
        (Some(own), true) => Ok(own.clone()),
        (Some(own), false) if &s != own => Err(fail(
            field,
            format!("site `{s}` may not be written with this token (it writes site `{own}`)"),
        )),
        (None, true) => Err(fail(
            field,
            "site is empty (with --insecure-no-auth every item must name its site)",
        )),
        _ => Ok(s),
    }
}

fn timestamp(field: &str, ns: i64, b: &Bounds) -> Result<i64, Fail> {
    if ns <= 0 {
        return Err(fail(
            field,
            format!("{field} is missing or not positive ({ns})"),
        ));
    }
    let us = ns / 1_000;
    if us > b.now_us + b.max_future_us {
        return Err(fail(
            field,
            format!(
                "timestamp is {:.0} s in the future; at most {} s allowed (check the producer's clock)",
                (us - b.now_us) as f64 / 1e6,
                b.max_future_us / 1_000_000
            ),
        ));
    }
    if us < b.now_us - b.retention_us {
        return Err(fail(
            field,
            format!(
                "timestamp is older than the retention period ({} days)",
                b.retention_us / 86_400_000_000
            ),
        ));
    }
    Ok(us)
}

fn non_negative(field: &str, x: f64) -> Result<f64, Fail> {
    if x.is_nan() {
        Err(fail(
            field,
            format!("{field} is NaN; it must be a finite number >= 0"),
        ))
    } else if x.is_infinite() {
        Err(fail(
            field,
            format!("{field} is infinite; it must be a finite number >= 0"),
        ))
    } else if x < 0.0 {
        Err(fail(field, format!("{field} is {x}; it must be >= 0")))
    } else {
        Ok(x)
    }
}

fn sample(s: wire::Sample, who: &Principal, b: &Bounds) -> Result<Sample, Fail> {
    let id_text = text("id", s.id, 64, false)?;
    if id_text.is_empty() {
        return Err(fail(
            "id",
            "id is missing; every sample needs a UUID (v7 recommended)",
        ));
    }
    let id = Uuid::parse_str(&id_text)
        .map_err(|_| fail("id", format!("id `{id_text}` is not a UUID")))?;
    let site = site("site", s.site, who)?;
    let host = name("host", s.host, MAX_NAME, true)?;
    let provider = name("provider", s.provider, MAX_PROVIDER, true)?;
    let model = name("model", s.model, MAX_NAME, true)?;
    let ts_us = timestamp("ts_unix_nanos", s.ts_unix_nanos, b)?;
    let source = match wire::Source::try_from(s.source) {
        Ok(wire::Source::Probe) => Source::Probe,
        Ok(wire::Source::Proxy) => Source::Proxy,
        Ok(wire::Source::Client | wire::Source::Unspecified) => Source::Client,
        Ok(wire::Source::Otlp) => Source::Otlp,
        Err(_) => {
            return Err(fail(
                "source",
                format!("source {} is not a known value", s.source),
            ));
        }
    };
    let status = match wire::CallStatus::try_from(s.status) {
        Ok(wire::CallStatus::Ok | wire::CallStatus::Unspecified) => CallStatus::Ok,
        Ok(wire::CallStatus::Error) => CallStatus::Error,
        Ok(wire::CallStatus::Timeout) => CallStatus::Timeout,
        Err(_) => {
            return Err(fail(
                "status",
                format!("status {} is not a known value", s.status),
            ));
        }
    };
    let latency_ms = non_negative("latency_ms", s.latency_ms)?;
    let ttft_ms = s.ttft_ms.map(|t| non_negative("ttft_ms", t)).transpose()?;
    if let Some(t) = ttft_ms
        && t > latency_ms
    {
        return Err(fail(
            "ttft_ms",
            format!("ttft_ms ({t}) is greater than latency_ms ({latency_ms})"),
        ));
    }
    if let Some(h) = s.http_status
        && !(100..=599).contains(&h)
    {
        return Err(fail(
            "http_status",
            format!("http_status {h} is not between 100 and 599"),
        ));
    }
    // a failure's text is kept, made safe to show and log on one line
    let error: String = text("error", s.error, MAX_ERROR, false)?
        .chars()
        .map(|c| {
            if c.is_control() || llmscope_model::series::is_invisible(c) {
                ' '
            } else {
                c
            }
        })
        .collect();
    if s.labels.len() > MAX_LABELS {
        return Err(fail(
            "labels",
            format!("{} labels; at most {MAX_LABELS} allowed", s.labels.len()),
        ));
    }
    let mut labels = BTreeMap::new();
    for entry in s.labels {
        let key = String::from_utf8(entry.key)
            .map_err(|_| fail("labels", "a label key is not valid UTF-8"))?;
        let field = format!("labels.{key}");
        if key.is_empty() {
            return Err(fail("labels", "a label key is empty"));
        }
        if key
            .chars()
            .any(|c| c.is_control() || llmscope_model::series::is_invisible(c))
        {
            return Err(fail(
                "labels",
                "a label key contains control or invisible characters",
            ));
        }
        if key.len() > MAX_LABEL_KEY {
            return Err(fail(
                &field,
                format!(
                    "label key is {} bytes; at most {MAX_LABEL_KEY} allowed",
                    key.len()
                ),
            ));
        }
        let value = String::from_utf8(entry.value)
            .map_err(|_| fail(&field, format!("label `{key}` value is not valid UTF-8")))?;
        if value
            .chars()
            .any(|c| c.is_control() || llmscope_model::series::is_invisible(c))
        {
            return Err(fail(
                &field,
                format!("label `{key}` value contains control or invisible characters"),
            ));
        }
        if value.len() > MAX_LABEL_VALUE {
            return Err(fail(
                &field,
                format!(
                    "label `{key}` value is {} bytes; at most {MAX_LABEL_VALUE} allowed",
                    value.len()
                ),
            ));
        }
        labels.insert(key, value);
    }
    Ok(Sample {
        id,
        ts_us,
        site,
        host,
        provider,
        model,
        source,
        latency_ms,
        ttft_ms,
        tokens_in: s.tokens_in.map(i64::from),
        tokens_out: s.tokens_out.map(i64::from),
        status,
        http_status: s.http_status.map(|h| h as i32),
        error: (!error.is_empty()).then_some(error),
        labels,
    })
}

fn pct(field: &str, x: f64) -> Result<f64, Fail> {
    if !x.is_finite() || !(0.0..=100.0).contains(&x) {
        return Err(fail(
            field,
            format!("{field} is {x}; it must be between 0 and 100"),
        ));
    }
    Ok(x)
}

fn bytes_i64(field: &str, x: u64) -> Result<i64, Fail> {
    i64::try_from(x).map_err(|_| fail(field, format!("{field} is too large ({x})")))
}

fn telemetry(t: wire::Telemetry, who: &Principal, b: &Bounds) -> Result<Telemetry, Fail> {
    let site = site("site", t.site, who)?;
    let host = name("host", t.host, MAX_NAME, true)?;
    let ts_us = timestamp("ts_unix_nanos", t.ts_unix_nanos, b)?;
    let cpu_pct = pct("cpu_pct", t.cpu_pct)?;
    let load1 = non_negative("load1", t.load1)?;
    if t.gpus.len() > MAX_GPUS {
        return Err(fail(
            "gpus",
            format!("{} GPUs; at most {MAX_GPUS} allowed", t.gpus.len()),
        ));
    }
    let mut gpus = Vec::with_capacity(t.gpus.len());
    let mut seen = std::collections::HashSet::new();
    for (i, g) in t.gpus.into_iter().enumerate() {
        let f = |name: &str| format!("gpus[{i}].{name}");
        if !seen.insert((g.index, g.mig_index)) {
            let what = match g.mig_index {
                Some(m) => format!("MIG instance {m} of GPU {}", g.index),
                None => format!("GPU index {}", g.index),
            };
            return Err(fail(&f("index"), format!("{what} appears twice")));
        }
        if g.xid_errors.len() > MAX_XIDS {
            return Err(fail(
                &f("xid_errors"),
                format!(
                    "{} XID errors; at most {MAX_XIDS} allowed",
                    g.xid_errors.len()
                ),
            ));
        }
        let small = |name: &str, x: u32| {
            i32::try_from(x).map_err(|_| fail(&f(name), format!("{} is too large ({x})", f(name))))
        };
        // absent stays absent; a present reading is checked like any other
        let bytes = |name: &str, x: Option<u64>| x.map(|x| bytes_i64(&f(name), x)).transpose();
        let nonneg = |name: &str, x: Option<f64>| x.map(|x| non_negative(&f(name), x)).transpose();
        gpus.push(Gpu {
            index: small("index", g.index)?,
            mig_index: g.mig_index.map(|m| small("mig_index", m)).transpose()?,
            uuid: text(&f("uuid"), g.uuid, MAX_NAME, false)?,
            name: text(&f("name"), g.name, MAX_NAME, false)?,
            util_pct: g.util_pct.map(|x| pct(&f("util_pct"), x)).transpose()?,
            mem_used_bytes: bytes("mem_used_bytes", g.mem_used_bytes)?,
            mem_total_bytes: bytes("mem_total_bytes", g.mem_total_bytes)?,
            temp_c: nonneg("temp_c", g.temp_c)?,
            power_w: nonneg("power_w", g.power_w)?,
            sm_clock_mhz: g
                .sm_clock_mhz
                .map(|x| small("sm_clock_mhz", x))
                .transpose()?,
            throttle_reasons: g.throttle_reasons.map(|x| x as i64),
            ecc_corrected_volatile: bytes("ecc_corrected_volatile", g.ecc_corrected_volatile)?,
            ecc_uncorrected_volatile: bytes(
                "ecc_uncorrected_volatile",
                g.ecc_uncorrected_volatile,
            )?,
            xid_errors: g
                .xid_errors
                .iter()
                .map(|&x| small("xid_errors", x))
                .collect::<Result<_, _>>()?,
        });
    }
    let server_metrics = server_metrics(t.server_metrics)?;
    Ok(Telemetry {
        ts_us,
        site,
        host,
        cpu_pct,
        mem_used_bytes: bytes_i64("mem_used_bytes", t.mem_used_bytes)?,
        mem_total_bytes: bytes_i64("mem_total_bytes", t.mem_total_bytes)?,
        load1,
        gpus,
        server_metrics,
    })
}

fn server_metrics(list: Vec<wire::ServerMetric>) -> Result<Vec<ServerMetric>, Fail> {
    if list.len() > MAX_SERVER_METRICS {
        return Err(fail(
            "server_metrics",
            format!(
                "{} model-server metrics; at most {MAX_SERVER_METRICS} allowed",
                list.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(list.len());
    let mut seen = std::collections::HashSet::new();
    for (i, m) in list.into_iter().enumerate() {
        let f = |name: &str| format!("server_metrics[{i}].{name}");
        let target = name(&f("target"), m.target, MAX_NAME, true)?;
        let model = text(&f("model"), m.model, MAX_NAME, false)?;
        let metric = text(&f("metric"), m.metric, MAX_METRIC_NAME, true)?;
        if !metric
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(fail(
                &f("metric"),
                format!("metric `{metric}` may only hold a-z, 0-9 and _"),
            ));
        }
        let value = non_negative(&f("value"), m.value)?;
        if !seen.insert((target.clone(), model.clone(), metric.clone())) {
            return Err(fail(
                &f("metric"),
                format!("`{metric}` of target `{target}`, model `{model}` appears twice"),
            ));
        }
        out.push(ServerMetric {
            target,
            model,
            metric,
            value,
        });
    }
    Ok(out)
}

/// Validates every item of a request.
pub fn validate(req: wire::IngestRequest, who: &Principal, b: &Bounds) -> Validated {
    let mut out = Validated {
        samples: Vec::with_capacity(req.samples.len()),
        telemetry: Vec::with_capacity(req.telemetry.len()),
        rejected: Vec::new(),
        rejected_gpus: 0,
    };
    for (i, s) in req.samples.into_iter().enumerate() {
        match sample(s, who, b) {
            Ok(row) => out.samples.push(row),
            Err((field, reason)) => out.rejected.push(Rejection {
                kind: ItemKind::Sample as i32,
                index: i as u32,
                field,
                reason,
            }),
        }
    }
    for (i, t) in req.telemetry.into_iter().enumerate() {
        let gpus = t.gpus.len();
        match telemetry(t, who, b) {
            Ok(row) => out.telemetry.push(row),
            Err((field, reason)) => {
                out.rejected_gpus += gpus;
                out.rejected.push(Rejection {
                    kind: ItemKind::Telemetry as i32,
                    index: i as u32,
                    field,
                    reason,
                })
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::LabelEntry;

    const NOW: i64 = 1_800_000_000_000_000;

    fn bounds() -> Bounds {
        Bounds {
            now_us: NOW,
            max_future_us: 300_000_000,
            retention_us: 30 * 86_400_000_000,
        }
    }

    fn who() -> Principal {
        Principal {
            site: Some("eu".into()),
            token_id: Some("abcd".into()),
        }
    }

    fn good() -> wire::Sample {
        wire::Sample {
            id: b"0190f0f0-0000-7000-8000-000000000001".to_vec(),
            ts_unix_nanos: NOW * 1000,
            site: vec![],
            host: b"gpu-1".to_vec(),
            provider: b"ollama".to_vec(),
            model: b"llama3.1:8b".to_vec(),
            source: 1,
            latency_ms: 800.0,
            ttft_ms: Some(100.0),
            tokens_in: Some(10),
            tokens_out: Some(20),
            status: 1,
            http_status: Some(200),
            error: vec![],
            labels: vec![LabelEntry {
                key: b"replica".to_vec(),
                value: b"b".to_vec(),
            }],
        }
    }

    fn reason(mutate: impl FnOnce(&mut wire::Sample)) -> (String, String) {
        let mut s = good();
        mutate(&mut s);
        let req = wire::IngestRequest {
            batch_seq: 1,
            samples: vec![good(), s],
            telemetry: vec![],
        };
        let v = validate(req, &who(), &bounds());
        assert_eq!(v.samples.len(), 1, "the good item is kept");
        assert_eq!(v.rejected.len(), 1);
        assert_eq!(v.rejected[0].index, 1);
        (v.rejected[0].field.clone(), v.rejected[0].reason.clone())
    }

    #[test]
    fn a_good_sample_takes_the_token_site() {
        let v = validate(
            wire::IngestRequest {
                batch_seq: 1,
                samples: vec![good()],
                telemetry: vec![],
            },
            &who(),
            &bounds(),
        );
        assert!(v.rejected.is_empty());
        assert_eq!(v.samples[0].site, "eu");
        assert_eq!(v.samples[0].ts_us, NOW);
        assert_eq!(v.samples[0].labels["replica"], "b");
    }

    #[test]
    fn every_rule_names_its_field() {
        type Mutation = Box<dyn FnOnce(&mut wire::Sample)>;
        let cases: Vec<(Mutation, &str, &str)> = vec![
            (Box::new(|s| s.id.clear()), "id", "id is missing"),
            (
                Box::new(|s| s.id = b"not-a-uuid".to_vec()),
                "id",
                "is not a UUID",
            ),
            (Box::new(|s| s.latency_ms = f64::NAN), "latency_ms", "NaN"),
            (
                Box::new(|s| s.latency_ms = f64::INFINITY),
                "latency_ms",
                "infinite",
            ),
            (
                Box::new(|s| s.latency_ms = -1.0),
                "latency_ms",
                "must be >= 0",
            ),
            (
                Box::new(|s| s.ttft_ms = Some(900.0)),
                "ttft_ms",
                "greater than latency_ms",
            ),
            (
                Box::new(|s| s.ts_unix_nanos = (NOW + 400_000_000) * 1000),
                "ts_unix_nanos",
                "in the future",
            ),
            (
                Box::new(|s| s.ts_unix_nanos = (NOW - 31 * 86_400_000_000) * 1000),
                "ts_unix_nanos",
                "older than the retention",
            ),
            (
                Box::new(|s| s.ts_unix_nanos = 0),
                "ts_unix_nanos",
                "missing",
            ),
            (Box::new(|s| s.model.clear()), "model", "model is empty"),
            (Box::new(|s| s.host.clear()), "host", "host is empty"),
            (
                Box::new(|s| s.model = vec![0xff, 0xfe]),
                "model",
                "not valid UTF-8",
            ),
            (
                Box::new(|s| s.site = b"us".to_vec()),
                "site",
                "may not be written with this token",
            ),
            (
                Box::new(|s| {
                    s.labels = (0..17)
                        .map(|i| LabelEntry {
                            key: format!("k{i}").into_bytes(),
                            value: vec![],
                        })
                        .collect()
                }),
                "labels",
                "17 labels; at most 16",
            ),
            (
                Box::new(|s| {
                    s.labels = vec![LabelEntry {
                        key: vec![b'k'; 65],
                        value: vec![],
                    }]
                }),
                "labels.",
                "at most 64",
            ),
            (
                Box::new(|s| {
                    s.labels = vec![LabelEntry {
                        key: b"k".to_vec(),
                        value: vec![b'v'; 257],
                    }]
                }),
                "labels.k",
                "at most 256",
            ),
            (
                Box::new(|s| {
                    s.labels = vec![LabelEntry {
                        key: b"k".to_vec(),
                        value: vec![0xc3],
                    }]
                }),
                "labels.k",
                "not valid UTF-8",
            ),
            (
                Box::new(|s| s.http_status = Some(42)),
                "http_status",
                "between 100 and 599",
            ),
            (Box::new(|s| s.status = 9), "status", "not a known value"),
            (
                Box::new(|s| s.host = b"hc|p1".to_vec()),
                "host",
                "host must not contain `|`",
            ),
            (
                Box::new(|s| s.provider = b"p1|p2".to_vec()),
                "provider",
                "must not contain `|`",
            ),
            (
                Box::new(|s| s.model = b"m\nx".to_vec()),
                "model",
                "must not contain control characters",
            ),
            (
                Box::new(|s| s.site = b"eu|x".to_vec()),
                "site",
                "must not contain `|`",
            ),
        ];
        for (m, field, text) in cases {
            let (f, r) = reason(m);
            assert!(f.starts_with(field), "field {f} for {text}");
            assert!(r.contains(text), "reason `{r}` should contain `{text}`");
        }
    }

    #[test]
    fn telemetry_is_validated_too() {
        let t = wire::Telemetry {
            ts_unix_nanos: NOW * 1000,
            site: vec![],
            host: b"gpu-1".to_vec(),
            cpu_pct: 150.0,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 0.1,
            gpus: vec![],
            server_metrics: vec![],
        };
        let ok = wire::Telemetry {
            cpu_pct: 50.0,
            ..t.clone()
        };
        let v = validate(
            wire::IngestRequest {
                batch_seq: 1,
                samples: vec![],
                telemetry: vec![t, ok],
            },
            &who(),
            &bounds(),
        );
        assert_eq!(v.telemetry.len(), 1);
        assert_eq!(v.rejected[0].kind, ItemKind::Telemetry as i32);
        assert_eq!(v.rejected[0].field, "cpu_pct");
    }

    #[test]
    fn gpu_fields_are_optional_mig_instances_keyed_apart_and_server_metrics_checked() {
        let base = wire::Telemetry {
            ts_unix_nanos: NOW * 1000,
            site: vec![],
            host: b"gpu-1".to_vec(),
            cpu_pct: 10.0,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 0.1,
            gpus: vec![
                wire::GpuStats {
                    index: 0,
                    util_pct: Some(50.0),
                    xid_errors: vec![79],
                    ..Default::default()
                },
                // a MIG instance of GPU 0: same index, its own mig_index, no utilisation
                wire::GpuStats {
                    index: 0,
                    mig_index: Some(2),
                    mem_used_bytes: Some(5),
                    ..Default::default()
                },
            ],
            server_metrics: vec![wire::ServerMetric {
                target: b"vllm".to_vec(),
                model: b"qwen".to_vec(),
                metric: b"requests_waiting".to_vec(),
                value: 7.0,
            }],
        };
        let metric = |name: &[u8], value: f64| wire::ServerMetric {
            target: b"vllm".to_vec(),
            model: vec![],
            metric: name.to_vec(),
            value,
        };
        let bad_name = wire::Telemetry {
            server_metrics: vec![metric(b"Queue-Depth", 1.0)],
            ..base.clone()
        };
        let negative = wire::Telemetry {
            server_metrics: vec![metric(b"requests_waiting", -1.0)],
            ..base.clone()
        };
        let twice = wire::Telemetry {
            gpus: vec![base.gpus[1].clone(), base.gpus[1].clone()],
            ..base.clone()
        };
        let v = validate(
            wire::IngestRequest {
                batch_seq: 1,
                samples: vec![],
                telemetry: vec![base, bad_name, negative, twice],
            },
            &who(),
            &bounds(),
        );
        assert_eq!(v.telemetry.len(), 1);
        let t = &v.telemetry[0];
        assert_eq!((t.gpus[0].util_pct, t.gpus[0].temp_c), (Some(50.0), None));
        assert_eq!(t.gpus[0].xid_errors, vec![79]);
        assert_eq!((t.gpus[1].index, t.gpus[1].mig_index), (0, Some(2)));
        assert_eq!(t.server_metrics[0].metric, "requests_waiting");
        let reasons: Vec<(&str, &str)> = v
            .rejected
            .iter()
            .map(|r| (r.field.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(reasons[0].0, "server_metrics[0].metric");
        assert!(reasons[0].1.contains("a-z, 0-9 and _"), "{reasons:?}");
        assert_eq!(reasons[1].0, "server_metrics[0].value");
        assert_eq!(reasons[2].0, "gpus[1].index");
        assert!(
            reasons[2]
                .1
                .contains("MIG instance 2 of GPU 0 appears twice"),
            "{reasons:?}"
        );
    }

    #[test]
    fn the_metrics_tally_counts_gpus_and_reasons() {
        let gpu = |index| wire::GpuStats {
            index,
            util_pct: Some(50.0),
            ..Default::default()
        };
        let t = wire::Telemetry {
            ts_unix_nanos: NOW * 1000,
            site: vec![],
            host: b"gpu-1".to_vec(),
            cpu_pct: 10.0,
            mem_used_bytes: 1,
            mem_total_bytes: 2,
            load1: 0.1,
            gpus: vec![gpu(0), gpu(1)],
            server_metrics: vec![],
        };
        let twice = wire::Telemetry {
            gpus: vec![gpu(0), gpu(0), gpu(2)],
            ..t.clone()
        };
        let mut bad = good();
        bad.labels = vec![LabelEntry {
            key: b"team".to_vec(),
            value: vec![0xc3],
        }];
        let v = validate(
            wire::IngestRequest {
                batch_seq: 1,
                samples: vec![good(), bad],
                telemetry: vec![t, twice],
            },
            &who(),
            &bounds(),
        );
        let tally = v.tally();
        assert_eq!((tally.samples, tally.telemetry), (1, 1));
        assert_eq!((tally.gpus, tally.rejected_gpus), (2, 3));
        assert_eq!(
            tally.rejected,
            vec![
                ("sample", "labels".to_owned()),
                ("telemetry", "gpus.index".to_owned())
            ]
        );
    }

    #[test]
    fn insecure_mode_needs_a_site() {
        let anyone = Principal {
            site: None,
            token_id: None,
        };
        let v = validate(
            wire::IngestRequest {
                batch_seq: 1,
                samples: vec![good()],
                telemetry: vec![],
            },
            &anyone,
            &bounds(),
        );
        assert!(v.rejected[0].reason.contains("site is empty"));
    }
}

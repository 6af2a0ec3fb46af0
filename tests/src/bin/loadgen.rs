//! `llmscope-loadgen`: ingest load generator for benchmarks.
//!
//! Opens C gRPC streams to a collector and pushes N samples in batches, either as fast as the
//! collector acks or at a fixed total rate; reports samples/s and ack latency (p50/p99, from a
//! batch's send to its ack) as one JSON line. `--emit-csv FILE` instead writes the same kind of
//! rows as CSV for `psql \copy`, so the database's own COPY rate can be measured on identical
//! data. `--otlp` sends the same samples as OpenTelemetry GenAI spans over OTLP/gRPC
//! (`TraceService/Export`, one export at a time per stream, as an SDK's batch processor does)
//! to compare the OTLP receiver with the native ingest on identical data.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use llmscope_proto::v1::{self, IngestRequest, ingest_service_client::IngestServiceClient};
use tonic::Request;

struct Args {
    target: String,
    token: String,
    samples: usize,
    batch: usize,
    streams: usize,
    rate: Option<f64>,
    emit_csv: Option<String>,
    hosts: usize,
    otlp: bool,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        target: "127.0.0.1:7070".into(),
        token: String::new(),
        samples: 200_000,
        batch: 1_000,
        streams: 4,
        rate: None,
        emit_csv: None,
        hosts: 50,
        otlp: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |v: String| {
            v.parse::<f64>()
                .map_err(|_| format!("{flag}: `{v}` is not a number"))
        };
        match flag.as_str() {
            "--target" => a.target = val()?,
            "--token" => a.token = val()?,
            "--samples" => a.samples = num(val()?)? as usize,
            "--batch" => a.batch = num(val()?)?.max(1.0) as usize,
            "--streams" => a.streams = num(val()?)?.max(1.0) as usize,
            "--rate" => a.rate = Some(num(val()?)?),
            "--hosts" => a.hosts = num(val()?)?.max(1.0) as usize,
            "--emit-csv" => a.emit_csv = Some(val()?),
            "--otlp" => a.otlp = true,
            "-h" | "--help" => {
                println!(
                    "llmscope-loadgen --target HOST:PORT --token T [--samples N] [--batch B] [--streams C] [--rate SAMPLES_PER_S] [--hosts H] [--emit-csv FILE] [--otlp]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// In-control noise: a log-normal latency around 600 ms from a per-sample hash, so the live
/// SPC engine sees realistic data (rarely out of control), not a pattern that fires rules.
fn latency(i: usize) -> f64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ((x >> 11) as f64 / (1u64 << 53) as f64).max(1e-12)
    };
    let (u1, u2) = (next(), next());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    600.0 * (0.08 * z).exp()
}

fn sample(i: usize, hosts: usize) -> v1::Sample {
    let lat = latency(i);
    v1::Sample {
        id: uuid::Uuid::now_v7().to_string(),
        ts_unix_nanos: now_ns(),
        site: "bench".into(),
        host: format!("gpu-{}", i % hosts),
        provider: "openai_compatible".into(),
        model: "llama3.1:8b".into(),
        source: v1::Source::Probe as i32,
        latency_ms: lat,
        ttft_ms: Some(lat / 8.0),
        tokens_in: Some(24),
        tokens_out: Some(128),
        status: v1::CallStatus::Ok as i32,
        http_status: Some(200),
        error: String::new(),
        labels: [("bench".to_string(), "1".to_string())]
            .into_iter()
            .collect(),
    }
}

fn emit_csv(path: &str, n: usize, hosts: usize) -> std::io::Result<()> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        let s = sample(i, hosts);
        let ts = s.ts_unix_nanos / 1_000;
        let secs = ts / 1_000_000;
        let us = ts % 1_000_000;
        // id,ts,site,host,provider,model,source,latency_ms,ttft_ms,tokens_in,tokens_out,status,http_status,error,labels
        writeln!(
            f,
            "{},{}.{:06}+00,{},{},{},{},probe,{},{},24,128,ok,200,,\"{{\"\"bench\"\": \"\"1\"\"}}\"",
            s.id,
            chrono_like(secs),
            us,
            s.site,
            s.host,
            s.provider,
            s.model,
            s.latency_ms,
            s.ttft_ms.unwrap_or(0.0)
        )?;
    }
    f.flush()
}

/// `YYYY-MM-DD HH:MM:SS` for Unix seconds (UTC), without a date library.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // civil from days (Howard Hinnant)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

async fn run_stream(
    args: &Args,
    batches: Vec<IngestRequest>,
    per_stream_rate: Option<f64>,
) -> Result<Vec<Duration>, String> {
    let mut client = IngestServiceClient::connect(format!("http://{}", args.target))
        .await
        .map_err(|e| format!("connect {}: {e}", args.target))?
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let (tx, rx) = tokio::sync::mpsc::channel::<IngestRequest>(8);
    let sent: std::sync::Arc<std::sync::Mutex<HashMap<u64, Instant>>> = Default::default();
    let sent2 = sent.clone();
    let batch = args.batch as f64;
    let producer = tokio::spawn(async move {
        let start = Instant::now();
        for (k, b) in batches.into_iter().enumerate() {
            if let Some(r) = per_stream_rate {
                let due = start + Duration::from_secs_f64(k as f64 * batch / r);
                tokio::time::sleep_until(due.into()).await;
            }
            if let Ok(mut m) = sent2.lock() {
                m.insert(b.batch_seq, Instant::now());
            }
            if tx.send(b).await.is_err() {
                break;
            }
        }
    });
    let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    req.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", args.token)
            .parse()
            .map_err(|_| "bad token".to_string())?,
    );
    let mut acks = client
        .stream(req)
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    let mut lat = Vec::new();
    while let Some(ack) = acks.message().await.map_err(|e| e.to_string())? {
        if !ack.rejected.is_empty() {
            return Err(format!("rejected: {:?}", ack.rejected[0]));
        }
        if let Some(t) = sent.lock().ok().and_then(|mut m| m.remove(&ack.batch_seq)) {
            lat.push(t.elapsed());
        }
    }
    let _ = producer.await;
    Ok(lat)
}

/// One sample as the GenAI span an instrumented application would send.
fn span_of(s: &v1::Sample) -> opentelemetry_proto::tonic::trace::v1::Span {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    let kv = |k: &str, v: Value| KeyValue {
        key: k.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    };
    let end = s.ts_unix_nanos as u64;
    let start = end - (s.latency_ms * 1e6) as u64;
    // ids from the sample's UUID: unique per sample, as real trace and span ids are
    let id = uuid::Uuid::parse_str(&s.id).unwrap_or_else(|_| uuid::Uuid::now_v7());
    opentelemetry_proto::tonic::trace::v1::Span {
        trace_id: id.as_bytes().to_vec(),
        span_id: id.as_bytes()[8..].to_vec(),
        name: format!("chat {}", s.model),
        kind: 3,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: vec![
            kv("gen_ai.operation.name", Value::StringValue("chat".into())),
            kv(
                "gen_ai.provider.name",
                Value::StringValue(s.provider.clone()),
            ),
            kv("gen_ai.request.model", Value::StringValue(s.model.clone())),
            kv("server.address", Value::StringValue(s.host.clone())),
            kv(
                "gen_ai.response.time_to_first_chunk",
                Value::DoubleValue(s.ttft_ms.unwrap_or(0.0) / 1e3),
            ),
            kv(
                "gen_ai.usage.input_tokens",
                Value::IntValue(i64::from(s.tokens_in.unwrap_or(0))),
            ),
            kv(
                "gen_ai.usage.output_tokens",
                Value::IntValue(i64::from(s.tokens_out.unwrap_or(0))),
            ),
        ],
        ..Default::default()
    }
}

/// The batches as OTLP exports, one at a time (what an SDK's batch span processor does).
async fn run_otlp(args: &Args, batches: Vec<IngestRequest>) -> Result<Vec<Duration>, String> {
    use opentelemetry_proto::tonic::collector::trace::v1::{
        ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
    };
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};
    let mut client = TraceServiceClient::connect(format!("http://{}", args.target))
        .await
        .map_err(|e| format!("connect {}: {e}", args.target))?
        .max_encoding_message_size(64 << 20);
    let mut lat = Vec::new();
    for b in batches {
        let spans = b.samples.iter().map(span_of).collect();
        let export = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: None,
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                schema_url: String::new(),
            }],
        };
        let mut req = Request::new(export);
        req.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", args.token)
                .parse()
                .map_err(|_| "bad token".to_string())?,
        );
        let t = Instant::now();
        let r = client
            .export(req)
            .await
            .map_err(|e| e.to_string())?
            .into_inner();
        if let Some(p) = r.partial_success
            && p.rejected_spans > 0
        {
            return Err(format!("rejected: {}", p.error_message));
        }
        lat.push(t.elapsed());
    }
    Ok(lat)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Some(path) = &args.emit_csv {
        if let Err(e) = emit_csv(path, args.samples, args.hosts) {
            eprintln!("error: {path}: {e}");
            std::process::exit(1);
        }
        return;
    }
    // build every batch before the clock starts
    let per_stream = args.samples / args.streams;
    let mut all: Vec<Vec<IngestRequest>> = Vec::new();
    let mut i = 0;
    for _ in 0..args.streams {
        let mut v = Vec::new();
        let mut seq = 1;
        let mut left = per_stream;
        while left > 0 {
            let n = left.min(args.batch);
            v.push(IngestRequest {
                batch_seq: seq,
                samples: (0..n).map(|k| sample(i + k, args.hosts)).collect(),
                telemetry: vec![],
            });
            i += n;
            left -= n;
            seq += 1;
        }
        all.push(v);
    }
    let total: usize = all.iter().flatten().map(|b| b.samples.len()).sum();
    let per_stream_rate = args.rate.map(|r| r / args.streams as f64);
    let start = Instant::now();
    let args = std::sync::Arc::new(args);
    let mut tasks = Vec::new();
    for batches in all {
        let a = args.clone();
        tasks.push(tokio::spawn(async move {
            if a.otlp {
                run_otlp(&a, batches).await
            } else {
                run_stream(&a, batches, per_stream_rate).await
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => lat.extend(l),
            Ok(Err(e)) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
            Err(e) => {
                eprintln!("error: {e}");
                std::process::exit(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "{{\"samples\":{total},\"seconds\":{secs:.3},\"samples_per_s\":{:.0},\"streams\":{},\"batch\":{},\"target_rate\":{},\"ack_p50_ms\":{:.2},\"ack_p99_ms\":{:.2},\"ack_max_ms\":{:.2}}}",
        total as f64 / secs,
        args.streams,
        args.batch,
        args.rate.map(|r| format!("{r}")).unwrap_or("null".into()),
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
}

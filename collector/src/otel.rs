//! Logging and OpenTelemetry tracing.
//!
//! Logs go to stderr (filter: `LLMSCOPE_LOG`, else `RUST_LOG`). Traces are exported over
//! OTLP/gRPC when the standard OpenTelemetry environment asks for it, and are off otherwise:
//!
//! - on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set, or
//!   `OTEL_TRACES_EXPORTER=otlp`; `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true`
//!   turn it off whatever else is set;
//! - the SDK reads the rest: `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` (the service
//!   name defaults to the binary's), `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`,
//!   `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`,
//!   `OTEL_BSP_EXPORT_TIMEOUT`, `OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`, `…_TIMEOUT`,
//!   `…_COMPRESSION`, `…_INSECURE`. Only the `grpc` protocol is built in.
//!
//! Exported spans come from this crate at INFO and above, whatever the log filter:
//! `ingest_batch` (one per ingest request, until its rows are committed), `ingest_commit`
//! (one group commit), `rule_evaluation` (the engine on one commit) and `alert_delivery`
//! (one digest sent to one channel).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{Key, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// The default log filter.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,h2=warn,tower=warn,opentelemetry=warn,opentelemetry_sdk=warn,opentelemetry_otlp=warn";

/// Why tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (a bad endpoint, for example).
    #[error("otlp trace exporter: {0}")]
    Exporter(String),
}

/// Whether the environment (`get` reads one variable) asks for OTLP trace export; the
/// second value is a warning to log about a setting that is not supported.
pub fn otlp_requested(get: impl Fn(&str) -> Option<String>) -> (bool, Option<String>) {
    let set = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return (false, None);
    }
    let mut warning = None;
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(var)
            && p != "grpc"
        {
            warning = Some(format!(
                "{var}={p} is not supported; traces are sent over otlp/grpc"
            ));
            break;
        }
    }
    if let Some(exporters) = set("OTEL_TRACES_EXPORTER") {
        let list: Vec<&str> = exporters.split(',').map(str::trim).collect();
        if list.contains(&"none") {
            return (false, None);
        }
        if list.contains(&"otlp") {
            return (true, warning);
        }
        return (
            false,
            Some(format!(
                "OTEL_TRACES_EXPORTER={exporters} is not supported (only otlp); traces are off"
            )),
        );
    }
    let on = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
        || set("OTEL_EXPORTER_OTLP_ENDPOINT").is_some();
    (on, warning.filter(|_| on))
}

/// The tracer provider, when export is on; shut it down before the runtime goes away.
#[must_use = "call shutdown() before exiting so buffered spans are sent"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter. Call it with the Tokio runtime
    /// still alive (the gRPC channel runs on it) and outside of `block_on`.
    pub fn shutdown(self) {
        if let Some(p) = self.provider
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: opentelemetry shutdown: {e}");
        }
    }
}

fn resource(default_service: &str) -> Resource {
    let r = Resource::builder().build();
    let named = r
        .get(&Key::new("service.name"))
        .is_some_and(|v| !v.as_str().starts_with("unknown_service"));
    let b = if named {
        Resource::builder()
    } else {
        Resource::builder().with_service_name(default_service.to_owned())
    };
    b.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Builds the OTLP/gRPC tracer provider. Must run inside a Tokio runtime (the gRPC channel
/// is created there and connects lazily).
pub fn tracer_provider(default_service: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(default_service))
        .build())
}

/// Installs the global subscriber: logs to stderr filtered by `LLMSCOPE_LOG` (else
/// `RUST_LOG`, else [`DEFAULT_LOG_FILTER`]) and, when `traces` is true and the `OTEL_*`
/// environment asks for it, span export over OTLP. Call inside a Tokio runtime context
/// (`Runtime::enter`).
pub fn init(service: &str, traces: bool) -> Telemetry {
    let filter = EnvFilter::try_from_env("LLMSCOPE_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(filter);
    let (wanted, warning) = if traces {
        otlp_requested(|k| std::env::var(k).ok())
    } else {
        (false, None)
    };
    let (provider, error) = match wanted.then(|| tracer_provider(service)) {
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
        None => (None, None),
    };
    // spans of LLMscope's crates only: never the exporter's own gRPC calls
    let targets = SPAN_TARGETS
        .iter()
        .fold(Targets::new(), |t, name| t.with_target(*name, Level::INFO));
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(service.to_owned()))
            .with_filter(targets)
    });
    tracing_subscriber::registry().with(logs).with(spans).init();
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    if let Some(e) = error {
        tracing::warn!(error = %e, "opentelemetry tracing is off");
    } else if provider.is_some() {
        tracing::info!("exporting traces over otlp/grpc");
    }
    Telemetry { provider }
}

/// The tracing targets whose spans are exported: this crate (`ingest_batch`,
/// `ingest_commit`), the live engine (`rule_evaluation`), the alert dispatcher
/// (`alert_delivery`) and the store.
pub const SPAN_TARGETS: &[&str] = &[
    "llmscope_collector",
    "llmscope_live",
    "llmscope_alert",
    "llmscope_store",
];

/// The crate's tracing target root (`llmscope_collector`).
#[cfg(test)]
fn module_root() -> &'static str {
    let path = module_path!();
    path.split("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(vars: &[(&str, &str)]) -> (bool, Option<String>) {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        otlp_requested(|k| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
    }

    #[test]
    fn off_by_default_and_on_with_an_endpoint() {
        assert_eq!(req(&[]), (false, None));
        assert!(req(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317")]).0);
        assert!(req(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4317")]).0);
        assert!(req(&[("OTEL_TRACES_EXPORTER", "otlp")]).0);
        assert!(!req(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")]).0);
    }

    #[test]
    fn disabled_and_none_win() {
        assert!(
            !req(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
                ("OTEL_SDK_DISABLED", "TRUE")
            ])
            .0
        );
        assert!(
            !req(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4317"),
                ("OTEL_TRACES_EXPORTER", "none")
            ])
            .0
        );
    }

    #[test]
    fn unsupported_settings_are_reported() {
        let (on, w) = req(&[("OTEL_TRACES_EXPORTER", "zipkin")]);
        assert!(!on);
        assert!(w.unwrap().contains("zipkin"));
        let (on, w) = req(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ]);
        assert!(on);
        assert!(w.unwrap().contains("http/protobuf"));
    }

    #[test]
    fn the_target_root_is_the_crate() {
        assert_eq!(module_root(), "llmscope_collector");
        assert!(SPAN_TARGETS.contains(&module_root()));
    }
}

//! `llmscope-collector serve`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use llmscope_collector::config::Overrides;
use llmscope_collector::{metrics, serve};

use super::{ConfigArgs, load_config};

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub cfg: ConfigArgs,
    /// gRPC ingest listen address [default: 0.0.0.0:7070].
    #[arg(long)]
    pub grpc_listen: Option<SocketAddr>,
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long)]
    pub http_listen: Option<SocketAddr>,
    /// OTLP/gRPC receiver address, or `off` [default: 0.0.0.0:4317].
    #[arg(long)]
    pub otlp_grpc_listen: Option<String>,
    /// OTLP/HTTP receiver address, or `off` [default: 0.0.0.0:4318].
    #[arg(long)]
    pub otlp_http_listen: Option<String>,
    /// Accept ingest without tokens (any site). For local experiments only.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Server certificate chain (PEM); with --tls-key turns TLS on for gRPC and HTTP.
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that client certificates must chain to (mutual TLS).
    #[arg(long)]
    pub tls_client_ca: Option<PathBuf>,
    /// NATS server(s) for cluster mode, e.g. nats://nats:4222 (`cluster.nats_url`; also
    /// LLMSCOPE_NATS_URL). Required to run more than one replica.
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Prefix of every NATS stream, subject and bucket name [default: llmscope]
    /// (`cluster.nats_prefix`; also LLMSCOPE_NATS_PREFIX).
    #[arg(long)]
    pub nats_prefix: Option<String>,
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Runs the collector until SIGTERM or Ctrl-C, then stops in order.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(
        &args.cfg,
        Overrides {
            grpc_listen: args.grpc_listen,
            http_listen: args.http_listen,
            otlp_grpc_listen: args.otlp_grpc_listen,
            otlp_http_listen: args.otlp_http_listen,
            database_url: None,
            insecure_no_auth: args.insecure_no_auth,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            tls_client_ca: args.tls_client_ca,
            nats_url: args.nats_url,
            nats_prefix: args.nats_prefix,
        },
    )?;
    metrics::set_series_cap(config.metrics_series_cap);
    let running = serve::start(&config).await?;
    // one machine-readable line on stdout for scripts and tests
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
    println!(
        "llmscope-collector ready grpc={} http={} otlp_grpc={} otlp_http={}",
        running.grpc_addr,
        running.http_addr,
        addr(running.otlp_grpc_addr),
        addr(running.otlp_http_addr)
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight batches");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

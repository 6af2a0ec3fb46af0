//! `llmscope-agent`: runs on each inference host; probes model servers, times real traffic
//! through a proxy, samples telemetry and ships everything to the collector.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use llmscope_agent::config::{AgentConfig, Overrides};

/// LLMscope agent: times model calls and ships them to the collector.
#[derive(Debug, Parser)]
#[command(name = "llmscope-agent", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run(Box<RunArgs>),
    /// Print what NVML reads on this host: one line per GPU and MIG instance, every field
    /// (unsupported ones left out).
    GpuInfo {
        /// One JSON document (`{"driver", "gpus": [...]}`), e.g. for scripts/check-gpu.sh.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// TOML configuration file.
    #[arg(long, env = "LLMSCOPE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Collector gRPC URL, e.g. http://collector:7070.
    #[arg(long, env = "LLMSCOPE_COLLECTOR")]
    collector: Option<String>,
    /// Ingest token (prefer --token-file).
    #[arg(long, env = "LLMSCOPE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// File holding the ingest token.
    #[arg(long, env = "LLMSCOPE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// Site of this host.
    #[arg(long, env = "LLMSCOPE_SITE")]
    site: Option<String>,
    /// Host name to report [default: NODE_NAME or the hostname].
    #[arg(long, env = "LLMSCOPE_HOST")]
    host: Option<String>,
    /// Data folder for the disk buffer.
    #[arg(long, env = "LLMSCOPE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address of /healthz and /metrics.
    #[arg(long, env = "LLMSCOPE_AGENT_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// CA bundle to verify the collector.
    #[arg(long, env = "LLMSCOPE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Addresses the automatic targets look on, comma-separated [default: 127.0.0.1].
    #[arg(long, env = "LLMSCOPE_AUTO_HOSTS")]
    auto_hosts: Option<String>,
    /// Discover model-server pods on this node through the Kubernetes API.
    #[arg(long, env = "LLMSCOPE_K8S_DISCOVER")]
    k8s_discover: Option<bool>,
    /// Label selector of the model-server pods [default: llmscope.io/model-server=true].
    #[arg(long, env = "LLMSCOPE_K8S_LABEL_SELECTOR")]
    k8s_label_selector: Option<String>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMSCOPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,h2=warn,hyper=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn gpu_info(json: bool) -> ExitCode {
    use llmscope_agent::telemetry::gpu::{GpuBackend, GpuSampler};
    match GpuSampler::init() {
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"error": format!("nvml unavailable: {e}"), "gpus": []})
                );
            } else {
                eprintln!("nvml unavailable: {e}");
                println!("gpus=0");
            }
            ExitCode::from(1)
        }
        Ok(g) => {
            let readings = g.readings();
            if json {
                println!(
                    "{}",
                    serde_json::json!({"driver": g.driver_version(), "gpus": readings})
                );
                return ExitCode::SUCCESS;
            }
            println!("driver={} gpus={}", g.driver_version(), g.count());
            for r in &readings {
                let v = serde_json::to_value(r).unwrap_or_default();
                let fields: Vec<String> = v
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(_, x)| !x.is_null())
                    .map(|(k, x)| format!("{k}={x}"))
                    .collect();
                println!("{}", fields.join(" "));
            }
            ExitCode::SUCCESS
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::GpuInfo { json }) => return gpu_info(json),
        Some(Command::Run(a)) => *a,
        None => cli.run,
    };
    init_tracing();
    let overrides = Overrides {
        collector: args.collector,
        token: args.token,
        token_file: args.token_file,
        site: args.site,
        host: args.host,
        data_dir: args.data_dir,
        http_listen: args.http_listen,
        ca_cert: args.ca_cert,
        auto_hosts: args.auto_hosts,
        k8s_discover: args.k8s_discover,
        k8s_label_selector: args.k8s_label_selector,
    };
    let cfg = match AgentConfig::load(args.config.as_deref(), &overrides) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let running = match llmscope_agent::start(cfg).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let proxies: Vec<String> = running
            .proxies
            .iter()
            .map(|(n, a)| format!("{n}={a}"))
            .collect();
        println!(
            "llmscope-agent ready http={} targets={} proxies={}",
            running.http_addr,
            running.targets.join(","),
            proxies.join(",")
        );
        wait_for_signal().await;
        tracing::info!("shutting down");
        running.stop().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
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

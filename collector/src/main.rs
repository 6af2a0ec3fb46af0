//! `llmscope-collector`: the central LLMscope service and its command-line tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use llmscope_collector::auth::generate_token;
use llmscope_collector::config::{Config, Overrides};
use llmscope_collector::store::{Role, Store, now_us};
use llmscope_collector::{analyze, serve};

/// LLMscope collector: statistical process control for LLM inference latency.
#[derive(Debug, Parser)]
#[command(name = "llmscope-collector", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the collector: gRPC ingest, storage, HTTP health endpoints.
    Serve(ServeArgs),
    /// Manage ingest and admin tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Run SPC (all eight Nelson rules) over a file of values, offline.
    Analyze(analyze::AnalyzeArgs),
}

/// Where the configuration comes from (shared by every subcommand that opens the database).
#[derive(Debug, Clone, Args)]
struct ConfigArgs {
    /// TOML configuration file.
    #[arg(long, env = "LLMSCOPE_CONFIG")]
    config: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://USER@HOST:PORT/DB
    /// [default: sqlite://./llmscope-data/llmscope.db]
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    cfg: ConfigArgs,
    /// gRPC ingest listen address [default: 0.0.0.0:7070].
    #[arg(long)]
    grpc_listen: Option<SocketAddr>,
    /// HTTP listen address [default: 0.0.0.0:8080].
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// Accept ingest without tokens (any site). For local experiments only.
    #[arg(long)]
    insecure_no_auth: bool,
    /// Server certificate chain (PEM); with --tls-key turns TLS on for gRPC and HTTP.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA bundle (PEM) that client certificates must chain to (mutual TLS).
    #[arg(long)]
    tls_client_ca: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum TokenCmd {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Site the token may write (ingest tokens).
        #[arg(long, required_unless_present = "admin", conflicts_with = "admin")]
        site: Option<String>,
        /// Create an admin token (for changing configuration through the API).
        #[arg(long)]
        admin: bool,
        /// A name to recognise the token by in `token list`.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List tokens (ids, sites, roles; never secrets).
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Revoke a token by its id (takes effect within seconds).
    Revoke {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The token id shown by `token list` (the 8 characters after `llms_`).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LLMSCOPE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,sqlx=warn,h2=warn,tower=warn")
        });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

fn load_config(cfg: &ConfigArgs, flags: Overrides) -> anyhow::Result<Config> {
    let flags = Overrides {
        database_url: cfg.database_url.clone().or(flags.database_url),
        ..flags
    };
    Ok(Config::load(
        cfg.config.as_deref(),
        std::env::vars(),
        &flags,
    )?)
}

async fn open_store(cfg: &ConfigArgs) -> anyhow::Result<Store> {
    let config = load_config(cfg, Overrides::default())?;
    Store::connect(&config.database_url, 2)
        .await
        .with_context(|| {
            format!(
                "cannot open {}",
                llmscope_collector::config::redact_url(&config.database_url)
            )
        })
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

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = load_config(
        &args.cfg,
        Overrides {
            grpc_listen: args.grpc_listen,
            http_listen: args.http_listen,
            database_url: None,
            insecure_no_auth: args.insecure_no_auth,
            tls_cert: args.tls_cert,
            tls_key: args.tls_key,
            tls_client_ca: args.tls_client_ca,
        },
    )?;
    let running = serve::start(&config).await?;
    // one machine-readable line on stdout for scripts and tests
    println!(
        "llmscope-collector ready grpc={} http={}",
        running.grpc_addr, running.http_addr
    );
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight batches");
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn run_token(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            cfg,
            site,
            admin,
            name,
        } => {
            if let Some(s) = &site
                && (s.trim().is_empty() || s.len() > 256)
            {
                anyhow::bail!("--site must be 1 to 256 bytes, got `{s}`");
            }
            let store = open_store(&cfg).await?;
            let role = if admin { Role::Admin } else { Role::Ingest };
            let (token, record) = generate_token(role, site, &name);
            store.insert_token(&record).await?;
            eprintln!(
                "created {} token {} {}; store it now, it is not shown again:",
                role.as_str(),
                record.id,
                record
                    .site
                    .as_deref()
                    .map(|s| format!("for site `{s}`"))
                    .unwrap_or_default()
            );
            println!("{token}");
        }
        TokenCmd::List { cfg, format } => {
            let store = open_store(&cfg).await?;
            let tokens = store.list_tokens().await?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string(&tokens)?),
                ListFormat::Table => {
                    println!(
                        "{:<10} {:<8} {:<20} {:<20} {:<10} NAME",
                        "ID", "ROLE", "SITE", "CREATED (UTC)", "STATUS"
                    );
                    for t in tokens {
                        println!(
                            "{:<10} {:<8} {:<20} {:<20} {:<10} {}",
                            t.id,
                            t.role.as_str(),
                            t.site.as_deref().unwrap_or("-"),
                            fmt_us(t.created_at_us),
                            if t.revoked_at_us.is_some() {
                                "revoked"
                            } else {
                                "active"
                            },
                            t.name
                        );
                    }
                }
            }
        }
        TokenCmd::Revoke { cfg, id } => {
            let store = open_store(&cfg).await?;
            if !store.revoke_token(&id, now_us()).await? {
                anyhow::bail!(
                    "no active token with id `{id}` (see `llmscope-collector token list`)"
                );
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

fn fmt_us(us: i64) -> String {
    let secs = us.div_euclid(1_000_000);
    humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64),
    )
    .to_string()
    .replace('T', " ")
    .trim_end_matches('Z')
    .to_owned()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Analyze(args) = &cli.command {
        let stdout = std::io::stdout();
        return match analyze::run(args, &mut stdout.lock(), &mut std::io::stderr()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Token(cmd) => run_token(cmd).await,
            Command::Analyze(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

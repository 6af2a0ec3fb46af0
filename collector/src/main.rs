//! `llmscope-collector`: the central LLMscope service and its command-line tools.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use llmscope_collector::auth::generate_token;
use llmscope_collector::config::{Config, Overrides};
use llmscope_collector::live::Metric;
use llmscope_collector::live::rebaseline;
use llmscope_collector::live::settings::{Scope, SettingsDoc};
use llmscope_collector::store::{Role, Store, now_us};
use llmscope_collector::{analyze, metrics, serve, telemetry};

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
    /// Show baselines, or re-baseline series from a time range.
    #[command(subcommand)]
    Baseline(BaselineCmd),
    /// Show or change rule configuration (global, per model, per site; applied live).
    #[command(subcommand)]
    Rules(RulesCmd),
    /// List and acknowledge violations.
    #[command(subcommand)]
    Violations(ViolationsCmd),
}

#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
enum BaselineCmd {
    /// List baselines (current ones; --all for the history).
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Include replaced baselines.
        #[arg(long)]
        all: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Re-baseline every series matching the filters from the samples in [--from, --to].
    Set {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Only this site.
        #[arg(long)]
        site: Option<String>,
        /// Only this host.
        #[arg(long)]
        host: Option<String>,
        /// Only this provider.
        #[arg(long)]
        provider: Option<String>,
        /// Only this model.
        #[arg(long)]
        model: Option<String>,
        /// Only this metric: latency_ms, ttft_ms, tpot_ms, tokens_per_s.
        #[arg(long)]
        metric: Option<String>,
        /// Window start: RFC 3339 (2026-11-29T14:00:00Z) or relative (-2h, -30m).
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// Window end: RFC 3339, relative, or `now`.
        #[arg(long, allow_hyphen_values = true, default_value = "now")]
        to: String,
        /// Sigma estimator.
        #[arg(long, value_enum, default_value_t = analyze::SigmaArg::Mrbar)]
        sigma_method: analyze::SigmaArg,
        /// Why (stored with the baseline).
        #[arg(long, default_value = "manual re-baseline")]
        reason: String,
        /// Who (stored with the baseline).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCmd {
    /// Print every stored rule configuration as JSON.
    Show {
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Set the configuration of one scope (replaces what that scope had).
    Set {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The global configuration.
        #[arg(long, conflicts_with_all = ["model", "site"])]
        global: bool,
        /// A model's configuration.
        #[arg(long, conflicts_with = "site")]
        model: Option<String>,
        /// A site's configuration.
        #[arg(long)]
        site: Option<String>,
        /// Rule parameter, e.g. `2.run=7`, `4.enabled=false`, `8.both_sides=true`; repeatable.
        #[arg(long = "param", value_delimiter = ',')]
        params: Vec<String>,
        /// Which baseline judges the series: series, site or global.
        #[arg(long)]
        scope: Option<String>,
        /// Quiet points that resolve an episode.
        #[arg(long)]
        resolve_after: Option<u32>,
        /// Who (kept in the history).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
enum ViolationsCmd {
    /// List violations, newest first.
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// open or resolved.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Acknowledge a violation.
    Ack {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Violation id.
        id: String,
        /// Who acknowledges.
        #[arg(long)]
        by: String,
        /// A note.
        #[arg(long, default_value = "")]
        note: String,
    },
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
    metrics::set_series_cap(config.metrics_series_cap);
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

/// RFC 3339, `now`, or a relative time like `-2h` / `-30m`, as Unix µs.
fn parse_time(s: &str) -> anyhow::Result<i64> {
    let now = now_us();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rel) = s.strip_prefix('-') {
        let d = humantime::parse_duration(rel)
            .map_err(|e| anyhow::anyhow!("`{s}`: {e}; use e.g. -2h, -30m or an RFC 3339 time"))?;
        return Ok(now - d.as_micros() as i64);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|e| {
        anyhow::anyhow!("`{s}`: {e}; use RFC 3339 (2026-11-29T14:00:00Z), `now` or -2h")
    })?;
    Ok(t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0))
}

async fn run_baseline(cmd: BaselineCmd) -> anyhow::Result<()> {
    match cmd {
        BaselineCmd::List { cfg, all, format } => {
            let store = open_store(&cfg).await?;
            let rows = store.list_baselines(!all).await?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                ListFormat::Table => {
                    println!(
                        "{:<7} {:<12} {:<14} {:<22} {:<13} {:>12} {:>10} {:<8} {:<7} VALID FROM",
                        "SCOPE",
                        "SITE",
                        "HOST",
                        "MODEL",
                        "METRIC",
                        "CENTER",
                        "SIGMA",
                        "METHOD",
                        "MODE"
                    );
                    for b in rows {
                        println!(
                            "{:<7} {:<12} {:<14} {:<22} {:<13} {:>12.3} {:>10.3} {:<8} {:<7} {}{}",
                            b.scope,
                            b.site,
                            b.host,
                            b.model,
                            b.metric,
                            b.center,
                            b.sigma,
                            b.method,
                            b.mode,
                            fmt_us(b.valid_from),
                            if b.valid_to.is_some() {
                                " (replaced)"
                            } else {
                                ""
                            }
                        );
                    }
                }
            }
        }
        BaselineCmd::Set {
            cfg,
            site,
            host,
            provider,
            model,
            metric,
            from,
            to,
            sigma_method,
            reason,
            by,
        } => {
            let (from_us, to_us) = (parse_time(&from)?, parse_time(&to)?);
            if from_us >= to_us {
                anyhow::bail!("--from ({from}) must be before --to ({to})");
            }
            let metric = match metric {
                Some(m) => Some(Metric::parse(&m).ok_or_else(|| {
                    anyhow::anyhow!(
                        "--metric `{m}`: use latency_ms, ttft_ms, tpot_ms or tokens_per_s"
                    )
                })?),
                None => None,
            };
            let store = open_store(&cfg).await?;
            let method = match sigma_method {
                analyze::SigmaArg::Mrbar => llmscope_spc::SigmaMethod::Mrbar,
                analyze::SigmaArg::Median => llmscope_spc::SigmaMethod::Median,
            };
            let sel = rebaseline::Selector {
                site,
                host,
                provider,
                model,
                metric,
            };
            let out = rebaseline::rebaseline(
                &store,
                &sel,
                from_us,
                to_us,
                method,
                llmscope_spc::Transform::None,
                &reason,
                &by,
            )
            .await?;
            if out.is_empty() {
                anyhow::bail!("no series has samples in that range with those filters");
            }
            for o in out {
                match o {
                    rebaseline::Outcome::Set(b) => println!(
                        "set {}|{}|{}|{}|{}: center {:.3} sigma {:.3} from {} points",
                        b.site, b.host, b.provider, b.model, b.metric, b.center, b.sigma, b.points
                    ),
                    rebaseline::Outcome::Skipped { series, reason } => {
                        eprintln!("skipped {series}: {reason}")
                    }
                }
            }
        }
    }
    Ok(())
}

async fn run_rules(cmd: RulesCmd) -> anyhow::Result<()> {
    match cmd {
        RulesCmd::Show { cfg } => {
            let store = open_store(&cfg).await?;
            let rows: Vec<serde_json::Value> = store
                .rule_configs()
                .await?
                .into_iter()
                .map(|(k, v, s)| serde_json::json!({"scope_kind": k, "scope_value": v, "settings": serde_json::from_str::<serde_json::Value>(&s).unwrap_or_default()}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        RulesCmd::Set {
            cfg,
            global,
            model,
            site,
            params,
            scope,
            resolve_after,
            by,
        } => {
            let (kind, value) = match (global, model, site) {
                (true, _, _) => ("global", String::new()),
                (_, Some(m), _) => ("model", m),
                (_, _, Some(s)) => ("site", s),
                _ => {
                    anyhow::bail!("say which configuration: --global, --model NAME or --site NAME")
                }
            };
            let mut doc = SettingsDoc::default();
            for p in params {
                let (k, v) = p.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!("--param `{p}`: expected RULE.FIELD=VALUE, e.g. 2.run=7")
                })?;
                doc.params.insert(k.trim().to_owned(), v.trim().to_owned());
            }
            doc.scope = match scope.as_deref() {
                None => None,
                Some("series") => Some(Scope::Series),
                Some("site") => Some(Scope::Site),
                Some("global") => Some(Scope::Global),
                Some(other) => anyhow::bail!("--scope `{other}`: use series, site or global"),
            };
            doc.resolve_after = resolve_after;
            let json = serde_json::to_string(&doc)?;
            SettingsDoc::parse(&json).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = open_store(&cfg).await?;
            store
                .set_rule_config(kind, &value, &json, &by, now_us())
                .await?;
            eprintln!("set {kind} {value}: {json} (running collectors apply it within seconds)");
        }
    }
    Ok(())
}

async fn run_violations(cmd: ViolationsCmd) -> anyhow::Result<()> {
    match cmd {
        ViolationsCmd::List {
            cfg,
            status,
            limit,
            format,
        } => {
            if let Some(s) = &status
                && s != "open"
                && s != "resolved"
            {
                anyhow::bail!("--status `{s}`: use open or resolved");
            }
            let store = open_store(&cfg).await?;
            let rows = store.list_violations(status.as_deref(), limit).await?;
            match format {
                ListFormat::Json => println!("{}", serde_json::to_string(&rows)?),
                ListFormat::Table => {
                    println!(
                        "{:<36} {:<8} {:<4} {:<20} {:<9} SERIES",
                        "ID", "STATUS", "RULE", "OPENED (UTC)", "ACKED"
                    );
                    for v in rows {
                        println!(
                            "{:<36} {:<8} {:<4} {:<20} {:<9} {}",
                            v.id,
                            v.status,
                            v.rule,
                            fmt_us(v.opened_at),
                            v.acked_by.as_deref().unwrap_or("-"),
                            v.series_key
                        );
                    }
                }
            }
        }
        ViolationsCmd::Ack { cfg, id, by, note } => {
            if by.trim().is_empty() {
                anyhow::bail!("--by must name who acknowledges");
            }
            let store = open_store(&cfg).await?;
            if !store.ack_violation(&id, &by, &note, now_us()).await? {
                anyhow::bail!(
                    "no violation with id `{id}` (see `llmscope-collector violations list`)"
                );
            }
            eprintln!("acknowledged {id}");
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // traces (when OTEL_* asks for them) only from `serve`; the exporter lives on the runtime
    let telemetry = {
        let _rt = runtime.enter();
        telemetry::init(
            "llmscope-collector",
            matches!(cli.command, Command::Serve(_)),
        )
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Token(cmd) => run_token(cmd).await,
            Command::Analyze(_) => Ok(()),
            Command::Baseline(cmd) => run_baseline(cmd).await,
            Command::Rules(cmd) => run_rules(cmd).await,
            Command::Violations(cmd) => run_violations(cmd).await,
        }
    });
    // outside block_on, with the runtime alive: the last spans go out
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

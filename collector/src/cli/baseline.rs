//! `llmscope-collector baseline list|set`.

use clap::Subcommand;
use llmscope_collector::analyze;
use llmscope_live::rebaseline::{self, Outcome, Request, Selector};
use llmscope_model::Metric;

use super::{ConfigArgs, ListFormat, fmt_us, open_store, parse_time, print_list};

/// `baseline` commands.
#[derive(Debug, Subcommand)]
#[allow(clippy::large_enum_variant)]
pub enum BaselineCmd {
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
        /// Only this source: probe, proxy, client, otlp.
        #[arg(long)]
        source: Option<String>,
        /// Window start: RFC 3339 (2026-11-29T14:00:00Z) or relative (-2h, -30m).
        #[arg(long, allow_hyphen_values = true)]
        from: String,
        /// Window end: RFC 3339, relative, or `now`.
        #[arg(long, allow_hyphen_values = true, default_value = "now")]
        to: String,
        /// Sigma estimator [default: `[spc] sigma_method` of the config, `robust`].
        #[arg(long, value_enum)]
        sigma_method: Option<analyze::SigmaArg>,
        /// Transform [default: `[spc] transform` of the config, `log`].
        #[arg(long, value_enum)]
        transform: Option<analyze::TransformArg>,
        /// Why (stored with the baseline).
        #[arg(long, default_value = "manual re-baseline")]
        reason: String,
        /// Who (stored with the baseline).
        #[arg(long, default_value = "cli")]
        by: String,
    },
}

/// Runs a `baseline` command.
pub async fn run(cmd: BaselineCmd) -> anyhow::Result<()> {
    match cmd {
        BaselineCmd::List { cfg, all, format } => {
            let store = open_store(&cfg).await?;
            let rows = store.list_baselines(!all).await?;
            let columns = [
                ("SCOPE", 7),
                ("SITE", 12),
                ("HOST", 14),
                ("MODEL", 22),
                ("METRIC", 13),
                ("CENTER", -12),
                ("SIGMA", -10),
                ("METHOD", 8),
                ("MODE", 7),
                ("VALID FROM", 0),
            ];
            print_list(format, &rows, &columns, |b| {
                let (k, f) = (&b.key, &b.frozen);
                let replaced = if b.valid_to.is_some() {
                    " (replaced)"
                } else {
                    ""
                };
                vec![
                    k.scope.to_string(),
                    k.site.clone(),
                    k.host.clone(),
                    k.model.clone(),
                    k.metric.to_string(),
                    format!("{:.3}", f.baseline.center),
                    format!("{:.3}", f.baseline.sigma),
                    f.baseline.method.as_str().into(),
                    f.mode.to_string(),
                    format!("{}{replaced}", fmt_us(b.valid_from)),
                ]
            })?;
        }
        BaselineCmd::Set {
            cfg,
            site,
            host,
            provider,
            model,
            metric,
            source,
            from,
            to,
            sigma_method,
            transform,
            reason,
            by,
        } => {
            let (from_us, to_us) = (parse_time(&from)?, parse_time(&to)?);
            if from_us >= to_us {
                anyhow::bail!("--from ({from}) must be before --to ({to})");
            }
            let metric = match metric {
                Some(m) => Some(
                    m.parse::<Metric>()
                        .map_err(|_| anyhow::anyhow!("--metric `{m}`: use {}", Metric::names()))?,
                ),
                None => None,
            };
            let source = match source {
                Some(s) => Some(
                    s.parse::<llmscope_model::Source>()
                        .map_err(|e| anyhow::anyhow!("--source: {e}"))?,
                ),
                None => None,
            };
            let spc = super::load_config(&cfg, super::Overrides::default())?.spc;
            let store = open_store(&cfg).await?;
            let method = sigma_method.map_or(spc.sigma_method, analyze::SigmaArg::method);
            let transform = transform.map_or(spc.transform, analyze::TransformArg::transform);
            let sel = Selector {
                site,
                host,
                provider,
                model,
                metric,
                source,
            };
            let out = rebaseline::rebaseline(
                &store,
                &Request {
                    selector: &sel,
                    from_us,
                    to_us,
                    method,
                    transform,
                    reason: &reason,
                    by: &by,
                    now_us: llmscope_model::now_us(),
                    audit: Some(&super::cli_audit("baseline.set", "")),
                },
            )
            .await?;
            if out.is_empty() {
                anyhow::bail!("no series has samples in that range with those filters");
            }
            for o in out {
                match o {
                    Outcome::Set(b) => println!(
                        "set {}: center {:.3} sigma {:.3} from {} points",
                        b.key,
                        b.frozen.baseline.center,
                        b.frozen.baseline.sigma,
                        b.frozen.baseline.points
                    ),
                    Outcome::Skipped { series, reason } => {
                        eprintln!("skipped {series}: {reason}")
                    }
                }
            }
        }
    }
    Ok(())
}

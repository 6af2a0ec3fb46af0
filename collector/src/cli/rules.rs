//! `llmscope-collector rules show|set`.

use clap::Subcommand;
use llmscope_live::settings::{Scope, SettingsDoc};
use llmscope_model::now_us;

use super::{ConfigArgs, open_store};

/// `rules` commands.
#[derive(Debug, Subcommand)]
pub enum RulesCmd {
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

/// Runs a `rules` command.
pub async fn run(cmd: RulesCmd) -> anyhow::Result<()> {
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
                Some(s) => Some(s.parse::<Scope>().map_err(|_| {
                    anyhow::anyhow!(
                        "--scope `{s}`: use {}",
                        Scope::names().replace(", global", " or global")
                    )
                })?),
            };
            doc.resolve_after = resolve_after;
            let json = serde_json::to_string(&doc)?;
            SettingsDoc::parse(&json).map_err(|e| anyhow::anyhow!("{e}"))?;
            let store = open_store(&cfg).await?;
            store
                .set_rule_config(
                    kind,
                    &value,
                    &json,
                    &by,
                    now_us(),
                    Some(
                        &super::cli_audit("rules.set", format!("rules:{kind}:{value}"))
                            .change(None, Some(json.clone())),
                    ),
                )
                .await?;
            eprintln!("set {kind} {value}: {json} (running collectors apply it within seconds)");
        }
    }
    Ok(())
}

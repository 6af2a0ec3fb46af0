//! `llmscope-collector token create|list|revoke`.

use clap::Subcommand;
use llmscope_collector::auth::generate_token;
use llmscope_model::now_us;
use llmscope_store::tokens::Role;

use super::{ConfigArgs, ListFormat, fmt_us, open_store, print_list};

/// `token` commands.
#[derive(Debug, Subcommand)]
pub enum TokenCmd {
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

/// Runs a `token` command.
pub async fn run(cmd: TokenCmd) -> anyhow::Result<()> {
    match cmd {
        TokenCmd::Create {
            cfg,
            site,
            admin,
            name,
        } => {
            if let Some(s) = &site
                && !llmscope_collector::api::admin::valid_site(s)
            {
                anyhow::bail!(
                    "--site `{s}` is not a valid site name: use letters, digits, `.`, `_` or `-` (up to 64, starting with a letter or digit)"
                );
            }
            let store = open_store(&cfg).await?;
            let role = if admin { Role::Admin } else { Role::Ingest };
            let (token, record) = generate_token(role, site, &name);
            let entry = super::cli_audit("token.create", format!("token:{}", record.id)).change(
                None,
                Some(
                    serde_json::json!({"role": role.as_str(), "site": record.site, "name": record.name})
                        .to_string(),
                ),
            );
            store.insert_token(&record, Some(&entry)).await?;
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
            let columns = [
                ("ID", 10),
                ("ROLE", 8),
                ("SITE", 20),
                ("CREATED (UTC)", 20),
                ("STATUS", 10),
                ("NAME", 0),
            ];
            print_list(format, &tokens, &columns, |t| {
                let status = if t.revoked_at_us.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                vec![
                    t.id.clone(),
                    t.role.as_str().into(),
                    t.site.clone().unwrap_or_else(|| "-".into()),
                    fmt_us(t.created_at_us),
                    status.into(),
                    t.name.clone(),
                ]
            })?;
        }
        TokenCmd::Revoke { cfg, id } => {
            let store = open_store(&cfg).await?;
            let entry = super::cli_audit("token.revoke", format!("token:{id}"));
            if !store.revoke_token(&id, now_us(), Some(&entry)).await? {
                anyhow::bail!(
                    "no active token with id `{id}` (see `llmscope-collector token list`)"
                );
            }
            eprintln!("revoked token {id}");
        }
    }
    Ok(())
}

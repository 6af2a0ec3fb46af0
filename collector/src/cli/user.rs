//! `llmscope-collector user create|list|disable|enable|password|token create|token revoke`:
//! local users and their personal tokens, straight in the database (the way to the first
//! admin besides the admin token). Passwords are read from standard input when it is not a
//! terminal, else generated and printed once; changes are audited as `cli:<OS user>`.

use std::io::{IsTerminal, Read};

use clap::Subcommand;
use llmscope_collector::access::{Role, password};
use llmscope_collector::api::auth::user_json;
use llmscope_collector::api::users::{email, sites};
use llmscope_collector::auth::generate_token;
use llmscope_model::now_us;
use llmscope_store::tokens::Role as TokenRole;
use llmscope_store::users::UserRow;

use super::{ConfigArgs, ListFormat, cli_audit, fmt_us, load_config, open_store, print_list};

/// `user` commands.
#[derive(Debug, Subcommand)]
pub enum UserCmd {
    /// Create a local user. The password is read from standard input when it is piped
    /// (`echo "$PW" | llmscope-collector user create …`), else generated and printed once.
    Create {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Email address (the sign-in name).
        email: String,
        /// viewer, editor or admin.
        #[arg(long)]
        role: String,
        /// Limit the user to these sites (comma-separated); default: every site.
        #[arg(long, value_delimiter = ',')]
        sites: Option<Vec<String>>,
        /// Display name.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List users (never passwords).
    List {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Disable a user: their sessions end, their tokens stop working, sign-in is refused.
    Disable {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Email address.
        email: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Email address.
        email: String,
    },
    /// Set a user's password (standard input, or a generated one printed once); ends their
    /// sessions.
    Password {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Email address.
        email: String,
    },
    /// Personal API tokens.
    #[command(subcommand)]
    Token(UserTokenCmd),
}

/// `user token` commands.
#[derive(Debug, Subcommand)]
pub enum UserTokenCmd {
    /// Create a personal token (printed once) acting with the user's role and sites.
    Create {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// Email address of the user.
        email: String,
        /// A name to recognise the token by.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Revoke a personal token by its id.
    Revoke {
        #[command(flatten)]
        cfg: ConfigArgs,
        /// The token id (the 8 characters after `llms_`).
        id: String,
    },
}

fn password_from_stdin_or_generated(
    min: &llmscope_collector::access::AuthConfig,
) -> anyhow::Result<(String, bool)> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok((password::generate(20), true));
    }
    let mut text = String::new();
    stdin.lock().read_to_string(&mut text)?;
    let pw = text.trim_end_matches(['\n', '\r']).to_owned();
    if pw.is_empty() {
        return Ok((password::generate(20), true));
    }
    password::check_new(min, &pw).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((pw, false))
}

async fn user_of(store: &llmscope_store::Store, e: &str) -> anyhow::Result<UserRow> {
    store
        .user_by_email(e)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user `{e}` (see `llmscope-collector user list`)"))
}

/// Runs a `user` command.
pub async fn run(cmd: UserCmd) -> anyhow::Result<()> {
    match cmd {
        UserCmd::Create {
            cfg,
            email: raw,
            role,
            sites: site_list,
            name,
        } => {
            let auth = load_config(&cfg, super::Overrides::default())?.auth;
            let email = email(&raw).map_err(|e| anyhow::anyhow!("{e}"))?;
            let role: Role = role
                .parse()
                .map_err(|e: String| anyhow::anyhow!("--role: {e}"))?;
            let sites = sites(site_list).map_err(|e| anyhow::anyhow!("--sites: {e}"))?;
            let (pw, generated) = password_from_stdin_or_generated(&auth)?;
            let hasher = password::Hasher::new(&auth)?;
            let now = now_us();
            let u = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                email: email.clone(),
                name,
                role: role.as_str().to_owned(),
                sites,
                password_hash: Some(hasher.hash(&pw)?),
                oidc_subject: None,
                disabled_at: None,
                created_at: now,
                updated_at: now,
                last_login_at: None,
                password_changed_at: Some(now),
            };
            let store = open_store(&cfg).await?;
            let entry = cli_audit("user.create", format!("user:{email}"))
                .change(None, Some(user_json(&u).to_string()));
            if !store.create_user(&u, Some(&entry)).await? {
                anyhow::bail!("a user `{email}` exists already");
            }
            eprintln!("created user {email} ({role})");
            if generated {
                eprintln!("their password; store it now, it is not shown again:");
                println!("{pw}");
            }
        }
        UserCmd::List { cfg, format } => {
            let store = open_store(&cfg).await?;
            let users: Vec<serde_json::Value> =
                store.list_users().await?.iter().map(user_json).collect();
            let columns = [
                ("EMAIL", 32),
                ("ROLE", 7),
                ("SITES", 20),
                ("STATUS", 9),
                ("LAST SIGN-IN (UTC)", 20),
                ("NAME", 0),
            ];
            print_list(format, &users, &columns, |u| {
                let sites = u["sites"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_else(|| "*".into());
                vec![
                    u["email"].as_str().unwrap_or("").into(),
                    u["role"].as_str().unwrap_or("").into(),
                    sites,
                    if u["disabled"] == true {
                        "disabled"
                    } else {
                        "active"
                    }
                    .into(),
                    u["last_login_at"]
                        .as_i64()
                        .map_or("-".into(), |ms| fmt_us(ms * 1000)),
                    u["name"].as_str().unwrap_or("").into(),
                ]
            })?;
        }
        UserCmd::Disable { cfg, email } => set_disabled(&cfg, &email, true).await?,
        UserCmd::Enable { cfg, email } => set_disabled(&cfg, &email, false).await?,
        UserCmd::Password { cfg, email } => {
            let auth = load_config(&cfg, super::Overrides::default())?.auth;
            let store = open_store(&cfg).await?;
            let u = user_of(&store, &email).await?;
            let (pw, generated) = password_from_stdin_or_generated(&auth)?;
            let hash = password::Hasher::new(&auth)?.hash(&pw)?;
            let entry = cli_audit("user.password", format!("user:{}", u.email));
            store
                .set_password(&u.id, &hash, now_us(), None, Some(&entry))
                .await?;
            eprintln!("password of {} set; their sessions ended", u.email);
            if generated {
                eprintln!("the new password; store it now, it is not shown again:");
                println!("{pw}");
            }
        }
        UserCmd::Token(UserTokenCmd::Create { cfg, email, name }) => {
            let store = open_store(&cfg).await?;
            let u = user_of(&store, &email).await?;
            let (token, mut record) = generate_token(TokenRole::Personal, None, &name);
            record.user_id = Some(u.id.clone());
            let entry = cli_audit("token.create", format!("token:{}", record.id)).change(
                None,
                Some(
                    serde_json::json!({"user": u.email, "name": name, "kind": "personal"})
                        .to_string(),
                ),
            );
            store.insert_token(&record, Some(&entry)).await?;
            eprintln!(
                "created personal token {} for {} (acts as {}); store it now, it is not shown again:",
                record.id, u.email, u.role
            );
            println!("{token}");
        }
        UserCmd::Token(UserTokenCmd::Revoke { cfg, id }) => {
            let store = open_store(&cfg).await?;
            let personal = store
                .list_tokens()
                .await?
                .into_iter()
                .any(|t| t.id == id && t.role == TokenRole::Personal);
            let entry = cli_audit("token.revoke", format!("token:{id}"));
            if !personal || !store.revoke_token(&id, now_us(), Some(&entry)).await? {
                anyhow::bail!("no active personal token `{id}`");
            }
            eprintln!("revoked personal token {id}");
        }
    }
    Ok(())
}

async fn set_disabled(cfg: &ConfigArgs, email: &str, disabled: bool) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let mut u = user_of(&store, email).await?;
    let before = user_json(&u);
    u.disabled_at = if disabled {
        Some(u.disabled_at.unwrap_or(now_us()))
    } else {
        None
    };
    u.updated_at = now_us();
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    let entry = cli_audit(action, format!("user:{}", u.email))
        .change(Some(before.to_string()), Some(user_json(&u).to_string()));
    store.update_user(&u, Some(&entry)).await?;
    eprintln!(
        "{} {}",
        if disabled { "disabled" } else { "enabled" },
        u.email
    );
    Ok(())
}

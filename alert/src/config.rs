//! `[alerts]` in the collector config: delivery settings, grouping, severities, and the
//! channels, routes and silences declared in the file (reconciled into the database at
//! start). Errors name the key: `alerts.channels[0] (`ops`): `url` must start with http://`.

use std::collections::BTreeMap;
use std::time::Duration;

use llmscope_model::{ChannelKind, Secret, SeverityMap};
use llmscope_store::alerts::{ChannelRow, RouteRow, SilenceRow};
use llmscope_store::{Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::channel;
use crate::routing::{self, Matchers};

/// A value of `[alerts]` that is wrong; `key` says which (`alerts.routes[0]`,
/// `alerts.channels[1] (`mail`)`, `alerts.group_by`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct AlertConfigError {
    /// The key at fault.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
}

impl AlertConfigError {
    fn at(key: impl Into<String>, message: impl Into<String>) -> AlertConfigError {
        AlertConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why the configured channels, routes and silences could not be written to the database.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] AlertConfigError),
    /// The database refused.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// `[alerts]` in the collector config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Base URL of the dashboard, for links in notifications.
    pub public_url: String,
    /// How often the dispatcher looks for work.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// First retry delay (doubles per attempt, with jitter, capped at `retry_max`).
    #[serde(with = "humantime_serde")]
    pub retry_base: Duration,
    /// Longest retry delay.
    #[serde(with = "humantime_serde")]
    pub retry_max: Duration,
    /// Request timeout per attempt.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Labels whose values form the group key (from site, host, provider, model, metric,
    /// rule, severity).
    pub group_by: Vec<String>,
    /// How long a new group waits for more notifications before its first message.
    #[serde(with = "humantime_serde")]
    pub group_wait: Duration,
    /// Least time between two messages of one group.
    #[serde(with = "humantime_serde")]
    pub group_interval: Duration,
    /// Re-announce a group's still-open violations after this long (0s: never).
    #[serde(with = "humantime_serde")]
    pub repeat_interval: Duration,
    /// Severity per Nelson rule number or detector (`{ "1" = "error", "cusum" = "critical" }`);
    /// unlisted ones keep their default: rules 1, 2, 5, 6 `warning` and 3, 4, 7, 8 `info`
    /// (chart markers); `down` `critical`; `cusum`, `error_rate`, `silent`, `agent_silent`
    /// `error`. Only `critical` and `error` open an incident and notify.
    pub severity: BTreeMap<String, String>,
    /// Channels of the default route (used when no route matches); unset: every channel.
    pub default_channels: Option<Vec<String>>,
    /// Refuse channels (and test sends, and every send) to loopback, private, link-local
    /// and other internal addresses.
    pub deny_private_targets: bool,
    /// Channels declared here are created or updated at start (and removed when gone).
    pub channels: Vec<ChannelConfig>,
    /// Routes declared here replace the config-declared routes at start, in this order,
    /// before any route created through the API.
    pub routes: Vec<RouteConfig>,
    /// Silences declared here are created or updated at start.
    pub silences: Vec<SilenceConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            public_url: "http://localhost:8080".into(),
            poll_interval: Duration::from_millis(250),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            group_by: vec!["site".into(), "model".into()],
            group_wait: Duration::ZERO,
            group_interval: Duration::from_secs(60),
            repeat_interval: Duration::from_secs(4 * 3600),
            severity: BTreeMap::new(),
            default_channels: None,
            deny_private_targets: false,
            channels: Vec::new(),
            routes: Vec::new(),
            silences: Vec::new(),
        }
    }
}

/// One channel in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name.
    pub name: String,
    /// `webhook`, `slack`, `pagerduty` or `email`.
    pub kind: String,
    /// Receiver URL (webhook, Slack incoming webhook; PagerDuty: the Events API endpoint,
    /// default the public one).
    #[serde(default)]
    pub url: String,
    /// PagerDuty: the event severity per rule number or detector, e.g.
    /// `{ "cusum" = "warning", "down" = "critical" }` (default: the notification's).
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
    /// Webhook signing secret, PagerDuty routing key or SMTP password (prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Environment variable holding the secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Attempts before the notification is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: i64,
    /// Least time between two messages on this channel (Slack: at least 1s).
    #[serde(default, with = "humantime_serde")]
    pub min_interval: Option<Duration>,
    /// Email: SMTP server host.
    #[serde(default)]
    pub host: String,
    /// Email: SMTP port (default 587 for STARTTLS, 465 for implicit TLS, 25 without TLS).
    #[serde(default)]
    pub port: Option<u16>,
    /// Email: `starttls` (default), `implicit` or `none`.
    #[serde(default)]
    pub tls: Option<String>,
    /// Email: SMTP user name (the password is the secret).
    #[serde(default)]
    pub username: Option<String>,
    /// Email: sender address.
    #[serde(default)]
    pub from: String,
    /// Email: recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Email: PEM file of extra CA certificates to trust (private mail relays).
    #[serde(default)]
    pub ca_file: Option<String>,
}

fn default_attempts() -> i64 {
    8
}

impl Default for ChannelConfig {
    fn default() -> Self {
        ChannelConfig {
            name: String::new(),
            kind: "webhook".into(),
            url: String::new(),
            severity: BTreeMap::new(),
            secret: None,
            secret_env: None,
            max_attempts: default_attempts(),
            min_interval: None,
            host: String::new(),
            port: None,
            tls: None,
            username: None,
            from: String::new(),
            to: Vec::new(),
            ca_file: None,
        }
    }
}

/// One route in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Label matchers: `site`, `model`, `metric`, `rule`, `severity`, `provider`; a value
    /// written `~regex` matches by anchored regular expression.
    #[serde(default)]
    pub matchers: BTreeMap<String, Value>,
    /// Channels notifications matching this route go to.
    pub channels: Vec<String>,
    /// Keep evaluating later routes after this one matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

/// One silence in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceConfig {
    /// Stable id (so a restart updates rather than duplicates it).
    pub id: String,
    /// Label matchers (as routes, plus `host`).
    pub matchers: BTreeMap<String, Value>,
    /// Start, RFC 3339 (default: now).
    #[serde(default)]
    pub starts_at: Option<String>,
    /// End, RFC 3339.
    pub ends_at: String,
    /// Why.
    pub comment: String,
    /// Who.
    #[serde(default = "config_author")]
    pub created_by: String,
}

fn config_author() -> String {
    "config".into()
}

/// Parses a severity map (`{"1" = "critical", "down" = "error", …}`): Nelson rule numbers
/// 1..8 and detector names to severities.
pub fn severity_map(v: &Value) -> Result<SeverityMap, String> {
    let Some(m) = v.as_object() else {
        return Err("`severity` must be a table of rule number or detector = severity".into());
    };
    let mut pairs = Vec::with_capacity(m.len());
    for (k, sev) in m {
        let Some(sev) = sev.as_str() else {
            return Err(format!("`severity`: `{k}` must be a string"));
        };
        pairs.push((k.as_str(), sev));
    }
    SeverityMap::parse(pairs).map_err(|e| format!("`severity`: {e}"))
}

impl AlertsConfig {
    /// Validates and resolves secrets; messages name the channel and key.
    pub fn channel_rows(&self) -> Result<Vec<ChannelRow>, AlertConfigError> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            let at = format!("alerts.channels[{i}] (`{}`)", c.name);
            let err = |m: String| AlertConfigError::at(&at, m);
            if c.name.trim().is_empty() || !seen.insert(c.name.clone()) {
                return Err(err("`name` must be non-empty and unique".into()));
            }
            if c.max_attempts < 1 {
                return Err(err("`max_attempts` must be at least 1".into()));
            }
            let secret = match (&c.secret, &c.secret_env) {
                (Some(s), None) => s.0.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    err(format!(
                        "environment variable {var} (`secret_env`) is not set"
                    ))
                })?,
                (None, None) => String::new(),
                (Some(_), Some(_)) => {
                    return Err(err("set `secret` or `secret_env`, not both".into()));
                }
            };
            let kind: ChannelKind = c.kind.parse().map_err(|_| {
                err(format!(
                    "`kind` `{}` is not supported; use {}",
                    c.kind,
                    ChannelKind::names()
                ))
            })?;
            let raw = json!({
                "url": c.url, "severity": c.severity,
                "min_interval_ms": c.min_interval.map(|d| d.as_millis() as u64),
                "host": c.host, "port": c.port, "tls": c.tls, "username": c.username,
                "from": c.from, "to": c.to, "ca_file": c.ca_file,
            });
            let config = channel::validate(kind, &raw, !secret.is_empty()).map_err(err)?;
            out.push(ChannelRow {
                name: c.name.clone(),
                kind,
                config: config.to_string(),
                secret,
                max_attempts: c.max_attempts,
                source: "config".into(),
            });
        }
        Ok(out)
    }

    /// Validates the alerting keys besides channels: group_by, severity, routes, silences.
    pub fn validate(&self, now_us: i64) -> Result<(), AlertConfigError> {
        let channels = self.channel_rows()?;
        for g in &self.group_by {
            if !routing::SILENCE_LABELS.contains(&g.as_str()) {
                return Err(AlertConfigError::at(
                    "alerts.group_by",
                    format!(
                        "unknown label `{g}`; use {}",
                        routing::SILENCE_LABELS.join(", ")
                    ),
                ));
            }
        }
        let sev = serde_json::to_value(&self.severity).unwrap_or_default();
        severity_map(&sev).map_err(|e| {
            AlertConfigError::at("alerts.severity", e.trim_start_matches("`severity`: "))
        })?;
        self.route_rows()?;
        self.silence_rows(now_us)?;
        // config routes may only name config channels (API channels may not exist yet)
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(c) = r.channels.iter().find(|c| !names.contains(&c.as_str())) {
                return Err(AlertConfigError::at(
                    format!("alerts.routes[{i}]"),
                    format!("channel `{c}` is not declared in [[alerts.channels]]"),
                ));
            }
        }
        if let Some(c) = self
            .default_channels
            .iter()
            .flatten()
            .find(|c| !names.contains(&c.as_str()))
        {
            return Err(AlertConfigError::at(
                "alerts.default_channels",
                format!("channel `{c}` is not declared in [[alerts.channels]]"),
            ));
        }
        Ok(())
    }

    /// The config routes as rows (positions 0, 1, …).
    pub fn route_rows(&self) -> Result<Vec<RouteRow>, AlertConfigError> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let at = format!("alerts.routes[{i}]");
                let m = serde_json::to_value(&r.matchers).unwrap_or_default();
                Matchers::parse(&m, routing::ROUTE_LABELS)
                    .map_err(|e| AlertConfigError::at(&at, e))?;
                if r.channels.is_empty() {
                    return Err(AlertConfigError::at(&at, "`channels` must not be empty"));
                }
                Ok(RouteRow {
                    id: 0,
                    position: i as i64,
                    matchers: m,
                    channels: r.channels.clone(),
                    continue_matching: r.continue_matching,
                    source: "config".into(),
                })
            })
            .collect()
    }

    /// The config silences as rows.
    pub fn silence_rows(&self, now: i64) -> Result<Vec<SilenceRow>, AlertConfigError> {
        self.silences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = format!("alerts.silences[{i}] (`{}`)", s.id);
                let err = |m: String| AlertConfigError::at(&at, m);
                let m = serde_json::to_value(&s.matchers).unwrap_or_default();
                Matchers::parse(&m, routing::SILENCE_LABELS).map_err(err)?;
                if s.matchers.is_empty() {
                    return Err(err(
                        "`matchers` must not be empty (that would mute everything)".into(),
                    ));
                }
                let time = |field: &str, t: &str| {
                    llmscope_model::time::parse_time(t).map_err(|e| err(format!("`{field}`: {e}")))
                };
                let starts_at = match &s.starts_at {
                    Some(t) => time("starts_at", t)?,
                    None => now,
                };
                let ends_at = time("ends_at", &s.ends_at)?;
                if ends_at <= starts_at {
                    return Err(err("`ends_at` must be after `starts_at`".into()));
                }
                if s.id.trim().is_empty() || s.comment.trim().is_empty() {
                    return Err(err("`id` and `comment` must not be empty".into()));
                }
                Ok(SilenceRow {
                    id: s.id.clone(),
                    matchers: m,
                    starts_at,
                    ends_at,
                    comment: s.comment.clone(),
                    created_by: s.created_by.clone(),
                    created_at: now,
                    source: "config".into(),
                })
            })
            .collect()
    }

    /// The severity map of `[alerts] severity` (validated at start; an invalid map would
    /// have stopped the process, so it falls back to the defaults here).
    pub fn severities(&self) -> SeverityMap {
        SeverityMap::parse(self.severity.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .unwrap_or_default()
    }

    /// Writes the config file's channels, routes and silences to the store
    /// (reconciliation: config-declared ones that are gone are removed; API-made ones stay).
    pub async fn reconcile(&self, store: &Store, now: i64) -> Result<(), ReconcileError> {
        let channels = self.channel_rows()?;
        let routes = self.route_rows()?;
        let silences = self.silence_rows(now)?;
        store.reconcile_channels(&channels, now).await?;
        store.reconcile_routes(&routes, now).await?;
        for s in &silences {
            store.upsert_silence(s, None).await?;
        }
        let keep: Vec<String> = silences.iter().map(|s| s.id.clone()).collect();
        store.prune_config_silences(&keep).await?;
        Ok(())
    }

    /// The dashboard link of a violation.
    pub fn link(&self, violation_id: &str) -> String {
        format!(
            "{}/violations?id={violation_id}",
            self.public_url.trim_end_matches('/')
        )
    }
}

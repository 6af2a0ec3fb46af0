//! Alert delivery over the transactional outbox.
//!
//! Guarantees:
//! - A violation opening or resolving writes an outbox row in the same transaction as the
//!   violation (see [`crate::live`]). The dispatcher routes each outbox row to channels
//!   ([`routing`]: ordered routes with `continue`, else the default route) and writes one
//!   notification per channel, in the database, so a restart loses nothing. Silenced
//!   notifications are stored as `suppressed` with the silence named in the delivery log.
//! - Notifications are grouped per channel by `group_by` labels (default site + model), as
//!   Alertmanager does: a new group waits `group_wait`, later changes go out at most every
//!   `group_interval` as one digest, and open violations are re-announced after
//!   `repeat_interval`. PagerDuty is not grouped (one event per violation change; PagerDuty
//!   dedups on `dedup_key`).
//! - Groups are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several
//!   replicas never send the same notification at the same time; a replica that dies
//!   mid-send lets its lease expire and another one retries (at-least-once: receivers can
//!   dedupe on the violation id and event).
//! - Failures are retried with exponential backoff and full jitter, honouring `Retry-After`;
//!   every attempt is logged (`deliveries`); after `max_attempts` the notification is dead.
//!   Each channel can be rate limited (`min_interval`; Slack defaults to one per second).
//!
//! Channels: [`webhook`] (HMAC-SHA256 signed JSON), [`slack`] (Block Kit), [`pagerduty`]
//! (Events API v2), [`email`] (SMTP with STARTTLS or implicit TLS).

pub mod email;
pub mod pagerduty;
pub mod routing;
pub mod slack;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::store::alerts::{
    Attempt, ChannelRow, Claimed, ClaimedGroup, GroupNext, NEVER, OutboxItem, Planned, RouteRow,
    SilenceRow,
};
use crate::store::{Store, StoreError, now_us};
use routing::{Matchers, Router, Silencer};

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
    /// Severity per rule number (`{ "1" = "critical", … }`); unlisted rules use the default
    /// (1 critical; 2, 5, 6 error; 3, 8 warning; 4, 7 info).
    pub severity: BTreeMap<String, String>,
    /// Channels of the default route (used when no route matches); unset: every channel.
    pub default_channels: Option<Vec<String>>,
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
    /// PagerDuty: severity per rule number, e.g. `{ "1" = "critical", "7" = "warning" }`.
    #[serde(default)]
    pub severity: BTreeMap<String, String>,
    /// Webhook signing secret, PagerDuty routing key or SMTP password (prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<crate::config::Secret>,
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

/// Channel kinds.
pub const KINDS: &[&str] = &["webhook", "slack", "pagerduty", "email"];

/// Validates a channel's JSON configuration for its kind and returns the normalized form
/// (what is stored; never the secret). Errors say which key is wrong.
pub fn validate_channel(kind: &str, config: &Value, has_secret: bool) -> Result<Value, String> {
    let s = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let min_interval_ms = match config.get("min_interval_ms") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("`min_interval_ms` must be a non-negative integer")?,
        ),
    };
    let url_ok = |u: &str| u.starts_with("http://") || u.starts_with("https://");
    match kind {
        "webhook" | "slack" | "pagerduty" => {
            let mut url = s("url");
            if url.is_empty() && kind == "pagerduty" {
                url = pagerduty::DEFAULT_URL.to_owned();
            }
            if !url_ok(&url) {
                return Err("`url` must start with http:// or https://".into());
            }
            let severity = config.get("severity").cloned().unwrap_or(json!({}));
            if let Some(m) = severity.as_object() {
                for (rule, sev) in m {
                    if !matches!(rule.as_str(), "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8")
                        || !matches!(
                            sev.as_str(),
                            Some("critical" | "error" | "warning" | "info")
                        )
                    {
                        return Err(format!(
                            "`severity` maps rule numbers 1..8 to critical, error, warning or info; got `{rule}` = {sev}"
                        ));
                    }
                }
            } else {
                return Err("`severity` must be a table of rule number = severity".into());
            }
            if kind == "pagerduty" && !has_secret {
                return Err("PagerDuty needs the routing key as the secret".into());
            }
            let min = match (kind, min_interval_ms) {
                ("slack", m) => Some(m.unwrap_or(1000).max(1000)),
                (_, m) => m,
            };
            Ok(json!({"url": url, "severity": severity, "min_interval_ms": min}))
        }
        "email" => {
            let host = s("host");
            if host.is_empty() {
                return Err("`host` (the SMTP server) is required".into());
            }
            let tls = match s("tls").as_str() {
                "" | "starttls" => "starttls",
                "implicit" => "implicit",
                "none" => "none",
                other => {
                    return Err(format!(
                        "`tls` must be starttls, implicit or none; got `{other}`"
                    ));
                }
            };
            let port = match config.get("port") {
                None | Some(Value::Null) => match tls {
                    "implicit" => 465,
                    "none" => 25,
                    _ => 587,
                },
                Some(v) => v
                    .as_u64()
                    .filter(|p| (1..=65535).contains(p))
                    .ok_or("`port` must be a number from 1 to 65535")?,
            };
            let from = s("from");
            if from.parse::<lettre::message::Mailbox>().is_err() {
                return Err(format!("`from` `{from}` is not an email address"));
            }
            let to: Vec<String> = match config.get("to") {
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| x.as_str().unwrap_or("").trim().to_owned())
                    .collect(),
                _ => Vec::new(),
            };
            if to.is_empty() {
                return Err("`to` must list at least one recipient".into());
            }
            for (i, t) in to.iter().enumerate() {
                if t.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(format!("`to[{i}]` `{t}` is not an email address"));
                }
            }
            let username = s("username");
            if !username.is_empty() && !has_secret {
                return Err("`username` is set but there is no password (the secret)".into());
            }
            let ca_file = s("ca_file");
            if !ca_file.is_empty() {
                std::fs::read(&ca_file)
                    .map_err(|e| format!("`ca_file` {ca_file} cannot be read: {e}"))?;
            }
            Ok(
                json!({"host": host, "port": port, "tls": tls, "username": username,
                "from": from, "to": to, "ca_file": ca_file, "min_interval_ms": min_interval_ms}),
            )
        }
        other => Err(format!(
            "`kind` `{other}` is not supported; use {}",
            KINDS.join(", ")
        )),
    }
}

impl AlertsConfig {
    /// Validates and resolves secrets; messages name the channel and key.
    pub fn channel_rows(&self) -> Result<Vec<ChannelRow>, String> {
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            let at = format!("alerts.channels[{i}] (`{}`)", c.name);
            if c.name.trim().is_empty() || !seen.insert(c.name.clone()) {
                return Err(format!("{at}: `name` must be non-empty and unique"));
            }
            if c.max_attempts < 1 {
                return Err(format!("{at}: `max_attempts` must be at least 1"));
            }
            let secret = match (&c.secret, &c.secret_env) {
                (Some(s), None) => s.0.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    format!("{at}: environment variable {var} (`secret_env`) is not set")
                })?,
                (None, None) => String::new(),
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: set `secret` or `secret_env`, not both"));
                }
            };
            let raw = json!({
                "url": c.url, "severity": c.severity,
                "min_interval_ms": c.min_interval.map(|d| d.as_millis() as u64),
                "host": c.host, "port": c.port, "tls": c.tls, "username": c.username,
                "from": c.from, "to": c.to, "ca_file": c.ca_file,
            });
            let config = validate_channel(&c.kind, &raw, !secret.is_empty())
                .map_err(|e| format!("{at}: {e}"))?;
            out.push(ChannelRow {
                name: c.name.clone(),
                kind: c.kind.clone(),
                config: config.to_string(),
                secret,
                max_attempts: c.max_attempts,
                source: "config".into(),
            });
        }
        Ok(out)
    }

    /// Validates the alerting keys besides channels: group_by, severity, routes, silences.
    pub fn validate(&self) -> Result<(), String> {
        let channels = self.channel_rows()?;
        for g in &self.group_by {
            if !routing::SILENCE_LABELS.contains(&g.as_str()) {
                return Err(format!(
                    "alerts.group_by: unknown label `{g}`; use {}",
                    routing::SILENCE_LABELS.join(", ")
                ));
            }
        }
        for (rule, sev) in &self.severity {
            if !matches!(rule.as_str(), "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8")
                || !matches!(sev.as_str(), "critical" | "error" | "warning" | "info")
            {
                return Err(format!(
                    "alerts.severity maps rule numbers 1..8 to critical, error, warning or info; got `{rule}` = `{sev}`"
                ));
            }
        }
        self.route_rows()?;
        self.silence_rows(now_us())?;
        // config routes may only name config channels (API channels may not exist yet)
        let names: Vec<&str> = channels.iter().map(|c| c.name.as_str()).collect();
        for (i, r) in self.routes.iter().enumerate() {
            for c in &r.channels {
                if !names.contains(&c.as_str()) {
                    return Err(format!(
                        "alerts.routes[{i}]: channel `{c}` is not declared in [[alerts.channels]]"
                    ));
                }
            }
        }
        if let Some(d) = &self.default_channels {
            for c in d {
                if !names.contains(&c.as_str()) {
                    return Err(format!(
                        "alerts.default_channels: channel `{c}` is not declared in [[alerts.channels]]"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The config routes as rows (positions 0, 1, …).
    pub fn route_rows(&self) -> Result<Vec<RouteRow>, String> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let m = serde_json::to_value(&r.matchers).unwrap_or_default();
                Matchers::parse(&m, routing::ROUTE_LABELS)
                    .map_err(|e| format!("alerts.routes[{i}]: {e}"))?;
                if r.channels.is_empty() {
                    return Err(format!("alerts.routes[{i}]: `channels` must not be empty"));
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
    pub fn silence_rows(&self, now: i64) -> Result<Vec<SilenceRow>, String> {
        self.silences
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let at = format!("alerts.silences[{i}] (`{}`)", s.id);
                let m = serde_json::to_value(&s.matchers).unwrap_or_default();
                Matchers::parse(&m, routing::SILENCE_LABELS).map_err(|e| format!("{at}: {e}"))?;
                if s.matchers.is_empty() {
                    return Err(format!(
                        "{at}: `matchers` must not be empty (that would mute everything)"
                    ));
                }
                let starts_at = match &s.starts_at {
                    Some(t) => parse_time(t).map_err(|e| format!("{at}: `starts_at`: {e}"))?,
                    None => now,
                };
                let ends_at =
                    parse_time(&s.ends_at).map_err(|e| format!("{at}: `ends_at`: {e}"))?;
                if ends_at <= starts_at {
                    return Err(format!("{at}: `ends_at` must be after `starts_at`"));
                }
                if s.id.trim().is_empty() || s.comment.trim().is_empty() {
                    return Err(format!("{at}: `id` and `comment` must not be empty"));
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

    /// Severity for a rule.
    pub fn severity_for(&self, rule: i64) -> String {
        if let Some(s) = self.severity.get(&rule.to_string()) {
            return s.clone();
        }
        match rule {
            1 => "critical",
            2 | 5 | 6 => "error",
            3 | 8 => "warning",
            _ => "info",
        }
        .to_owned()
    }
}

/// Parses an RFC 3339 time or Unix milliseconds into Unix µs.
pub fn parse_time(t: &str) -> Result<i64, String> {
    let t = t.trim();
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms.saturating_mul(1000));
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_micros())
        .map_err(|_| {
            format!(
                "`{t}` is not an RFC 3339 time (like 2026-11-29T10:00:00Z) nor Unix milliseconds"
            )
        })
}

/// Writes the config file's channels, routes and silences to the store (reconciliation).
pub async fn reconcile(store: &Store, cfg: &AlertsConfig) -> Result<(), String> {
    let now = now_us();
    let channels = cfg.channel_rows()?;
    let routes = cfg.route_rows()?;
    let silences = cfg.silence_rows(now)?;
    let err = |e: StoreError| e.to_string();
    store
        .reconcile_channels(&channels, now)
        .await
        .map_err(err)?;
    store.reconcile_routes(&routes, now).await.map_err(err)?;
    for s in &silences {
        store.upsert_silence(s).await.map_err(err)?;
    }
    let keep: Vec<String> = silences.iter().map(|s| s.id.clone()).collect();
    store.prune_config_silences(&keep).await.map_err(err)?;
    Ok(())
}

/// What a channel answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SendResult {
    /// HTTP status (SMTP reply code for email), if any.
    pub status: Option<u16>,
    /// Error text on failure.
    pub error: Option<String>,
    /// `Retry-After`, if the receiver sent one.
    #[serde(skip)]
    pub retry_after: Option<Duration>,
    /// The receiver's answer (body or SMTP reply), at most 2 KiB.
    pub response: String,
}

impl SendResult {
    /// Whether the receiver accepted it.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// A failure without an answer from the receiver.
    pub fn failed(error: String) -> SendResult {
        SendResult {
            error: Some(error),
            ..SendResult::default()
        }
    }
}

/// Backoff with full jitter: random in [base, min(max, base·2^(attempt−1))].
pub fn backoff(cfg: &AlertsConfig, attempt: i64) -> Duration {
    let base = cfg.retry_base.as_secs_f64();
    let cap = cfg.retry_max.as_secs_f64().max(base);
    let upper = (base * 2f64.powi((attempt - 1).clamp(0, 30) as i32)).min(cap);
    Duration::from_secs_f64(rand::rng().random_range(base..=upper.max(base)))
}

/// When each rate-limited channel may send next (per replica).
pub type RateLimits = std::collections::HashMap<String, Instant>;

/// One message to send: a group's pending notifications (or a reminder of its open ones).
#[derive(Debug, Clone)]
pub struct Digest {
    /// Group key.
    pub group_key: String,
    /// The notifications; each carries its violation as stored now.
    pub items: Vec<Claimed>,
}

impl Digest {
    /// One JSON object per notification: event, ids, labels, the violation with its series,
    /// frozen baseline and points, and the dashboard link.
    pub fn item_json(&self, cfg: &AlertsConfig) -> Vec<Value> {
        self.items
            .iter()
            .map(|c| {
                let v = &c.violation;
                let labels: Value = serde_json::from_str(&c.labels).unwrap_or(json!({}));
                json!({
                    "event": c.event,
                    "delivery_id": c.outbox_id,
                    "violation_id": c.violation_id,
                    "severity": labels["severity"],
                    "labels": labels,
                    "series": {"key": v["series_key"], "site": v["site"], "host": v["host"], "provider": v["provider"], "model": v["model"], "metric": v["metric"]},
                    "rule": v["rule"],
                    "baseline": v["baseline"],
                    "points": v["points"],
                    "violation": v,
                    "dashboard_url": link(cfg, &c.violation_id),
                })
            })
            .collect()
    }

    /// A one-line title: "2 violations opened for site=eu,model=m" or the single violation.
    pub fn title(&self) -> String {
        let opened = self.items.iter().filter(|c| c.event == "opened").count();
        let resolved = self.items.iter().filter(|c| c.event == "resolved").count();
        let repeat = self.items.iter().filter(|c| c.event == "repeat").count();
        if let [c] = self.items.as_slice() {
            let v = &c.violation;
            let what = match c.event.as_str() {
                "resolved" => "back in control",
                "repeat" => "still out of control",
                "test" => "test notification",
                _ => "out of control",
            };
            return format!(
                "{} {} on {}/{} {what} (Nelson rule {})",
                v["model"].as_str().unwrap_or("?"),
                v["metric"].as_str().unwrap_or("?"),
                v["site"].as_str().unwrap_or("?"),
                v["host"].as_str().unwrap_or("?"),
                v["rule"].as_i64().unwrap_or(0)
            );
        }
        let mut parts = Vec::new();
        if opened > 0 {
            parts.push(format!("{opened} opened"));
        }
        if resolved > 0 {
            parts.push(format!("{resolved} resolved"));
        }
        if repeat > 0 {
            parts.push(format!("{repeat} still open"));
        }
        format!(
            "LLMscope violations: {} ({})",
            parts.join(", "),
            self.group_key
        )
    }
}

/// The dashboard link of a violation.
pub fn link(cfg: &AlertsConfig, violation_id: &str) -> String {
    format!(
        "{}/violations?id={violation_id}",
        cfg.public_url.trim_end_matches('/')
    )
}

static WAKE: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Wakes the dispatchers of this process at once (a violation opened or resolved here);
/// other replicas find the work on their next poll.
pub fn wake() {
    WAKE.notify_waiters();
}

/// Runs the dispatcher until the task is aborted.
pub async fn dispatcher(store: Store, cfg: AlertsConfig, client: reqwest::Client) {
    let mut tick = tokio::time::interval(cfg.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut limits = RateLimits::new();
    let mut gauges = crate::metrics::RefreshSchedule::default();
    loop {
        let woken = tokio::select! {
            _ = tick.tick() => false,
            _ = WAKE.notified() => true,
        };
        // a full batch means more is due: go again without waiting for the tick
        loop {
            match run_once(&store, &cfg, &client, &mut limits).await {
                Ok(n) if n >= CLAIM_BATCH as usize => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "alert dispatcher: run failed; will retry");
                    break;
                }
            }
        }
        // the outbox depth and open violations gauges of /metrics
        if gauges.due(woken)
            && let Err(e) = crate::metrics::refresh_from_store(&store).await
        {
            tracing::debug!(error = %e, "metrics: refreshing the alert gauges failed");
        }
    }
}

/// POSTs a serialized JSON body (sent byte for byte) with extra headers; any 2xx is success.
pub async fn post_json(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    body: String,
    headers: &[(&str, String)],
) -> SendResult {
    let url = serde_json::from_str::<Value>(&ch.config)
        .ok()
        .and_then(|v| v.get("url").and_then(|u| u.as_str()).map(str::to_owned))
        .unwrap_or_default();
    let mut rb = client
        .post(&url)
        .timeout(cfg.timeout)
        .header("user-agent", "llmscope-collector")
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers {
        rb = rb.header(*k, v);
    }
    match rb.send().await {
        // the URL may carry a secret (Slack webhooks): report without it
        Err(e) => SendResult::failed(format!("request failed: {}", e.without_url())),
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let ok = (200..300).contains(&status);
            let text: String = r
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(2048)
                .collect();
            SendResult {
                status: Some(status),
                error: (!ok).then(|| {
                    format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                }),
                retry_after,
                response: text,
            }
        }
    }
}

fn plan(
    cfg: &AlertsConfig,
    router: &Router,
    silencer: &Silencer,
    channels: &[ChannelRow],
    item: &OutboxItem,
    now: i64,
) -> Vec<Planned> {
    let labels = routing::labels(item, &cfg.severity_for(item.rule));
    let silenced_by = silencer.silenced_by(&labels, now);
    let labels_json = serde_json::to_string(&labels).unwrap_or_default();
    router
        .channels(&labels)
        .into_iter()
        .filter_map(|name| {
            let ch = channels.iter().find(|c| c.name == name)?;
            let ungrouped = ch.kind == "pagerduty";
            Some(Planned {
                group_key: if ungrouped {
                    format!("violation={}", item.violation_id)
                } else {
                    routing::group_key(&cfg.group_by, &labels)
                },
                channel: name,
                labels: labels_json.clone(),
                silenced_by: silenced_by.clone(),
                group_wait: if ungrouped {
                    0
                } else {
                    cfg.group_wait.as_micros() as i64
                },
                group_interval: if ungrouped {
                    0
                } else {
                    cfg.group_interval.as_micros() as i64
                },
            })
        })
        .collect()
}

/// Groups claimed per dispatcher run.
pub const CLAIM_BATCH: i64 = 64;

/// Routes new outbox rows, claims due groups and sends them; returns how many groups were
/// claimed.
pub async fn run_once(
    store: &Store,
    cfg: &AlertsConfig,
    client: &reqwest::Client,
    limits: &mut RateLimits,
) -> Result<usize, StoreError> {
    let channels = store.channels().await?;
    let router = Router::new(
        &store.routes().await?,
        cfg.default_channels
            .clone()
            .unwrap_or_else(|| channels.iter().map(|c| c.name.clone()).collect()),
    );
    let silencer = Silencer::new(&store.silences().await?);
    let now = now_us();
    let planner = |item: &OutboxItem| {
        let planned = plan(cfg, &router, &silencer, &channels, item, now);
        for p in planned.iter().filter(|p| p.silenced_by.is_some()) {
            crate::metrics::alert_outcome(&p.channel, "suppressed", 1);
        }
        planned
    };
    while store.expand_outbox(now, 500, &planner).await? == 500 {}
    let lease = (cfg.timeout * 3).as_micros() as i64;
    let groups = store.claim_groups(now, now + lease, CLAIM_BATCH).await?;
    let claimed = groups.len();
    let mut sends = Vec::new();
    for g in groups {
        let Some(ch) = channels.iter().find(|x| x.name == g.channel).cloned() else {
            // the channel was deleted: its notifications can never go out
            let attempts = g
                .items
                .iter()
                .map(|c| dead(c, "channel was deleted"))
                .collect::<Vec<_>>();
            crate::metrics::alert_attempts(&attempts);
            let next = GroupNext {
                sent: false,
                if_pending: NEVER,
                if_idle: NEVER,
                attempts: 0,
            };
            store
                .finish_group(&g.channel, &g.group_key, &attempts, next, now)
                .await?;
            continue;
        };
        // silences created while a group waited still apply
        let (muted, items): (Vec<_>, Vec<_>) = g.items.iter().cloned().partition(|c| {
            let labels: routing::Labels = serde_json::from_str(&c.labels).unwrap_or_default();
            silencer.silenced_by(&labels, now).is_some()
        });
        if !muted.is_empty() {
            let attempts: Vec<Attempt> = muted
                .iter()
                .map(|c| {
                    let labels: routing::Labels =
                        serde_json::from_str(&c.labels).unwrap_or_default();
                    let mut a = dead(c, &silencer.silenced_by(&labels, now).unwrap_or_default());
                    a.outcome = "suppressed".into();
                    a.attempt = c.attempts;
                    a
                })
                .collect();
            crate::metrics::alert_attempts(&attempts);
            let next = GroupNext {
                sent: false,
                if_pending: now,
                if_idle: now,
                attempts: g.attempts,
            };
            store
                .finish_group(&g.channel, &g.group_key, &attempts, next, now)
                .await?;
            if items.is_empty() {
                continue;
            }
        }
        let min_interval = serde_json::from_str::<Value>(&ch.config)
            .ok()
            .and_then(|c| c["min_interval_ms"].as_u64())
            .map(Duration::from_millis);
        if let Some(gap) = min_interval {
            let t = Instant::now();
            if let Some(at) = limits.get(&ch.name).filter(|at| **at > t) {
                let wait = (*at - t).as_micros() as i64;
                store
                    .release_group(&g.channel, &g.group_key, now + wait)
                    .await?;
                continue;
            }
            limits.insert(ch.name.clone(), t + gap);
        }
        let group = ClaimedGroup { items, ..g };
        let (client, cfg, store) = (client.clone(), cfg.clone(), store.clone());
        sends.push(tokio::spawn(async move {
            send_group(&store, &client, &cfg, &ch, group).await
        }));
    }
    for s in sends {
        match s.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "alert send task failed"),
        }
    }
    Ok(claimed)
}

fn dead(c: &Claimed, why: &str) -> Attempt {
    Attempt {
        outbox_id: c.outbox_id,
        channel: c.channel.clone(),
        attempt: c.attempts + 1,
        status_code: None,
        error: Some(why.to_owned()),
        duration_ms: 0.0,
        outcome: "dead".into(),
        next_attempt_at: 0,
    }
}

/// Sends one claimed group (its pending notifications as one digest, or a reminder of its
/// open violations) and records the outcome; true when a message went out.
#[tracing::instrument(name = "alert_delivery", skip_all, fields(channel = %ch.name, kind = %ch.kind, group = %g.group_key, notifications = g.items.len(), outcome = tracing::field::Empty))]
async fn send_group(
    store: &Store,
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    g: ClaimedGroup,
) -> Result<bool, StoreError> {
    let now = now_us();
    let repeat_us = cfg.repeat_interval.as_micros() as i64;
    let interval_us = if ch.kind == "pagerduty" {
        0
    } else {
        cfg.group_interval.as_micros() as i64
    };
    let reminders = repeat_us > 0 && ch.kind != "pagerduty";
    let idle = if reminders { now + repeat_us } else { NEVER };
    if g.items.is_empty() {
        // due only for a reminder
        let open = if reminders {
            store.open_in_group(&ch.name, &g.group_key).await?
        } else {
            Vec::new()
        };
        if open.is_empty() || g.last_sent_at + repeat_us > now {
            let next = GroupNext {
                sent: false,
                if_pending: now,
                if_idle: if open.is_empty() {
                    NEVER
                } else {
                    g.last_sent_at + repeat_us
                },
                attempts: 0,
            };
            tracing::Span::current().record("outcome", "nothing_due");
            store
                .finish_group(&ch.name, &g.group_key, &[], next, now)
                .await?;
            return Ok(false);
        }
        let digest = Digest {
            group_key: g.group_key.clone(),
            items: open,
        };
        let start = Instant::now();
        let r = deliver(client, cfg, ch, &digest).await;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let ok = r.ok();
        let log: Vec<Attempt> = digest
            .items
            .iter()
            .map(|c| Attempt {
                outbox_id: c.outbox_id,
                channel: ch.name.clone(),
                attempt: 0,
                status_code: r.status.map(i64::from),
                error: r.error.clone(),
                duration_ms: ms,
                outcome: if ok { "repeated" } else { "repeat_failed" }.into(),
                next_attempt_at: 0,
            })
            .collect();
        let next = if ok {
            GroupNext {
                sent: true,
                if_pending: now + interval_us,
                if_idle: idle,
                attempts: 0,
            }
        } else {
            let wait = now + backoff(cfg, g.attempts + 1).as_micros() as i64;
            GroupNext {
                sent: false,
                if_pending: wait,
                if_idle: wait,
                attempts: g.attempts + 1,
            }
        };
        tracing::info!(channel = %ch.name, group = %g.group_key, open = digest.items.len(), ok, "reminder of open violations");
        crate::metrics::alert_attempts(&log);
        let span = tracing::Span::current();
        span.record("notifications", log.len());
        span.record("outcome", if ok { "repeated" } else { "repeat_failed" });
        store
            .finish_group(&ch.name, &g.group_key, &log, next, now)
            .await?;
        return Ok(ok);
    }
    let digest = Digest {
        group_key: g.group_key.clone(),
        items: g.items,
    };
    let start = Instant::now();
    let result = deliver(client, cfg, ch, &digest).await;
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let ok = result.ok();
    // a receiver's Retry-After wins over our backoff (bounded to an hour)
    let mut retry_at = NEVER;
    let log: Vec<Attempt> = digest
        .items
        .iter()
        .map(|c| {
            let attempt = c.attempts + 1;
            let outcome = if ok {
                "delivered"
            } else if attempt >= ch.max_attempts {
                "dead"
            } else {
                "retry"
            };
            let wait = match result.retry_after {
                Some(ra) => ra.min(Duration::from_secs(3600)),
                None => backoff(cfg, attempt),
            };
            let at = now + wait.as_micros() as i64;
            if outcome == "retry" {
                retry_at = retry_at.min(at);
            }
            Attempt {
                outbox_id: c.outbox_id,
                channel: ch.name.clone(),
                attempt,
                status_code: result.status.map(i64::from),
                error: result.error.clone(),
                duration_ms: ms,
                outcome: outcome.into(),
                next_attempt_at: at,
            }
        })
        .collect();
    let n = log.len();
    crate::metrics::alert_attempts(&log);
    tracing::Span::current().record(
        "outcome",
        match (ok, retry_at) {
            (true, _) => "delivered",
            (false, NEVER) => "dead",
            (false, _) => "retry",
        },
    );
    match (ok, retry_at) {
        (true, _) => {
            tracing::info!(channel = %ch.name, group = %digest.group_key, notifications = n, "notifications delivered")
        }
        (false, NEVER) => {
            tracing::warn!(channel = %ch.name, group = %digest.group_key, notifications = n, error = ?result.error, status = ?result.status, "notifications dead-lettered after the last attempt")
        }
        (false, _) => {
            tracing::info!(channel = %ch.name, group = %digest.group_key, notifications = n, status = ?result.status, error = ?result.error, retry_in_ms = (retry_at - now) / 1000, "send failed; will retry")
        }
    }
    let next = GroupNext {
        sent: ok,
        if_pending: if !ok && retry_at != NEVER {
            retry_at
        } else {
            now + interval_us
        },
        if_idle: idle,
        attempts: 0,
    };
    store
        .finish_group(&ch.name, &digest.group_key, &log, next, now)
        .await?;
    Ok(ok)
}

/// Sends a digest through its channel kind.
pub async fn deliver(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    d: &Digest,
) -> SendResult {
    match ch.kind.as_str() {
        "webhook" => webhook::send(client, cfg, ch, d).await,
        "slack" => slack::send(client, cfg, ch, d).await,
        "pagerduty" => pagerduty::send(client, cfg, ch, d).await,
        "email" => email::send(cfg, ch, d).await,
        other => SendResult::failed(format!("channel kind `{other}` is not supported")),
    }
}

/// Sends a test notification through a channel and returns the receiver's real answer.
/// PagerDuty gets a `trigger` followed by a `resolve` of the same test incident.
pub async fn test_send(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
) -> SendResult {
    let id = format!("test-{}", uuid::Uuid::new_v4());
    let violation = json!({
        "id": id, "series_key": "series|test-site|test-host|test|test-model|latency_ms",
        "site": "test-site", "host": "test-host", "provider": "test", "model": "test-model",
        "metric": "latency_ms", "rule": 1, "status": "open", "opened_at": now_us(),
        "points": [{"ts": now_us(), "value": 1234.5}],
        "baseline": {"center": 800.0, "sigma": 100.0, "ucl": 1100.0, "lcl": 500.0},
    });
    let mut item = Claimed {
        outbox_id: 0,
        channel: ch.name.clone(),
        attempts: 0,
        event: "test".into(),
        violation_id: id,
        labels:
            json!({"site": "test-site", "model": "test-model", "severity": "info", "rule": "1"})
                .to_string(),
        violation,
    };
    let mut d = Digest {
        group_key: "test".into(),
        items: vec![item.clone()],
    };
    let r = deliver(client, cfg, ch, &d).await;
    if ch.kind == "pagerduty" && r.ok() {
        item.event = "resolved".into();
        d.items = vec![item];
        let _ = deliver(client, cfg, ch, &d).await;
    }
    r
}

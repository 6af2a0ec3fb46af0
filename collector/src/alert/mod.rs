//! Alert delivery over the transactional outbox.
//!
//! Guarantees:
//! - A violation opening or resolving writes an outbox row in the same transaction as the
//!   violation (see [`crate::live`]). The dispatcher fans each outbox row out to one
//!   notification per channel, in the database, so a restart loses nothing.
//! - Notifications are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so
//!   several replicas never send the same notification at the same time; a replica that dies
//!   mid-send lets its lease expire and another one retries (at-least-once: receivers can
//!   dedupe on the `X-LLMscope-Delivery` header).
//! - Failures are retried with exponential backoff and full jitter, honouring `Retry-After`;
//!   every attempt is logged (`deliveries`); after `max_attempts` the notification is dead.
//!
//! Channels: [`webhook`] (HMAC-SHA256 signed JSON), [`slack`] (Block Kit, ≤ 1 message/s per
//! webhook), [`pagerduty`] (Events API v2). Email, grouping, routing and silences are not built
//! yet.

pub mod pagerduty;
pub mod slack;
pub mod webhook;

use std::time::{Duration, Instant};

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::store::alerts::{Attempt, ChannelRow, Claimed};
use crate::store::{Store, StoreError, now_us};

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
    /// Channels declared here are created or updated at start (and removed when gone).
    pub channels: Vec<ChannelConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            public_url: "http://localhost:8080".into(),
            poll_interval: Duration::from_millis(250),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            channels: Vec::new(),
        }
    }
}

/// One channel in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelConfig {
    /// Unique name.
    pub name: String,
    /// `webhook`.
    pub kind: String,
    /// Receiver URL (webhook, Slack incoming webhook; PagerDuty: the Events API endpoint,
    /// default the public one).
    #[serde(default)]
    pub url: String,
    /// PagerDuty: severity per rule number, e.g. `{ "1" = "critical", "7" = "warning" }`.
    #[serde(default)]
    pub severity: std::collections::BTreeMap<String, String>,
    /// Webhook signing secret or PagerDuty routing key (prefer `secret_env`).
    #[serde(default)]
    pub secret: Option<String>,
    /// Environment variable holding the signing secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Attempts before the notification is dead-lettered.
    #[serde(default = "default_attempts")]
    pub max_attempts: i64,
}

fn default_attempts() -> i64 {
    8
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
            if !matches!(c.kind.as_str(), "webhook" | "slack" | "pagerduty") {
                return Err(format!(
                    "{at}: `kind` `{}` is not supported yet; use webhook, slack or pagerduty",
                    c.kind
                ));
            }
            let url = if c.url.is_empty() && c.kind == "pagerduty" {
                pagerduty::DEFAULT_URL.to_owned()
            } else {
                c.url.clone()
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!("{at}: `url` must start with http:// or https://"));
            }
            for (rule, sev) in &c.severity {
                if !matches!(rule.as_str(), "1" | "2" | "3" | "4" | "5" | "6" | "7" | "8")
                    || !matches!(sev.as_str(), "critical" | "error" | "warning" | "info")
                {
                    return Err(format!(
                        "{at}: `severity` maps rule numbers 1..8 to critical, error, warning or info; got `{rule}` = `{sev}`"
                    ));
                }
            }
            if c.kind == "pagerduty" && c.secret.is_none() && c.secret_env.is_none() {
                return Err(format!(
                    "{at}: PagerDuty needs the routing key in `secret` or `secret_env`"
                ));
            }
            if c.max_attempts < 1 {
                return Err(format!("{at}: `max_attempts` must be at least 1"));
            }
            let secret = match (&c.secret, &c.secret_env) {
                (Some(s), None) => s.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| {
                    format!("{at}: environment variable {var} (`secret_env`) is not set")
                })?,
                (None, None) => String::new(),
                (Some(_), Some(_)) => {
                    return Err(format!("{at}: set `secret` or `secret_env`, not both"));
                }
            };
            out.push(ChannelRow {
                name: c.name.clone(),
                kind: c.kind.clone(),
                config: serde_json::json!({"url": url, "severity": c.severity}).to_string(),
                secret,
                max_attempts: c.max_attempts,
                source: "config".into(),
            });
        }
        Ok(out)
    }
}

/// What a channel answered.
#[derive(Debug, Clone, PartialEq)]
pub struct SendResult {
    /// HTTP status, if any.
    pub status: Option<u16>,
    /// Error text on failure.
    pub error: Option<String>,
    /// `Retry-After`, if the receiver sent one.
    pub retry_after: Option<Duration>,
}

impl SendResult {
    fn ok(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Backoff with full jitter: random in [base, min(max, base·2^(attempt−1))].
pub fn backoff(cfg: &AlertsConfig, attempt: i64) -> Duration {
    let base = cfg.retry_base.as_secs_f64();
    let cap = cfg.retry_max.as_secs_f64().max(base);
    let upper = (base * 2f64.powi((attempt - 1).clamp(0, 30) as i32)).min(cap);
    Duration::from_secs_f64(rand::rng().random_range(base..=upper.max(base)))
}

/// When each rate-limited channel may send next.
pub type RateLimits = std::collections::HashMap<String, Instant>;

/// Runs the dispatcher until the task is aborted.
pub async fn dispatcher(store: Store, cfg: AlertsConfig, client: reqwest::Client) {
    let mut tick = tokio::time::interval(cfg.poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut limits = RateLimits::new();
    loop {
        tick.tick().await;
        if let Err(e) = run_once(&store, &cfg, &client, &mut limits).await {
            tracing::warn!(error = %e, "alert dispatcher: run failed; will retry");
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
    let url = serde_json::from_str::<serde_json::Value>(&ch.config)
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
        Err(e) => SendResult {
            status: None,
            error: Some(format!("request failed: {e}")),
            retry_after: None,
        },
        Ok(r) => {
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let ok = (200..300).contains(&status);
            let text = if ok {
                String::new()
            } else {
                r.text().await.unwrap_or_default()
            };
            SendResult {
                status: Some(status),
                error: (!ok).then(|| {
                    format!(
                        "HTTP {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )
                }),
                retry_after,
            }
        }
    }
}

/// Expands the outbox, claims due notifications and sends them; returns how many were sent.
/// Rate-limited channels (Slack) send at most one per interval; the others claimed in the
/// same run are released to later runs.
pub async fn run_once(
    store: &Store,
    cfg: &AlertsConfig,
    client: &reqwest::Client,
    limits: &mut RateLimits,
) -> Result<usize, StoreError> {
    store.expand_outbox().await?;
    let now = now_us();
    let lease = (cfg.timeout * 3).as_micros() as i64;
    let claimed = store.claim_notifications(now, now + lease, 64).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let channels = store.channels().await?;
    let mut sends = Vec::new();
    for c in claimed {
        let Some(ch) = channels.iter().find(|x| x.name == c.channel).cloned() else {
            continue; // channel removed: leave the notification; nothing to send it to
        };
        if ch.kind == "slack" {
            let now = Instant::now();
            if limits.get(&ch.name).is_some_and(|t| *t > now) {
                store.release_claim(c.outbox_id, &c.channel).await?;
                continue;
            }
            limits.insert(ch.name.clone(), now + slack::MIN_INTERVAL);
        }
        let (client, cfg) = (client.clone(), cfg.clone());
        sends.push(tokio::spawn(async move {
            (deliver(&client, &cfg, &ch, &c).await, ch, c)
        }));
    }
    let n = sends.len();
    for s in sends {
        let Ok(((result, ms), ch, c)) = s.await else {
            continue;
        };
        let attempt = c.attempts + 1;
        let outcome = if result.ok() {
            "delivered"
        } else if attempt >= ch.max_attempts {
            "dead"
        } else {
            "retry"
        };
        // a receiver's Retry-After wins over our backoff (bounded to an hour)
        let wait = match result.retry_after {
            Some(ra) => ra.min(Duration::from_secs(3600)),
            None => backoff(cfg, attempt),
        };
        match outcome {
            "delivered" => {
                tracing::info!(channel = %ch.name, outbox = c.outbox_id, attempt, "notification delivered")
            }
            "dead" => {
                tracing::warn!(channel = %ch.name, outbox = c.outbox_id, attempt, error = ?result.error, status = ?result.status, "notification dead-lettered after the last attempt")
            }
            _ => {
                tracing::info!(channel = %ch.name, outbox = c.outbox_id, attempt, status = ?result.status, error = ?result.error, retry_in_ms = wait.as_millis() as u64, "notification failed; will retry")
            }
        }
        store
            .record_attempt(
                &Attempt {
                    outbox_id: c.outbox_id,
                    channel: ch.name.clone(),
                    attempt,
                    status_code: result.status.map(i64::from),
                    error: result.error.clone(),
                    duration_ms: ms,
                    outcome: outcome.into(),
                    next_attempt_at: now_us() + wait.as_micros() as i64,
                },
                now_us(),
            )
            .await?;
    }
    Ok(n)
}

async fn deliver(
    client: &reqwest::Client,
    cfg: &AlertsConfig,
    ch: &ChannelRow,
    c: &Claimed,
) -> (SendResult, f64) {
    let start = Instant::now();
    let r = match ch.kind.as_str() {
        "webhook" => webhook::send(client, cfg, ch, c).await,
        "slack" => slack::send(client, cfg, ch, c).await,
        "pagerduty" => pagerduty::send(client, cfg, ch, c).await,
        other => SendResult {
            status: None,
            error: Some(format!("channel kind `{other}` is not supported")),
            retry_after: None,
        },
    };
    (r, start.elapsed().as_secs_f64() * 1e3)
}

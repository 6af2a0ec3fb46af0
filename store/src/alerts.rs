//! Persistence of alert delivery: channels, notifications (one per outbox row and channel)
//! and the delivery log. Times are Unix microseconds; one SQL text serves both backends except
//! the claim, which uses `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer).

use llmscope_model::{
    AlertEvent, ChannelKind, DeliveryOutcome, Detector, NotificationState, Severity, Violation,
};
use sqlx::Row;

use crate::audit::{Audit, audit_in};
use crate::{Store, StoreError};

fn parse_col<T: std::str::FromStr>(what: &'static str, s: String) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| StoreError::decode(what, &s, e))
}

/// A stored channel (its `Debug` hides the secret).
#[derive(Clone, PartialEq)]
pub struct ChannelRow {
    /// Unique name.
    pub name: String,
    /// Kind.
    pub kind: ChannelKind,
    /// JSON configuration without secrets.
    pub config: String,
    /// Signing secret (never returned by the API, never logged).
    pub secret: String,
    /// Attempts before a notification is dead-lettered.
    pub max_attempts: i64,
    /// `config` or `api`.
    pub source: String,
}

impl std::fmt::Debug for ChannelRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelRow")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("config", &self.config)
            .field("secret", &"***")
            .field("max_attempts", &self.max_attempts)
            .field("source", &self.source)
            .finish()
    }
}

/// One notification in a claimed group.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Outbox row.
    pub outbox_id: i64,
    /// Channel name.
    pub channel: String,
    /// Attempts so far.
    pub attempts: i64,
    /// `opened`, `resolved` (or `repeat` for a reminder of a still-open violation).
    pub event: AlertEvent,
    /// The violation.
    pub violation_id: String,
    /// Routing labels (JSON object: site, host, provider, model, metric, source, rule,
    /// detector, severity).
    pub labels: String,
    /// The violation as stored now (`None` if it was deleted).
    pub violation: Option<Violation>,
    /// The other violations of the incident it leads, as stored now (oldest first).
    pub members: Vec<Violation>,
}

impl Claimed {
    /// Loads the violation and its incident's members as stored now.
    async fn load(&mut self, store: &Store) -> Result<(), StoreError> {
        self.violation = store.get_violation(&self.violation_id).await?;
        self.members = match &self.violation {
            Some(v) if v.leads() => store
                .incident_members(&v.id)
                .await?
                .into_iter()
                .filter(|m| m.id != v.id)
                .collect(),
            _ => Vec::new(),
        };
        Ok(())
    }
}

/// A group claimed for delivery: everything pending in it goes out as one message.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedGroup {
    /// Channel name.
    pub channel: String,
    /// Group key (`site=…,model=…` by default).
    pub group_key: String,
    /// When the group last went out (0: never).
    pub last_sent_at: i64,
    /// Failed reminder sends in a row.
    pub attempts: i64,
    /// Pending notifications; empty when the group is due only for a reminder.
    pub items: Vec<Claimed>,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Outbox row.
    pub outbox_id: i64,
    /// Channel.
    pub channel: String,
    /// Attempt number (1-based; 0 for reminders).
    pub attempt: i64,
    /// HTTP status, when there was an answer.
    pub status_code: Option<i64>,
    /// Error text, when it failed.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: f64,
    /// What became of it (`retry` comes with `next_attempt_at`).
    pub outcome: DeliveryOutcome,
    /// When to retry.
    pub next_attempt_at: i64,
}

/// An outbox row waiting to be routed, with the labels of its violation.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxItem {
    /// Outbox row.
    pub id: i64,
    /// Violation.
    pub violation_id: String,
    /// `opened` or `resolved`.
    pub event: AlertEvent,
    /// Site.
    pub site: String,
    /// Host.
    pub host: String,
    /// Provider.
    pub provider: String,
    /// Model.
    pub model: String,
    /// Metric.
    pub metric: String,
    /// Source.
    pub source: String,
    /// Rule number (0 unless a Nelson rule).
    pub rule: u8,
    /// What found it.
    pub detector: Detector,
    /// Its severity (fixed when it opened).
    pub severity: Severity,
}

/// Where routing sends one outbox row.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// Channel.
    pub channel: String,
    /// Group key.
    pub group_key: String,
    /// Routing labels (JSON).
    pub labels: String,
    /// The silence that mutes it (recorded as suppressed), if any.
    pub silenced_by: Option<String>,
    /// Wait before a new group's first message (µs).
    pub group_wait: i64,
    /// Wait between messages of one group (µs).
    pub group_interval: i64,
}

/// How a group moves on after a send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupNext {
    /// Whether the message went out (updates `last_sent_at`).
    pub sent: bool,
    /// Next due time if notifications are still pending in the group.
    pub if_pending: i64,
    /// Next due time otherwise (reminder check, or [`NEVER`]).
    pub if_idle: i64,
    /// Failed reminder sends in a row after this one.
    pub attempts: i64,
}

/// "Nothing due" for a group.
pub const NEVER: i64 = i64::MAX;

/// A stored route.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RouteRow {
    /// Id.
    pub id: i64,
    /// Order of evaluation (lowest first).
    pub position: i64,
    /// Label matchers (JSON object).
    pub matchers: serde_json::Value,
    /// Channels the route sends to.
    pub channels: Vec<String>,
    /// Keep evaluating later routes after a match.
    #[serde(rename = "continue")]
    pub continue_matching: bool,
    /// `config` or `api`.
    pub source: String,
}

/// A stored silence.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SilenceRow {
    /// Id (UUID).
    pub id: String,
    /// Label matchers (JSON object).
    pub matchers: serde_json::Value,
    /// Start (µs).
    pub starts_at: i64,
    /// End (µs).
    pub ends_at: i64,
    /// Why.
    pub comment: String,
    /// Who.
    pub created_by: String,
    /// Created (µs).
    pub created_at: i64,
    /// `config` or `api`.
    pub source: String,
}

/// One delivery log row.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeliveryRow {
    /// Outbox row.
    pub outbox_id: i64,
    /// Channel.
    pub channel: String,
    /// Attempt number.
    pub attempt: i64,
    /// When (µs).
    pub at: i64,
    /// HTTP status (SMTP reply code for email).
    pub status_code: Option<i64>,
    /// Error text.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: f64,
    /// Outcome.
    pub outcome: DeliveryOutcome,
}

impl Store {
    /// Creates or updates channels declared in the config file and removes config-declared
    /// channels that are no longer there (API-created channels are left alone).
    pub async fn reconcile_channels(
        &self,
        channels: &[ChannelRow],
        now: i64,
    ) -> Result<(), StoreError> {
        const UPSERT: &str = "INSERT INTO channels (name, kind, config, secret, max_attempts, source, created_at) VALUES ($1, $2, $3, $4, $5, 'config', $6)
            ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config, secret = excluded.secret, max_attempts = excluded.max_attempts, source = 'config'";
        const GONE: &str = "DELETE FROM channels WHERE source = 'config' AND name = $1";
        let keep: std::collections::HashSet<&str> =
            channels.iter().map(|c| c.name.as_str()).collect();
        let existing = self.channels().await?;
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for c in channels {
                sqlx::query(UPSERT).bind(&c.name).bind(c.kind.as_str()).bind(&c.config).bind(&c.secret).bind(c.max_attempts).bind(now).execute(&mut *tx).await?;
            }
            for c in existing.iter().filter(|c| c.source == "config" && !keep.contains(c.name.as_str())) {
                sqlx::query(GONE).bind(&c.name).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Every channel.
    pub async fn channels(&self) -> Result<Vec<ChannelRow>, StoreError> {
        const SQL: &str =
            "SELECT name, kind, config, secret, max_attempts, source FROM channels ORDER BY name";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok(ChannelRow {
                name: r.try_get("name")?,
                kind: parse_col("channel kind", r.try_get("kind")?)?,
                config: r.try_get("config")?,
                secret: r.try_get("secret")?,
                max_attempts: r.try_get("max_attempts")?,
                source: r.try_get("source")?,
            }))
            .collect::<Result<Vec<_>, StoreError>>()?);
        Ok(rows)
    }

    /// Routes pending outbox rows (oldest first, at most `limit`): `plan` says which channels
    /// and groups each goes to; notifications are inserted (silenced ones as `suppressed`, with
    /// a delivery-log row saying which silence), their groups made due, and the outbox rows
    /// marked expanded — all in one transaction. Several replicas never expand the same row.
    /// Returns how many outbox rows were expanded.
    pub async fn expand_outbox(
        &self,
        now: i64,
        limit: i64,
        plan: &(dyn Fn(&OutboxItem) -> Vec<Planned> + Send + Sync),
    ) -> Result<u64, StoreError> {
        let lock = self.skip_locked();
        let pick = format!(
            "SELECT o.id, o.violation_id, o.event, v.site, v.host, v.provider, v.model, v.metric, v.source, v.rule, v.detector, v.severity
             FROM outbox o JOIN violations v ON v.id = o.violation_id
             WHERE o.state = 'pending' ORDER BY o.id LIMIT $1{}",
            if lock.is_empty() { "" } else { " FOR UPDATE OF o SKIP LOCKED" }
        );
        // outbox rows whose violation is gone can never be routed
        const ORPHANS: &str = "UPDATE outbox SET state = 'orphaned' WHERE state = 'pending' AND NOT EXISTS (SELECT 1 FROM violations v WHERE v.id = outbox.violation_id)";
        const INSERT: &str = "INSERT INTO notifications (outbox_id, channel, state, group_key, violation_id, labels, created_at, last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING";
        const LOG: &str = "INSERT INTO deliveries (outbox_id, channel, attempt, at, status_code, error, duration_ms, outcome) VALUES ($1, $2, 0, $3, NULL, $4, 0, 'suppressed')";
        // due = the earlier of what is due now (a reminder, a retry, an earlier change) and
        // when this change may go out: a new group after group_wait, else after group_interval
        const GROUP: &str = "INSERT INTO alert_groups (channel, group_key, last_sent_at, next_due, claimed_until) VALUES ($1, $2, 0, $3, 0)
            ON CONFLICT (channel, group_key) DO UPDATE SET next_due = CASE WHEN alert_groups.next_due < (CASE
                WHEN alert_groups.last_sent_at = 0 THEN $3
                WHEN alert_groups.last_sent_at + $4 > $5 THEN alert_groups.last_sent_at + $4
                ELSE $5 END) THEN alert_groups.next_due ELSE (CASE
                WHEN alert_groups.last_sent_at = 0 THEN $3
                WHEN alert_groups.last_sent_at + $4 > $5 THEN alert_groups.last_sent_at + $4
                ELSE $5 END) END";
        const DONE: &str = "UPDATE outbox SET state = 'expanded' WHERE id = $1";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(ORPHANS).execute(&mut *tx).await?;
            let rows = sqlx::query(&pick).bind(limit).fetch_all(&mut *tx).await?;
            let mut n = 0u64;
            for r in &rows {
                let item = OutboxItem {
                    id: r.try_get("id")?,
                    violation_id: r.try_get("violation_id")?,
                    event: parse_col("outbox event", r.try_get("event")?)?,
                    site: r.try_get("site")?,
                    host: r.try_get("host")?,
                    provider: r.try_get("provider")?,
                    model: r.try_get("model")?,
                    metric: r.try_get("metric")?,
                    source: r.try_get("source")?,
                    rule: u8::try_from(r.try_get::<i64, _>("rule")?).unwrap_or(0),
                    detector: parse_col("violation detector", r.try_get("detector")?)?,
                    severity: Severity::Info,
                };
                let sev: String = r.try_get("severity")?;
                let item = OutboxItem {
                    severity: if sev.is_empty() {
                        Severity::default_for(item.detector, item.rule)
                    } else {
                        parse_col("violation severity", sev)?
                    },
                    ..item
                };
                for pl in plan(&item) {
                    let state = if pl.silenced_by.is_some() { NotificationState::Suppressed } else { NotificationState::Pending }.as_str();
                    let inserted = sqlx::query(INSERT).bind(item.id).bind(&pl.channel).bind(state).bind(&pl.group_key)
                        .bind(&item.violation_id).bind(&pl.labels).bind(now).bind(&pl.silenced_by)
                        .execute(&mut *tx).await?.rows_affected();
                    if inserted == 0 {
                        continue;
                    }
                    if let Some(why) = &pl.silenced_by {
                        sqlx::query(LOG).bind(item.id).bind(&pl.channel).bind(now).bind(why).execute(&mut *tx).await?;
                    } else {
                        sqlx::query(GROUP).bind(&pl.channel).bind(&pl.group_key).bind(now + pl.group_wait)
                            .bind(pl.group_interval).bind(now).execute(&mut *tx).await?;
                    }
                }
                sqlx::query(DONE).bind(item.id).execute(&mut *tx).await?;
                n += 1;
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Claims up to `limit` due groups until `lease_until` with their pending notifications
    /// (and each violation as stored now); several replicas never claim the same group.
    pub async fn claim_groups(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<ClaimedGroup>, StoreError> {
        let claim = format!(
            "UPDATE alert_groups SET claimed_until = $1 WHERE (channel, group_key) IN (
               SELECT channel, group_key FROM alert_groups WHERE next_due <= $2 AND claimed_until < $2
               ORDER BY next_due LIMIT $3{})
             RETURNING channel, group_key, last_sent_at, attempts",
            self.skip_locked()
        );
        const ITEMS: &str = "SELECT n.outbox_id, n.attempts, n.violation_id, n.labels, o.event FROM notifications n JOIN outbox o ON o.id = n.outbox_id
            WHERE n.channel = $1 AND n.group_key = $2 AND n.state = 'pending' ORDER BY n.outbox_id";
        let mut groups = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let rows = sqlx::query(&claim).bind(lease_until).bind(now).bind(limit).fetch_all(&mut *tx).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let (channel, group_key): (String, String) = (r.try_get("channel")?, r.try_get("group_key")?);
                let items = sqlx::query(ITEMS).bind(&channel).bind(&group_key).fetch_all(&mut *tx).await?
                    .iter().map(|i| Ok(Claimed {
                        outbox_id: i.try_get("outbox_id")?,
                        channel: channel.clone(),
                        attempts: i.try_get("attempts")?,
                        event: parse_col("outbox event", i.try_get("event")?)?,
                        violation_id: i.try_get("violation_id")?,
                        labels: i.try_get("labels")?,
                        violation: None,
                        members: Vec::new(),
                    })).collect::<Result<Vec<_>, StoreError>>()?;
                out.push(ClaimedGroup { channel, group_key, last_sent_at: r.try_get("last_sent_at")?, attempts: r.try_get("attempts")?, items });
            }
            tx.commit().await?;
            out
        });
        for g in &mut groups {
            for it in &mut g.items {
                it.load(self).await?;
            }
        }
        Ok(groups)
    }

    /// Violations of a group that were announced on its channel and are still open (for
    /// reminders), with the outbox row that announced them and their labels.
    pub async fn open_in_group(
        &self,
        channel: &str,
        group_key: &str,
    ) -> Result<Vec<Claimed>, StoreError> {
        const SQL: &str = "SELECT n.outbox_id, n.violation_id, n.labels FROM notifications n JOIN outbox o ON o.id = n.outbox_id JOIN violations v ON v.id = n.violation_id
            WHERE n.channel = $1 AND n.group_key = $2 AND n.state = 'delivered' AND o.event = 'opened' AND v.status = 'open' ORDER BY n.outbox_id";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(channel).bind(group_key).fetch_all(p).await?.iter()
            .map(|i| Ok(Claimed {
                outbox_id: i.try_get("outbox_id")?,
                channel: channel.to_owned(),
                attempts: 0,
                event: AlertEvent::Repeat,
                violation_id: i.try_get("violation_id")?,
                labels: i.try_get("labels")?,
                violation: None,
                members: Vec::new(),
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        let mut out = Vec::with_capacity(rows.len());
        for mut c in rows {
            c.load(self).await?;
            out.push(c);
        }
        Ok(out)
    }

    /// Records the attempts of one group send in the delivery log, moves each notification on
    /// and sets when the group is next due; releases the group's claim.
    pub async fn finish_group(
        &self,
        channel: &str,
        group_key: &str,
        attempts: &[Attempt],
        next: GroupNext,
        now: i64,
    ) -> Result<(), StoreError> {
        const LOG: &str = "INSERT INTO deliveries (outbox_id, channel, attempt, at, status_code, error, duration_ms, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        const NEXT: &str = "UPDATE notifications SET attempts = $1, state = $2, next_attempt_at = $3, claimed_until = 0, last_error = $4,
            delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END WHERE outbox_id = $6 AND channel = $7";
        const PENDING: &str = "SELECT COUNT(*) FROM notifications WHERE channel = $1 AND group_key = $2 AND state = 'pending'";
        const GROUP: &str = "UPDATE alert_groups SET next_due = $1, claimed_until = 0, attempts = $2,
            last_sent_at = CASE WHEN $3 = 1 THEN $4 ELSE last_sent_at END WHERE channel = $5 AND group_key = $6";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            for a in attempts {
                sqlx::query(LOG).bind(a.outbox_id).bind(&a.channel).bind(a.attempt).bind(now).bind(a.status_code).bind(&a.error).bind(a.duration_ms).bind(a.outcome.as_str()).execute(&mut *tx).await?;
                let Some(state) = a.outcome.state() else {
                    continue;
                };
                let state = state.as_str();
                sqlx::query(NEXT).bind(a.attempt).bind(state).bind(a.next_attempt_at).bind(&a.error).bind(now).bind(a.outbox_id).bind(&a.channel).execute(&mut *tx).await?;
            }
            let pending: i64 = sqlx::query_scalar(PENDING).bind(channel).bind(group_key).fetch_one(&mut *tx).await?;
            let due = if pending > 0 { next.if_pending } else { next.if_idle };
            sqlx::query(GROUP).bind(due).bind(next.attempts).bind(i64::from(next.sent)).bind(now).bind(channel).bind(group_key).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Gives a claimed group back untouched (rate limited or channel gone: try later).
    pub async fn release_group(
        &self,
        channel: &str,
        group_key: &str,
        due: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE alert_groups SET claimed_until = 0, next_due = $1 WHERE channel = $2 AND group_key = $3";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(due).bind(channel).bind(group_key).execute(p).await?;
        });
        Ok(())
    }

    /// (outbox id, channel, state, attempts) of every notification.
    pub async fn notifications(&self) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
        const SQL: &str = "SELECT outbox_id, channel, state, attempts FROM notifications ORDER BY outbox_id, channel";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("outbox_id")?, r.try_get("channel")?, r.try_get("state")?, r.try_get("attempts")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The delivery log, newest first.
    pub async fn deliveries(&self, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        const SQL: &str = "SELECT outbox_id, channel, attempt, at, status_code, error, duration_ms, outcome FROM deliveries ORDER BY id DESC LIMIT $1";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(limit).fetch_all(p).await?.iter()
            .map(|r| Ok(DeliveryRow {
                outbox_id: r.try_get("outbox_id")?,
                channel: r.try_get("channel")?,
                attempt: r.try_get("attempt")?,
                at: r.try_get("at")?,
                status_code: r.try_get("status_code")?,
                error: r.try_get("error")?,
                duration_ms: r.try_get("duration_ms")?,
                outcome: parse_col("delivery outcome", r.try_get("outcome")?)?,
            }))
            .collect::<Result<Vec<_>, StoreError>>()?);
        Ok(rows)
    }

    /// Pending notifications (for the outbox-depth gauge).
    pub async fn pending_notifications(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT (SELECT COUNT(*) FROM notifications WHERE state = 'pending') + (SELECT COUNT(*) FROM outbox WHERE state = 'pending')";
        let n: i64 = with_pool!(self, p => sqlx::query_scalar(SQL).fetch_one(p).await?);
        Ok(n)
    }

    /// Creates or replaces a channel (API); `secret: None` keeps the stored secret.
    pub async fn upsert_channel(
        &self,
        c: &ChannelRow,
        keep_secret: bool,
        now: i64,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO channels (name, kind, config, secret, max_attempts, source, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, config = excluded.config, max_attempts = excluded.max_attempts, source = excluded.source,
            secret = CASE WHEN $8 = 1 THEN channels.secret ELSE excluded.secret END";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(SQL).bind(&c.name).bind(c.kind.as_str()).bind(&c.config).bind(&c.secret).bind(c.max_attempts).bind(&c.source).bind(now).bind(i64::from(keep_secret)).execute(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes a channel; false when there was none.
    pub async fn delete_channel(
        &self,
        name: &str,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM channels WHERE name = $1";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(name).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Every route in evaluation order.
    pub async fn routes(&self) -> Result<Vec<RouteRow>, StoreError> {
        const SQL: &str = "SELECT id, position, matchers, channels, continue_matching, source FROM routes ORDER BY position, id";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| {
                let m: String = r.try_get("matchers")?;
                let c: String = r.try_get("channels")?;
                let cont: i64 = r.try_get("continue_matching")?;
                Ok(RouteRow {
                    id: r.try_get("id")?,
                    position: r.try_get("position")?,
                    matchers: serde_json::from_str(&m).unwrap_or_default(),
                    channels: serde_json::from_str(&c).unwrap_or_default(),
                    continue_matching: cont != 0,
                    source: r.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Adds a route; returns its id.
    pub async fn insert_route(
        &self,
        r: &RouteRow,
        now: i64,
        audit: Option<&Audit>,
    ) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO routes (position, matchers, channels, continue_matching, source, created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id";
        let id: i64 = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let id: i64 = sqlx::query_scalar(SQL).bind(r.position).bind(r.matchers.to_string())
                .bind(serde_json::to_string(&r.channels).unwrap_or_default()).bind(i64::from(r.continue_matching)).bind(&r.source).bind(now).fetch_one(&mut *tx).await?;
            // the entry names the route by the id it just got
            let a = audit.map(|a| a.with(&a.action, format!("route:{id}")));
            audit_in!(&mut *tx, a.as_ref());
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Deletes a route; false when there was none.
    pub async fn delete_route(&self, id: i64, audit: Option<&Audit>) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM routes WHERE id = $1";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Replaces the config-declared routes (API routes stay).
    pub async fn reconcile_routes(&self, routes: &[RouteRow], now: i64) -> Result<(), StoreError> {
        const GONE: &str = "DELETE FROM routes WHERE source = 'config'";
        const ADD: &str = "INSERT INTO routes (position, matchers, channels, continue_matching, source, created_at) VALUES ($1, $2, $3, $4, 'config', $5)";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(GONE).execute(&mut *tx).await?;
            for r in routes {
                sqlx::query(ADD).bind(r.position).bind(r.matchers.to_string()).bind(serde_json::to_string(&r.channels).unwrap_or_default())
                    .bind(i64::from(r.continue_matching)).bind(now).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Silences, newest first.
    pub async fn silences(&self) -> Result<Vec<SilenceRow>, StoreError> {
        const SQL: &str = "SELECT id, matchers, starts_at, ends_at, comment, created_by, created_at, source FROM silences ORDER BY created_at DESC, id";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| {
                let m: String = r.try_get("matchers")?;
                Ok(SilenceRow {
                    id: r.try_get("id")?,
                    matchers: serde_json::from_str(&m).unwrap_or_default(),
                    starts_at: r.try_get("starts_at")?,
                    ends_at: r.try_get("ends_at")?,
                    comment: r.try_get("comment")?,
                    created_by: r.try_get("created_by")?,
                    created_at: r.try_get("created_at")?,
                    source: r.try_get("source")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Stores a silence (replacing one with the same id).
    pub async fn upsert_silence(
        &self,
        s: &SilenceRow,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO silences (id, matchers, starts_at, ends_at, comment, created_by, created_at, source) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at = excluded.starts_at, ends_at = excluded.ends_at, comment = excluded.comment, created_by = excluded.created_by, source = excluded.source";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(SQL).bind(&s.id).bind(s.matchers.to_string()).bind(s.starts_at).bind(s.ends_at).bind(&s.comment).bind(&s.created_by).bind(s.created_at).bind(&s.source).execute(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// Ends a silence now (kept for the record); false when there is no such silence.
    pub async fn expire_silence(
        &self,
        id: &str,
        now: i64,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE silences SET ends_at = CASE WHEN ends_at > $1 THEN $1 ELSE ends_at END WHERE id = $2";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(now).bind(id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Removes config-declared silences whose ids are not in `keep`.
    pub async fn prune_config_silences(&self, keep: &[String]) -> Result<(), StoreError> {
        let existing = self.silences().await?;
        const SQL: &str = "DELETE FROM silences WHERE id = $1";
        for s in existing
            .iter()
            .filter(|s| s.source == "config" && !keep.contains(&s.id))
        {
            with_pool!(self, p => {
                sqlx::query(SQL).bind(&s.id).execute(p).await?;
            });
        }
        Ok(())
    }
}

//! Persistence of alert delivery: channels, notifications (one per outbox row and channel)
//! and the delivery log. Times are Unix microseconds; one SQL text serves both backends except
//! the claim, which uses `FOR UPDATE SKIP LOCKED` on PostgreSQL (SQLite has one writer).

use sqlx::Row;

use super::{Store, StoreError};

/// A stored channel.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelRow {
    /// Unique name.
    pub name: String,
    /// `webhook`.
    pub kind: String,
    /// JSON configuration without secrets.
    pub config: String,
    /// Signing secret (never returned by the API, never logged).
    pub secret: String,
    /// Attempts before a notification is dead-lettered.
    pub max_attempts: i64,
    /// `config` or `api`.
    pub source: String,
}

/// A notification claimed for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// Outbox row.
    pub outbox_id: i64,
    /// Channel name.
    pub channel: String,
    /// Attempts so far.
    pub attempts: i64,
    /// `opened` or `resolved`.
    pub event: String,
    /// The outbox payload (JSON).
    pub payload: String,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// Outbox row.
    pub outbox_id: i64,
    /// Channel.
    pub channel: String,
    /// Attempt number (1-based).
    pub attempt: i64,
    /// HTTP status, when there was an answer.
    pub status_code: Option<i64>,
    /// Error text, when it failed.
    pub error: Option<String>,
    /// Duration.
    pub duration_ms: f64,
    /// `delivered`, `retry` (with `next_attempt_at`) or `dead`.
    pub outcome: String,
    /// When to retry.
    pub next_attempt_at: i64,
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
                sqlx::query(UPSERT).bind(&c.name).bind(&c.kind).bind(&c.config).bind(&c.secret).bind(c.max_attempts).bind(now).execute(&mut *tx).await?;
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
                kind: r.try_get("kind")?,
                config: r.try_get("config")?,
                secret: r.try_get("secret")?,
                max_attempts: r.try_get("max_attempts")?,
                source: r.try_get("source")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Fans pending outbox rows out to one notification per channel (idempotent) and marks
    /// them expanded; returns how many outbox rows were expanded.
    pub async fn expand_outbox(&self) -> Result<u64, StoreError> {
        const MAX: &str = "SELECT COALESCE(MAX(id), 0) FROM outbox WHERE state = 'pending'";
        const FAN: &str = "INSERT INTO notifications (outbox_id, channel) SELECT o.id, c.name FROM outbox o CROSS JOIN channels c
            WHERE o.state = 'pending' AND o.id <= $1 ON CONFLICT DO NOTHING";
        const DONE: &str =
            "UPDATE outbox SET state = 'expanded' WHERE state = 'pending' AND id <= $1";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let max: i64 = sqlx::query_scalar(MAX).fetch_one(&mut *tx).await?;
            let n = if max > 0 {
                sqlx::query(FAN).bind(max).execute(&mut *tx).await?;
                sqlx::query(DONE).bind(max).execute(&mut *tx).await?.rows_affected()
            } else {
                0
            };
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Claims up to `limit` due notifications until `lease_until`; several replicas never
    /// claim the same one.
    pub async fn claim_notifications(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<Claimed>, StoreError> {
        let lock = match self {
            Store::Postgres(_) => " FOR UPDATE SKIP LOCKED",
            Store::Sqlite(_) => "",
        };
        let claim = format!(
            "UPDATE notifications SET claimed_until = $1 WHERE (outbox_id, channel) IN (
               SELECT outbox_id, channel FROM notifications WHERE state = 'pending' AND next_attempt_at <= $2 AND claimed_until < $2
               ORDER BY next_attempt_at, outbox_id LIMIT $3{lock})
             RETURNING outbox_id, channel, attempts"
        );
        const PAYLOAD: &str = "SELECT event, payload FROM outbox WHERE id = $1";
        let out = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let rows = sqlx::query(&claim).bind(lease_until).bind(now).bind(limit).fetch_all(&mut *tx).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let outbox_id: i64 = r.try_get("outbox_id")?;
                let o = sqlx::query(PAYLOAD).bind(outbox_id).fetch_one(&mut *tx).await?;
                out.push(Claimed {
                    outbox_id,
                    channel: r.try_get("channel")?,
                    attempts: r.try_get("attempts")?,
                    event: o.try_get("event")?,
                    payload: o.try_get("payload")?,
                });
            }
            tx.commit().await?;
            out
        });
        Ok(out)
    }

    /// Records an attempt in the delivery log and moves the notification on.
    pub async fn record_attempt(&self, a: &Attempt, now: i64) -> Result<(), StoreError> {
        const LOG: &str = "INSERT INTO deliveries (outbox_id, channel, attempt, at, status_code, error, duration_ms, outcome) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        const NEXT: &str = "UPDATE notifications SET attempts = $1, state = $2, next_attempt_at = $3, claimed_until = 0, last_error = $4,
            delivered_at = CASE WHEN $2 = 'delivered' THEN $5 ELSE delivered_at END WHERE outbox_id = $6 AND channel = $7";
        let state = match a.outcome.as_str() {
            "delivered" => "delivered",
            "dead" => "dead",
            _ => "pending",
        };
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(LOG).bind(a.outbox_id).bind(&a.channel).bind(a.attempt).bind(now).bind(a.status_code).bind(&a.error).bind(a.duration_ms).bind(&a.outcome).execute(&mut *tx).await?;
            sqlx::query(NEXT).bind(a.attempt).bind(state).bind(a.next_attempt_at).bind(&a.error).bind(now).bind(a.outbox_id).bind(&a.channel).execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Gives a claimed notification back without an attempt (rate limited: try later).
    pub async fn release_claim(&self, outbox_id: i64, channel: &str) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE notifications SET claimed_until = 0 WHERE outbox_id = $1 AND channel = $2";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(outbox_id).bind(channel).execute(p).await?;
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

    /// (outbox id, attempt, status code, outcome) of every logged attempt.
    pub async fn deliveries(&self) -> Result<Vec<(i64, i64, Option<i64>, String)>, StoreError> {
        const SQL: &str =
            "SELECT outbox_id, attempt, status_code, outcome FROM deliveries ORDER BY id";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("outbox_id")?, r.try_get("attempt")?, r.try_get("status_code")?, r.try_get("outcome")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }
}

//! The dispatcher: routes new outbox rows into notifications, claims due groups, sends each
//! as one digest through its channel, and records every attempt (see the crate docs for the
//! guarantees). Woken at once by violation [`LiveEvent`]s of this process; other replicas'
//! work is found on the poll.

use std::sync::Arc;
use std::time::{Duration, Instant};

use llmscope_model::{DeliveryOutcome, LiveEvent, SharedClock};
use llmscope_store::alerts::{
    Attempt, ChannelRow, Claimed, ClaimedGroup, GroupNext, NEVER, OutboxItem, Planned,
};
use llmscope_store::{Store, StoreError};
use rand::Rng;
use tokio::sync::broadcast;

use crate::channel::{self, SendContext};
use crate::config::AlertsConfig;
use crate::digest::Digest;
use crate::rate::{LocalGate, RateGate};
use crate::routing::{self, Router, Silencer};
use crate::transport::SendResult;

/// Groups claimed per dispatcher run.
pub const CLAIM_BATCH: i64 = 64;

/// Told about every delivery outcome (the collector counts them in `/metrics`).
pub trait DeliveryObserver: Send + Sync {
    /// `n` notifications of `channel` ended an attempt with `outcome`.
    fn outcome(&self, channel: &str, outcome: DeliveryOutcome, n: u64);

    /// One call per attempt of a send.
    fn attempts(&self, attempts: &[Attempt]) {
        for a in attempts {
            self.outcome(&a.channel, a.outcome, 1);
        }
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl DeliveryObserver for NoObserver {
    fn outcome(&self, _: &str, _: DeliveryOutcome, _: u64) {}
}

/// Backoff with full jitter: random in [base, min(max, base·2^(attempt−1))].
pub fn backoff(cfg: &AlertsConfig, attempt: i64) -> Duration {
    let base = cfg.retry_base.as_secs_f64();
    let cap = cfg.retry_max.as_secs_f64().max(base);
    let upper = (base * 2f64.powi((attempt - 1).clamp(0, 30) as i32)).min(cap);
    Duration::from_secs_f64(rand::rng().random_range(base..=upper.max(base)))
}

fn us(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The alert dispatcher of one process.
#[derive(Clone)]
pub struct Dispatcher {
    store: Store,
    cfg: Arc<AlertsConfig>,
    client: reqwest::Client,
    clock: SharedClock,
    observer: Arc<dyn DeliveryObserver>,
    gate: Arc<dyn RateGate>,
    /// Used when the shared gate cannot be reached.
    local: Arc<LocalGate>,
}

impl Dispatcher {
    /// A dispatcher over `store`.
    pub fn new(
        store: Store,
        cfg: Arc<AlertsConfig>,
        client: reqwest::Client,
        clock: SharedClock,
        observer: Arc<dyn DeliveryObserver>,
    ) -> Dispatcher {
        Dispatcher {
            store,
            cfg,
            client,
            clock,
            observer,
            gate: Arc::new(LocalGate::default()),
            local: Arc::new(LocalGate::default()),
        }
    }

    /// Rate limits decided by `gate` (cluster mode: shared by every replica) instead of this
    /// process alone.
    pub fn with_rate_gate(mut self, gate: Arc<dyn RateGate>) -> Dispatcher {
        self.gate = gate;
        self
    }

    /// Runs until the task is aborted: every `poll_interval`, and at once when `events`
    /// says a violation opened or resolved in this process.
    pub async fn run(self, mut events: broadcast::Receiver<LiveEvent>) {
        let mut tick = tokio::time::interval(self.cfg.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut listening = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                e = events.recv(), if listening => match e {
                    Ok(e) if e.wakes_dispatcher() => {}
                    Ok(_) => continue,
                    // missed events may have been violations: look now
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        listening = false;
                        continue;
                    }
                },
            }
            // one run serves every change announced so far: wake-ups coalesce
            while !matches!(
                events.try_recv(),
                Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
            ) {}
            // a full batch means more is due: go again without waiting for the tick
            loop {
                match self.run_once().await {
                    Ok(n) if n >= CLAIM_BATCH as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "alert dispatcher: run failed; will retry");
                        break;
                    }
                }
            }
        }
    }

    fn ctx(&self) -> SendContext<'_> {
        SendContext {
            client: &self.client,
            cfg: &self.cfg,
            now_us: self.clock.now_us(),
        }
    }

    /// Routes new outbox rows, claims due groups and sends them; returns how many groups
    /// were claimed.
    pub async fn run_once(&self) -> Result<usize, StoreError> {
        let (store, cfg) = (&self.store, &*self.cfg);
        let channels = store.channels().await?;
        let router = Router::new(
            &store.routes().await?,
            cfg.default_channels
                .clone()
                .unwrap_or_else(|| channels.iter().map(|c| c.name.clone()).collect()),
        );
        let silencer = Silencer::new(&store.silences().await?);
        let now = self.clock.now_us();
        let planner = |item: &OutboxItem| {
            let planned = plan(cfg, &router, &silencer, &channels, item, now);
            for p in planned.iter().filter(|p| p.silenced_by.is_some()) {
                self.observer
                    .outcome(&p.channel, DeliveryOutcome::Suppressed, 1);
            }
            planned
        };
        while store.expand_outbox(now, 500, &planner).await? == 500 {}
        let lease = us(cfg.timeout * 3);
        let groups = store.claim_groups(now, now + lease, CLAIM_BATCH).await?;
        let claimed = groups.len();
        let mut sends = Vec::new();
        for g in groups {
            let Some(ch) = channels.iter().find(|x| x.name == g.channel).cloned() else {
                // the channel was deleted: its notifications can never go out
                let attempts: Vec<Attempt> = g
                    .items
                    .iter()
                    .map(|c| dead(c, "channel was deleted"))
                    .collect();
                self.observer.attempts(&attempts);
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
            let silenced = |c: &Claimed| {
                let labels: routing::Labels = serde_json::from_str(&c.labels).unwrap_or_default();
                silencer.silenced_by(&labels, now)
            };
            let (muted, items): (Vec<_>, Vec<_>) =
                g.items.iter().cloned().partition(|c| silenced(c).is_some());
            if !muted.is_empty() {
                let attempts: Vec<Attempt> = muted
                    .iter()
                    .map(|c| {
                        let mut a = dead(c, &silenced(c).unwrap_or_default());
                        a.outcome = DeliveryOutcome::Suppressed;
                        a.attempt = c.attempts;
                        a
                    })
                    .collect();
                self.observer.attempts(&attempts);
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
            if let Some(gap) = channel::min_interval(&ch) {
                // the time of this decision, not of the run's start: the send follows at once
                let t = self.clock.now_us();
                let slot = match self.gate.reserve(&ch.name, us(gap), t).await {
                    Ok(slot) => slot,
                    Err(e) => {
                        tracing::warn!(channel = %ch.name, error = %e, "shared rate limit unreachable; limiting in this replica only");
                        self.local.take(&ch.name, us(gap), t)
                    }
                };
                if let Some(at) = slot {
                    store.release_group(&g.channel, &g.group_key, at).await?;
                    continue;
                }
            }
            let group = ClaimedGroup { items, ..g };
            let this = self.clone();
            sends.push(tokio::spawn(
                async move { this.send_group(&ch, group).await },
            ));
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

    /// Sends one claimed group (its pending notifications as one digest, or a reminder of
    /// its open violations) and records the outcome; true when a message went out.
    #[tracing::instrument(name = "alert_delivery", skip_all, fields(channel = %ch.name, kind = %ch.kind, group = %g.group_key, notifications = g.items.len(), outcome = tracing::field::Empty))]
    async fn send_group(&self, ch: &ChannelRow, g: ClaimedGroup) -> Result<bool, StoreError> {
        let (store, cfg) = (&self.store, &*self.cfg);
        let grouped = channel::grouped(ch.kind);
        let now = self.clock.now_us();
        let repeat_us = us(cfg.repeat_interval);
        let interval_us = if grouped { us(cfg.group_interval) } else { 0 };
        let reminders = repeat_us > 0 && grouped;
        let idle = if reminders { now + repeat_us } else { NEVER };
        if g.items.is_empty() {
            return self
                .send_reminder(ch, g, reminders, interval_us, idle)
                .await;
        }
        let digest = Digest {
            group_key: g.group_key.clone(),
            items: g.items,
        };
        let start = Instant::now();
        let result = channel::send(self.ctx(), ch, &digest).await;
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
                    DeliveryOutcome::Delivered
                } else if attempt >= ch.max_attempts {
                    DeliveryOutcome::Dead
                } else {
                    DeliveryOutcome::Retry
                };
                let wait = match result.retry_after {
                    Some(ra) => ra.min(Duration::from_secs(3600)),
                    None => backoff(cfg, attempt),
                };
                let at = now + us(wait);
                if outcome == DeliveryOutcome::Retry {
                    retry_at = retry_at.min(at);
                }
                attempt_of(c, ch, attempt, &result, ms, outcome, at)
            })
            .collect();
        let n = log.len();
        self.observer.attempts(&log);
        let outcome = match (ok, retry_at) {
            (true, _) => DeliveryOutcome::Delivered,
            (false, NEVER) => DeliveryOutcome::Dead,
            (false, _) => DeliveryOutcome::Retry,
        };
        tracing::Span::current().record("outcome", outcome.as_str());
        match outcome {
            DeliveryOutcome::Delivered => {
                tracing::info!(channel = %ch.name, group = %digest.group_key, notifications = n, "notifications delivered")
            }
            DeliveryOutcome::Dead => {
                tracing::warn!(channel = %ch.name, group = %digest.group_key, notifications = n, error = ?result.error, status = ?result.status, "notifications dead-lettered after the last attempt")
            }
            _ => {
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

    /// A group due only for a reminder of its still-open violations.
    async fn send_reminder(
        &self,
        ch: &ChannelRow,
        g: ClaimedGroup,
        reminders: bool,
        interval_us: i64,
        idle: i64,
    ) -> Result<bool, StoreError> {
        let (store, cfg) = (&self.store, &*self.cfg);
        let now = self.clock.now_us();
        let repeat_us = us(cfg.repeat_interval);
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
        let r = channel::send(self.ctx(), ch, &digest).await;
        let ms = start.elapsed().as_secs_f64() * 1e3;
        let ok = r.ok();
        let outcome = if ok {
            DeliveryOutcome::Repeated
        } else {
            DeliveryOutcome::RepeatFailed
        };
        let log: Vec<Attempt> = digest
            .items
            .iter()
            .map(|c| attempt_of(c, ch, 0, &r, ms, outcome, 0))
            .collect();
        let next = if ok {
            GroupNext {
                sent: true,
                if_pending: now + interval_us,
                if_idle: idle,
                attempts: 0,
            }
        } else {
            let wait = now + us(backoff(cfg, g.attempts + 1));
            GroupNext {
                sent: false,
                if_pending: wait,
                if_idle: wait,
                attempts: g.attempts + 1,
            }
        };
        tracing::info!(channel = %ch.name, group = %g.group_key, open = digest.items.len(), ok, "reminder of open violations");
        self.observer.attempts(&log);
        let span = tracing::Span::current();
        span.record("notifications", log.len());
        span.record("outcome", outcome.as_str());
        store
            .finish_group(&ch.name, &g.group_key, &log, next, now)
            .await?;
        Ok(ok)
    }

    /// Sends a test notification through a channel and returns the receiver's real answer.
    pub async fn test_send(&self, ch: &ChannelRow) -> SendResult {
        let ctx = self.ctx();
        let d = channel::test_digest(ch, ctx.now_us);
        channel::test(ctx, ch, &d).await
    }
}

fn attempt_of(
    c: &Claimed,
    ch: &ChannelRow,
    attempt: i64,
    r: &SendResult,
    duration_ms: f64,
    outcome: DeliveryOutcome,
    next_attempt_at: i64,
) -> Attempt {
    Attempt {
        outbox_id: c.outbox_id,
        channel: ch.name.clone(),
        attempt,
        status_code: r.status.map(i64::from),
        error: r.error.clone(),
        duration_ms,
        outcome,
        next_attempt_at,
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
    let labels = routing::labels(item);
    let silenced_by = silencer.silenced_by(&labels, now);
    let labels_json = serde_json::to_string(&labels).unwrap_or_default();
    router
        .channels(&labels)
        .into_iter()
        .filter_map(|name| {
            let ch = channels.iter().find(|c| c.name == name)?;
            let grouped = channel::grouped(ch.kind);
            Some(Planned {
                group_key: if grouped {
                    routing::group_key(&cfg.group_by, &labels)
                } else {
                    format!("violation={}", item.violation_id)
                },
                channel: name,
                labels: labels_json.clone(),
                silenced_by: silenced_by.clone(),
                group_wait: if grouped { us(cfg.group_wait) } else { 0 },
                group_interval: if grouped { us(cfg.group_interval) } else { 0 },
            })
        })
        .collect()
}

fn dead(c: &Claimed, why: &str) -> Attempt {
    Attempt {
        outbox_id: c.outbox_id,
        channel: c.channel.clone(),
        attempt: c.attempts + 1,
        status_code: None,
        error: Some(why.to_owned()),
        duration_ms: 0.0,
        outcome: DeliveryOutcome::Dead,
        next_attempt_at: 0,
    }
}

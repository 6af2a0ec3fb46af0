//! Alert delivery over the transactional outbox.
//!
//! **Owns** what happens after a violation opens or resolves: the `[alerts]` configuration
//! ([`config`]), the [`channel::Channel`]s (one file per kind), routing and silences
//! ([`routing`]), the message a group becomes ([`digest`]), HTTP transport ([`transport`])
//! and the [`dispatcher`]. It reads and writes through `llmscope-store`, is woken by
//! [`llmscope_model::LiveEvent`]s, and reports delivery outcomes to a
//! [`dispatcher::DeliveryObserver`] it is given (the collector's metrics).
//!
//! **Must not depend on** `llmscope-live` or the collector.
//!
//! Guarantees:
//! - A violation opening or resolving writes an outbox row in the same transaction as the
//!   violation (`llmscope-store`). The dispatcher routes each outbox row to channels
//!   (ordered routes with `continue`, else the default route) and writes one notification
//!   per channel, in the database, so a restart loses nothing. Silenced notifications are
//!   stored as `suppressed` with the silence named in the delivery log.
//! - Notifications are grouped per channel by `group_by` labels (default site + model), as
//!   Alertmanager does: a new group waits `group_wait`, later changes go out at most every
//!   `group_interval` as one digest, and open violations are re-announced after
//!   `repeat_interval`. Channels that are not grouped (PagerDuty) get one event per
//!   violation change and no reminders.
//! - Groups are claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), so several
//!   replicas never send the same notification at the same time; a replica that dies
//!   mid-send lets its lease expire and another one retries (at-least-once: receivers can
//!   dedupe on the violation id and event).
//! - Failures are retried with exponential backoff and full jitter, honouring `Retry-After`;
//!   every attempt is logged (`deliveries`); after `max_attempts` the notification is dead.
//!   Each channel can be rate limited (`min_interval`; Slack defaults to one per second);
//!   the limit is kept by a [`rate::RateGate`]: per process, or (cluster mode) shared by
//!   every replica.
//!
//! # Layout
//! - [`config`]: `[alerts]` and its validation (errors name the key).
//! - [`channel`]: the [`channel::Channel`] trait and [`channel::webhook`],
//!   [`channel::slack`], [`channel::pagerduty`], [`channel::email`].
//! - [`routing`]: label matchers, routes, silences, group keys.
//! - [`digest`]: one message per claimed group, its title and items.
//! - [`transport`]: JSON POSTs and what a receiver answered.
//! - [`dispatcher`]: routing outbox rows, claiming groups, sending, retries, reminders.
//! - [`rate`]: channel rate limits, per process or shared.
//! - [`targets`]: `alerts.deny_private_targets` (no channel reaches internal addresses).

pub mod channel;
pub mod config;
pub mod digest;
pub mod dispatcher;
pub mod rate;
pub mod routing;
pub mod targets;
pub mod transport;

pub use config::{AlertConfigError, AlertsConfig};
pub use dispatcher::{DeliveryObserver, Dispatcher};
pub use rate::{LocalGate, RateGate};
pub use transport::SendResult;

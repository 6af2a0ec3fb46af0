//! The vocabulary of alerting: what happened to a violation ([`AlertEvent`]), what became of
//! a delivery ([`DeliveryOutcome`], [`NotificationState`]), the [`ChannelKind`]s and the
//! [`Severity`] of a finding (defaults in [`crate::detector`]).

/// What a notification announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertEvent {
    /// A violation opened.
    Opened,
    /// A violation resolved.
    Resolved,
    /// A reminder that a violation is still open.
    Repeat,
    /// A test sent by hand.
    Test,
}

crate::text_enum!(AlertEvent, "alert event", {
    Opened => "opened",
    Resolved => "resolved",
    Repeat => "repeat",
    Test => "test",
});

/// The outcome of one delivery attempt (the delivery log and `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryOutcome {
    /// The receiver accepted it.
    Delivered,
    /// It failed and will be retried.
    Retry,
    /// It failed for the last time (or can never be sent).
    Dead,
    /// A silence muted it.
    Suppressed,
    /// A reminder went out.
    Repeated,
    /// A reminder failed (it is retried with backoff).
    RepeatFailed,
}

crate::text_enum!(DeliveryOutcome, "delivery outcome", {
    Delivered => "delivered",
    Retry => "retry",
    Dead => "dead",
    Suppressed => "suppressed",
    Repeated => "repeated",
    RepeatFailed => "repeat_failed",
});

impl DeliveryOutcome {
    /// The state a notification is in after an attempt with this outcome (`None`: a reminder
    /// that went out, which leaves the notification as it is). A failed reminder puts the
    /// notification back to pending, so it goes out again with the group's next message.
    pub fn state(self) -> Option<NotificationState> {
        match self {
            DeliveryOutcome::Delivered => Some(NotificationState::Delivered),
            DeliveryOutcome::Dead => Some(NotificationState::Dead),
            DeliveryOutcome::Suppressed => Some(NotificationState::Suppressed),
            DeliveryOutcome::Retry | DeliveryOutcome::RepeatFailed => {
                Some(NotificationState::Pending)
            }
            DeliveryOutcome::Repeated => None,
        }
    }
}

/// Where a notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotificationState {
    /// Waiting for its group to go out (or for a retry).
    Pending,
    /// Sent.
    Delivered,
    /// Gave up.
    Dead,
    /// Muted by a silence.
    Suppressed,
}

crate::text_enum!(NotificationState, "notification state", {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
    Suppressed => "suppressed",
});

/// A kind of alert channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelKind {
    /// A signed JSON POST.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// PagerDuty Events API v2.
    PagerDuty,
    /// Email over SMTP.
    Email,
}

crate::text_enum!(ChannelKind, "channel kind", {
    Webhook => "webhook",
    Slack => "slack",
    PagerDuty => "pagerduty",
    Email => "email",
});

/// How loud a notification is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// Page someone now.
    Critical,
    /// Page during working hours.
    Error,
    /// Look at it.
    Warning,
    /// For the record.
    Info,
}

crate::text_enum!(Severity, "severity", {
    Critical => "critical",
    Error => "error",
    Warning => "warning",
    Info => "info",
});

/// Parses a rule number given as text (`"1"`..`"8"`), as severity maps key them.
pub fn rule_number(s: &str) -> Option<u8> {
    s.parse::<u8>().ok().filter(|r| (1..=8).contains(r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_severities_have_one_text_each() {
        assert_eq!(
            "pagerduty".parse::<ChannelKind>(),
            Ok(ChannelKind::PagerDuty)
        );
        assert_eq!(ChannelKind::names(), "webhook, slack, pagerduty, email");
        assert_eq!(rule_number("8"), Some(8));
        assert_eq!(rule_number("9"), None);
        assert_eq!(
            DeliveryOutcome::Retry.state(),
            Some(NotificationState::Pending)
        );
    }
}

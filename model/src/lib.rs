//! LLMscope's domain types, shared by every server crate.
//!
//! **Owns** the vocabulary: a [`Sample`] and a host [`Telemetry`] snapshot, the [`Metric`]s a
//! sample yields (each metric's Rust formula and its SQL expression side by side), the one
//! [`SeriesId`] whose text form is written and parsed only here, the [`FrozenBaseline`] a
//! series is judged against (limits computed once from [`llmscope_spc::Baseline`]), the
//! typed [`Violation`] with its points and context, the enums of alerting (event, outcome,
//! channel kind, severity), the [`LiveEvent`]s the engine emits and the [`Clock`].
//!
//! **Must not depend on** anything that does I/O or runs async: no database, no network, no
//! runtime. Every server crate depends on this one; it depends only on `llmscope-spc`.
//!
//! # Layout
//! - [`plan`]: what planners set: SLOs, prices, monthly budgets.
//! - [`sample`]: samples, telemetry, source and call status.
//! - [`metric`]: the four per-series metrics, their formulas in Rust and SQL.
//! - [`series`]: [`SeriesId`] and the checks a name must pass to be part of one.
//! - [`baseline`]: [`Scope`], [`BaselineMode`] and [`FrozenBaseline`].
//! - [`violation`]: [`Violation`], its points, context and acknowledgement, [`violation_id`].
//! - [`alert`]: alert events, delivery outcomes, channel kinds, severities.
//! - [`detector`]: what judges a series, default severities and the severity map, the
//!   metrics judged per source.
//! - [`event`]: [`LiveEvent`], what the engine and the API announce on a broadcast channel.
//! - [`clock`]: [`Clock`], with a system clock and a manual one for tests.
//! - [`time`]: parsing and bounds of times (Unix µs inside, ms on the wire).
//! - [`secret`]: [`Secret`], a string that never shows in `Debug`.

pub mod alert;
pub mod baseline;
pub mod clock;
pub mod detector;
pub mod event;
pub mod metric;
pub mod plan;
pub mod sample;
pub mod secret;
pub mod series;
pub mod time;
pub mod violation;

pub use alert::{AlertEvent, ChannelKind, DeliveryOutcome, NotificationState, Severity};
pub use baseline::{BaselineMode, BaselineRecord, FrozenBaseline, Scope};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock, now_us};
pub use detector::{Detector, SeverityMap};
pub use event::{Evaluated, Judged, LiveEvent};
pub use metric::{Dialect, Metric};
pub use sample::{CallStatus, Gpu, Sample, ServerMetric, Source, Telemetry};
pub use secret::Secret;
pub use series::{NameError, SeriesId};
pub use violation::{
    Ack, ContextPoint, Point, Violation, ViolationStatus, finding_id, finding_title, rule_text,
    rule_title, violation_id,
};

/// An enum's text form did not match any variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {what}; use one of {allowed}")]
pub struct ParseEnumError {
    /// What was being parsed (`metric`, `scope`, …).
    pub what: &'static str,
    /// The text that did not parse.
    pub value: String,
    /// The accepted values, comma-separated.
    pub allowed: String,
}

/// Declares `as_str`, `ALL`, `Display` and `FromStr` for a fieldless enum from one table of
/// variants and text forms, so the text of each value is written once.
#[macro_export]
macro_rules! text_enum {
    ($ty:ident, $what:literal, { $($var:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$var),+];

            /// The text form (stored, on the wire, in configs).
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$var => $text),+
                }
            }

            /// The accepted text forms, comma-separated (for error messages).
            pub fn names() -> String {
                [$($text),+].join(", ")
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }

        impl ::std::str::FromStr for $ty {
            type Err = $crate::ParseEnumError;

            fn from_str(s: &str) -> Result<$ty, $crate::ParseEnumError> {
                match s {
                    $($text => Ok($ty::$var),)+
                    _ => Err($crate::ParseEnumError {
                        what: $what,
                        value: s.to_owned(),
                        allowed: $ty::names(),
                    }),
                }
            }
        }
    };
}

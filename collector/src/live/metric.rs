//! The metrics a sample yields (ARCHITECTURE §3).

use serde::{Deserialize, Serialize};

/// A per-series metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Whole-call latency.
    LatencyMs,
    /// Time to first token.
    TtftMs,
    /// Time per output token: (latency − ttft) / max(tokens_out − 1, 1).
    TpotMs,
    /// Output tokens per second after the first token: tokens_out / ((latency − ttft) / 1000).
    TokensPerS,
}

impl Metric {
    /// All metrics.
    pub const ALL: [Metric; 4] = [
        Metric::LatencyMs,
        Metric::TtftMs,
        Metric::TpotMs,
        Metric::TokensPerS,
    ];

    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::LatencyMs => "latency_ms",
            Metric::TtftMs => "ttft_ms",
            Metric::TpotMs => "tpot_ms",
            Metric::TokensPerS => "tokens_per_s",
        }
    }

    /// Parses the text form.
    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The value of this metric for a successful call, if the call carries it.
    pub fn value(
        self,
        latency_ms: f64,
        ttft_ms: Option<f64>,
        tokens_out: Option<i64>,
    ) -> Option<f64> {
        let v = match self {
            Metric::LatencyMs => Some(latency_ms),
            Metric::TtftMs => ttft_ms,
            Metric::TpotMs => {
                let (t, n) = (ttft_ms?, tokens_out?);
                Some((latency_ms - t) / ((n - 1).max(1) as f64))
            }
            Metric::TokensPerS => {
                let (t, n) = (ttft_ms?, tokens_out?);
                let gen_s = (latency_ms - t) / 1000.0;
                if gen_s <= 0.0 || n <= 0 {
                    return None;
                }
                Some(n as f64 / gen_s)
            }
        };
        v.filter(|x| x.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_metrics_follow_the_architecture() {
        assert_eq!(Metric::LatencyMs.value(1000.0, None, None), Some(1000.0));
        assert_eq!(Metric::TtftMs.value(1000.0, None, Some(5)), None);
        assert_eq!(
            Metric::TpotMs.value(1000.0, Some(200.0), Some(41)),
            Some(20.0)
        );
        assert_eq!(
            Metric::TpotMs.value(1000.0, Some(200.0), Some(1)),
            Some(800.0)
        );
        assert_eq!(
            Metric::TokensPerS.value(1200.0, Some(200.0), Some(50)),
            Some(50.0)
        );
        assert_eq!(Metric::TokensPerS.value(200.0, Some(200.0), Some(50)), None);
        assert_eq!(Metric::parse("tpot_ms"), Some(Metric::TpotMs));
    }
}

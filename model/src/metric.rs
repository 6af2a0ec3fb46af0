//! The metrics a sample yields (ARCHITECTURE §3): each metric's formula in Rust
//! ([`Metric::value`]) and in SQL ([`Metric::sql`]) side by side, so the engine, the chart
//! queries and the rollups compute the same numbers.

/// A per-series metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

crate::text_enum!(Metric, "metric", {
    LatencyMs => "latency_ms",
    TtftMs => "ttft_ms",
    TpotMs => "tpot_ms",
    TokensPerS => "tokens_per_s",
});

/// The SQL dialect an expression is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (`MAX(a, b)` is the scalar maximum).
    Sqlite,
    /// PostgreSQL (`GREATEST(a, b)`).
    Postgres,
}

impl Metric {
    /// The value of this metric for a successful call, if the call carries it (finite only).
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

    /// The same formula as [`Metric::value`] as a SQL expression over the columns
    /// `latency_ms`, `ttft_ms` and `tokens_out` of a `samples` row; NULL where `value` is
    /// `None`.
    pub fn sql(self, d: Dialect) -> &'static str {
        match (self, d) {
            (Metric::LatencyMs, _) => "latency_ms",
            (Metric::TtftMs, _) => "ttft_ms",
            (Metric::TpotMs, Dialect::Sqlite) => {
                "CASE WHEN ttft_ms IS NOT NULL AND tokens_out IS NOT NULL THEN (latency_ms - ttft_ms) / MAX(tokens_out - 1, 1) END"
            }
            (Metric::TpotMs, Dialect::Postgres) => {
                "CASE WHEN ttft_ms IS NOT NULL AND tokens_out IS NOT NULL THEN (latency_ms - ttft_ms) / GREATEST(tokens_out - 1, 1) END"
            }
            (Metric::TokensPerS, _) => {
                "CASE WHEN ttft_ms IS NOT NULL AND tokens_out > 0 AND latency_ms > ttft_ms THEN tokens_out / ((latency_ms - ttft_ms) / 1000.0) END"
            }
        }
    }

    /// A SQL `CASE` choosing the metric named by the text column `metric_col` (one row per
    /// metric, e.g. from a cross join with the metric names).
    pub fn sql_by_name(metric_col: &str, d: Dialect) -> String {
        let arms: String = Metric::ALL
            .iter()
            .map(|m| format!(" WHEN '{}' THEN {}", m.as_str(), m.sql(d)))
            .collect();
        format!("CASE {metric_col}{arms} END")
    }

    /// The metric names as a SQL row source with one column `metric`.
    pub fn sql_names() -> String {
        Metric::ALL
            .iter()
            .map(|m| format!("SELECT '{}' AS metric", m.as_str()))
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
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
        assert_eq!("tpot_ms".parse::<Metric>(), Ok(Metric::TpotMs));
        assert_eq!(
            Metric::names(),
            "latency_ms, ttft_ms, tpot_ms, tokens_per_s"
        );
    }

    #[test]
    fn the_sql_case_names_every_metric() {
        let case = Metric::sql_by_name("m.metric", Dialect::Postgres);
        for m in Metric::ALL {
            assert!(case.contains(&format!("WHEN '{}' THEN", m.as_str())));
        }
        assert!(case.contains("GREATEST"));
        assert!(Metric::sql_by_name("m", Dialect::Sqlite).contains("MAX(tokens_out - 1, 1)"));
    }
}

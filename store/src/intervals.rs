//! OTLP GenAI histogram intervals (issue 16): one row per export interval, data point and
//! series — count, sum, min/max when known and quantiles estimated from the buckets — and the
//! last cumulative point of each stream, so the next cumulative export becomes a delta after a
//! restart or on another replica. Times are Unix µs on both backends.

use std::collections::HashMap;

use sqlx::Row;

use crate::{Store, StoreError};

/// What identifies an interval series: one instrument of one model on one host, for one
/// operation (and token type, for token usage).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct IntervalKey {
    /// Site (from the ingest token).
    pub site: String,
    /// Host (`server.address`, else the resource's `host.name`).
    pub host: String,
    /// Provider (`gen_ai.provider.name`, else `gen_ai.system`).
    pub provider: String,
    /// Model (`gen_ai.response.model`, else `gen_ai.request.model`).
    pub model: String,
    /// `gen_ai.operation.name` (`chat`, `embeddings`, …).
    pub operation: String,
    /// The OpenTelemetry instrument, e.g. `gen_ai.client.operation.duration`.
    pub instrument: String,
    /// `gen_ai.token.type` for token usage (`input`, `output`), else empty.
    pub token_type: String,
}

impl IntervalKey {
    /// The key's text form: `otlp|SITE|HOST|PROVIDER|MODEL|OPERATION|INSTRUMENT|TOKEN_TYPE`
    /// (the last part empty unless token usage). No part holds `|` (ingest refuses it).
    pub fn text(&self) -> String {
        format!(
            "otlp|{}|{}|{}|{}|{}|{}|{}",
            self.site,
            self.host,
            self.provider,
            self.model,
            self.operation,
            self.instrument,
            self.token_type
        )
    }

    /// Reads the text form written by [`IntervalKey::text`].
    pub fn parse(s: &str) -> Option<IntervalKey> {
        let p: Vec<&str> = s.split('|').collect();
        if p.len() != 8 || p[0] != "otlp" || p[1..7].iter().any(|x| x.is_empty()) {
            return None;
        }
        Some(IntervalKey {
            site: p[1].into(),
            host: p[2].into(),
            provider: p[3].into(),
            model: p[4].into(),
            operation: p[5].into(),
            instrument: p[6].into(),
            token_type: p[7].into(),
        })
    }
}

/// One export interval of one series and outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Interval {
    /// Idempotency key (derived from the stream and the interval's times).
    pub id: String,
    /// The series.
    pub key: IntervalKey,
    /// `error.type` of failed calls' points; empty for successful calls.
    pub error_type: String,
    /// Interval start, Unix µs.
    pub start_us: i64,
    /// Interval end (the point's time), Unix µs.
    pub end_us: i64,
    /// Calls (or token counts) recorded in the interval.
    pub count: i64,
    /// Sum of the recorded values (ms or tokens).
    pub sum: f64,
    /// Smallest value, when the exporter sent it for this interval.
    pub min: Option<f64>,
    /// Largest value, when the exporter sent it for this interval.
    pub max: Option<f64>,
    /// Quantiles estimated from the buckets: p50, p90, p95, p99.
    pub quantiles: [Option<f64>; 4],
    /// `delta` or `cumulative` (as exported; cumulative points are stored as their deltas).
    pub temporality: String,
    /// `explicit` or `exponential` buckets.
    pub kind: String,
}

/// A stream's last cumulative point (JSON, opaque to the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamState {
    /// The stream's identity (a digest of site, instrument and attributes).
    pub stream: String,
    /// The point, as the caller serialised it.
    pub state: String,
}

/// One interval series with its extent.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IntervalSeries {
    /// The series.
    pub key: IntervalKey,
    /// Intervals stored (successful calls' points).
    pub intervals: i64,
    /// End of the newest interval, Unix µs.
    pub last_us: i64,
}

const COLUMNS: &str = "id, site, host, provider, model, operation, instrument, token_type, error_type, start_us, end_us, count, sum, min, max, p50, p90, p95, p99, temporality, kind, received_us";

impl Store {
    /// The saved cumulative points of `streams` (those that have one), in one query.
    pub async fn otlp_streams(
        &self,
        streams: &[String],
    ) -> Result<HashMap<String, String>, StoreError> {
        if streams.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, String)> = match self {
            Store::Sqlite(s) => {
                sqlx::query_as("SELECT stream, state FROM otlp_streams WHERE stream IN (SELECT value FROM json_each($1))")
                    .bind(serde_json::to_string(streams).unwrap_or_else(|_| "[]".into()))
                    .fetch_all(s.pool())
                    .await?
            }
            Store::Postgres(p) => {
                sqlx::query_as("SELECT stream, state FROM otlp_streams WHERE stream = ANY($1)")
                    .bind(streams)
                    .fetch_all(p.pool())
                    .await?
            }
        };
        Ok(rows.into_iter().collect())
    }

    /// Stores intervals (an interval already stored is left as it is) and the streams' new
    /// cumulative points, in one transaction; returns how many intervals were new.
    pub async fn write_intervals(
        &self,
        rows: &[Interval],
        states: &[StreamState],
        received_us: i64,
    ) -> Result<u64, StoreError> {
        let insert = format!(
            "INSERT INTO otlp_intervals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22) ON CONFLICT (id) DO NOTHING"
        );
        const STATE: &str = "INSERT INTO otlp_streams (stream, state, updated_us) VALUES ($1, $2, $3)
            ON CONFLICT (stream) DO UPDATE SET state = excluded.state, updated_us = excluded.updated_us";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let mut n = 0u64;
            for r in rows {
                let k = &r.key;
                n += sqlx::query(&insert)
                    .bind(&r.id).bind(&k.site).bind(&k.host).bind(&k.provider).bind(&k.model)
                    .bind(&k.operation).bind(&k.instrument).bind(&k.token_type).bind(&r.error_type)
                    .bind(r.start_us).bind(r.end_us).bind(r.count).bind(r.sum).bind(r.min).bind(r.max)
                    .bind(r.quantiles[0]).bind(r.quantiles[1]).bind(r.quantiles[2]).bind(r.quantiles[3])
                    .bind(&r.temporality).bind(&r.kind).bind(received_us)
                    .execute(&mut *tx).await?.rows_affected();
            }
            for s in states {
                sqlx::query(STATE).bind(&s.stream).bind(&s.state).bind(received_us)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            n
        });
        Ok(n)
    }

    /// Every interval series (successful calls' points) with its extent.
    pub async fn interval_series(&self) -> Result<Vec<IntervalSeries>, StoreError> {
        const SQL: &str = "SELECT site, host, provider, model, operation, instrument, token_type, COUNT(*) AS n, MAX(end_us) AS last_us
            FROM otlp_intervals WHERE error_type = ''
            GROUP BY site, host, provider, model, operation, instrument, token_type
            ORDER BY site, host, provider, model, operation, instrument, token_type";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok(IntervalSeries {
                key: key_of(r)?,
                intervals: r.try_get("n")?,
                last_us: r.try_get("last_us")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The intervals of `key` ending in `[from_us, to_us]`, failed calls' points included,
    /// oldest first, at most `limit`.
    pub async fn intervals(
        &self,
        key: &IntervalKey,
        from_us: i64,
        to_us: i64,
        limit: i64,
    ) -> Result<Vec<Interval>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM otlp_intervals WHERE site = $1 AND host = $2 AND provider = $3 AND model = $4 AND operation = $5 AND instrument = $6 AND token_type = $7 AND end_us >= $8 AND end_us <= $9 ORDER BY end_us, error_type LIMIT $10"
        );
        let rows = with_pool!(self, p => sqlx::query(&sql)
            .bind(&key.site).bind(&key.host).bind(&key.provider).bind(&key.model)
            .bind(&key.operation).bind(&key.instrument).bind(&key.token_type)
            .bind(from_us).bind(to_us).bind(limit)
            .fetch_all(p).await?.iter()
            .map(|r| Ok(Interval {
                id: r.try_get("id")?,
                key: key_of(r)?,
                error_type: r.try_get("error_type")?,
                start_us: r.try_get("start_us")?,
                end_us: r.try_get("end_us")?,
                count: r.try_get("count")?,
                sum: r.try_get("sum")?,
                min: r.try_get("min")?,
                max: r.try_get("max")?,
                quantiles: [r.try_get("p50")?, r.try_get("p90")?, r.try_get("p95")?, r.try_get("p99")?],
                temporality: r.try_get("temporality")?,
                kind: r.try_get("kind")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Deletes up to `batch` intervals that ended before `before_us`, and streams not updated
    /// since then; returns the intervals deleted.
    pub async fn prune_intervals(&self, before_us: i64, batch: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM otlp_intervals WHERE id IN (SELECT id FROM otlp_intervals WHERE end_us < $1 LIMIT $2)";
        const STREAMS: &str = "DELETE FROM otlp_streams WHERE updated_us < $1";
        let n = with_pool!(self, p => {
            let n = sqlx::query(SQL).bind(before_us).bind(batch).execute(p).await?.rows_affected();
            sqlx::query(STREAMS).bind(before_us).execute(p).await?;
            n
        });
        Ok(n)
    }
}

fn key_of<R: Row>(r: &R) -> Result<IntervalKey, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(IntervalKey {
        site: r.try_get("site")?,
        host: r.try_get("host")?,
        provider: r.try_get("provider")?,
        model: r.try_get("model")?,
        operation: r.try_get("operation")?,
        instrument: r.try_get("instrument")?,
        token_type: r.try_get("token_type")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_text_round_trips() {
        let k = IntervalKey {
            site: "eu".into(),
            host: "gpu-1".into(),
            provider: "openai".into(),
            model: "gpt-4o".into(),
            operation: "chat".into(),
            instrument: "gen_ai.client.token.usage".into(),
            token_type: "output".into(),
        };
        assert_eq!(IntervalKey::parse(&k.text()), Some(k.clone()));
        let plain = IntervalKey {
            token_type: String::new(),
            ..k
        };
        assert_eq!(IntervalKey::parse(&plain.text()), Some(plain));
        assert_eq!(IntervalKey::parse("otlp|eu|h|p|m|chat|i"), None);
        assert_eq!(IntervalKey::parse("series|eu|h|p|m|chat|i|"), None);
        assert_eq!(IntervalKey::parse("otlp|eu||p|m|chat|i|"), None);
    }
}

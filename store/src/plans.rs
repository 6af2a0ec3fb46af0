//! SLOs, prices and budgets ([`llmscope_model::plan`]) and the SLO counts.
//!
//! Definitions from the configuration file are kept in sync at start ([`Store::sync_config_plans`]:
//! `origin = 'config'` rows not in the file go); the API writes `origin = 'api'` rows. A new or
//! changed SLO is back-filled from the raw samples the long-horizon pass has already read, in
//! the transaction that writes it, so its window starts full (as far as raw retention
//! reaches) and no sample is counted twice.

use llmscope_model::plan::{Budget, ORIGIN_CONFIG, Price, Slo};
use sqlx::Row;

use crate::{Store, StoreError};

/// Good and bad calls of an SLO over some minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SloCount {
    /// Calls counted.
    pub total: i64,
    /// Bad ones.
    pub bad: i64,
}

impl Store {
    /// Every SLO, by name.
    pub async fn slos(&self) -> Result<Vec<Slo>, StoreError> {
        const SQL: &str = "SELECT id, name, site, model, source, metric, threshold, objective, window_s, origin FROM slos ORDER BY name";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| {
                let window_s: i64 = r.try_get("window_s")?;
                Ok(Slo {
                    id: r.try_get("id")?, name: r.try_get("name")?, site: r.try_get("site")?, model: r.try_get("model")?,
                    source: r.try_get("source")?, metric: r.try_get("metric")?, threshold: r.try_get("threshold")?,
                    objective: r.try_get("objective")?, window_days: window_s / 86_400, origin: r.try_get("origin")?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Writes an SLO (a new one or a change to the one with its id) and back-fills its
    /// minutes from the raw samples received up to the long-horizon watermark and no older
    /// than `backfill_from` (µs).
    pub async fn put_slo(&self, slo: &Slo, now: i64, backfill_from: i64) -> Result<(), StoreError> {
        const INIT: &str = "INSERT INTO rollup_state (name, watermark) VALUES ('long', 0) ON CONFLICT (name) DO NOTHING";
        let wm_sql = match self {
            Store::Sqlite(_) => "SELECT watermark FROM rollup_state WHERE name = 'long'",
            Store::Postgres(_) => {
                "SELECT watermark FROM rollup_state WHERE name = 'long' FOR UPDATE"
            }
        };
        const UPSERT: &str = "INSERT INTO slos (id, name, site, model, source, metric, threshold, objective, window_s, origin, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, site = excluded.site, model = excluded.model, source = excluded.source,
              metric = excluded.metric, threshold = excluded.threshold, objective = excluded.objective, window_s = excluded.window_s,
              origin = excluded.origin";
        const CLEAR: &str = "DELETE FROM slo_minutes WHERE slo_id = $1";
        let samples_where = format!(
            "received_at <= {} AND ts >= {}",
            self.at_us("$1"),
            self.at_us("$2")
        );
        let backfill = self.slo_count_sql(&samples_where, "AND o.id = $3");
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(INIT).execute(&mut *tx).await?;
            let wm: i64 = sqlx::query_scalar(wm_sql).fetch_one(&mut *tx).await?;
            sqlx::query(UPSERT).bind(&slo.id).bind(&slo.name).bind(&slo.site).bind(&slo.model).bind(&slo.source)
                .bind(&slo.metric).bind(slo.threshold).bind(slo.objective).bind(slo.window_days * 86_400).bind(&slo.origin).bind(now)
                .execute(&mut *tx).await?;
            sqlx::query(CLEAR).bind(&slo.id).execute(&mut *tx).await?;
            if wm > 0 {
                sqlx::query(&backfill).bind(wm).bind(backfill_from).bind(&slo.id).execute(&mut *tx).await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Deletes an SLO and its minutes; whether it existed.
    pub async fn delete_slo(&self, id: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query("DELETE FROM slo_minutes WHERE slo_id = $1").bind(id).execute(&mut *tx).await?;
            let n = sqlx::query("DELETE FROM slos WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// An SLO's calls in the minutes `[from, to)`.
    pub async fn slo_count(&self, id: &str, from: i64, to: i64) -> Result<SloCount, StoreError> {
        const SQL: &str = "SELECT CAST(COALESCE(SUM(total), 0) AS BIGINT) AS total, CAST(COALESCE(SUM(bad), 0) AS BIGINT) AS bad
            FROM slo_minutes WHERE slo_id = $1 AND minute >= $2 AND minute < $3";
        let c = with_pool!(self, p => {
            let r = sqlx::query(SQL).bind(id).bind(from).bind(to).fetch_one(p).await?;
            SloCount { total: r.try_get("total")?, bad: r.try_get("bad")? }
        });
        Ok(c)
    }

    /// An SLO's counts per minute in `[from, to)`: (minute, total, bad), oldest first.
    pub async fn slo_minutes(
        &self,
        id: &str,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, i64, i64)>, StoreError> {
        const SQL: &str = "SELECT minute, total, bad FROM slo_minutes WHERE slo_id = $1 AND minute >= $2 AND minute < $3 ORDER BY minute";
        let rows = with_pool!(self, p => sqlx::query(SQL).bind(id).bind(from).bind(to).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("minute")?, r.try_get("total")?, r.try_get("bad")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Every price, by provider and model.
    pub async fn prices(&self) -> Result<Vec<Price>, StoreError> {
        const SQL: &str = "SELECT provider, model, input_per_m, output_per_m, gpu_hour, gpus, origin FROM prices ORDER BY provider, model";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok(Price {
                provider: r.try_get("provider")?, model: r.try_get("model")?, input_per_m: r.try_get("input_per_m")?,
                output_per_m: r.try_get("output_per_m")?, gpu_hour: r.try_get("gpu_hour")?, gpus: r.try_get("gpus")?,
                origin: r.try_get("origin")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Writes the price of a provider's model.
    pub async fn put_price(&self, price: &Price) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO prices (provider, model, input_per_m, output_per_m, gpu_hour, gpus, origin) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (provider, model) DO UPDATE SET input_per_m = excluded.input_per_m, output_per_m = excluded.output_per_m,
              gpu_hour = excluded.gpu_hour, gpus = excluded.gpus, origin = excluded.origin";
        with_pool!(self, p => sqlx::query(SQL).bind(&price.provider).bind(&price.model).bind(price.input_per_m).bind(price.output_per_m)
            .bind(price.gpu_hour).bind(price.gpus).bind(&price.origin).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Deletes a price; whether it existed.
    pub async fn delete_price(&self, provider: &str, model: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("DELETE FROM prices WHERE provider = $1 AND model = $2")
            .bind(provider).bind(model).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Every budget, by name.
    pub async fn budgets(&self) -> Result<Vec<Budget>, StoreError> {
        const SQL: &str =
            "SELECT id, name, site, model, monthly, origin FROM budgets ORDER BY name";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok(Budget {
                id: r.try_get("id")?, name: r.try_get("name")?, site: r.try_get("site")?, model: r.try_get("model")?,
                monthly: r.try_get("monthly")?, origin: r.try_get("origin")?,
            }))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Writes a budget (new, or a change to the one with its id).
    pub async fn put_budget(&self, b: &Budget, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO budgets (id, name, site, model, monthly, origin, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (id) DO UPDATE SET name = excluded.name, site = excluded.site, model = excluded.model,
              monthly = excluded.monthly, origin = excluded.origin";
        with_pool!(self, p => sqlx::query(SQL).bind(&b.id).bind(&b.name).bind(&b.site).bind(&b.model).bind(b.monthly)
            .bind(&b.origin).bind(now).execute(p).await?.rows_affected());
        Ok(())
    }

    /// Deletes a budget; whether it existed.
    pub async fn delete_budget(&self, id: &str) -> Result<bool, StoreError> {
        let n = with_pool!(self, p => sqlx::query("DELETE FROM budgets WHERE id = $1").bind(id).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Makes the `origin = 'config'` definitions those of the configuration file: adds and
    /// updates them, removes the ones it no longer has. SLOs whose definition is unchanged
    /// keep their minutes.
    pub async fn sync_config_plans(
        &self,
        slos: &[Slo],
        prices: &[Price],
        budgets: &[Budget],
        now: i64,
        backfill_from: i64,
    ) -> Result<(), StoreError> {
        let stored = self.slos().await?;
        for s in stored.iter().filter(|s| s.origin == ORIGIN_CONFIG) {
            if !slos.iter().any(|c| c.id == s.id) {
                self.delete_slo(&s.id).await?;
            }
        }
        for s in slos {
            if !stored.iter().any(|o| o == s) {
                self.put_slo(s, now, backfill_from).await?;
            }
        }
        for p in self
            .prices()
            .await?
            .iter()
            .filter(|p| p.origin == ORIGIN_CONFIG)
        {
            if !prices
                .iter()
                .any(|c| c.provider == p.provider && c.model == p.model)
            {
                self.delete_price(&p.provider, &p.model).await?;
            }
        }
        for p in prices {
            self.put_price(p).await?;
        }
        for b in self
            .budgets()
            .await?
            .iter()
            .filter(|b| b.origin == ORIGIN_CONFIG)
        {
            if !budgets.iter().any(|c| c.id == b.id) {
                self.delete_budget(&b.id).await?;
            }
        }
        for b in budgets {
            self.put_budget(b, now).await?;
        }
        Ok(())
    }
}

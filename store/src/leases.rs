//! Leader leases (one holder at a time per name, renewed by the holder, taken over when they
//! expire) and the saved state of the bucket charts that the lease holder runs.

use crate::{Store, StoreError};

impl Store {
    /// Takes or renews the lease `name` for `holder` until `expires_at`; false when another
    /// holder's lease is still valid at `now`.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
            ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
            WHERE leases.holder = excluded.holder OR leases.expires_at < $4";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(name).bind(holder).bind(expires_at).bind(now).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Saved state of a bucket chart.
    pub async fn bucket_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        const SQL: &str = "SELECT state FROM bucket_charts WHERE chart_key = $1";
        let s = with_pool!(self, p => sqlx::query_scalar(SQL).bind(key).fetch_optional(p).await?);
        Ok(s)
    }

    /// Saves the state of a bucket chart.
    pub async fn put_bucket_state(
        &self,
        key: &str,
        state: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO bucket_charts (chart_key, state, updated_at) VALUES ($1, $2, $3)
            ON CONFLICT (chart_key) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(key).bind(state).bind(at).execute(p).await?;
        });
        Ok(())
    }
}

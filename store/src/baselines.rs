//! Baselines (history kept: a new one closes the one it replaces) and rule configuration.
//!
//! A baseline row's key columns are its [`SeriesId`]'s: `scope`, `site` ("" for global),
//! `host` ("" for pooled baselines), `provider`, `model`, `metric`, `source`. The X̄-S limits of the
//! bucket charts are stored with host `*` so they never stand in for the pooled individuals
//! baseline of the same scope.

use llmscope_model::{BaselineMode, BaselineRecord, FrozenBaseline, Metric, Scope, SeriesId};
use llmscope_spc::{Baseline, SigmaMethod, Transform};
use sqlx::Row;

use crate::audit::{Audit, audit_in};
use crate::{Store, StoreError};

/// Host column of bucket-chart (X̄-S) baselines.
const BUCKET_HOST: &str = "*";

fn host_column(b: &BaselineRecord) -> &str {
    if b.frozen.baseline.method == SigmaMethod::XbarS {
        BUCKET_HOST
    } else {
        &b.key.host
    }
}

impl Store {
    /// The current baseline with this key.
    pub async fn current_baseline(
        &self,
        key: &SeriesId,
    ) -> Result<Option<BaselineRecord>, StoreError> {
        const SQL: &str = "SELECT * FROM baselines WHERE scope = $1 AND site = $2 AND host = $3 AND provider = $4 AND model = $5 AND metric = $6 AND source = $7 AND valid_to IS NULL ORDER BY id DESC LIMIT 1";
        let row = with_pool!(self, p => {
            let r = sqlx::query(SQL).bind(key.scope.as_str()).bind(&key.site).bind(&key.host)
                .bind(&key.provider).bind(&key.model).bind(key.metric.as_str()).bind(key.source.as_str()).fetch_optional(p).await?;
            r.map(|r| baseline_from(&r)).transpose()?
        });
        Ok(row)
    }

    /// Stores a new baseline, closing the one it replaces (history is kept); returns its id.
    pub async fn insert_baseline(
        &self,
        b: &BaselineRecord,
        audit: Option<&Audit>,
    ) -> Result<i64, StoreError> {
        self.insert_baseline_with(b, false, audit).await
    }

    /// [`Store::insert_baseline`] for a baseline the engine learnt from stored samples: it is
    /// derived data (after a crash the engine learns it again from the same points), so on
    /// PostgreSQL the commit does not wait for the WAL flush.
    pub async fn insert_learned_baseline(&self, b: &BaselineRecord) -> Result<i64, StoreError> {
        self.insert_baseline_with(b, true, None).await
    }

    async fn insert_baseline_with(
        &self,
        b: &BaselineRecord,
        derived: bool,
        audit: Option<&Audit>,
    ) -> Result<i64, StoreError> {
        const CLOSE: &str = "UPDATE baselines SET valid_to = $1 WHERE scope = $2 AND site = $3 AND host = $4 AND provider = $5 AND model = $6 AND metric = $7 AND source = $8 AND valid_to IS NULL";
        const INSERT: &str = "INSERT INTO baselines (scope, site, host, provider, model, metric, center, sigma, k, method, transform, points, window_from, window_to, mode, reason, created_by, valid_from, source, phi)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING id";
        let (k, f, sb) = (&b.key, &b.frozen, &b.frozen.baseline);
        let host = host_column(b);
        let points = i64::try_from(sb.points).unwrap_or(i64::MAX);
        let relaxed = derived && matches!(self, Store::Postgres(_));
        let id = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            if relaxed {
                sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
            }
            sqlx::query(CLOSE).bind(b.valid_from).bind(k.scope.as_str()).bind(&k.site).bind(host).bind(&k.provider).bind(&k.model).bind(k.metric.as_str()).bind(k.source.as_str()).execute(&mut *tx).await?;
            let id: i64 = sqlx::query_scalar(INSERT)
                .bind(k.scope.as_str()).bind(&k.site).bind(host).bind(&k.provider).bind(&k.model).bind(k.metric.as_str())
                .bind(sb.center).bind(sb.sigma).bind(sb.k).bind(sb.method.as_str()).bind(sb.transform.as_str()).bind(points)
                .bind(f.window_from).bind(f.window_to).bind(f.mode.as_str()).bind(&b.reason).bind(&b.created_by).bind(b.valid_from)
                .bind(k.source.as_str()).bind(sb.phi)
                .fetch_one(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
            id
        });
        Ok(id)
    }

    /// Baselines, newest first; `current_only` hides replaced ones.
    pub async fn list_baselines(
        &self,
        current_only: bool,
    ) -> Result<Vec<BaselineRecord>, StoreError> {
        let sql = if current_only {
            "SELECT * FROM baselines WHERE valid_to IS NULL ORDER BY site, host, provider, model, metric, id DESC"
        } else {
            "SELECT * FROM baselines ORDER BY site, host, provider, model, metric, id DESC"
        };
        let rows = with_pool!(self, p => sqlx::query(sql).fetch_all(p).await?.iter().map(baseline_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// Highest baseline id (changes whenever a baseline is set anywhere).
    pub async fn baseline_generation(&self) -> Result<i64, StoreError> {
        const SQL: &str = "SELECT COALESCE(MAX(id), 0) FROM baselines";
        let g: i64 = with_pool!(self, p => sqlx::query_scalar(SQL).fetch_one(p).await?);
        Ok(g)
    }

    /// Every rule configuration row: (scope kind, scope value, settings JSON).
    pub async fn rule_configs(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        const SQL: &str = "SELECT scope_kind, scope_value, settings FROM rule_configs";
        let rows = with_pool!(self, p => sqlx::query(SQL).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("scope_kind")?, r.try_get("scope_value")?, r.try_get("settings")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Sets the settings of one scope (history kept).
    pub async fn set_rule_config(
        &self,
        kind: &str,
        value: &str,
        settings: &str,
        by: &str,
        at: i64,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        const UPSERT: &str = "INSERT INTO rule_configs (scope_kind, scope_value, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (scope_kind, scope_value) DO UPDATE SET settings = excluded.settings, updated_by = excluded.updated_by, updated_at = excluded.updated_at";
        const HIST: &str = "INSERT INTO rule_config_history (scope_kind, scope_value, settings, updated_by, updated_at) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(UPSERT).bind(kind).bind(value).bind(settings).bind(by).bind(at).execute(&mut *tx).await?;
            sqlx::query(HIST).bind(kind).bind(value).bind(settings).bind(by).bind(at).execute(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }
}

fn baseline_from<R: Row>(r: &R) -> Result<BaselineRecord, StoreError>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> f64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
{
    let text = |c: &str| r.try_get::<String, _>(c);
    let (scope, metric, method, transform, mode, source) = (
        text("scope")?,
        text("metric")?,
        text("method")?,
        text("transform")?,
        text("mode")?,
        text("source")?,
    );
    let scope: Scope = scope
        .parse()
        .map_err(|e| StoreError::decode("baseline scope", &scope, e))?;
    let metric: Metric = metric
        .parse()
        .map_err(|e| StoreError::decode("baseline metric", &metric, e))?;
    let mut host = text("host")?;
    if host == BUCKET_HOST {
        host.clear();
    }
    let key = SeriesId {
        scope,
        site: text("site")?,
        host,
        provider: text("provider")?,
        model: text("model")?,
        metric,
        source: source
            .parse()
            .map_err(|e| StoreError::decode("baseline source", &source, e))?,
    };
    let b = Baseline {
        center: r.try_get("center")?,
        sigma: r.try_get("sigma")?,
        k: r.try_get("k")?,
        method: SigmaMethod::parse(&method).unwrap_or(SigmaMethod::Mrbar),
        transform: Transform::parse(&transform).unwrap_or(Transform::None),
        points: usize::try_from(r.try_get::<i64, _>("points")?).unwrap_or(0),
        phi: r.try_get("phi")?,
    };
    let frozen = FrozenBaseline::new(
        r.try_get("id")?,
        scope,
        b,
        (r.try_get("window_from")?, r.try_get("window_to")?),
        mode.parse().unwrap_or(BaselineMode::Manual),
    );
    Ok(BaselineRecord {
        key,
        frozen,
        reason: text("reason")?,
        created_by: text("created_by")?,
        valid_from: r.try_get("valid_from")?,
        valid_to: r.try_get("valid_to")?,
    })
}

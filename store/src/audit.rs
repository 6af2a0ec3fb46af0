//! The audit log: who changed what, when, from where, before → after. Append-only (a trigger
//! refuses updates on both backends); an entry is written in the same transaction as the
//! change it records, by the store method making the change (each takes an
//! `Option<&Audit>`); the retention job deletes whole entries older than `audit_retention`.

use sqlx::Row;

use crate::{Store, StoreError};

/// One audit entry, as the caller describes the change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// When, Unix µs.
    pub at: i64,
    /// Who: a user's email, `token:<id>`, `admin-token` (the configured one), `cli`.
    pub actor: String,
    /// The actor's role then.
    pub role: String,
    /// The client address (HTTP) or `cli`.
    pub client: String,
    /// What, e.g. `channel.update`, `violation.ack`, `user.create`.
    pub action: String,
    /// On what, e.g. `channel:ops`, `violation:<id>`, `user:a@example.com`.
    pub target: String,
    /// The object before the change (JSON, secrets masked), if it existed.
    pub before: Option<String>,
    /// The object after the change (JSON, secrets masked), if it still exists.
    pub after: Option<String>,
}

impl Audit {
    /// The same entry for another action and target.
    pub fn with(&self, action: &str, target: impl Into<String>) -> Audit {
        Audit {
            action: action.to_owned(),
            target: target.into(),
            ..self.clone()
        }
    }

    /// The entry with what the object was and became.
    pub fn change(mut self, before: Option<String>, after: Option<String>) -> Audit {
        self.before = before;
        self.after = after;
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditRow {
    /// Sequence number (increasing).
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: Audit,
}

/// Filters of [`Store::list_audit`].
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Exact actor.
    pub actor: Option<String>,
    /// Action, or an action prefix ending in `.` (`channel.`).
    pub action: Option<String>,
    /// Target contains this text.
    pub target: Option<String>,
    /// At or after, Unix µs.
    pub from: Option<i64>,
    /// At or before, Unix µs.
    pub to: Option<i64>,
    /// Entries with a smaller id only (paging backwards).
    pub before_id: Option<i64>,
}

/// The insert statement every audited change runs in its transaction.
pub(crate) const INSERT: &str = "INSERT INTO audit (at, actor, role, client, action, target, before, after) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

/// Writes `$audit` (an `Option<&Audit>`) with the executor `$tx` (inside the caller's
/// transaction).
macro_rules! audit_in {
    ($tx:expr, $audit:expr) => {
        if let Some(a) = $audit {
            sqlx::query($crate::audit::INSERT)
                .bind(a.at)
                .bind(&a.actor)
                .bind(&a.role)
                .bind(&a.client)
                .bind(&a.action)
                .bind(&a.target)
                .bind(&a.before)
                .bind(&a.after)
                .execute($tx)
                .await?;
        }
    };
}
pub(crate) use audit_in;

impl Store {
    /// Writes an entry on its own (a change made outside the database, e.g. a sign-in).
    pub async fn audit(&self, a: &Audit) -> Result<(), StoreError> {
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            audit_in!(&mut *tx, Some(a));
            tx.commit().await?;
        });
        Ok(())
    }

    /// Entries newest first, at most `limit`.
    pub async fn list_audit(
        &self,
        f: &AuditFilter,
        limit: i64,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut conds: Vec<String> = Vec::new();
        let mut texts: Vec<String> = Vec::new();
        let mut ints: Vec<i64> = Vec::new();
        // text parameters first ($1.. in order), then the numbers
        if let Some(a) = &f.actor {
            texts.push(a.clone());
            conds.push(format!("actor = ${}", texts.len()));
        }
        if let Some(a) = &f.action {
            if let Some(prefix) = a.strip_suffix('.') {
                texts.push(format!("{prefix}.%"));
                conds.push(format!("action LIKE ${}", texts.len()));
            } else {
                texts.push(a.clone());
                conds.push(format!("action = ${}", texts.len()));
            }
        }
        if let Some(t) = &f.target {
            let escaped = t
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            texts.push(format!("%{escaped}%"));
            conds.push(format!("target LIKE ${} ESCAPE '\\'", texts.len()));
        }
        let n = texts.len();
        for (v, c) in [(f.from, "at >="), (f.to, "at <="), (f.before_id, "id <")] {
            if let Some(v) = v {
                ints.push(v);
                conds.push(format!("{c} ${}", n + ints.len()));
            }
        }
        ints.push(limit.clamp(1, 10_000));
        let where_ = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        let sql = format!(
            "SELECT id, at, actor, role, client, action, target, before, after FROM audit {where_} ORDER BY id DESC LIMIT ${}",
            n + ints.len()
        );
        let rows = with_pool!(self, p => {
            let mut q = sqlx::query(&sql);
            for t in &texts {
                q = q.bind(t);
            }
            for i in &ints {
                q = q.bind(i);
            }
            q.fetch_all(p).await?.iter().map(|r| Ok(AuditRow {
                id: r.try_get("id")?,
                entry: Audit {
                    at: r.try_get("at")?,
                    actor: r.try_get("actor")?,
                    role: r.try_get("role")?,
                    client: r.try_get("client")?,
                    action: r.try_get("action")?,
                    target: r.try_get("target")?,
                    before: r.try_get("before")?,
                    after: r.try_get("after")?,
                },
            })).collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        Ok(rows)
    }

    /// Deletes entries older than `before` (Unix µs), at most `batch`; returns how many.
    pub async fn prune_audit(&self, before: i64, batch: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE at < $1 ORDER BY id LIMIT $2)";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(before).bind(batch).execute(p).await?.rows_affected());
        Ok(n)
    }
}

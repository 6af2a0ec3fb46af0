//! Tokens (only their SHA-256 is stored) and the sites they belong to.

use sqlx::Row;

use crate::audit::{Audit, audit_in};
use crate::{Store, StoreError};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Write samples and telemetry of one site.
    Ingest,
    /// Change configuration through the API.
    Admin,
    /// A user's personal API token: acts with the user's role and sites.
    Personal,
}

impl Role {
    /// Stored text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Admin => "admin",
            Role::Personal => "personal",
        }
    }

    fn parse(s: &str) -> Role {
        match s {
            "admin" => Role::Admin,
            "personal" => Role::Personal,
            _ => Role::Ingest,
        }
    }
}

/// A stored token (never the secret: only its hash is kept).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TokenRecord {
    /// Public id (also the token's visible prefix).
    pub id: String,
    /// Site it may write (ingest tokens).
    pub site: Option<String>,
    /// Role.
    pub role: Role,
    /// Free-form name.
    pub name: String,
    /// Creation time, Unix µs.
    pub created_at_us: i64,
    /// Revocation time, Unix µs.
    pub revoked_at_us: Option<i64>,
    /// The user a personal token acts as.
    pub user_id: Option<String>,
    /// sha256 of the token, hex (internal; never serialized).
    #[serde(skip)]
    pub hash: String,
}

impl Store {
    fn token_select(&self) -> String {
        format!(
            "SELECT id, hash, site, role, name, {} AS created_at, {} AS revoked_at, user_id FROM tokens",
            self.ts_us("created_at"),
            self.ts_us("revoked_at")
        )
    }

    /// Stores a new token (and registers its site).
    pub async fn insert_token(
        &self,
        t: &TokenRecord,
        audit: Option<&Audit>,
    ) -> Result<(), StoreError> {
        let site = format!(
            "INSERT INTO sites (name, created_at) VALUES ($1, {}) ON CONFLICT DO NOTHING",
            self.at_us("$2")
        );
        let token = format!(
            "INSERT INTO tokens (id, hash, site, role, name, created_at, user_id) VALUES ($1, $2, $3, $4, $5, {}, $7)",
            self.at_us("$6")
        );
        with_pool!(self, p => {
            let mut tx = p.begin().await?;
            if let Some(s) = &t.site {
                sqlx::query(&site).bind(s).bind(t.created_at_us).execute(&mut *tx).await?;
            }
            sqlx::query(&token).bind(&t.id).bind(&t.hash).bind(&t.site).bind(t.role.as_str())
                .bind(&t.name).bind(t.created_at_us).bind(&t.user_id).execute(&mut *tx).await?;
            audit_in!(&mut *tx, audit);
            tx.commit().await?;
        });
        Ok(())
    }

    /// All tokens, newest first.
    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!("{} ORDER BY created_at DESC, id", self.token_select());
        let rows = with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?.iter().map(token_from).collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Revokes a token by id; false when no unrevoked token has that id.
    pub async fn revoke_token(
        &self,
        id: &str,
        now_us: i64,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "UPDATE tokens SET revoked_at = {} WHERE id = $1 AND revoked_at IS NULL",
            self.at_us("$2")
        );
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(&sql).bind(id).bind(now_us).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// The personal tokens of a user, newest first.
    pub async fn user_tokens(&self, user_id: &str) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!(
            "{} WHERE user_id = $1 ORDER BY created_at DESC, id",
            self.token_select()
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).bind(user_id).fetch_all(p).await?.iter().map(token_from).collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// The token with this hash, revoked or not.
    pub async fn find_token(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("{} WHERE hash = $1", self.token_select());
        let row = with_pool!(self, p => sqlx::query(&sql).bind(hash).fetch_optional(p).await?.as_ref().map(token_from).transpose()?);
        Ok(row)
    }

    /// Whether any active ingest token exists (first-run detection).
    pub async fn has_ingest_tokens(&self) -> Result<bool, StoreError> {
        Ok(self
            .list_tokens()
            .await?
            .iter()
            .any(|t| t.role == Role::Ingest && t.revoked_at_us.is_none()))
    }

    /// Registered sites: (name, created_at µs).
    pub async fn sites(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = format!(
            "SELECT name, {} AS created_at FROM sites ORDER BY name",
            self.ts_us("created_at")
        );
        let rows = with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?.iter()
            .map(|r| Ok((r.try_get("name")?, r.try_get("created_at")?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?);
        Ok(rows)
    }

    /// Registers a site; false when it exists.
    pub async fn insert_site(
        &self,
        name: &str,
        now: i64,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO sites (name, created_at) VALUES ($1, {}) ON CONFLICT DO NOTHING",
            self.at_us("$2")
        );
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(&sql).bind(name).bind(now).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }
}

fn token_from<R: Row>(r: &R) -> Result<TokenRecord, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database>,
{
    Ok(TokenRecord {
        id: r.try_get("id")?,
        hash: r.try_get("hash")?,
        site: r.try_get("site")?,
        role: Role::parse(&r.try_get::<String, _>("role")?),
        name: r.try_get("name")?,
        created_at_us: r.try_get("created_at")?,
        revoked_at_us: r.try_get("revoked_at")?,
        user_id: r.try_get("user_id")?,
    })
}

//! Users (local, with an Argon2id password hash, or from OpenID Connect), their sessions and
//! pending OpenID Connect sign-ins. Passwords and session secrets are hashed by the caller;
//! the store keeps only hashes.

use sqlx::Row;

use crate::audit::{Audit, audit_in};
use crate::{Store, StoreError};

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Id (UUID).
    pub id: String,
    /// Email, lower case (the sign-in name).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `viewer`, `editor` or `admin`.
    pub role: String,
    /// The sites this user may see (`None`: every site).
    pub sites: Option<Vec<String>>,
    /// Argon2id PHC string (`None`: signs in with OpenID Connect only).
    pub password_hash: Option<String>,
    /// `issuer|subject` of an OpenID Connect user.
    pub oidc_subject: Option<String>,
    /// When disabled, Unix µs.
    pub disabled_at: Option<i64>,
    /// Created, Unix µs.
    pub created_at: i64,
    /// Last changed, Unix µs.
    pub updated_at: i64,
    /// Last sign-in, Unix µs.
    pub last_login_at: Option<i64>,
    /// Last password change, Unix µs.
    pub password_changed_at: Option<i64>,
}

/// A session with its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// SHA-256 of the cookie value, hex.
    pub id: String,
    /// The user.
    pub user_id: String,
    /// The CSRF token changes must carry.
    pub csrf: String,
    /// Created, Unix µs.
    pub created_at: i64,
    /// Last request, Unix µs.
    pub seen_at: i64,
    /// Absolute expiry, Unix µs.
    pub expires_at: i64,
    /// Client address at sign-in.
    pub client: String,
    /// User agent at sign-in.
    pub user_agent: String,
}

/// A pending OpenID Connect sign-in (between the redirect and the callback).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcPending {
    /// The `state` parameter.
    pub state: String,
    /// The nonce the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// Where to go after signing in (a path of the dashboard).
    pub return_to: String,
    /// Created, Unix µs.
    pub created_at: i64,
}

const USER_COLUMNS: &str = "id, email, name, role, sites, password_hash, oidc_subject, disabled_at, created_at, updated_at, last_login_at, password_changed_at";

fn user_from<R: Row>(r: &R) -> Result<UserRow, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<String>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> Option<i64>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    let sites: Option<String> = r.try_get("sites")?;
    Ok(UserRow {
        id: r.try_get("id")?,
        email: r.try_get("email")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        sites: sites.and_then(|s| serde_json::from_str(&s).ok()),
        password_hash: r.try_get("password_hash")?,
        oidc_subject: r.try_get("oidc_subject")?,
        disabled_at: r.try_get("disabled_at")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_login_at: r.try_get("last_login_at")?,
        password_changed_at: r.try_get("password_changed_at")?,
    })
}

fn sites_text(sites: &Option<Vec<String>>) -> Option<String> {
    sites
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()))
}

impl Store {
    /// Creates a user; false when the email (or OpenID subject) is taken.
    pub async fn create_user(
        &self,
        u: &UserRow,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO users (id, email, name, role, sites, password_hash, oidc_subject, disabled_at, created_at, updated_at, password_changed_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING";
        let created = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(&u.id).bind(&u.email).bind(&u.name).bind(&u.role).bind(sites_text(&u.sites))
                .bind(&u.password_hash).bind(&u.oidc_subject).bind(u.disabled_at).bind(u.created_at).bind(u.updated_at)
                .bind(u.password_changed_at)
                .execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n > 0
        });
        Ok(created)
    }

    /// Every user, by email.
    pub async fn list_users(&self) -> Result<Vec<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY email");
        let rows = with_pool!(self, p => sqlx::query(&sql).fetch_all(p).await?.iter().map(user_from).collect::<Result<Vec<_>, _>>()?);
        Ok(rows)
    }

    /// The user with this email (case-insensitive).
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE email = $1");
        let row = with_pool!(self, p => sqlx::query(&sql).bind(email.to_lowercase()).fetch_optional(p).await?.as_ref().map(user_from).transpose()?);
        Ok(row)
    }

    /// The user with this id.
    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
        let row = with_pool!(self, p => sqlx::query(&sql).bind(id).fetch_optional(p).await?.as_ref().map(user_from).transpose()?);
        Ok(row)
    }

    /// The user signed in with this OpenID Connect subject (`issuer|sub`).
    pub async fn user_by_subject(&self, subject: &str) -> Result<Option<UserRow>, StoreError> {
        let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE oidc_subject = $1");
        let row = with_pool!(self, p => sqlx::query(&sql).bind(subject).fetch_optional(p).await?.as_ref().map(user_from).transpose()?);
        Ok(row)
    }

    /// Writes a user's name, role, sites, OpenID subject and disabled state. Disabling ends
    /// the user's sessions and revokes nothing else (tokens stop working while disabled).
    pub async fn update_user(
        &self,
        u: &UserRow,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE users SET name = $1, role = $2, sites = $3, oidc_subject = $4, disabled_at = $5, updated_at = $6 WHERE id = $7";
        const END: &str = "DELETE FROM sessions WHERE user_id = $1";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(&u.name).bind(&u.role).bind(sites_text(&u.sites)).bind(&u.oidc_subject)
                .bind(u.disabled_at).bind(u.updated_at).bind(&u.id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                if u.disabled_at.is_some() {
                    sqlx::query(END).bind(&u.id).execute(&mut *tx).await?;
                }
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Sets a user's password hash and ends their other sessions (`keep`: the session the
    /// change came from).
    pub async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        now: i64,
        keep: Option<&str>,
        audit: Option<&Audit>,
    ) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE users SET password_hash = $1, password_changed_at = $2, updated_at = $2 WHERE id = $3";
        const END: &str = "DELETE FROM sessions WHERE user_id = $1 AND id <> $2";
        let n = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let n = sqlx::query(SQL).bind(hash).bind(now).bind(user_id).execute(&mut *tx).await?.rows_affected();
            if n > 0 {
                sqlx::query(END).bind(user_id).bind(keep.unwrap_or("")).execute(&mut *tx).await?;
                audit_in!(&mut *tx, audit);
            }
            tx.commit().await?;
            n
        });
        Ok(n > 0)
    }

    /// Records a sign-in.
    pub async fn note_login(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE users SET last_login_at = $1 WHERE id = $2";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(now).bind(user_id).execute(p).await?;
        });
        Ok(())
    }

    /// Stores a new session.
    pub async fn create_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO sessions (id, user_id, csrf, created_at, seen_at, expires_at, client, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(&s.id).bind(&s.user_id).bind(&s.csrf).bind(s.created_at).bind(s.seen_at)
                .bind(s.expires_at).bind(&s.client).bind(&s.user_agent).execute(p).await?;
        });
        Ok(())
    }

    /// The session with this id and its user.
    pub async fn session(&self, id: &str) -> Result<Option<(SessionRow, UserRow)>, StoreError> {
        let sql = format!(
            "SELECT s.id AS sid, s.user_id, s.csrf, s.created_at AS s_created, s.seen_at, s.expires_at, s.client AS s_client, s.user_agent,
                u.{} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
            USER_COLUMNS.replace(", ", ", u.")
        );
        let row = with_pool!(self, p => {
            match sqlx::query(&sql).bind(id).fetch_optional(p).await? {
                Some(r) => Some((
                    SessionRow {
                        id: r.try_get("sid")?,
                        user_id: r.try_get("user_id")?,
                        csrf: r.try_get("csrf")?,
                        created_at: r.try_get("s_created")?,
                        seen_at: r.try_get("seen_at")?,
                        expires_at: r.try_get("expires_at")?,
                        client: r.try_get("s_client")?,
                        user_agent: r.try_get("user_agent")?,
                    },
                    user_from(&r)?,
                )),
                None => None,
            }
        });
        Ok(row)
    }

    /// Notes activity on a session (idle expiry counts from here).
    pub async fn touch_session(&self, id: &str, now: i64) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE sessions SET seen_at = $1 WHERE id = $2";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(now).bind(id).execute(p).await?;
        });
        Ok(())
    }

    /// Ends a session.
    pub async fn delete_session(&self, id: &str) -> Result<bool, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE id = $1";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(id).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Deletes sessions idle since `idle_before` or past their expiry at `now`.
    pub async fn prune_sessions(&self, now: i64, idle_before: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM sessions WHERE expires_at < $1 OR seen_at < $2";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(now).bind(idle_before).execute(p).await?.rows_affected());
        Ok(n)
    }

    /// Stores a pending OpenID Connect sign-in.
    pub async fn put_oidc_pending(&self, o: &OidcPending) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO oidc_pending (state, nonce, pkce_verifier, return_to, created_at) VALUES ($1, $2, $3, $4, $5)";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(&o.state).bind(&o.nonce).bind(&o.pkce_verifier).bind(&o.return_to).bind(o.created_at).execute(p).await?;
        });
        Ok(())
    }

    /// Takes (reads and deletes) the pending sign-in of `state`, if it was created after
    /// `since`; older ones are deleted too.
    pub async fn take_oidc_pending(
        &self,
        state: &str,
        since: i64,
    ) -> Result<Option<OidcPending>, StoreError> {
        // writes first: a SQLite transaction that reads and then writes fails at once with
        // "database is locked" when another connection committed in between (its snapshot
        // cannot be upgraded); one that starts by writing waits for the lock instead
        const TAKE: &str = "DELETE FROM oidc_pending WHERE state = $1 AND created_at >= $2 RETURNING state, nonce, pkce_verifier, return_to, created_at";
        const DEL: &str = "DELETE FROM oidc_pending WHERE state = $1 OR created_at < $2";
        let row = with_pool!(self, p => {
            let mut tx = p.begin().await?;
            let r = sqlx::query(TAKE).bind(state).bind(since).fetch_optional(&mut *tx).await?;
            sqlx::query(DEL).bind(state).bind(since).execute(&mut *tx).await?;
            tx.commit().await?;
            match r {
                Some(r) => Some(OidcPending {
                    state: r.try_get("state")?,
                    nonce: r.try_get("nonce")?,
                    pkce_verifier: r.try_get("pkce_verifier")?,
                    return_to: r.try_get("return_to")?,
                    created_at: r.try_get("created_at")?,
                }),
                None => None,
            }
        });
        Ok(row)
    }
}

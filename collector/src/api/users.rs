//! `/api/v1/users` (admin): local users, their roles and sites, disabling, password resets
//! and personal tokens. Every change is audited with the user's state before and after.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use llmscope_store::users::UserRow;

use super::auth::{create_personal_token, revoke_personal_token, token_json, user_json};
use super::{ApiError, ApiResult, ApiState, parse_body};
use crate::access::{Caller, Role, password, snapshot};

/// Normalises and checks an email address (the sign-in name).
pub fn email(raw: &str) -> Result<String, String> {
    let e = raw.trim().to_lowercase();
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_control() || c.is_whitespace())
        && e.split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'));
    if ok {
        Ok(e)
    } else {
        Err(format!("`{raw}` is not an email address"))
    }
}

/// Checks a list of sites (`None`: every site).
pub fn sites(v: Option<Vec<String>>) -> Result<Option<Vec<String>>, String> {
    match v {
        None => Ok(None),
        Some(list) => {
            if let Some(bad) = list.iter().find(|s| !super::admin::valid_site(s)) {
                return Err(format!("`{bad}` is not a valid site name"));
            }
            let mut l = list;
            l.sort();
            l.dedup();
            Ok(Some(l))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    email: String,
    role: Role,
    #[serde(default)]
    sites: Option<Vec<String>>,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: Option<String>,
}

async fn list(State(st): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let users = st.store.list_users().await?;
    Ok(Json(users.iter().map(user_json).collect::<Vec<_>>()))
}

async fn find(st: &ApiState, id: &str) -> ApiResult<UserRow> {
    // by id, or by email for people writing scripts
    let u = match st.store.user_by_id(id).await? {
        Some(u) => Some(u),
        None => st.store.user_by_email(id).await?,
    };
    u.ok_or_else(|| ApiError::not_found(format!("no user `{id}`")))
}

async fn hash(st: &ApiState, pw: String) -> ApiResult<String> {
    let hasher = st.hasher.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&pw))
        .await
        .map_err(|e| ApiError::new(crate::error::ErrorCode::Internal, e.to_string()))?
        .map_err(|e| ApiError::new(crate::error::ErrorCode::Internal, e.to_string()))
}

async fn create(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: CreateBody = parse_body(&body)?;
    let email = email(&b.email).map_err(|e| ApiError::bad("email", e))?;
    let sites = sites(b.sites).map_err(|e| ApiError::bad("sites", e))?;
    let (pw, generated) = match b.password {
        Some(p) => {
            password::check_new(&st.auth, &p).map_err(|e| ApiError::bad("password", e))?;
            (p, false)
        }
        None => (password::generate(20), true),
    };
    let now = st.now();
    let u = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.clone(),
        name: b
            .name
            .chars()
            .filter(|c| !c.is_control())
            .take(200)
            .collect(),
        role: b.role.as_str().to_owned(),
        sites,
        password_hash: Some(hash(&st, pw.clone()).await?),
        oidc_subject: None,
        disabled_at: None,
        created_at: now,
        updated_at: now,
        last_login_at: None,
        password_changed_at: Some(now),
    };
    let entry = st
        .audit(&caller, "user.create", format!("user:{email}"))
        .change(None, snapshot(&user_json(&u)));
    if !st.store.create_user(&u, Some(&entry)).await? {
        return Err(ApiError::conflict(format!(
            "a user `{email}` exists already"
        )));
    }
    let mut out = user_json(&u);
    if generated {
        out["password"] = json!(pw);
    }
    Ok((StatusCode::CREATED, Json(out)))
}

async fn one(State(st): State<ApiState>, Path(id): Path<String>) -> ApiResult<impl IntoResponse> {
    Ok(Json(user_json(&find(&st, &id).await?)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    role: Option<Role>,
    /// `null` clears the limit (every site).
    #[serde(default, with = "serde_with_double_option")]
    sites: Option<Option<Vec<String>>>,
    #[serde(default)]
    disabled: Option<bool>,
}

/// `field: absent` → `None`, `field: null` → `Some(None)`.
mod serde_with_double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

async fn patch(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: PatchBody = parse_body(&body)?;
    let mut u = find(&st, &id).await?;
    let before = user_json(&u);
    if let Some(n) = b.name {
        u.name = n.chars().filter(|c| !c.is_control()).take(200).collect();
    }
    if let Some(r) = b.role {
        u.role = r.as_str().to_owned();
    }
    if let Some(s) = b.sites {
        u.sites = sites(s).map_err(|e| ApiError::bad("sites", e))?;
    }
    if let Some(d) = b.disabled {
        if d && caller.user_id() == Some(u.id.as_str()) {
            return Err(ApiError::bad("disabled", "you cannot disable yourself"));
        }
        u.disabled_at = if d {
            Some(u.disabled_at.unwrap_or(st.now()))
        } else {
            None
        };
    }
    u.updated_at = st.now();
    let after = user_json(&u);
    let action = match b.disabled {
        Some(true) if before["disabled"] == false => "user.disable",
        Some(false) if before["disabled"] == true => "user.enable",
        _ => "user.update",
    };
    let entry = st
        .audit(&caller, action, format!("user:{}", u.email))
        .change(snapshot(&before), snapshot(&after));
    st.store.update_user(&u, Some(&entry)).await?;
    Ok(Json(after))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[serde(default)]
    password: Option<String>,
}

async fn set_password(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: PasswordBody = if body.is_empty() {
        PasswordBody { password: None }
    } else {
        parse_body(&body)?
    };
    let u = find(&st, &id).await?;
    let (pw, generated) = match b.password {
        Some(p) => {
            password::check_new(&st.auth, &p).map_err(|e| ApiError::bad("password", e))?;
            (p, false)
        }
        None => (password::generate(20), true),
    };
    let h = hash(&st, pw.clone()).await?;
    let entry = st.audit(&caller, "user.password", format!("user:{}", u.email));
    st.store
        .set_password(&u.id, &h, st.now(), None, Some(&entry))
        .await?;
    Ok(Json(if generated {
        json!({"password": pw})
    } else {
        json!({})
    }))
}

async fn tokens(
    State(st): State<ApiState>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let u = find(&st, &id).await?;
    let rows = st.store.user_tokens(&u.id).await?;
    Ok(Json(rows.iter().map(token_json).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    name: String,
}

async fn create_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: TokenBody = if body.is_empty() {
        TokenBody {
            name: String::new(),
        }
    } else {
        parse_body(&body)?
    };
    let u = find(&st, &id).await?;
    Ok((
        StatusCode::CREATED,
        Json(create_personal_token(&st, &caller, &u, &b.name).await?),
    ))
}

async fn revoke_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, token)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let u = find(&st, &id).await?;
    revoke_personal_token(&st, &caller, &u, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The user routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/api/v1/users", get(list).post(create))
        .route("/api/v1/users/{id}", get(one).patch(patch))
        .route("/api/v1/users/{id}/password", post(set_password))
        .route("/api/v1/users/{id}/tokens", get(tokens).post(create_token))
        .route("/api/v1/users/{id}/tokens/{token}", delete(revoke_token))
}

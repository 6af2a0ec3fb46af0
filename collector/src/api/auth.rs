//! Signing in and out: `/api/v1/auth/login` (email and password → session cookie),
//! `/logout`, `/me` (the caller, its CSRF token and the sign-in methods), `/password`, the
//! caller's personal tokens (`/tokens`) and OpenID Connect (`/oidc/start`, `/oidc/callback`).
//! Error messages never say whether an account exists.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use llmscope_store::tokens::Role as TokenRole;
use llmscope_store::users::{SessionRow, UserRow};

use super::{ApiError, ApiQuery, ApiResult, ApiState, ms, parse_body};
use crate::access::session::{clear_cookie, new_session, same_origin, set_cookie};
use crate::access::{Caller, Role, Via, password};
use crate::error::ErrorCode;

/// A user as the API shows it (never the password hash).
pub fn user_json(u: &UserRow) -> Value {
    json!({"id": u.id, "email": u.email, "name": u.name, "role": u.role, "sites": u.sites,
        "disabled": u.disabled_at.is_some(), "created_at": ms(u.created_at),
        "last_login_at": u.last_login_at.map(ms), "has_password": u.password_hash.is_some(),
        "oidc": u.oidc_subject.is_some()})
}

fn wrong_credentials() -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, "wrong email or password")
}

fn secure(st: &ApiState) -> bool {
    st.auth.cookie_secure.unwrap_or(st.tls)
}

/// Starts a session for `u`; returns the `Set-Cookie` value and the CSRF token.
async fn open_session(
    st: &ApiState,
    u: &UserRow,
    client: &str,
    headers: &HeaderMap,
) -> ApiResult<(String, String)> {
    let now = st.now();
    let s = new_session();
    let max = i64::try_from(st.auth.session_max.as_micros()).unwrap_or(i64::MAX);
    st.store
        .create_session(&SessionRow {
            id: s.id.clone(),
            user_id: u.id.clone(),
            csrf: s.csrf.clone(),
            created_at: now,
            seen_at: now,
            expires_at: now.saturating_add(max),
            client: client.to_owned(),
            user_agent: headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect(),
        })
        .await?;
    st.store.note_login(&u.id, now).await?;
    Ok((
        set_cookie(&s.secret, st.auth.session_max.as_secs(), secure(st)),
        s.csrf,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    email: String,
    password: String,
}

async fn login(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if !same_origin(&headers) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "sign-in from another origin is refused",
        ));
    }
    let b: LoginBody = parse_body(&body)?;
    let email = b.email.trim().to_lowercase();
    let client = caller.client.clone();
    if let Some(wait) = st.limiter.check(&email, &client) {
        let secs = wait.as_secs().max(1);
        let mut r = ApiError::new(
            ErrorCode::RateLimited,
            format!("too many failed sign-ins; try again in {secs} s"),
        )
        .into_response();
        if let Ok(v) = secs.to_string().parse() {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let user = st.store.user_by_email(&email).await?;
    let hash = user
        .as_ref()
        .filter(|u| u.disabled_at.is_none())
        .and_then(|u| u.password_hash.clone());
    // Argon2 takes tens of milliseconds of CPU: off the runtime's threads
    let (hasher, pw, h) = (st.hasher.clone(), b.password, hash.clone());
    let ok = tokio::task::spawn_blocking(move || hasher.verify(&pw, h.as_deref()))
        .await
        .unwrap_or(false);
    let Some(u) = user.filter(|_| ok) else {
        st.limiter.failed(&email, &client);
        tracing::warn!(client = %client, "sign-in refused: wrong email or password");
        return Err(wrong_credentials());
    };
    st.limiter.succeeded(&email);
    let (cookie, csrf) = open_session(&st, &u, &client, &headers).await?;
    let entry = st.audit(
        &Caller {
            actor: u.email.clone(),
            role: u.role.parse().unwrap_or(Role::Viewer),
            ..caller
        },
        "auth.login",
        format!("user:{}", u.email),
    );
    st.store.audit(&entry).await?;
    tracing::info!(user = %u.email, client = %client, "signed in");
    let mut r = Json(json!({"user": user_json(&u), "csrf": csrf})).into_response();
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn logout(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    if let Via::Session { session_id, .. } = &caller.via {
        st.store.delete_session(session_id).await?;
        let entry = st.audit(&caller, "auth.logout", format!("user:{}", caller.actor));
        st.store.audit(&entry).await?;
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = clear_cookie(secure(&st)).parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

async fn me(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    let methods = json!({"password": true, "oidc": st.oidc.as_ref().map(|o| json!({"name": o.name(), "start": "/api/v1/auth/oidc/start"}))});
    let (user, csrf) = match &caller.via {
        Via::Session {
            session_id,
            user_id,
        } => {
            let u = st.store.user_by_id(user_id).await?;
            let csrf = st.store.session(session_id).await?.map(|(s, _)| s.csrf);
            (u, csrf)
        }
        Via::PersonalToken { user_id, .. } => (st.store.user_by_id(user_id).await?, None),
        _ => (None, None),
    };
    let anonymous = caller.via == Via::Anonymous;
    let signed_in = !anonymous || st.auth.anonymous_role.is_some();
    Ok(Json(json!({
        "signed_in": signed_in,
        "anonymous": anonymous,
        "actor": caller.actor,
        "role": if signed_in { Some(caller.role.as_str()) } else { None },
        "sites": caller.sites,
        "user": user.as_ref().map(user_json),
        "csrf": csrf,
        "methods": methods,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    current: String,
    new: String,
}

async fn change_password(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: PasswordBody = parse_body(&body)?;
    let Some(uid) = caller.user_id() else {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "only a user has a password; this caller is a token",
        ));
    };
    let u = st
        .store
        .user_by_id(uid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))?;
    password::check_new(&st.auth, &b.new).map_err(|e| ApiError::bad("new", e))?;
    let (hasher, cur, h) = (st.hasher.clone(), b.current, u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || hasher.verify(&cur, h.as_deref()))
        .await
        .unwrap_or(false);
    if !ok {
        return Err(
            ApiError::new(ErrorCode::PermissionDenied, "the current password is wrong")
                .at("current"),
        );
    }
    let hasher = st.hasher.clone();
    let hash = tokio::task::spawn_blocking(move || hasher.hash(&b.new))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let keep = match &caller.via {
        Via::Session { session_id, .. } => Some(session_id.as_str()),
        _ => None,
    };
    let entry = st.audit(&caller, "user.password", format!("user:{}", u.email));
    st.store
        .set_password(&u.id, &hash, st.now(), keep, Some(&entry))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A personal token as the API shows it.
pub fn token_json(t: &llmscope_store::tokens::TokenRecord) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": ms(t.created_at_us), "revoked_at": t.revoked_at_us.map(ms)})
}

/// Creates a personal token for `u` (audited as `caller`); answers it once.
pub async fn create_personal_token(
    st: &ApiState,
    caller: &Caller,
    u: &UserRow,
    name: &str,
) -> ApiResult<Value> {
    let (token, mut record) = crate::auth::generate_token(TokenRole::Personal, None, name);
    record.user_id = Some(u.id.clone());
    let entry = st
        .audit(caller, "token.create", format!("token:{}", record.id))
        .change(
            None,
            crate::access::snapshot(&json!({"user": u.email, "name": name, "kind": "personal"})),
        );
    st.store.insert_token(&record, Some(&entry)).await?;
    Ok(
        json!({"id": record.id, "token": token, "name": record.name, "user": u.email,
        "created_at": ms(record.created_at_us)}),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    name: String,
}

async fn caller_user(st: &ApiState, caller: &Caller) -> ApiResult<UserRow> {
    let uid = caller.user_id().ok_or_else(|| {
        ApiError::new(
            ErrorCode::PermissionDenied,
            "personal tokens belong to users; this caller is an admin token",
        )
    })?;
    st.store
        .user_by_id(uid)
        .await?
        .ok_or_else(|| ApiError::not_found("no such user"))
}

async fn my_tokens(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    let u = caller_user(&st, &caller).await?;
    let rows = st.store.user_tokens(&u.id).await?;
    Ok(Json(rows.iter().map(token_json).collect::<Vec<_>>()))
}

async fn create_my_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: TokenBody = parse_body(&body)?;
    let u = caller_user(&st, &caller).await?;
    Ok((
        StatusCode::CREATED,
        Json(create_personal_token(&st, &caller, &u, &b.name).await?),
    ))
}

/// Revokes `token_id` if it is one of `u`'s personal tokens.
pub async fn revoke_personal_token(
    st: &ApiState,
    caller: &Caller,
    u: &UserRow,
    token_id: &str,
) -> ApiResult<()> {
    let mine = st
        .store
        .user_tokens(&u.id)
        .await?
        .into_iter()
        .any(|t| t.id == token_id && t.revoked_at_us.is_none());
    let entry = st.audit(caller, "token.revoke", format!("token:{token_id}"));
    if !mine
        || !st
            .store
            .revoke_token(token_id, st.now(), Some(&entry))
            .await?
    {
        return Err(ApiError::not_found(format!("no active token `{token_id}`")));
    }
    Ok(())
}

async fn revoke_my_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let u = caller_user(&st, &caller).await?;
    revoke_personal_token(&st, &caller, &u, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct StartQuery {
    return_to: Option<String>,
}

/// A dashboard path to return to (never another site: only `/…`, not `//…`).
fn local_path(p: Option<&str>) -> String {
    match p {
        Some(p) if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') => {
            p.chars().take(500).collect()
        }
        _ => "/".into(),
    }
}

fn signin_error(msg: &str) -> Response {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("error", msg)
        .finish();
    Redirect::to(&format!("/signin?{q}")).into_response()
}

async fn oidc_start(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<StartQuery>,
) -> ApiResult<Response> {
    let Some(p) = &st.oidc else {
        return Err(ApiError::not_found(
            "single sign-on is not configured ([auth.oidc])",
        ));
    };
    match p
        .start(&st.store, &local_path(q.return_to.as_deref()), st.now())
        .await
    {
        Ok(url) => Ok(Redirect::to(&url).into_response()),
        Err(e) => {
            tracing::warn!(error = %e, "oidc: sign-in could not start");
            Ok(signin_error(&e.to_string()))
        }
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

async fn oidc_callback(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> ApiResult<Response> {
    let Some(p) = st.oidc.clone() else {
        return Err(ApiError::not_found(
            "single sign-on is not configured ([auth.oidc])",
        ));
    };
    if let Some(e) = q.error {
        let why = q.error_description.unwrap_or(e);
        return Ok(signin_error(&format!(
            "the identity provider refused the sign-in: {}",
            why.chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect::<String>()
        )));
    }
    let (Some(code), Some(state)) = (q.code, q.state) else {
        return Ok(signin_error("the identity provider sent no code"));
    };
    let now = st.now();
    let (id, return_to) = match p.finish(&st.store, &code, &state, now).await {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(error = %e, client = %caller.client, "oidc: sign-in refused");
            return Ok(signin_error(&e.to_string()));
        }
    };
    // the user: found by subject, else by email (a local user signing in with the provider
    // for the first time), else created on first sign-in
    // (by email only when the provider has verified it: else anyone able to name an email
    // at the provider could take over that local account)
    let existing = match st.store.user_by_subject(&id.subject).await? {
        Some(u) => Some(u),
        None if id.email_verified => st.store.user_by_email(&id.email).await?,
        None => None,
    };
    let actor = Caller {
        actor: id.email.clone(),
        role: id.role,
        ..caller.clone()
    };
    let user = match existing {
        Some(u) if u.disabled_at.is_some() => {
            return Ok(signin_error("this account is disabled"));
        }
        Some(mut u) => {
            let before = user_json(&u);
            u.role = id.role.as_str().to_owned();
            u.sites = id.sites.clone();
            u.oidc_subject = Some(id.subject.clone());
            if !id.name.is_empty() {
                u.name = id.name.clone();
            }
            u.updated_at = now;
            let after = user_json(&u);
            if before != after {
                let entry = st
                    .audit(&actor, "user.update", format!("user:{}", u.email))
                    .change(
                        crate::access::snapshot(&before),
                        crate::access::snapshot(&after),
                    );
                st.store.update_user(&u, Some(&entry)).await?;
            }
            u
        }
        None => {
            let u = UserRow {
                id: uuid::Uuid::new_v4().to_string(),
                email: id.email.clone(),
                name: id.name.clone(),
                role: id.role.as_str().to_owned(),
                sites: id.sites.clone(),
                password_hash: None,
                oidc_subject: Some(id.subject.clone()),
                disabled_at: None,
                created_at: now,
                updated_at: now,
                last_login_at: None,
                password_changed_at: None,
            };
            let entry = st
                .audit(&actor, "user.create", format!("user:{}", u.email))
                .change(None, crate::access::snapshot(&user_json(&u)));
            if !st.store.create_user(&u, Some(&entry)).await? {
                return Ok(signin_error(
                    "this account cannot be created (its email is taken)",
                ));
            }
            u
        }
    };
    let (cookie, _) = open_session(&st, &user, &caller.client, &headers).await?;
    let entry = st.audit(&actor, "auth.login", format!("user:{}", user.email));
    st.store.audit(&entry).await?;
    tracing::info!(user = %user.email, "signed in with single sign-on");
    let mut r = Redirect::to(&return_to).into_response();
    if let Ok(v) = cookie.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// The sign-in routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{delete, get, post};
    axum::Router::new()
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/me", get(me))
        .route("/api/v1/auth/password", post(change_password))
        .route("/api/v1/auth/tokens", get(my_tokens).post(create_my_token))
        .route("/api/v1/auth/tokens/{id}", delete(revoke_my_token))
        .route("/api/v1/auth/oidc/start", get(oidc_start))
        .route("/api/v1/auth/oidc/callback", get(oidc_callback))
}

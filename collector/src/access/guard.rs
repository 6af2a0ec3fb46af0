//! The access middleware of every API route (see the module docs of [`crate::access`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use llmscope_store::tokens::Role as TokenRole;

use super::session::{CSRF_HEADER, cookie_value, same_origin};
use super::{Access, Caller, Role, Via};
use crate::api::{ApiError, ApiState};
use crate::auth::hash_token;
use crate::error::ErrorCode;

/// A session's `seen_at` is written at most this often (µs).
const TOUCH_EVERY_US: i64 = 60_000_000;

/// The policy of `method` on the route `path` (as routed: `/api/v1/violations/{id}`).
pub fn policy_of(method: &Method, path: &str) -> Option<Access> {
    let m = if method == Method::HEAD {
        "get"
    } else {
        method.as_str()
    };
    crate::api::openapi::ENDPOINTS
        .iter()
        .find(|e| e.path == path && e.method.eq_ignore_ascii_case(m))
        .map(|e| e.access)
}

/// The client's address as this listener saw it.
pub fn client_of(req: &Request) -> String {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn unauthenticated(msg: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthenticated, msg)
}

fn bearer(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = v.to_str().map_err(|_| {
        unauthenticated("the authorization header is not ASCII").at("authorization")
    })?;
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .ok_or_else(|| {
            unauthenticated("the authorization header must be `Bearer <token>`").at("authorization")
        })?
        .trim();
    Ok(Some(token.to_owned()))
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Who is calling: a bearer token, a session cookie, or nobody (the anonymous caller, whose
/// role is `[auth] anonymous_role` when set).
pub async fn identify(
    st: &ApiState,
    headers: &HeaderMap,
    method: &Method,
    client: &str,
) -> Result<Caller, ApiError> {
    let caller = |via: Via, actor: String, role: Role, sites: Option<Vec<String>>| Caller {
        via,
        actor,
        role,
        sites,
        client: client.to_owned(),
    };
    if let Some(token) = bearer(headers)? {
        let hash = hash_token(&token);
        if st.admin_hash.as_deref() == Some(hash.as_str()) {
            return Ok(caller(
                Via::ConfigToken,
                "admin-token".into(),
                Role::Admin,
                None,
            ));
        }
        let Some(t) = st.store.find_token(&hash).await? else {
            return Err(unauthenticated("unknown token").at("authorization"));
        };
        if t.revoked_at_us.is_some() {
            return Err(
                unauthenticated(&format!("token `{}` has been revoked", t.id)).at("authorization"),
            );
        }
        return match t.role {
            TokenRole::Admin => Ok(caller(
                Via::AdminToken { id: t.id.clone() },
                format!("token:{}", t.id),
                Role::Admin,
                None,
            )),
            TokenRole::Personal => {
                let user = match &t.user_id {
                    Some(uid) => st.store.user_by_id(uid).await?,
                    None => None,
                };
                let Some(u) = user.filter(|u| u.disabled_at.is_none()) else {
                    return Err(unauthenticated(&format!(
                        "token `{}` belongs to a disabled or deleted user",
                        t.id
                    ))
                    .at("authorization"));
                };
                Ok(caller(
                    Via::PersonalToken {
                        id: t.id.clone(),
                        user_id: u.id.clone(),
                    },
                    u.email.clone(),
                    u.role.parse().unwrap_or(Role::Viewer),
                    u.sites.clone(),
                ))
            }
            TokenRole::Ingest => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "token `{}` is an ingest token: it may only send data (gRPC); use a personal token (`user token create`) or an admin token",
                    t.id
                ),
            )
            .at("authorization")),
        };
    }
    if let Some(secret) = cookie_value(headers) {
        let now = st.now();
        let id = hash_token(&secret);
        let Some((s, u)) = st.store.session(&id).await? else {
            return Err(unauthenticated("your session has ended: sign in again"));
        };
        let idle_us = i64::try_from(st.auth.session_idle.as_micros()).unwrap_or(i64::MAX);
        if s.expires_at <= now || now.saturating_sub(s.seen_at) > idle_us || u.disabled_at.is_some()
        {
            st.store.delete_session(&id).await?;
            return Err(unauthenticated("your session has ended: sign in again"));
        }
        if is_change(method) {
            let proof = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            if proof != Some(s.csrf.as_str()) || !same_origin(headers) {
                return Err(ApiError::new(
                    ErrorCode::PermissionDenied,
                    "this change comes without this session's CSRF token (send the `csrf` of /api/v1/auth/me in X-CSRF-Token) or from another origin",
                )
                .at("x-csrf-token"));
            }
        }
        // the idle clock restarts at most once a minute (a write per request is too many),
        // and often enough for a short `session_idle`
        if now - s.seen_at > TOUCH_EVERY_US.min(idle_us / 4) {
            st.store.touch_session(&id, now).await?;
        }
        return Ok(caller(
            Via::Session {
                session_id: id,
                user_id: u.id.clone(),
            },
            u.email.clone(),
            u.role.parse().unwrap_or(Role::Viewer),
            u.sites.clone(),
        ));
    }
    Ok(caller(
        Via::Anonymous,
        "anonymous".into(),
        st.auth.anonymous_role.unwrap_or(Role::Viewer),
        None,
    ))
}

/// Checks `caller` against `policy`.
pub fn admit(st: &ApiState, caller: &Caller, policy: Access) -> Result<(), ApiError> {
    let anonymous = caller.via == Via::Anonymous;
    let sign_in = || {
        unauthenticated(
            "sign in first (POST /api/v1/auth/login, or the dashboard), or send `Authorization: Bearer <token>`",
        )
    };
    match policy {
        Access::Public => Ok(()),
        Access::Signed if anonymous => Err(sign_in()),
        Access::Signed => Ok(()),
        Access::Role(_) if anonymous && st.auth.anonymous_role.is_none() => Err(sign_in()),
        Access::Role(need) if caller.role >= need => Ok(()),
        Access::Role(_) if anonymous => Err(sign_in()),
        Access::Role(need) => Err(ApiError::new(
            ErrorCode::PermissionDenied,
            format!(
                "this needs the {need} role; {} has the {} role",
                caller.actor, caller.role
            ),
        )),
    }
}

/// The middleware: policy, identity, role, then the handler with the [`Caller`] in the
/// request's extensions.
pub async fn guard(State(st): State<ApiState>, mut req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let Some(policy) = path.as_deref().and_then(|p| policy_of(req.method(), p)) else {
        // a method this path does not serve: the router answers 405, nothing runs
        let listed = path
            .as_deref()
            .is_some_and(|p| crate::api::openapi::ENDPOINTS.iter().any(|e| e.path == p));
        if listed {
            return next.run(req).await;
        }
        // fail closed: a route missing from the route table is reachable by nobody
        return ApiError::new(
            ErrorCode::PermissionDenied,
            "this route has no access policy (it is missing from the route table)",
        )
        .into_response();
    };
    let client = client_of(&req);
    let caller = match identify(&st, req.headers(), req.method(), &client).await {
        Ok(c) => c,
        // a public route (sign-in) works whatever stale credentials the browser sends
        Err(_) if policy == Access::Public => Caller {
            via: Via::Anonymous,
            actor: "anonymous".into(),
            role: Role::Viewer,
            sites: Some(Vec::new()),
            client: client.clone(),
        },
        Err(e) => return e.into_response(),
    };
    if let Err(e) = admit(&st, &caller, policy) {
        return e.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

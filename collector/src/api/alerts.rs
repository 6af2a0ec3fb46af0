//! `/api/v1/channels`, `/routes`, `/silences`, `/deliveries`: alert configuration through the
//! API. Secrets are accepted but never returned (`has_secret` says whether one is set);
//! channel URLs are shown to admins only, with their user information and query masked
//! (Slack webhook URLs: their origin only). Every change is audited.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use llmscope_alert::channel;
use llmscope_alert::routing::{Matchers, ROUTE_LABELS, SILENCE_LABELS};
use llmscope_model::ChannelKind;
use llmscope_store::alerts::{ChannelRow, RouteRow, SilenceRow};

use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, ms, parse_body, time_json};
use crate::access::{Role, snapshot};

/// The alert routes of the API router.
pub fn routes() -> axum::Router<ApiState> {
    axum::Router::new()
        .route("/api/v1/channels", get(list_channels).post(create_channel))
        .route(
            "/api/v1/channels/{name}",
            get(get_channel).put(put_channel).delete(delete_channel),
        )
        .route("/api/v1/channels/{name}/test", post(test_channel))
        .route("/api/v1/routes", get(list_routes).post(create_route))
        .route("/api/v1/routes/{id}", delete(delete_route))
        .route("/api/v1/silences", get(list_silences).post(create_silence))
        .route("/api/v1/silences/{id}", delete(expire_silence))
        .route("/api/v1/deliveries", get(list_deliveries))
}

/// A URL with its user information and query masked: `https://***@host/path?***`.
pub fn mask_url(u: &str) -> String {
    let Some((scheme, rest)) = u.split_once("://") else {
        return u.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?', '#']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host = match authority.rsplit_once('@') {
        Some((_, h)) => format!("***@{h}"),
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, _)) => format!("{path}?***"),
        None => tail.split('#').next().unwrap_or("").to_owned(),
    };
    format!("{scheme}://{host}{tail}")
}

/// A channel as the API shows it: to admins with masked URLs (a Slack webhook URL is itself
/// a credential: its origin only); to others without its configuration.
pub fn channel_json(c: &ChannelRow, admin: bool) -> Value {
    let config: Value = serde_json::from_str(&c.config).unwrap_or(json!({}));
    let config = if !admin {
        Value::Null
    } else {
        let mut v = config;
        if let Some(u) = v["url"].as_str() {
            v["url"] = if c.kind == ChannelKind::Slack {
                let shown = u.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
                json!(format!("{shown}/…"))
            } else {
                json!(mask_url(u))
            };
        }
        v
    };
    json!({
        "name": c.name, "kind": c.kind, "config": config, "has_secret": !c.secret.is_empty(),
        "max_attempts": c.max_attempts, "source": c.source,
    })
}

async fn list_channels(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    let rows = st.store.channels().await?;
    let admin = caller.role >= Role::Admin;
    Ok(Json(
        rows.iter()
            .map(|c| channel_json(c, admin))
            .collect::<Vec<_>>(),
    ))
}

async fn find_channel(st: &ApiState, name: &str) -> ApiResult<ChannelRow> {
    st.store
        .channels()
        .await?
        .into_iter()
        .find(|c| c.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no channel named `{name}`")))
}

async fn get_channel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(channel_json(
        &find_channel(&st, &name).await?,
        caller.role >= Role::Admin,
    )))
}

/// Refuses a channel target inside the collector's network when
/// `alerts.deny_private_targets` is on.
async fn check_target(st: &ApiState, config: &Value) -> ApiResult<()> {
    if !st.alerts.deny_private_targets {
        return Ok(());
    }
    if let Some(u) = config["url"].as_str() {
        llmscope_alert::targets::check_url(u)
            .await
            .map_err(|e| ApiError::bad("config.url", e))?;
    }
    if let Some(h) = config["host"].as_str().filter(|h| !h.is_empty()) {
        llmscope_alert::targets::check_url(&format!("smtp://{h}:25"))
            .await
            .map_err(|e| ApiError::bad("config.host", e))?;
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelBody {
    #[serde(default)]
    name: Option<String>,
    kind: String,
    #[serde(default)]
    config: Value,
    /// `None`: keep the stored secret (on update).
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    max_attempts: Option<i64>,
}

async fn save_channel(
    st: &ApiState,
    caller: &Caller,
    name: &str,
    b: ChannelBody,
    existing: Option<&ChannelRow>,
) -> ApiResult<ChannelRow> {
    if name.trim().is_empty()
        || name.len() > 100
        || name.contains('/')
        || name.chars().any(|c| c.is_control())
    {
        return Err(ApiError::bad(
            "name",
            "`name` must be 1..100 characters without `/` or control characters",
        ));
    }
    let kind: ChannelKind = b.kind.parse().map_err(|_| {
        ApiError::bad(
            "kind",
            format!("`kind` must be one of {}", ChannelKind::names()),
        )
    })?;
    if existing.is_some_and(|e| e.source == "config") {
        return Err(ApiError::conflict(format!(
            "channel `{name}` is declared in the config file; change it there"
        )));
    }
    let keep_secret = b.secret.is_none();
    let secret = b
        .secret
        .clone()
        .or_else(|| existing.map(|e| e.secret.clone()))
        .unwrap_or_default();
    let config = channel::validate(kind, &b.config, !secret.is_empty())
        .map_err(|e| ApiError::bad("config", e))?;
    check_target(st, &config).await?;
    let max_attempts = b.max_attempts.unwrap_or(8);
    if !(1..=100).contains(&max_attempts) {
        return Err(ApiError::bad(
            "max_attempts",
            "`max_attempts` must be from 1 to 100",
        ));
    }
    let row = ChannelRow {
        name: name.to_owned(),
        kind,
        config: config.to_string(),
        secret,
        max_attempts,
        source: "api".into(),
    };
    let action = if existing.is_some() {
        "channel.update"
    } else {
        "channel.create"
    };
    let entry = st.audit(caller, action, format!("channel:{name}")).change(
        existing.and_then(|e| snapshot(&channel_json(e, true))),
        snapshot(&channel_json(&row, true)),
    );
    st.store
        .upsert_channel(&row, keep_secret, st.now(), Some(&entry))
        .await?;
    // the name only: a URL can carry credentials
    tracing::info!(channel = ?row.name, kind = %row.kind, "channel saved through the api");
    Ok(row)
}

async fn create_channel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: ChannelBody = parse_body(&body)?;
    let name = b
        .name
        .clone()
        .ok_or_else(|| ApiError::bad("name", "`name` is required"))?;
    if st.store.channels().await?.iter().any(|c| c.name == name) {
        return Err(ApiError::conflict(format!(
            "a channel named `{name}` exists; PUT /api/v1/channels/{name} changes it"
        )));
    }
    let row = save_channel(&st, &caller, &name, b, None).await?;
    Ok((StatusCode::CREATED, Json(channel_json(&row, true))))
}

async fn put_channel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: ChannelBody = parse_body(&body)?;
    let existing = st
        .store
        .channels()
        .await?
        .into_iter()
        .find(|c| c.name == name);
    let row = save_channel(&st, &caller, &name, b, existing.as_ref()).await?;
    Ok(Json(channel_json(&row, true)))
}

async fn delete_channel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = find_channel(&st, &name).await?;
    if c.source == "config" {
        return Err(ApiError::conflict(format!(
            "channel `{name}` is declared in the config file; remove it there"
        )));
    }
    let entry = st
        .audit(&caller, "channel.delete", format!("channel:{name}"))
        .change(snapshot(&channel_json(&c, true)), None);
    st.store.delete_channel(&name, Some(&entry)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// At most 200 characters of a receiver's answer, without control characters: enough to
/// see why a test failed, too little to read internal pages through the collector.
pub fn excerpt(s: &str) -> String {
    let clean: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.split_whitespace().collect::<Vec<_>>().join(" ");
    if clean.chars().count() > 200 {
        format!("{}…", clean.chars().take(200).collect::<String>())
    } else {
        clean
    }
}

async fn test_channel(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let c = find_channel(&st, &name).await?;
    let config: Value = serde_json::from_str(&c.config).unwrap_or(json!({}));
    check_target(&st, &config).await?;
    let r = st.dispatcher.test_send(&c).await;
    tracing::info!(channel = ?name, ok = r.ok(), status = ?r.status, actor = ?caller.actor, "test notification sent");
    // a test send reaches out of the collector: recorded like a change
    let entry = st
        .audit(&caller, "channel.test", format!("channel:{name}"))
        .change(
            None,
            Some(json!({"ok": r.ok(), "status": r.status}).to_string()),
        );
    st.store.audit(&entry).await?;
    Ok(Json(json!({
        "ok": r.ok(), "status": r.status, "response": excerpt(&r.response),
        "error": r.error.as_deref().map(excerpt),
    })))
}

fn route_json(r: &RouteRow) -> Value {
    json!({"id": r.id, "position": r.position, "matchers": r.matchers, "channels": r.channels,
        "continue": r.continue_matching, "source": r.source})
}

/// Whether a site-limited caller may see (or change) something matching `matchers`: its
/// `site` matcher, if any, is one of the caller's sites.
fn site_matcher_visible(caller: &Caller, matchers: &Value) -> bool {
    match matchers.get("site").and_then(Value::as_str) {
        Some(s) => caller.may_see(s),
        None => true,
    }
}

async fn list_routes(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<impl IntoResponse> {
    let mut out: Vec<Value> = st
        .store
        .routes()
        .await?
        .iter()
        .filter(|r| site_matcher_visible(&caller, &r.matchers))
        .map(route_json)
        .collect();
    let default = match &st.alerts.default_channels {
        Some(d) => json!(d),
        None => json!(
            st.store
                .channels()
                .await?
                .iter()
                .map(|c| c.name.clone())
                .collect::<Vec<_>>()
        ),
    };
    out.push(json!({"default": true, "channels": default, "all_channels": st.alerts.default_channels.is_none()}));
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteBody {
    #[serde(default)]
    matchers: Value,
    channels: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    #[serde(default)]
    position: Option<i64>,
}

async fn create_route(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: RouteBody = parse_body(&body)?;
    Matchers::parse(&b.matchers, ROUTE_LABELS).map_err(|e| ApiError::bad("matchers", e))?;
    if b.channels.is_empty() {
        return Err(ApiError::bad(
            "channels",
            "`channels` must name at least one channel",
        ));
    }
    let known = st.store.channels().await?;
    for (i, c) in b.channels.iter().enumerate() {
        if !known.iter().any(|k| &k.name == c) {
            return Err(ApiError::bad(
                &format!("channels[{i}]"),
                format!("no channel named `{c}`"),
            ));
        }
    }
    let existing = st.store.routes().await?;
    let position = b.position.unwrap_or_else(|| {
        existing
            .iter()
            .map(|r| r.position + 1)
            .max()
            .unwrap_or(0)
            .max(1000)
    });
    let mut row = RouteRow {
        id: 0,
        position,
        matchers: if b.matchers.is_null() {
            json!({})
        } else {
            b.matchers
        },
        channels: b.channels,
        continue_matching: b.continue_matching,
        source: "api".into(),
    };
    let entry = st
        .audit(&caller, "route.create", "route")
        .change(None, snapshot(&route_json(&row)));
    row.id = st.store.insert_route(&row, st.now(), Some(&entry)).await?;
    Ok((StatusCode::CREATED, Json(route_json(&row))))
}

async fn delete_route(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::bad("id", format!("route id `{id}` is not a number")))?;
    let r = st
        .store
        .routes()
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no route with id {id}")))?;
    if r.source == "config" {
        return Err(ApiError::conflict(
            "this route is declared in the config file; remove it there",
        ));
    }
    let entry = st
        .audit(&caller, "route.delete", format!("route:{id}"))
        .change(snapshot(&route_json(&r)), None);
    st.store.delete_route(id, Some(&entry)).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn silence_json(s: &SilenceRow, now: i64) -> Value {
    let state = if now < s.starts_at {
        "pending"
    } else if now < s.ends_at {
        "active"
    } else {
        "expired"
    };
    json!({"id": s.id, "matchers": s.matchers, "starts_at": ms(s.starts_at), "ends_at": ms(s.ends_at),
        "comment": s.comment, "created_by": s.created_by, "created_at": ms(s.created_at), "source": s.source, "state": state})
}

#[derive(Deserialize)]
struct SilenceQuery {
    #[serde(default)]
    state: Option<String>,
}

async fn list_silences(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SilenceQuery>,
) -> ApiResult<impl IntoResponse> {
    let now = st.now();
    let want = q.state.unwrap_or_else(|| "all".into());
    if !matches!(want.as_str(), "all" | "active" | "expired" | "pending") {
        return Err(ApiError::bad(
            "state",
            "`state` must be active, pending, expired or all",
        ));
    }
    let out: Vec<Value> = st
        .store
        .silences()
        .await?
        .iter()
        .filter(|s| site_matcher_visible(&caller, &s.matchers))
        .map(|s| silence_json(s, now))
        .filter(|v| want == "all" || v["state"] == want.as_str())
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    matchers: Value,
    #[serde(default)]
    starts_at: Option<Value>,
    ends_at: Value,
    comment: String,
    /// Recorded with a token without a user (a deploy pipeline names itself); a signed-in
    /// user is recorded as themselves.
    #[serde(default)]
    created_by: String,
}

async fn create_silence(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: SilenceBody = parse_body(&body)?;
    Matchers::parse(&b.matchers, SILENCE_LABELS).map_err(|e| ApiError::bad("matchers", e))?;
    if b.matchers.as_object().is_none_or(|m| m.is_empty()) {
        return Err(ApiError::bad(
            "matchers",
            "`matchers` must have at least one label (an empty silence would mute everything)",
        ));
    }
    let now = st.now();
    let starts_at = match &b.starts_at {
        Some(v) => time_json("starts_at", v)?,
        None => now,
    };
    let ends_at = time_json("ends_at", &b.ends_at)?;
    if ends_at <= starts_at.max(now) {
        return Err(ApiError::bad(
            "ends_at",
            "`ends_at` must be in the future and after `starts_at`",
        ));
    }
    if b.comment.trim().is_empty() {
        return Err(ApiError::bad(
            "comment",
            "`comment` must say why (e.g. the rollout)",
        ));
    }
    // a site-limited editor silences its own sites only
    if caller.site_limit().is_some()
        && !b
            .matchers
            .get("site")
            .and_then(Value::as_str)
            .is_some_and(|s| caller.may_see(s))
    {
        return Err(ApiError::bad(
            "matchers.site",
            "name one of your sites in `matchers.site` (you may silence only your sites)",
        ));
    }
    let row = SilenceRow {
        id: uuid::Uuid::new_v4().to_string(),
        matchers: b.matchers,
        starts_at,
        ends_at,
        comment: b.comment,
        created_by: super::admin::recorded_as(&caller, &b.created_by),
        created_at: now,
        source: "api".into(),
    };
    let entry = st
        .audit(&caller, "silence.create", format!("silence:{}", row.id))
        .change(None, snapshot(&silence_json(&row, now)));
    st.store.upsert_silence(&row, Some(&entry)).await?;
    tracing::info!(silence = %row.id, created_by = %row.created_by, "silence created");
    Ok((StatusCode::CREATED, Json(silence_json(&row, now))))
}

async fn expire_silence(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let now = st.now();
    let before = st
        .store
        .silences()
        .await?
        .into_iter()
        .find(|s| s.id == id && site_matcher_visible(&caller, &s.matchers))
        .ok_or_else(|| ApiError::not_found(format!("no silence with id `{id}`")))?;
    let entry = st
        .audit(&caller, "silence.expire", format!("silence:{id}"))
        .change(snapshot(&silence_json(&before, now)), None);
    if !st.store.expire_silence(&id, now, Some(&entry)).await? {
        return Err(ApiError::not_found(format!("no silence with id `{id}`")));
    }
    let s = st
        .store
        .silences()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no silence with id `{id}`")))?;
    Ok(Json(silence_json(&s, now)))
}

#[derive(Deserialize)]
struct LimitQuery {
    #[serde(default)]
    limit: Option<i64>,
}

async fn list_deliveries(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<impl IntoResponse> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "`limit` must be from 1 to 1000"));
    }
    let rows = st.store.deliveries(limit).await?;
    Ok(Json(
        rows.into_iter()
            .map(|d| {
                json!({"outbox_id": d.outbox_id, "channel": d.channel, "attempt": d.attempt, "at": ms(d.at),
                "status_code": d.status_code, "error": d.error, "duration_ms": d.duration_ms, "outcome": d.outcome})
            })
            .collect::<Vec<_>>(),
    ))
}

//! Baselines, rule configuration, ingest tokens, sites and the setup status.

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use llmscope_live::rebaseline::{self, Outcome, Request, Selector};
use llmscope_live::settings::SettingsDoc;
use llmscope_model::SeriesId;
use llmscope_store::tokens::Role;

use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, ms, parse_body, time_json};
use crate::access::snapshot;

#[derive(Deserialize)]
struct BaselineQuery {
    key: Option<String>,
    history: Option<bool>,
}

async fn baselines(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<BaselineQuery>,
) -> ApiResult<impl IntoResponse> {
    let key = match q.key.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => Some(super::read::parse_key(k)?),
        None => None,
    };
    // another site's series is answered as if it did not exist
    if let Some(k) = &key
        && !caller.may_see(&k.site)
    {
        return Err(ApiError::not_found(format!("no series `{k}`")));
    }
    let rows = st.store.list_baselines(!q.history.unwrap_or(false)).await?;
    // a series' own baselines (the pooled ones judging it have keys of their own)
    let out: Vec<llmscope_model::BaselineRecord> = rows
        .into_iter()
        .filter(|b| key.as_ref().is_none_or(|k: &SeriesId| b.key == *k))
        // a site-limited caller sees its sites' baselines (not the fleet-wide ones)
        .filter(|b| caller.site_limit().is_none() || caller.may_see(&b.key.site))
        .collect();
    Ok(Json(out))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RebaselineBody {
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    source: Option<String>,
    from: Value,
    to: Value,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    by: String,
}

/// Who a change is recorded as: the signed-in user; for a token without a user, the token
/// and the name it gives (`by`).
pub fn recorded_as(caller: &Caller, by: &str) -> String {
    let by = by.trim();
    if caller.user_id().is_some() || by.is_empty() || by == caller.actor {
        caller.actor.clone()
    } else {
        format!("{} ({by})", caller.actor)
    }
}

async fn rebaseline(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: RebaselineBody = parse_body(&body)?;
    let from = time_json("from", &b.from)?;
    let to = time_json("to", &b.to)?;
    if from >= to {
        return Err(ApiError::bad("from", "`from` must be before `to`"));
    }
    let metric = match b.metric.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(m) => Some(super::read::parse_metric("metric", m)?),
    };
    let source = match b.source.as_deref().filter(|m| !m.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<llmscope_model::Source>()
                .map_err(|e| ApiError::bad("source", e.to_string()))?,
        ),
    };
    let o = |s: Option<String>| s.filter(|s| !s.is_empty());
    // a site-limited editor re-baselines its sites only
    if let Some(limit) = caller.site_limit() {
        match o(b.site.clone()) {
            Some(s) if caller.may_see(&s) => {}
            Some(_) => return Err(super::hidden("such site")),
            None if limit.len() == 1 => {}
            None => {
                return Err(ApiError::bad(
                    "site",
                    "name the `site` to re-baseline (you may change only some sites)",
                ));
            }
        }
    }
    let site = o(b.site).or_else(|| {
        caller
            .site_limit()
            .and_then(|l| (l.len() == 1).then(|| l[0].clone()))
    });
    let sel = Selector {
        site,
        host: o(b.host),
        provider: o(b.provider),
        model: o(b.model),
        metric,
        source,
    };
    let by = recorded_as(&caller, &b.by);
    let entry = st.audit(&caller, "baseline.set", "");
    let out = rebaseline::rebaseline(
        &st.store,
        &Request {
            selector: &sel,
            from_us: from,
            to_us: to,
            method: st.spc.sigma_method,
            transform: st.spc.transform,
            reason: &b.reason,
            by: &by,
            now_us: st.now(),
            audit: Some(&entry),
        },
    )
    .await?;
    let created = out.iter().filter(|o| matches!(o, Outcome::Set(_))).count();
    let skipped: Vec<Value> = out
        .iter()
        .filter_map(|o| match o {
            Outcome::Set(_) => None,
            Outcome::Skipped { series, reason } => {
                Some(json!({"series": series, "reason": reason}))
            }
        })
        .collect();
    Ok(Json(json!({"created": created, "skipped": skipped})))
}

fn settings_json(s: &str) -> Value {
    let doc: SettingsDoc = serde_json::from_str(s).unwrap_or(SettingsDoc {
        params: Default::default(),
        scope: None,
        resolve_after: None,
    });
    let rules: Vec<u8> = (1..=8u8)
        .filter(|r| doc.params.get(&format!("{r}.enabled")).map(String::as_str) != Some("false"))
        .collect();
    let params: serde_json::Map<String, Value> = doc
        .params
        .iter()
        .filter(|(k, _)| !k.ends_with(".enabled"))
        .map(|(k, v)| {
            let val = v
                .parse::<f64>()
                .ok()
                .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
                .unwrap_or_else(|| json!(v));
            (k.clone(), val)
        })
        .collect();
    json!({"rules": rules, "params": params, "resolve_after": doc.resolve_after, "scope": doc.scope})
}

/// Rule configuration: the defaults and every stored configuration, each with the points
/// per false chart marker on a healthy series (`marker_arl0`: Nelson episodes as configured,
/// by simulation with a Phase I of `spc.baseline_points`), from which the dashboard shows the
/// expected markers per day at a series' own probe rate (`/api/v1/detection`).
async fn rules(State(st): State<ApiState>) -> ApiResult<impl IntoResponse> {
    let rows = st.store.rule_configs().await?;
    let default_rules = llmscope_spc::NelsonConfig::default();
    let rate = super::detection::marker_rate(&st, &default_rules, st.spc.resolve_after).await;
    let arl = |r: f64| if r > 0.0 { json!(1.0 / r) } else { Value::Null };
    let defaults = json!({"rules": [1, 2, 3, 4, 5, 6, 7, 8], "params": {}, "resolve_after": st.spc.resolve_after,
        "nelson": default_rules, "marker_arl0": arl(rate)});
    let mut configs: Vec<Value> = Vec::with_capacity(rows.len());
    for (kind, value, settings) in &rows {
        // the configuration on its own over the defaults (what a series of that scope gets
        // when nothing more specific applies)
        let one = llmscope_live::settings::Settings::from_rows(
            &[(kind.clone(), value.clone(), settings.clone())],
            st.spc.resolve_after,
        );
        let (site, model) = match kind.as_str() {
            "site" => (value.as_str(), ""),
            "model" => ("", value.as_str()),
            _ => ("", ""),
        };
        let eff = one.resolve(site, model);
        let r = super::detection::marker_rate(&st, &eff.rules, eff.resolve_after).await;
        configs.push(json!({"scope_kind": kind, "scope_value": value,
            "settings": settings_json(settings), "marker_arl0": arl(r)}));
    }
    Ok(Json(json!({"defaults": defaults, "configs": configs})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    #[serde(default)]
    rules: Option<Vec<u8>>,
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    #[serde(default)]
    resolve_after: Option<u32>,
}

async fn put_rules(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((kind, value)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    if caller.site_limit().is_some() && !(kind == "site" && caller.may_see(&value)) {
        return Err(ApiError::new(
            crate::error::ErrorCode::PermissionDenied,
            "you may change the rules of your own sites only (`site` scope)",
        ));
    }
    if !matches!(kind.as_str(), "global" | "site" | "model") {
        return Err(ApiError::bad(
            "scope_kind",
            "the scope must be global, site or model",
        ));
    }
    let b: RulesBody = parse_body(&body)?;
    let mut params = std::collections::BTreeMap::new();
    for (k, v) in &b.params {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(x) => x.to_string(),
            _ => {
                return Err(ApiError::bad(
                    &format!("params.{k}"),
                    "must be a string, number or boolean",
                ));
            }
        };
        params.insert(k.clone(), text);
    }
    if let Some(rules) = &b.rules {
        if let Some(bad) = rules.iter().find(|r| !(1..=8).contains(*r)) {
            return Err(ApiError::bad(
                "rules",
                format!("rule numbers are 1..8, got {bad}"),
            ));
        }
        for r in 1..=8u8 {
            params.insert(format!("{r}.enabled"), rules.contains(&r).to_string());
        }
    }
    let doc = SettingsDoc {
        params,
        scope: None,
        resolve_after: b.resolve_after,
    };
    let text = serde_json::to_string(&doc).unwrap_or_default();
    SettingsDoc::parse(&text).map_err(|e| ApiError::bad("params", e))?;
    let scope_value = if kind == "global" {
        String::new()
    } else {
        value
    };
    let before = st
        .store
        .rule_configs()
        .await?
        .into_iter()
        .find(|(k, v, _)| *k == kind && *v == scope_value)
        .map(|(_, _, s)| settings_json(&s));
    let entry = st
        .audit(&caller, "rules.set", format!("rules:{kind}:{scope_value}"))
        .change(
            before.as_ref().and_then(snapshot),
            snapshot(&settings_json(&text)),
        );
    st.store
        .set_rule_config(
            &kind,
            &scope_value,
            &text,
            &caller.actor,
            st.now(),
            Some(&entry),
        )
        .await?;
    Ok(Json(
        json!({"scope_kind": kind, "scope_value": scope_value, "settings": settings_json(&text)}),
    ))
}

async fn tokens(State(st): State<ApiState>) -> ApiResult<impl IntoResponse> {
    // ingest and admin tokens (personal tokens are listed with their users)
    let rows: Vec<_> = st
        .store
        .list_tokens()
        .await?
        .into_iter()
        .filter(|t| t.role != Role::Personal)
        .collect();
    Ok(Json(
        rows.iter()
            .map(|t| {
                json!({"id": t.id, "site": t.site, "role": t.role.as_str(), "name": t.name,
                "created_at": ms(t.created_at_us), "revoked_at": t.revoked_at_us.map(ms)})
            })
            .collect::<Vec<_>>(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    admin: bool,
    #[serde(default)]
    name: String,
}

/// Site names: letters, digits, `.`, `_`, `-`; 1..64 characters, starting alphanumeric.
pub fn valid_site(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

async fn create_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: TokenBody = parse_body(&body)?;
    let (role, site) = match (b.admin, b.site.filter(|s| !s.is_empty())) {
        (true, None) => (Role::Admin, None),
        (true, Some(_)) => {
            return Err(ApiError::bad(
                "site",
                "an admin token is not tied to a site; leave `site` out",
            ));
        }
        (false, Some(s)) if valid_site(&s) => (Role::Ingest, Some(s)),
        (false, Some(s)) => {
            return Err(ApiError::bad(
                "site",
                format!("`{s}` is not a valid site name (letters, digits, . _ -, up to 64)"),
            ));
        }
        (false, None) => {
            return Err(ApiError::bad(
                "site",
                "an ingest token needs the `site` it may write",
            ));
        }
    };
    let (token, record) = crate::auth::generate_token(role, site.clone(), &b.name);
    let entry = st
        .audit(&caller, "token.create", format!("token:{}", record.id))
        .change(
            None,
            snapshot(&json!({"role": role.as_str(), "site": site, "name": record.name})),
        );
    st.store.insert_token(&record, Some(&entry)).await?;
    tracing::info!(token = %record.id, role = role.as_str(), "token created through the api");
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": record.id, "token": token, "site": site, "role": role.as_str(),
            "name": record.name, "created_at": ms(record.created_at_us)}),
        ),
    ))
}

async fn revoke_token(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let entry = st.audit(&caller, "token.revoke", format!("token:{id}"));
    if !st.store.revoke_token(&id, st.now(), Some(&entry)).await? {
        return Err(ApiError::not_found(format!("no active token `{id}`")));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteBody {
    name: String,
}

async fn create_site(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let b: SiteBody = parse_body(&body)?;
    if !valid_site(&b.name) {
        return Err(ApiError::bad(
            "name",
            format!(
                "`{}` is not a valid site name: use letters, digits, `.`, `_` or `-` (up to 64, starting with a letter or digit)",
                b.name
            ),
        ));
    }
    let entry = st.audit(&caller, "site.create", format!("site:{}", b.name));
    if !st
        .store
        .insert_site(&b.name, st.now(), Some(&entry))
        .await?
    {
        return Err(ApiError::conflict(format!(
            "site `{}` exists already",
            b.name
        )));
    }
    Ok((StatusCode::CREATED, Json(json!({"name": b.name}))))
}

async fn setup(State(st): State<ApiState>) -> ApiResult<impl IntoResponse> {
    // (viewers see whether the installation has data; nothing of another site)
    let has_data = !st.store.catalog(None, None, None, None).await?.is_empty();
    let first_run = !has_data && !st.store.has_ingest_tokens().await?;
    Ok(Json(json!({"first_run": first_run, "has_data": has_data,
        "grpc_addr": st.grpc_addr, "otlp_grpc_addr": st.otlp_addrs.0, "otlp_http_addr": st.otlp_addrs.1,
        "version": env!("CARGO_PKG_VERSION"), "backend": st.store.backend(),
        "baseline_points": st.spc.baseline_points})))
}

/// The admin routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{delete, get, post, put};
    axum::Router::new()
        .route("/api/v1/baselines", get(baselines))
        .route("/api/v1/baselines/rebaseline", post(rebaseline))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/rules/{scope_kind}/{scope_value}", put(put_rules))
        .route("/api/v1/tokens", get(tokens).post(create_token))
        .route("/api/v1/tokens/{id}", delete(revoke_token))
        .route("/api/v1/sites", post(create_site))
        .route("/api/v1/setup", get(setup))
}

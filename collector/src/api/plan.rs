//! Answers for budget owners and capacity planners (issue 18, second part): SLOs with their
//! attainment, error budget and burn rates (`/api/v1/slos`), prices (`/api/v1/prices`), cost
//! per call, per 1 000 tokens and per day with the month's forecast (`/api/v1/cost`), monthly
//! budgets (`/api/v1/budgets`) and capacity headroom (`/api/v1/capacity`). Every list answers
//! CSV with `format=csv`. A site-limited caller sees only its sites' rows (SLOs and budgets
//! over every site are hidden from it).

use std::collections::BTreeMap;

use axum::Extension;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use llmscope_live::plans::{BURN_WINDOWS, budget_key, burn_rate, month_bounds, slo_key};
use llmscope_model::Detector;
use llmscope_model::plan::{Budget, CostLine, ORIGIN_API, ORIGIN_CONFIG, Price, Slo, cost_lines};
use serde::Deserialize;
use serde_json::{Value, json};

use super::violations::{csv, csv_response};
use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller, parse_body};

const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatQuery {
    format: Option<String>,
}

fn want_csv(format: Option<&str>) -> ApiResult<bool> {
    match format {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(f) => Err(ApiError::bad("format", format!("`{f}` is not json or csv"))),
    }
}

fn visible(caller: &Caller, site: &str) -> bool {
    match caller.site_limit() {
        None => true,
        Some(_) => !site.is_empty() && caller.may_see(site),
    }
}

fn num(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

/// A JSON field of a response row as a CSV cell: text as is, null empty, anything else in its
/// JSON form.
pub(super) fn cell(v: &Value, k: &str) -> String {
    match &v[k] {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        x => x.to_string(),
    }
}

fn field_err((f, m): (&str, String)) -> ApiError {
    ApiError::bad(f, m)
}

// ---- SLOs ----

async fn slo_status(
    st: &ApiState,
    s: &Slo,
    now: i64,
    open: &[llmscope_model::Violation],
) -> ApiResult<Value> {
    let window = s.window_days * DAY;
    let c = st
        .store
        .slo_count(&s.id, now - window, now + MINUTE)
        .await?;
    let minutes = st
        .store
        .slo_minutes(&s.id, now - 6 * HOUR - MINUTE, now + MINUTE)
        .await?;
    let budget = 1.0 - s.objective;
    let bad_frac = (c.total > 0).then(|| c.bad as f64 / c.total as f64);
    let key = slo_key(s);
    let alert = open.iter().find(|v| v.series == key).map(|v| {
        json!({"id": v.id, "rule": if v.rule == 1 { "fast" } else { "slow" }, "opened_at": super::ms(v.opened_at)})
    });
    let burn: serde_json::Map<String, Value> = [
        ("5m", 5 * MINUTE),
        ("30m", 30 * MINUTE),
        ("1h", HOUR),
        ("6h", 6 * HOUR),
    ]
    .into_iter()
    .map(|(n, w)| {
        (
            n.to_owned(),
            json!(burn_rate(&minutes, now, w, s.objective)),
        )
    })
    .collect();
    Ok(json!({
        "id": s.id, "name": s.name, "site": s.site, "model": s.model, "source": s.source, "metric": s.metric,
        "threshold": s.threshold, "objective": s.objective, "window_days": s.window_days, "origin": s.origin,
        "describe": s.describe(),
        "total": c.total, "bad": c.bad,
        "attainment": bad_frac.map(|b| 1.0 - b),
        "error_budget_remaining": bad_frac.map(|b| 1.0 - b / budget),
        "burn_rate": burn,
        "burn_rate_window": bad_frac.map(|b| b / budget),
        "alerts": BURN_WINDOWS.iter().map(|(l, s, t, r)| json!({"rule": if *r == 1 { "fast" } else { "slow" },
            "long": l / MINUTE, "short": s / MINUTE, "burn_rate": t})).collect::<Vec<_>>(),
        "alert": alert,
        "key": key.to_string(),
    }))
}

/// `GET /api/v1/slos[?format=csv]`
async fn list_slos(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let csv_out = want_csv(q.format.as_deref())?;
    let now = st.now();
    let open = st.store.open_of_detector(Detector::SloBurn).await?;
    let mut out = Vec::new();
    for s in st
        .store
        .slos()
        .await?
        .iter()
        .filter(|s| visible(&caller, &s.site))
    {
        out.push(slo_status(&st, s, now, &open).await?);
    }
    if csv_out {
        let f = cell;
        let rows = out.iter().map(|v| {
            vec![
                f(v, "name"),
                f(v, "site"),
                f(v, "model"),
                f(v, "source"),
                f(v, "metric"),
                f(v, "threshold"),
                f(v, "objective"),
                f(v, "window_days"),
                f(v, "total"),
                f(v, "bad"),
                f(v, "attainment"),
                f(v, "error_budget_remaining"),
                num(v["burn_rate"]["1h"].as_f64()),
                num(v["burn_rate"]["6h"].as_f64()),
                if v["alert"].is_null() {
                    String::new()
                } else {
                    f(&v["alert"], "rule")
                },
            ]
        });
        let body = csv(
            &[
                "name",
                "site",
                "model",
                "source",
                "metric",
                "threshold_ms",
                "objective",
                "window_days",
                "total",
                "bad",
                "attainment",
                "error_budget_remaining",
                "burn_rate_1h",
                "burn_rate_6h",
                "alert",
            ],
            rows,
        );
        return Ok(csv_response("slos.csv", body).into_response());
    }
    Ok(Json(json!({"slos": out})).into_response())
}

async fn write_slo(
    st: &ApiState,
    caller: &Caller,
    id: Option<&str>,
    body: &[u8],
) -> ApiResult<Value> {
    let mut s: Slo = parse_body(body)?;
    s.validate().map_err(field_err)?;
    if !visible(caller, &s.site) {
        return Err(ApiError::bad("site", "name one of your sites in `site`"));
    }
    let all = st.store.slos().await?;
    let before = match id {
        Some(id) => {
            let b = all
                .iter()
                .find(|x| x.id == id && visible(caller, &x.site))
                .ok_or_else(|| ApiError::not_found(format!("no slo with id `{id}`")))?;
            if b.origin == ORIGIN_CONFIG {
                return Err(ApiError::conflict(format!(
                    "slo `{}` is defined in the configuration file; change it there",
                    b.name
                )));
            }
            Some(b.clone())
        }
        None => None,
    };
    if all
        .iter()
        .any(|x| x.name == s.name && Some(x.id.as_str()) != id)
    {
        return Err(ApiError::conflict(format!("an slo named `{}` exists", s.name)).at("name"));
    }
    s.id = id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("slo-{}", uuid::Uuid::new_v4()));
    s.origin = ORIGIN_API.into();
    let now = st.now();
    let reach = now - s.window_days * DAY;
    let entry = st
        .audit(
            caller,
            if before.is_some() {
                "slo.update"
            } else {
                "slo.create"
            },
            format!("slo:{}", s.id),
        )
        .change(
            before.as_ref().and_then(|b| serde_json::to_string(b).ok()),
            serde_json::to_string(&s).ok(),
        );
    st.store.put_slo(&s, now, reach).await?;
    st.store.audit(&entry).await?;
    let open = st.store.open_of_detector(Detector::SloBurn).await?;
    slo_status(st, &s, now, &open).await
}

/// `POST /api/v1/slos`
async fn create_slo(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let v = write_slo(&st, &caller, None, &body).await?;
    Ok((axum::http::StatusCode::CREATED, Json(v)))
}

/// `PUT /api/v1/slos/{id}`
async fn update_slo(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(write_slo(&st, &caller, Some(&id), &body).await?))
}

/// `DELETE /api/v1/slos/{id}`
async fn delete_slo(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let s = st
        .store
        .slos()
        .await?
        .into_iter()
        .find(|x| x.id == id && visible(&caller, &x.site))
        .ok_or_else(|| ApiError::not_found(format!("no slo with id `{id}`")))?;
    if s.origin == ORIGIN_CONFIG {
        return Err(ApiError::conflict(format!(
            "slo `{}` is defined in the configuration file; remove it there",
            s.name
        )));
    }
    let entry = st
        .audit(&caller, "slo.delete", format!("slo:{id}"))
        .change(serde_json::to_string(&s).ok(), None);
    st.store.delete_slo(&id).await?;
    st.store.audit(&entry).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

// ---- prices ----

/// `GET /api/v1/prices[?format=csv]`
async fn list_prices(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let csv_out = want_csv(q.format.as_deref())?;
    let prices = st.store.prices().await?;
    if csv_out {
        let rows = prices.iter().map(|p| {
            vec![
                p.provider.clone(),
                p.model.clone(),
                p.input_per_m.to_string(),
                p.output_per_m.to_string(),
                p.gpu_hour.to_string(),
                p.gpus.to_string(),
                p.origin.clone(),
            ]
        });
        let body = csv(
            &[
                "provider",
                "model",
                "input_per_m",
                "output_per_m",
                "gpu_hour",
                "gpus",
                "origin",
            ],
            rows,
        );
        return Ok(csv_response("prices.csv", body).into_response());
    }
    Ok(Json(json!({"prices": prices})).into_response())
}

/// `PUT /api/v1/prices`: sets the price of one provider's model.
async fn put_price(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let mut p: Price = parse_body(&body)?;
    p.validate().map_err(field_err)?;
    let before = st
        .store
        .prices()
        .await?
        .into_iter()
        .find(|x| x.provider == p.provider && x.model == p.model);
    if before.as_ref().is_some_and(|b| b.origin == ORIGIN_CONFIG) {
        return Err(ApiError::conflict(format!(
            "the price of `{}` / `{}` is defined in the configuration file; change it there",
            p.provider, p.model
        )));
    }
    p.origin = ORIGIN_API.into();
    let entry = st
        .audit(
            &caller,
            "price.set",
            format!("price:{}/{}", p.provider, p.model),
        )
        .change(
            before.as_ref().and_then(|b| serde_json::to_string(b).ok()),
            serde_json::to_string(&p).ok(),
        );
    st.store.put_price(&p).await?;
    st.store.audit(&entry).await?;
    Ok(Json(json!(p)))
}

/// `DELETE /api/v1/prices/{provider}/{model}`
async fn delete_price(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((provider, model)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let p = st
        .store
        .prices()
        .await?
        .into_iter()
        .find(|x| x.provider == provider && x.model == model)
        .ok_or_else(|| ApiError::not_found(format!("no price for `{provider}` / `{model}`")))?;
    if p.origin == ORIGIN_CONFIG {
        return Err(ApiError::conflict(
            "this price is defined in the configuration file; remove it there",
        ));
    }
    let entry = st
        .audit(&caller, "price.delete", format!("price:{provider}/{model}"))
        .change(serde_json::to_string(&p).ok(), None);
    st.store.delete_price(&provider, &model).await?;
    st.store.audit(&entry).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

// ---- cost ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CostQuery {
    from: Option<String>,
    to: Option<String>,
    /// `day` (default) or `hour`.
    period: Option<String>,
    site: Option<String>,
    model: Option<String>,
    format: Option<String>,
}

/// Spend of the month so far and the forecast for the whole month, from hourly cost lines.
fn forecast(lines: &[&CostLine], now: i64) -> Value {
    let (start, end) = month_bounds(now);
    let sum = |lo: i64| {
        lines
            .iter()
            .filter(|l| l.period >= lo && l.period <= now)
            .filter_map(|l| l.cost)
            .sum::<f64>()
    };
    let spent = sum(start);
    let rate = sum(now - 7 * DAY) / 7.0;
    let days_left = (end - now).max(0) as f64 / DAY as f64;
    json!({"month": super::ms(start), "spent": spent, "daily_rate_7d": rate, "days_left": days_left,
           "forecast": spent + rate * days_left})
}

/// `GET /api/v1/cost?from=&to=&period=day|hour[&site=][&model=][&format=csv]`
async fn cost(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<CostQuery>,
) -> ApiResult<Response> {
    let csv_out = want_csv(q.format.as_deref())?;
    let now = st.now();
    let default_from = (now - 30 * DAY).div_euclid(DAY) * DAY;
    let default_from = super::ms(default_from).to_string();
    let (from, to) = super::read::range(
        Some(q.from.as_deref().unwrap_or(&default_from)),
        q.to.as_deref(),
        now,
    )?;
    let period = match q.period.as_deref() {
        None | Some("day") => DAY,
        Some("hour") => HOUR,
        Some(p) => return Err(ApiError::bad("period", format!("`{p}` is not day or hour"))),
    };
    if let Some(s) = &q.site
        && !caller.may_see(s)
    {
        return Err(super::hidden(&format!("site `{s}`")));
    }
    let lo = from.min(month_bounds(now).0).min(now - 7 * DAY);
    let usage: Vec<_> = st
        .store
        .usage(lo.div_euclid(HOUR) * HOUR, to.max(now), q.site.as_deref())
        .await?
        .into_iter()
        .filter(|u| caller.may_see(&u.site) && q.model.as_deref().is_none_or(|m| u.model == m))
        .collect();
    let prices = st.store.prices().await?;
    let in_range: Vec<_> = usage
        .iter()
        .filter(|u| u.hour >= from.div_euclid(HOUR) * HOUR && u.hour <= to)
        .cloned()
        .collect();
    let lines = cost_lines(&in_range, &prices, period);
    let hourly = cost_lines(&usage, &prices, HOUR);
    let mut by_pair: BTreeMap<(String, String, String), Vec<&CostLine>> = BTreeMap::new();
    for l in &hourly {
        by_pair
            .entry((l.site.clone(), l.provider.clone(), l.model.clone()))
            .or_default()
            .push(l);
    }
    let mut missing: Vec<String> = lines
        .iter()
        .filter(|l| l.cost.is_none())
        .map(|l| format!("{}/{}", l.provider, l.model))
        .collect();
    missing.sort();
    missing.dedup();
    if csv_out {
        let rows = lines.iter().map(|l| {
            vec![
                super::ms(l.period).to_string(),
                l.site.clone(),
                l.provider.clone(),
                l.model.clone(),
                l.calls.to_string(),
                l.tokens_in.to_string(),
                l.tokens_out.to_string(),
                l.host_hours.to_string(),
                num(l.cost),
                num(l.per_call()),
                num(l.per_1k_tokens()),
            ]
        });
        let body = csv(
            &[
                "period_ms",
                "site",
                "provider",
                "model",
                "calls",
                "tokens_in",
                "tokens_out",
                "host_hours",
                "cost",
                "cost_per_call",
                "cost_per_1k_tokens",
            ],
            rows,
        );
        return Ok(csv_response("cost.csv", body).into_response());
    }
    let total: f64 = lines.iter().filter_map(|l| l.cost).sum();
    let forecasts: Vec<Value> = by_pair
        .iter()
        .map(|((site, provider, model), ls)| {
            let mut f = forecast(ls, now);
            f["site"] = json!(site);
            f["provider"] = json!(provider);
            f["model"] = json!(model);
            f
        })
        .collect();
    let all: Vec<&CostLine> = hourly.iter().collect();
    Ok(Json(json!({
        "from": super::ms(from), "to": super::ms(to), "period": if period == DAY { "day" } else { "hour" },
        "lines": lines.iter().map(|l| json!({
            "period": super::ms(l.period), "site": l.site, "provider": l.provider, "model": l.model, "calls": l.calls,
            "tokens_in": l.tokens_in, "tokens_out": l.tokens_out, "host_hours": l.host_hours, "cost": l.cost,
            "cost_per_call": l.per_call(), "cost_per_1k_tokens": l.per_1k_tokens(),
        })).collect::<Vec<_>>(),
        "total": total,
        "forecast": forecast(&all, now),
        "forecasts": forecasts,
        "missing_prices": missing,
        "note": "cost = input tokens × input_per_m / 1e6 + output tokens × output_per_m / 1e6 + host-hours with calls × gpu_hour × gpus; the forecast is the month's spend so far plus the last 7 days' daily rate for the days left",
    })).into_response())
}

// ---- budgets ----

async fn budget_status(
    st: &ApiState,
    b: &Budget,
    now: i64,
    open: &[llmscope_model::Violation],
) -> ApiResult<Value> {
    let f = llmscope_live::plans::month_forecast(&st.store, &b.site, &b.model, now).await?;
    let key = budget_key(b);
    Ok(json!({
        "id": b.id, "name": b.name, "site": b.site, "model": b.model, "monthly": b.monthly, "origin": b.origin,
        "spent": f.spent, "daily_rate_7d": f.daily_rate, "forecast": f.forecast, "days_left": f.days_left,
        "over": f.forecast > b.monthly,
        "alert": open.iter().find(|v| v.series == key).map(|v| json!({"id": v.id, "opened_at": super::ms(v.opened_at)})),
    }))
}

/// `GET /api/v1/budgets[?format=csv]`
async fn list_budgets(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<FormatQuery>,
) -> ApiResult<Response> {
    let csv_out = want_csv(q.format.as_deref())?;
    let now = st.now();
    let open = st.store.open_of_detector(Detector::Budget).await?;
    let mut out = Vec::new();
    for b in st
        .store
        .budgets()
        .await?
        .iter()
        .filter(|b| visible(&caller, &b.site))
    {
        out.push(budget_status(&st, b, now, &open).await?);
    }
    if csv_out {
        let f = cell;
        let rows = out.iter().map(|v| {
            vec![
                f(v, "name"),
                f(v, "site"),
                f(v, "model"),
                f(v, "monthly"),
                f(v, "spent"),
                f(v, "daily_rate_7d"),
                f(v, "forecast"),
                f(v, "over"),
            ]
        });
        let body = csv(
            &[
                "name",
                "site",
                "model",
                "monthly",
                "spent",
                "daily_rate_7d",
                "forecast",
                "over",
            ],
            rows,
        );
        return Ok(csv_response("budgets.csv", body).into_response());
    }
    Ok(Json(json!({"budgets": out})).into_response())
}

async fn write_budget(
    st: &ApiState,
    caller: &Caller,
    id: Option<&str>,
    body: &[u8],
) -> ApiResult<Value> {
    let mut b: Budget = parse_body(body)?;
    b.validate().map_err(field_err)?;
    if !visible(caller, &b.site) {
        return Err(ApiError::bad("site", "name one of your sites in `site`"));
    }
    let all = st.store.budgets().await?;
    let before = match id {
        Some(id) => {
            let x = all
                .iter()
                .find(|x| x.id == id && visible(caller, &x.site))
                .ok_or_else(|| ApiError::not_found(format!("no budget with id `{id}`")))?;
            if x.origin == ORIGIN_CONFIG {
                return Err(ApiError::conflict(format!(
                    "budget `{}` is defined in the configuration file; change it there",
                    x.name
                )));
            }
            Some(x.clone())
        }
        None => None,
    };
    if all
        .iter()
        .any(|x| x.name == b.name && Some(x.id.as_str()) != id)
    {
        return Err(ApiError::conflict(format!("a budget named `{}` exists", b.name)).at("name"));
    }
    b.id = id
        .map(str::to_owned)
        .unwrap_or_else(|| format!("budget-{}", uuid::Uuid::new_v4()));
    b.origin = ORIGIN_API.into();
    let now = st.now();
    let entry = st
        .audit(
            caller,
            if before.is_some() {
                "budget.update"
            } else {
                "budget.create"
            },
            format!("budget:{}", b.id),
        )
        .change(
            before.as_ref().and_then(|x| serde_json::to_string(x).ok()),
            serde_json::to_string(&b).ok(),
        );
    st.store.put_budget(&b, now).await?;
    st.store.audit(&entry).await?;
    let open = st.store.open_of_detector(Detector::Budget).await?;
    budget_status(st, &b, now, &open).await
}

/// `POST /api/v1/budgets`
async fn create_budget(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    let v = write_budget(&st, &caller, None, &body).await?;
    Ok((axum::http::StatusCode::CREATED, Json(v)))
}

/// `PUT /api/v1/budgets/{id}`
async fn update_budget(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<impl IntoResponse> {
    Ok(Json(write_budget(&st, &caller, Some(&id), &body).await?))
}

/// `DELETE /api/v1/budgets/{id}`
async fn delete_budget(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let b = st
        .store
        .budgets()
        .await?
        .into_iter()
        .find(|x| x.id == id && visible(&caller, &x.site))
        .ok_or_else(|| ApiError::not_found(format!("no budget with id `{id}`")))?;
    if b.origin == ORIGIN_CONFIG {
        return Err(ApiError::conflict(format!(
            "budget `{}` is defined in the configuration file; remove it there",
            b.name
        )));
    }
    let entry = st
        .audit(&caller, "budget.delete", format!("budget:{id}"))
        .change(serde_json::to_string(&b).ok(), None);
    st.store.delete_budget(&id).await?;
    st.store.audit(&entry).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// The plan routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::{delete, get, put};
    axum::Router::new()
        .route("/api/v1/slos", get(list_slos).post(create_slo))
        .route("/api/v1/slos/{id}", put(update_slo).delete(delete_slo))
        .route("/api/v1/prices", get(list_prices).put(put_price))
        .route("/api/v1/prices/{provider}/{model}", delete(delete_price))
        .route("/api/v1/cost", get(cost))
        .route("/api/v1/budgets", get(list_budgets).post(create_budget))
        .route(
            "/api/v1/budgets/{id}",
            put(update_budget).delete(delete_budget),
        )
        .route("/api/v1/capacity", get(super::capacity::capacity))
}

//! `/api/v1/audit` (admin): the audit log with filters, keyset paging and CSV.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use llmscope_store::audit::{AuditFilter, AuditRow};

use super::violations::{csv, csv_response, rfc3339};
use super::{ApiError, ApiQuery, ApiResult, ApiState, ms};

/// Query of the audit list and CSV.
#[derive(Deserialize, Default)]
pub struct AuditQuery {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

fn filter(q: &AuditQuery) -> ApiResult<AuditFilter> {
    let o = |s: &Option<String>| s.clone().filter(|s| !s.trim().is_empty());
    let t = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        o(v).map(|s| super::read::time_param(field, Some(&s), 0))
            .transpose()
    };
    let before_id = match o(&q.cursor) {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| ApiError::bad("cursor", "`cursor` is not one this API returned"))?,
        ),
    };
    Ok(AuditFilter {
        actor: o(&q.actor),
        action: o(&q.action),
        target: o(&q.target),
        from: t("from", &q.from)?,
        to: t("to", &q.to)?,
        before_id,
    })
}

/// An entry as the API shows it (before and after as JSON when they parse).
pub fn entry_json(r: &AuditRow) -> Value {
    let parse = |s: &Option<String>| {
        s.as_deref()
            .map(|t| serde_json::from_str::<Value>(t).unwrap_or_else(|_| json!(t)))
    };
    let e = &r.entry;
    json!({"id": r.id, "at": ms(e.at), "actor": e.actor, "role": e.role, "client": e.client,
        "action": e.action, "target": e.target, "before": parse(&e.before), "after": parse(&e.after)})
}

async fn list(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad("limit", "`limit` must be from 1 to 1000"));
    }
    let f = filter(&q)?;
    let mut rows = st.store.list_audit(&f, limit + 1).await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|r| r.id.to_string())
    } else {
        None
    };
    Ok(Json(json!({
        "items": rows.iter().map(entry_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

async fn export(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<impl IntoResponse> {
    let f = filter(&q)?;
    let rows = st.store.list_audit(&f, 10_000).await?;
    let body = csv(
        &[
            "id", "at", "actor", "role", "client", "action", "target", "before", "after",
        ],
        rows.iter().map(|r| {
            let e = &r.entry;
            vec![
                r.id.to_string(),
                rfc3339(e.at),
                e.actor.clone(),
                e.role.clone(),
                e.client.clone(),
                e.action.clone(),
                e.target.clone(),
                e.before.clone().unwrap_or_default(),
                e.after.clone().unwrap_or_default(),
            ]
        }),
    );
    Ok(csv_response("audit.csv", body))
}

/// The audit routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/audit", get(list))
        .route("/api/v1/audit.csv", get(export))
}

//! Incidents: one per change of a model on a host, led by the page that opened it (see
//! `llmscope-live`'s incidents). `GET /api/v1/incidents` lists them newest first with the
//! violation filters (site, host, model, status, time, …) and keyset pagination; `GET
//! /api/v1/incidents/{id}` is one with all its members. An incident's id is its lead
//! violation's; acknowledging or resolving it is done on the lead
//! (`/api/v1/violations/{id}/…`; resolving the lead resolves the whole incident).

use std::collections::BTreeSet;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use llmscope_model::{Severity, Violation};
use serde_json::{Value, json};

use super::violations::{ListQuery, filter, page};
use super::{ApiError, ApiQuery, ApiResult, ApiState, Caller};

/// The wire shape of an incident: what it is about, its status and severity (the loudest
/// page), its detectors and metrics, the lead and the other members (summaries).
pub fn incident_json(lead: &Violation, members: &[Violation]) -> Value {
    let all = || std::iter::once(lead).chain(members.iter().filter(|m| m.id != lead.id));
    let severity = all()
        .filter(|v| v.severity.is_page())
        .map(|v| v.severity)
        .min_by_key(|s| match s {
            Severity::Critical => 0,
            Severity::Error => 1,
            Severity::Warning => 2,
            Severity::Info => 3,
        })
        .unwrap_or(lead.severity);
    let detectors: BTreeSet<String> = all()
        .map(|v| match v.detector {
            llmscope_model::Detector::Nelson => format!("rule {}", v.rule),
            d => d.to_string(),
        })
        .collect();
    let metrics: BTreeSet<&str> = all().map(|v| v.series.metric.as_str()).collect();
    let s = &lead.series;
    json!({
        "id": lead.id,
        "status": lead.display_status(),
        "severity": severity,
        "title": lead.title(),
        "site": s.site_label(),
        "host": s.host_label(),
        "provider": s.provider,
        "model": s.model,
        "source": s.source,
        "opened_at": llmscope_model::time::ms(lead.opened_at),
        "last_point_at": llmscope_model::time::ms(
            all().map(|v| v.last_point_at).max().unwrap_or(lead.last_point_at)
        ),
        "resolved_at": lead.resolved_at.map(llmscope_model::time::ms),
        "pages": all().filter(|v| v.severity.is_page()).count(),
        "detectors": detectors,
        "metrics": metrics,
        "lead": lead.summary(),
        "members": members
            .iter()
            .filter(|m| m.id != lead.id)
            .map(Violation::summary)
            .collect::<Vec<_>>(),
    })
}

async fn list(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    let mut f = filter(&q, &caller)?;
    f.leads_only = true;
    let (leads, next) = page(&st, &f, &q).await?;
    let mut items = Vec::with_capacity(leads.len());
    for lead in &leads {
        let members = st.store.incident_members(&lead.id).await?;
        items.push(incident_json(lead, &members));
    }
    Ok(Json(json!({"items": items, "next_cursor": next})))
}

async fn one(
    State(st): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<impl IntoResponse> {
    let lead = st
        .store
        .get_violation(&id)
        .await?
        .filter(Violation::leads)
        .filter(|v| caller.site_limit().is_none() || caller.may_see(&v.series.site))
        .ok_or_else(|| ApiError::not_found(format!("no incident with id `{id}`")))?;
    let members = st.store.incident_members(&id).await?;
    Ok(Json(incident_json(&lead, &members)))
}

/// The incident routes.
pub fn routes() -> axum::Router<ApiState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/incidents", get(list))
        .route("/api/v1/incidents/{id}", get(one))
}

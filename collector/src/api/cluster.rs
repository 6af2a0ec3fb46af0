//! `GET /api/v1/cluster`: who is running on this database and, in cluster mode, the live
//! members, which replica judges which partition, what waits in the log (messages not yet
//! stored or judged) and this replica's counters. `?key=SERIES_KEY` adds the partition of
//! that series and its owner. For operators and for checks after a deploy or a crash.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use llmscope_model::SeriesId;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiQuery, ApiResult, ApiState};
use crate::error::ErrorCode;

/// Query of `GET /api/v1/cluster`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterQuery {
    /// A series key whose partition and owner to show.
    pub key: Option<String>,
}

/// `GET /api/v1/cluster`.
pub async fn status(
    State(st): State<ApiState>,
    ApiQuery(q): ApiQuery<ClusterQuery>,
) -> ApiResult<impl IntoResponse> {
    let since = st.now() - crate::replica::STALE_AFTER.as_micros() as i64;
    let replicas: Vec<Value> = st
        .store
        .replicas_seen_since(since)
        .await?
        .into_iter()
        .map(|r| {
            json!({"host": r.host, "pid": r.pid, "grpc": r.grpc, "http": r.http, "cluster": r.cluster,
                "started_at": llmscope_model::time::ms(r.started_at), "seen_at": llmscope_model::time::ms(r.seen_at)})
        })
        .collect();
    let key = match &q.key {
        Some(k) => Some(
            k.parse::<SeriesId>()
                .map_err(|e| ApiError::bad("key", e.to_string()))?,
        ),
        None => None,
    };
    let Some(c) = &st.cluster else {
        if key.is_some() {
            return Err(ApiError::bad(
                "key",
                "`key`: this collector does not run in cluster mode; every series is judged here",
            ));
        }
        return Ok(Json(json!({
            "mode": "single",
            "replica": st.replica_id,
            "replicas": replicas,
        })));
    };
    let snap = c.snapshot().await.map_err(|e| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("cluster state cannot be read from NATS: {e}"),
        )
    })?;
    // what waits in the log: messages not yet stored or not yet judged
    let log = match c.nats.stream().await {
        Ok(stream) => match stream.get_info().await {
            Ok(i) => json!({"messages": i.state.messages, "bytes": i.state.bytes,
                "max_bytes": i.config.max_bytes, "consumers": i.state.consumer_count}),
            Err(e) => json!({"error": e.to_string()}),
        },
        Err(e) => json!({"error": e.to_string()}),
    };
    let ps = &c.partition_stats;
    let ss = &c.storage_stats;
    let mut out = json!({
        "mode": "cluster",
        "replica": c.id,
        "prefix": c.nats.names.prefix(),
        "partitions": c.nats.partitions,
        "connected": c.nats.connected(),
        "owned": c.ownership.owned(),
        "members": snap.members,
        "owners": snap.owners,
        "log": log,
        "stats": {
            "judged_messages": ps.judged.load(Ordering::Relaxed),
            "caught_up_messages": ps.caught_up.load(Ordering::Relaxed),
            "stored_on_takeover": ps.stored_on_takeover.load(Ordering::Relaxed),
            "takeovers": ps.takeovers.load(Ordering::Relaxed),
            "stored_messages": ss.stored.load(Ordering::Relaxed),
            "unreadable_messages": ss.unreadable.load(Ordering::Relaxed),
            "failed_commits": ss.failed.load(Ordering::Relaxed),
        },
        "replicas": replicas,
    });
    if let Some(k) = key {
        let p = llmscope_cluster::names::partition_of(
            &k.site,
            &k.host,
            &k.provider,
            &k.model,
            c.nats.partitions,
        );
        out["series"] = json!({
            "key": k,
            "partition": p,
            "owner": snap.owners.get(usize::from(p)).cloned().flatten(),
        });
    }
    Ok(Json(out))
}

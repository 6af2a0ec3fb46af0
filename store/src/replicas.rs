//! Collector replicas registered on this database, with heartbeats: what lets a replica
//! without cluster mode see that another one is already judging the same data.

use crate::{Store, StoreError};

/// One registered replica.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ReplicaRow {
    /// Its id (host, process and listeners).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id on that host.
    pub pid: i64,
    /// Its gRPC address.
    pub grpc: String,
    /// Its HTTP address.
    pub http: String,
    /// Its cluster prefix in cluster mode (`None`: no cluster mode).
    pub cluster: Option<String>,
    /// When it started, Unix µs.
    pub started_at: i64,
    /// Its last heartbeat, Unix µs.
    pub seen_at: i64,
}

impl Store {
    /// Registers (or re-registers) a replica.
    pub async fn register_replica(&self, r: &ReplicaRow) -> Result<(), StoreError> {
        const SQL: &str = "INSERT INTO replicas (id, host, pid, grpc, http, cluster, started_at, seen_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, grpc = excluded.grpc,
                http = excluded.http, cluster = excluded.cluster, started_at = excluded.started_at, seen_at = excluded.seen_at";
        with_pool!(self, p => {
            sqlx::query(SQL)
                .bind(&r.id).bind(&r.host).bind(r.pid).bind(&r.grpc).bind(&r.http)
                .bind(&r.cluster).bind(r.started_at).bind(r.seen_at)
                .execute(p).await?;
        });
        Ok(())
    }

    /// Records a heartbeat; false when the replica is not registered (any more).
    pub async fn touch_replica(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        const SQL: &str = "UPDATE replicas SET seen_at = $1 WHERE id = $2";
        let n = with_pool!(self, p => sqlx::query(SQL).bind(now).bind(id).execute(p).await?.rows_affected());
        Ok(n > 0)
    }

    /// Replicas with a heartbeat at or after `since` (Unix µs), oldest start first.
    pub async fn replicas_seen_since(&self, since: i64) -> Result<Vec<ReplicaRow>, StoreError> {
        const SQL: &str = "SELECT id, host, pid, grpc, http, cluster, started_at, seen_at
            FROM replicas WHERE seen_at >= $1 ORDER BY started_at, id";
        let rows = with_pool!(self, p => sqlx::query_as::<_, ReplicaRow>(SQL).bind(since).fetch_all(p).await?);
        Ok(rows)
    }

    /// Removes a replica (a clean stop) and rows whose heartbeat is older than `stale_before`.
    pub async fn remove_replica(&self, id: &str, stale_before: i64) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM replicas WHERE id = $1 OR seen_at < $2";
        with_pool!(self, p => {
            sqlx::query(SQL).bind(id).bind(stale_before).execute(p).await?;
        });
        Ok(())
    }
}

//! Shared by the collector's benchmarks.

#![allow(clippy::unwrap_used)]

/// A fresh database for one backend: a SQLite file in a temporary folder (kept alive by the
/// returned guard) or a new PostgreSQL database `llmscope_bench_<name>_<pid>` on 127.0.0.1.
pub async fn database(backend: &str, name: &str) -> (String, Option<tempfile::TempDir>) {
    if backend == "sqlite" {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        return (url, Some(dir));
    }
    let admin = sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    let db = format!("llmscope_bench_{name}_{}", std::process::id());
    for sql in [
        format!("DROP DATABASE IF EXISTS {db}"),
        format!("CREATE DATABASE {db}"),
    ] {
        sqlx::query(&sql).execute(&admin).await.unwrap();
    }
    (format!("postgres://postgres@127.0.0.1:5432/{db}"), None)
}

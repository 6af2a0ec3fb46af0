//! For tests (feature `testing`): one throwaway database per test on each backend — a SQLite
//! file in a temporary folder, or a fresh PostgreSQL database on
//! `LLMSCOPE_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).

use sqlx::Connection;

use crate::Store;

/// The two backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// Both backends, SQLite first.
pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// PostgreSQL the tests use; each test creates and drops its own database in it.
pub fn pg_admin_url() -> String {
    std::env::var("LLMSCOPE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

async fn pg_admin() -> sqlx::PgConnection {
    let admin = pg_admin_url();
    sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for the tests (run scripts/ensure-postgres.sh): {e}"))
}

/// A throwaway database.
pub enum TestDb {
    /// A SQLite file in a temporary folder.
    Sqlite(tempfile::TempDir, String),
    /// A fresh PostgreSQL database.
    Postgres {
        /// Database name.
        name: String,
        /// Its URL.
        url: String,
    },
}

impl TestDb {
    /// A new empty database (panics when PostgreSQL cannot be reached).
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}/llmscope.db", dir.path().display());
                TestDb::Sqlite(dir, url)
            }
            Backend::Postgres => {
                let name = format!("llmscope_store_{}", uuid::Uuid::new_v4().simple());
                let mut conn = pg_admin().await;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let admin = pg_admin_url();
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_owned())
                    .unwrap_or(admin);
                TestDb::Postgres {
                    url: format!("{base}/{name}"),
                    name,
                }
            }
        }
    }

    /// Its URL.
    pub fn url(&self) -> &str {
        match self {
            TestDb::Sqlite(_, url) => url,
            TestDb::Postgres { url, .. } => url,
        }
    }

    /// A connected, migrated store on it.
    pub async fn store(&self) -> Store {
        Store::connect(self.url(), 8).await.expect("connect store")
    }

    /// Drops the PostgreSQL database (SQLite files go with the temp folder).
    pub async fn drop_db(self) {
        if let TestDb::Postgres { name, .. } = self {
            let mut conn = pg_admin().await;
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Runs `f` on a fresh store of each backend.
pub async fn each_backend<F, Fut>(f: F)
where
    F: Fn(Store, Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let want = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        assert_eq!(store.backend(), want);
        f(store, backend).await;
        db.drop_db().await;
    }
}

/// Tries to rewrite the audit log; the append-only trigger must refuse it.
pub async fn rewrite_audit(store: &Store) -> Result<u64, sqlx::Error> {
    with_pool!(store, p => sqlx::query("UPDATE audit SET actor = 'mallory'")
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
}

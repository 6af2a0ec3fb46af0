//! Tokens through the store: only the hash of a generated token is kept, lookups by hash,
//! revocation (both backends).

#![allow(clippy::unwrap_used)]

mod common;

use common::{BACKENDS, TestDb};
use llmscope_collector::auth::{generate_token, hash_token};
use llmscope_model::now_us;
use llmscope_store::tokens::Role;

#[tokio::test]
async fn tokens_store_only_hashes_and_revoke() {
    for backend in BACKENDS {
        let db = TestDb::new(backend).await;
        let store = db.store().await;
        let (secret, rec) = generate_token(Role::Ingest, Some("eu-west".into()), "ci");
        store.insert_token(&rec, None).await.unwrap();
        let (_, admin) = generate_token(Role::Admin, None, "ops");
        store.insert_token(&admin, None).await.unwrap();
        let found = store
            .find_token(&hash_token(&secret))
            .await
            .unwrap()
            .expect("found");
        assert_eq!(found.id, rec.id);
        assert_eq!(found.site.as_deref(), Some("eu-west"));
        assert_eq!(found.role, Role::Ingest);
        assert!(found.revoked_at_us.is_none());
        assert!(
            (found.created_at_us - rec.created_at_us).abs() <= 1,
            "{backend:?}"
        );
        let list = store.list_tokens().await.unwrap();
        assert_eq!(list.len(), 2);
        assert!(
            list.iter()
                .all(|t| !t.hash.contains(&secret) && t.hash != secret)
        );
        assert!(store.revoke_token(&rec.id, now_us(), None).await.unwrap());
        assert!(
            !store.revoke_token(&rec.id, now_us(), None).await.unwrap(),
            "already revoked"
        );
        assert!(!store.revoke_token("nope", now_us(), None).await.unwrap());
        let found = store
            .find_token(&hash_token(&secret))
            .await
            .unwrap()
            .expect("still listed");
        assert!(found.revoked_at_us.is_some());
        assert!(
            store
                .find_token(&hash_token("llms_x_y"))
                .await
                .unwrap()
                .is_none()
        );
        db.drop_db().await;
    }
}

//! Tokens: generation, hashing, and request authentication.
//!
//! A token looks like `llms_<id>_<secret>`: `id` (8 hex characters) is public and names the
//! token in lists and logs; the secret (64 hex characters, 256 random bits) is shown once at
//! creation. Only the SHA-256 of the whole token is stored. Lookups are cached for a few
//! seconds, so a revocation takes effect within [`CACHE_TTL`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;
use tonic::Status;

use crate::error::ErrorCode;
use tonic::metadata::MetadataMap;

use llmscope_model::now_us;
use llmscope_store::tokens::{Role, TokenRecord};
use llmscope_store::{Store, StoreError};

/// How long a successful token lookup is reused before the database is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// Prefix of every token.
pub const TOKEN_PREFIX: &str = "llms_";

/// SHA-256 of a token, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Creates a new token; returns the secret text (show it once) and the record to store.
pub fn generate_token(role: Role, site: Option<String>, name: &str) -> (String, TokenRecord) {
    let mut rng = rand::rng();
    let mut id = [0u8; 4];
    rng.fill_bytes(&mut id);
    let mut secret = [0u8; 32];
    rng.fill_bytes(&mut secret);
    let id = hex::encode(id);
    let token = format!("{TOKEN_PREFIX}{id}_{}", hex::encode(secret));
    let record = TokenRecord {
        id,
        hash: hash_token(&token),
        site,
        role,
        name: name.to_owned(),
        created_at_us: now_us(),
        revoked_at_us: None,
        user_id: None,
    };
    (token, record)
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The only site this caller may write; `None` means any (insecure mode).
    pub site: Option<String>,
    /// The token's public id, for logs.
    pub token_id: Option<String>,
}

/// Checks `authorization: Bearer …` against the token table.
#[derive(Debug, Clone)]
pub struct Authenticator {
    store: Store,
    insecure: bool,
    cache: Arc<RwLock<HashMap<String, (TokenRecord, Instant)>>>,
}

impl Authenticator {
    /// An authenticator; with `insecure` every caller may write any site.
    pub fn new(store: Store, insecure: bool) -> Self {
        Authenticator {
            store,
            insecure,
            cache: Arc::default(),
        }
    }

    /// Authenticates an ingest call.
    pub async fn authenticate(&self, md: &MetadataMap) -> Result<Principal, Status> {
        if self.insecure {
            return Ok(Principal {
                site: None,
                token_id: None,
            });
        }
        let Some(value) = md.get("authorization") else {
            return Err(ErrorCode::Unauthenticated.status(
                "missing `authorization: Bearer <token>` metadata; create a token with `llmscope-collector token create --site NAME`",
            ));
        };
        let text = value.to_str().map_err(|_| {
            ErrorCode::Unauthenticated.status("the authorization metadata is not ASCII")
        })?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| {
                ErrorCode::Unauthenticated
                    .status("the authorization metadata must be `Bearer <token>`")
            })?
            .trim();
        let record = self.lookup(token).await.map_err(|e| {
            tracing::warn!(error = %e, "token lookup failed");
            ErrorCode::Unavailable
                .status("cannot check the token right now: the database is unavailable")
        })?;
        let Some(record) = record else {
            return Err(ErrorCode::Unauthenticated.status("unknown token"));
        };
        if record.revoked_at_us.is_some() {
            return Err(ErrorCode::Unauthenticated
                .status(format!("token `{}` has been revoked", record.id)));
        }
        if record.role != Role::Ingest {
            return Err(ErrorCode::PermissionDenied.status(format!(
                "token `{}` is an admin token; ingest needs a site token (`token create --site NAME`)",
                record.id
            )));
        }
        Ok(Principal {
            site: record.site,
            token_id: Some(record.id),
        })
    }

    async fn lookup(&self, token: &str) -> Result<Option<TokenRecord>, StoreError> {
        let hash = hash_token(token);
        if let Some((rec, at)) = self.cache.read().await.get(&hash)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some(rec.clone()));
        }
        let found = self.store.find_token(&hash).await?;
        let mut cache = self.cache.write().await;
        match &found {
            Some(rec) => {
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(hash, (rec.clone(), Instant::now()));
            }
            None => {
                cache.remove(&hash);
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (t1, r1) = generate_token(Role::Ingest, Some("eu".into()), "n");
        let (t2, r2) = generate_token(Role::Ingest, Some("eu".into()), "n");
        assert_ne!(t1, t2);
        assert!(t1.starts_with(&format!("llms_{}_", r1.id)));
        assert_eq!(t1.len(), 5 + 8 + 1 + 64);
        assert_eq!(r1.hash, hash_token(&t1));
        assert_ne!(r1.hash, r2.hash);
        assert!(!r1.hash.contains(&t1[14..]));
        let json = serde_json::to_string(&r1).unwrap();
        assert!(!json.contains(&r1.hash), "hash never serialized: {json}");
    }
}

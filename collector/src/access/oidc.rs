//! Signing in with an OpenID Connect provider: the authorization-code flow with PKCE, a
//! `state` and a `nonce` (kept in the database between the redirect and the callback, so any
//! replica can finish it), discovery from the issuer, and ID-token validation (signature,
//! issuer, audience, expiry, nonce) by the `openidconnect` crate. The role comes from a claim
//! (`role_claim`, e.g. `groups`) through `role_map` — the highest mapped role wins — else
//! `default_role`; in `strict` mode a user whose values map to nothing gets no access. The
//! sites come from `sites_claim` when set.

use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreClient, CoreProviderMetadata, CoreResponseType};
use openidconnect::{
    AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
};
use serde_json::Value;
use tokio::sync::Mutex;

use super::Role;
use super::config::OidcConfig;
use llmscope_store::Store;
use llmscope_store::users::OidcPending;

/// How long a sign-in may take between the redirect and the callback.
pub const PENDING_FOR: Duration = Duration::from_secs(600);
/// How long discovery answers are reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);

/// Why a sign-in failed; shown to the user on the sign-in page.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    /// The provider cannot be reached or answered badly.
    #[error("the identity provider cannot be reached: {0}")]
    Provider(String),
    /// The callback does not belong to a sign-in started here (or it expired).
    #[error("this sign-in was not started here or took longer than 10 minutes; start again")]
    UnknownState,
    /// The provider refused (the user cancelled, …).
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token is not valid.
    #[error("the identity provider's answer is not valid: {0}")]
    Invalid(String),
    /// No role for this user (strict mode).
    #[error(
        "your account has no role here: none of your {claim} maps to one; ask an administrator"
    )]
    NoRole {
        /// The claim.
        claim: String,
    },
    /// The database failed.
    #[error("{0}")]
    Store(#[from] llmscope_store::StoreError),
}

/// Who signed in, as the provider says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `issuer|sub`: the stable key of the user.
    pub subject: String,
    /// Email (lower case; `sub@issuer-host` when the provider gives none).
    pub email: String,
    /// Display name.
    pub name: String,
    /// Role from the claims.
    pub role: Role,
    /// Sites from `sites_claim` (`None`: every site).
    pub sites: Option<Vec<String>>,
    /// Whether the provider vouches for the email (`email_verified`): only then may the
    /// identity take over a local user with the same email.
    pub email_verified: bool,
}

/// The configured provider.
pub struct Provider {
    cfg: OidcConfig,
    http: openidconnect::reqwest::Client,
    meta: Mutex<Option<(CoreProviderMetadata, Instant)>>,
}

impl Provider {
    /// A provider for `[auth.oidc]` (discovery happens at the first sign-in).
    pub fn new(cfg: OidcConfig) -> Result<Provider, OidcError> {
        let http = openidconnect::reqwest::ClientBuilder::new()
            // following redirects would let the provider's answers reach elsewhere
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| OidcError::Provider(e.to_string()))?;
        Ok(Provider {
            cfg,
            http,
            meta: Mutex::new(None),
        })
    }

    /// The button's label.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    async fn metadata(&self) -> Result<CoreProviderMetadata, OidcError> {
        let mut m = self.meta.lock().await;
        if let Some((md, at)) = m.as_ref()
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(md.clone());
        }
        let issuer = IssuerUrl::new(self.cfg.issuer.clone())
            .map_err(|e| OidcError::Provider(format!("issuer: {e}")))?;
        let md = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| OidcError::Provider(format!("discovery: {e}")))?;
        *m = Some((md.clone(), Instant::now()));
        Ok(md)
    }

    fn client(
        &self,
        md: CoreProviderMetadata,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        OidcError,
    > {
        let redirect = RedirectUrl::new(self.cfg.redirect_url.clone())
            .map_err(|e| OidcError::Provider(format!("redirect_url: {e}")))?;
        Ok(CoreClient::from_provider_metadata(
            md,
            ClientId::new(self.cfg.client_id.clone()),
            self.cfg.secret().map(ClientSecret::new),
        )
        .set_redirect_uri(redirect))
    }

    /// Starts a sign-in: stores the state, nonce and PKCE verifier; returns the provider's
    /// authorization URL to redirect the browser to.
    pub async fn start(
        &self,
        store: &Store,
        return_to: &str,
        now: i64,
    ) -> Result<String, OidcError> {
        let client = self.client(self.metadata().await?)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut req = client
            .authorize_url(
                AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for s in &self.cfg.scopes {
            req = req.add_scope(Scope::new(s.clone()));
        }
        let (url, state, nonce) = req.url();
        store
            .put_oidc_pending(&OidcPending {
                state: state.secret().clone(),
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to: return_to.to_owned(),
                created_at: now,
            })
            .await?;
        Ok(url.to_string())
    }

    /// Finishes a sign-in: checks the state, exchanges the code (with the PKCE verifier),
    /// validates the ID token (with the nonce) and maps its claims. Returns who signed in and
    /// where to go.
    pub async fn finish(
        &self,
        store: &Store,
        code: &str,
        state: &str,
        now: i64,
    ) -> Result<(Identity, String), OidcError> {
        let since = now - i64::try_from(PENDING_FOR.as_micros()).unwrap_or(i64::MAX);
        let pending = store
            .take_oidc_pending(state, since)
            .await?
            .ok_or(OidcError::UnknownState)?;
        let md = self.metadata().await?;
        let userinfo = md.userinfo_endpoint().map(|u| u.url().clone());
        let client = self.client(md)?;
        let token = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| OidcError::Provider(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| OidcError::Refused(format!("code exchange: {e}")))?;
        use openidconnect::{OAuth2TokenResponse, TokenResponse};
        let id_token = token
            .id_token()
            .ok_or_else(|| OidcError::Invalid("no ID token in the answer".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token
            .claims(&verifier, &Nonce::new(pending.nonce.clone()))
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
        // the token is verified: its other claims (groups, sites) are read from its payload
        let mut payload = payload_of(&id_token.to_string())?;
        let sub = claims.subject().as_str().to_owned();
        // providers that keep scope claims out of the ID token give them at userinfo
        let missing = |p: &Value| {
            p.get(&self.cfg.role_claim).is_none()
                || p.get("email").is_none()
                || self
                    .cfg
                    .sites_claim
                    .as_ref()
                    .is_some_and(|c| p.get(c).is_none())
        };
        if missing(&payload)
            && let Some(url) = userinfo
        {
            let info = self.userinfo(url, token.access_token().secret()).await?;
            if info["sub"].as_str() != Some(sub.as_str()) {
                return Err(OidcError::Invalid(
                    "userinfo answered for another subject".into(),
                ));
            }
            if let (Value::Object(p), Value::Object(i)) = (&mut payload, info) {
                for (k, v) in i {
                    p.entry(k).or_insert(v);
                }
            }
        }
        let email_verified = claims
            .email_verified()
            .or_else(|| payload["email_verified"].as_bool())
            .unwrap_or(false);
        let email = claims
            .email()
            .map(|e| e.as_str().to_lowercase())
            .or_else(|| payload["email"].as_str().map(str::to_lowercase))
            .filter(|e| e.contains('@') && !e.chars().any(char::is_control))
            .unwrap_or_else(|| {
                let host = self
                    .cfg
                    .issuer
                    .split("://")
                    .nth(1)
                    .unwrap_or("oidc")
                    .split('/')
                    .next()
                    .unwrap_or("oidc");
                format!("{sub}@{host}").to_lowercase()
            });
        let name = claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_owned())
            .or_else(|| payload["name"].as_str().map(str::to_owned))
            .filter(|n| !n.chars().any(char::is_control))
            .unwrap_or_default();
        let role = self.role_of(&payload)?;
        // an absent sites claim: every site; a present one (even empty): those sites only
        let sites = self
            .cfg
            .sites_claim
            .as_ref()
            .and_then(|c| payload.get(c))
            .filter(|v| !v.is_null())
            .map(strings);
        Ok((
            Identity {
                subject: format!("{}|{sub}", self.cfg.issuer),
                email,
                name,
                role,
                sites,
                email_verified,
            },
            pending.return_to,
        ))
    }

    /// The userinfo endpoint's claims (JSON) for an access token.
    async fn userinfo(
        &self,
        url: openidconnect::url::Url,
        access_token: &str,
    ) -> Result<Value, OidcError> {
        let r = self
            .http
            .get(url)
            .bearer_auth(access_token)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| OidcError::Provider(format!("userinfo: {e}")))?;
        if !r.status().is_success() {
            return Err(OidcError::Provider(format!(
                "userinfo answered {}",
                r.status()
            )));
        }
        let body = r
            .bytes()
            .await
            .map_err(|e| OidcError::Provider(format!("userinfo: {e}")))?;
        serde_json::from_slice(&body)
            .map_err(|e| OidcError::Invalid(format!("userinfo is not JSON: {e}")))
    }

    fn role_of(&self, payload: &Value) -> Result<Role, OidcError> {
        let values = strings(&payload[&self.cfg.role_claim]);
        let mapped = values
            .iter()
            .filter_map(|v| self.cfg.role_map.get(v).copied())
            .max();
        match (mapped, self.cfg.default_role) {
            (Some(r), _) => Ok(r),
            (None, Some(d)) if !self.cfg.strict => Ok(d),
            _ => Err(OidcError::NoRole {
                claim: self.cfg.role_claim.clone(),
            }),
        }
    }
}

/// A claim as a list of strings (a list, or one string, space- or comma-separated).
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        Value::String(s) => s
            .split([',', ' '])
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The JSON payload of a (verified) JWT.
fn payload_of(jwt: &str) -> Result<Value, OidcError> {
    let part = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| OidcError::Invalid("the ID token is not a JWT".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| OidcError::Invalid(format!("ID token payload: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| OidcError::Invalid(format!("ID token payload: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn provider(strict: bool, default_role: Option<Role>) -> Provider {
        let mut role_map = BTreeMap::new();
        role_map.insert("ops".to_string(), Role::Admin);
        role_map.insert("ml".to_string(), Role::Viewer);
        Provider::new(OidcConfig {
            issuer: "https://id.example.com".into(),
            client_id: "c".into(),
            client_secret: None,
            client_secret_env: None,
            scopes: vec![],
            redirect_url: "https://x/api/v1/auth/oidc/callback".into(),
            name: "x".into(),
            role_claim: "groups".into(),
            role_map,
            default_role,
            strict,
            sites_claim: None,
        })
        .unwrap()
    }

    #[test]
    fn roles_map_from_the_claim() {
        let p = provider(true, None);
        let claims = serde_json::json!({"groups": ["ml", "ops"]});
        assert_eq!(p.role_of(&claims).unwrap(), Role::Admin, "the highest wins");
        assert_eq!(
            p.role_of(&serde_json::json!({"groups": "ml staff"}))
                .unwrap(),
            Role::Viewer
        );
        let e = p
            .role_of(&serde_json::json!({"groups": ["staff"]}))
            .unwrap_err();
        assert!(e.to_string().contains("groups"), "{e}");
        let lenient = provider(false, Some(Role::Viewer));
        assert_eq!(
            lenient.role_of(&serde_json::json!({})).unwrap(),
            Role::Viewer
        );
        assert!(payload_of("a.eyJzdWIiOiJ4In0.c").unwrap()["sub"] == "x");
    }
}

//! `[auth]`: reading needs a signed-in user or a token unless `anonymous_role` is set;
//! sessions, sign-in limits, password hashing, the audit log's retention, and
//! `[auth.oidc]` for signing in with an OpenID Connect provider.

use std::collections::BTreeMap;
use std::time::Duration;

use llmscope_model::Secret;
use serde::{Deserialize, Serialize};

use super::Role;

/// `[auth]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The role of a caller without a session or token (e.g. `viewer` for a wall screen);
    /// unset: reading needs a signed-in user or a token.
    pub anonymous_role: Option<Role>,
    /// A session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle: Duration,
    /// A session ends this long after sign-in, whatever its activity.
    #[serde(with = "humantime_serde")]
    pub session_max: Duration,
    /// Failed sign-ins of one account within `login_window` before further attempts answer
    /// 429.
    pub login_max_failures: u32,
    /// Failed sign-ins from one client address within `login_window` before 429.
    pub login_max_failures_per_client: u32,
    /// The window of the two limits above.
    #[serde(with = "humantime_serde")]
    pub login_window: Duration,
    /// Shortest password accepted.
    pub password_min_length: usize,
    /// Argon2id memory cost, KiB.
    pub argon2_memory_kib: u32,
    /// Argon2id iterations.
    pub argon2_iterations: u32,
    /// Argon2id lanes.
    pub argon2_parallelism: u32,
    /// Mark the session cookie `Secure` (default: when the HTTP listener has TLS).
    pub cookie_secure: Option<bool>,
    /// How long audit entries are kept (independent of sample retention).
    #[serde(with = "humantime_serde")]
    pub audit_retention: Duration,
    /// Sign-in with an OpenID Connect provider.
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous_role: None,
            session_idle: Duration::from_secs(8 * 3600),
            session_max: Duration::from_secs(7 * 86_400),
            login_max_failures: 5,
            login_max_failures_per_client: 20,
            login_window: Duration::from_secs(15 * 60),
            password_min_length: 12,
            // chosen so a sign-in takes 50–250 ms on the project's machine (BENCHMARKS.md)
            argon2_memory_kib: 19 * 1024,
            argon2_iterations: 5,
            argon2_parallelism: 1,
            cookie_secure: None,
            audit_retention: Duration::from_secs(90 * 86_400),
            oidc: None,
        }
    }
}

/// `[auth.oidc]`: the authorization-code flow with PKCE, state and nonce.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL (discovery reads `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// The client id registered with the provider.
    pub client_id: String,
    /// The client secret (prefer `client_secret_env`).
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// Environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The redirect URL registered with the provider: this collector's
    /// `/api/v1/auth/oidc/callback` as browsers reach it.
    pub redirect_url: String,
    /// The button's label: "Sign in with …".
    #[serde(default = "default_name")]
    pub name: String,
    /// The ID-token claim holding the user's groups (a list or a string).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Claim value → role; the highest role of the user's values wins.
    #[serde(default)]
    pub role_map: BTreeMap<String, Role>,
    /// The role of a user none of whose values maps (unset: see `strict`).
    #[serde(default)]
    pub default_role: Option<Role>,
    /// A user whose claim values map to no role gets no access (and no account).
    #[serde(default)]
    pub strict: bool,
    /// A claim listing the sites the user may see (absent: every site).
    #[serde(default)]
    pub sites_claim: Option<String>,
}

fn default_scopes() -> Vec<String> {
    vec!["email".into(), "profile".into()]
}

fn default_name() -> String {
    "single sign-on".into()
}

fn default_role_claim() -> String {
    "groups".into()
}

fn check_url(key: &str, u: &str) -> Result<(), String> {
    let ok = (u.starts_with("https://") || u.starts_with("http://")) && u.len() > 8;
    if ok {
        Ok(())
    } else {
        Err(format!("`{key}` must be an http(s) URL, got `{u}`"))
    }
}

impl OidcConfig {
    /// The client secret, from the file or the environment.
    pub fn secret(&self) -> Option<String> {
        if let Some(s) = &self.client_secret {
            return Some(s.0.clone());
        }
        self.client_secret_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
    }
}

impl AuthConfig {
    /// Checks ranges and combinations; messages name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.session_idle < Duration::from_secs(60) || self.session_max < self.session_idle {
            return Err(
                "`auth.session_idle` must be at least 1m and at most `auth.session_max`".into(),
            );
        }
        if self.login_max_failures == 0 || self.login_max_failures_per_client == 0 {
            return Err(
                "`auth.login_max_failures` and `auth.login_max_failures_per_client` must be at least 1"
                    .into(),
            );
        }
        if self.password_min_length < 8 {
            return Err("`auth.password_min_length` must be at least 8".into());
        }
        if self.argon2_memory_kib < 8 * 1024
            || self.argon2_iterations == 0
            || self.argon2_parallelism == 0
        {
            return Err("`auth.argon2_memory_kib` must be at least 8192 and `auth.argon2_iterations`, `auth.argon2_parallelism` at least 1".into());
        }
        if self.audit_retention < Duration::from_secs(86_400) {
            return Err("`auth.audit_retention` must be at least 1d".into());
        }
        if let Some(o) = &self.oidc {
            check_url("auth.oidc.issuer", &o.issuer)?;
            check_url("auth.oidc.redirect_url", &o.redirect_url)?;
            if !o.redirect_url.ends_with("/api/v1/auth/oidc/callback") {
                return Err(format!(
                    "`auth.oidc.redirect_url` must end with /api/v1/auth/oidc/callback (this collector's callback as browsers reach it), got `{}`",
                    o.redirect_url
                ));
            }
            if o.client_id.is_empty() {
                return Err("`auth.oidc.client_id` must not be empty".into());
            }
            if o.client_secret.is_some() && o.client_secret_env.is_some() {
                return Err(
                    "set `auth.oidc.client_secret` or `auth.oidc.client_secret_env`, not both"
                        .into(),
                );
            }
            if let Some(v) = &o.client_secret_env
                && std::env::var(v).is_err()
            {
                return Err(format!(
                    "`auth.oidc.client_secret_env`: the environment variable `{v}` is not set"
                ));
            }
            if o.strict && o.default_role.is_some() {
                return Err("`auth.oidc.strict` refuses users whose claims map to no role; it cannot be combined with `auth.oidc.default_role`".into());
            }
            if o.role_claim.is_empty() {
                return Err("`auth.oidc.role_claim` must not be empty".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oidc() -> OidcConfig {
        OidcConfig {
            issuer: "https://id.example.com".into(),
            client_id: "llmscope".into(),
            client_secret: Some(Secret("s".into())),
            client_secret_env: None,
            scopes: default_scopes(),
            redirect_url: "https://llmscope.example.com/api/v1/auth/oidc/callback".into(),
            name: default_name(),
            role_claim: default_role_claim(),
            role_map: BTreeMap::new(),
            default_role: None,
            strict: true,
            sites_claim: None,
        }
    }

    #[test]
    fn defaults_and_bad_values() {
        assert!(AuthConfig::default().validate().is_ok());
        let bad = |f: &dyn Fn(&mut AuthConfig), want: &str| {
            let mut c = AuthConfig::default();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.contains(want), "{e}");
        };
        bad(&|c| c.password_min_length = 4, "auth.password_min_length");
        bad(
            &|c| c.session_idle = Duration::from_secs(1),
            "auth.session_idle",
        );
        bad(
            &|c| c.audit_retention = Duration::from_secs(60),
            "auth.audit_retention",
        );
        bad(&|c| c.argon2_memory_kib = 1, "auth.argon2_memory_kib");
        bad(
            &|c| {
                let mut o = oidc();
                o.redirect_url = "https://x/cb".into();
                c.oidc = Some(o)
            },
            "auth.oidc.redirect_url",
        );
        bad(
            &|c| {
                let mut o = oidc();
                o.default_role = Some(Role::Viewer);
                c.oidc = Some(o)
            },
            "auth.oidc.strict",
        );
        bad(
            &|c| {
                let mut o = oidc();
                o.client_secret = None;
                o.client_secret_env = Some("LLMSCOPE_TEST_NO_SUCH_SECRET".into());
                c.oidc = Some(o)
            },
            "LLMSCOPE_TEST_NO_SUCH_SECRET",
        );
        let ok = AuthConfig {
            oidc: Some(oidc()),
            ..AuthConfig::default()
        };
        assert!(ok.validate().is_ok());
    }
}

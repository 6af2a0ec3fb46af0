//! Who may see and change what (ARCHITECTURE §9a).
//!
//! Every API request passes [`guard::guard`], which finds the route's policy in the route
//! table ([`crate::api::openapi::ENDPOINTS`]: a route without one is refused), identifies the
//! caller — a bearer token (the configured admin token, an admin token, a user's personal
//! token; ingest tokens are refused), a session cookie (with CSRF proof for changes), or the
//! anonymous role when `[auth] anonymous_role` is set — and checks the role. Handlers receive
//! the [`Caller`]: they filter what they read to the caller's sites (another site's object
//! answers 404, as if it did not exist) and record changes in the audit log with it.
//!
//! - [`config`]: `[auth]` and `[auth.oidc]`.
//! - [`guard`]: the middleware.
//! - [`password`]: Argon2id hashes and generated passwords.
//! - [`session`]: session cookies and CSRF tokens.
//! - [`limiter`]: sign-in attempts per account and client address.
//! - [`oidc`]: OpenID Connect sign-in.

pub mod config;
pub mod guard;
pub mod limiter;
pub mod oidc;
pub mod password;
pub mod session;

use llmscope_store::audit::Audit;
use serde::{Deserialize, Serialize};

pub use config::AuthConfig;

/// What a caller may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read.
    Viewer,
    /// Read, acknowledge and resolve violations, silences, re-baselining, rule settings.
    Editor,
    /// Everything: channels, routes, tokens, users, sites, the audit log.
    Admin,
}

impl Role {
    /// Text form.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "editor" => Ok(Role::Editor),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "`{other}` is not a role; use viewer, editor or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The policy of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (sign-in, the API description).
    Public,
    /// Any caller with an identity of their own: a session or a token (not anonymous).
    Signed,
    /// At least this role.
    Role(Role),
}

impl Access {
    /// Shorthand for [`Access::Role`]`(Role::Viewer)`.
    pub const VIEWER: Access = Access::Role(Role::Viewer);
    /// Shorthand for [`Access::Role`]`(Role::Editor)`.
    pub const EDITOR: Access = Access::Role(Role::Editor);
    /// Shorthand for [`Access::Role`]`(Role::Admin)`.
    pub const ADMIN: Access = Access::Role(Role::Admin);

    /// Text form (OpenAPI `x-llmscope-access`, the permission tests).
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::Signed => "signed",
            Access::Role(r) => r.as_str(),
        }
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// Nothing: the anonymous role.
    Anonymous,
    /// The admin token of the configuration (the bootstrap path).
    ConfigToken,
    /// An admin token (`token create --admin`).
    AdminToken {
        /// Its public id.
        id: String,
    },
    /// A user's personal token.
    PersonalToken {
        /// Its public id.
        id: String,
        /// The user.
        user_id: String,
    },
    /// A session cookie.
    Session {
        /// The session's stored id (the hash of the cookie value).
        session_id: String,
        /// The user.
        user_id: String,
    },
}

/// Who is calling, with what rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// How.
    pub via: Via,
    /// Name in the audit log and in acknowledgements: the user's email, `token:<id>`,
    /// `admin-token`, `anonymous`.
    pub actor: String,
    /// Role.
    pub role: Role,
    /// Sites the caller may see (`None`: every site).
    pub sites: Option<Vec<String>>,
    /// The client's address.
    pub client: String,
}

impl Caller {
    /// Whether the caller may see `site`.
    pub fn may_see(&self, site: &str) -> bool {
        self.sites
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == site))
    }

    /// The sites the caller is limited to (`None`: all).
    pub fn site_limit(&self) -> Option<&[String]> {
        self.sites.as_deref()
    }

    /// The user behind the caller, if any.
    pub fn user_id(&self) -> Option<&str> {
        match &self.via {
            Via::Session { user_id, .. } | Via::PersonalToken { user_id, .. } => Some(user_id),
            _ => None,
        }
    }

    /// An audit entry of this caller at `at` (Unix µs).
    pub fn audit(&self, at: i64, action: &str, target: impl Into<String>) -> Audit {
        Audit {
            at,
            actor: self.actor.clone(),
            role: self.role.as_str().to_owned(),
            client: self.client.clone(),
            action: action.to_owned(),
            target: target.into(),
            before: None,
            after: None,
        }
    }
}

/// A JSON text for an audit entry's before/after.
pub fn snapshot(v: &serde_json::Value) -> Option<String> {
    Some(v.to_string())
}

//! Session cookies: a random 256-bit secret in an HttpOnly, SameSite=Lax cookie (Secure under
//! TLS); the database keeps only its SHA-256. Each session has a CSRF token: a change made
//! with the cookie must send it back in `X-CSRF-Token` (double submit through the
//! `/api/v1/auth/me` answer, which a page of another origin cannot read), and its `Origin`,
//! when present, must be this collector.

use axum::http::HeaderMap;
use rand::RngCore;

use crate::auth::hash_token;

/// The cookie's name.
pub const COOKIE: &str = "llmscope_session";
/// The header carrying the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A new session's secret (the cookie value), its stored id and its CSRF token.
pub struct NewSession {
    /// The cookie value (shown to the browser only).
    pub secret: String,
    /// SHA-256 of the secret, hex: the stored id.
    pub id: String,
    /// The CSRF token.
    pub csrf: String,
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A fresh session secret, id and CSRF token.
pub fn new_session() -> NewSession {
    let secret = random_hex(32);
    NewSession {
        id: hash_token(&secret),
        secret,
        csrf: random_hex(24),
    }
}

/// The session cookie's value in a request, if any.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` for a session that lasts `max_age_s`.
pub fn set_cookie(secret: &str, max_age_s: u64, secure: bool) -> String {
    format!(
        "{COOKIE}={secret}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_s}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` removing the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", 0, secure)
}

/// Whether the request's `Origin` (when sent) is this collector's: its host equals the
/// request's `Host`.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true; // not a browser's cross-origin request
    };
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let origin_host = origin
        .split_once("://")
        .map(|(_, rest)| rest.trim_end_matches('/'))
        .unwrap_or("");
    !host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn cookies_and_origins() {
        let mut h = HeaderMap::new();
        h.insert(
            "cookie",
            HeaderValue::from_static("theme=dark; llmscope_session=abc123; x=y"),
        );
        assert_eq!(cookie_value(&h).as_deref(), Some("abc123"));
        let c = set_cookie("s", 60, true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Lax") && c.ends_with("Secure"));
        assert!(!set_cookie("s", 60, false).contains("Secure"));
        h.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert!(
            same_origin(&h),
            "no Origin: not a cross-origin browser request"
        );
        h.insert("origin", HeaderValue::from_static("http://127.0.0.1:8080"));
        assert!(same_origin(&h));
        h.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        let s = new_session();
        assert_eq!(s.id, hash_token(&s.secret));
        assert_ne!(s.secret, s.csrf);
    }
}

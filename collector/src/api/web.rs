//! The dashboard: `web/dist` embedded in the binary (rust-embed; read from disk in debug
//! builds), served with a single-page-app fallback to `index.html`. Hashed assets under
//! `/assets/` are cached for a year (`immutable`); `index.html` is revalidated every time.
//! `scripts/build-web.sh` writes a gzip copy (`x.js.gz`) of every text file; it is served with
//! `Content-Encoding: gzip` to clients that accept it.

use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Dist;

fn file(path: &str, gzip_ok: bool) -> Option<Response> {
    let f = Dist::get(path)?;
    let mime = f.metadata.mimetype().to_owned();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let gz = if gzip_ok {
        Dist::get(&format!("{path}.gz"))
    } else {
        None
    };
    let mut r = (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, cache.to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (header::VARY, "accept-encoding".to_owned()),
        ],
        match &gz {
            Some(g) => g.data.clone().into_owned(),
            None => f.data.into_owned(),
        },
    )
        .into_response();
    if gz.is_some() {
        r.headers_mut().insert(
            header::CONTENT_ENCODING,
            axum::http::HeaderValue::from_static("gzip"),
        );
    }
    Some(r)
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.trim().split(';');
            parts.next().is_some_and(|n| n.trim() == "gzip")
                && !parts.any(|q| q.trim().replace(' ', "") == "q=0")
        })
}

/// Serves a dashboard file, or `index.html` for client-side routes.
pub async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let gzip_ok = accepts_gzip(&headers);
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return super::ApiError::not_found(format!("no API route {}", uri.path())).into_response();
    }
    if !path.is_empty()
        && !path.ends_with(".gz")
        && let Some(r) = file(path, gzip_ok)
    {
        return r;
    }
    if path.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    file("index.html", gzip_ok).unwrap_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the dashboard is not built into this binary: run `make web` (or `cd web && npm ci && npm run build`) and rebuild the collector; the REST API is at /api/v1\n",
        )
            .into_response()
    })
}

//! The dashboard: `web/dist` embedded in the binary (rust-embed; read from disk in debug
//! builds), served with a single-page-app fallback to `index.html`. Hashed assets under
//! `/assets/` are cached for a year (`immutable`); `index.html` is revalidated every time.

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../web/dist"]
#[allow_missing = true]
struct Dist;

fn file(path: &str) -> Option<Response> {
    let f = Dist::get(path)?;
    let mime = f.metadata.mimetype().to_owned();
    let cache = if path.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Some(
        (
            [
                (header::CONTENT_TYPE, mime),
                (header::CACHE_CONTROL, cache.to_owned()),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            ],
            f.data.into_owned(),
        )
            .into_response(),
    )
}

/// Serves a dashboard file, or `index.html` for client-side routes.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path.starts_with("api/") {
        return super::ApiError::not_found(format!("no API route {}", uri.path())).into_response();
    }
    if !path.is_empty()
        && let Some(r) = file(path)
    {
        return r;
    }
    if path.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    }
    file("index.html").unwrap_or_else(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "the dashboard is not built into this binary: run `make web` (or `cd web && npm ci && npm run build`) and rebuild the collector; the REST API is at /api/v1\n",
        )
            .into_response()
    })
}

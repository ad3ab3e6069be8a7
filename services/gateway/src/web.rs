//! The browser UI (`web/` at the repository root), compiled into the binary and
//! served at `/` so the README's run command is all a user needs.
//!
//! Every response carries a strict Content-Security-Policy: scripts and styles
//! only from this origin, no inline code, no plugins, no framing. There is no
//! build step, so file names carry no content hash; instead each file has a
//! strong ETag and `Cache-Control: no-cache`, which makes browsers revalidate
//! (a cheap 304) and never run a stale module next to a fresh one.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::ApiError;

/// `connect-src 'self'` covers same-origin `ws:`/`wss:` in CSP level 3 browsers.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; \
manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("/index.html", "text/html; charset=utf-8"),
    asset!("/app.css", "text/css; charset=utf-8"),
    asset!("/favicon.svg", "image/svg+xml"),
    asset!("/js/main.js", JS),
    asset!("/js/api.js", JS),
    asset!("/js/socket.js", JS),
    asset!("/js/i18n.js", JS),
    asset!("/js/dom.js", JS),
    asset!("/js/format.js", JS),
    asset!("/js/users.js", JS),
    asset!("/js/view_login.js", JS),
    asset!("/js/view_auctions.js", JS),
    asset!("/js/view_auction.js", JS),
    asset!("/js/price_chart.js", JS),
    asset!("/js/watchlist.js", JS),
    asset!("/js/view_create.js", JS),
    asset!("/js/chat.js", JS),
];

fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })
}

/// Adds the headers every UI response carries.
fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// The router's fallback: a UI file for GET/HEAD of a known path, otherwise
/// the API's problem+json 404.
pub async fn serve(method: Method, uri: Uri, request_headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::not_found("route").into_response();
    }
    let path = match uri.path() {
        "/" => "/index.html",
        other => other,
    };
    let Some(index) = ASSETS.iter().position(|a| a.path == path) else {
        return ApiError::not_found("route").into_response();
    };
    let asset = &ASSETS[index];
    let etag = &etags()[index];
    let fresh = request_headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else if method == Method::HEAD {
        ([(header::CONTENT_TYPE, asset.content_type)],).into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    secure(headers);
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    fn app() -> Router {
        Router::new()
            .route("/api/x", get(|| async { "api" }))
            .fallback(serve)
    }

    async fn call(path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = axum::http::Request::get(path);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        app()
            .oneshot(request.body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn index_is_html_with_a_strict_policy() {
        let response = call("/", &[]).await;
        assert_eq!(response.status(), StatusCode::OK);
        let h = response.headers();
        assert_eq!(h[header::CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[header::CACHE_CONTROL], "no-cache");
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains("<script type=\"module\" src=\"/js/main.js\">"));
    }

    #[tokio::test]
    async fn scripts_and_styles_have_their_types() {
        let js = call("/js/main.js", &[]).await;
        assert_eq!(js.headers()[header::CONTENT_TYPE], JS);
        let css = call("/app.css", &[]).await;
        assert_eq!(
            css.headers()[header::CONTENT_TYPE],
            "text/css; charset=utf-8"
        );
    }

    #[tokio::test]
    async fn etag_revalidates_to_not_modified() {
        let first = call("/js/socket.js", &[]).await;
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_string();
        let again = call("/js/socket.js", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let stale = call("/js/socket.js", &[("if-none-match", "\"old\"")]).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_paths_stay_problem_json_404() {
        let response = call("/nope.js", &[]).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("problem+json"));
        assert_eq!(call("/api/x", &[]).await.status(), StatusCode::OK);
    }

    /// Every module the UI imports is served; a missing entry here would be a
    /// blank page in the browser.
    #[test]
    fn every_web_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web");
        let mut missing = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = format!("/{}", p.strip_prefix(&dir).unwrap().display());
                    if !ASSETS.iter().any(|a| a.path == rel) {
                        missing.push(rel);
                    }
                }
            }
        }
        assert!(missing.is_empty(), "not embedded: {missing:?}");
    }
}

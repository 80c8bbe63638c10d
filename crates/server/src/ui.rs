//! The built-in dashboard at `/ui`: static HTML, CSS and JavaScript compiled
//! into the binary (no Node build, no CDN, no external fetch).
//!
//! The page itself holds no data and needs no key: it shows a login form, and
//! every figure comes from the admin API (`/admin/stats`, `/admin/requests`,
//! `/admin/budgets`, ...) called with the key the operator typed, so nothing
//! leaks without one. Responses carry a strict Content-Security-Policy (only
//! this origin's script and style; no inline script, no framing), `nosniff`,
//! and an ETag so browsers revalidate cheaply.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

const fn asset(content_type: &'static str, body: &'static [u8]) -> Asset {
    Asset {
        content_type,
        body,
        etag: fnv1a(body),
    }
}

/// FNV-1a, at compile time: a change to a file changes its ETag.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        h ^= bytes[i] as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    h
}

const INDEX: Asset = asset(
    "text/html; charset=utf-8",
    include_bytes!("../ui/index.html"),
);
const APP_JS: Asset = asset(
    "text/javascript; charset=utf-8",
    include_bytes!("../ui/app.js"),
);
const APP_CSS: Asset = asset("text/css; charset=utf-8", include_bytes!("../ui/app.css"));
const FAVICON: Asset = asset("image/svg+xml", include_bytes!("../ui/favicon.svg"));

/// The dashboard's Content-Security-Policy: this origin only, no inline
/// script or style, no plugins, not embeddable, forms never submit (the login
/// form is handled by script, so a key can never end up in a URL).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn serve(asset: &Asset, headers: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = asset.body.into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        );
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    security_headers(h);
    r
}

/// Headers every dashboard response carries.
fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Always revalidate (the ETag makes that a 304): an upgraded gateway
    // serves its own dashboard at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

/// `GET /ui` and `GET /ui/`: the page (a login form until a key is given).
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// `GET /ui/{file}`: the script, the stylesheet and the icon.
pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    let asset = match name.as_str() {
        "" | "index.html" => &INDEX,
        "app.js" => &APP_JS,
        "app.css" => &APP_CSS,
        "favicon.svg" => &FAVICON,
        _ => {
            let mut r = ApiError::new(
                modelgate_core::ErrorClass::NotFound,
                format!("No dashboard file {name:?}."),
            )
            .with_code("not_found")
            .into_response();
            security_headers(r.headers_mut());
            return r;
        }
    };
    serve(asset, &headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(INDEX.body).unwrap_or_default();
        // Every <script> loads a file; no inline handlers or style attributes,
        // which the CSP would block anyway.
        for (i, _) in html.match_indices("<script") {
            let tag = &html[i..i + html[i..].find('>').unwrap_or(0)];
            assert!(tag.contains("src=\"/ui/"), "inline script: {tag}");
        }
        for bad in [" onclick=", " onload=", " style=", "<style", "javascript:"] {
            assert!(!html.contains(bad), "{bad}");
        }
        let js = std::str::from_utf8(APP_JS.body).unwrap_or_default();
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('style'",
        ] {
            assert!(!js.contains(bad), "app.js must not use {bad}");
        }
        // The SVG namespace is a name, not a fetch.
        let js = js.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !js.contains("http://") && !js.contains("https://"),
            "no external fetches"
        );
    }

    #[test]
    fn etags_differ_per_file() {
        assert_ne!(INDEX.etag, APP_JS.etag);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}

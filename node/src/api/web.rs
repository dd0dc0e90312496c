//! The web pages every node serves (explorer, verifier, trace, regulator):
//! one HTML page, a script and a style sheet compiled into the binary, with
//! a content security policy that allows nothing from elsewhere.

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/style.css");

/// Nothing but this node: no CDN, no inline script, no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// The pages' routes: each page path serves the same HTML, whose script
/// draws the page the path names.
pub(super) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/explorer", get(index))
        .route("/verify", get(index))
        .route("/trace", get(index))
        .route("/trace/{commitment}", get(index))
        .route("/regulator", get(index))
        .route(
            "/assets/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_load_nothing_from_elsewhere() {
        for (name, text) in [
            ("index.html", INDEX),
            ("app.js", SCRIPT),
            ("style.css", STYLE),
        ] {
            for outside in ["http://", "https://", "//cdn", "@import"] {
                assert!(!text.contains(outside), "{name} mentions {outside}");
            }
        }
        assert!(INDEX.contains("/assets/app.js") && INDEX.contains("/assets/style.css"));
        assert!(
            !SCRIPT.contains("innerHTML"),
            "untrusted text is set as text only"
        );
    }
}

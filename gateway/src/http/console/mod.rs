//! The operators' and auditors' console: static pages (HTML, CSS and
//! hand-written ES modules under `gateway/console/`, embedded in the binary
//! with `include_str!`) served at `/console/` on the admin listener, and the
//! read-only JSON endpoints its pages need ([`api`], described in the admin
//! API document). Loading it takes the same mTLS principal as the admin API:
//! auditors and operators granted `read` ([`Action::Console`]); bureaus,
//! ministries and unmapped certificates get 403. What the pages do (replay,
//! resume) they do through the admin API's own routes and grants.

mod api;
mod shape;

pub(crate) use api::routes;
pub use shape::{CaseTimeline, ConsoleSession, DeadlineSummary, NetworksStatus};

use super::AppState;
use super::problem::Problem;
use crate::policy::{Action, Caller};
use axum::Router;
use axum::extract::{Extension, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::header;
use std::sync::Arc;

/// One embedded file: its name under `/console/`, its type, its text.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("../../../console/", $name)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console is made of.
const ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("i18n.js", JS),
    asset!("util.js", JS),
    asset!("networks.js", JS),
    asset!("cases.js", JS),
    asset!("dead-letters.js", JS),
    asset!("deadlines.js", JS),
    asset!("audit.js", JS),
    asset!("report.js", JS),
];

/// The pages' own origin only: no inline script, nothing from elsewhere.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `/console/` and its files (not in the API description: they are pages).
pub(crate) fn assets() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(index))
        .route("/console/{file}", get(file))
}

async fn index(state: State<AppState>, caller: Extension<Arc<Caller>>) -> Response {
    file(state, caller, Path("index.html".to_string())).await
}

async fn file(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    Path(name): Path<String>,
) -> Response {
    if let Err(p) = state.authorize(&caller, Action::Console, None, None).await {
        return p.into_response();
    }
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return Problem::not_found(format!("the console has no file {name}")).into_response();
    };
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        asset.body,
    )
        .into_response()
}

/// Browsers present the client certificate to any page that asks, so a
/// page of another site could make an operator's browser post to the admin
/// API (a cross-site request forgery: `POST …/resume` needs no body, so it
/// is a "simple" request that no CORS preflight stops). A request that
/// changes something and comes from a browser on another origin (its
/// `Origin` is not this listener's, or `Sec-Fetch-Site` says `cross-site`
/// or `same-site`) is refused 403 `cross-origin` and audited as a denial.
/// Clients that are not browsers (the CLI, scripts) send neither header.
pub(crate) async fn same_origin(
    State(state): State<AppState>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if matches!(req.method(), &http::Method::GET | &http::Method::HEAD) {
        return next.run(req).await;
    }
    let Some(why) = cross_origin(req.headers()) else {
        return next.run(req).await;
    };
    let who = req
        .extensions()
        .get::<Arc<Caller>>()
        .map(|c| c.name())
        .unwrap_or_default();
    let entry = yiwang_audit::Entry::new(yiwang_audit::Kind::Denial)
        .principal(who)
        .detail(serde_json::json!({
            "action": format!("{} {}", req.method(), req.uri().path()),
            "rule": why,
        }));
    if let Err(e) = state.audit().append(entry).await {
        tracing::error!(error = %e, "a cross-origin refusal could not be audited");
    }
    Problem::new(
        http::StatusCode::FORBIDDEN,
        "cross-origin",
        "Cross-origin request refused",
    )
    .detail(why)
    .into_response()
}

/// Why a request's browser headers say it comes from another site, if they do.
fn cross_origin(headers: &http::HeaderMap) -> Option<String> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = text("sec-fetch-site")
        && matches!(site, "cross-site" | "same-site")
    {
        return Some(format!(
            "Sec-Fetch-Site is {site}: only the console's own pages may act"
        ));
    }
    let origin = text("origin")?;
    let host = text("host").unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, h)| h).unwrap_or(origin);
    (origin_host != host).then(|| {
        format!(
            "Origin {origin} is not this listener ({host}): only the console's own pages may act"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::ASSETS;

    /// The labels every script asks for by name (`t("key")`).
    fn asked() -> Vec<&'static str> {
        let mut keys = Vec::new();
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let mut rest = a.body;
            while let Some(at) = rest.find("t(\"") {
                // `t(` itself, not the end of `split(` or `.at(`.
                let word = rest[..at]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'));
                rest = &rest[at + 3..];
                if let Some(end) = rest.find('"') {
                    if word {
                        keys.push(&rest[..end]);
                    }
                    rest = &rest[end..];
                }
            }
        }
        keys
    }

    #[test]
    fn every_label_a_page_asks_for_is_in_chinese_and_in_english() {
        let i18n = ASSETS.iter().find(|a| a.name == "i18n.js").map(|a| a.body);
        let i18n = i18n.unwrap_or_default();
        let (zh, en) = i18n.split_once("const EN").unwrap_or_default();
        let has = |dict: &str, key: &str| {
            [
                format!(" {key}:"),
                format!("\"{key}\":"),
                format!("\n{key}:"),
            ]
            .iter()
            .any(|k| dict.contains(k.as_str()))
        };
        let keys = asked();
        assert!(keys.len() > 50, "{keys:?}");
        for key in keys {
            assert!(has(zh, key), "no Chinese label for {key:?}");
            assert!(has(en, key), "no English label for {key:?}");
        }
    }

    #[test]
    fn only_the_listener_s_own_pages_may_act_from_a_browser() {
        use super::cross_origin;
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        // The CLI and scripts send no browser headers.
        assert_eq!(cross_origin(&headers(&[("host", "127.0.0.1:8441")])), None);
        // The console itself.
        let own = headers(&[
            ("host", "127.0.0.1:8441"),
            ("origin", "https://127.0.0.1:8441"),
            ("sec-fetch-site", "same-origin"),
        ]);
        assert_eq!(cross_origin(&own), None);
        let other = headers(&[
            ("host", "127.0.0.1:8441"),
            ("origin", "https://evil.example"),
        ]);
        let why = cross_origin(&other).unwrap_or_default();
        assert!(why.contains("evil.example"), "{why}");
        let sibling = headers(&[("host", "127.0.0.1:8441"), ("sec-fetch-site", "same-site")]);
        assert!(cross_origin(&sibling).is_some());
        let null = headers(&[("host", "127.0.0.1:8441"), ("origin", "null")]);
        assert!(cross_origin(&null).is_some());
    }

    #[test]
    fn every_file_the_page_loads_is_embedded() {
        let index = ASSETS
            .iter()
            .find(|a| a.name == "index.html")
            .map(|a| a.body);
        let app = ASSETS.iter().find(|a| a.name == "app.js").map(|a| a.body);
        for text in [index.unwrap_or_default(), app.unwrap_or_default()] {
            for part in text
                .split('"')
                .filter(|p| p.ends_with(".js") || p.ends_with(".css"))
            {
                let name = part.trim_start_matches("./");
                assert!(
                    ASSETS.iter().any(|a| a.name == name),
                    "{name} is not embedded"
                );
            }
        }
    }
}

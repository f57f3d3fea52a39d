//! The `/_sim/*` control API: faults, the case store, forced status changes. Never faulted.

use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::faults::FaultPatch;
use crate::network::Network;
use crate::reply::{self, Reply};

const MAX_CONTROL_BODY: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StatusChange {
    status: String,
    #[serde(default)]
    reason: Option<String>,
}

pub(crate) async fn handle(net: &Network, req: Request<Incoming>) -> Reply {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let body = match Limited::new(req.into_body(), MAX_CONTROL_BODY)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "control request body too large",
            );
        }
    };
    let segments: Vec<&str> = path
        .trim_start_matches("/_sim")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    tracing::debug!(network = %net.name(), %method, %path, "control request");
    match (&method, segments.as_slice()) {
        (&Method::GET, ["info"]) => ok(json!({
            "name": net.cfg.name,
            "archetype": net.cfg.archetype.as_str(),
            "base_url": net.base_url(),
            "stage_interval_ms": u64::try_from(net.cfg.stage_interval.as_millis()).unwrap_or(u64::MAX),
            "case_prefix": net.cfg.case_prefix,
            "tls": net.tls.as_ref().map(crate::tls::TlsServer::stats),
            "statuses": net.protocol.statuses().codes.iter()
                .map(|(code, name)| json!({"code": code, "name": name}))
                .collect::<Vec<_>>(),
        })),
        (&Method::GET, ["faults"]) => ok(json!(net.faults.snapshot())),
        (&Method::POST, ["faults"]) => {
            let patch: FaultPatch = match serde_json::from_slice(&body) {
                Ok(p) => p,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("fault settings: {e}")),
            };
            match net.faults.apply(patch) {
                Ok(settings) => {
                    tracing::info!(network = %net.name(), ?settings, "faults set");
                    ok(json!(settings))
                }
                Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        (&Method::POST, ["reset"]) => {
            net.reset();
            tracing::info!(network = %net.name(), "store and faults reset");
            ok(json!({"ok": true}))
        }
        (&Method::GET, ["cases"]) => ok(json!(net.cases())),
        (&Method::GET, ["cases", number]) => {
            match net.read(|s| s.case_by_number(number).cloned()) {
                Some(case) => ok(json!(case)),
                None => unknown_case(number),
            }
        }
        (&Method::POST, ["cases", number, "advance"]) => {
            let outcome = net.write(|s| {
                let idx = s.index_of_number(number)?;
                Some(s.advance(idx, Instant::now()))
            });
            match outcome {
                None => unknown_case(number),
                Some(None) => error(
                    StatusCode::CONFLICT,
                    &format!("case {number} is at a terminal status"),
                ),
                Some(Some(status)) => ok(json!({"ministry_case_number": number, "status": status})),
            }
        }
        (&Method::POST, ["cases", number, "status"]) => {
            let change: StatusChange = match serde_json::from_slice(&body) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("status change: {e}")),
            };
            let outcome = net.write(|s| {
                let idx = s.index_of_number(number)?;
                Some(s.set_status(idx, &change.status, change.reason.clone(), Instant::now()))
            });
            match outcome {
                None => unknown_case(number),
                Some(false) => error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "status {:?} is not in the {} table",
                        change.status, net.cfg.archetype
                    ),
                ),
                Some(true) => ok(json!({"ministry_case_number": number, "status": change.status})),
            }
        }
        (&Method::GET | &Method::POST, ["pushes"]) => pushes(net, &method, &body),
        (_, ["info"] | ["faults"] | ["reset"] | ["cases", ..] | ["pushes"]) => {
            error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => error(StatusCode::NOT_FOUND, "no such control endpoint"),
    }
}

/// Body of `POST /_sim/pushes`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushTarget {
    callback_url: Option<String>,
}

/// Archetype 5's push counters, and where pushes go.
fn pushes(net: &Network, method: &Method, body: &[u8]) -> Reply {
    let Some(pushes) = &net.pushes else {
        return error(
            StatusCode::NOT_FOUND,
            &format!(
                "network {} ({}) does not push",
                net.name(),
                net.cfg.archetype
            ),
        );
    };
    if method == Method::POST {
        let target: PushTarget = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("push target: {e}")),
        };
        if let Some(url) = &target.callback_url
            && let Err(e) = crate::callback::check_callback_url(&net.cfg, url)
        {
            return error(StatusCode::BAD_REQUEST, &e.to_string());
        }
        tracing::info!(network = %net.name(), url = ?target.callback_url, "callback URL set");
        pushes.set_url(target.callback_url);
    }
    ok(json!(pushes.stats()))
}

fn ok(value: Value) -> Reply {
    reply::json(StatusCode::OK, &value)
}

fn error(status: StatusCode, message: &str) -> Reply {
    reply::json(status, &json!({"error": message}))
}

fn unknown_case(number: &str) -> Reply {
    error(StatusCode::NOT_FOUND, &format!("no case {number}"))
}

//! The API description: one OpenAPI 3.1 document per listener (intake,
//! callbacks, admin), generated from the routes as each edge declares them
//! and served at `GET /openapi.json` on that listener (its own paths only).
//!
//! Why generated and where from: the request and answer shapes are the
//! schemars schemas of `crate::wire` and `yiwang_schema` (the same ones
//! clients and the committed case schema read), so a renamed field changes
//! the document in the same commit. The handlers stay plain axum handlers
//! (their extractors carry the caller, the audit note and typed refusals,
//! which say nothing to a client); beside each `.route(…)` the edge states
//! the operation with [`op`]: id, typed body and parameters, each answer
//! and its status, and the problems the handler can return. [`op`] adds
//! the refusals the listener's stack can give any route (403 from the
//! deny-by-default policy, 400/408/413 while reading a body, 429 over a
//! principal's rate, 431 over the header budget, 503 when shedding load or
//! timing out), so no operation can forget them. The committed copies under
//! docs/openapi/ are compared with these in a test (`YIWANG_BLESS=1`
//! rewrites them).

use super::AppState;
use super::problem::Problem;
use crate::policy::{Action, Caller};
use aide::axum::ApiRouter;
use aide::axum::routing::ApiMethodDocs;
use aide::generate::in_context;
use aide::openapi::{
    Header, HeaderStyle, Info, MediaType, OpenApi, Operation, ParameterSchemaOrContent,
    ReferenceOr, RequestBody, Response, SchemaObject, SecurityScheme, StatusCode, Tag,
};
use aide::transform::TransformOperation;
use axum::Router;
use axum::extract::{Extension, State};
use axum::response::IntoResponse;
use axum::routing::get;
use schemars::JsonSchema;
use serde_json::Value;
use std::sync::Arc;

/// A listener, as its API description names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Intake,
    Callbacks,
    Admin,
}

impl Edge {
    pub const ALL: [Edge; 3] = [Edge::Intake, Edge::Callbacks, Edge::Admin];

    /// The listener's name (`[listeners.<name>]`, docs/openapi/<name>.json).
    pub fn name(self) -> &'static str {
        match self {
            Edge::Intake => "intake",
            Edge::Callbacks => "callbacks",
            Edge::Admin => "admin",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Edge::Intake => "Yiwang intake API",
            Edge::Callbacks => "Yiwang callback API",
            Edge::Admin => "Yiwang admin API",
        }
    }

    fn description(self) -> &'static str {
        match self {
            Edge::Intake => {
                "The bureau platform's API: submit a case once (unified case schema), post \
                 changes, read a case's state across every network, search cases."
            }
            Edge::Callbacks => {
                "Ministry pushes: each network's callbacks go to its adapter; the events are \
                 stored before the ministry gets the adapter's answer."
            }
            Edge::Admin => {
                "Operators (queue, dead letters, replay, destinations, adapter hot swap, \
                 resume, metrics) and auditors (the audit trail and the witness)."
            }
        }
    }
}

/// The mTLS security scheme every operation requires.
const MTLS: &str = "mutualTLS";

/// `{case_number}` in a path.
#[derive(Debug, JsonSchema)]
#[expect(dead_code, reason = "a schema for the API description only")]
pub(super) struct CasePath {
    /// The case number (as the bureau assigned it in the case).
    case_number: String,
}

/// `{network}` in a path.
#[derive(Debug, JsonSchema)]
#[expect(dead_code, reason = "a schema for the API description only")]
pub(super) struct NetworkPath {
    /// A configured network's name (`[networks.<name>]`).
    network: String,
}

/// One operation on a route: its id, its tag, what `describe` says of it,
/// and the refusals any route of a listener can get.
pub(super) fn op(
    method: &'static str,
    tag: &str,
    id: &str,
    describe: impl FnOnce(TransformOperation<'_>) -> TransformOperation<'_>,
) -> ApiMethodDocs {
    let mut operation = Operation::default();
    let _ = describe(TransformOperation::new(&mut operation).id(id).tag(tag))
        .security_requirement(MTLS)
        .problem(
            400,
            "The body could not be read (`unreadable-body`), or the query parameters do not \
             fit the operation (`bad-parameter`).",
        )
        .problem(
            403,
            "The client certificate maps to no principal, or the principal's role and grants do \
             not allow this (`forbidden`; the detail names the rule). Audited.",
        )
        .problem(
            408,
            "The body did not arrive within the listener's `body-timeout-ms` (`body-timeout`).",
        )
        .problem(
            413,
            "The body is larger than the listener's `max-body-bytes` (`body-too-large`).",
        )
        .problem(
            429,
            "Over the principal's request rate (`rate-limited`); `Retry-After` says when to \
             retry.",
        )
        .problem(
            431,
            "The request line and headers exceed 64 KiB (`headers-too-large`).",
        )
        .problem(
            503,
            "At the listener's `max-concurrent` or the principal's share of it, over \
             `request-timeout-ms`, or the store or audit trail unavailable; nothing was \
             decided, retry after `Retry-After` seconds.",
        );
    ApiMethodDocs::new(method, operation)
}

/// Answers and bodies the typed extractors cannot state.
pub(super) trait Describe: Sized {
    /// A problem (`application/problem+json`) answered with `status`.
    fn problem(self, status: u16, when: &str) -> Self;
    /// A body that is not JSON (`media`), described in words.
    fn raw_body(self, media: &str, description: &str) -> Self;
    /// An answer that is not JSON: `media`, a string.
    fn raw_answer(self, status: u16, media: &str, description: &str) -> Self;
}

impl Describe for TransformOperation<'_> {
    fn problem(mut self, status: u16, when: &str) -> Self {
        let responses = &mut self
            .inner_mut()
            .responses
            .get_or_insert_with(Default::default)
            .responses;
        let code = StatusCode::Code(status);
        // A route's own reason for a status goes first; the edge's is added.
        let description = match responses.get(&code) {
            Some(ReferenceOr::Item(r)) => format!("{} {when}", r.description),
            _ => when.to_string(),
        };
        responses.insert(
            code,
            ReferenceOr::Item(problem_response(status, description)),
        );
        self
    }

    fn raw_body(mut self, media: &str, description: &str) -> Self {
        let mut body = RequestBody {
            description: Some(description.to_string()),
            required: true,
            ..Default::default()
        };
        body.content.insert(media.to_string(), any_media(media));
        self.inner_mut().request_body = Some(ReferenceOr::Item(body));
        self
    }

    fn raw_answer(mut self, status: u16, media: &str, description: &str) -> Self {
        let mut answer = Response {
            description: description.to_string(),
            ..Default::default()
        };
        answer.content.insert(media.to_string(), any_media(media));
        self.inner_mut()
            .responses
            .get_or_insert_with(Default::default)
            .responses
            .insert(StatusCode::Code(status), ReferenceOr::Item(answer));
        self
    }
}

/// schemars bounds an unsigned integer below (`minimum: 0`) but not above,
/// so a client (or a fuzzer) would think `job=2^70` valid where the gateway
/// answers 400: state the type's maximum beside its `format`.
fn bound_unsigned(v: &mut Value) {
    match v {
        Value::Object(map) => {
            let max = match map.get("format").and_then(Value::as_str) {
                Some("uint8") => Some(u64::from(u8::MAX)),
                Some("uint16") => Some(u64::from(u16::MAX)),
                Some("uint32") => Some(u64::from(u32::MAX)),
                Some("uint64" | "uint") => Some(u64::MAX),
                _ => None,
            };
            if let Some(max) = max
                && !map.contains_key("maximum")
            {
                map.insert("maximum".into(), Value::from(max));
            }
            map.values_mut().for_each(bound_unsigned);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_unsigned),
        _ => {}
    }
}

/// A media type's schema: text is a string, bytes are binary, anything
/// else any value.
fn any_media(media: &str) -> MediaType {
    let schema = if media.starts_with("text/") || media == "application/x-ndjson" {
        schemars::json_schema!({ "type": "string" })
    } else if media == "application/octet-stream" {
        schemars::json_schema!({ "type": "string", "format": "binary" })
    } else {
        schemars::json_schema!({})
    };
    media_of(schema)
}

/// A media type with this schema and nothing else.
fn media_of(json_schema: schemars::Schema) -> MediaType {
    MediaType {
        schema: Some(SchemaObject {
            json_schema,
            example: None,
            external_docs: None,
        }),
        ..Default::default()
    }
}

/// An `application/problem+json` answer (RFC 9457), with `Retry-After` when
/// the status asks the client to come back.
fn problem_response(status: u16, description: String) -> Response {
    let schema = in_context(|ctx| ctx.schema.subschema_for::<crate::wire::ProblemBody>());
    let mut answer = Response {
        description,
        ..Default::default()
    };
    answer
        .content
        .insert("application/problem+json".into(), media_of(schema));
    if matches!(status, 429 | 503) {
        answer.headers.insert(
            "Retry-After".into(),
            ReferenceOr::Item(Header {
                description: Some("Seconds to wait before retrying.".into()),
                style: HeaderStyle::Simple,
                required: false,
                deprecated: None,
                format: ParameterSchemaOrContent::Schema(SchemaObject {
                    json_schema: schemars::json_schema!({ "type": "integer", "minimum": 0 }),
                    example: None,
                    external_docs: None,
                }),
                example: None,
                examples: Default::default(),
                extensions: Default::default(),
            }),
        );
    }
    answer
}

/// The listener's routes with their description finished, plus
/// `GET /openapi.json` answering it to any principal of the listener.
pub(super) fn finish(routes: ApiRouter<AppState>, edge: Edge) -> (Router<AppState>, Value) {
    let routes = routes.api_route_docs(
        "/openapi.json",
        op("get", edge.name(), "getApiDescription", |o| {
            o.summary("This listener's API description (OpenAPI 3.1)")
                .raw_answer(200, "application/json", "This document.")
        }),
    );
    let mut api = OpenApi {
        info: Info {
            title: edge.title().into(),
            description: Some(edge.description().into()),
            version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let router = routes.finish_api(&mut api);
    let components = api.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        MTLS.into(),
        ReferenceOr::Item(SecurityScheme::MutualTls {
            description: Some(
                "Every listener is mTLS: the client certificate, verified against the \
                 listener's CAs (and CRLs), maps to a principal (`[principals.<name>]`) whose \
                 role and grants decide each operation."
                    .into(),
            ),
            extensions: Default::default(),
        }),
    );
    api.tags = vec![Tag {
        name: edge.name().into(),
        description: Some(edge.description().into()),
        ..Default::default()
    }];
    let mut api = serde_json::to_value(&api).unwrap_or_default();
    bound_unsigned(&mut api);
    let body = Arc::new(serde_json::to_vec_pretty(&api).unwrap_or_default());
    let router = router.route(
        "/openapi.json",
        get(
            move |State(state): State<AppState>, Extension(caller): Extension<Arc<Caller>>| {
                let body = Arc::clone(&body);
                async move {
                    state
                        .authorize(&caller, Action::ReadApiDescription, None, None)
                        .await?;
                    Ok::<_, Problem>(
                        (
                            [(http::header::CONTENT_TYPE, "application/json")],
                            body.to_vec(),
                        )
                            .into_response(),
                    )
                }
            },
        ),
    );
    (router, api)
}

#[cfg(test)]
mod tests {
    use super::Edge;
    use crate::http::api_description;
    use serde_json::Value;
    use std::path::PathBuf;

    fn committed(edge: Edge) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../docs/openapi")
            .join(format!("{}.json", edge.name()))
    }

    fn generated(edge: Edge) -> String {
        let api = api_description(edge);
        let mut text = serde_json::to_string_pretty(&api).expect("a JSON value serializes");
        text.push('\n');
        text
    }

    /// `YIWANG_BLESS=1 cargo test -p yiwang-gateway --lib openapi` rewrites
    /// docs/openapi/*.json after a deliberate API change.
    #[test]
    fn the_committed_api_descriptions_are_the_generated_ones() {
        let bless = std::env::var_os("YIWANG_BLESS").is_some_and(|v| v == "1");
        let mut differ = Vec::new();
        for edge in Edge::ALL {
            let (path, got) = (committed(edge), generated(edge));
            if bless {
                std::fs::write(&path, &got).expect("write docs/openapi");
                continue;
            }
            let want = std::fs::read_to_string(&path).unwrap_or_default();
            if want != got {
                differ.push(format!(
                    "{} (- committed, + generated):\n{}",
                    path.display(),
                    crate::fixture::diff(&want, &got)
                ));
            }
        }
        assert!(
            differ.is_empty(),
            "API descriptions differ (YIWANG_BLESS=1 rewrites them):\n\n{}",
            differ.join("\n")
        );
    }

    fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for (method, op) in item.as_object().into_iter().flatten() {
                out.push((path.clone(), method.clone(), op));
            }
        }
        out
    }

    #[test]
    fn every_operation_states_its_id_mtls_and_the_edge_refusals_as_problems() {
        for edge in Edge::ALL {
            let doc = api_description(edge);
            assert_eq!(doc["openapi"], "3.1.0");
            assert_eq!(
                doc["components"]["securitySchemes"]["mutualTLS"]["type"],
                "mutualTLS"
            );
            let ops = operations(&doc);
            assert!(ops.len() >= 2, "{}: {} operations", edge.name(), ops.len());
            for (path, method, op) in ops {
                let at = format!("{} {method} {path}", edge.name());
                assert!(op["operationId"].is_string(), "{at}: no operationId");
                assert_eq!(op["tags"][0], edge.name(), "{at}");
                assert_eq!(op["security"][0]["mutualTLS"], Value::Array(vec![]), "{at}");
                for status in ["400", "403", "408", "413", "429", "431", "503"] {
                    let schema = &op["responses"][status]["content"]["application/problem+json"]["schema"]
                        ["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/ProblemBody",
                        "{at}: {status} is not a problem"
                    );
                }
                assert!(
                    op["responses"]["503"]["headers"]["Retry-After"].is_object(),
                    "{at}: 503 without Retry-After"
                );
                let success = op["responses"]
                    .as_object()
                    .is_some_and(|r| r.keys().any(|k| k.starts_with('2')));
                assert!(success, "{at}: no success answer");
            }
        }
    }

    #[test]
    fn each_listener_describes_its_own_paths_only() {
        let prefixes = |edge: Edge| -> &'static [&'static str] {
            match edge {
                Edge::Intake => &["/v1/cases"],
                Edge::Callbacks => &["/v1/callbacks/"],
                Edge::Admin => &["/admin/", "/metrics", "/healthz"],
            }
        };
        for edge in Edge::ALL {
            let doc = api_description(edge);
            for path in doc["paths"].as_object().into_iter().flatten().map(|p| p.0) {
                assert!(
                    path == "/openapi.json" || prefixes(edge).iter().any(|p| path.starts_with(p)),
                    "{}: {path}",
                    edge.name()
                );
            }
        }
        let intake = api_description(Edge::Intake);
        let submit = &intake["paths"]["/v1/cases"]["post"];
        assert_eq!(
            submit["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Case",
            "the case is the unified case schema"
        );
        assert_eq!(
            submit["responses"]["202"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/AcceptedAnswer"
        );
        let limit = intake["paths"]["/v1/cases"]["get"]["parameters"]
            .as_array()
            .and_then(|p| p.iter().find(|p| p["name"] == "limit"))
            .map(|p| p["schema"]["maximum"].clone());
        assert_eq!(
            limit,
            Some(Value::from(u64::MAX)),
            "an unsigned parameter states its maximum"
        );
    }
}

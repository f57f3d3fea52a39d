//! Building HTTP replies: JSON, GB18030 XML and the HTML pages real networks answer with.

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn with_body(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    reply
}

pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    with_body(
        status,
        "application/json;charset=UTF-8",
        value.to_string().into_bytes(),
    )
}

/// XML text re-encoded to GB18030 (the declaration in `xml` must already say so).
pub(crate) fn gb18030_xml(status: StatusCode, xml: &str) -> Reply {
    let (bytes, _, _) = encoding_rs::GB18030.encode(xml);
    with_body(status, "text/xml; charset=GB18030", bytes.into_owned())
}

pub(crate) fn html(status: StatusCode, page: &str) -> Reply {
    with_body(
        status,
        "text/html; charset=UTF-8",
        page.to_owned().into_bytes(),
    )
}

/// `fail_next`: the error page a reverse proxy or app server would show.
pub(crate) fn error_page(status: StatusCode) -> Reply {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    html(
        status,
        &format!(
            "<html><head><title>{title}</title></head><body><h1>{title}</h1><hr><p>服务器错误，请稍后再试。</p></body></html>"
        ),
    )
}

/// `maintenance`: 503 with `Retry-After: 2`.
pub(crate) fn maintenance_page() -> Reply {
    let mut reply = html(
        StatusCode::SERVICE_UNAVAILABLE,
        "<html><head><title>系统维护</title></head><body><h1>系统维护中</h1><p>系统正在维护中，请稍后再试。</p></body></html>",
    );
    reply
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("2"));
    reply
}

/// `garbage_next`: 200 with HTML where the protocol body should be.
pub(crate) fn garbage_page() -> Reply {
    html(StatusCode::OK, "<html><body>系统繁忙</body></html>")
}

pub(crate) fn not_found() -> Reply {
    html(
        StatusCode::NOT_FOUND,
        "<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>",
    )
}

pub(crate) fn method_not_allowed() -> Reply {
    html(
        StatusCode::METHOD_NOT_ALLOWED,
        "<html><head><title>405 Method Not Allowed</title></head><body><h1>405 Method Not Allowed</h1></body></html>",
    )
}

pub(crate) fn payload_too_large() -> Reply {
    html(
        StatusCode::PAYLOAD_TOO_LARGE,
        "<html><head><title>413 Request Entity Too Large</title></head><body><h1>413 Request Entity Too Large</h1></body></html>",
    )
}

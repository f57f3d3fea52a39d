//! Building requests to the adapter's own network and reading replies.

use crate::bindings::yiwang::adapter::http::{self as wit, SendError};
use crate::{AdapterError, Header, HttpRequest, HttpResponse, error};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters (`A–Z a–z 0–9 - . _ ~`).
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `text` for a URL path segment or a query value: every
/// byte of its UTF-8 except RFC 3986's unreserved characters becomes `%XX`
/// (upper-case hex), so `/`, `?`, `&`, `=`, `+` and spaces cannot change the
/// URL's structure. This is also the encoding signature schemes that
/// canonicalise a query expect.
pub fn percent_encode(text: &str) -> String {
    utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// The `charset` parameter of a `Content-Type` header value
/// (`text/xml; charset="GB18030"` → `GB18030`), to pass to [`crate::text::decode_xml`].
pub fn charset(content_type: Option<&str>) -> Option<&str> {
    content_type?.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"'))
    })
}

/// A request under construction.
#[derive(Debug, Clone)]
pub struct Request(HttpRequest);

impl Request {
    /// A request with any method. `url` is a path on the network's primary
    /// endpoint (`/api/x`) or an absolute URL on one of its endpoints.
    pub fn new(method: &str, url: impl Into<String>) -> Self {
        Request(HttpRequest {
            method: method.to_string(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
    /// A POST request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new("POST", url)
    }
    /// A GET request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new("GET", url)
    }
    /// Add a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.headers.push(Header {
            name: name.to_string(),
            value: value.into(),
        });
        self
    }
    /// Set a raw body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.0.body = body.into();
        self
    }
    /// Set a JSON body and its content type.
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.header("content-type", "application/json; charset=utf-8")
            .body(value.to_string().into_bytes())
    }
    /// The request as the contract carries it.
    pub fn into_inner(self) -> HttpRequest {
        self.0
    }
    /// Send it through the host, exactly as built.
    pub fn send(self) -> Result<HttpResponse, SendError> {
        wit::send(&self.0)
    }
    /// Send it after the host fills `${secret:NAME}` placeholders (see
    /// [`crate::host::secret_placeholder`]). Only for requests built from
    /// constants, such as a login: never put case data in them.
    pub fn send_with_secrets(self) -> Result<HttpResponse, SendError> {
        wit::send_with_secrets(&self.0)
    }
}

/// Conveniences for reading a reply.
pub trait ResponseExt {
    /// The first header with this name (case-insensitive).
    fn header(&self, name: &str) -> Option<&str>;
    /// Fail with a classified error unless the status is 2xx.
    fn error_for_status(self) -> Result<HttpResponse, AdapterError>;
    /// Parse a JSON body; a body that is not JSON (an HTML error page) is
    /// ambiguous for a request that may have been acted on.
    fn json(&self) -> Result<serde_json::Value, AdapterError>;
}

impl ResponseExt for HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
    fn error_for_status(self) -> Result<HttpResponse, AdapterError> {
        match error::classify_status(self.status, self.header("retry-after")) {
            None => Ok(self),
            Some(e) => Err(e),
        }
    }
    fn json(&self) -> Result<serde_json::Value, AdapterError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            let head = String::from_utf8_lossy(&self.body[..self.body.len().min(80)]).into_owned();
            error::ambiguous(format!("reply is not JSON ({e}); it starts with {head:?}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encode_keeps_only_rfc3986_unreserved_characters() {
        assert_eq!(percent_encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(
            percent_encode("a b/c?d&e=f+g%h#i"),
            "a%20b%2Fc%3Fd%26e%3Df%2Bg%25h%23i"
        );
        // UTF-8 bytes, upper-case hex.
        assert_eq!(percent_encode("闽A·1"), "%E9%97%BDA%C2%B71");
        assert_eq!(percent_encode(""), "");
    }

    #[test]
    fn charset_is_read_from_the_content_type_parameters() {
        assert_eq!(charset(Some("text/xml; charset=GB18030")), Some("GB18030"));
        assert_eq!(charset(Some("text/xml;CharSet=\"utf-8\"")), Some("utf-8"));
        assert_eq!(charset(Some("text/xml")), None);
        assert_eq!(
            charset(Some("charset=gbk")),
            None,
            "a media type is no parameter"
        );
        assert_eq!(charset(None), None);
    }
}

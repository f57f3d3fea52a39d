//! SOAP 1.1 for WebService ministry networks (archetype 2): build and encode request envelopes, read responses and faults.
//!
//! A typical call: build the operation element with [`crate::xml::XmlWriter`], wrap and encode
//! it with [`encode_request`], send it with [`content_type`], decode the reply with
//! [`crate::text::decode_xml`] and read it with [`parse_response`].

use thiserror::Error;

use crate::text::{self, Encoding, TextError};
use crate::xml::{self, Element, XmlDoc, XmlError};

/// The SOAP 1.1 envelope namespace.
pub const SOAP11_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";

/// The SOAP 1.2 envelope namespace (recognized only to say it is not supported).
pub const SOAP12_NS: &str = "http://www.w3.org/2003/05/soap-envelope";

/// The prefix [`envelope`] binds to [`SOAP11_NS`] (Axis/CXF style).
pub const ENVELOPE_PREFIX: &str = "soapenv";

/// Errors from building or reading SOAP messages.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SoapError {
    /// The Body holds a `Fault`: the ministry reported an error.
    #[error("SOAP fault {code}: {string}")]
    Fault {
        /// `faultcode` as written, e.g. `soap:Server` (empty if the vendor omitted it).
        code: String,
        /// `faultstring`, the human-readable reason (empty if omitted).
        string: String,
        /// `faultactor`, if present.
        actor: Option<String>,
        /// The `detail` element, if present (its children are vendor-specific).
        detail: Option<Box<Element>>,
    },
    /// The root element is not a SOAP 1.1 `Envelope`.
    #[error(
        "not a SOAP 1.1 envelope: root element is <{found}> in namespace {}",
        namespace.as_deref().unwrap_or("(none)")
    )]
    NotEnvelope {
        /// The root element's local name.
        found: String,
        /// Its namespace (a SOAP 1.2 reply shows [`SOAP12_NS`] here).
        namespace: Option<String>,
    },
    /// The envelope has no `Body`.
    #[error("the SOAP envelope has no Body")]
    MissingBody,
    /// The `Body` holds no element.
    #[error("the SOAP Body is empty")]
    EmptyBody,
    /// An `extra_ns` prefix passed to [`envelope`] cannot be used.
    #[error("namespace prefix {prefix:?} cannot be declared on the envelope: {reason}")]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// Why not.
        reason: &'static str,
    },
    /// The XML itself is malformed or hostile.
    #[error(transparent)]
    Xml(#[from] XmlError),
    /// The request holds a character the chosen encoding cannot represent.
    #[error(transparent)]
    Text(#[from] TextError),
}

/// Wraps `body_inner_xml` (trusted XML this adapter built, e.g. with
/// [`XmlWriter`](crate::xml::XmlWriter)) in a SOAP 1.1 envelope with prefix `soapenv`, declaring
/// each `(prefix, uri)` of `extra_ns` on the envelope; an empty prefix declares the default
/// namespace. No `Header` is written (it is optional in SOAP 1.1) and no XML declaration.
///
/// ```
/// use yiwang_adapter_sdk::soap::envelope;
/// let env = envelope("<ws:ping/>", &[("ws", "http://ws.example/")]).unwrap();
/// assert_eq!(
///     env,
///     r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ws="http://ws.example/"><soapenv:Body><ws:ping/></soapenv:Body></soapenv:Envelope>"#
/// );
/// ```
pub fn envelope(body_inner_xml: &str, extra_ns: &[(&str, &str)]) -> Result<String, SoapError> {
    build_envelope(None, body_inner_xml, extra_ns)
}

/// [`envelope`] with a `soapenv:Header` holding `header_inner_xml` (trusted XML, e.g. a
/// WS-Security header from [`crate::wsse::UsernameToken::header`]) before the Body.
///
/// ```
/// use yiwang_adapter_sdk::soap::envelope_with_header;
/// let env = envelope_with_header("<h:t xmlns:h=\"urn:h\">1</h:t>", "<ws:ping/>", &[("ws", "urn:ws")]).unwrap();
/// assert!(env.contains(r#"<soapenv:Header><h:t xmlns:h="urn:h">1</h:t></soapenv:Header><soapenv:Body><ws:ping/></soapenv:Body>"#));
/// ```
pub fn envelope_with_header(
    header_inner_xml: &str,
    body_inner_xml: &str,
    extra_ns: &[(&str, &str)],
) -> Result<String, SoapError> {
    build_envelope(Some(header_inner_xml), body_inner_xml, extra_ns)
}

fn build_envelope(
    header_inner_xml: Option<&str>,
    body_inner_xml: &str,
    extra_ns: &[(&str, &str)],
) -> Result<String, SoapError> {
    let mut w = xml::XmlWriter::new();
    w.start("soapenv:Envelope").attr("xmlns:soapenv", SOAP11_NS);
    let mut seen: Vec<&str> = vec![ENVELOPE_PREFIX];
    for (prefix, uri) in extra_ns {
        let invalid = |reason| SoapError::InvalidPrefix {
            prefix: (*prefix).to_owned(),
            reason,
        };
        if seen.contains(prefix) {
            return Err(invalid(
                "declared twice (soapenv is reserved for the envelope)",
            ));
        }
        if !prefix.is_empty() && (prefix.contains(':') || !xml::is_valid_name(prefix)) {
            return Err(invalid("not a valid XML name without ':'"));
        }
        if prefix.to_ascii_lowercase().starts_with("xml") {
            return Err(invalid("prefixes starting with 'xml' are reserved"));
        }
        seen.push(prefix);
        if prefix.is_empty() {
            w.attr("xmlns", uri);
        } else {
            w.attr(&format!("xmlns:{prefix}"), uri);
        }
    }
    if let Some(header) = header_inner_xml {
        w.start("soapenv:Header").raw(header).end("soapenv:Header");
    }
    w.start("soapenv:Body")
        .raw(body_inner_xml)
        .end("soapenv:Body")
        .end("soapenv:Envelope");
    Ok(w.finish()?)
}

/// [`envelope`] with no extra namespaces, preceded by the XML declaration for `encoding`
/// (`<?xml version="1.0" encoding="GB18030"?>`) and encoded in it. Fails with
/// [`SoapError::Text`], naming the character and its index within `body_inner_xml`, if the
/// body holds one `encoding` cannot represent (e.g. `𠀀` in GBK).
///
/// ```
/// use yiwang_adapter_sdk::{soap::encode_request, text::Encoding};
/// let bytes = encode_request("<q>张三</q>", Encoding::Gb18030).unwrap();
/// assert!(bytes.starts_with(br#"<?xml version="1.0" encoding="GB18030"?><soapenv:Envelope"#));
/// ```
pub fn encode_request(body_inner_xml: &str, encoding: Encoding) -> Result<Vec<u8>, SoapError> {
    encode_request_with_ns(body_inner_xml, &[], encoding)
}

/// [`encode_request`] with namespaces declared on the envelope, as in [`envelope`].
pub fn encode_request_with_ns(
    body_inner_xml: &str,
    extra_ns: &[(&str, &str)],
    encoding: Encoding,
) -> Result<Vec<u8>, SoapError> {
    encode_parts(None, body_inner_xml, extra_ns, encoding)
}

/// [`encode_request_with_ns`] with a `Header`, as in [`envelope_with_header`].
pub fn encode_request_with_header(
    header_inner_xml: &str,
    body_inner_xml: &str,
    extra_ns: &[(&str, &str)],
    encoding: Encoding,
) -> Result<Vec<u8>, SoapError> {
    encode_parts(Some(header_inner_xml), body_inner_xml, extra_ns, encoding)
}

fn encode_parts(
    header_inner_xml: Option<&str>,
    body_inner_xml: &str,
    extra_ns: &[(&str, &str)],
    encoding: Encoding,
) -> Result<Vec<u8>, SoapError> {
    // Encode the envelope around the body separately from the body, so that an unmappable
    // character is reported at its index within `body_inner_xml`, not within the envelope.
    let empty = build_envelope(header_inner_xml, "", extra_ns)?;
    let close = "</soapenv:Body>";
    // Attribute values are escaped, so the only raw `</soapenv:Body>` is the real one.
    let split = empty.rfind(close).unwrap_or(empty.len());
    let (head, tail) = empty.split_at(split);
    let mut bytes = xml::encode_document(head, encoding).map_err(SoapError::from_xml)?;
    bytes.extend(text::encode(body_inner_xml, encoding)?);
    bytes.extend(text::encode(tail, encoding)?);
    Ok(bytes)
}

impl SoapError {
    /// Lifts an encoding failure out of [`XmlError::Text`] so callers match one variant.
    fn from_xml(error: XmlError) -> SoapError {
        match error {
            XmlError::Text(e) => SoapError::Text(e),
            other => SoapError::Xml(other),
        }
    }
}

/// The SOAP 1.1 `Content-Type` for a request in `encoding`: `text/xml; charset=GB18030`.
/// (The `SOAPAction` header comes from the WSDL and is the adapter's business.)
pub fn content_type(encoding: Encoding) -> String {
    format!("text/xml; charset={}", encoding.label())
}

/// A successful SOAP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapBody {
    /// The `Header` element, if the response had one.
    pub header: Option<Element>,
    /// The first element inside `Body`, e.g. `<ns:SubmitCaseResponse>`.
    pub payload: Element,
}

/// Parses a SOAP 1.1 response (already decoded text) and returns the first element inside
/// `Body`, or [`SoapError::Fault`] when that element is a `Fault`.
///
/// Lenient where vendors are sloppy: an `Envelope` with no namespace at all is accepted, and
/// fault children are found by local name whether or not they carry a prefix. Strict where it
/// matters: a SOAP 1.2 or other-namespace root is [`SoapError::NotEnvelope`], and the XML
/// reader's protections (no DOCTYPE, bounded depth) apply.
///
/// Many ministry services return their real answer as an XML *string* inside the payload;
/// parse that with [`XmlDoc::parse`]`(payload.text_of("return"))`.
///
/// ```
/// use yiwang_adapter_sdk::soap::{parse_response, SoapError};
/// let ok = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>
///   <r:SubmitCaseResponse xmlns:r="urn:x"><ywh>B1</ywh></r:SubmitCaseResponse></s:Body></s:Envelope>"#;
/// assert_eq!(parse_response(ok).unwrap().payload.text_of("ywh"), Some("B1"));
/// ```
pub fn parse_response(xml: &str) -> Result<SoapBody, SoapError> {
    let root = XmlDoc::parse(xml)?.into_root();
    let in_soap11 = match root.namespace.as_deref() {
        Some(ns) => ns == SOAP11_NS,
        None => true,
    };
    if root.name != "Envelope" || !in_soap11 {
        return Err(SoapError::NotEnvelope {
            found: root.name,
            namespace: root.namespace,
        });
    }
    let mut header = None;
    let mut body = None;
    for child in root.children {
        match child.name.as_str() {
            "Header" if header.is_none() => header = Some(child),
            "Body" if body.is_none() => body = Some(child),
            _ => {}
        }
    }
    let body = body.ok_or(SoapError::MissingBody)?;
    let payload = body
        .children
        .into_iter()
        .next()
        .ok_or(SoapError::EmptyBody)?;
    if payload.name == "Fault" {
        return Err(fault(payload));
    }
    Ok(SoapBody { header, payload })
}

fn fault(fault: Element) -> SoapError {
    let text = |name: &str| fault.child(name).map(|e| e.text().to_owned());
    SoapError::Fault {
        code: text("faultcode").unwrap_or_default(),
        string: text("faultstring").unwrap_or_default(),
        actor: text("faultactor"),
        detail: fault
            .children
            .iter()
            .find(|c| c.name == "detail")
            .cloned()
            .map(Box::new),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&SoapError) -> bool;

    #[test]
    fn envelope_and_namespaces() {
        let env = envelope(
            "<submitCase><bjbh>1</bjbh></submitCase>",
            &[
                ("", "http://ws.gov/case?x=1&y=2"),
                ("xsi", "http://www.w3.org/2001/XMLSchema-instance"),
            ],
        )
        .expect("valid");
        let doc = XmlDoc::parse(&env).expect("well-formed");
        assert!(doc.is(SOAP11_NS, "Envelope"));
        let payload = doc.required("Body/submitCase").expect("payload");
        assert_eq!(
            payload.namespace.as_deref(),
            Some("http://ws.gov/case?x=1&y=2")
        );

        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("soapenv", "urn:x")], "soapenv"),
            (&[("a", "urn:x"), ("a", "urn:y")], "a"),
            (&[("a:b", "urn:x")], "a:b"),
            (&[("xmlfoo", "urn:x")], "xmlfoo"),
            (&[("1a", "urn:x")], "1a"),
        ];
        for (extra, bad) in cases {
            match envelope("<a/>", extra) {
                Err(SoapError::InvalidPrefix { prefix, .. }) => assert_eq!(prefix, *bad),
                other => panic!("{extra:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn envelope_with_header_puts_the_header_before_the_body() {
        let env = envelope_with_header("<h>1</h>", "<b/>", &[]).expect("valid");
        let doc = XmlDoc::parse(&env).expect("well-formed");
        let names: Vec<&str> = doc
            .root()
            .children
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(names, ["Header", "Body"]);
        assert_eq!(doc.root().text_of("Header/h"), Some("1"));
        // Without a header there is no Header element at all.
        assert!(!envelope("<b/>", &[]).expect("valid").contains("Header"));
        let bytes = encode_request_with_header("<h>张</h>", "<b>三</b>", &[], Encoding::Gbk)
            .expect("encodable");
        let decoded = text::decode_xml(&bytes, None).expect("decodes");
        let resp = parse_response(&decoded.text).expect("parses");
        assert_eq!(
            resp.header.as_ref().and_then(|h| h.text_of("h")),
            Some("张")
        );
        assert_eq!(resp.payload.text(), "三");
    }

    #[test]
    fn encode_request_in_each_encoding() {
        let body = "<sqrmc>深圳市腾讯计算机系统有限公司</sqrmc>";
        for enc in [Encoding::Utf8, Encoding::Gbk, Encoding::Gb18030] {
            let bytes = encode_request(body, enc).expect("encodable");
            let decl = format!(r#"<?xml version="1.0" encoding="{}"?>"#, enc.label());
            assert!(bytes.starts_with(decl.as_bytes()), "{enc}");
            let decoded = text::decode_xml(&bytes, None).expect("decodes");
            assert_eq!(decoded.encoding, enc);
            assert!(!decoded.declaration_lied());
            let resp = parse_response(&decoded.text).expect("parses as SOAP");
            assert_eq!(resp.payload.text(), "深圳市腾讯计算机系统有限公司");
        }
        assert_eq!(content_type(Encoding::Gb18030), "text/xml; charset=GB18030");
    }

    #[test]
    fn encode_request_refuses_unmappable() {
        match encode_request("<sqrmc>𠀀</sqrmc>", Encoding::Gbk) {
            Err(SoapError::Text(TextError::Unmappable {
                ch,
                index,
                encoding,
                ..
            })) => {
                assert_eq!((ch, index, encoding), ('𠀀', 7, Encoding::Gbk));
            }
            other => panic!("{other:?}"),
        }
        assert!(encode_request("<sqrmc>𠀀</sqrmc>", Encoding::Gb18030).is_ok());
    }

    #[test]
    fn parses_response_with_header() {
        let xml = r#"<?xml version="1.0" encoding="GBK"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Header><auth>t</auth></soap:Header>
  <soap:Body>
    <ns1:submitCaseResponse xmlns:ns1="http://ws.gov/">
      <return>&lt;?xml version="1.0" encoding="GBK"?&gt;&lt;result&gt;&lt;code&gt;0000&lt;/code&gt;&lt;ywh&gt;YW1&lt;/ywh&gt;&lt;/result&gt;</return>
    </ns1:submitCaseResponse>
  </soap:Body>
</soap:Envelope>"#;
        let resp = parse_response(xml).expect("ok");
        assert_eq!(resp.payload.name, "submitCaseResponse");
        assert_eq!(
            resp.header.as_ref().and_then(|h| h.text_of("auth")),
            Some("t")
        );
        // The common "XML string inside the return element" pattern.
        let inner =
            XmlDoc::parse(resp.payload.text_of("return").unwrap_or_default()).expect("inner");
        assert_eq!(inner.required_text("ywh"), Ok("YW1"));
    }

    #[test]
    fn fault_with_chinese_faultstring() {
        let xml = r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">
  <soap:Body>
    <soap:Fault>
      <faultcode>soap:Server</faultcode>
      <faultstring>办件编号重复：B2024-0001 已存在</faultstring>
      <detail><ns:err xmlns:ns="urn:gov"><code>E102</code></ns:err></detail>
    </soap:Fault>
  </soap:Body>
</soap:Envelope>"#;
        // Through the bytes path too: the reply arrives GB18030-encoded.
        let bytes = text::encode(xml, Encoding::Gb18030).expect("encodable");
        let decoded = text::decode_xml(&bytes, Some("GB18030")).expect("decodes");
        match parse_response(&decoded.text) {
            Err(SoapError::Fault {
                code,
                string,
                actor,
                detail,
            }) => {
                assert_eq!(code, "soap:Server");
                assert_eq!(string, "办件编号重复：B2024-0001 已存在");
                assert_eq!(actor, None);
                assert_eq!(
                    detail.as_ref().and_then(|d| d.text_of("err/code")),
                    Some("E102")
                );
            }
            other => panic!("{other:?}"),
        }
        let err = parse_response(xml).expect_err("fault");
        assert_eq!(
            err.to_string(),
            "SOAP fault soap:Server: 办件编号重复：B2024-0001 已存在"
        );
    }

    #[test]
    fn fault_without_detail_and_with_prefixed_children() {
        let xml = r#"<Envelope><Body><Fault><s:faultcode xmlns:s="urn:s">Client</s:faultcode><faultactor>gw</faultactor></Fault></Body></Envelope>"#;
        assert_eq!(
            parse_response(xml),
            Err(SoapError::Fault {
                code: "Client".into(),
                string: String::new(),
                actor: Some("gw".into()),
                detail: None,
            })
        );
    }

    #[test]
    fn structural_errors() {
        let cases: &[(&str, Check)] = &[
            (
                r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><a/></e:Body></e:Envelope>"#,
                |e| matches!(e, SoapError::NotEnvelope { namespace: Some(ns), .. } if ns == SOAP12_NS),
            ),
            (
                "<html><body>502 Bad Gateway</body></html>",
                |e| matches!(e, SoapError::NotEnvelope { found, .. } if found == "html"),
            ),
            (
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"/>"#,
                |e| *e == SoapError::MissingBody,
            ),
            (
                r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body> </soap:Body></soap:Envelope>"#,
                |e| *e == SoapError::EmptyBody,
            ),
            (
                r#"<!DOCTYPE x><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"/>"#,
                |e| matches!(e, SoapError::Xml(XmlError::Doctype { .. })),
            ),
            ("not xml", |e| matches!(e, SoapError::Xml(_))),
        ];
        for (input, check) in cases {
            match parse_response(input) {
                Err(e) => assert!(check(&e), "{input}: {e:?}"),
                Ok(body) => panic!("{input}: {body:?}"),
            }
        }
    }
}

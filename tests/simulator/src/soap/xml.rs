//! A small namespace-aware element tree, enough to read SOAP requests. DOCTYPE is refused
//! (no entity expansion, no external references).

use quick_xml::events::Event;
use quick_xml::name::{Namespace, ResolveResult};
use quick_xml::reader::NsReader;

/// Deeper nesting than any SOAP request here needs is treated as hostile.
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Element {
    pub ns: Option<String>,
    pub name: String,
    pub children: Vec<Element>,
    pub text: String,
    /// Attributes by local name (namespace declarations left out).
    pub attrs: Vec<(String, String)>,
}

impl Element {
    /// First child with this local name, in any namespace (requests may qualify children or not).
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Trimmed text of a child; `None` when absent or blank.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }

    /// An attribute's value by local name (`Type` of `wsse:Password`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns.as_deref() == Some(ns) && self.name == name
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum XmlError {
    #[error("DOCTYPE is not allowed")]
    DocType,
    #[error("{0}")]
    Malformed(String),
}

fn malformed(msg: impl Into<String>) -> XmlError {
    XmlError::Malformed(msg.into())
}

pub(crate) fn parse(xml: &str) -> Result<Element, XmlError> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (owned_ns(ns)?, event),
            Err(e) => {
                return Err(malformed(format!(
                    "{e} (at character offset {})",
                    reader.error_position()
                )));
            }
        };
        match event {
            Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_DEPTH => {
                return Err(malformed("elements nested too deeply"));
            }
            Event::Start(start) => stack.push(Element {
                ns,
                name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                children: Vec::new(),
                text: String::new(),
                attrs: attributes(&start)?,
            }),
            Event::Empty(start) => {
                let element = Element {
                    ns,
                    name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
                    children: Vec::new(),
                    text: String::new(),
                    attrs: attributes(&start)?,
                };
                attach(&mut stack, &mut root, element)?;
            }
            Event::End(_) => {
                let element = stack.pop().ok_or_else(|| malformed("unmatched end tag"))?;
                attach(&mut stack, &mut root, element)?;
            }
            Event::Text(text) => {
                let content = text.xml10_content().map_err(|e| malformed(e.to_string()))?;
                push_text(&mut stack, &content)?;
            }
            Event::CData(cdata) => {
                let content = cdata.decode().map_err(|e| malformed(e.to_string()))?;
                push_text(&mut stack, &content)?;
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(c)) => c,
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| malformed(e.to_string()))?;
                        match name.as_ref() {
                            "lt" => '<',
                            "gt" => '>',
                            "amp" => '&',
                            "apos" => '\'',
                            "quot" => '"',
                            other => return Err(malformed(format!("undefined entity &{other};"))),
                        }
                    }
                    Err(e) => return Err(malformed(e.to_string())),
                };
                push_text(&mut stack, resolved.encode_utf8(&mut [0; 4]))?;
            }
            Event::DocType(_) => return Err(XmlError::DocType),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("document ended inside an element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

/// Attributes by local name, values unescaped; `xmlns` declarations are left out.
fn attributes(
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Vec<(String, String)>, XmlError> {
    let mut out = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| malformed(e.to_string()))?;
        let key = a.key;
        if key.as_namespace_binding().is_some() {
            continue;
        }
        let value = a
            .unescape_value()
            .map_err(|e| malformed(e.to_string()))?
            .into_owned();
        let name = String::from_utf8_lossy(key.local_name().as_ref()).into_owned();
        out.push((name, value));
    }
    Ok(out)
}

fn owned_ns(ns: ResolveResult<'_>) -> Result<Option<String>, XmlError> {
    match ns {
        ResolveResult::Bound(Namespace(uri)) => Ok(Some(String::from_utf8_lossy(uri).into_owned())),
        ResolveResult::Unbound => Ok(None),
        ResolveResult::Unknown(prefix) => Err(malformed(format!(
            "undeclared namespace prefix {}",
            String::from_utf8_lossy(&prefix)
        ))),
    }
}

fn attach(
    stack: &mut [Element],
    root: &mut Option<Element>,
    element: Element,
) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None if root.is_none() => *root = Some(element),
        None => return Err(malformed("more than one root element")),
    }
    Ok(())
}

fn push_text(stack: &mut [Element], text: &str) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => top.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(malformed("text outside the root element")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_namespaces_text_and_references() {
        let doc = parse(
            r#"<?xml version="1.0"?><a:Env xmlns:a="urn:a"><b xmlns="urn:b"><c>x &amp; &#x4E2D;<![CDATA[<y>]]></c><d/></b></a:Env>"#,
        );
        let doc = doc.ok();
        let doc = doc.as_ref();
        assert_eq!(doc.map(|d| d.is("urn:a", "Env")), Some(true));
        let b = doc.and_then(|d| d.child("b"));
        assert_eq!(b.and_then(|b| b.ns.as_deref()), Some("urn:b"));
        assert_eq!(b.and_then(|b| b.text_of("c")), Some("x & 中<y>"));
        assert_eq!(b.and_then(|b| b.text_of("d")), None);
    }

    #[test]
    fn refuses_doctype_and_bad_documents() {
        assert_eq!(
            parse(r#"<!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>"#),
            Err(XmlError::DocType)
        );
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("<a>&nope;</a>").is_err());
        assert!(parse("<p:a/>").is_err());
        assert!(parse("<a/><b/>").is_err());
        assert!(parse("").is_err());
    }
}

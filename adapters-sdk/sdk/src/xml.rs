//! A minimal, safe XML writer and reader for ministry messages: escaped output, a small tree with path lookups, no DTDs, bounded depth.
//!
//! The reader refuses any `<!DOCTYPE …>` (so neither external entities, XXE, nor entity
//! expansion, "billion laughs", can happen: only the five predefined entities and character
//! references exist) and any document nested deeper than [`MAX_DEPTH`].

use std::ops::Deref;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use thiserror::Error;

use crate::text::{self, Encoding, TextError};

/// The deepest element nesting [`XmlDoc::parse`] accepts (the root element is depth 1).
/// SOAP envelopes of ministry messages stay under 15.
pub const MAX_DEPTH: usize = 64;

/// Errors from writing or reading XML.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum XmlError {
    /// The document is not well-formed.
    #[error("XML syntax error at byte {offset}: {message}")]
    Syntax {
        /// Byte offset in the input.
        offset: u64,
        /// What the parser found.
        message: String,
    },
    /// The document has a `<!DOCTYPE>`.
    #[error(
        "DOCTYPE at byte {offset} rejected: ministry messages need no DTD, and DTD entities enable XXE and billion-laughs attacks"
    )]
    Doctype {
        /// Byte offset of the `<!DOCTYPE`.
        offset: u64,
    },
    /// An entity reference other than the five predefined ones.
    #[error(
        "entity &{name}; at byte {offset} is not defined (only &lt; &gt; &amp; &quot; &apos; and character references are allowed)"
    )]
    UndefinedEntity {
        /// The entity name.
        name: String,
        /// Byte offset in the input.
        offset: u64,
    },
    /// Elements are nested deeper than the limit.
    #[error("element <{element}> at byte {offset} is nested deeper than the limit of {limit}")]
    TooDeep {
        /// The element that crossed the limit.
        element: String,
        /// Byte offset in the input.
        offset: u64,
        /// The limit.
        limit: usize,
    },
    /// There is no root element.
    #[error("the document has no root element")]
    NoRoot,
    /// Text or an element outside the root element.
    #[error("content outside the root element at byte {offset}")]
    ContentOutsideRoot {
        /// Byte offset in the input.
        offset: u64,
    },
    /// The input ended inside an element.
    #[error("the document ends inside <{element}>, which is never closed")]
    Unclosed {
        /// The innermost open element.
        element: String,
    },
    /// A path lookup found nothing.
    #[error("element {path} not found: <{parent}> has no child <{missing}>")]
    MissingElement {
        /// The whole path asked for.
        path: String,
        /// The last element found on the way.
        parent: String,
        /// The first path segment that was not found.
        missing: String,
    },
    /// A required element exists but holds no text.
    #[error("element {path} is empty")]
    EmptyElement {
        /// The path asked for.
        path: String,
    },
    /// [`XmlWriter`] was given an invalid element or attribute name.
    #[error("{name:?} is not a valid XML name")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// [`XmlWriter`] was given a character XML 1.0 cannot carry (e.g. U+0000).
    #[error(
        "character U+{code:04X} at character index {index} of the content of <{element}> cannot appear in XML 1.0",
        code = u32::from(*ch)
    )]
    InvalidChar {
        /// The character.
        ch: char,
        /// Its index, in characters, within the text or attribute value.
        index: usize,
        /// The element being written (`name@attr` for an attribute).
        element: String,
    },
    /// [`XmlWriter::end`] named an element that is not the innermost open one.
    #[error("end({name:?}) does not match the innermost open element {open:?}")]
    MismatchedEnd {
        /// The name passed to `end`.
        name: String,
        /// The innermost open element, if any.
        open: Option<String>,
    },
    /// [`XmlWriter::attr`] was called when no start tag was open for attributes.
    #[error("attribute {name:?} written after the content of its element had begun")]
    MisplacedAttribute {
        /// The attribute name.
        name: String,
    },
    /// An XML declaration was written or supplied in the wrong place.
    #[error("an XML declaration must come first, and only once")]
    MisplacedDeclaration,
    /// [`XmlWriter::finish`] found elements still open.
    #[error("elements left open: {}", open.join(" > "))]
    NotClosed {
        /// The open elements, outermost first.
        open: Vec<String>,
    },
    /// Encoding the document failed.
    #[error(transparent)]
    Text(#[from] TextError),
}

// ---------------------------------------------------------------------------------------------
// Writing
// ---------------------------------------------------------------------------------------------

/// Builds XML text with every value escaped.
///
/// Calls chain; the first mistake (invalid name, character XML cannot carry, mismatched end)
/// is remembered and returned by [`finish`](XmlWriter::finish), so building code stays linear.
/// Elements are always written as `<a></a>`, never `<a/>`, because some ministry parsers
/// mishandle self-closing tags.
///
/// ```
/// use yiwang_adapter_sdk::xml::XmlWriter;
/// let mut w = XmlWriter::new();
/// w.start("case").attr("version", "1.0")
///     .elem("applyname", "张三 & <Co>")
///     .cdata("note", "a]]>b")
///     .end("case");
/// assert_eq!(
///     w.finish().unwrap(),
///     r#"<case version="1.0"><applyname>张三 &amp; &lt;Co&gt;</applyname><note><![CDATA[a]]]]><![CDATA[>b]]></note></case>"#
/// );
/// ```
#[derive(Debug, Default, Clone)]
pub struct XmlWriter {
    out: String,
    open: Vec<String>,
    /// A start tag has been written without its closing `>` (attributes may still follow).
    in_start_tag: bool,
    error: Option<XmlError>,
}

impl XmlWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `<?xml version="1.0" encoding="…"?>`; must be the first call.
    pub fn declaration(&mut self, encoding: Encoding) -> &mut Self {
        if !self.out.is_empty() {
            return self.fail(XmlError::MisplacedDeclaration);
        }
        self.out.push_str(&declaration(encoding));
        self
    }

    /// Opens element `name`; attributes may follow until content is written.
    pub fn start(&mut self, name: &str) -> &mut Self {
        if !self.check_name(name) {
            return self;
        }
        self.close_start_tag();
        self.out.push('<');
        self.out.push_str(name);
        self.open.push(name.to_owned());
        self.in_start_tag = true;
        self
    }

    /// Adds an attribute to the element just started; the value is escaped (including tab
    /// and line breaks, which parsers would otherwise normalize to spaces).
    pub fn attr(&mut self, name: &str, value: &str) -> &mut Self {
        if !self.in_start_tag {
            return self.fail(XmlError::MisplacedAttribute {
                name: name.to_owned(),
            });
        }
        if !self.check_name(name) {
            return self;
        }
        let context = format!("{}@{name}", self.current());
        let Some(escaped) = self.escaped(value, true, &context) else {
            return self;
        };
        self.out.push(' ');
        self.out.push_str(name);
        self.out.push_str("=\"");
        self.out.push_str(&escaped);
        self.out.push('"');
        self
    }

    /// Writes escaped text inside the current element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        let context = self.current();
        if let Some(escaped) = self.escaped(text, false, &context) {
            self.close_start_tag();
            self.out.push_str(&escaped);
        }
        self
    }

    /// Writes `<name>text</name>` with `text` escaped.
    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        self.start(name).text(text).end(name)
    }

    /// Writes `<name>text</name>` when `text` is `Some`, nothing when `None`.
    pub fn elem_opt(&mut self, name: &str, text: Option<&str>) -> &mut Self {
        match text {
            Some(text) => self.elem(name, text),
            None => self,
        }
    }

    /// Writes `<name><![CDATA[text]]></name>`; a `]]>` inside `text` is split across two
    /// CDATA sections so it cannot end the section early.
    pub fn cdata(&mut self, name: &str, text: &str) -> &mut Self {
        self.start(name).cdata_text(text).end(name)
    }

    /// Writes a CDATA section inside the current element.
    pub fn cdata_text(&mut self, text: &str) -> &mut Self {
        let context = self.current();
        if let Some((index, ch)) = text.chars().enumerate().find(|(_, c)| !is_xml_char(*c)) {
            return self.fail(XmlError::InvalidChar {
                ch,
                index,
                element: context,
            });
        }
        self.close_start_tag();
        self.out.push_str("<![CDATA[");
        self.out.push_str(&text.replace("]]>", "]]]]><![CDATA[>"));
        self.out.push_str("]]>");
        self
    }

    /// Inserts `xml` verbatim. For fragments this code built and trusts (e.g. one
    /// `XmlWriter`'s output inside another); never for input from outside.
    pub fn raw(&mut self, xml: &str) -> &mut Self {
        self.close_start_tag();
        self.out.push_str(xml);
        self
    }

    /// Closes element `name`, which must be the innermost open element.
    pub fn end(&mut self, name: &str) -> &mut Self {
        if self.open.last().map(String::as_str) != Some(name) {
            let open = self.open.last().cloned();
            return self.fail(XmlError::MismatchedEnd {
                name: name.to_owned(),
                open,
            });
        }
        self.open.pop();
        self.close_start_tag();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
        self
    }

    /// The XML written, or the first mistake made while writing it.
    pub fn finish(self) -> Result<String, XmlError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        if !self.open.is_empty() {
            return Err(XmlError::NotClosed { open: self.open });
        }
        Ok(self.out)
    }

    fn current(&self) -> String {
        self.open.last().cloned().unwrap_or_default()
    }

    fn fail(&mut self, error: XmlError) -> &mut Self {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self
    }

    fn check_name(&mut self, name: &str) -> bool {
        if is_valid_name(name) {
            true
        } else {
            self.fail(XmlError::InvalidName {
                name: name.to_owned(),
            });
            false
        }
    }

    fn close_start_tag(&mut self) {
        if self.in_start_tag {
            self.out.push('>');
            self.in_start_tag = false;
        }
    }

    fn escaped(&mut self, value: &str, attribute: bool, context: &str) -> Option<String> {
        match escape(value, attribute) {
            Ok(s) => Some(s),
            Err((index, ch)) => {
                self.fail(XmlError::InvalidChar {
                    ch,
                    index,
                    element: context.to_owned(),
                });
                None
            }
        }
    }
}

/// `<?xml version="1.0" encoding="GB18030"?>` for `encoding`.
pub fn declaration(encoding: Encoding) -> String {
    format!(r#"<?xml version="1.0" encoding="{}"?>"#, encoding.label())
}

/// Prepends the XML declaration for `encoding` to `xml` and encodes the whole in it,
/// failing (naming the character and its index within `xml`) if `xml` holds one the encoding
/// cannot represent. `xml` must not carry its own declaration.
///
/// ```
/// use yiwang_adapter_sdk::{text::Encoding, xml::encode_document};
/// let bytes = encode_document("<n>中</n>", Encoding::Gbk).unwrap();
/// assert_eq!(bytes, b"<?xml version=\"1.0\" encoding=\"GBK\"?><n>\xD6\xD0</n>");
/// ```
pub fn encode_document(xml: &str, encoding: Encoding) -> Result<Vec<u8>, XmlError> {
    if xml
        .trim_start_matches('\u{FEFF}')
        .trim_start()
        .starts_with("<?xml")
    {
        return Err(XmlError::MisplacedDeclaration);
    }
    let mut bytes = text::encode(&declaration(encoding), encoding)?;
    bytes.extend(text::encode(xml, encoding)?);
    Ok(bytes)
}

/// Escapes `& < > " '` (and, in attributes, tab/LF/CR; in text, CR) for XML 1.0.
///
/// Fails with (character index, character) on a character XML 1.0 cannot carry at all.
///
/// ```
/// use yiwang_adapter_sdk::xml::escape;
/// assert_eq!(escape(r#"<&"'>"#, false).unwrap(), "&lt;&amp;&quot;&apos;&gt;");
/// ```
pub fn escape(value: &str, attribute: bool) -> Result<String, (usize, char)> {
    let mut out = String::with_capacity(value.len() + value.len() / 8);
    for (index, ch) in value.chars().enumerate() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Parsers turn a raw CR (or CRLF) into LF, and whitespace in attributes into
            // spaces; character references survive both.
            '\r' => out.push_str("&#13;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\t' if attribute => out.push_str("&#9;"),
            c if is_xml_char(c) => out.push(c),
            c => return Err((index, c)),
        }
    }
    Ok(out)
}

/// XML 1.0 `Char` (Rust `char`s exclude surrogates already).
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A conservative XML name check: a letter (any script), `_` or `:` first, then letters,
/// digits, `_ - . :`. Chinese element names (`<办件编号>`) are valid.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_alphabetic() || c == '_' || c == ':' => {}
        _ => return false,
    }
    chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// An attribute as written: qualified name (`xsi:type`) and unescaped value. Namespace
/// declarations (`xmlns`, `xmlns:p`) are not kept as attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The name as written, prefix included.
    pub name: String,
    /// The unescaped value.
    pub value: String,
}

/// An element of a parsed document.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The local name, prefix stripped (`Envelope` for `<soap:Envelope>`).
    pub name: String,
    /// The prefix as written, if any (`soap`).
    pub prefix: Option<String>,
    /// The namespace URI the element is in, if any. An undeclared prefix leaves it `None`
    /// rather than failing: vendor XML is sloppy about declarations.
    pub namespace: Option<String>,
    /// The attributes, in document order.
    pub attrs: Vec<Attribute>,
    /// The child elements, in document order.
    pub children: Vec<Element>,
    /// The element's own text: all text and CDATA directly inside it, concatenated,
    /// unescaped, untrimmed (children's text is not included).
    pub text: String,
}

impl Element {
    /// The first child with local name `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// All children with local name `name`.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The first child element, whatever its name.
    pub fn first_child(&self) -> Option<&Element> {
        self.children.first()
    }

    /// The value of attribute `name`, matched against the qualified name as written or, failing
    /// that, its local part (`attr("type")` finds `xsi:type`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.name == name)
            .or_else(|| {
                self.attrs
                    .iter()
                    .find(|a| a.name.rsplit(':').next() == Some(name))
            })
            .map(|a| a.value.as_str())
    }

    /// The element's text with surrounding whitespace removed.
    pub fn text(&self) -> &str {
        self.text.trim()
    }

    /// Whether this element has local name `name` in namespace `namespace`.
    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == Some(namespace)
    }

    /// Follows a `/`-separated path of local names from this element (the first segment is a
    /// child of `self`), taking the first match at each step. Empty segments are ignored.
    pub fn find(&self, path: &str) -> Option<&Element> {
        self.required(path).ok()
    }

    /// Like [`find`](Element::find), but the error names the path and the missing segment.
    pub fn required(&self, path: &str) -> Result<&Element, XmlError> {
        let mut here = self;
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            here = here
                .child(segment)
                .ok_or_else(|| XmlError::MissingElement {
                    path: path.to_owned(),
                    parent: here.name.clone(),
                    missing: segment.to_owned(),
                })?;
        }
        Ok(here)
    }

    /// The trimmed text at `path`, if the element exists.
    ///
    /// ```
    /// use yiwang_adapter_sdk::xml::XmlDoc;
    /// let doc = XmlDoc::parse("<r><a><b> 42 </b></a></r>").unwrap();
    /// assert_eq!(doc.text_of("a/b"), Some("42"));
    /// assert_eq!(doc.text_of("a/c"), None);
    /// ```
    pub fn text_of(&self, path: &str) -> Option<&str> {
        self.find(path).map(Element::text)
    }

    /// The trimmed text at `path`; an error names the path when the element is missing or
    /// its text is empty.
    ///
    /// ```
    /// use yiwang_adapter_sdk::xml::XmlDoc;
    /// let doc = XmlDoc::parse("<Envelope><Body><R><ywh>B1</ywh></R></Body></Envelope>").unwrap();
    /// assert_eq!(doc.required_text("Body/R/ywh").unwrap(), "B1");
    /// let err = doc.required_text("Body/R/bjbh").unwrap_err();
    /// assert_eq!(err.to_string(), "element Body/R/bjbh not found: <R> has no child <bjbh>");
    /// ```
    pub fn required_text(&self, path: &str) -> Result<&str, XmlError> {
        let text = self.required(path)?.text();
        if text.is_empty() {
            return Err(XmlError::EmptyElement {
                path: path.to_owned(),
            });
        }
        Ok(text)
    }
}

/// A parsed XML document: a tree of [`Element`]s. Dereferences to its root element, so
/// `doc.text_of("Body/…")` reads paths starting below the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlDoc {
    root: Element,
}

impl Deref for XmlDoc {
    type Target = Element;

    fn deref(&self) -> &Element {
        &self.root
    }
}

impl XmlDoc {
    /// Parses `xml` (already decoded: see [`crate::text::decode_xml`]) with the default depth
    /// limit [`MAX_DEPTH`]. An XML declaration is allowed and its `encoding` ignored.
    ///
    /// ```
    /// use yiwang_adapter_sdk::xml::{XmlDoc, XmlError};
    /// let doc = XmlDoc::parse(r#"<s:E xmlns:s="urn:x"><a k="v">1 &amp; 2</a></s:E>"#).unwrap();
    /// assert_eq!(doc.name, "E");
    /// assert_eq!(doc.namespace.as_deref(), Some("urn:x"));
    /// assert_eq!(doc.text_of("a"), Some("1 & 2"));
    /// let bomb = r#"<!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>"#;
    /// assert!(matches!(XmlDoc::parse(bomb), Err(XmlError::Doctype { .. })));
    /// ```
    pub fn parse(xml: &str) -> Result<XmlDoc, XmlError> {
        Self::parse_with_max_depth(xml, MAX_DEPTH)
    }

    /// Parses with a custom nesting limit (the root element is depth 1).
    pub fn parse_with_max_depth(xml: &str, max_depth: usize) -> Result<XmlDoc, XmlError> {
        parse_tree(xml, max_depth).map(|root| XmlDoc { root })
    }

    /// The root element.
    pub fn root(&self) -> &Element {
        &self.root
    }

    /// Takes the root element out.
    pub fn into_root(self) -> Element {
        self.root
    }
}

fn utf8(bytes: &[u8]) -> String {
    // The reader reads from a &str, so names are valid UTF-8; lossy only as a formality.
    String::from_utf8_lossy(bytes).into_owned()
}

fn namespace_of(resolved: &ResolveResult<'_>) -> Option<String> {
    match resolved {
        // The resolver hands back the attribute value as written, still escaped.
        ResolveResult::Bound(ns) => {
            let raw = utf8(ns.0);
            Some(match quick_xml::escape::unescape(&raw) {
                Ok(unescaped) => unescaped.into_owned(),
                Err(_) => raw,
            })
        }
        ResolveResult::Unbound | ResolveResult::Unknown(_) => None,
    }
}

fn syntax(offset: u64, error: impl std::fmt::Display) -> XmlError {
    XmlError::Syntax {
        offset,
        message: error.to_string(),
    }
}

fn parse_tree(xml: &str, max_depth: usize) -> Result<Element, XmlError> {
    // A BOM that survived decoding would otherwise count as text outside the root.
    let xml = xml.strip_prefix('\u{FEFF}').unwrap_or(xml);
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;

    loop {
        let offset = reader.buffer_position();
        let (namespace, event) = match reader.read_resolved_event() {
            Ok((resolved, event)) => (namespace_of(&resolved), event),
            Err(e) => return Err(syntax(reader.error_position(), e)),
        };
        match event {
            Event::Start(ref start) | Event::Empty(ref start) => {
                let name = utf8(start.local_name().as_ref());
                if root.is_some() {
                    return Err(XmlError::ContentOutsideRoot { offset });
                }
                if stack.len() >= max_depth {
                    return Err(XmlError::TooDeep {
                        element: name,
                        offset,
                        limit: max_depth,
                    });
                }
                let mut attrs = Vec::new();
                for attr in start.attributes() {
                    let attr = attr.map_err(|e| syntax(offset, e))?;
                    let key = attr.key.as_ref();
                    if key == b"xmlns" || key.starts_with(b"xmlns:") {
                        continue;
                    }
                    let value = attr
                        .decode_and_unescape_value(reader.decoder())
                        .map_err(|e| syntax(offset, e))?;
                    attrs.push(Attribute {
                        name: utf8(key),
                        value: value.into_owned(),
                    });
                }
                let element = Element {
                    name,
                    prefix: start.name().prefix().map(|p| utf8(p.as_ref())),
                    namespace,
                    attrs,
                    children: Vec::new(),
                    text: String::new(),
                };
                if matches!(event, Event::Start(_)) {
                    stack.push(element);
                } else {
                    attach(&mut stack, &mut root, element);
                }
            }
            Event::End(_) => {
                // quick-xml has already checked that the end tag matches.
                if let Some(element) = stack.pop() {
                    attach(&mut stack, &mut root, element);
                }
            }
            Event::Text(text) => {
                let content = text.xml10_content().map_err(|e| syntax(offset, e))?;
                push_text(&mut stack, &content, offset)?;
            }
            Event::CData(cdata) => {
                let content = cdata.xml10_content().map_err(|e| syntax(offset, e))?;
                match stack.last_mut() {
                    Some(top) => top.text.push_str(&content),
                    None => return Err(XmlError::ContentOutsideRoot { offset }),
                }
            }
            Event::GeneralRef(reference) => {
                let resolved = match reference.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => {
                        let name = reference.decode().map_err(|e| syntax(offset, e))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_owned(),
                            None => {
                                return Err(XmlError::UndefinedEntity {
                                    name: name.into_owned(),
                                    offset,
                                });
                            }
                        }
                    }
                    Err(e) => return Err(syntax(offset, e)),
                };
                push_text(&mut stack, &resolved, offset)?;
            }
            Event::DocType(_) => return Err(XmlError::Doctype { offset }),
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if let Some(open) = stack.pop() {
        return Err(XmlError::Unclosed { element: open.name });
    }
    root.ok_or(XmlError::NoRoot)
}

fn attach(stack: &mut [Element], root: &mut Option<Element>, element: Element) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *root = Some(element),
    }
}

fn push_text(stack: &mut [Element], text: &str, offset: u64) -> Result<(), XmlError> {
    match stack.last_mut() {
        Some(top) => top.text.push_str(text),
        None if text.trim().is_empty() => {}
        None => return Err(XmlError::ContentOutsideRoot { offset }),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type Check = fn(&XmlError) -> bool;

    #[test]
    fn escaping() {
        let cases = [
            (r#"<&"'>"#, false, "&lt;&amp;&quot;&apos;&gt;"),
            (r#"<&"'>"#, true, "&lt;&amp;&quot;&apos;&gt;"),
            ("a\tb\nc\rd", false, "a\tb\nc&#13;d"),
            ("a\tb\nc\rd", true, "a&#9;b&#10;c&#13;d"),
            (
                "深圳市腾讯计算机系统有限公司",
                false,
                "深圳市腾讯计算机系统有限公司",
            ),
        ];
        for (input, attribute, want) in cases {
            assert_eq!(escape(input, attribute), Ok(want.to_owned()), "{input:?}");
        }
        assert_eq!(escape("ab\u{0}", false), Err((2, '\u{0}')));
        assert_eq!(escape("\u{FFFE}", true), Err((0, '\u{FFFE}')));
    }

    #[test]
    fn writer_output_and_round_trip() {
        let tricky = "A&B <Co> \"q\" 'a' ]]> \r\n end";
        let mut w = XmlWriter::new();
        w.declaration(Encoding::Gb18030)
            .start("ns1:submitCase")
            .attr("xmlns:ns1", "http://example.invalid/ws?a=1&b=2")
            .attr("note", tricky)
            .elem("sqrmc", "深圳市腾讯计算机系统有限公司")
            .elem("bz", tricky)
            .cdata("raw", tricky)
            .elem_opt("absent", None)
            .elem("empty", "")
            .end("ns1:submitCase");
        let xml = w.finish().expect("valid");
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="GB18030"?><ns1:submitCase xmlns:ns1="http://example.invalid/ws?a=1&amp;b=2" note=""#));
        assert!(xml.contains("<empty></empty>"));
        assert!(!xml.contains("absent"));

        let doc = XmlDoc::parse(&xml).expect("parses its own output");
        assert_eq!(doc.name, "submitCase");
        assert_eq!(doc.prefix.as_deref(), Some("ns1"));
        assert_eq!(
            doc.namespace.as_deref(),
            Some("http://example.invalid/ws?a=1&b=2")
        );
        assert_eq!(doc.attr("note"), Some(tricky));
        assert_eq!(doc.required("bz").map(|e| e.text.as_str()), Ok(tricky));
        // CDATA cannot protect a CR from end-of-line normalization.
        assert_eq!(
            doc.required("raw").map(|e| e.text.as_str()),
            Ok(tricky.replace("\r\n", "\n").as_str())
        );
        assert_eq!(doc.text_of("sqrmc"), Some("深圳市腾讯计算机系统有限公司"));
        assert_eq!(doc.text_of("empty"), Some(""));
    }

    #[test]
    fn writer_mistakes() {
        type Build = fn(&mut XmlWriter);
        let cases: &[(&str, Build, XmlError)] = &[
            (
                "bad element name",
                |w| {
                    w.elem("a b", "x");
                },
                XmlError::InvalidName { name: "a b".into() },
            ),
            (
                "name starting with a digit",
                |w| {
                    w.start("1a");
                },
                XmlError::InvalidName { name: "1a".into() },
            ),
            (
                "bad attribute name",
                |w| {
                    w.start("a").attr("x=\"", "v").end("a");
                },
                XmlError::InvalidName {
                    name: "x=\"".into(),
                },
            ),
            (
                "NUL in text",
                |w| {
                    w.elem("bjbh", "12\u{0}3");
                },
                XmlError::InvalidChar {
                    ch: '\u{0}',
                    index: 2,
                    element: "bjbh".into(),
                },
            ),
            (
                "control char in attribute",
                |w| {
                    w.start("a").attr("k", "\u{1}").end("a");
                },
                XmlError::InvalidChar {
                    ch: '\u{1}',
                    index: 0,
                    element: "a@k".into(),
                },
            ),
            (
                "mismatched end",
                |w| {
                    w.start("a").start("b").end("a");
                },
                XmlError::MismatchedEnd {
                    name: "a".into(),
                    open: Some("b".into()),
                },
            ),
            (
                "attribute after content",
                |w| {
                    w.start("a").text("x").attr("k", "v").end("a");
                },
                XmlError::MisplacedAttribute { name: "k".into() },
            ),
            (
                "late declaration",
                |w| {
                    w.elem("a", "").declaration(Encoding::Utf8);
                },
                XmlError::MisplacedDeclaration,
            ),
            (
                "left open",
                |w| {
                    w.start("a").start("b");
                },
                XmlError::NotClosed {
                    open: vec!["a".into(), "b".into()],
                },
            ),
        ];
        for (name, build, want) in cases {
            let mut w = XmlWriter::new();
            build(&mut w);
            assert_eq!(w.finish().as_ref(), Err(want), "{name}");
        }
    }

    #[test]
    fn chinese_element_names_are_valid() {
        let mut w = XmlWriter::new();
        w.elem("办件编号", "B1");
        assert_eq!(w.finish(), Ok("<办件编号>B1</办件编号>".to_owned()));
    }

    #[test]
    fn encode_document_gbk() {
        let bytes = encode_document("<n>深圳</n>", Encoding::Gbk).expect("encodable");
        let decoded = text::decode_xml(&bytes, None).expect("decodes");
        assert_eq!(decoded.encoding, Encoding::Gbk);
        assert!(decoded.text.ends_with("<n>深圳</n>"));
        assert!(matches!(
            encode_document("<n>𠀀</n>", Encoding::Gbk),
            Err(XmlError::Text(TextError::Unmappable {
                ch: '𠀀',
                index: 3,
                ..
            }))
        ));
        assert_eq!(
            encode_document("<?xml version=\"1.0\"?><n/>", Encoding::Utf8),
            Err(XmlError::MisplacedDeclaration)
        );
    }

    const RESPONSE: &str = r#"<?xml version="1.0" encoding="GB18030"?>
<!-- a comment -->
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:ns="urn:case">
  <soapenv:Body>
    <ns:SubmitCaseResponse status="ok" xsi:type="t">
      <ns:ywh> YW2024-001 </ns:ywh>
      <item>1</item><item>2</item><item><![CDATA[<3>]]></item>
      <empty/>
      <mixed>a&lt;b&#x4E2D;&#25991;</mixed>
    </ns:SubmitCaseResponse>
  </soapenv:Body>
</soapenv:Envelope>
"#;

    #[test]
    fn reads_a_tree() {
        let doc = XmlDoc::parse(RESPONSE).expect("parses");
        assert_eq!(doc.name, "Envelope");
        assert_eq!(doc.prefix.as_deref(), Some("soapenv"));
        assert!(doc.is("http://schemas.xmlsoap.org/soap/envelope/", "Envelope"));
        assert!(
            doc.attrs.is_empty(),
            "xmlns declarations are not attributes"
        );
        let resp = doc.required("Body/SubmitCaseResponse").expect("present");
        assert_eq!(resp.namespace.as_deref(), Some("urn:case"));
        assert_eq!(resp.attr("status"), Some("ok"));
        assert_eq!(resp.attr("type"), Some("t"));
        assert_eq!(resp.attr("xsi:type"), Some("t"));
        assert_eq!(resp.attr("nope"), None);
        let items: Vec<&str> = resp.children("item").map(Element::text).collect();
        assert_eq!(items, ["1", "2", "<3>"]);
        assert_eq!(resp.child("empty").map(Element::text), Some(""));

        let cases = [
            ("Body/SubmitCaseResponse/ywh", Some("YW2024-001")),
            ("/Body//SubmitCaseResponse/ywh/", Some("YW2024-001")),
            ("Body/SubmitCaseResponse/mixed", Some("a<b中文")),
            ("Body/SubmitCaseResponse/item", Some("1")),
            ("Body/SubmitCaseResponse/bjbh", None),
            ("Envelope/Body", None),
        ];
        for (path, want) in cases {
            assert_eq!(doc.text_of(path), want, "{path}");
        }
    }

    #[test]
    fn required_text_names_the_path() {
        let doc = XmlDoc::parse(RESPONSE).expect("parses");
        assert_eq!(
            doc.required_text("Body/SubmitCaseResponse/ywh"),
            Ok("YW2024-001")
        );
        assert_eq!(
            doc.required_text("Body/SubmitCaseResponse/bjbh"),
            Err(XmlError::MissingElement {
                path: "Body/SubmitCaseResponse/bjbh".into(),
                parent: "SubmitCaseResponse".into(),
                missing: "bjbh".into(),
            })
        );
        let err = doc.required_text("Header/x").expect_err("no Header");
        assert_eq!(
            err.to_string(),
            "element Header/x not found: <Envelope> has no child <Header>"
        );
        assert_eq!(
            doc.required_text("Body/SubmitCaseResponse/empty"),
            Err(XmlError::EmptyElement {
                path: "Body/SubmitCaseResponse/empty".into()
            })
        );
    }

    #[test]
    fn rejects_doctype_and_entities() {
        let billion_laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
]>
<lolz>&lol2;</lolz>"#;
        let xxe = r#"<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><foo>&xxe;</foo>"#;
        let plain = r#"<!doctype html><html/>"#;
        for (name, input) in [
            ("billion laughs", billion_laughs),
            ("xxe", xxe),
            ("plain", plain),
        ] {
            match XmlDoc::parse(input) {
                Err(XmlError::Doctype { offset }) => {
                    assert!(
                        input
                            .get(offset as usize..)
                            .is_some_and(|s| s.starts_with("<!")),
                        "{name}"
                    );
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        let err = XmlDoc::parse("<a>x &nbsp; y</a>").expect_err("undefined entity");
        assert_eq!(
            err,
            XmlError::UndefinedEntity {
                name: "nbsp".into(),
                offset: 5
            }
        );
        assert!(err.to_string().contains("&nbsp;"));
        assert!(matches!(
            XmlDoc::parse(r#"<a k="&ent;"/>"#),
            Err(XmlError::Syntax { .. })
        ));
    }

    #[test]
    fn depth_limit() {
        let nest = |depth: usize| "<d>".repeat(depth) + &"</d>".repeat(depth);
        assert!(XmlDoc::parse(&nest(MAX_DEPTH)).is_ok());
        match XmlDoc::parse(&nest(MAX_DEPTH + 1)) {
            Err(XmlError::TooDeep {
                element,
                offset,
                limit,
            }) => {
                assert_eq!((element.as_str(), offset, limit), ("d", 3 * 64, 64));
            }
            other => panic!("{other:?}"),
        }
        // Deeply nested self-closing elements count too.
        let deep_empty = "<d>".repeat(3) + "<e/>" + &"</d>".repeat(3);
        assert!(matches!(
            XmlDoc::parse_with_max_depth(&deep_empty, 3),
            Err(XmlError::TooDeep { .. })
        ));
        // A huge depth fails fast instead of exhausting memory or stack.
        assert!(matches!(
            XmlDoc::parse(&"<d>".repeat(100_000)),
            Err(XmlError::TooDeep { .. })
        ));
    }

    #[test]
    fn malformed_documents() {
        let cases: &[(&str, Check)] = &[
            ("", |e| *e == XmlError::NoRoot),
            ("  <!-- only a comment -->  ", |e| *e == XmlError::NoRoot),
            ("<a>", |e| {
                *e == XmlError::Unclosed {
                    element: "a".into(),
                }
            }),
            ("<a></b>", |e| matches!(e, XmlError::Syntax { .. })),
            ("<a></a><b/>", |e| {
                *e == XmlError::ContentOutsideRoot { offset: 7 }
            }),
            ("<a></a>junk", |e| {
                *e == XmlError::ContentOutsideRoot { offset: 7 }
            }),
            ("junk<a></a>", |e| {
                *e == XmlError::ContentOutsideRoot { offset: 0 }
            }),
            (r#"<a k="1" k="2"/>"#, |e| {
                matches!(e, XmlError::Syntax { .. })
            }),
            ("<a>&#0;</a>", |e| matches!(e, XmlError::Syntax { .. })),
        ];
        for (input, check) in cases {
            match XmlDoc::parse(input) {
                Err(e) => assert!(check(&e), "{input:?}: {e:?}"),
                Ok(doc) => panic!("{input:?} parsed: {doc:?}"),
            }
        }
    }

    #[test]
    fn bom_and_undeclared_prefix_are_tolerated() {
        let doc =
            XmlDoc::parse("\u{FEFF}<soap:Envelope><soap:Body/></soap:Envelope>").expect("lenient");
        assert_eq!(doc.name, "Envelope");
        assert_eq!(doc.prefix.as_deref(), Some("soap"));
        assert_eq!(doc.namespace, None);
        assert!(doc.child("Body").is_some());
    }
}

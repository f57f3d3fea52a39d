//! Text encodings ministry networks use (UTF-8, GBK, GB18030): strict encode/decode and XML charset sniffing that survives lying declarations.
//!
//! Nothing here substitutes silently: a character the target encoding cannot hold, or a byte
//! sequence that is not valid in the source encoding, is an error that names the character
//! (and its index) or the byte offset. A replacement character or an `&#NNNN;` escape in a
//! ministry record is a wrong name on a licence, so failing loudly is the only safe default.

use std::fmt;

use thiserror::Error;

/// An encoding a ministry network may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// UTF-8.
    Utf8,
    /// GBK (a superset of GB2312). Encoding never emits GB18030 four-byte sequences; decoding
    /// accepts them, because vendors that declare GBK routinely send GB18030.
    Gbk,
    /// GB18030, which covers all of Unicode (including CJK Extension B such as `𠀀`).
    Gb18030,
}

impl Encoding {
    /// Looks an encoding up by its label, case-insensitively and ignoring surrounding
    /// whitespace and quotes.
    ///
    /// Accepted: `utf-8`, `utf8`; `gbk`, `gb2312`, `cp936`, `x-gbk`, `ms936`, `windows-936`;
    /// `gb18030`.
    ///
    /// ```
    /// use yiwang_adapter_sdk::text::Encoding;
    /// assert_eq!(Encoding::from_label("gb2312"), Some(Encoding::Gbk));
    /// assert_eq!(Encoding::from_label("GB18030"), Some(Encoding::Gb18030));
    /// assert_eq!(Encoding::from_label("ISO-8859-1"), None);
    /// ```
    pub fn from_label(label: &str) -> Option<Encoding> {
        let label = label.trim().trim_matches(|c| c == '"' || c == '\'').trim();
        let lower = label.to_ascii_lowercase();
        match lower.as_str() {
            "utf-8" | "utf8" => Some(Encoding::Utf8),
            "gbk" | "gb2312" | "gb_2312" | "gb_2312-80" | "cp936" | "x-gbk" | "ms936"
            | "windows-936" => Some(Encoding::Gbk),
            "gb18030" | "gb-18030" => Some(Encoding::Gb18030),
            _ => None,
        }
    }

    /// The canonical label, as written in XML declarations and `charset=` parameters:
    /// `UTF-8`, `GBK` or `GB18030`.
    pub fn label(self) -> &'static str {
        match self {
            Encoding::Utf8 => "UTF-8",
            Encoding::Gbk => "GBK",
            Encoding::Gb18030 => "GB18030",
        }
    }

    fn rs(self) -> &'static encoding_rs::Encoding {
        match self {
            Encoding::Utf8 => encoding_rs::UTF_8,
            Encoding::Gbk => encoding_rs::GBK,
            Encoding::Gb18030 => encoding_rs::GB18030,
        }
    }

    /// The byte-order mark of this encoding.
    fn bom(self) -> &'static [u8] {
        match self {
            Encoding::Utf8 => UTF8_BOM,
            // GBK has no BOM of its own.
            Encoding::Gbk => &[],
            Encoding::Gb18030 => GB18030_BOM,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

const UTF8_BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
const GB18030_BOM: &[u8] = &[0x84, 0x31, 0x95, 0x33];
const UTF16LE_BOM: &[u8] = &[0xFF, 0xFE];
const UTF16BE_BOM: &[u8] = &[0xFE, 0xFF];

/// Errors from encoding and decoding text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// A character has no representation in the target encoding.
    #[error(
        "character {ch:?} (U+{code:04X}) at character index {index} (byte {byte_offset} of the UTF-8 input) cannot be encoded in {encoding}",
        code = u32::from(*ch)
    )]
    Unmappable {
        /// The offending character.
        ch: char,
        /// Its index counted in characters (`text.chars().nth(index)`).
        index: usize,
        /// Its byte offset in the UTF-8 input.
        byte_offset: usize,
        /// The target encoding.
        encoding: Encoding,
    },
    /// The input is not valid in the given encoding.
    #[error("malformed {encoding} input at byte offset {offset} (bytes {bytes})")]
    Malformed {
        /// The encoding the bytes were decoded as.
        encoding: Encoding,
        /// Byte offset of the first byte of the malformed sequence.
        offset: usize,
        /// The malformed bytes, hex, space-separated.
        bytes: String,
    },
    /// The bytes start with a byte-order mark of an encoding this SDK does not support.
    #[error("unsupported byte-order mark for {label}; ministry XML is UTF-8, GBK or GB18030")]
    UnsupportedBom {
        /// Which encoding the BOM belongs to.
        label: &'static str,
    },
    /// No candidate encoding could decode the XML document.
    #[error("XML document is not valid in any candidate encoding: {}", attempts_to_string(.attempts))]
    Undecodable {
        /// Each encoding tried, with the byte offset at which it failed.
        attempts: Vec<(Encoding, usize)>,
    },
}

fn attempts_to_string(attempts: &[(Encoding, usize)]) -> String {
    attempts
        .iter()
        .map(|(enc, offset)| format!("{enc} fails at byte {offset}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Encodes `text` into `enc`, failing on the first character the encoding cannot represent.
///
/// ```
/// use yiwang_adapter_sdk::text::{encode, Encoding, TextError};
/// assert_eq!(encode("中", Encoding::Gbk).unwrap(), vec![0xD6, 0xD0]);
/// let err = encode("a𠀀", Encoding::Gbk).unwrap_err();
/// assert!(matches!(err, TextError::Unmappable { ch: '𠀀', index: 1, .. }));
/// ```
pub fn encode(text: &str, enc: Encoding) -> Result<Vec<u8>, TextError> {
    if enc == Encoding::Utf8 {
        return Ok(text.as_bytes().to_vec());
    }
    let mut encoder = enc.rs().new_encoder();
    // GBK and GB18030 need at most 4 bytes per character; a UTF-8 character is at least 1
    // byte, so 4× the input (+4 slack) always fits. Growing on OutputFull covers the rest.
    let mut out = vec![0u8; text.len().saturating_mul(4).saturating_add(4)];
    let mut read_total = 0usize;
    let mut written_total = 0usize;
    loop {
        let src = text.get(read_total..).unwrap_or_default();
        let dst = out.get_mut(written_total..).unwrap_or_default();
        let (result, read, written) = encoder.encode_from_utf8_without_replacement(src, dst, true);
        read_total += read;
        written_total += written;
        match result {
            encoding_rs::EncoderResult::InputEmpty => break,
            encoding_rs::EncoderResult::OutputFull => {
                let grow = out.len().max(16);
                out.resize(out.len() + grow, 0);
            }
            encoding_rs::EncoderResult::Unmappable(ch) => {
                // `read` includes the unmappable character itself.
                let byte_offset = read_total - ch.len_utf8();
                let index = text.get(..byte_offset).map_or(0, |s| s.chars().count());
                return Err(TextError::Unmappable {
                    ch,
                    index,
                    byte_offset,
                    encoding: enc,
                });
            }
        }
    }
    out.truncate(written_total);
    Ok(out)
}

/// Decodes `bytes` as `enc`, failing at the first malformed byte sequence.
///
/// A leading byte-order mark of `enc` itself (UTF-8 `EF BB BF`, GB18030 `84 31 95 33`) is
/// removed; no other BOM handling is done (use [`decode_xml`] for sniffing).
///
/// ```
/// use yiwang_adapter_sdk::text::{decode, Encoding, TextError};
/// assert_eq!(decode(&[0xD6, 0xD0], Encoding::Gbk).unwrap(), "中");
/// let err = decode(b"ok\xFF", Encoding::Utf8).unwrap_err();
/// assert!(matches!(err, TextError::Malformed { offset: 2, .. }));
/// ```
pub fn decode(bytes: &[u8], enc: Encoding) -> Result<String, TextError> {
    let bom = enc.bom();
    let (body, shift) = if !bom.is_empty() && bytes.starts_with(bom) {
        (bytes.get(bom.len()..).unwrap_or_default(), bom.len())
    } else {
        (bytes, 0)
    };
    decode_raw(body, enc).map_err(|(offset, len)| {
        let start = offset + shift;
        let bad = bytes
            .get(start..start.saturating_add(len.max(1)))
            .unwrap_or_default();
        TextError::Malformed {
            encoding: enc,
            offset: start,
            bytes: bad
                .iter()
                .map(|b| format!("{b:02X}"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    })
}

/// Decodes without BOM handling; on failure returns (offset, length) of the malformed sequence.
fn decode_raw(bytes: &[u8], enc: Encoding) -> Result<String, (usize, usize)> {
    if enc == Encoding::Utf8 {
        return match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err((e.valid_up_to(), e.error_len().unwrap_or(1))),
        };
    }
    let mut decoder = enc.rs().new_decoder_without_bom_handling();
    let mut out = String::with_capacity(
        decoder
            .max_utf8_buffer_length_without_replacement(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(2)),
    );
    let mut read_total = 0usize;
    loop {
        let src = bytes.get(read_total..).unwrap_or_default();
        let (result, read) = decoder.decode_to_string_without_replacement(src, &mut out, true);
        read_total += read;
        match result {
            encoding_rs::DecoderResult::InputEmpty => return Ok(out),
            encoding_rs::DecoderResult::OutputFull => out.reserve(src.len().max(16) * 3),
            encoding_rs::DecoderResult::Malformed(bad, after) => {
                let offset = read_total.saturating_sub(usize::from(after) + usize::from(bad));
                return Err((offset, usize::from(bad)));
            }
        }
    }
}

/// Reads the `encoding="…"` pseudo-attribute of a leading XML declaration.
///
/// A UTF-8 or GB18030 BOM before the declaration is skipped. Returns `None` when there is no
/// declaration, it has no encoding, or the label is not one of [`Encoding::from_label`]'s.
///
/// ```
/// use yiwang_adapter_sdk::text::{sniff_xml_encoding, Encoding};
/// let xml = br#"<?xml version="1.0" encoding="gbk"?><a/>"#;
/// assert_eq!(sniff_xml_encoding(xml), Some(Encoding::Gbk));
/// ```
pub fn sniff_xml_encoding(bytes: &[u8]) -> Option<Encoding> {
    declared_label(bytes).and_then(Encoding::from_label)
}

/// The raw `encoding` label of a leading XML declaration, if any.
fn declared_label(bytes: &[u8]) -> Option<&str> {
    let bytes = [UTF8_BOM, GB18030_BOM]
        .iter()
        .find_map(|bom| bytes.strip_prefix(*bom))
        .unwrap_or(bytes);
    let rest = bytes.strip_prefix(b"<?xml")?;
    // The declaration is ASCII; it ends at the first `?>`, and we never look past 256 bytes.
    let window = rest.get(..rest.len().min(256)).unwrap_or(rest);
    let end = window.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(window.get(..end)?).ok()?;
    let at = decl.find("encoding")?;
    let after = decl.get(at + "encoding".len()..)?.trim_start();
    let after = after.strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = after.get(1..)?;
    let close = value.find(quote)?;
    value.get(..close)
}

/// Where [`decode_xml`] got the encoding it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodingSource {
    /// A byte-order mark.
    Bom,
    /// The transport's `charset` (e.g. the HTTP `Content-Type` header), and it decoded cleanly.
    Header,
    /// The XML declaration, and it decoded cleanly.
    Declaration,
    /// Nothing was declared; XML's default (UTF-8) decoded cleanly.
    Default,
    /// The declared encoding(s) did not fit the bytes (the declaration lied), or nothing was
    /// declared and UTF-8 failed; the used encoding is a fallback.
    Fallback {
        /// What the header and/or declaration claimed, e.g. `["header: UTF-8", "declaration: GBK"]`.
        declared: Vec<String>,
    },
}

/// The result of [`decode_xml`]: the text and how its encoding was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedXml {
    /// The decoded document (BOM removed; the XML declaration is left as it was).
    pub text: String,
    /// The encoding actually used.
    pub encoding: Encoding,
    /// Why that encoding was used.
    pub source: EncodingSource,
}

impl DecodedXml {
    /// True when the declared encoding was not the one that worked (worth an audit note).
    pub fn declaration_lied(&self) -> bool {
        matches!(&self.source, EncodingSource::Fallback { declared } if !declared.is_empty())
    }
}

/// Decodes an XML document whose declared encoding may be wrong.
///
/// Order of precedence:
/// 1. a byte-order mark (UTF-8 or GB18030; a UTF-16 BOM is an error);
/// 2. `header_charset` (the transport's `charset=`), then the XML declaration's `encoding`;
///    labels this SDK does not know (e.g. Tomcat's default `ISO-8859-1`) are ignored;
/// 3. if nothing was declared, UTF-8 (XML's default);
/// 4. fallbacks: UTF-8, then GB18030.
///
/// The first candidate that decodes without a single malformed sequence wins, with one
/// exception: when a GBK/GB18030 label is declared but the bytes are valid UTF-8 containing
/// at least two multi-byte characters, UTF-8 is used. Such bytes almost never form valid
/// UTF-8 by accident, whereas GBK decodes UTF-8 bytes into plausible-looking mojibake
/// without any error, so "declared GBK, actually UTF-8" could not be caught otherwise.
///
/// ```
/// use yiwang_adapter_sdk::text::{decode_xml, encode, Encoding, EncodingSource};
/// // Declares UTF-8, is really GBK.
/// let mut bytes = br#"<?xml version="1.0" encoding="UTF-8"?><n>"#.to_vec();
/// bytes.extend(encode("张三", Encoding::Gbk).unwrap());
/// bytes.extend(b"</n>");
/// let d = decode_xml(&bytes, None).unwrap();
/// assert!(d.text.contains("张三"));
/// assert_eq!(d.encoding, Encoding::Gb18030);
/// assert!(d.declaration_lied());
/// ```
pub fn decode_xml(bytes: &[u8], header_charset: Option<&str>) -> Result<DecodedXml, TextError> {
    if bytes.starts_with(UTF16LE_BOM) || bytes.starts_with(UTF16BE_BOM) {
        return Err(TextError::UnsupportedBom { label: "UTF-16" });
    }
    for enc in [Encoding::Utf8, Encoding::Gb18030] {
        if let Some(body) = bytes.strip_prefix(enc.bom()) {
            return decode_raw(body, enc)
                .map(|text| DecodedXml {
                    text,
                    encoding: enc,
                    source: EncodingSource::Bom,
                })
                .map_err(|(offset, len)| {
                    let start = offset + enc.bom().len();
                    TextError::Malformed {
                        encoding: enc,
                        offset: start,
                        bytes: hex_bytes(bytes.get(start..start + len.max(1)).unwrap_or_default()),
                    }
                });
        }
    }

    let header_label = header_charset.map(str::trim).filter(|s| !s.is_empty());
    let decl_label = declared_label(bytes);
    let mut declared = Vec::new();
    let mut candidates: Vec<(Encoding, EncodingSource)> = Vec::new();
    if let Some(label) = header_label {
        declared.push(format!("header: {label}"));
        if let Some(enc) = Encoding::from_label(label) {
            candidates.push((enc, EncodingSource::Header));
        }
    }
    if let Some(label) = decl_label {
        declared.push(format!("declaration: {label}"));
        if let Some(enc) = Encoding::from_label(label) {
            candidates.push((enc, EncodingSource::Declaration));
        }
    }
    if header_label.is_none() && decl_label.is_none() {
        candidates.push((Encoding::Utf8, EncodingSource::Default));
    }
    let fallback = EncodingSource::Fallback {
        declared: declared.clone(),
    };

    // The "declared GB, actually UTF-8" lie: see the doc comment.
    if candidates
        .first()
        .is_some_and(|(enc, _)| *enc != Encoding::Utf8)
        && let Ok(s) = std::str::from_utf8(bytes)
        && s.chars().filter(|c| !c.is_ascii()).take(2).count() == 2
    {
        return Ok(DecodedXml {
            text: s.to_owned(),
            encoding: Encoding::Utf8,
            source: fallback,
        });
    }

    candidates.push((Encoding::Utf8, fallback.clone()));
    candidates.push((Encoding::Gb18030, fallback));
    let mut attempts: Vec<(Encoding, usize)> = Vec::new();
    for (enc, source) in candidates {
        if attempts.iter().any(|(tried, _)| *tried == enc) {
            continue;
        }
        match decode_raw(bytes, enc) {
            Ok(text) => {
                return Ok(DecodedXml {
                    text,
                    encoding: enc,
                    source,
                });
            }
            Err((offset, _)) => attempts.push((enc, offset)),
        }
    }
    Err(TextError::Undecodable { attempts })
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPANY: &str = "深圳市腾讯计算机系统有限公司";

    #[test]
    fn labels() {
        let cases = [
            ("GBK", Some(Encoding::Gbk)),
            ("gb2312", Some(Encoding::Gbk)),
            ("GB2312", Some(Encoding::Gbk)),
            ("GB18030", Some(Encoding::Gb18030)),
            ("gb18030", Some(Encoding::Gb18030)),
            ("utf-8", Some(Encoding::Utf8)),
            ("UTF-8", Some(Encoding::Utf8)),
            (" \"utf8\" ", Some(Encoding::Utf8)),
            ("ISO-8859-1", None),
            ("", None),
        ];
        for (label, want) in cases {
            assert_eq!(Encoding::from_label(label), want, "label {label:?}");
        }
        for enc in [Encoding::Utf8, Encoding::Gbk, Encoding::Gb18030] {
            assert_eq!(Encoding::from_label(enc.label()), Some(enc));
        }
    }

    #[test]
    fn round_trips() {
        let cases: &[(&str, Encoding)] = &[
            (COMPANY, Encoding::Gbk),
            (COMPANY, Encoding::Gb18030),
            (COMPANY, Encoding::Utf8),
            ("张三 ABC-123", Encoding::Gbk),
            ("𠀀", Encoding::Gb18030),
            ("𠀀", Encoding::Utf8),
            ("€", Encoding::Gbk),
            ("", Encoding::Gbk),
        ];
        for (text, enc) in cases {
            let bytes = encode(text, *enc).expect("encodable");
            assert_eq!(decode(&bytes, *enc).expect("decodable"), *text, "{enc}");
        }
    }

    #[test]
    fn known_gbk_bytes() {
        assert_eq!(
            encode("深圳", Encoding::Gbk).expect("gbk"),
            [0xC9, 0xEE, 0xDB, 0xDA]
        );
        // U+20000 is a four-byte sequence in GB18030.
        assert_eq!(
            encode("𠀀", Encoding::Gb18030).expect("gb18030"),
            [0x95, 0x32, 0x82, 0x36]
        );
    }

    #[test]
    fn unmappable_is_named() {
        let cases: &[(&str, Encoding, char, usize, usize)] = &[
            ("𠀀", Encoding::Gbk, '𠀀', 0, 0),
            ("张三𠀀公司", Encoding::Gbk, '𠀀', 2, 6),
            ("ok\u{1F600}", Encoding::Gbk, '\u{1F600}', 2, 2),
        ];
        for (text, enc, ch, index, byte_offset) in cases {
            let err = encode(text, *enc).expect_err("must fail");
            assert_eq!(
                err,
                TextError::Unmappable {
                    ch: *ch,
                    index: *index,
                    byte_offset: *byte_offset,
                    encoding: *enc
                }
            );
            assert!(err.to_string().contains(&ch.to_string()), "{err}");
        }
        assert!(
            encode("张三𠀀", Encoding::Gbk)
                .expect_err("gbk")
                .to_string()
                .contains("U+20000")
        );
    }

    #[test]
    fn malformed_names_offset() {
        let mut gbk = encode("张三", Encoding::Gbk).expect("gbk");
        gbk.push(0xD6); // truncated double-byte sequence
        let cases: &[(&[u8], Encoding, usize)] = &[
            (b"abc\xFFdef", Encoding::Utf8, 3),
            (b"\xE4\xB8", Encoding::Utf8, 0),
            (&gbk, Encoding::Gbk, 4),
            (b"ab\x81\x20", Encoding::Gb18030, 2),
        ];
        for (bytes, enc, offset) in cases {
            match decode(bytes, *enc) {
                Err(TextError::Malformed {
                    offset: got,
                    encoding,
                    ..
                }) => {
                    assert_eq!((got, encoding), (*offset, *enc), "{bytes:?}");
                }
                other => panic!("{bytes:?} as {enc}: {other:?}"),
            }
        }
    }

    #[test]
    fn decode_strips_own_bom() {
        assert_eq!(
            decode(b"\xEF\xBB\xBFhi", Encoding::Utf8).expect("utf8"),
            "hi"
        );
        assert_eq!(
            decode(b"\x84\x31\x95\x33hi", Encoding::Gb18030).expect("gb"),
            "hi"
        );
    }

    #[test]
    fn sniffing() {
        let cases: &[(&[u8], Option<Encoding>)] = &[
            (
                br#"<?xml version="1.0" encoding="GBK"?><a/>"#,
                Some(Encoding::Gbk),
            ),
            (
                b"<?xml version='1.0' encoding = 'gb18030' ?><a/>",
                Some(Encoding::Gb18030),
            ),
            (
                b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"utf-8\"?>",
                Some(Encoding::Utf8),
            ),
            (br#"<?xml version="1.0"?><a/>"#, None),
            (br#"<a encoding="GBK"/>"#, None),
            (br#"<?xml version="1.0" encoding="Big5"?>"#, None),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                sniff_xml_encoding(bytes),
                *want,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    fn doc(decl: &str, body: &str, enc: Encoding) -> Vec<u8> {
        let mut v = decl.as_bytes().to_vec();
        v.extend(encode(&format!("<n>{body}</n>"), enc).expect("encodable"));
        v
    }

    #[test]
    fn decode_xml_cases() {
        let gbk_decl = r#"<?xml version="1.0" encoding="GBK"?>"#;
        let utf8_decl = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
        let gb_decl = r#"<?xml version="1.0" encoding="GB18030"?>"#;
        struct Case {
            name: &'static str,
            bytes: Vec<u8>,
            header: Option<&'static str>,
            encoding: Encoding,
            lied: bool,
        }
        let mut bom = UTF8_BOM.to_vec();
        bom.extend(doc(gbk_decl, COMPANY, Encoding::Utf8));
        let cases = [
            Case {
                name: "honest GBK",
                bytes: doc(gbk_decl, COMPANY, Encoding::Gbk),
                header: None,
                encoding: Encoding::Gbk,
                lied: false,
            },
            Case {
                name: "honest GB18030 with ext-B",
                bytes: doc(gb_decl, "𠀀", Encoding::Gb18030),
                header: None,
                encoding: Encoding::Gb18030,
                lied: false,
            },
            Case {
                name: "declares UTF-8, is GBK",
                bytes: doc(utf8_decl, COMPANY, Encoding::Gbk),
                header: None,
                encoding: Encoding::Gb18030,
                lied: true,
            },
            Case {
                name: "declares GBK, is UTF-8",
                bytes: doc(gbk_decl, COMPANY, Encoding::Utf8),
                header: None,
                encoding: Encoding::Utf8,
                lied: true,
            },
            Case {
                name: "BOM beats declaration",
                bytes: bom,
                header: Some("GBK"),
                encoding: Encoding::Utf8,
                lied: false,
            },
            Case {
                name: "header beats declaration",
                bytes: doc(utf8_decl, COMPANY, Encoding::Gbk),
                header: Some("gbk"),
                encoding: Encoding::Gbk,
                lied: false,
            },
            Case {
                name: "unknown header label ignored",
                bytes: doc(gbk_decl, COMPANY, Encoding::Gbk),
                header: Some("ISO-8859-1"),
                encoding: Encoding::Gbk,
                lied: false,
            },
            Case {
                name: "no declaration, UTF-8",
                bytes: doc("", COMPANY, Encoding::Utf8),
                header: None,
                encoding: Encoding::Utf8,
                lied: false,
            },
            Case {
                name: "no declaration, GBK",
                bytes: doc("", COMPANY, Encoding::Gbk),
                header: None,
                encoding: Encoding::Gb18030,
                lied: false,
            },
        ];
        for case in cases {
            let got = decode_xml(&case.bytes, case.header)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            assert_eq!(got.encoding, case.encoding, "{}", case.name);
            assert_eq!(
                got.declaration_lied(),
                case.lied,
                "{}: {:?}",
                case.name,
                got.source
            );
            assert!(
                got.text.contains(if case.name.contains("ext-B") {
                    "𠀀"
                } else {
                    COMPANY
                }),
                "{}",
                case.name
            );
            assert!(!got.text.starts_with('\u{FEFF}'), "{}", case.name);
        }
    }

    #[test]
    fn decode_xml_reports_lie_source() {
        let bytes = doc(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            "张三",
            Encoding::Gbk,
        );
        let got = decode_xml(&bytes, None).expect("decodes");
        assert_eq!(
            got.source,
            EncodingSource::Fallback {
                declared: vec!["declaration: UTF-8".to_owned()]
            }
        );
    }

    #[test]
    fn decode_xml_rejects_utf16_and_garbage() {
        assert_eq!(
            decode_xml(b"\xFF\xFE<\x00", None),
            Err(TextError::UnsupportedBom { label: "UTF-16" })
        );
        // 0xFF is invalid in UTF-8 and in GB18030.
        match decode_xml(b"<a>\xFF</a>", None) {
            Err(TextError::Undecodable { attempts }) => {
                assert_eq!(attempts, vec![(Encoding::Utf8, 3), (Encoding::Gb18030, 3)]);
            }
            other => panic!("{other:?}"),
        }
    }
}

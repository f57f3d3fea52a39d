//! Request signing: HMAC-SHA256, SHA-256, and the canonical string of the signed open-API gateway archetype (archetype 3).

use hmac::{Hmac, Mac};
use sha2::Sha256;
pub use yiwang_schema::Sha256Digest;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // HMAC is defined for keys of every length (long keys are hashed), so the `hmac`
        // crate never returns this error for HMAC; the Result exists for other MACs.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

/// HMAC-SHA256 of `msg` under `key` (RFC 2104).
///
/// ```
/// let tag = yiwang_adapter_sdk::sign::hmac_sha256(b"Jefe", b"what do ya want for nothing?");
/// assert_eq!(tag[0], 0x5b);
/// ```
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut mac = mac(key);
    mac.update(msg);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 as lowercase hex (64 characters).
///
/// ```
/// use yiwang_adapter_sdk::sign::hmac_sha256_hex;
/// assert_eq!(
///     hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?"),
///     "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
/// );
/// ```
pub fn hmac_sha256_hex(key: &[u8], msg: &[u8]) -> String {
    hex::encode(hmac_sha256(key, msg))
}

/// Checks a hex HMAC-SHA256 tag (either case) in constant time, for callback and simulator
/// code that verifies signatures. A tag that is not 64 hex digits is simply wrong.
///
/// ```
/// use yiwang_adapter_sdk::sign::{hmac_sha256_hex, verify_hmac_sha256_hex};
/// let tag = hmac_sha256_hex(b"k", b"m");
/// assert!(verify_hmac_sha256_hex(b"k", b"m", &tag.to_uppercase()));
/// assert!(!verify_hmac_sha256_hex(b"k", b"m!", &tag));
/// ```
pub fn verify_hmac_sha256_hex(key: &[u8], msg: &[u8], tag_hex: &str) -> bool {
    let Ok(tag) = hex::decode(tag_hex.trim()) else {
        return false;
    };
    let mut mac = mac(key);
    mac.update(msg);
    mac.verify_slice(&tag).is_ok()
}

/// SHA-256 of `bytes` as lowercase hex (64 characters): [`Sha256Digest`]'s text form.
///
/// ```
/// assert_eq!(
///     yiwang_adapter_sdk::sign::sha256_hex(b""),
///     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
/// );
/// ```
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256Digest::of(bytes).to_string()
}

/// Splits a raw query string (`a=1&b=x%20y`, without the leading `?`) into pairs exactly as
/// sent: no percent-decoding. Empty segments (`a=1&&b=2`) are skipped; a segment without `=`
/// has an empty value. This is the splitting [`canonical_string`] expects on both sides.
///
/// ```
/// use yiwang_adapter_sdk::sign::query_pairs;
/// assert_eq!(query_pairs("b=2&a=x%20y&flag"), vec![("b", "2"), ("a", "x%20y"), ("flag", "")]);
/// ```
pub fn query_pairs(raw_query: &str) -> Vec<(&str, &str)> {
    raw_query
        .split('&')
        .filter(|segment| !segment.is_empty())
        .map(|segment| segment.split_once('=').unwrap_or((segment, "")))
        .collect()
}

/// Builds the canonical string an open-API gateway (archetype 3) signs.
///
/// The canonical string is exactly these seven lines joined by `\n` (LF, byte 0x0A), with no
/// trailing newline:
///
/// 1. the HTTP method, ASCII-uppercased (`POST`);
/// 2. the request path exactly as sent, without the query string (`/api/v1/case`); an empty
///    path is written `/`;
/// 3. the query parameters sorted by key, then by value for repeated keys (byte-wise, as
///    UTF-8), each written `key=value` and joined by `&`; keys and values are taken **as sent
///    on the wire** (still percent-encoded, never re-encoded or decoded: see [`query_pairs`]);
///    an empty line when there are none; a parameter without a value is `key=`;
/// 4. the `appKey` header value;
/// 5. the `timestamp` header value: Unix epoch milliseconds in decimal, no padding;
/// 6. the `nonce` header value;
/// 7. the lowercase hex SHA-256 of the exact body bytes sent (for an empty body
///    `e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855`).
///
/// The `sign` header is then `hmac_sha256_hex(app_secret, canonical.as_bytes())`: 64
/// lowercase hex digits. The caller sorts nothing: `query` may be in any order. Header
/// values cannot contain line breaks (HTTP forbids them), so the lines are unambiguous.
///
/// ```
/// use yiwang_adapter_sdk::sign::{canonical_string, sha256_hex};
/// let body = br#"{"bjbh":"1"}"#;
/// let s = canonical_string("post", "/api/case", &[("b", "2"), ("a", "1")], "app1",
///                          1709256600000, "n-1", &sha256_hex(body));
/// assert_eq!(s, format!("POST\n/api/case\na=1&b=2\napp1\n1709256600000\nn-1\n{}", sha256_hex(body)));
/// ```
pub fn canonical_string(
    method: &str,
    path: &str,
    query: &[(&str, &str)],
    app_key: &str,
    timestamp_ms: i64,
    nonce: &str,
    body_sha256_hex: &str,
) -> String {
    let mut sorted: Vec<(&str, &str)> = query.to_vec();
    sorted.sort_unstable();
    let query_line = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let path = if path.is_empty() { "/" } else { path };
    [
        method.to_ascii_uppercase().as_str(),
        path,
        query_line.as_str(),
        app_key,
        timestamp_ms.to_string().as_str(),
        nonce,
        body_sha256_hex,
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    type CanonicalCase<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], String);

    #[test]
    fn rfc4231_vectors() {
        // Test cases 1, 2 and 6 (key longer than the block size) of RFC 4231.
        let cases: &[(&[u8], &[u8], &str)] = &[
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, msg, want) in cases {
            assert_eq!(hmac_sha256_hex(key, msg), *want);
            assert_eq!(hex::encode(hmac_sha256(key, msg)), *want);
            assert!(verify_hmac_sha256_hex(key, msg, want));
        }
    }

    #[test]
    fn verify_rejects() {
        let tag = hmac_sha256_hex(b"Jefe", b"what do ya want for nothing?");
        let cases = ["", "zz", &tag[..62], "00"];
        for bad in cases {
            assert!(!verify_hmac_sha256_hex(
                b"Jefe",
                b"what do ya want for nothing?",
                bad
            ));
        }
        assert!(!verify_hmac_sha256_hex(
            b"jefe",
            b"what do ya want for nothing?",
            &tag
        ));
    }

    #[test]
    fn sha256_vectors() {
        let cases: &[(&[u8], &str)] = &[
            (
                b"",
                "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ),
            (
                b"abc",
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(sha256_hex(input), *want);
        }
    }

    #[test]
    fn canonical_forms() {
        let empty = sha256_hex(b"");
        let cases: &[CanonicalCase] = &[
            (
                "get",
                "/api/v1/status",
                &[("projid", "B2024"), ("appId", "x"), ("a", "2"), ("a", "1")],
                format!(
                    "GET\n/api/v1/status\na=1&a=2&appId=x&projid=B2024\nAK\n1709256600000\nN1\n{empty}"
                ),
            ),
            (
                "POST",
                "",
                &[],
                format!("POST\n/\n\nAK\n1709256600000\nN1\n{empty}"),
            ),
            (
                "POST",
                "/q",
                &[("name", "%E5%BC%A0"), ("flag", "")],
                format!("POST\n/q\nflag=&name=%E5%BC%A0\nAK\n1709256600000\nN1\n{empty}"),
            ),
        ];
        for (method, path, query, want) in cases {
            assert_eq!(
                canonical_string(method, path, query, "AK", 1_709_256_600_000, "N1", &empty),
                *want
            );
        }
    }

    #[test]
    fn query_pairs_then_canonical() {
        let pairs = query_pairs("z=1&&a=x%26y&k");
        assert_eq!(pairs, vec![("z", "1"), ("a", "x%26y"), ("k", "")]);
        let line = canonical_string("GET", "/", &pairs, "", 0, "", "");
        assert_eq!(line, "GET\n/\na=x%26y&k=&z=1\n\n0\n\n");
    }

    #[test]
    fn signature_is_hmac_of_canonical() {
        let canonical = canonical_string("POST", "/c", &[], "AK", 1, "N", &sha256_hex(b"{}"));
        let sign = hmac_sha256_hex(b"secret", canonical.as_bytes());
        assert_eq!(sign.len(), 64);
        assert!(verify_hmac_sha256_hex(
            b"secret",
            canonical.as_bytes(),
            &sign
        ));
    }
}

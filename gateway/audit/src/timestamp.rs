//! RFC 3161 time-stamps of checkpoints: a time-stamping authority (TSA)
//! signs "this checkpoint line existed at this time", which a key holder
//! cannot produce later. The gateway's push loop posts [`request`] to a
//! TSA configured as a witness (`protocol = "rfc3161"`) and keeps the reply
//! as `<seq>.tsr`, checked by [`check_reply`]; it is verified offline with
//! the TSA's certificate:
//!
//! ```text
//! openssl ts -verify -in <seq>.tsr -data <the checkpoint line> -CAfile tsa-ca.crt
//! ```
//!
//! The message imprint is SHA-256 of the checkpoint's line, byte for byte
//! without its newline (whatever the chain's hash). Only the request is
//! encoded and only the reply's status and binding are read here (a few
//! lines of DER); verifying the TSA's CMS signature and certificate is
//! `openssl ts -verify`'s job, not this crate's.

use sha2::Digest;

/// `SEQUENCE { OID 2.16.840.1.101.3.4.2.1 (sha256), NULL }`
const SHA256_ALG: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00,
];

/// Why a TSA's reply is not a time-stamp of the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    #[error("the TSA's reply is not DER of a TimeStampResp ({0})")]
    Malformed(&'static str),
    #[error("the TSA refused the request (PKIStatus {0})")]
    Refused(u64),
    #[error("the TSA's reply holds no time-stamp token")]
    NoToken,
    #[error("the time-stamp token is not over this checkpoint (its SHA-256 is not in it)")]
    OtherData,
}

/// The SHA-256 a time-stamp of `line` covers.
pub fn imprint(line: &[u8]) -> [u8; 32] {
    sha2::Sha256::digest(line).into()
}

/// A DER `TimeStampReq` (v1, SHA-256 imprint of `line`, `nonce`, asking
/// for the TSA's certificate in the token).
pub fn request(line: &[u8], nonce: u64) -> Vec<u8> {
    let mut imprint_seq = Vec::with_capacity(51);
    imprint_seq.extend_from_slice(&SHA256_ALG);
    tlv(&mut imprint_seq, 0x04, &imprint(line));
    let mut body = Vec::with_capacity(80);
    tlv(&mut body, 0x02, &[1]);
    tlv(&mut body, 0x30, &imprint_seq);
    tlv(&mut body, 0x02, &der_uint(nonce));
    tlv(&mut body, 0x01, &[0xff]);
    let mut out = Vec::with_capacity(body.len() + 2);
    tlv(&mut out, 0x30, &body);
    out
}

/// Check a DER `TimeStampResp` for `line`: granted, with a token that
/// carries the line's SHA-256.
pub fn check_reply(reply: &[u8], line: &[u8]) -> Result<(), TimestampError> {
    let (tag, resp, _) = read_tlv(reply).ok_or(TimestampError::Malformed("outer"))?;
    if tag != 0x30 {
        return Err(TimestampError::Malformed("not a SEQUENCE"));
    }
    let (tag, status_info, token) =
        read_tlv(resp).ok_or(TimestampError::Malformed("PKIStatusInfo"))?;
    if tag != 0x30 {
        return Err(TimestampError::Malformed("PKIStatusInfo"));
    }
    let (tag, status, _) = read_tlv(status_info).ok_or(TimestampError::Malformed("PKIStatus"))?;
    if tag != 0x02 || status.is_empty() || status.len() > 8 {
        return Err(TimestampError::Malformed("PKIStatus"));
    }
    let status = status.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    // granted (0) or grantedWithMods (1)
    if status > 1 {
        return Err(TimestampError::Refused(status));
    }
    if token.is_empty() {
        return Err(TimestampError::NoToken);
    }
    let mut want = vec![0x04, 0x20];
    want.extend_from_slice(&imprint(line));
    if token.windows(want.len()).any(|w| w == want.as_slice()) {
        Ok(())
    } else {
        Err(TimestampError::OtherData)
    }
}

/// A non-negative INTEGER's content octets, minimal.
fn der_uint(n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(7);
    let mut out = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        out.push(0);
    }
    out.extend_from_slice(&bytes[first..]);
    out
}

/// Append tag, DER length and `content`.
fn tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
}

/// One TLV: its tag, its content, and what follows it.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

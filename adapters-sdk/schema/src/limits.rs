//! The numbers of the content bounds (see `bounds.rs` for the checks and the crate's README
//! for why each number): kept apart so the types can name them in their published JSON
//! Schema (`maxLength`) without the types and the checks importing each other.

/// Longest name (person, organisation, bureau, legal representative, material, approver), in
/// characters. The longest registered enterprise names are around 100 characters.
pub const NAME_MAX: usize = 200;
/// Longest item code or item version, in characters.
pub const IDENTIFIER_MAX: usize = 64;
/// Longest postal address, in characters (a full Chinese address is well under 100).
pub const ADDRESS_MAX: usize = 500;
/// Longest free text (a form string value, an override reason, a change note or reason), in
/// characters.
pub const TEXT_MAX: usize = 10_000;
/// Longest material URI, in characters (the common URL limit of browsers and proxies).
pub const URI_MAX: usize = 2_048;
/// Longest media type, in characters (RFC 6838: 127 + `/` + 127).
pub const MEDIA_TYPE_MAX: usize = 255;
/// Longest e-mail address, in characters (RFC 5321 path limit).
pub const EMAIL_MAX: usize = 254;
/// Longest phone number, in characters (E.164 has at most 15 digits; separators added).
pub const PHONE_MAX: usize = 32;
/// Longest checksum-override pointer, in characters.
pub const POINTER_MAX: usize = 256;
/// Longest form key, in characters.
pub const FORM_KEY_MAX: usize = 128;
/// Most keys in one form object (the form itself or any object nested in it).
pub const FORM_KEYS_MAX: usize = 256;
/// Deepest form nesting: the form object is depth 1, each nested object or array adds one.
pub const FORM_DEPTH_MAX: usize = 8;
/// Largest form, in bytes of compact JSON.
pub const FORM_BYTES_MAX: usize = 256 * 1024;
/// Most problems listed for one form; the walk stops there, so a hostile form cannot turn
/// into a huge error answer.
pub const FORM_PROBLEMS_MAX: usize = 64;
/// Earliest plausible case timestamp: 2000-01-01T00:00:00+08:00, as Unix seconds.
pub const EARLIEST_UNIX: i64 = 946_656_000;
/// How far in the future a case timestamp may lie (clock skew between bureau and gateway).
pub const FUTURE_SKEW_MAX_SECS: i64 = 300;

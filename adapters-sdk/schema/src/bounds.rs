//! Content bounds: how long each text field may be, which characters it may hold, how large
//! and deep the item form may grow, and which timestamps are plausible.
//!
//! A real bureau case fits with a wide margin (no text field of the example cases is over 60
//! characters, no form over 7 keys, depth 3 or 1 KiB); the bounds exist so that a client
//! cannot push megabytes of text, hundreds of thousands of form keys, terminal control codes or
//! bidi overrides through the gateway to the ministries. The crate's README lists them and
//! says why.

use std::io;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde_json::{Map, Value};

use crate::case::{Case, ChecksumOverride, Material, Party};
use crate::change::{CaseChange, ChangeKind};
use crate::error::{ValidationErrors, escape, rule};
use crate::event::Event;

pub use crate::limits::*;

/// What a text field may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// Names and identifiers: no control characters, no bidi overrides or isolates.
    Name,
    /// One line of text (an address): no control characters.
    Line,
    /// Free text: no control characters except tab, newline and a carriage return before a
    /// newline.
    Text,
}

/// Whether `c` is a bidi embedding, override or isolate (U+202A–U+202E, U+2066–U+2069).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks a text field's length (when `max` is given) and characters against its class.
pub(crate) fn text(
    errors: &mut ValidationErrors,
    pointer: &str,
    s: &str,
    class: Class,
    max: Option<usize>,
) {
    if let Some(max) = max {
        let n = s.chars().count();
        if n > max {
            errors.push(
                pointer,
                rule::MAX_LENGTH,
                format!("{n} characters, at most {max} allowed"),
            );
        }
    }
    let mut chars = s.chars().enumerate().peekable();
    while let Some((i, c)) = chars.next() {
        let allowed = class == Class::Text
            && (c == '\t'
                || c == '\n'
                || (c == '\r' && chars.peek().is_some_and(|&(_, n)| n == '\n')));
        if c.is_control() && !allowed {
            let what = match class {
                Class::Text => "control characters other than tab and newline are",
                _ => "control characters are",
            };
            errors.push(
                pointer,
                rule::CONTROL_CHARACTER,
                format!(
                    "U+{:04X} at character {i}: {what} not allowed here",
                    u32::from(c)
                ),
            );
            break;
        }
    }
    if class == Class::Name
        && let Some((i, c)) = s.chars().enumerate().find(|&(_, c)| is_bidi_control(c))
    {
        errors.push(
            pointer,
            rule::BIDI_CONTROL,
            format!(
                "U+{:04X} at character {i}: bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) are not allowed in names and identifiers",
                u32::from(c)
            ),
        );
    }
}

/// Like [`text`], for an optional field.
pub(crate) fn optional_text(
    errors: &mut ValidationErrors,
    pointer: &str,
    s: Option<&str>,
    class: Class,
    max: Option<usize>,
) {
    if let Some(s) = s {
        text(errors, pointer, s, class, max);
    }
}

/// Reports a case timestamp before [`EARLIEST_UNIX`].
pub(crate) fn not_too_early(
    errors: &mut ValidationErrors,
    pointer: &str,
    t: &DateTime<FixedOffset>,
) {
    if t.timestamp() < EARLIEST_UNIX {
        errors.push(
            pointer,
            rule::TIMESTAMP_RANGE,
            format!(
                "{} is before 2000-01-01T00:00:00+08:00, the earliest plausible case timestamp",
                t.to_rfc3339()
            ),
        );
    }
}

/// The window a case's timestamps must fall in against the caller's clock: not before
/// `earliest` (never earlier than the schema's floor, 2000-01-01T00:00:00+08:00, which
/// [`Case::validate`] checks on its own) and at most `max_ahead_s` seconds after `now`.
/// A gateway narrows it from its configuration (`[gateway] earliest-case-time`,
/// `max-clock-ahead-s`).
///
/// ```
/// let now = chrono::DateTime::parse_from_rfc3339("2026-11-20T12:00:00+08:00").unwrap();
/// let w = yiwang_schema::TimeWindow::at(now.to_utc());
/// assert_eq!(w.max_ahead_s, 300);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The caller's clock.
    pub now: DateTime<Utc>,
    /// No timestamp before this.
    pub earliest: DateTime<FixedOffset>,
    /// No timestamp more than this many seconds after `now`.
    pub max_ahead_s: i64,
}

impl TimeWindow {
    /// The default window at `now`: from the schema's floor to
    /// [`FUTURE_SKEW_MAX_SECS`] ahead.
    pub fn at(now: DateTime<Utc>) -> Self {
        let floor = DateTime::from_timestamp(EARLIEST_UNIX, 0)
            .unwrap_or_default()
            .with_timezone(&crate::BEIJING);
        TimeWindow {
            now,
            earliest: floor,
            max_ahead_s: FUTURE_SKEW_MAX_SECS,
        }
    }
}

/// Reports a case timestamp outside `window` (rule `timestamp_range`). A timestamp
/// before the schema's floor is left to [`not_too_early`], so it is reported once.
pub(crate) fn in_window(
    errors: &mut ValidationErrors,
    pointer: &str,
    t: &DateTime<FixedOffset>,
    window: &TimeWindow,
) {
    if t < &window.earliest && t.timestamp() >= EARLIEST_UNIX {
        errors.push(
            pointer,
            rule::TIMESTAMP_RANGE,
            format!(
                "{} is before {}, the earliest case time this gateway accepts",
                t.to_rfc3339(),
                window.earliest.to_rfc3339()
            ),
        );
    }
    let ahead = t.with_timezone(&Utc) - window.now;
    if ahead > TimeDelta::seconds(window.max_ahead_s) {
        errors.push(
            pointer,
            rule::TIMESTAMP_RANGE,
            format!(
                "{} is {} s ahead of the gateway's clock ({}): at most {} s allowed",
                t.to_rfc3339(),
                ahead.num_seconds(),
                window.now.with_timezone(&crate::BEIJING).to_rfc3339(),
                window.max_ahead_s
            ),
        );
    }
}

/// Counts the bytes a serializer writes, without keeping them.
struct ByteCount(usize);

impl io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Checks the item form: total size, keys per object, depth, key and string-value text.
pub(crate) fn form(errors: &mut ValidationErrors, form: &Map<String, Value>) {
    let mut count = ByteCount(0);
    // Writing to a counter cannot fail; a map of JSON values always serializes.
    let _ = serde_json::to_writer(&mut count, form);
    if count.0 > FORM_BYTES_MAX {
        errors.push(
            "/form",
            rule::MAX_SIZE,
            format!(
                "the form is {} bytes as compact JSON, at most {FORM_BYTES_MAX} ({} KiB) allowed",
                count.0,
                FORM_BYTES_MAX / 1024
            ),
        );
        return;
    }
    let mut walk = FormWalk { errors, found: 0 };
    walk.object("/form", form, 1);
}

/// A depth-first walk over the form that stops after [`FORM_PROBLEMS_MAX`] problems.
struct FormWalk<'a> {
    errors: &'a mut ValidationErrors,
    found: usize,
}

impl FormWalk<'_> {
    fn full(&self) -> bool {
        self.found >= FORM_PROBLEMS_MAX
    }

    fn check(&mut self, pointer: &str, s: &str, class: Class, max: usize) {
        let before = self.errors.len();
        text(self.errors, pointer, s, class, Some(max));
        self.found += self.errors.len() - before;
    }

    fn push(&mut self, pointer: &str, rule: &'static str, message: String) {
        self.errors.push(pointer, rule, message);
        self.found += 1;
    }

    fn object(&mut self, pointer: &str, map: &Map<String, Value>, depth: usize) {
        if map.len() > FORM_KEYS_MAX {
            let n = map.len();
            self.push(
                pointer,
                rule::MAX_KEYS,
                format!("{n} keys, at most {FORM_KEYS_MAX} allowed in one form object"),
            );
            return;
        }
        for (key, value) in map {
            if self.full() {
                return;
            }
            let member = format!("{pointer}/{}", escape(key));
            self.check(&member, key, Class::Name, FORM_KEY_MAX);
            self.value(&member, value, depth);
        }
    }

    fn value(&mut self, pointer: &str, value: &Value, depth: usize) {
        let nested = matches!(value, Value::Object(_) | Value::Array(_));
        if nested && depth + 1 > FORM_DEPTH_MAX {
            self.push(
                pointer,
                rule::MAX_DEPTH,
                format!(
                    "nested {} levels deep, at most {FORM_DEPTH_MAX} allowed (the form itself is level 1)",
                    depth + 1
                ),
            );
            return;
        }
        match value {
            Value::String(s) => self.check(pointer, s, Class::Text, TEXT_MAX),
            Value::Object(map) => self.object(pointer, map, depth + 1),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if self.full() {
                        return;
                    }
                    self.value(&format!("{pointer}/{i}"), item, depth + 1);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// Checks every text field of a case, the form and the earliest plausible timestamps.
pub(crate) fn case(errors: &mut ValidationErrors, c: &Case) {
    let id = Some(IDENTIFIER_MAX);
    text(errors, "/item/code", &c.item.code, Class::Name, id);
    text(errors, "/item/version", &c.item.version, Class::Name, id);
    text(
        errors,
        "/bureau/name",
        &c.bureau.name,
        Class::Name,
        Some(NAME_MAX),
    );
    party(errors, "/applicant", &c.applicant);
    if let Some(agent) = &c.agent {
        party(errors, "/agent", agent);
    }
    form(errors, &c.form);
    materials(errors, "/materials", &c.materials);
    not_too_early(errors, "/submitted_at", &c.submitted_at);
    if let Some(t) = &c.accepted_at {
        not_too_early(errors, "/accepted_at", t);
    }
    for (i, o) in c.checksum_overrides.iter().enumerate() {
        let base = format!("/checksum_overrides/{i}");
        let p = format!("{base}/pointer");
        text(errors, &p, &o.pointer, Class::Name, Some(POINTER_MAX));
        let p = format!("{base}/reason");
        text(errors, &p, &o.reason, Class::Text, Some(TEXT_MAX));
        let p = format!("{base}/approved_by");
        text(errors, &p, &o.approved_by, Class::Name, Some(NAME_MAX));
    }
}

/// Checks every text field of a case change and its earliest plausible timestamp.
pub(crate) fn change(errors: &mut ValidationErrors, c: &CaseChange) {
    not_too_early(errors, "/at", &c.at);
    match &c.kind {
        ChangeKind::Supplement { materials: m, note } => {
            materials(errors, "/kind/materials", m);
            optional_text(
                errors,
                "/kind/note",
                note.as_deref(),
                Class::Text,
                Some(TEXT_MAX),
            );
        }
        ChangeKind::Withdraw { reason } => {
            text(errors, "/kind/reason", reason, Class::Text, Some(TEXT_MAX));
        }
    }
}

/// Checks every text field of a ministry event against the character policy (names and
/// codes: no control or bidi characters; a reason: free text; a requested material: one
/// line) and its lengths, and its earliest plausible time.
pub(crate) fn event(errors: &mut ValidationErrors, e: &Event) {
    not_too_early(errors, "/at", &e.at);
    text(
        errors,
        "/network",
        &e.network,
        Class::Name,
        Some(IDENTIFIER_MAX),
    );
    // Its length is checked with its format (≤ 128).
    text(
        errors,
        "/network_case_number",
        &e.network_case_number,
        Class::Name,
        None,
    );
    let d = &e.details;
    optional_text(
        errors,
        "/details/reason",
        d.reason.as_deref(),
        Class::Text,
        Some(TEXT_MAX),
    );
    for (i, s) in d.supplement.iter().enumerate() {
        let p = format!("/details/supplement/{i}");
        text(errors, &p, s, Class::Line, Some(NAME_MAX));
    }
    let id = Some(IDENTIFIER_MAX);
    let cert = d.certificate_number.as_deref();
    optional_text(
        errors,
        "/details/certificate_number",
        cert,
        Class::Name,
        Some(NAME_MAX),
    );
    optional_text(
        errors,
        "/details/raw_status",
        d.raw_status.as_deref(),
        Class::Name,
        id,
    );
}

/// The case number, ID number (of a type with its own format) and phone keep their own
/// format rules; here: the other fields' lengths and characters.
fn party(errors: &mut ValidationErrors, base: &str, p: &Party) {
    let name = Some(NAME_MAX);
    text(errors, &format!("{base}/name"), &p.name, Class::Name, name);
    // Its length is checked with its format (≤ 64).
    text(
        errors,
        &format!("{base}/id_number"),
        &p.id_number,
        Class::Name,
        None,
    );
    let pointer = format!("{base}/legal_representative");
    optional_text(
        errors,
        &pointer,
        p.legal_representative.as_deref(),
        Class::Name,
        name,
    );
    let c = &p.contact;
    let pointer = format!("{base}/contact/phone");
    text(errors, &pointer, &c.phone, Class::Name, Some(PHONE_MAX));
    let pointer = format!("{base}/contact/email");
    optional_text(
        errors,
        &pointer,
        c.email.as_deref(),
        Class::Name,
        Some(EMAIL_MAX),
    );
    let pointer = format!("{base}/contact/address");
    optional_text(
        errors,
        &pointer,
        c.address.as_deref(),
        Class::Line,
        Some(ADDRESS_MAX),
    );
}

fn materials(errors: &mut ValidationErrors, pointer: &str, materials: &[Material]) {
    for (i, m) in materials.iter().enumerate() {
        let base = format!("{pointer}/{i}");
        text(
            errors,
            &format!("{base}/name"),
            &m.name,
            Class::Name,
            Some(NAME_MAX),
        );
        let p = format!("{base}/media_type");
        text(errors, &p, &m.media_type, Class::Name, Some(MEDIA_TYPE_MAX));
        text(
            errors,
            &format!("{base}/uri"),
            &m.uri,
            Class::Name,
            Some(URI_MAX),
        );
    }
}

impl Case {
    /// Checks the timestamps against the caller's clock: `submitted_at` and `accepted_at`
    /// inside `window` (rule `timestamp_range`). Pure: the gateway passes its clock and
    /// configured window, tests a fixed one.
    pub fn validate_clock(&self, window: &TimeWindow) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        in_window(&mut errors, "/submitted_at", &self.submitted_at, window);
        if let Some(t) = &self.accepted_at {
            in_window(&mut errors, "/accepted_at", t, window);
        }
        errors.into_result(())
    }

    /// [`Case::validate`] and [`Case::validate_clock`] together, every problem of both
    /// reported at once.
    pub fn validate_at(
        &self,
        window: &TimeWindow,
    ) -> Result<Vec<ChecksumOverride>, ValidationErrors> {
        let checked = self.validate();
        let clock = self.validate_clock(window);
        match (checked, clock) {
            (Ok(applied), Ok(())) => Ok(applied),
            (Ok(_), Err(e)) | (Err(e), Ok(())) => Err(e),
            (Err(mut e), Err(more)) => {
                e.0.extend(more);
                Err(e)
            }
        }
    }
}

impl CaseChange {
    /// Checks `at` against the caller's clock: inside `window`.
    pub fn validate_clock(&self, window: &TimeWindow) -> Result<(), ValidationErrors> {
        let mut errors = ValidationErrors::default();
        in_window(&mut errors, "/at", &self.at, window);
        errors.into_result(())
    }
}

//! Semantic validation of cases, events and case changes: every problem at once, each with its pointer and rule.

use std::collections::HashSet;

use chrono::{DateTime, FixedOffset};

use crate::error::rule;
use crate::ids::{self, IdError, IdType};
use crate::{
    BEIJING, Case, CaseChange, ChangeKind, ChecksumOverride, Contact, Event, Material, Party,
    PartyKind, ValidationErrors,
};

/// Longest case number, in characters.
const CASE_NUMBER_MAX: usize = 64;
/// Longest network case number, in characters.
const NETWORK_CASE_NUMBER_MAX: usize = 128;
/// Longest ID number of a type without its own format, in characters.
const ID_NUMBER_MAX: usize = 64;

impl Case {
    /// Checks everything the types cannot: identity numbers, code tables, formats,
    /// timestamps, overrides, and the content bounds of [`crate::bounds`] (lengths, control
    /// characters, form size, keys and depth, no timestamp before 2000). The clock-dependent
    /// check is [`Case::validate_clock`]. Reports every problem at once, never just the first.
    ///
    /// On success returns the checksum overrides that were applied (each waived a failing
    /// checksum), so the gateway can audit them.
    pub fn validate(&self) -> Result<Vec<ChecksumOverride>, ValidationErrors> {
        let mut v = Validator::default();

        v.schema_version("/schema_version", &self.schema_version);
        v.case_number("/case_number", &self.case_number);
        v.not_blank("/item/code", &self.item.code, "the item code");
        v.not_blank("/item/version", &self.item.version, "the item version");
        v.not_blank("/bureau/name", &self.bureau.name, "the bureau name");
        v.id_number("/bureau/uscc", IdType::Uscc, &self.bureau.uscc);
        v.party("/applicant", &self.applicant);
        if let Some(agent) = &self.agent {
            v.party("/agent", agent);
        }
        v.materials("/materials", &self.materials);
        if self.time_limit.value == 0 {
            v.errors.push(
                "/time_limit/value",
                rule::POSITIVE,
                "the time limit must be greater than zero",
            );
        }
        v.beijing_time("/submitted_at", &self.submitted_at);
        if let Some(accepted_at) = &self.accepted_at {
            v.beijing_time("/accepted_at", accepted_at);
            if accepted_at < &self.submitted_at {
                v.errors.push(
                    "/accepted_at",
                    rule::TIMESTAMP_ORDER,
                    format!(
                        "accepted_at {} is before submitted_at {}",
                        accepted_at.to_rfc3339(),
                        self.submitted_at.to_rfc3339()
                    ),
                );
            }
        }
        crate::bounds::case(&mut v.errors, self);
        let applied = v.apply_overrides(&self.checksum_overrides);
        v.errors.into_result(applied)
    }
}

impl Event {
    /// Checks an event: a network and a network case number (≤ 128 characters), a well-formed
    /// unified case number when present, non-empty details, a `sha256:` raw reference
    /// that is a real digest, and the content bounds (no control or bidi characters in
    /// names and codes, bounded lengths, not before 2000). `at` always has an offset (the parser requires one); unlike
    /// case timestamps it is not forced to +08:00.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::default();
        if let Some(case_number) = &self.case_number {
            v.case_number("/case_number", case_number);
        }
        v.not_blank("/network", &self.network, "the network");
        if v.not_blank(
            "/network_case_number",
            &self.network_case_number,
            "the network case number",
        ) {
            v.max_chars(
                "/network_case_number",
                &self.network_case_number,
                NETWORK_CASE_NUMBER_MAX,
            );
        }
        let d = &self.details;
        v.optional_not_blank("/details/reason", d.reason.as_deref(), "the reason");
        for (i, s) in d.supplement.iter().enumerate() {
            v.not_blank(
                &format!("/details/supplement/{i}"),
                s,
                "a requested material",
            );
        }
        v.optional_not_blank(
            "/details/certificate_number",
            d.certificate_number.as_deref(),
            "the certificate number",
        );
        v.optional_not_blank(
            "/details/raw_status",
            d.raw_status.as_deref(),
            "the raw status",
        );
        if let Some(raw_ref) = &self.raw_ref
            && v.not_blank("/raw_ref", raw_ref, "the raw reference")
            && let Some(hex) = raw_ref.strip_prefix("sha256:")
        {
            v.sha256("/raw_ref", hex);
        }
        crate::bounds::event(&mut v.errors, self);
        v.errors.into_result(())
    }
}

impl CaseChange {
    /// Checks a case change: a well-formed case number, a Beijing-time timestamp, at least one
    /// valid material for a supplement, a reason for a withdrawal.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Validator::default();
        v.case_number("/case_number", &self.case_number);
        v.beijing_time("/at", &self.at);
        match &self.kind {
            ChangeKind::Supplement { materials, note } => {
                if materials.is_empty() {
                    v.errors.push(
                        "/kind/materials",
                        rule::NOT_EMPTY,
                        "a supplement adds at least one material",
                    );
                }
                v.materials("/kind/materials", materials);
                v.optional_not_blank("/kind/note", note.as_deref(), "the note");
            }
            ChangeKind::Withdraw { reason } => {
                v.not_blank("/kind/reason", reason, "the withdrawal reason");
            }
        }
        crate::bounds::change(&mut v.errors, self);
        v.errors.into_result(())
    }
}

/// Rules an override can waive.
const CHECKSUM_RULES: [&str; 3] = [
    rule::RESIDENT_ID_CHECKSUM,
    rule::USCC_CHECKSUM,
    rule::USCC_ORG_CODE_CHECKSUM,
];

/// Collects problems in document order; checksum failures are removed again when an
/// override waives them.
#[derive(Default)]
struct Validator {
    errors: ValidationErrors,
    /// Fields with a failing checksum (a `CHECKSUM_RULES` error is in `errors`).
    checksum_failures: HashSet<String>,
    /// Fields whose checksum was verified (the only pointers an override can name).
    checksummed: Vec<String>,
    /// Fields whose format is broken, so their checksum could not be computed: an override
    /// naming one is not reported as unused (the format error already says what is wrong).
    checksum_unknown: HashSet<String>,
}

impl Validator {
    /// Reports an empty or whitespace-only string; returns whether the string has content.
    fn not_blank(&mut self, pointer: &str, s: &str, what: &str) -> bool {
        if s.trim().is_empty() {
            self.errors.push(
                pointer,
                rule::NOT_EMPTY,
                format!("{what} must not be empty"),
            );
            false
        } else {
            true
        }
    }

    fn optional_not_blank(&mut self, pointer: &str, s: Option<&str>, what: &str) {
        if let Some(s) = s {
            self.not_blank(pointer, s, &format!("{what}, when present,"));
        }
    }

    fn max_chars(&mut self, pointer: &str, s: &str, max: usize) -> bool {
        let n = s.chars().count();
        if n > max {
            self.errors.push(
                pointer,
                rule::MAX_LENGTH,
                format!("{n} characters, at most {max} allowed"),
            );
            false
        } else {
            true
        }
    }

    fn schema_version(&mut self, pointer: &str, s: &str) {
        let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        match s.split_once('.') {
            Some((major, minor)) if numeric(major) && numeric(minor) => {
                if major != "1" {
                    self.errors.push(
                        pointer,
                        rule::SCHEMA_VERSION,
                        format!(
                            "schema version {s} is not supported: this gateway reads major version 1 (current {})",
                            crate::SCHEMA_VERSION
                        ),
                    );
                }
            }
            _ => self.errors.push(
                pointer,
                rule::SCHEMA_VERSION,
                format!(
                    "schema version {s:?} is not major.minor, e.g. {}",
                    crate::SCHEMA_VERSION
                ),
            ),
        }
    }

    fn case_number(&mut self, pointer: &str, s: &str) {
        if !self.not_blank(pointer, s, "the case number") {
            return;
        }
        self.max_chars(pointer, s, CASE_NUMBER_MAX);
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            self.errors.push(
                pointer,
                rule::CASE_NUMBER_FORMAT,
                format!("{c:?} is not allowed in a case number: use A-Z, a-z, 0-9, '-' and '_'"),
            );
        }
    }

    fn beijing_time(&mut self, pointer: &str, t: &DateTime<FixedOffset>) {
        if *t.offset() != BEIJING {
            let beijing = t.with_timezone(&BEIJING);
            self.errors.push(
                pointer,
                rule::TIMEZONE,
                format!(
                    "{} has offset {}: the unified schema normalizes timestamps to Beijing time, write {}",
                    t.to_rfc3339(),
                    t.offset(),
                    beijing.to_rfc3339()
                ),
            );
        }
    }

    fn sha256(&mut self, pointer: &str, hex: &str) {
        let n = hex.chars().count();
        if n != 64 {
            self.errors.push(
                pointer,
                rule::SHA256_FORMAT,
                format!("a SHA-256 digest is 64 lowercase hex digits, got {n} characters"),
            );
        } else if let Some(c) = hex.chars().find(|c| !matches!(c, '0'..='9' | 'a'..='f')) {
            self.errors.push(
                pointer,
                rule::SHA256_FORMAT,
                format!("{c:?} is not a lowercase hex digit: a SHA-256 digest is 64 of 0-9a-f"),
            );
        }
    }

    fn materials(&mut self, pointer: &str, materials: &[Material]) {
        for (i, m) in materials.iter().enumerate() {
            let base = format!("{pointer}/{i}");
            self.not_blank(&format!("{base}/name"), &m.name, "the material name");
            let media_ok = m.media_type.split_once('/').is_some_and(|(t, sub)| {
                !t.is_empty()
                    && !sub.is_empty()
                    && !sub.contains('/')
                    && !m.media_type.chars().any(char::is_whitespace)
            });
            if !media_ok {
                self.errors.push(
                    format!("{base}/media_type"),
                    rule::MEDIA_TYPE_FORMAT,
                    format!(
                        "{:?} is not a media type: write type/subtype, e.g. application/pdf",
                        m.media_type
                    ),
                );
            }
            self.sha256(&format!("{base}/sha256"), &m.sha256);
            self.not_blank(&format!("{base}/uri"), &m.uri, "the material URI");
        }
    }

    fn party(&mut self, base: &str, p: &Party) {
        self.not_blank(&format!("{base}/name"), &p.name, "the name");
        let id_type = IdType::from_code(&p.id_type);
        match id_type {
            None => self.errors.push(
                format!("{base}/id_type"),
                rule::CODE_TABLE,
                format!(
                    "{:?} is not a unified ID type code; allowed: {}",
                    p.id_type,
                    IdType::allowed_codes()
                ),
            ),
            Some(t) => {
                let fits = match p.kind {
                    PartyKind::Enterprise => t.is_organisation_document(),
                    PartyKind::NaturalPerson => !t.is_organisation_document(),
                    PartyKind::OtherOrganization => true,
                };
                if !fits {
                    let message = match p.kind {
                        PartyKind::Enterprise => format!(
                            "an enterprise is identified by 001 统一社会信用代码 or 099 其他法人证件, not {} {}",
                            t.code(),
                            t.label_zh()
                        ),
                        _ => format!(
                            "a natural person cannot be identified by {} {}; use a personal document (111, 113, 414, 513, 516, 990, 999)",
                            t.code(),
                            t.label_zh()
                        ),
                    };
                    self.errors
                        .push(format!("{base}/id_type"), rule::PARTY_KIND_ID_TYPE, message);
                }
            }
        }
        let id_pointer = format!("{base}/id_number");
        if self.not_blank(&id_pointer, &p.id_number, "the ID number") {
            match id_type {
                Some(t) => self.id_number(&id_pointer, t, &p.id_number),
                None => {
                    self.max_chars(&id_pointer, &p.id_number, ID_NUMBER_MAX);
                }
            }
        }
        match (&p.legal_representative, p.kind) {
            (None, PartyKind::Enterprise) => self.errors.push(
                format!("{base}/legal_representative"),
                rule::REQUIRED,
                "an enterprise applicant names its legal representative (法定代表人)",
            ),
            (Some(name), _) => {
                self.not_blank(
                    &format!("{base}/legal_representative"),
                    name,
                    "the legal representative",
                );
            }
            (None, _) => {}
        }
        self.contact(&format!("{base}/contact"), &p.contact);
    }

    fn contact(&mut self, base: &str, c: &Contact) {
        let phone_pointer = format!("{base}/phone");
        if self.not_blank(&phone_pointer, &c.phone, "the phone number") {
            let rest = c.phone.strip_prefix('+').unwrap_or(&c.phone);
            let ok = rest.chars().all(|ch| ch.is_ascii_digit() || ch == '-')
                && rest.chars().any(|ch| ch.is_ascii_digit());
            if !ok {
                self.errors.push(
                    phone_pointer,
                    rule::PHONE_FORMAT,
                    format!(
                        "{:?} is not a phone number: use digits and '-', with an optional leading '+' (e.g. 0591-87654321, 13800138000)",
                        c.phone
                    ),
                );
            }
        }
        if let Some(email) = &c.email {
            let ok = email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            }) && !email.chars().any(char::is_whitespace);
            if !ok {
                self.errors.push(
                    format!("{base}/email"),
                    rule::EMAIL_FORMAT,
                    format!("{email:?} is not an e-mail address (local@domain)"),
                );
            }
        }
        self.optional_not_blank(
            &format!("{base}/address"),
            c.address.as_deref(),
            "the address",
        );
    }

    /// Checks an ID number by its type. Checksum failures are held back for override matching.
    fn id_number(&mut self, pointer: &str, id_type: IdType, number: &str) {
        let (problems, format_rule, checksum_rule, standard) = match id_type {
            IdType::ResidentIdCard => (
                ids::resident_id_problems(number),
                rule::RESIDENT_ID_FORMAT,
                rule::RESIDENT_ID_CHECKSUM,
                " (GB 11643)",
            ),
            IdType::Uscc => (
                ids::uscc_problems(number),
                rule::USCC_FORMAT,
                rule::USCC_CHECKSUM,
                " (GB 32100)",
            ),
            _ => {
                self.max_chars(pointer, number, ID_NUMBER_MAX);
                return;
            }
        };
        self.checksummed.push(pointer.to_owned());
        for problem in problems {
            match &problem {
                IdError::Format(m) => {
                    self.checksum_unknown.insert(pointer.to_owned());
                    self.errors
                        .push(pointer, format_rule, format!("{number}: {m}"));
                }
                IdError::BirthDate(_) => {
                    self.errors.push(
                        pointer,
                        rule::RESIDENT_ID_BIRTH_DATE,
                        format!("{number}: {problem}"),
                    );
                }
                IdError::Checksum { .. } | IdError::OrgCodeChecksum { .. } => {
                    let (rule, standard) = match problem {
                        IdError::OrgCodeChecksum { .. } => (rule::USCC_ORG_CODE_CHECKSUM, ""),
                        _ => (checksum_rule, standard),
                    };
                    self.checksum_failures.insert(pointer.to_owned());
                    self.errors.push(
                        pointer,
                        rule,
                        format!(
                            "{number}: {problem}{standard}; a legally valid legacy code needs a checksum_overrides entry for {pointer}"
                        ),
                    );
                }
            }
        }
    }

    /// Waives checksum failures named by an override, reports the rest, and reports every
    /// override that waived nothing. Returns the overrides applied, in input order.
    fn apply_overrides(&mut self, overrides: &[ChecksumOverride]) -> Vec<ChecksumOverride> {
        for (i, o) in overrides.iter().enumerate() {
            let base = format!("/checksum_overrides/{i}");
            self.not_blank(
                &format!("{base}/pointer"),
                &o.pointer,
                "the override pointer",
            );
            self.not_blank(&format!("{base}/reason"), &o.reason, "the override reason");
            self.not_blank(
                &format!("{base}/approved_by"),
                &o.approved_by,
                "the override approver",
            );
        }
        let mut used = vec![false; overrides.len()];
        let mut waived = HashSet::new();
        for pointer in &self.checksum_failures {
            if let Some(i) = overrides.iter().position(|o| &o.pointer == pointer) {
                used[i] = true;
                waived.insert(pointer.as_str());
            }
        }
        self.errors
            .0
            .retain(|e| !(CHECKSUM_RULES.contains(&e.rule) && waived.contains(e.pointer.as_str())));
        for (i, o) in overrides.iter().enumerate() {
            if used[i] || self.checksum_unknown.contains(&o.pointer) {
                continue;
            }
            let message = if let Some(j) =
                overrides[..i].iter().position(|p| p.pointer == o.pointer)
            {
                format!(
                    "duplicate override for {}: /checksum_overrides/{j} already names it",
                    o.pointer
                )
            } else if self.checksummed.contains(&o.pointer) {
                format!(
                    "the checksum at {} passes, so there is nothing to waive: remove the override",
                    o.pointer
                )
            } else {
                format!(
                    "{:?} names no checksummed field; overrides apply to {}",
                    o.pointer,
                    self.checksummed.join(", ")
                )
            };
            self.errors.push(
                format!("/checksum_overrides/{i}/pointer"),
                rule::OVERRIDE_UNUSED,
                message,
            );
        }
        overrides
            .iter()
            .zip(used)
            .filter(|&(_, u)| u)
            .map(|(o, _)| o.clone())
            .collect()
    }
}

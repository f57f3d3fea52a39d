//! Identity documents: the unified ID-type code table and the GB 11643 / GB 32100 / GB 11714 check algorithms.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::ParseCodeError;

/// One entry of the unified ID document type code table (sets A and B of shared/DOMAIN.md).
///
/// In JSON the type is carried as its code string (`"111"`), never as a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdType {
    /// `111` 居民身份证, the resident ID card (GB 11643 number).
    ResidentIdCard,
    /// `113` 户口簿, the household register.
    HouseholdRegister,
    /// `414` 普通护照, an ordinary passport.
    Passport,
    /// `513` 往来港澳通行证, a mainland resident's permit to travel to Hong Kong and Macau.
    HkMacauTravelPermit,
    /// `990` 其他, another personal document.
    OtherPersonDocument,
    /// `001` 统一社会信用代码, the unified social credit code (GB 32100).
    Uscc,
    /// `099` 其他法人证件, another legal-person certificate.
    OtherLegalPersonCertificate,
    /// `516` 港澳居民来往内地通行证, a Hong Kong / Macau resident's mainland travel permit.
    HkMacauResidentsMainlandPermit,
    /// `999` 其他自然人证件, another natural-person certificate.
    OtherNaturalPersonCertificate,
}

impl IdType {
    /// Every entry of the table, in code-table order (set A, then set B).
    pub const ALL: [IdType; 9] = [
        IdType::ResidentIdCard,
        IdType::HouseholdRegister,
        IdType::Passport,
        IdType::HkMacauTravelPermit,
        IdType::OtherPersonDocument,
        IdType::Uscc,
        IdType::OtherLegalPersonCertificate,
        IdType::HkMacauResidentsMainlandPermit,
        IdType::OtherNaturalPersonCertificate,
    ];

    /// The code written in JSON, e.g. `"111"`.
    pub fn code(self) -> &'static str {
        match self {
            IdType::ResidentIdCard => "111",
            IdType::HouseholdRegister => "113",
            IdType::Passport => "414",
            IdType::HkMacauTravelPermit => "513",
            IdType::OtherPersonDocument => "990",
            IdType::Uscc => "001",
            IdType::OtherLegalPersonCertificate => "099",
            IdType::HkMacauResidentsMainlandPermit => "516",
            IdType::OtherNaturalPersonCertificate => "999",
        }
    }

    /// Looks a code up in the table; `None` when the code is not a unified one.
    pub fn from_code(code: &str) -> Option<IdType> {
        IdType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The Chinese name of the document, as shown to bureau staff.
    pub fn label_zh(self) -> &'static str {
        match self {
            IdType::ResidentIdCard => "居民身份证",
            IdType::HouseholdRegister => "户口簿",
            IdType::Passport => "普通护照",
            IdType::HkMacauTravelPermit => "往来港澳通行证",
            IdType::OtherPersonDocument => "其他",
            IdType::Uscc => "统一社会信用代码",
            IdType::OtherLegalPersonCertificate => "其他法人证件",
            IdType::HkMacauResidentsMainlandPermit => "港澳居民来往内地通行证",
            IdType::OtherNaturalPersonCertificate => "其他自然人证件",
        }
    }

    /// Whether the document identifies a legal person or organisation (`001`, `099`)
    /// rather than a natural person.
    pub fn is_organisation_document(self) -> bool {
        matches!(self, IdType::Uscc | IdType::OtherLegalPersonCertificate)
    }

    /// All codes as a comma-separated list, for error messages.
    pub(crate) fn allowed_codes() -> String {
        IdType::ALL
            .iter()
            .map(|t| format!("{} {}", t.code(), t.label_zh()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for IdType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for IdType {
    type Err = ParseCodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdType::from_code(s).ok_or_else(|| ParseCodeError {
            table: "id_type",
            value: s.to_owned(),
            allowed: IdType::ALL
                .iter()
                .map(|t| t.code())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }
}

/// Why an ID number failed its check.
///
/// Format and birth-date problems can never be waived; checksum problems can, with a
/// [`ChecksumOverride`](crate::ChecksumOverride) (see [`IdError::is_checksum`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Wrong length or a character outside the allowed alphabet.
    #[error("{0}")]
    Format(String),
    /// Characters 7–14 of a resident ID number are not a calendar date on or after 1900-01-01.
    #[error("birth date {0} (characters 7-14) is not a real calendar date on or after 19000101")]
    BirthDate(String),
    /// The final check character is wrong.
    #[error("check character should be '{expected}', found '{found}'")]
    Checksum {
        /// The check character computed from the first 17 characters.
        expected: char,
        /// The check character written.
        found: char,
    },
    /// The organisation code embedded in a USCC (characters 9–17, GB 11714) has a wrong
    /// check character (character 17).
    #[error(
        "embedded organisation code {code} (characters 9-17, GB 11714): check character should be '{expected}', found '{found}'"
    )]
    OrgCodeChecksum {
        /// Characters 9–17 of the USCC.
        code: String,
        /// The GB 11714 check character computed from characters 9–16.
        expected: char,
        /// Character 17 as written.
        found: char,
    },
}

impl IdError {
    /// Whether this is a checksum failure (waivable by an audited override) rather than a
    /// format or birth-date failure (never waivable).
    pub fn is_checksum(&self) -> bool {
        matches!(
            self,
            IdError::Checksum { .. } | IdError::OrgCodeChecksum { .. }
        )
    }
}

/// GB 11643 weights for characters 1..17 of a resident ID number.
const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// GB 11643 check characters, indexed by the weighted sum mod 11.
const RESIDENT_ID_CHECK: &[u8; 11] = b"10X98765432";

/// The GB 32100 alphabet; a character's value is its index (0–30). No I, O, S, V, Z.
pub const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100 weights for characters 1..17 of a USCC.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// GB 11714 weights for the 8 body characters of an organisation code.
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Computes the GB 11643 check character for the first 17 characters of a resident ID number.
///
/// Fails with [`IdError::Format`] unless `first17` is exactly 17 ASCII digits.
pub fn resident_id_check_char(first17: &str) -> Result<char, IdError> {
    let bytes = first17.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return Err(IdError::Format(format!(
            "the first 17 characters of a resident ID number must be 17 digits, got {first17:?}"
        )));
    }
    let sum: u32 = bytes
        .iter()
        .zip(RESIDENT_ID_WEIGHTS)
        .map(|(b, w)| u32::from(b - b'0') * w)
        .sum();
    Ok(char::from(RESIDENT_ID_CHECK[(sum % 11) as usize]))
}

/// Every problem with a resident ID number (GB 11643-1999), format first.
///
/// A format problem stops the other checks; otherwise the birth date and the check
/// character are both checked, so both can be reported.
pub fn resident_id_problems(s: &str) -> Vec<IdError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return vec![IdError::Format(format!(
            "a resident ID number has 18 characters, got {}",
            chars.len()
        ))];
    }
    if let Some((i, c)) = chars[..17]
        .iter()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_digit())
    {
        return vec![IdError::Format(format!(
            "character {} is {c:?}: characters 1-17 of a resident ID number are digits",
            i + 1
        ))];
    }
    let last = chars[17];
    if !(last.is_ascii_digit() || last == 'X') {
        return vec![IdError::Format(format!(
            "character 18 is {last:?}: the check character is a digit or an uppercase X"
        ))];
    }
    let mut problems = Vec::new();
    let birth = &s[6..14];
    if !is_real_birth_date(birth) {
        problems.push(IdError::BirthDate(birth.to_owned()));
    }
    match resident_id_check_char(&s[..17]) {
        Ok(expected) if expected != last => problems.push(IdError::Checksum {
            expected,
            found: last,
        }),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    problems
}

/// Checks a resident ID number (GB 11643-1999): 18 characters, a real birth date
/// (YYYYMMDD, not before 1900) and the check character. Returns the first problem.
pub fn check_resident_id(s: &str) -> Result<(), IdError> {
    match resident_id_problems(s).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `YYYYMMDD`, a real calendar date, year ≥ 1900. No upper bound: the schema is pure and
/// has no clock to compare with.
fn is_real_birth_date(yyyymmdd: &str) -> bool {
    let parse = |r: std::ops::Range<usize>| yyyymmdd.get(r).and_then(|p| p.parse::<u32>().ok());
    match (parse(0..4), parse(4..6), parse(6..8)) {
        (Some(y), Some(m), Some(d)) if y >= 1900 => i32::try_from(y)
            .ok()
            .and_then(|y| NaiveDate::from_ymd_opt(y, m, d))
            .is_some(),
        _ => false,
    }
}

/// The value (0–30) of a USCC character, `None` outside the alphabet.
fn uscc_value(c: char) -> Option<u32> {
    USCC_ALPHABET
        .find(c)
        .and_then(|i| u32::try_from(i).ok())
        .filter(|_| c.is_ascii())
}

/// Computes the GB 32100 check character for the first 17 characters of a USCC.
///
/// Fails with [`IdError::Format`] unless `first17` is 17 characters of [`USCC_ALPHABET`].
pub fn uscc_check_char(first17: &str) -> Result<char, IdError> {
    let values: Option<Vec<u32>> = first17.chars().map(uscc_value).collect();
    let values = match values {
        Some(v) if v.len() == 17 => v,
        _ => {
            return Err(IdError::Format(format!(
                "the first 17 characters of a USCC must be 17 characters of {USCC_ALPHABET}, got {first17:?}"
            )));
        }
    };
    let sum: u32 = values.iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    Ok(char::from(USCC_ALPHABET.as_bytes()[check as usize]))
}

/// Computes the GB 11714 check character for the 8 body characters of an organisation code.
///
/// Character values follow GB 11714: digits are themselves, letters A=10 … Z=35 (not
/// their USCC alphabet index). Fails with [`IdError::Format`] unless `first8` is 8 ASCII
/// digits or uppercase letters.
pub fn org_code_check_char(first8: &str) -> Result<char, IdError> {
    let values: Option<Vec<u32>> = first8
        .chars()
        .map(|c| match c {
            '0'..='9' | 'A'..='Z' => c.to_digit(36),
            _ => None,
        })
        .collect();
    let values = match values {
        Some(v) if v.len() == 8 => v,
        _ => {
            return Err(IdError::Format(format!(
                "an organisation code body is 8 digits or uppercase letters, got {first8:?}"
            )));
        }
    };
    let sum: u32 = values
        .iter()
        .zip(ORG_CODE_WEIGHTS)
        .map(|(v, w)| v * w)
        .sum();
    Ok(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10).unwrap_or('?'),
    })
}

/// Every problem with a unified social credit code (GB 32100-2015), format first.
///
/// A format problem stops the other checks; otherwise the embedded organisation code
/// (GB 11714) and the final check character are both checked.
pub fn uscc_problems(s: &str) -> Vec<IdError> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 18 {
        return vec![IdError::Format(format!(
            "a USCC has 18 characters, got {}",
            chars.len()
        ))];
    }
    if let Some((i, c)) = chars
        .iter()
        .enumerate()
        .find(|(_, c)| uscc_value(**c).is_none())
    {
        return vec![IdError::Format(format!(
            "character {} is {c:?}: a USCC uses only {USCC_ALPHABET} (uppercase, no I O S V Z)",
            i + 1
        ))];
    }
    let mut problems = Vec::new();
    // All characters are ASCII from here on, so byte slicing is on character boundaries.
    let org = &s[8..17];
    match org_code_check_char(&org[..8]) {
        Ok(expected) if expected != chars[16] => problems.push(IdError::OrgCodeChecksum {
            code: org.to_owned(),
            expected,
            found: chars[16],
        }),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    match uscc_check_char(&s[..17]) {
        Ok(expected) if expected != chars[17] => problems.push(IdError::Checksum {
            expected,
            found: chars[17],
        }),
        Ok(_) => {}
        Err(e) => problems.push(e),
    }
    problems
}

/// Checks a unified social credit code (GB 32100-2015): 18 characters of
/// [`USCC_ALPHABET`], the embedded organisation code's GB 11714 check character
/// (character 17) and the final check character. Returns the first problem.
pub fn check_uscc(s: &str) -> Result<(), IdError> {
    match uscc_problems(s).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_id_domain_vectors() {
        assert_eq!(check_resident_id("11010519491231002X"), Ok(()));
        assert_eq!(
            check_resident_id("110105194912310021"),
            Err(IdError::Checksum {
                expected: 'X',
                found: '1'
            })
        );
        assert_eq!(resident_id_check_char("11010519491231002"), Ok('X'));
    }

    #[test]
    fn resident_id_format_and_birth_date() {
        assert!(matches!(
            check_resident_id("11010519491231002"),
            Err(IdError::Format(_))
        ));
        assert!(matches!(
            check_resident_id("11010519491231002x"),
            Err(IdError::Format(_))
        ));
        assert!(matches!(
            check_resident_id("1101051949123100AX"),
            Err(IdError::Format(_))
        ));
        // 1949-02-30 does not exist; the birth date and the checksum are both reported.
        let first17 = "11010519490230002";
        let good = format!(
            "{first17}{}",
            resident_id_check_char(first17).unwrap_or('?')
        );
        assert_eq!(
            resident_id_problems(&good),
            vec![IdError::BirthDate("19490230".into())]
        );
        let early = "11010518991231002";
        let early = format!("{early}{}", resident_id_check_char(early).unwrap_or('?'));
        assert_eq!(
            check_resident_id(&early),
            Err(IdError::BirthDate("18991231".into()))
        );
        // Leap day is a real date.
        let leap = "35010220000229123";
        let leap = format!("{leap}{}", resident_id_check_char(leap).unwrap_or('?'));
        assert_eq!(check_resident_id(&leap), Ok(()));
    }

    #[test]
    fn uscc_domain_vectors() {
        assert_eq!(check_uscc("9144030071526726XG"), Ok(()));
        assert_eq!(check_uscc("91350100M000100Y43"), Ok(()));
        assert_eq!(uscc_check_char("9144030071526726X"), Ok('G'));
        assert_eq!(uscc_check_char("91350100M000100Y4"), Ok('3'));
        // The early pilot code passes its embedded GB 11714 check but not the final one.
        assert_eq!(
            uscc_problems("91350100M0001TGQXM"),
            vec![IdError::Checksum {
                expected: '1',
                found: 'M'
            }]
        );
    }

    #[test]
    fn embedded_org_code_check_passes_for_every_domain_vector() {
        // GB 11714 values letters A=10..Z=35; with USCC alphabet indexes instead,
        // 91350100M0001TGQXM would compute '8' and fail, so the distinction matters.
        assert_eq!(org_code_check_char("71526726"), Ok('X'));
        assert_eq!(org_code_check_char("M000100Y"), Ok('4'));
        assert_eq!(org_code_check_char("M0001TGQ"), Ok('X'));
    }

    #[test]
    fn uscc_format_and_org_code() {
        assert!(matches!(
            check_uscc("9144030071526726X"),
            Err(IdError::Format(_))
        ));
        // 'I' is not in the alphabet; neither are lowercase letters.
        assert!(matches!(
            check_uscc("9144030071526726IG"),
            Err(IdError::Format(_))
        ));
        assert!(matches!(
            check_uscc("9144030071526726xg"),
            Err(IdError::Format(_))
        ));
        // Break the embedded code's check character and recompute the outer one: only
        // the GB 11714 check fails.
        let first17 = "914403007152672601";
        let first17 = &first17[..17];
        let code = format!("{first17}{}", uscc_check_char(first17).unwrap_or('?'));
        assert_eq!(
            uscc_problems(&code),
            vec![IdError::OrgCodeChecksum {
                code: "715267260".into(),
                expected: 'X',
                found: '0'
            }]
        );
        assert!(uscc_problems(&code)[0].is_checksum());
    }

    #[test]
    fn id_type_table_round_trips() {
        for t in IdType::ALL {
            assert_eq!(IdType::from_code(t.code()), Some(t));
            assert_eq!(t.to_string().parse::<IdType>(), Ok(t));
        }
        assert_eq!(IdType::from_code("112"), None);
        assert!("112".parse::<IdType>().is_err());
        assert!(IdType::Uscc.is_organisation_document());
        assert!(!IdType::ResidentIdCard.is_organisation_document());
    }
}

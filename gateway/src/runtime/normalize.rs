//! Adapter output checked against the contract and normalized into the
//! unified schema. Anything an adapter returns is untrusted input.

use super::bindings::{self, CallbackOutcome, Descriptor, PollResult, Receipt};
use super::call::CallReport;
use super::error::{CallError, EventError, OutputError, TextError, TextProblem};
use super::limits::LimitHit;
use serde::Serialize;
use yiwang_schema::{BEIJING, Decision, Event, EventDetails, Stage};

const MAX_CASE_NUMBER: usize = 128;
const MAX_FIELD: usize = 64 << 10;
const MAX_CURSOR: usize = 4096;

/// A receipt with its events in unified form.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedReceipt {
    pub network_case_number: String,
    pub raw_receipt: String,
    pub events: Vec<Event>,
}

/// A poll's events in unified form.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedPoll {
    pub events: Vec<Event>,
    pub next_cursor: Option<String>,
}

/// A callback's events and the answer for the ministry.
#[derive(Debug, Clone, Serialize)]
pub struct NormalizedCallback {
    pub events: Vec<Event>,
    pub response: bindings::HttpResponse,
}

/// Enforce the output cap, then normalize; a failure in either fails the call.
pub(crate) fn check<T: Serialize, U>(
    report: CallReport<T>,
    max_output: usize,
    normalize: impl FnOnce(T) -> Result<U, OutputError>,
) -> CallReport<U> {
    let CallReport {
        result,
        trace,
        elapsed,
    } = report;
    let result = result.and_then(|value| {
        let mut counted = ByteCount(0);
        let size = serde_json::to_writer(&mut counted, &value)
            .map(|()| counted.0)
            .unwrap_or(usize::MAX);
        if size > max_output {
            return Err(CallError::Limit(LimitHit::Output {
                size,
                limit: max_output,
            }));
        }
        normalize(value).map_err(CallError::Malformed)
    });
    CallReport {
        result,
        trace,
        elapsed,
    }
}

/// Counts the bytes of the JSON form of an output without keeping them.
struct ByteCount(usize);

impl std::io::Write for ByteCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn text(what: &'static str, value: &str, max: usize) -> Result<(), TextError> {
    let problem = if value.trim().is_empty() {
        TextProblem::Empty
    } else if value.len() > max {
        TextProblem::TooLong {
            len: value.len(),
            max,
        }
    } else if value.chars().any(char::is_control) {
        TextProblem::ControlCharacters
    } else {
        return Ok(());
    };
    Err(TextError { what, problem })
}

pub(crate) fn descriptor(d: Descriptor) -> Result<Descriptor, OutputError> {
    text("describe: name", &d.name, 128)?;
    text("describe: version", &d.version, 64)?;
    let major = d.contract_version.split('.').next().unwrap_or_default();
    if major != "1" {
        return Err(OutputError::ContractVersion {
            version: d.contract_version,
        });
    }
    for (i, m) in d.field_mappings.iter().enumerate() {
        if !m.unified.starts_with('/') {
            return Err(OutputError::MappingPointer {
                index: i,
                pointer: m.unified.clone(),
            });
        }
    }
    Ok(d)
}

pub(crate) fn receipt(
    network: &str,
    case: &str,
    r: Receipt,
) -> Result<NormalizedReceipt, OutputError> {
    text(
        "receipt: network-case-number",
        &r.network_case_number,
        MAX_CASE_NUMBER,
    )
    .map_err(OutputError::ReceiptCaseNumber)?;
    let events = events(network, Some(case), r.events)?;
    if let Some(other) = events
        .iter()
        .find(|e| e.network_case_number != r.network_case_number)
    {
        return Err(OutputError::ReceiptMismatch {
            event: other.network_case_number.clone(),
            receipt: r.network_case_number,
        });
    }
    Ok(NormalizedReceipt {
        network_case_number: r.network_case_number,
        raw_receipt: r.raw_receipt,
        events,
    })
}

pub(crate) fn poll(network: &str, p: PollResult) -> Result<NormalizedPoll, OutputError> {
    if let Some(c) = &p.next_cursor
        && c.len() > MAX_CURSOR
    {
        return Err(OutputError::CursorTooLong {
            len: c.len(),
            max: MAX_CURSOR,
        });
    }
    Ok(NormalizedPoll {
        events: events(network, None, p.events)?,
        next_cursor: p.next_cursor,
    })
}

pub(crate) fn callback(
    network: &str,
    c: CallbackOutcome,
) -> Result<NormalizedCallback, OutputError> {
    if !(100..=599).contains(&c.response.status) {
        return Err(OutputError::CallbackStatus {
            status: c.response.status,
        });
    }
    Ok(NormalizedCallback {
        events: events(network, None, c.events)?,
        response: c.response,
    })
}

pub(crate) fn events(
    network: &str,
    case: Option<&str>,
    events: Vec<bindings::Event>,
) -> Result<Vec<Event>, OutputError> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            event(network, case, e).map_err(|error| OutputError::Event { index, error })
        })
        .collect()
}

fn event(network: &str, case: Option<&str>, e: bindings::Event) -> Result<Event, EventError> {
    text(
        "network-case-number",
        &e.network_case_number,
        MAX_CASE_NUMBER,
    )?;
    let at = chrono::DateTime::parse_from_rfc3339(&e.at).map_err(|error| EventError::Time {
        at: e.at.clone(),
        error,
    })?;
    for (what, v) in [
        ("reason", &e.reason),
        ("certificate-number", &e.certificate_number),
        ("raw-status", &e.raw_status),
    ] {
        if let Some(v) = v
            && v.len() > MAX_FIELD
        {
            let problem = TextProblem::TooLong {
                len: v.len(),
                max: MAX_FIELD,
            };
            return Err(TextError { what, problem }.into());
        }
    }
    let case_number = match (case, e.case_number) {
        (Some(known), Some(said)) if known != said => {
            return Err(EventError::OtherCase {
                said,
                known: known.to_string(),
            });
        }
        (Some(known), _) => Some(known.to_string()),
        (None, said) => said,
    };
    let ev = Event {
        case_number,
        network: network.to_string(),
        network_case_number: e.network_case_number,
        stage: stage(e.stage),
        at: at.with_timezone(&BEIJING),
        details: EventDetails {
            reason: e.reason,
            supplement: e.supplement,
            decision: e.decision.map(|d| match d {
                bindings::Decision::Approved => Decision::Approved,
                bindings::Decision::Denied => Decision::Denied,
            }),
            certificate_number: e.certificate_number,
            raw_status: e.raw_status,
        },
        raw_ref: None,
    };
    ev.validate()?;
    Ok(ev)
}

fn stage(s: bindings::Stage) -> Stage {
    use bindings::Stage as W;
    match s {
        W::Received => Stage::Received,
        W::Accepted => Stage::Accepted,
        W::Rejected => Stage::Rejected,
        W::SupplementRequested => Stage::SupplementRequested,
        W::UnderReview => Stage::UnderReview,
        W::SiteInspection => Stage::SiteInspection,
        W::Decided => Stage::Decided,
        W::CertificateIssued => Stage::CertificateIssued,
        W::Completed => Stage::Completed,
        W::Withdrawn => Stage::Withdrawn,
        W::SpecialProcedureStarted => Stage::SpecialProcedureStarted,
        W::SpecialProcedureEnded => Stage::SpecialProcedureEnded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(at: &str) -> bindings::Event {
        bindings::Event {
            network_case_number: "N-1".into(),
            case_number: None,
            stage: bindings::Stage::Accepted,
            at: at.into(),
            reason: None,
            supplement: Vec::new(),
            decision: None,
            certificate_number: None,
            raw_status: None,
        }
    }

    fn receipt(number: &str, events: Vec<bindings::Event>) -> Receipt {
        Receipt {
            network_case_number: number.into(),
            raw_receipt: String::new(),
            events,
        }
    }

    /// Operators and dead-letter reasons read these words; they stay as they were.
    #[test]
    fn refusals_keep_their_wording() {
        let said = |r: Result<NormalizedReceipt, OutputError>| r.err().map(|e| e.to_string());
        assert_eq!(
            said(super::receipt("net", "C-1", receipt(" ", vec![]))).as_deref(),
            Some("receipt: network-case-number is empty (the ministry's case number is required)")
        );
        assert_eq!(
            said(super::receipt(
                "net",
                "C-1",
                receipt("N-1", vec![event("yesterday")])
            ))
            .as_deref(),
            Some(
                "events[0]: at \"yesterday\" is not RFC 3339 with an offset: premature end of input"
            )
        );
        let mut other = event("2026-11-20T09:30:00+08:00");
        other.network_case_number = "N-2".into();
        assert_eq!(
            said(super::receipt("net", "C-1", receipt("N-1", vec![other]))).as_deref(),
            Some("receipt: event for \"N-2\" does not match the receipt's case number \"N-1\"")
        );
        let mut long = event("2026-11-20T09:30:00+08:00");
        long.raw_status = Some("x".repeat(MAX_FIELD + 1));
        assert_eq!(
            events("net", None, vec![event("2026-11-20T09:30:00+08:00"), long])
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("events[1]: raw-status is 65537 bytes, over 65536")
        );
        let cursor = PollResult {
            events: vec![],
            next_cursor: Some("c".repeat(MAX_CURSOR + 1)),
        };
        assert_eq!(
            poll("net", cursor).err().map(|e| e.to_string()).as_deref(),
            Some("poll: next-cursor is 4097 bytes, over 4096")
        );
    }

    #[test]
    fn events_are_normalized_to_beijing_time() {
        let got = events("net", Some("C-1"), vec![event("2026-11-20T01:30:00Z")]).unwrap();
        assert_eq!(got[0].at.to_rfc3339(), "2026-11-20T09:30:00+08:00");
        assert_eq!(got[0].case_number.as_deref(), Some("C-1"));
    }
}

//! Adapter output checked against the contract and normalized into the
//! unified schema. Anything an adapter returns is untrusted input.

use super::CallReport;
use super::bindings::{self, CallbackOutcome, Descriptor, PollResult, Receipt};
use super::error::CallError;
use super::limits::LimitHit;
use serde::Serialize;
use yiwang_schema::{Decision, Event, EventDetails, Stage};

const MAX_CASE_NUMBER: usize = 128;
const MAX_FIELD: usize = 64 << 10;

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
    normalize: impl FnOnce(T) -> Result<U, String>,
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

fn text(what: &str, value: &str, max: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{what} is empty"));
    }
    if value.len() > max {
        return Err(format!("{what} is {} bytes, over {max}", value.len()));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("{what} contains control characters"));
    }
    Ok(())
}

pub(crate) fn descriptor(d: Descriptor) -> Result<Descriptor, String> {
    text("describe: name", &d.name, 128)?;
    text("describe: version", &d.version, 64)?;
    let major = d.contract_version.split('.').next().unwrap_or_default();
    if major != "1" {
        return Err(format!(
            "describe: contract-version {:?} is not served by this gateway (1.x)",
            d.contract_version
        ));
    }
    for (i, m) in d.field_mappings.iter().enumerate() {
        if !m.unified.starts_with('/') {
            return Err(format!(
                "describe: field-mappings[{i}].unified {:?} is not a JSON pointer",
                m.unified
            ));
        }
    }
    Ok(d)
}

pub(crate) fn receipt(network: &str, case: &str, r: Receipt) -> Result<NormalizedReceipt, String> {
    text(
        "receipt: network-case-number",
        &r.network_case_number,
        MAX_CASE_NUMBER,
    )
    .map_err(|e| format!("{e} (the ministry's case number is required)"))?;
    let events = events(network, Some(case), r.events)?;
    if let Some(other) = events
        .iter()
        .find(|e| e.network_case_number != r.network_case_number)
    {
        return Err(format!(
            "receipt: event for {:?} does not match the receipt's case number {:?}",
            other.network_case_number, r.network_case_number
        ));
    }
    Ok(NormalizedReceipt {
        network_case_number: r.network_case_number,
        raw_receipt: r.raw_receipt,
        events,
    })
}

pub(crate) fn poll(network: &str, p: PollResult) -> Result<NormalizedPoll, String> {
    if let Some(c) = &p.next_cursor
        && c.len() > 4096
    {
        return Err(format!("poll: next-cursor is {} bytes, over 4096", c.len()));
    }
    Ok(NormalizedPoll {
        events: events(network, None, p.events)?,
        next_cursor: p.next_cursor,
    })
}

pub(crate) fn callback(network: &str, c: CallbackOutcome) -> Result<NormalizedCallback, String> {
    if !(100..=599).contains(&c.response.status) {
        return Err(format!(
            "callback: response status {} is not an HTTP status",
            c.response.status
        ));
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
) -> Result<Vec<Event>, String> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| event(network, case, e).map_err(|m| format!("events[{i}]: {m}")))
        .collect()
}

fn event(network: &str, case: Option<&str>, e: bindings::Event) -> Result<Event, String> {
    text(
        "network-case-number",
        &e.network_case_number,
        MAX_CASE_NUMBER,
    )?;
    let at = chrono::DateTime::parse_from_rfc3339(&e.at)
        .map_err(|err| format!("at {:?} is not RFC 3339 with an offset: {err}", e.at))?;
    for (what, v) in [
        ("reason", &e.reason),
        ("certificate-number", &e.certificate_number),
        ("raw-status", &e.raw_status),
    ] {
        if let Some(v) = v
            && v.len() > MAX_FIELD
        {
            return Err(format!("{what} is {} bytes, over {MAX_FIELD}", v.len()));
        }
    }
    let case_number = match (case, e.case_number) {
        (Some(known), Some(said)) if known != said => {
            return Err(format!(
                "event names case {said:?} but the call was for {known:?}"
            ));
        }
        (Some(known), _) => Some(known.to_string()),
        (None, said) => said,
    };
    let ev = Event {
        case_number,
        network: network.to_string(),
        network_case_number: e.network_case_number,
        stage: stage(e.stage),
        at: at.with_timezone(&beijing()),
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
    ev.validate().map_err(|errs| errs.to_string())?;
    Ok(ev)
}

fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| unreachable!("+08:00 is a valid offset"))
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

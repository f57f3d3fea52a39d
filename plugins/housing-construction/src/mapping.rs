//! The pure half of the adapter: unified case ↔ housing & construction SOAP messages, reply
//! reading and fault classification. No host calls, so it compiles and runs natively.

use yiwang_adapter_sdk::codes::{
    CodeTable, StatusRow, StatusTable, Unknown, UnknownStatus, id_type_set_b,
};
use yiwang_adapter_sdk::dates::{self, MinistryDateFormat};
use yiwang_adapter_sdk::schema::{Case, Decision, Stage};
use yiwang_adapter_sdk::soap;
pub use yiwang_adapter_sdk::soap_reply::Fault;
use yiwang_adapter_sdk::soap_reply::{FaultClass, FaultTable};
use yiwang_adapter_sdk::text::Encoding;
use yiwang_adapter_sdk::xml::{Element, XmlError, XmlWriter};
use yiwang_adapter_sdk::{
    AdapterError, Event, FieldMapping, Rejection, ambiguous, event, permanent, permanent_field,
};

/// The protocol archetype, as `describe` reports it.
pub const NETWORK_KIND: &str = "soap11-gb18030";

/// The service path when the network's config does not set `service-path`.
pub const DEFAULT_SERVICE_PATH: &str = "/services/CaseService";

/// The namespace of the operation elements.
pub const CASE_NS: &str = "http://zjt.sim.yiwang/case";

/// The wire encoding of requests (and, normally, replies).
pub const ENCODING: Encoding = Encoding::Gb18030;

/// The item this adapter maps (construction permit, 建筑工程施工许可).
pub const ITEMS: &[(&str, &str)] = &[("ZJ-SGXK-001", "1.0")];

/// The form fields of the construction-permit item this network receives.
pub const FORM_PROJECT_NAME: &str = "project_name";
/// See [`FORM_PROJECT_NAME`].
pub const FORM_PROJECT_ADDRESS: &str = "project_address";

/// Applicant kind for this network: `1` natural person, `2` enterprise, `3` other
/// (not the 0/1/2 of other networks).
pub static APPLICANT_KIND_123: CodeTable = CodeTable::new(
    "applicant_kind_123",
    &[
        ("natural_person", "1", "自然人"),
        ("enterprise", "2", "企业法人"),
        ("other_organization", "3", "其他组织"),
    ],
    Unknown::Reject,
    Unknown::Reject,
);

/// Status codes (`zt`) of this network.
pub static STATUS: StatusTable = StatusTable::new(
    "status_zj",
    &[
        StatusRow::new("01", Stage::Received, None, "收件"),
        StatusRow::new("02", Stage::Accepted, None, "受理"),
        StatusRow::new("03", Stage::UnderReview, None, "审查"),
        StatusRow::new("04", Stage::SupplementRequested, None, "补正"),
        StatusRow::new("05", Stage::SiteInspection, None, "现场踏勘"),
        StatusRow::new("06", Stage::Decided, Some(Decision::Approved), "审批决定"),
        StatusRow::new("07", Stage::CertificateIssued, None, "发证"),
        StatusRow::new("08", Stage::Decided, Some(Decision::Denied), "不予许可"),
        StatusRow::new("09", Stage::Completed, None, "办结"),
        StatusRow::new("10", Stage::Withdrawn, None, "撤回"),
    ],
    UnknownStatus::Reject,
);

pub use yiwang_adapter_sdk::MappingRow;

/// Every field this adapter fills from the unified case (README.md shows the same table).
pub const FIELD_MAPPINGS: &[MappingRow] = &[
    ("/case_number", "tybh", None, None),
    ("/item/code", "sxbm", None, None),
    ("/item/version", "sxbb", None, None),
    ("/applicant/name", "sqrmc", None, None),
    (
        "/applicant/kind",
        "sqrlx",
        Some("applicant_kind_123"),
        Some("1 natural person, 2 enterprise, 3 other"),
    ),
    (
        "/applicant/id_type",
        "zjlx",
        Some("id_type_set_b"),
        Some("set B only: set-A codes become 999"),
    ),
    ("/applicant/id_number", "zjhm", None, None),
    ("/applicant/contact/phone", "lxdh", None, None),
    (
        "/submitted_at",
        "sqsj",
        None,
        Some("yyyyMMddHHmmss, Beijing time"),
    ),
    ("/form/project_name", "xmmc", None, Some("required")),
    ("/form/project_address", "xmdz", None, Some("optional")),
    ("/materials/*/name", "cls/cl/mc", None, None),
    ("/materials/*/media_type", "cls/cl/lx", None, None),
    ("/materials/*/sha256", "cls/cl/zy", None, None),
    (
        "/materials/*/uri",
        "cls/cl/dz",
        None,
        Some("content is not inlined (no nr)"),
    ),
];

/// [`FIELD_MAPPINGS`] in the contract's shape.
pub fn field_mappings() -> Vec<FieldMapping> {
    yiwang_adapter_sdk::field_mappings(FIELD_MAPPINGS)
}

/// The unified field a ministry field name (a fault's `zdmc`) came from.
/// `cls/cl[2]/mc` → `/materials/1/name` (the ministry counts from 1). `None` for fields the
/// case does not feed (`lsh`, `ywh`).
pub fn unified_pointer(ministry_field: &str) -> Option<String> {
    let field = ministry_field.trim();
    if let Some(rest) = field.strip_prefix("cls/cl[") {
        let (index, after) = rest.split_once(']')?;
        let index = index.parse::<usize>().ok()?.checked_sub(1)?;
        let part = match after.strip_prefix('/') {
            Some("mc") => "name",
            Some("lx") => "media_type",
            Some("zy") => "sha256",
            Some("dz") => "uri",
            _ => return Some(format!("/materials/{index}")),
        };
        return Some(format!("/materials/{index}/{part}"));
    }
    let pointer = match field {
        "cls" => "/materials",
        _ => FIELD_MAPPINGS
            .iter()
            .find(|(_, ministry, _, _)| *ministry == field)
            .map(|(unified, _, _, _)| *unified)?,
    };
    Some(pointer.to_owned())
}

fn form_text<'a>(case: &'a Case, key: &str) -> Option<&'a str> {
    case.form
        .get(key)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The `<cas:SubmitCase>` element for `case` (trusted XML, to be wrapped by [`encode`]).
pub fn submit_xml(case: &Case, idempotency_key: &str) -> Result<String, AdapterError> {
    let applicant = &case.applicant;
    let sqrlx = APPLICANT_KIND_123
        .to_ministry(applicant.kind.as_str())
        .map_err(|e| permanent_field("/applicant/kind", None, e.to_string()))?;
    let zjlx = id_type_set_b()
        .to_ministry(&applicant.id_type)
        .map_err(|e| permanent_field("/applicant/id_type", None, e.to_string()))?;
    let xmmc = form_text(case, FORM_PROJECT_NAME).ok_or_else(|| {
        permanent_field(
            "/form/project_name",
            None,
            "the construction-permit form needs a project name (ministry field xmmc)",
        )
    })?;
    let mut w = XmlWriter::new();
    w.start("cas:SubmitCase")
        .elem("lsh", idempotency_key)
        .elem("tybh", &case.case_number)
        .elem("sxbm", &case.item.code)
        .elem("sxbb", &case.item.version)
        .elem("sqrmc", &applicant.name)
        .elem("sqrlx", sqrlx)
        .elem("zjlx", zjlx)
        .elem("zjhm", &applicant.id_number)
        .elem("lxdh", &applicant.contact.phone)
        .elem(
            "sqsj",
            &dates::format(&case.submitted_at, MinistryDateFormat::Compact),
        )
        .elem("xmmc", xmmc)
        .elem_opt("xmdz", form_text(case, FORM_PROJECT_ADDRESS));
    if !case.materials.is_empty() {
        w.start("cls");
        for m in &case.materials {
            w.start("cl")
                .elem("mc", &m.name)
                .elem("lx", &m.media_type)
                .elem("zy", &m.sha256)
                .elem("dz", &m.uri)
                .end("cl");
        }
        w.end("cls");
    }
    w.end("cas:SubmitCase");
    w.finish().map_err(|e| xml_error(&e))
}

fn xml_error(e: &XmlError) -> AdapterError {
    match e {
        XmlError::InvalidChar { element, .. } => match unified_pointer(element) {
            Some(field) => permanent_field(field, None, e.to_string()),
            None => permanent(e.to_string()),
        },
        other => permanent(format!("could not build the SOAP request: {other}")),
    }
}

/// The element that names the case to the ministry: its number (`ywh`) or
/// the submit's idempotency key (`lsh`).
fn write_case_ref(case: CaseRef<'_>, w: &mut XmlWriter) {
    match case {
        CaseRef::Number(n) => w.elem("ywh", n),
        CaseRef::IdempotencyKey(k) => w.elem("lsh", k),
    };
}

/// The `<cas:QueryStatus>` element.
pub fn query_xml(case: CaseRef<'_>) -> Result<String, AdapterError> {
    let mut w = XmlWriter::new();
    w.start("cas:QueryStatus");
    write_case_ref(case, &mut w);
    w.end("cas:QueryStatus");
    w.finish().map_err(|e| xml_error(&e))
}

/// The `<cas:WithdrawCase>` element.
pub fn withdraw_xml(case: CaseRef<'_>, reason: &str) -> Result<String, AdapterError> {
    let mut w = XmlWriter::new();
    w.start("cas:WithdrawCase");
    write_case_ref(case, &mut w);
    w.elem("yy", reason).end("cas:WithdrawCase");
    w.finish().map_err(|e| xml_error(&e))
}

/// Wraps an operation element in the SOAP 1.1 envelope and encodes it in GB18030.
///
/// `$` is written as `&#36;` so that no `${secret:…}` placeholder can reach the host from
/// case data (the host fills placeholders in any body that happens to be valid UTF-8, as
/// an all-ASCII GB18030 body is). `$` can only occur in text here, where the character
/// reference means the same.
pub fn encode(operation_xml: &str) -> Result<Vec<u8>, AdapterError> {
    let defused = operation_xml.replace('$', "&#36;");
    soap::encode_request_with_ns(&defused, &[("cas", CASE_NS)], ENCODING)
        .map_err(|e| permanent(format!("could not encode the SOAP request: {e}")))
}

/// The `SOAPAction` header value of an operation (`"urn:SubmitCase"`).
pub fn soap_action(operation: &str) -> String {
    format!("\"urn:{operation}\"")
}

pub use yiwang_adapter_sdk::{CaseRef, Effect, send_error};

/// The adapter's fault classes: an encoding fault (E9001: the body is not GB18030) recurs
/// for the same bytes, so it is a rejection; every other `Server` fault is left to the SDK's
/// rule (ambiguous after SubmitCase/WithdrawCase, which may have been recorded, retryable
/// after QueryStatus); `Client` faults are rejections.
pub const FAULTS: FaultTable = FaultTable {
    codes: &[],
    detail_code: Some("cwdm"),
    details: &[("E9001", FaultClass::Rejected)],
};

/// The ministry field a fault names: `detail/zdmc`, else the text after the last `": "` of
/// `faultstring`.
pub fn fault_field(fault: &Fault) -> Option<String> {
    fault.detail_text("zdmc").map(str::to_owned).or_else(|| {
        fault
            .string
            .rsplit_once(": ")
            .map(|(_, f)| f.trim().to_owned())
    })
}

/// Classifies a fault through [`FAULTS`]; a rejection names the unified field the
/// ministry's field came from.
pub fn fault_error(fault: &Fault, effect: Effect) -> AdapterError {
    let field = match FAULTS.classify(fault, effect) {
        FaultClass::Rejected => fault_field(fault).as_deref().and_then(unified_pointer),
        _ => None,
    };
    FAULTS.error(fault, effect, field)
}

/// Whether a fault says the case does not exist (E2001).
pub fn is_not_found(fault: &Fault) -> bool {
    fault.is("Client") && FAULTS.ministry_code(fault) == Some("E2001")
}

fn text_of<'a>(e: &'a Element, name: &str) -> Option<&'a str> {
    e.text_of(name).filter(|s| !s.is_empty())
}

fn required<'a>(e: &'a Element, name: &str) -> Result<&'a str, AdapterError> {
    text_of(e, name)
        .ok_or_else(|| permanent(format!("the ministry's <{}> has no <{name}>", e.name)))
}

fn time(value: &str, format: MinistryDateFormat, field: &str) -> Result<String, AdapterError> {
    dates::parse(value, format)
        .map(|t| t.to_rfc3339())
        .map_err(|e| permanent(format!("ministry field {field}: {e}")))
}

/// One status as an event, without the details that depend on the case's outcome.
pub fn status_event(ywh: &str, zt: &str, ztsj: &str) -> Result<Event, AdapterError> {
    let mapped = STATUS.map(zt).map_err(|e| {
        permanent(format!(
            "case {ywh}: ministry status code {zt:?} is unknown ({e}); refusing to guess a stage"
        ))
    })?;
    let mut ev = event(
        ywh,
        mapped.wit_stage(),
        time(ztsj, MinistryDateFormat::Compact, "ztsj")?,
    );
    ev.decision = mapped.wit_decision();
    ev.raw_status = Some(zt.to_owned());
    Ok(ev)
}

/// The SubmitCase response: the ministry case number and a `received` event at `slsj`.
pub fn parse_submit(payload: &Element) -> Result<(String, Event), AdapterError> {
    let jg = text_of(payload, "jg").unwrap_or("0");
    if jg != "0" {
        return Err(AdapterError::Permanent(Rejection {
            field: None,
            code: Some(jg.to_owned()),
            message: format!("SubmitCase answered jg={jg} without a fault"),
        }));
    }
    let ywh = text_of(payload, "ywh")
        .ok_or_else(|| ambiguous("SubmitCase answered without <ywh>: the case may be stored"))?;
    let slsj =
        text_of(payload, "slsj").ok_or_else(|| ambiguous("SubmitCase answered without <slsj>"))?;
    // A new case starts at 01 (收件), stamped with the acceptance time.
    let ev = status_event(ywh, "01", slsj)?;
    Ok((ywh.to_owned(), ev))
}

/// The QueryStatus response's history (`lsjl`), oldest first, as events: the opinion `yj`
/// goes with the decision, the certificate `zsbh` with issue and completion, and completion
/// carries the decision made before it.
pub fn parse_query(payload: &Element) -> Result<Vec<Event>, AdapterError> {
    let ywh = required(payload, "ywh")?;
    let yj = text_of(payload, "yj");
    let zsbh = text_of(payload, "zsbh");
    let mut entries: Vec<(&str, &str)> = Vec::new();
    if let Some(lsjl) = payload.child("lsjl") {
        for jl in lsjl.children("jl") {
            entries.push((required(jl, "zt")?, required(jl, "ztsj")?));
        }
    }
    if entries.is_empty() {
        entries.push((required(payload, "zt")?, required(payload, "ztsj")?));
    }
    let mut events = Vec::with_capacity(entries.len());
    let mut decision = None;
    for (zt, ztsj) in entries {
        let mut ev = status_event(ywh, zt, ztsj)?;
        match ev.stage {
            yiwang_adapter_sdk::Stage::Decided => {
                decision = ev.decision;
                ev.reason = yj.map(str::to_owned);
            }
            yiwang_adapter_sdk::Stage::CertificateIssued => {
                ev.certificate_number = zsbh.map(str::to_owned);
            }
            yiwang_adapter_sdk::Stage::Completed => {
                ev.decision = decision;
                ev.certificate_number = zsbh.map(str::to_owned);
            }
            _ => {}
        }
        events.push(ev);
    }
    Ok(events)
}

/// The WithdrawCase response as an event (with the reason sent).
pub fn parse_withdraw(payload: &Element, reason: &str) -> Result<Event, AdapterError> {
    let mut ev = status_event(
        required(payload, "ywh")?,
        required(payload, "zt")?,
        required(payload, "ztsj")?,
    )?;
    if matches!(ev.stage, yiwang_adapter_sdk::Stage::Withdrawn) {
        ev.reason = Some(reason.to_owned());
    }
    Ok(ev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> Case {
        serde_json::from_str(include_str!("../fixtures/construction-permit.json"))
            .expect("case parses")
    }

    #[test]
    fn maps_the_fixture_case_to_gb18030() {
        use yiwang_adapter_sdk::text;
        let xml = submit_xml(&case(), "K-1").expect("maps");
        assert!(xml.contains("<sqrlx>2</sqrlx>"), "{xml}");
        assert!(xml.contains("<zjlx>001</zjlx>"), "{xml}");
        assert!(xml.contains("<sqsj>20261123100000</sqsj>"), "{xml}");
        let bytes = encode(&xml).expect("encodes");
        let back = text::decode(&bytes, Encoding::Gb18030).expect("GB18030");
        assert!(back.contains("𠮷"), "four-byte character survives");
    }

    #[test]
    fn unknown_codes_and_missing_project_name_name_the_field() {
        let mut c = case();
        c.applicant.id_type = "112".into();
        assert!(
            matches!(submit_xml(&c, "K"), Err(AdapterError::Permanent(r)) if r.field.as_deref() == Some("/applicant/id_type"))
        );
        let mut c = case();
        c.form.remove(FORM_PROJECT_NAME);
        assert!(
            matches!(submit_xml(&c, "K"), Err(AdapterError::Permanent(r)) if r.field.as_deref() == Some("/form/project_name"))
        );
    }

    fn fault(code: &str, detail: &[(&str, &str)], string: &str) -> Fault {
        let xml: String = detail
            .iter()
            .map(|(k, v)| format!("<{k}>{v}</{k}>"))
            .collect();
        let detail = yiwang_adapter_sdk::xml::XmlDoc::parse(&format!("<detail>{xml}</detail>"))
            .expect("detail")
            .into_root();
        Fault {
            code: code.into(),
            string: string.into(),
            actor: None,
            detail: Some(detail),
            retry_after_ms: None,
        }
    }

    #[test]
    fn a_server_fault_after_submit_is_ambiguous_and_an_encoding_fault_is_rejected() {
        let busy = fault("Server", &[("cwdm", "E9500")], "数据库连接超时");
        assert!(matches!(
            fault_error(&busy, Effect::MayAct),
            AdapterError::Ambiguous(m) if m.contains("E9500")
        ));
        assert!(matches!(
            fault_error(&busy, Effect::ReadOnly),
            AdapterError::Retryable(_)
        ));
        let encoding = fault("Server", &[("cwdm", "E9001")], "编码错误");
        assert!(matches!(
            fault_error(&encoding, Effect::MayAct),
            AdapterError::Permanent(r) if r.code.as_deref() == Some("E9001")
        ));
        let data = fault("Client", &[("cwdm", "E1004")], "证件号码格式错误: zjhm");
        assert!(matches!(
            fault_error(&data, Effect::MayAct),
            AdapterError::Permanent(r) if r.field.as_deref() == Some("/applicant/id_number")
        ));
        assert!(is_not_found(&fault("Client", &[("cwdm", "E2001")], "")));
        assert!(!is_not_found(&fault("Server", &[("cwdm", "E2001")], "")));
    }

    #[test]
    fn ministry_fields_map_back() {
        for (ministry, unified) in [
            ("zjhm", Some("/applicant/id_number")),
            ("xmmc", Some("/form/project_name")),
            ("cls/cl[2]/mc", Some("/materials/1/name")),
            ("cls/cl[0]/mc", None),
            ("lsh", None),
        ] {
            assert_eq!(unified_pointer(ministry).as_deref(), unified, "{ministry}");
        }
    }

    #[test]
    fn readme_shows_the_mapping_table() {
        let readme = include_str!("../README.md");
        for (unified, ministry, table, note) in FIELD_MAPPINGS {
            let row = format!(
                "| `{unified}` | `{ministry}` | {} | {} |",
                table.map_or("—".to_owned(), |t| format!("`{t}`")),
                note.unwrap_or("—")
            );
            assert!(readme.contains(&row), "README.md lacks {row}");
        }
    }
}

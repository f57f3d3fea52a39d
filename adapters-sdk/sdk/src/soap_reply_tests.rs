//! Tests of `soap_reply`: faults before status, dotted codes, the effect rule.

use super::*;
use crate::Header;
use std::time::Duration;

fn reply(status: u16, headers: &[(&str, &str)], body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: headers
            .iter()
            .map(|(n, v)| Header {
                name: (*n).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        body: body.as_bytes().to_vec(),
    }
}

fn fault_xml(code: &str, detail: &str) -> String {
    format!(
        r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>{code}</faultcode><faultstring>boom</faultstring>{detail}</s:Fault></s:Body></s:Envelope>"#
    )
}

fn no_clock() -> SystemTime {
    panic!("the clock was read")
}

fn fault(code: &str) -> Fault {
    Fault {
        code: code.to_owned(),
        string: "boom".to_owned(),
        actor: None,
        detail: None,
        retry_after_ms: None,
    }
}

const TABLE: FaultTable = FaultTable {
    codes: &[
        ("Server.Busy", FaultClass::Retryable),
        ("Client.Duplicate", FaultClass::Duplicate),
        ("Client.Expired", FaultClass::Retryable),
    ],
    detail_code: Some("err/code"),
    details: &[("E9001", FaultClass::Rejected)],
};

#[test]
fn a_fault_in_http_500_is_read_as_a_fault_not_a_status() {
    let body = fault_xml("soap:Client.Validation", "");
    let r = reply(500, &[("content-type", "text/xml; charset=UTF-8")], &body);
    match read_reply_at(&r, "FileCaseResponse", Effect::MayAct, no_clock) {
        Ok(Reply::Fault(f, raw)) => {
            assert_eq!(f.code, "Client.Validation", "prefix stripped, dots kept");
            assert_eq!(f.string, "boom");
            assert_eq!(raw, body);
            assert!(matches!(
                TABLE.error(&f, Effect::MayAct, Some("/form/x".into())),
                AdapterError::Permanent(Rejection { field: Some(p), .. }) if p == "/form/x"
            ));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dotted_codes_fall_back_to_their_parents_then_to_the_defaults() {
    for (code, effect, class) in [
        ("Server.Busy", Effect::MayAct, FaultClass::Retryable),
        ("Server.Busy.Db", Effect::MayAct, FaultClass::Retryable),
        ("Client.Duplicate", Effect::MayAct, FaultClass::Duplicate),
        ("Client.Validation", Effect::MayAct, FaultClass::Rejected),
        ("Client", Effect::ReadOnly, FaultClass::Rejected),
        ("MustUnderstand", Effect::MayAct, FaultClass::Rejected),
        // The rule the guide once got wrong: an unlisted server fault after a submit.
        ("Server", Effect::MayAct, FaultClass::Ambiguous),
        (
            "Server.userException",
            Effect::MayAct,
            FaultClass::Ambiguous,
        ),
        ("Server", Effect::ReadOnly, FaultClass::Retryable),
        ("ServerBusy", Effect::MayAct, FaultClass::Ambiguous),
        ("Vendor.Odd", Effect::ReadOnly, FaultClass::Retryable),
    ] {
        assert_eq!(
            TABLE.classify(&fault(code), effect),
            class,
            "{code} {effect:?}"
        );
    }
    assert!(fault("Client.Validation").is("Client"));
    assert!(!fault("ClientX").is("Client"));
}

#[test]
fn the_ministry_code_in_detail_comes_before_the_fault_code() {
    let body = fault_xml(
        "soapenv:Server",
        "<detail><err><code>E9001</code></err></detail>",
    );
    let r = reply(500, &[], &body);
    let Ok(Reply::Fault(f, _)) = read_reply_at(&r, "X", Effect::MayAct, no_clock) else {
        panic!("a fault");
    };
    assert_eq!(TABLE.ministry_code(&f), Some("E9001"));
    match TABLE.error(&f, Effect::MayAct, None) {
        AdapterError::Permanent(r) => {
            assert_eq!(r.code.as_deref(), Some("E9001"));
            assert!(
                r.message.contains("SOAP fault Server (E9001): boom"),
                "{r:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // Without the table's detail row the same fault is the unsafe kind: ambiguous.
    assert!(matches!(
        FaultTable::DEFAULTS.error(&f, Effect::MayAct, None),
        AdapterError::Ambiguous(m) if m.contains("verify before resending")
    ));
}

#[test]
fn a_retryable_fault_carries_retry_after_in_either_form() {
    let body = fault_xml("Server.Busy", "");
    let r = reply(503, &[("Retry-After", "3")], &body);
    let Ok(Reply::Fault(f, _)) = read_reply_at(&r, "X", Effect::MayAct, no_clock) else {
        panic!("a fault");
    };
    assert!(matches!(
        TABLE.error(&f, Effect::MayAct, None),
        AdapterError::Retryable(RetryableError {
            retry_after_ms: Some(3000),
            ..
        })
    ));
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
    let r = reply(
        503,
        &[("retry-after", "Wed, 21 Oct 2015 07:28:10 GMT")],
        &body,
    );
    let Ok(Reply::Fault(f, _)) = read_reply_at(&r, "X", Effect::MayAct, || now) else {
        panic!("a fault");
    };
    assert_eq!(f.retry_after_ms, Some(10_000));
}

#[test]
fn a_duplicate_is_ambiguous_so_the_gateway_looks_it_up() {
    let e = TABLE.error(&fault("Client.Duplicate"), Effect::MayAct, None);
    assert!(matches!(e, AdapterError::Ambiguous(m) if m.contains("already holds")));
}

#[test]
fn replies_without_an_envelope_are_classified_by_status_then_effect() {
    let page = "<html><body>Service Unavailable</body></html>";
    let maintenance = reply(503, &[("Retry-After", "2")], page);
    assert!(matches!(
        read_reply_at(&maintenance, "X", Effect::MayAct, no_clock),
        Err(AdapterError::Retryable(RetryableError {
            retry_after_ms: Some(2000),
            ..
        }))
    ));
    let ok_page = reply(200, &[], page);
    assert!(matches!(
        read_reply_at(&ok_page, "X", Effect::MayAct, no_clock),
        Err(AdapterError::Ambiguous(m)) if m.contains("may have been acted on")
    ));
    assert!(matches!(
        read_reply_at(&ok_page, "X", Effect::ReadOnly, no_clock),
        Err(AdapterError::Retryable(_))
    ));
    assert!(matches!(
        read_reply_at(&reply(400, &[], page), "X", Effect::MayAct, no_clock),
        Err(AdapterError::Permanent(_))
    ));
}

#[test]
fn a_response_must_be_the_expected_element() {
    let ok = r#"<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><r:PingResponse xmlns:r="urn:r"><v>1</v></r:PingResponse></s:Body></s:Envelope>"#;
    match read_reply_at(
        &reply(200, &[], ok),
        "PingResponse",
        Effect::MayAct,
        no_clock,
    ) {
        Ok(reply) => {
            let (payload, raw) = reply
                .into_response(&TABLE, Effect::MayAct)
                .expect("response");
            assert_eq!(payload.text_of("v"), Some("1"));
            assert_eq!(raw, ok);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_reply_at(&reply(200, &[], ok), "OtherResponse", Effect::MayAct, no_clock),
        Err(AdapterError::Ambiguous(m)) if m.contains("<PingResponse> instead of <OtherResponse>")
    ));
    // A fault in HTTP 200 (some vendors) is still a fault.
    let in_200 = reply(200, &[], &fault_xml("Server", ""));
    assert!(matches!(
        read_reply_at(&in_200, "PingResponse", Effect::MayAct, no_clock),
        Ok(Reply::Fault(..))
    ));
}

//! Archetype 2 (SOAP 1.1 in GB18030).

use std::time::Duration;

use yiwang_simulator::SimConfig;

use crate::client::{between, eventually, get, soap, soap_bytes, start};

const NS: &str = "http://zjt.sim.yiwang/case";

/// A SubmitCase envelope; `skip` leaves one child out.
pub fn submit_xml(lsh: &str, sqrmc: &str, skip: Option<&str>) -> String {
    let fields = [
        ("lsh", lsh),
        ("tybh", "370100-20240305-000124"),
        ("sxbm", "370100-ZJ-007"),
        ("sxbb", "1.0"),
        ("sqrmc", sqrmc),
        ("sqrlx", "2"),
        ("zjlx", "001"),
        ("zjhm", "91350100M000100Y43"),
        ("lxdh", "0531-88888888"),
        ("sqsj", "20240305093000"),
        ("xmmc", "历下区泉城花园3号住宅楼"),
        ("xmdz", "济南市历下区泉城路1号"),
    ];
    let children: String = fields
        .iter()
        .filter(|(name, _)| Some(*name) != skip)
        .map(|(name, value)| format!("<{name}>{value}</{name}>"))
        .collect();
    envelope(&format!(
        "<cas:SubmitCase>{children}<cls><cl><mc>申请表</mc><lx>application/pdf</lx><zy>00</zy><dz>https://materials.example.invalid/2</dz></cl></cls></cas:SubmitCase>"
    ))
}

pub fn envelope(body: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="GB18030"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:cas="{NS}"><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

fn quiet() -> SimConfig {
    SimConfig::soap("housing").with_stage_interval(Duration::ZERO)
}

#[tokio::test]
async fn submit_and_query_round_trip_a_gb18030_name() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    // 𠀀 (U+20000) needs GB18030's four-byte form: GBK cannot carry it.
    let name = "济南𠀀置业有限公司";
    let reply = soap(addr, "urn:SubmitCase", &submit_xml("LSH-1", name, None)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/xml; charset=GB18030")
    );
    assert!(
        std::str::from_utf8(&reply.body).is_ok(),
        "ASCII-only reply expected here"
    );
    let xml = reply.gb18030();
    assert!(
        xml.starts_with(r#"<?xml version="1.0" encoding="GB18030"?>"#),
        "{xml}"
    );
    assert_eq!(between(&xml, "jg"), Some("0"));
    let ywh = between(&xml, "ywh").expect("ywh").to_owned();
    assert!(ywh.starts_with("ZJ") && ywh.len() == 16, "{ywh}");
    assert_eq!(between(&xml, "slsj").map(str::len), Some(14));

    let cases = sim.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].fields["sqrmc"], name);
    assert_eq!(cases[0].fields["cls"][0]["mc"], "申请表");

    let query = envelope(&format!(
        "<cas:QueryStatus><ywh>{ywh}</ywh></cas:QueryStatus>"
    ));
    let reply = soap(addr, "urn:QueryStatus", &query).await;
    assert_eq!(reply.status, 200);
    assert!(
        std::str::from_utf8(&reply.body).is_err(),
        "收件 must travel as GB18030, not UTF-8"
    );
    let xml = reply.gb18030();
    assert_eq!(between(&xml, "zt"), Some("01"));
    assert_eq!(between(&xml, "ztmc"), Some("收件"));
    assert_eq!(between(&xml, "lsh"), Some("LSH-1"));
    assert!(xml.contains("<yj/>") && xml.contains("<zsbh/>"), "{xml}");
    assert!(
        xml.contains("<lsjl><jl><zt>01</zt><ztmc>收件</ztmc>"),
        "{xml}"
    );

    let by_lsh = envelope("<cas:QueryStatus><lsh>LSH-1</lsh></cas:QueryStatus>");
    let xml = soap(addr, "urn:QueryStatus", &by_lsh).await.gb18030();
    assert_eq!(between(&xml, "ywh"), Some(ywh.as_str()));
    sim.shutdown().await;
}

#[tokio::test]
async fn client_faults_name_the_field() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let reply = soap(
        addr,
        "urn:SubmitCase",
        &submit_xml("LSH-F", "张三", Some("xmmc")),
    )
    .await;
    assert_eq!(reply.status, 500);
    let xml = reply.gb18030();
    assert_eq!(between(&xml, "faultcode"), Some("soap:Client"));
    assert_eq!(between(&xml, "faultstring"), Some("缺少必填字段: xmmc"));
    assert_eq!(between(&xml, "zdmc"), Some("xmmc"));
    assert_eq!(between(&xml, "cwdm"), Some("E1001"));

    let set_a = submit_xml("LSH-F", "张三", None).replace("<zjlx>001</zjlx>", "<zjlx>111</zjlx>");
    let xml = soap(addr, "urn:SubmitCase", &set_a).await.gb18030();
    assert_eq!(
        (between(&xml, "zdmc"), between(&xml, "cwdm")),
        (Some("zjlx"), Some("E1003"))
    );

    let dashed = submit_xml("LSH-F", "张三", None).replace(
        "<sqsj>20240305093000</sqsj>",
        "<sqsj>2024-03-05 09:30:00</sqsj>",
    );
    let xml = soap(addr, "urn:SubmitCase", &dashed).await.gb18030();
    assert_eq!(between(&xml, "cwdm"), Some("E1002"));

    let mismatch = soap(addr, "urn:QueryStatus", &submit_xml("LSH-F", "张三", None)).await;
    assert_eq!(mismatch.status, 500);
    assert_eq!(between(&mismatch.gb18030(), "cwdm"), Some("E1000"));

    let doctype = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY e \"boom\">]>{}",
        envelope("<cas:QueryStatus><ywh>&e;</ywh></cas:QueryStatus>")
            .trim_start_matches(r#"<?xml version="1.0" encoding="GB18030"?>"#)
    );
    let xml = soap(addr, "urn:QueryStatus", &doctype).await.gb18030();
    assert_eq!(between(&xml, "faultcode"), Some("soap:Client"));
    assert!(xml.contains("DOCTYPE"), "{xml}");

    let unknown = envelope("<cas:QueryStatus><ywh>ZJ000</ywh></cas:QueryStatus>");
    let xml = soap(addr, "urn:QueryStatus", &unknown).await.gb18030();
    assert_eq!(between(&xml, "cwdm"), Some("E2001"));

    let soap12 = r#"<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body/></s:Envelope>"#;
    let xml = soap(addr, "urn:QueryStatus", soap12).await.gb18030();
    assert_eq!(between(&xml, "faultcode"), Some("soap:VersionMismatch"));

    assert!(sim.cases().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn undecodable_bytes_give_a_server_fault_with_the_offset() {
    let sim = start(quiet()).await;
    let xml = submit_xml("LSH-B", "张三", None);
    let mut body = encoding_rs::GB18030.encode(&xml).0.into_owned();
    let offset = body.len() - 20;
    body[offset] = 0xFF;
    let reply = soap_bytes(sim.addr(), "urn:SubmitCase", &body)
        .await
        .expect("answered");
    assert_eq!(reply.status, 500);
    let xml = reply.gb18030();
    assert_eq!(between(&xml, "faultcode"), Some("soap:Server"));
    assert_eq!(between(&xml, "wz"), Some(offset.to_string().as_str()));
    assert!(between(&xml, "faultstring").is_some_and(|s| s.contains(&offset.to_string())));
    assert!(sim.cases().is_empty());
    sim.shutdown().await;
}

#[tokio::test]
async fn resubmitting_the_same_lsh_is_idempotent() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let first = soap(addr, "urn:SubmitCase", &submit_xml("LSH-I", "张三", None))
        .await
        .gb18030();
    let second = soap(addr, "SubmitCase", &submit_xml("LSH-I", "李四", None))
        .await
        .gb18030();
    assert_eq!(between(&first, "ywh"), between(&second, "ywh"));
    assert_eq!(between(&first, "slsj"), between(&second, "slsj"));
    let cases = sim.cases();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].submissions, 2);
    assert_eq!(cases[0].fields["sqrmc"], "张三", "the first body wins");
    sim.shutdown().await;
}

#[tokio::test]
async fn statuses_advance_to_completion_with_a_certificate() {
    let sim =
        start(SimConfig::soap("housing").with_stage_interval(Duration::from_millis(30))).await;
    let xml = soap(
        sim.addr(),
        "urn:SubmitCase",
        &submit_xml("LSH-A", "张三", None),
    )
    .await
    .gb18030();
    let ywh = between(&xml, "ywh").expect("ywh").to_owned();
    let done = eventually(Duration::from_secs(10), || {
        sim.case(&ywh).is_some_and(|c| c.status == "09")
    })
    .await;
    assert!(done, "{:?}", sim.case(&ywh));
    let query = envelope(&format!(
        "<cas:QueryStatus><ywh>{ywh}</ywh></cas:QueryStatus>"
    ));
    let xml = soap(sim.addr(), "urn:QueryStatus", &query).await.gb18030();
    assert_eq!(between(&xml, "zt"), Some("09"));
    assert_eq!(between(&xml, "yj"), Some("准予许可"));
    let zsbh = between(&xml, "zsbh").expect("zsbh");
    assert!(zsbh.starts_with("JZ") && zsbh.len() == 12, "{zsbh}");
    let codes: Vec<String> = sim
        .case(&ywh)
        .expect("case")
        .history
        .into_iter()
        .map(|h| h.code)
        .collect();
    assert_eq!(codes, ["01", "02", "03", "05", "06", "07", "09"]);
    sim.shutdown().await;
}

#[tokio::test]
async fn withdraw_and_wsdl() {
    let sim = start(quiet()).await;
    let addr = sim.addr();
    let xml = soap(addr, "urn:SubmitCase", &submit_xml("LSH-W", "张三", None))
        .await
        .gb18030();
    let ywh = between(&xml, "ywh").expect("ywh").to_owned();
    let withdraw = envelope(&format!(
        "<cas:WithdrawCase><ywh>{ywh}</ywh><yy>申请人撤回</yy></cas:WithdrawCase>"
    ));
    let reply = soap(addr, "urn:WithdrawCase", &withdraw).await;
    assert_eq!(reply.status, 200);
    let xml = reply.gb18030();
    assert_eq!(between(&xml, "zt"), Some("10"));
    assert_eq!(between(&xml, "ztmc"), Some("撤回"));
    sim.set_status(&ywh, "09", None).expect("status 09");
    let xml = soap(addr, "urn:WithdrawCase", &withdraw).await.gb18030();
    assert_eq!(between(&xml, "cwdm"), Some("E2002"));

    let wsdl = get(addr, "/services/CaseService?wsdl").await;
    assert_eq!(wsdl.status, 200);
    let text = wsdl.text();
    for needle in [
        "wsdl:definitions",
        "soapAction=\"urn:SubmitCase\"",
        "soapAction=\"urn:QueryStatus\"",
        "soapAction=\"urn:WithdrawCase\"",
        &format!("location=\"{}/services/CaseService\"", sim.base_url()),
    ] {
        assert!(text.contains(needle), "WSDL lacks {needle}");
    }
    let mut reader = quick_xml::Reader::from_str(&text);
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(e) => panic!("WSDL is not well-formed: {e}"),
        }
    }
    sim.shutdown().await;
}

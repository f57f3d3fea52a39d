//! The WSDL 1.1 document served at `GET /services/CaseService?wsdl`.

use super::{CASE_NS, ENDPOINT};

/// Document/literal WSDL for SubmitCase, QueryStatus and WithdrawCase; children unqualified.
pub(crate) fn document(base_url: &str) -> String {
    let location = format!("{base_url}{ENDPOINT}");
    let string = |name: &str| format!(r#"<xsd:element name="{name}" type="xsd:string"/>"#);
    let optional =
        |name: &str| format!(r#"<xsd:element name="{name}" type="xsd:string" minOccurs="0"/>"#);
    let seq = |items: &[String]| items.concat();
    let submit = seq(&[
        string("lsh"),
        string("tybh"),
        string("sxbm"),
        string("sxbb"),
        string("sqrmc"),
        string("sqrlx"),
        string("zjlx"),
        string("zjhm"),
        string("lxdh"),
        string("sqsj"),
        string("xmmc"),
        optional("xmdz"),
        r#"<xsd:element name="cls" type="tns:Cls" minOccurs="0"/>"#.to_owned(),
    ]);
    let submit_response = seq(&[string("jg"), string("ywh"), string("slsj")]);
    let query = seq(&[optional("ywh"), optional("lsh")]);
    let query_response = seq(&[
        string("ywh"),
        string("lsh"),
        string("zt"),
        string("ztmc"),
        string("ztsj"),
        string("yj"),
        string("zsbh"),
        r#"<xsd:element name="lsjl" type="tns:Lsjl"/>"#.to_owned(),
    ]);
    let withdraw = seq(&[optional("ywh"), optional("lsh"), string("yy")]);
    let withdraw_response = seq(&[
        string("jg"),
        string("ywh"),
        string("zt"),
        string("ztmc"),
        string("ztsj"),
    ]);
    let cl = seq(&[
        string("mc"),
        optional("lx"),
        optional("zy"),
        optional("dz"),
        r#"<xsd:element name="nr" type="xsd:base64Binary" minOccurs="0"/>"#.to_owned(),
    ]);
    let jl = seq(&[string("zt"), string("ztmc"), string("ztsj")]);
    let fault = seq(&[optional("zdmc"), string("cwdm"), optional("wz")]);

    let element = |name: &str, body: &str| {
        format!(
            r#"<xsd:element name="{name}"><xsd:complexType><xsd:sequence>{body}</xsd:sequence></xsd:complexType></xsd:element>"#
        )
    };
    let types = [
        element("SubmitCase", &submit),
        element("SubmitCaseResponse", &submit_response),
        element("QueryStatus", &query),
        element("QueryStatusResponse", &query_response),
        element("WithdrawCase", &withdraw),
        element("WithdrawCaseResponse", &withdraw_response),
        element("CaseFault", &fault),
        format!(r#"<xsd:complexType name="Cl"><xsd:sequence>{cl}</xsd:sequence></xsd:complexType>"#),
        r#"<xsd:complexType name="Cls"><xsd:sequence><xsd:element name="cl" type="tns:Cl" minOccurs="0" maxOccurs="unbounded"/></xsd:sequence></xsd:complexType>"#.to_owned(),
        format!(r#"<xsd:complexType name="Jl"><xsd:sequence>{jl}</xsd:sequence></xsd:complexType>"#),
        r#"<xsd:complexType name="Lsjl"><xsd:sequence><xsd:element name="jl" type="tns:Jl" minOccurs="0" maxOccurs="unbounded"/></xsd:sequence></xsd:complexType>"#.to_owned(),
    ]
    .concat();

    let ops = ["SubmitCase", "QueryStatus", "WithdrawCase"];
    let messages: String = ops
        .iter()
        .map(|op| {
            format!(
                r#"<wsdl:message name="{op}Request"><wsdl:part name="parameters" element="tns:{op}"/></wsdl:message><wsdl:message name="{op}Response"><wsdl:part name="parameters" element="tns:{op}Response"/></wsdl:message>"#
            )
        })
        .collect::<String>()
        + r#"<wsdl:message name="CaseFault"><wsdl:part name="fault" element="tns:CaseFault"/></wsdl:message>"#;
    let port_ops: String = ops
        .iter()
        .map(|op| {
            format!(
                r#"<wsdl:operation name="{op}"><wsdl:input message="tns:{op}Request"/><wsdl:output message="tns:{op}Response"/><wsdl:fault name="CaseFault" message="tns:CaseFault"/></wsdl:operation>"#
            )
        })
        .collect();
    let binding_ops: String = ops
        .iter()
        .map(|op| {
            format!(
                r#"<wsdl:operation name="{op}"><soap:operation soapAction="urn:{op}" style="document"/><wsdl:input><soap:body use="literal"/></wsdl:input><wsdl:output><soap:body use="literal"/></wsdl:output><wsdl:fault name="CaseFault"><soap:fault name="CaseFault" use="literal"/></wsdl:fault></wsdl:operation>"#
            )
        })
        .collect();

    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions name="CaseService" targetNamespace="{CASE_NS}" xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:tns="{CASE_NS}">
<wsdl:types><xsd:schema targetNamespace="{CASE_NS}" elementFormDefault="unqualified">{types}</xsd:schema></wsdl:types>
{messages}
<wsdl:portType name="CaseServicePortType">{port_ops}</wsdl:portType>
<wsdl:binding name="CaseServiceSoapBinding" type="tns:CaseServicePortType"><soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>{binding_ops}</wsdl:binding>
<wsdl:service name="CaseService"><wsdl:port name="CaseServicePort" binding="tns:CaseServiceSoapBinding"><soap:address location="{location}"/></wsdl:port></wsdl:service>
</wsdl:definitions>
"#
    )
}

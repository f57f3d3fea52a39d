//! Archetype 6 (lookup-only filing service, SOAP 1.1 behind WS-Security UsernameToken).

use std::time::Duration;

use base64::Engine as _;
use sha1::{Digest, Sha1};
use yiwang_simulator::SimConfig;

use crate::client::{Reply, between, send, start};

const NS: &str = "http://ba.sim.yiwang/filing";
const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const TOKEN_PROFILE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0";

/// How the UsernameToken carries the password.
enum Password<'a> {
    /// PasswordDigest with this nonce, created at this time.
    Digest { nonce: &'a [u8], created: String },
    /// PasswordText, created at this time.
    Text { created: String },
}

fn envelope(password: &Password<'_>, secret: &str, body: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (kind, value, nonce, created) = match password {
        Password::Digest { nonce, created } => {
            let mut sha = Sha1::new();
            sha.update(nonce);
            sha.update(created.as_bytes());
            sha.update(secret.as_bytes());
            let digest = b64.encode(sha.finalize());
            let nonce = format!("<wsse:Nonce>{}</wsse:Nonce>", b64.encode(nonce));
            ("PasswordDigest", digest, nonce, created)
        }
        Password::Text { created } => ("PasswordText", secret.to_owned(), String::new(), created),
    };
    format!(
        r#"<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:f="{NS}"><soap:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken><wsse:Username>yiwang</wsse:Username><wsse:Password Type="{TOKEN_PROFILE}#{kind}">{value}</wsse:Password>{nonce}<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security></soap:Header><soap:Body>{body}</soap:Body></soap:Envelope>"#
    )
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn file_xml(khckh: &str) -> String {
    format!(
        "<f:FileCase><khckh>{khckh}</khckh><tybh>370100-20240305-000124</tybh><sxbm>370100-BA-001</sxbm><sqrmc>济南城建置业有限公司</sqrmc><xmmc>泉城花园</xmmc></f:FileCase>"
    )
}

async fn post(sim: &yiwang_simulator::Simulator, xml: &str) -> Reply {
    send(
        sim.addr(),
        "POST",
        "/services/FilingService",
        &[("Content-Type", "text/xml; charset=UTF-8")],
        xml.as_bytes(),
    )
    .await
    .expect("answered")
}

fn quiet() -> SimConfig {
    SimConfig::lookup_only("filing").with_stage_interval(Duration::ZERO)
}

#[tokio::test]
async fn a_digest_token_files_and_the_lookup_moves_with_the_status() {
    let sim = start(quiet()).await;
    let auth = |n: &'static [u8]| Password::Digest {
        nonce: n,
        created: now(),
    };
    let reply = post(
        &sim,
        &envelope(&auth(b"nonce-0001"), "s3cret-pass", &file_xml("K-1")),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let bah = between(&text, "bah").expect("a filing number").to_owned();
    let lookup = format!("<f:LookupStatus><bah>{bah}</bah></f:LookupStatus>");
    let first = post(
        &sim,
        &envelope(&auth(b"nonce-0002"), "s3cret-pass", &lookup),
    )
    .await
    .text();
    assert_eq!(between(&first, "zt"), Some("10"));
    assert!(
        between(&first, "cxsj").is_some(),
        "stamped with the query time"
    );
    sim.advance(&bah);
    sim.advance(&bah);
    let by_ref = "<f:LookupStatus><khckh>K-1</khckh></f:LookupStatus>";
    let last = post(&sim, &envelope(&auth(b"nonce-0003"), "s3cret-pass", by_ref))
        .await
        .text();
    assert_eq!(between(&last, "zt"), Some("30"), "{last}");
    assert_eq!(between(&last, "yj"), Some("准予备案"));
    assert_eq!(sim.case(&bah).map(|c| c.lookups), Some(2));
}

#[tokio::test]
async fn replayed_nonces_stale_tokens_wrong_passwords_and_text_are_refused() {
    let sim = start(quiet()).await;
    let body = file_xml("K-2");
    let fresh = Password::Digest {
        nonce: b"n-1",
        created: now(),
    };
    assert_eq!(
        post(&sim, &envelope(&fresh, "s3cret-pass", &body))
            .await
            .status,
        200
    );
    let cases = [
        (
            Password::Digest {
                nonce: b"n-1",
                created: now(),
            },
            "s3cret-pass",
            "soap:Client.Replay",
        ),
        (
            Password::Digest {
                nonce: b"n-2",
                created: "2020-01-01T00:00:00Z".into(),
            },
            "s3cret-pass",
            "soap:Client.Expired",
        ),
        (
            Password::Digest {
                nonce: b"n-3",
                created: now(),
            },
            "wrong",
            "soap:Client.Authentication",
        ),
        (
            Password::Text { created: now() },
            "s3cret-pass",
            "soap:Client.Authentication",
        ),
    ];
    for (password, secret, code) in cases {
        let reply = post(&sim, &envelope(&password, secret, &body)).await;
        assert_eq!(reply.status, 500);
        assert_eq!(
            between(&reply.text(), "faultcode"),
            Some(code),
            "{}",
            reply.text()
        );
    }
    let text = start(quiet().with_password_text(true)).await;
    let reply = post(
        &text,
        &envelope(&Password::Text { created: now() }, "s3cret-pass", &body),
    )
    .await;
    assert_eq!(
        reply.status, 200,
        "PasswordText where the network allows it"
    );
}

#[tokio::test]
async fn every_missing_field_is_named_and_unknown_filings_are_not_found() {
    let sim = start(quiet()).await;
    let auth = |n: &'static [u8]| Password::Digest {
        nonce: n,
        created: now(),
    };
    let empty = "<f:FileCase><khckh>K-3</khckh><sxbm>x</sxbm></f:FileCase>";
    let reply = post(&sim, &envelope(&auth(b"a"), "s3cret-pass", empty))
        .await
        .text();
    assert_eq!(between(&reply, "faultcode"), Some("soap:Client.Validation"));
    assert!(
        reply.contains("<zd>tybh</zd><zd>sqrmc</zd><zd>xmmc</zd>"),
        "{reply}"
    );
    let lookup = "<f:LookupStatus><khckh>nobody</khckh></f:LookupStatus>";
    let reply = post(&sim, &envelope(&auth(b"b"), "s3cret-pass", lookup))
        .await
        .text();
    assert_eq!(between(&reply, "faultcode"), Some("soap:Client.NotFound"));
}

//! The `[audit]` section and its enum names.

use super::*;

#[test]
fn config_parses_kebab_case_and_reports_problems() {
    #[derive(serde::Deserialize)]
    struct Wrapper {
        audit: AuditConfig,
    }
    let w: Wrapper = toml::from_str(
        r#"
        [audit]
        dir = "/var/lib/yiwang/audit"
        hash = "sm3"
        checkpoint-every = 100
        checkpoint-interval-ms = 5000
        keep-bodies = true
        body-cipher = "sm4-gcm"
        retention-days = 365
        segment-max-bytes = 1048576
        "#,
    )
    .expect("parse");
    let c = w.audit;
    assert_eq!(c.hash, HashAlg::Sm3);
    assert_eq!(c.body_cipher, BodyCipher::Sm4Gcm);
    assert_eq!((c.checkpoint_every, c.retention_days), (100, Some(365)));
    let problems = c.check();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("body-key-file"));
    assert!(AuditConfig::default().check().is_empty());
    assert!(toml::from_str::<Wrapper>("[audit]\nhash = \"md5\"\n").is_err());
    assert!(toml::from_str::<Wrapper>("[audit]\nkeep-body = true\n").is_err());
    let bad = AuditConfig {
        checkpoint_every: 0,
        retention_days: Some(0),
        ..AuditConfig::default()
    };
    assert_eq!(bad.check().len(), 2);
}

/// Each enum's one table serves serde (config, records) and strum (`as_str`,
/// `Display`, `FromStr`): the two must name every variant alike.
fn names_agree<E>(all: impl Iterator<Item = E>, as_str: fn(E) -> &'static str)
where
    E: Copy + std::fmt::Debug + PartialEq + std::fmt::Display + serde::Serialize,
    E: serde::de::DeserializeOwned,
{
    for e in all {
        let name = as_str(e);
        assert_eq!(serde_json::to_value(e).expect("ser"), json!(name), "{e:?}");
        assert_eq!(serde_json::from_value::<E>(json!(name)).expect("de"), e);
        assert_eq!(e.to_string(), name);
    }
}

#[test]
fn the_names_on_disk_and_in_config_are_unchanged() {
    use strum::IntoEnumIterator;
    names_agree(Kind::iter(), Kind::as_str);
    names_agree(HashAlg::iter(), HashAlg::as_str);
    names_agree(BodyCipher::iter(), BodyCipher::as_str);
    let kinds: Vec<&str> = Kind::iter().map(Kind::as_str).collect();
    assert_eq!(
        kinds.join(" "),
        "intake change read callback adapter-call outbound backflow admin denial \
         tls-refused limit alert checkpoint recovered chain-break-found key-change prune start stop"
    );
    let algs: Vec<&str> = HashAlg::iter().map(HashAlg::as_str).collect();
    assert_eq!(algs, ["sha256", "sm3"]);
    let ciphers: Vec<&str> = BodyCipher::iter().map(BodyCipher::as_str).collect();
    assert_eq!(ciphers, ["aes-256-gcm", "sm4-gcm"]);
    for k in Kind::iter() {
        assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
    }
    for c in BodyCipher::iter() {
        assert_eq!(c.as_str().parse::<BodyCipher>(), Ok(c));
    }
}

#[test]
fn unknown_names_are_refused_with_the_list() {
    assert_eq!(
        "Intake"
            .parse::<Kind>()
            .expect_err("case matters")
            .to_string(),
        "unknown kind \"Intake\" (one of intake, change, read, callback, adapter-call, \
         outbound, backflow, admin, denial, tls-refused, limit, alert, checkpoint, \
         recovered, chain-break-found, key-change, prune, start, stop)"
    );
    assert_eq!(
        "aes256-gcm"
            .parse::<BodyCipher>()
            .expect_err("unknown")
            .to_string(),
        "unknown body cipher \"aes256-gcm\" (aes-256-gcm or sm4-gcm)"
    );
    #[derive(Debug, serde::Deserialize)]
    #[expect(dead_code, reason = "only the error is looked at")]
    struct Wrapper {
        audit: AuditConfig,
    }
    let err = toml::from_str::<Wrapper>("[audit]\nhash = \"md5\"\n").expect_err("md5");
    assert!(
        err.to_string()
            .contains("unknown variant `md5`, expected `sha256` or `sm3`"),
        "{err}"
    );
    let err = toml::from_str::<Wrapper>("[audit]\nbody-cipher = \"sm4\"\n").expect_err("sm4");
    assert!(
        err.to_string()
            .contains("unknown variant `sm4`, expected `aes-256-gcm` or `sm4-gcm`"),
        "{err}"
    );
}

/// The gateway's default key lives outside the audit directory, so a copy
/// of the trail does not carry the key that can re-sign it; a key left
/// inside by an older version is still the one used.
#[tokio::test]
async fn the_default_signing_key_is_outside_the_audit_directory() {
    let root = tempfile::tempdir().expect("tmp");
    let audit = root.path().join("audit");
    let key = root.path().join("keys/audit-signing.key");
    let outside = AuditConfig {
        default_signing_key_file: Some(key.clone()),
        ..cfg()
    };
    write_log(&audit, &outside, 3).await;
    assert!(key.exists());
    assert!(!audit.join("signing.key").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(key.parent().expect("keys")), 0o700);
    let seed = crate::chain::read_hex32(&key).expect("seed");
    let public = SigningKey::from_bytes(&seed).verifying_key();
    assert_eq!(
        read_public_keys(&audit.join("signing.pub")).expect("pub"),
        vec![public]
    );

    // An older trail with its key inside keeps it (no key change).
    let old = root.path().join("old-audit");
    write_log(&old, &cfg(), 3).await;
    assert!(old.join("signing.key").exists());
    let elsewhere = AuditConfig {
        default_signing_key_file: Some(root.path().join("keys2/audit-signing.key")),
        ..cfg()
    };
    write_log(&old, &elsewhere, 3).await;
    assert!(!root.path().join("keys2/audit-signing.key").exists());
    assert!(of_kind(&old, Kind::KeyChange).is_empty());
    assert!(verify(&old, None).expect("verify").intact());
}

#[test]
fn a_witness_needs_https_with_tls_or_an_explicit_plaintext() {
    let parse = |text: &str| -> AuditConfig { toml::from_str(text).expect("parses") };
    let ok = parse(
        "[witness.xm]\nurl = \"https://xm.example/admin/witness\"\n\
         [witness.xm.tls]\nca = [\"ca.crt\"]\ncert = \"c.crt\"\nkey = \"c.key\"\n",
    );
    assert!(ok.check().is_empty(), "{:?}", ok.check());
    assert_eq!(ok.witness["xm"].timeout_ms, 10_000);
    let problems = parse(
        "[witness.a]\nurl = \"https://a.example/admin/witness\"\n\
         [witness.b]\nurl = \"http://b.example/admin/witness\"\n\
         [witness.c]\nurl = \"ftp://c.example\"\ntimeout-ms = 0\n",
    )
    .check();
    assert_eq!(
        problems,
        vec![
            "[audit.witness.a] url is https but there is no [audit.witness.a.tls] (ca, cert, key)",
            "[audit.witness.b] url \"http://b.example/admin/witness\" is plain http: set \
             plaintext = true (a lab only) or use https",
            "[audit.witness.c] url \"ftp://c.example\" must start with https:// (or http:// \
             with plaintext = true)",
            "[audit.witness.c] timeout-ms must be at least 1",
        ]
    );
    let lab = parse("[witness.b]\nurl = \"http://b.example/w\"\nplaintext = true\n");
    assert!(lab.check().is_empty());
    // A TSA's reply is signed: plain HTTP is its usual way.
    let tsa = parse("[witness.t]\nurl = \"http://tsa.example/tsr\"\nprotocol = \"rfc3161\"\n");
    assert!(tsa.check().is_empty(), "{:?}", tsa.check());
    assert_eq!(tsa.witness["t"].protocol, WitnessProtocol::Rfc3161);
    assert!(toml::from_str::<AuditConfig>("[witness.x]\nurl = \"https://x\"\nurls = 1\n").is_err());
}

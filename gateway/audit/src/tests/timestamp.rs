//! RFC 3161: `openssl ts` plays the time-stamping authority; our request
//! must be one it answers, our check must accept its reply for the
//! checkpoint and nothing else, and `openssl ts -verify` must accept what
//! we keep.

use super::*;
use crate::timestamp::{TimestampError, check_reply, request};
use std::process::Command;

const TSA_CNF: &str = "\
[ tsa ]
default_tsa = tsa_config1
[ tsa_config1 ]
serial = ./serial
crypto_device = builtin
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = test-tsa
[ tsa_ext ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
";

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl (the test TSA) must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A throwaway TSA: its config, key and self-signed timeStamping certificate.
fn tsa(dir: &Path) {
    std::fs::write(dir.join("tsa.cnf"), TSA_CNF).expect("cnf");
    std::fs::write(dir.join("serial"), "01\n").expect("serial");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.crt",
            "-days",
            "2",
            "-config",
            "tsa.cnf",
            "-extensions",
            "tsa_ext",
        ],
    );
}

#[tokio::test]
async fn a_checkpoint_time_stamped_by_openssl_ts_checks_and_verifies() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (dir, t) = (tmp.path().join("audit"), tmp.path());
    write_log(&dir, &cfg(), 4).await;
    let pending = checkpoints_after(&dir, 0, 1).expect("checkpoints");
    let line = pending[0].push.line.as_bytes();
    tsa(t);
    std::fs::write(t.join("req.tsq"), request(line, u64::MAX)).expect("req");
    openssl(
        t,
        &[
            "ts",
            "-reply",
            "-queryfile",
            "req.tsq",
            "-signer",
            "tsa.crt",
            "-inkey",
            "tsa.key",
            "-config",
            "tsa.cnf",
            "-out",
            "resp.tsr",
        ],
    );
    let reply = std::fs::read(t.join("resp.tsr")).expect("reply");
    assert_eq!(check_reply(&reply, line), Ok(()));
    let other = checkpoints_after(&dir, pending[0].seq, 1).expect("next");
    assert_eq!(
        check_reply(&reply, other[0].push.line.as_bytes()),
        Err(TimestampError::OtherData)
    );
    std::fs::write(t.join("line"), line).expect("line");
    let out = openssl(
        t,
        &[
            "ts", "-verify", "-in", "resp.tsr", "-data", "line", "-CAfile", "tsa.crt",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Verification: OK"));
}

#[test]
fn a_refusal_or_garbage_from_the_tsa_is_no_time_stamp() {
    // TimeStampResp { PKIStatusInfo { status 2 (rejection) } }
    let rejected = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x02];
    assert_eq!(
        check_reply(&rejected, b"x"),
        Err(TimestampError::Refused(2))
    );
    let granted_empty = [0x30, 0x05, 0x30, 0x03, 0x02, 0x01, 0x00];
    assert_eq!(
        check_reply(&granted_empty, b"x"),
        Err(TimestampError::NoToken)
    );
    assert!(matches!(
        check_reply(b"<html>busy</html>", b"x"),
        Err(TimestampError::Malformed(_))
    ));
    // Nonces are minimal positive INTEGERs (a high bit gets a 0x00).
    let req = request(b"x", 0x80);
    assert!(
        req.ends_with(&[0x02, 0x02, 0x00, 0x80, 0x01, 0x01, 0xff]),
        "{req:02x?}"
    );
}

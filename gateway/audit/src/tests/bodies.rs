//! Kept bodies: sealed, bound to their record, opened by the body key.

use super::*;

async fn bodies_roundtrip(cipher: BodyCipher) {
    let dir = tempfile::tempdir().expect("tmp");
    let keys = tempfile::tempdir().expect("tmp");
    let key = [0x42u8; 32];
    let cfg = AuditConfig {
        keep_bodies: true,
        body_key_file: Some(write_key(keys.path(), "body.key", key)),
        body_cipher: cipher,
        ..cfg()
    };
    let secret = "申请人 张三 身份证 110101199003071234".as_bytes().to_vec();
    let log = AuditLog::open(dir.path(), &cfg).expect("open");
    let r = log
        .append(
            Entry::new(Kind::AdapterCall)
                .case("c-1")
                .body("request", secret.clone())
                .body("response", b"{\"ok\":true}".to_vec()),
        )
        .await
        .expect("append");
    log.close().await.expect("close");

    let raw = std::fs::read(&segs(dir.path())[0]).expect("raw");
    let hay = String::from_utf8_lossy(&raw);
    assert!(!hay.contains("张三"), "plaintext on disk");
    assert!(!hay.contains("ok\\\":true"), "plaintext on disk");
    assert!(verify(dir.path(), None).expect("verify").intact());

    let rec = all(dir.path(), &Query::default())
        .into_iter()
        .find(|x| x.seq == r.seq)
        .expect("record");
    assert_eq!(rec.bodies[0].cipher, Some(cipher));
    assert_eq!(rec.bodies[0].size, secret.len() as u64);
    let plain = decrypt_bodies(&rec, cipher, &key).expect("decrypt");
    assert_eq!(plain[0], ("request".to_string(), secret));
    assert_eq!(plain[1].1, b"{\"ok\":true}");
    assert!(decrypt_bodies(&rec, cipher, &[0x43u8; 32]).is_err());
    let other = match cipher {
        BodyCipher::Aes256Gcm => BodyCipher::Sm4Gcm,
        BodyCipher::Sm4Gcm => BodyCipher::Aes256Gcm,
    };
    assert!(decrypt_bodies(&rec, other, &key).is_err());
    // The AAD binds a body to its record: moved to another seq, it fails.
    let mut moved = rec.clone();
    moved.seq += 1;
    assert!(decrypt_bodies(&moved, cipher, &key).is_err());
}

#[tokio::test]
async fn kept_bodies_are_encrypted_with_aes_256_gcm() {
    bodies_roundtrip(BodyCipher::Aes256Gcm).await;
}

#[tokio::test]
async fn kept_bodies_are_encrypted_with_sm4_gcm() {
    bodies_roundtrip(BodyCipher::Sm4Gcm).await;
}

#[tokio::test]
async fn without_keep_bodies_only_digests_are_recorded() {
    let dir = tempfile::tempdir().expect("tmp");
    let log = AuditLog::open(dir.path(), &cfg()).expect("open");
    log.append(Entry::new(Kind::Intake).body("intake", b"secret-form-data".to_vec()))
        .await
        .expect("append");
    log.close().await.expect("close");
    let raw = std::fs::read_to_string(&segs(dir.path())[0]).expect("raw");
    assert!(!raw.contains("secret-form-data"));
    let rec = &of_kind(dir.path(), Kind::Intake)[0];
    use sha2::Digest;
    assert_eq!(
        rec.bodies,
        vec![BodyRecord {
            label: "intake".into(),
            sha256: hex::encode(sha2::Sha256::digest(b"secret-form-data")),
            size: 16,
            cipher: None,
            nonce: None,
            data: None,
        }]
    );
    assert!(
        decrypt_bodies(rec, BodyCipher::Aes256Gcm, &[0u8; 32])
            .expect("nothing to decrypt")
            .is_empty()
    );
}

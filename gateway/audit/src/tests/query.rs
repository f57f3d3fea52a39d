//! Reading records back.

use super::*;

#[tokio::test]
async fn query_filters_by_case_principal_network_kind_and_time() {
    let dir = tempfile::tempdir().expect("tmp");
    let (clock, now) = manual_clock("2026-11-21T10:00:00.000+08:00");
    let log = AuditLog::open_with_clock(dir.path(), &cfg(), clock).expect("open");
    let set = |s: &str| *now.lock().expect("clock") = t(s);
    log.append(Entry::new(Kind::Intake).case("c-1").principal("window-1"))
        .await
        .expect("a");
    set("2026-11-21T11:00:00.000+08:00");
    log.append(Entry::new(Kind::Outbound).case("c-1").network("market"))
        .await
        .expect("b");
    set("2026-11-21T12:00:00.000+08:00");
    log.append(Entry::new(Kind::Outbound).case("c-2").network("tax"))
        .await
        .expect("c");
    set("2026-11-21T13:00:00.000+08:00");
    log.append(Entry::new(Kind::Denial).principal("window-2"))
        .await
        .expect("d");
    log.close().await.expect("close");
    let d = dir.path();
    let count = |q: Query| all(d, &q).len();
    let q = Query::default;
    assert_eq!(
        count(Query {
            case: Some("c-1".into()),
            ..q()
        }),
        2
    );
    assert_eq!(
        count(Query {
            principal: Some("window-2".into()),
            ..q()
        }),
        1
    );
    assert_eq!(
        count(Query {
            network: Some("tax".into()),
            ..q()
        }),
        1
    );
    assert_eq!(
        count(Query {
            kind: Some(Kind::Outbound),
            ..q()
        }),
        2
    );
    let mid = all(
        d,
        &Query {
            since: Some(t("2026-11-21T03:00:00Z")),
            until: Some(t("2026-11-21T12:00:00+08:00")),
            ..q()
        },
    );
    assert_eq!(mid.len(), 1);
    assert_eq!(mid[0].network.as_deref(), Some("market"));
    assert_eq!(
        count(Query {
            case: Some("c-1".into()),
            kind: Some(Kind::Intake),
            ..q()
        }),
        1
    );
}

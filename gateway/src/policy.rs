//! Who may do what. A caller is known only by the client certificate it
//! presented on an mTLS listener; `[principals.<name>]` maps a certificate's
//! identity (subject CN, SAN DNS/URI/email, fingerprint) to a principal with
//! a role and grants, and [`Policy::check`] decides every request:
//!
//! | role       | may                                                                 |
//! |------------|---------------------------------------------------------------------|
//! | `bureau`   | submit cases of its `items` for its `bureaus`; change and read them |
//! | `platform` | the same (the unified platform, acting for the bureaus it lists)    |
//! | `ministry` | post callbacks for its own `network`, nothing else                  |
//! | `operator` | the admin operations in its `admin` list                            |
//! | `auditor`  | read the audit trail (and what this gateway witnesses), nothing else |
//!
//! The double-entry report (figures, no case data) is read by auditors and
//! by operators granted `read`; so is the console (`/console/` on the admin
//! listener) and its read-only views (networks, cases, dead letters,
//! deadlines): operators act through the admin API with their grants,
//! auditors only read.
//!
//! An operator granted `witness` (another gateway pushing its checkpoints
//! here) may post to and read this gateway's witness, nothing else.
//!
//! Deny by default: a certificate that matches no principal (or more than
//! one) is refused everything, a grant list that is empty allows nothing,
//! and each refusal is a [`Denial`] naming the principal, the action and the
//! rule, which the HTTP layer writes to the audit trail and returns as 403.

use crate::tls::PeerIdentity;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// `[principals.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PrincipalConfig {
    pub role: Role,
    /// Which certificates are this principal; every given field must match
    /// (`match = { subject-cn = "fuzhou-bureau", san-uri = "yiwang://bureau/fuzhou" }`).
    #[serde(rename = "match")]
    pub matcher: CertMatch,
    /// `bureau`/`platform`: item codes it may submit (`["*"]` = every configured item).
    #[serde(default)]
    pub items: Vec<String>,
    /// `bureau`/`platform`: unified social credit codes of the bureaus whose
    /// cases it may submit, change and read (`["*"]` = all).
    #[serde(default)]
    pub bureaus: Vec<String>,
    /// `ministry`: the network whose callbacks it may post.
    #[serde(default)]
    pub network: Option<String>,
    /// `operator`: the admin operations it may perform.
    #[serde(default)]
    pub admin: Vec<AdminOp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    Bureau,
    Platform,
    Ministry,
    Auditor,
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Bureau => "bureau",
            Role::Platform => "platform",
            Role::Ministry => "ministry",
            Role::Auditor => "auditor",
            Role::Operator => "operator",
        }
    }
}

/// The admin operations an operator may be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AdminOp {
    /// Queue, dead letters, destinations, metrics.
    Read,
    /// Replay dead letters or jobs.
    Replay,
    /// Install a new adapter version (hot swap).
    AdapterReload,
    /// Lift a network's TLS alert and resume its queue.
    Resume,
    /// Post audit checkpoints to this gateway's witness, and read them
    /// (another gateway's grant).
    Witness,
}

impl AdminOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminOp::Read => "read",
            AdminOp::Replay => "replay",
            AdminOp::AdapterReload => "adapter-reload",
            AdminOp::Resume => "resume",
            AdminOp::Witness => "witness",
        }
    }
}

/// Certificate fields a principal is recognised by: who the certificate
/// names (subject and SAN fields, or its fingerprint) and, optionally, which
/// CA issued it.
///
/// `issuer-sha256` is the robust issuer constraint: the SHA-256 of the
/// issuing CA's certificate, resolved by signature
/// ([`crate::tls::peer_identity_in`]), so another CA the listener trusts
/// cannot mint this principal even if it copies the CA's name. `issuer`
/// (the issuer's distinguished name as the audit trail prints it) is
/// readable but only a name: it separates CAs that are named apart, not a
/// trusted CA that lies about its name.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CertMatch {
    pub subject_cn: Option<String>,
    pub san_dns: Option<String>,
    pub san_uri: Option<String>,
    pub san_email: Option<String>,
    /// sha256 of the whole certificate (hex): pins one certificate.
    pub fingerprint_sha256: Option<String>,
    /// The issuer's distinguished name (`CN=Fuzhou Bureau CA, O=…`, in the
    /// certificate's order, as the audit trail's `issuer` shows it).
    pub issuer: Option<String>,
    /// sha256 (hex, colons allowed) of the issuing CA's certificate, as
    /// `openssl x509 -noout -fingerprint -sha256 -in ca.pem` prints it.
    pub issuer_sha256: Option<String>,
}

impl CertMatch {
    /// True when no field names the certificate itself (an issuer alone is
    /// a constraint, not an identity).
    fn names_nobody(&self) -> bool {
        CertMatch {
            issuer: None,
            issuer_sha256: None,
            ..self.clone()
        } == CertMatch::default()
    }

    /// Every subject field given matches.
    fn subject_matches(&self, id: &PeerIdentity) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| match want {
            None => true,
            Some(w) => got == Some(w.as_str()),
        };
        let any = |want: &Option<String>, got: &[String]| match want {
            None => true,
            Some(w) => got.iter().any(|g| g == w),
        };
        eq(&self.subject_cn, id.subject_cn.as_deref())
            && any(&self.san_dns, &id.san_dns)
            && any(&self.san_uri, &id.san_uri)
            && any(&self.san_email, &id.san_email)
            && match &self.fingerprint_sha256 {
                None => true,
                Some(f) => hex_eq(f, &id.fingerprint_sha256),
            }
    }

    /// Every issuer field given matches.
    fn issuer_matches(&self, id: &PeerIdentity) -> bool {
        let name = match &self.issuer {
            None => true,
            Some(dn) => normalize_dn(dn) == normalize_dn(&id.issuer),
        };
        let key = match (&self.issuer_sha256, &id.issuer_sha256) {
            (None, _) => true,
            (Some(want), Some(got)) => hex_eq(want, got),
            (Some(_), None) => false,
        };
        name && key
    }

    /// What this match asks of the issuer, in words.
    fn issuer_wanted(&self) -> String {
        let mut parts = Vec::new();
        if let Some(dn) = &self.issuer {
            parts.push(format!("issuer {dn:?}"));
        }
        if let Some(f) = &self.issuer_sha256 {
            parts.push(format!("issuer-sha256 {}", normalize_hex(f)));
        }
        parts.join(" and ")
    }
}

/// Hex digests equal, ignoring case and `:` separators.
fn hex_eq(a: &str, b: &str) -> bool {
    normalize_hex(a) == normalize_hex(b)
}

fn normalize_hex(h: &str) -> String {
    h.chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// A DN with the spaces around its separators dropped (`CN=a,O=b` and
/// `CN=a, O=b` are the same name).
fn normalize_dn(dn: &str) -> String {
    dn.split(',').map(str::trim).collect::<Vec<_>>().join(",")
}

/// Why `issuer-sha256` is not a SHA-256 digest, if it is not.
fn bad_issuer_sha256(f: &str) -> Option<String> {
    let hex = normalize_hex(f);
    (hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| {
        format!(
            "`match.issuer-sha256` {f:?} is not a SHA-256 digest (64 hex digits, colons allowed; \
             `openssl x509 -noout -fingerprint -sha256 -in ca.pem`)"
        )
    })
}

/// A list of grants where `*` means all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    Only(BTreeSet<String>),
}

impl Scope {
    fn from(list: &[String]) -> Scope {
        if list.iter().any(|s| s == "*") {
            Scope::All
        } else {
            Scope::Only(list.iter().cloned().collect())
        }
    }

    pub fn allows(&self, value: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Only(set) => set.contains(value),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::All => f.write_str("*"),
            Scope::Only(set) if set.is_empty() => f.write_str("none"),
            Scope::Only(set) => {
                let list: Vec<&str> = set.iter().map(String::as_str).collect();
                f.write_str(&list.join(", "))
            }
        }
    }
}

/// A configured principal and its grants.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    pub items: Scope,
    pub bureaus: Scope,
    pub network: Option<String>,
    pub admin: BTreeSet<AdminOp>,
    matcher: CertMatch,
}

/// Who is calling: the principal its certificate maps to, or why none does.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Option<Arc<Principal>>,
    /// The certificate's subject and fingerprint, for the audit trail.
    pub subject: String,
    pub fingerprint: String,
    /// Why no principal matched (no principal, or several).
    pub unmapped: Option<String>,
}

impl Caller {
    /// The principal's name, or `unmapped:<subject>`.
    pub fn name(&self) -> String {
        match &self.principal {
            Some(p) => p.name.clone(),
            None => format!("unmapped:{}", self.subject),
        }
    }

    /// A caller with no certificate identity at all (never granted anything).
    pub fn anonymous() -> Caller {
        Caller {
            principal: None,
            subject: "anonymous".into(),
            fingerprint: String::new(),
            unmapped: Some("no client certificate".into()),
        }
    }
}

/// What a request wants to do.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Submit a case of `item` for the bureau with this credit code.
    Submit {
        item: &'a str,
        bureau: &'a str,
    },
    /// Post a change to, or read, a case of this bureau.
    Case {
        bureau: &'a str,
        write: bool,
    },
    /// Search cases (results are then limited to [`Policy::case_scope`]).
    Search,
    /// Post a callback for a network.
    Callback {
        network: &'a str,
    },
    Admin(AdminOp),
    /// Read or export the audit trail.
    ReadAudit,
    /// Read the double-entry report.
    ReadReport,
    /// Load the console and read its views (networks, cases and their
    /// timelines, dead letters, deadlines); acting needs the admin grants.
    Console,
    /// Post checkpoints to this gateway's witness, or read what it holds.
    Witness,
    /// Liveness probe: any mapped principal.
    Health,
    /// Read the listener's API description (`GET /openapi.json`): any
    /// mapped principal of the listener; a certificate that maps to none
    /// learns nothing of the API either.
    ReadApiDescription,
}

impl fmt::Display for Action<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Submit { item, bureau } => {
                write!(f, "submit a case of item {item} for bureau {bureau}")
            }
            Action::Case {
                bureau,
                write: true,
            } => write!(f, "change a case of bureau {bureau}"),
            Action::Case {
                bureau,
                write: false,
            } => write!(f, "read a case of bureau {bureau}"),
            Action::Search => f.write_str("search cases"),
            Action::Callback { network } => write!(f, "post a callback for network {network}"),
            Action::Admin(op) => write!(f, "perform admin operation {}", op.as_str()),
            Action::ReadAudit => f.write_str("read the audit trail"),
            Action::ReadReport => f.write_str("read the double-entry report"),
            Action::Console => f.write_str("use the console"),
            Action::Witness => f.write_str("use the audit witness"),
            Action::Health => f.write_str("check health"),
            Action::ReadApiDescription => f.write_str("read the API description"),
        }
    }
}

/// A refused request: who, what, and the rule that refused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{principal} may not {action}: {rule}")]
pub struct Denial {
    pub principal: String,
    pub action: String,
    pub rule: String,
}

/// The principals of a configuration.
#[derive(Debug, Default)]
pub struct Policy {
    principals: Vec<Arc<Principal>>,
}

impl Policy {
    pub fn new<'a>(config: impl IntoIterator<Item = (&'a String, &'a PrincipalConfig)>) -> Policy {
        let principals = config
            .into_iter()
            .map(|(name, c)| {
                Arc::new(Principal {
                    name: name.clone(),
                    role: c.role,
                    items: Scope::from(&c.items),
                    bureaus: Scope::from(&c.bureaus),
                    network: c.network.clone(),
                    admin: c.admin.iter().copied().collect(),
                    matcher: c.matcher.clone(),
                })
            })
            .collect();
        Policy { principals }
    }

    /// Problems with `[principals]` (the config check reports them):
    /// grants that do not fit the role, unknown networks, empty matches.
    pub fn check_config<'a>(
        config: impl IntoIterator<Item = (&'a String, &'a PrincipalConfig)>,
        networks: &BTreeSet<&str>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, c) in config {
            let mut bad = |m: String| out.push((name.clone(), format!("principal `{name}`: {m}")));
            if c.matcher.names_nobody() {
                bad("`match` needs at least one of subject-cn, san-dns, san-uri, san-email, fingerprint-sha256 (issuer and issuer-sha256 only narrow a match)".into());
            }
            if let Some(m) = c
                .matcher
                .issuer_sha256
                .as_deref()
                .and_then(bad_issuer_sha256)
            {
                bad(m);
            }
            if let Some(dn) = &c.matcher.issuer
                && !dn.contains('=')
            {
                bad(format!(
                    "`match.issuer` {dn:?} is not a distinguished name (like \"CN=Fuzhou Bureau CA, O=…\")"
                ));
            }
            let submits = matches!(c.role, Role::Bureau | Role::Platform);
            if !submits && (!c.items.is_empty() || !c.bureaus.is_empty()) {
                bad(format!(
                    "`items` and `bureaus` apply to bureau and platform principals, not {}",
                    c.role.as_str()
                ));
            }
            if submits && c.bureaus.is_empty() {
                bad(
                    "a bureau or platform principal needs `bureaus` (credit codes, or [\"*\"])"
                        .into(),
                );
            }
            match (c.role, &c.network) {
                (Role::Ministry, None) => {
                    bad("a ministry principal needs `network` (whose callbacks it posts)".into())
                }
                (Role::Ministry, Some(n)) if !networks.contains(n.as_str()) => {
                    bad(format!("network `{n}` is not configured"))
                }
                (Role::Ministry, Some(_)) => {}
                (role, Some(_)) => bad(format!(
                    "`network` applies to ministry principals, not {}",
                    role.as_str()
                )),
                _ => {}
            }
            if c.role != Role::Operator && !c.admin.is_empty() {
                bad(format!(
                    "`admin` applies to operator principals, not {}",
                    c.role.as_str()
                ));
            }
        }
        out
    }

    /// Map a verified client certificate to its caller. Exactly one
    /// principal must match; none or several leave the caller unmapped. A
    /// certificate that names a principal but comes from another issuer
    /// than its match requires is unmapped with a reason naming both.
    pub fn identify(&self, id: &PeerIdentity) -> Caller {
        let named: Vec<&Arc<Principal>> = self
            .principals
            .iter()
            .filter(|p| p.matcher.subject_matches(id))
            .collect();
        let found: Vec<&Arc<Principal>> = named
            .iter()
            .copied()
            .filter(|p| p.matcher.issuer_matches(id))
            .collect();
        let (principal, unmapped) = match found.as_slice() {
            [one] => (Some(Arc::clone(one)), None),
            [] => (None, Some(Self::no_match(&named, id))),
            many => (
                None,
                Some(format!(
                    "the certificate matches several principals ({}); refusing to guess",
                    many.iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
        };
        Caller {
            principal,
            subject: id.subject.clone(),
            fingerprint: id.fingerprint_sha256.clone(),
            unmapped,
        }
    }

    /// Why no principal matched: the first principal the certificate names
    /// whose issuer it does not have, or none at all.
    fn no_match(named: &[&Arc<Principal>], id: &PeerIdentity) -> String {
        match named.first() {
            Some(p) => format!(
                "the certificate names principal `{}` but was issued by {:?} (issuer-sha256 {}); `{}` requires {}",
                p.name,
                id.issuer,
                id.issuer_sha256.as_deref().unwrap_or("not resolved"),
                p.name,
                p.matcher.issuer_wanted()
            ),
            None => "the certificate matches no principal".to_string(),
        }
    }

    /// Decide one action. Deny by default.
    pub fn check(&self, caller: &Caller, action: Action<'_>) -> Result<(), Denial> {
        let deny = |rule: String| Denial {
            principal: caller.name(),
            action: action.to_string(),
            rule,
        };
        let Some(p) = &caller.principal else {
            return Err(deny(
                caller
                    .unmapped
                    .clone()
                    .unwrap_or_else(|| "unknown caller".into()),
            ));
        };
        let role = p.role.as_str();
        match action {
            Action::Health | Action::ReadApiDescription => Ok(()),
            Action::Submit { item, bureau } => {
                submitter(p).map_err(|e| deny(e.to_string()))?;
                if !p.items.allows(item) {
                    return Err(deny(format!(
                        "item {item} is not among its items ({})",
                        p.items
                    )));
                }
                if !p.bureaus.allows(bureau) {
                    return Err(deny(format!(
                        "bureau {bureau} is not among its bureaus ({})",
                        p.bureaus
                    )));
                }
                Ok(())
            }
            Action::Case { bureau, .. } => {
                submitter(p).map_err(|e| deny(e.to_string()))?;
                if p.bureaus.allows(bureau) {
                    Ok(())
                } else {
                    Err(deny(format!(
                        "the case belongs to bureau {bureau}, not one of its bureaus ({})",
                        p.bureaus
                    )))
                }
            }
            Action::Search => submitter(p).map_err(|e| deny(e.to_string())),
            Action::Callback { network } => match (p.role, &p.network) {
                (Role::Ministry, Some(own)) if own == network => Ok(()),
                (Role::Ministry, Some(own)) => Err(deny(format!(
                    "a ministry principal posts callbacks for its own network ({own}) only"
                ))),
                _ => Err(deny(format!(
                    "callbacks are for ministry principals; its role is {role}"
                ))),
            },
            Action::Admin(op) => match p.role {
                Role::Operator if p.admin.contains(&op) => Ok(()),
                Role::Operator => Err(deny(format!(
                    "operation {} is not among its admin grants ({})",
                    op.as_str(),
                    p.admin
                        .iter()
                        .map(|o| o.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
                _ => Err(deny(format!(
                    "admin operations are for operator principals; its role is {role}"
                ))),
            },
            Action::ReadAudit => match p.role {
                Role::Auditor => Ok(()),
                _ => Err(deny(format!(
                    "the audit trail is for auditor principals; its role is {role}"
                ))),
            },
            Action::ReadReport => match p.role {
                Role::Auditor => Ok(()),
                Role::Operator if p.admin.contains(&AdminOp::Read) => Ok(()),
                _ => Err(deny(format!(
                    "the double-entry report is for auditors and operators granted `read`; its \
                     role is {role}"
                ))),
            },
            Action::Console => match p.role {
                Role::Auditor => Ok(()),
                Role::Operator if p.admin.contains(&AdminOp::Read) => Ok(()),
                _ => Err(deny(format!(
                    "the console is for auditors and operators granted `read`; its role is \
                     {role}"
                ))),
            },
            Action::Witness => match p.role {
                Role::Auditor => Ok(()),
                Role::Operator if p.admin.contains(&AdminOp::Witness) => Ok(()),
                _ => Err(deny(format!(
                    "the witness is for auditors and operators granted `witness`; its role is \
                     {role}"
                ))),
            },
        }
    }

    /// The bureaus whose cases a caller may see (search results are cut to them).
    pub fn case_scope(caller: &Caller) -> Scope {
        match &caller.principal {
            Some(p) if matches!(p.role, Role::Bureau | Role::Platform) => p.bureaus.clone(),
            _ => Scope::Only(BTreeSet::new()),
        }
    }
}

/// A principal whose role may not touch cases.
#[derive(Debug, thiserror::Error)]
#[error("cases are for bureau and platform principals; its role is {}", .0.as_str())]
struct NotASubmitter(Role);

/// Cases are for bureau and platform principals.
fn submitter(p: &Principal) -> Result<(), NotASubmitter> {
    match p.role {
        Role::Bureau | Role::Platform => Ok(()),
        role => Err(NotASubmitter(role)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;
    use std::collections::BTreeMap;

    fn id(cn: &str, uris: &[&str]) -> PeerIdentity {
        PeerIdentity {
            subject: format!("CN={cn}"),
            subject_cn: Some(cn.to_string()),
            issuer: "CN=test-ca".into(),
            issuer_sha256: None,
            san_dns: vec![],
            san_uri: uris.iter().map(|u| u.to_string()).collect(),
            san_email: vec![],
            serial_hex: "01".into(),
            fingerprint_sha256: "ab".repeat(32),
            not_after: 0,
        }
    }

    fn policy() -> Policy {
        let text = r#"
            [fuzhou]
            role = "bureau"
            match = { subject-cn = "fuzhou-bureau", san-uri = "yiwang://bureau/fuzhou" }
            items = ["SC-QYKB-001"]
            bureaus = ["11350100MB0000000X"]
            [ps]
            role = "ministry"
            match = { subject-cn = "public-security-push" }
            network = "public-security"
            [ops]
            role = "operator"
            match = { subject-cn = "ops-1" }
            admin = ["read", "replay"]
            [audit]
            role = "auditor"
            match = { subject-cn = "audit-1" }
            [peer]
            role = "operator"
            match = { subject-cn = "peer-gateway" }
            admin = ["witness"]
            [twin-a]
            role = "operator"
            match = { subject-cn = "twin" }
            admin = ["read"]
            [twin-b]
            role = "auditor"
            match = { subject-cn = "twin" }
        "#;
        let cfg: BTreeMap<String, PrincipalConfig> = toml::from_str(text).expect("principals");
        Policy::new(&cfg)
    }

    #[test]
    fn a_bureau_submits_its_items_for_its_bureaus_only() {
        let p = policy();
        let c = p.identify(&id("fuzhou-bureau", &["yiwang://bureau/fuzhou"]));
        assert_eq!(c.name(), "fuzhou");
        let ok = Action::Submit {
            item: "SC-QYKB-001",
            bureau: "11350100MB0000000X",
        };
        assert!(p.check(&c, ok).is_ok());
        let e = p
            .check(
                &c,
                Action::Submit {
                    item: "ZJ-SGXK-001",
                    bureau: "11350100MB0000000X",
                },
            )
            .expect_err("item not granted");
        assert!(e.rule.contains("item ZJ-SGXK-001"), "{e}");
        let e = p
            .check(
                &c,
                Action::Submit {
                    item: "SC-QYKB-001",
                    bureau: "11350200MB0000000Y",
                },
            )
            .expect_err("other bureau");
        assert!(e.rule.contains("bureau 11350200MB0000000Y"), "{e}");
        assert!(
            p.check(
                &c,
                Action::Case {
                    bureau: "11350200MB0000000Y",
                    write: false
                }
            )
            .is_err()
        );
        assert!(p.check(&c, Action::Callback { network: "tax" }).is_err());
        assert!(p.check(&c, Action::Admin(AdminOp::Read)).is_err());
        assert!(p.check(&c, Action::ReadAudit).is_err());
    }

    #[test]
    fn every_match_field_must_hold() {
        let p = policy();
        // Right CN, wrong URI SAN: not the bureau.
        let c = p.identify(&id("fuzhou-bureau", &["yiwang://bureau/xiamen"]));
        assert!(c.principal.is_none());
        let e = p.check(&c, Action::Search).expect_err("unmapped");
        assert!(e.rule.contains("matches no principal"), "{e}");
        assert!(e.principal.starts_with("unmapped:CN=fuzhou-bureau"), "{e}");
        let e = p
            .check(&c, Action::ReadApiDescription)
            .expect_err("nobody reads the API description");
        assert!(e.rule.contains("matches no principal"), "{e}");
        let ministry = p.identify(&id("public-security-push", &[]));
        assert!(p.check(&ministry, Action::ReadApiDescription).is_ok());
    }

    #[test]
    fn a_ministry_posts_its_own_callbacks_only() {
        let p = policy();
        let c = p.identify(&id("public-security-push", &[]));
        assert!(
            p.check(
                &c,
                Action::Callback {
                    network: "public-security"
                }
            )
            .is_ok()
        );
        let e = p
            .check(&c, Action::Callback { network: "tax" })
            .expect_err("other network");
        assert!(e.rule.contains("own network (public-security)"), "{e}");
        assert!(
            p.check(
                &c,
                Action::Submit {
                    item: "SC-QYKB-001",
                    bureau: "x"
                }
            )
            .is_err()
        );
    }

    #[test]
    fn operators_have_their_grants_and_auditors_only_read_the_trail() {
        let p = policy();
        let ops = p.identify(&id("ops-1", &[]));
        assert!(p.check(&ops, Action::Admin(AdminOp::Replay)).is_ok());
        let e = p
            .check(&ops, Action::Admin(AdminOp::AdapterReload))
            .expect_err("not granted");
        assert!(e.rule.contains("adapter-reload"), "{e}");
        assert!(p.check(&ops, Action::ReadAudit).is_err());
        let audit = p.identify(&id("audit-1", &[]));
        assert!(p.check(&audit, Action::ReadAudit).is_ok());
        assert!(p.check(&audit, Action::Admin(AdminOp::Read)).is_err());
        assert!(p.check(&audit, Action::Search).is_err());
    }

    #[test]
    fn the_witness_takes_checkpoints_from_its_grant_and_auditors_only() {
        let p = policy();
        let peer = p.identify(&id("peer-gateway", &[]));
        assert!(p.check(&peer, Action::Witness).is_ok());
        assert!(p.check(&peer, Action::ReadAudit).is_err());
        assert!(p.check(&peer, Action::Admin(AdminOp::Read)).is_err());
        let audit = p.identify(&id("audit-1", &[]));
        assert!(p.check(&audit, Action::Witness).is_ok());
        let ops = p.identify(&id("ops-1", &[]));
        let e = p
            .check(&ops, Action::Witness)
            .expect_err("no witness grant");
        assert!(e.rule.contains("granted `witness`"), "{e}");
        let bureau = p.identify(&id("fuzhou-bureau", &["yiwang://bureau/fuzhou"]));
        assert!(p.check(&bureau, Action::Witness).is_err());
    }

    #[test]
    fn the_report_is_for_auditors_and_operators_granted_read() {
        let p = policy();
        let ops = p.identify(&id("ops-1", &[]));
        assert!(p.check(&ops, Action::ReadReport).is_ok());
        let audit = p.identify(&id("audit-1", &[]));
        assert!(p.check(&audit, Action::ReadReport).is_ok());
        // An operator without `read` (the witness peer), a bureau, a ministry: no.
        let peer = p.identify(&id("peer-gateway", &[]));
        let e = p
            .check(&peer, Action::ReadReport)
            .expect_err("no read grant");
        assert!(e.rule.contains("granted `read`"), "{e}");
        let bureau = p.identify(&id("fuzhou-bureau", &["yiwang://bureau/fuzhou"]));
        let e = p.check(&bureau, Action::ReadReport).expect_err("bureau");
        assert!(e.rule.contains("its role is bureau"), "{e}");
        let ministry = p.identify(&id("public-security-push", &[]));
        assert!(p.check(&ministry, Action::ReadReport).is_err());
        assert!(p.check(&Caller::anonymous(), Action::ReadReport).is_err());
    }

    #[test]
    fn the_console_is_for_auditors_and_operators_granted_read() {
        let p = policy();
        let ops = p.identify(&id("ops-1", &[]));
        assert!(p.check(&ops, Action::Console).is_ok());
        let audit = p.identify(&id("audit-1", &[]));
        assert!(p.check(&audit, Action::Console).is_ok());
        // The auditor reads the console, it does not act through it.
        assert!(p.check(&audit, Action::Admin(AdminOp::Replay)).is_err());
        let peer = p.identify(&id("peer-gateway", &[]));
        let e = p.check(&peer, Action::Console).expect_err("no read grant");
        assert!(e.rule.contains("granted `read`"), "{e}");
        let bureau = p.identify(&id("fuzhou-bureau", &["yiwang://bureau/fuzhou"]));
        let e = p.check(&bureau, Action::Console).expect_err("bureau");
        assert!(e.rule.contains("its role is bureau"), "{e}");
        let ministry = p.identify(&id("public-security-push", &[]));
        assert!(p.check(&ministry, Action::Console).is_err());
        assert!(p.check(&Caller::anonymous(), Action::Console).is_err());
    }

    #[test]
    fn an_ambiguous_certificate_gets_nothing() {
        let p = policy();
        let c = p.identify(&id("twin", &[]));
        assert!(c.principal.is_none());
        let e = p.check(&c, Action::Health).expect_err("ambiguous");
        assert!(e.rule.contains("twin-a, twin-b"), "{e}");
        assert!(p.check(&Caller::anonymous(), Action::Health).is_err());
    }

    /// Two CAs trusted by one listener: only the one a principal's match
    /// names can mint it, even when the other copies its name.
    #[test]
    fn a_certificate_from_another_trusted_ca_is_not_the_principal() {
        use yiwang_pki::{Ca, CertSpec, Issued};
        let right = Ca::new("Fuzhou Bureau CA");
        let namesake = Ca::new("Fuzhou Bureau CA");
        let other = Ca::new("Xiamen Bureau CA");
        let trusted = [
            right.cert_der().clone(),
            namesake.cert_der().clone(),
            other.cert_der().clone(),
        ];
        let identity = |leaf: &Issued| {
            crate::tls::peer_identity_in(std::slice::from_ref(&leaf.cert_der), &trusted).unwrap()
        };
        let genuine = identity(&right.issue(&CertSpec::client("fuzhou-bureau")));
        let sha = |ca: &Ca| hex::encode(sha2::Sha256::digest(ca.cert_der().as_ref()));
        assert_eq!(genuine.issuer_sha256, Some(sha(&right)));
        // openssl's spelling: upper case, colon-separated.
        let pinned = sha(&right)
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let text = format!(
            r#"
            [by-key]
            role = "bureau"
            match = {{ subject-cn = "fuzhou-bureau", issuer-sha256 = "{pinned}" }}
            bureaus = ["*"]
            [by-name]
            role = "bureau"
            match = {{ subject-cn = "by-name", issuer = "{}" }}
            bureaus = ["*"]
            "#,
            genuine.issuer.replace(", ", ",")
        );
        let cfg: BTreeMap<String, PrincipalConfig> = toml::from_str(&text).expect("principals");
        assert!(Policy::check_config(&cfg, &BTreeSet::new()).is_empty());
        let p = Policy::new(&cfg);
        assert_eq!(p.identify(&genuine).name(), "by-key");

        let forged = identity(&namesake.issue(&CertSpec::client("fuzhou-bureau")));
        assert_eq!(forged.issuer, genuine.issuer, "the same name");
        let c = p.identify(&forged);
        assert!(c.principal.is_none());
        let e = p.check(&c, Action::Search).expect_err("wrong issuer");
        let want = format!(
            "the certificate names principal `by-key` but was issued by {:?} (issuer-sha256 {}); `by-key` requires issuer-sha256 {}",
            forged.issuer,
            sha(&namesake),
            sha(&right)
        );
        assert_eq!(e.rule, want);

        let by_name = |ca: &Ca| p.identify(&identity(&ca.issue(&CertSpec::client("by-name"))));
        assert_eq!(by_name(&right).name(), "by-name");
        let e = p
            .check(&by_name(&other), Action::Search)
            .expect_err("other CA's name");
        assert!(
            e.rule.contains("issued by \"CN=Xiamen Bureau CA"),
            "{}",
            e.rule
        );
        // An issuer that is none of the certificates at hand is not resolved.
        let unresolved =
            crate::tls::peer_identity(&right.issue(&CertSpec::client("fuzhou-bureau")).cert_der)
                .unwrap();
        assert_eq!(unresolved.issuer_sha256, None);
        assert!(p.identify(&unresolved).principal.is_none());
    }

    #[test]
    fn the_config_check_names_bad_issuer_constraints() {
        let text = r#"
            [a]
            role = "auditor"
            match = { issuer-sha256 = "ab:cd" }
            [b]
            role = "auditor"
            match = { subject-cn = "b", issuer = "Fuzhou Bureau CA" }
        "#;
        let cfg: BTreeMap<String, PrincipalConfig> = toml::from_str(text).expect("principals");
        let all = Policy::check_config(&cfg, &BTreeSet::new())
            .into_iter()
            .map(|(_, m)| m)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("principal `a`: `match` needs at least one of subject-cn"),
            "{all}"
        );
        assert!(
            all.contains("principal `a`: `match.issuer-sha256` \"ab:cd\" is not a SHA-256 digest"),
            "{all}"
        );
        assert!(
            all.contains(
                "principal `b`: `match.issuer` \"Fuzhou Bureau CA\" is not a distinguished name"
            ),
            "{all}"
        );
    }

    #[test]
    fn the_config_check_names_misplaced_grants() {
        let text = r#"
            [a]
            role = "ministry"
            match = {}
            items = ["*"]
            [b]
            role = "bureau"
            match = { subject-cn = "b" }
            [c]
            role = "ministry"
            match = { subject-cn = "c" }
            network = "nowhere"
        "#;
        let cfg: BTreeMap<String, PrincipalConfig> = toml::from_str(text).expect("principals");
        let nets: BTreeSet<&str> = ["tax"].into_iter().collect();
        let problems: Vec<String> = Policy::check_config(&cfg, &nets)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        let all = problems.join("\n");
        assert!(all.contains("principal `a`: `match` needs"), "{all}");
        assert!(
            all.contains("principal `a`: `items` and `bureaus`"),
            "{all}"
        );
        assert!(
            all.contains("principal `a`: a ministry principal needs `network`"),
            "{all}"
        );
        assert!(
            all.contains("principal `b`: a bureau or platform principal needs `bureaus`"),
            "{all}"
        );
        assert!(
            all.contains("principal `c`: network `nowhere` is not configured"),
            "{all}"
        );
    }
}

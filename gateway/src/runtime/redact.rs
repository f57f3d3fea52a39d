//! Sensitive adapter-config values, kept out of everything the gateway
//! shows about a call.
//!
//! Why: an `[networks.X.adapter-config]` value read from the environment or
//! a file (`key = { env = "VAR" }`) is one the operator keeps out of the
//! config file — an app key, an account. The adapter must read it (unlike a
//! secret, it goes into requests as it is), so the host cannot keep it from
//! the guest; what it can do is make sure nothing the gateway writes carries
//! it: the adapter's log lines, the URLs of its exchanges (logs and the
//! audit trail), and the text of its errors (audit, dead letters, the case
//! view and the admin API all show that text). Each occurrence becomes
//! `[redacted:KEY]`. Values shorter than [`MIN_REDACTED_LEN`] bytes are
//! not searched for (a one-letter value would shred every message); the
//! operator guide says so.

use super::bindings::AdapterError;
use super::error::CallError;
use super::host::NetworkSandbox;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The shortest sensitive value searched for in text.
pub const MIN_REDACTED_LEN: usize = 4;

impl NetworkSandbox {
    /// `text` with every sensitive config value replaced by `[redacted:KEY]`.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for key in &self.sensitive {
            let Some(value) = self.config.get(key) else {
                continue;
            };
            if value.len() >= MIN_REDACTED_LEN && out.contains(value.as_str()) {
                out = Cow::Owned(out.replace(value.as_str(), &format!("[redacted:{key}]")));
            }
        }
        out
    }

    /// The config as it may be shown: sensitive values replaced.
    pub fn redacted_config(&self) -> BTreeMap<&str, &str> {
        self.config
            .iter()
            .map(|(k, v)| {
                let shown = if self.sensitive.contains(k) {
                    "[redacted]"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect()
    }

    /// A call's error with the adapter's own text redacted.
    pub(super) fn redact_error(&self, error: CallError) -> CallError {
        if self.sensitive.is_empty() {
            return error;
        }
        let r = |t: &mut String| {
            if let Cow::Owned(clean) = self.redact(t) {
                *t = clean;
            }
        };
        let mut error = error;
        match &mut error {
            CallError::Adapter(AdapterError::Retryable(e)) => r(&mut e.message),
            CallError::Adapter(AdapterError::Ambiguous(m)) | CallError::Trap(m) => r(m),
            CallError::Adapter(AdapterError::Permanent(p)) => {
                r(&mut p.message);
                p.field.iter_mut().chain(p.code.iter_mut()).for_each(r);
            }
            CallError::Rejected(rejected) => {
                let s = &mut rejected.summary;
                r(&mut s.message);
                s.field.iter_mut().chain(s.code.iter_mut()).for_each(r);
                for p in &mut rejected.problems {
                    r(&mut p.message);
                    p.pointer.iter_mut().chain(p.code.iter_mut()).for_each(r);
                }
            }
            _ => {}
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::Rejection;

    fn sandbox() -> NetworkSandbox {
        let mut sb = NetworkSandbox::new("n", Vec::new());
        sb.config.insert("app-key".into(), "AK-7f3e9".into());
        sb.config.insert("mode".into(), "plain".into());
        sb.config.insert("pin".into(), "42".into());
        sb.sensitive.insert("app-key".into());
        sb.sensitive.insert("pin".into());
        sb
    }

    #[test]
    fn sensitive_values_are_redacted_and_plain_ones_shown() {
        let sb = sandbox();
        assert_eq!(
            sb.redact("/api?key=AK-7f3e9&mode=plain"),
            "/api?key=[redacted:app-key]&mode=plain"
        );
        // Too short to search for without shredding every message.
        assert_eq!(sb.redact("answer 42"), "answer 42");
        let shown = format!("{sb:?}");
        assert!(!shown.contains("AK-7f3e9"), "{shown}");
        assert!(shown.contains("\"app-key\": \"[redacted]\""), "{shown}");
        assert!(shown.contains("\"mode\": \"plain\""), "{shown}");
    }

    #[test]
    fn an_error_carries_no_sensitive_value() {
        let sb = sandbox();
        let e = CallError::Adapter(AdapterError::Permanent(Rejection {
            field: None,
            code: Some("AK-7f3e9".into()),
            message: "key AK-7f3e9 refused".into(),
        }));
        let text = sb.redact_error(e).to_string();
        assert!(!text.contains("AK-7f3e9"), "{text}");
        assert!(text.contains("key [redacted:app-key] refused"), "{text}");
    }
}

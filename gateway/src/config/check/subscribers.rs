//! `[subscribers.<name>]`: a webhook's URL (absolute http(s), secured like a
//! network's endpoints), the notice kinds it asks for, concurrency, retry.

use super::{Problems, check_retry, is_http_url, place, tls, valid_name};
use crate::config::types::{NOTICE_KINDS, SubscriberConfig};
use std::path::Path;
use toml::Spanned;

pub(super) fn check(
    name: &str,
    sub: &Spanned<SubscriberConfig>,
    p: &mut Problems<'_>,
    base: &Path,
) {
    let span = sub.span();
    let sub = sub.get_ref();
    if !valid_name(name) {
        p.at(
            span.clone(),
            format!("subscriber name {name:?}: use lowercase letters, digits and '-'"),
        );
    }
    let what = format!("subscriber `{name}`");
    if !is_http_url(sub.url.get_ref()) {
        p.at(
            sub.url.span(),
            format!(
                "{what}: url {:?} is not an absolute http(s) URL",
                sub.url.get_ref()
            ),
        );
    }
    tls::check_origins(
        p,
        base,
        &what,
        &span,
        std::iter::once(&sub.url),
        sub.tls.as_ref(),
        sub.plaintext,
    );
    for kind in &sub.events {
        if !NOTICE_KINDS.contains(&kind.get_ref().as_str()) {
            p.at(
                place(kind, &span),
                format!(
                    "{what}: event kind `{}` is not one of {}",
                    kind.get_ref(),
                    NOTICE_KINDS.join(", ")
                ),
            );
        }
    }
    if sub.concurrency == 0 {
        p.at(
            span.clone(),
            format!("{what}: concurrency must be at least 1"),
        );
    }
    check_retry(p, &what, &sub.retry, &span);
}

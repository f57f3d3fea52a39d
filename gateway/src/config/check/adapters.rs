//! `[adapters]`: every trusted publisher key file exists and holds an
//! Ed25519 public key (a gateway that cannot read a key it was told to
//! trust must not start and then refuse every adapter signed with it).

use super::Problems;
use crate::config::Config;
use std::path::Path;

pub(super) fn check(config: &Config, p: &mut Problems<'_>, base: &Path) {
    for key in &config.adapters.publisher_keys {
        if let Err(e) = crate::publisher::read_public_key(&base.join(key.get_ref())) {
            p.at(key.span(), format!("[adapters] publisher-keys: {e}"));
        }
    }
}

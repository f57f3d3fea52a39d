//! One state machine for reloading TLS files in place, shared by the
//! listeners ([`super::ServerTls`]) and the per-network clients
//! ([`crate::transport::GatewayTransport`]).
//!
//! A [`Reloadable`] holds what its files built (a rustls server config, an
//! HTTP client with its connection pool) and the digest of the bytes it was
//! built from. [`Reloadable::reload`] re-reads the files and:
//!
//! * same digest as the files in force: nothing to do ([`Reload::Unchanged`]),
//!   and a failure remembered from a broken edit is forgotten (the edit was
//!   undone);
//! * same digest as the last failed attempt: the same error again without
//!   building, so a broken state that persists across polls is logged and
//!   counted once ([`Reload::Failed`] with `first: false`);
//! * otherwise build: success swaps the new value in ([`Reload::Swapped`]),
//!   failure keeps the previous one in force and is remembered.
//!
//! Values are `Arc`s: whoever took the previous one (an established
//! connection, a request in flight) keeps it; nothing is dropped by a swap.
//! Reloads of one `Reloadable` are serialised, so two pollers cannot
//! interleave swaps. [`poll`] runs reloads on a timer until told to stop.

use super::{Snapshot, TlsError};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A set of TLS files and what to build from them.
pub(crate) trait TlsFiles: Send + Sync {
    /// What the files make: a rustls config, an HTTP client…
    type Built: Send + Sync;
    /// Every file the build reads (a change to any one triggers a rebuild).
    fn paths(&self) -> impl Iterator<Item = &Path>;
    /// Builds from the files as read once into `files`.
    fn build(&self, files: &Snapshot) -> Result<Self::Built, TlsError>;
}

/// What one [`Reloadable::reload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reload {
    /// The files are those in force.
    Unchanged,
    /// The files changed and the new value is in force.
    Swapped,
    /// The files changed but do not build; the previous value stays in
    /// force. `first` is false when the same broken files failed before.
    Failed { error: TlsError, first: bool },
}

impl Reload {
    /// `Ok(true)` swapped, `Ok(false)` unchanged, `Err` broken.
    pub(crate) fn into_result(self) -> Result<bool, TlsError> {
        match self {
            Reload::Unchanged => Ok(false),
            Reload::Swapped => Ok(true),
            Reload::Failed { error, .. } => Err(error),
        }
    }
}

/// The value in force and the digest of the files it was built from.
struct InForce<B> {
    built: Arc<B>,
    digest: [u8; 32],
}

/// TLS files and what they built, rebuilt in place when the files change.
pub(crate) struct Reloadable<F: TlsFiles> {
    files: F,
    current: RwLock<InForce<F::Built>>,
    /// The last failed reload (files digest and error). Its lock is held for
    /// a whole reload, which serialises reloads.
    last_failure: Mutex<Option<([u8; 32], TlsError)>>,
}

impl<F: TlsFiles> Reloadable<F> {
    /// Reads the files and builds; an error leaves nothing loaded.
    pub(crate) fn load(files: F) -> Result<Self, TlsError> {
        let snapshot = Snapshot::read(files.paths());
        let built = files.build(&snapshot)?;
        Ok(Reloadable {
            files,
            current: RwLock::new(InForce {
                built: Arc::new(built),
                digest: snapshot.digest,
            }),
            last_failure: Mutex::new(None),
        })
    }

    /// The files this value is built from.
    pub(crate) fn files(&self) -> &F {
        &self.files
    }

    /// The value in force.
    pub(crate) fn current(&self) -> Arc<F::Built> {
        self.read().built.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, InForce<F::Built>> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the files and rebuilds if they changed (see the module docs).
    pub(crate) fn reload(&self) -> Reload {
        let mut last_failure = self.last_failure.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = Snapshot::read(self.files.paths());
        if snapshot.digest == self.read().digest {
            // Back to the files in force (a broken edit undone).
            *last_failure = None;
            return Reload::Unchanged;
        }
        if let Some((digest, error)) = last_failure.as_ref()
            && *digest == snapshot.digest
        {
            return Reload::Failed {
                error: error.clone(),
                first: false,
            };
        }
        match self.files.build(&snapshot) {
            Ok(built) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = InForce {
                    built: Arc::new(built),
                    digest: snapshot.digest,
                };
                *last_failure = None;
                Reload::Swapped
            }
            Err(error) => {
                *last_failure = Some((snapshot.digest, error.clone()));
                Reload::Failed { error, first: true }
            }
        }
    }
}

/// Every `interval`, runs `work` on the blocking pool (file reads block)
/// and hands its result to `then`, until `stop` is cancelled. The caller
/// spawns it (on the gateway's task tracker).
pub(crate) fn poll<T: Send + 'static>(
    interval: Duration,
    stop: CancellationToken,
    work: impl Fn() -> T + Send + Sync + 'static,
    mut then: impl FnMut(T) + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let work = Arc::new(work);
    async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
            let work = work.clone();
            if let Ok(result) = tokio::task::spawn_blocking(move || work()).await {
                then(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// One file whose contents must be a number; builds that number and
    /// counts its builds.
    struct Number {
        path: PathBuf,
        builds: AtomicUsize,
    }

    impl TlsFiles for Number {
        type Built = u32;
        fn paths(&self) -> impl Iterator<Item = &Path> {
            std::iter::once(self.path.as_path())
        }
        fn build(&self, files: &Snapshot) -> Result<u32, TlsError> {
            self.builds.fetch_add(1, Ordering::Relaxed);
            let bytes = files.bytes(&self.path, "number")?;
            String::from_utf8_lossy(bytes)
                .trim()
                .parse()
                .map_err(|e| TlsError::Config(format!("not a number: {e}")))
        }
    }

    fn number(dir: &Path, contents: &str) -> Reloadable<Number> {
        let path = dir.join("n");
        std::fs::write(&path, contents).unwrap();
        Reloadable::load(Number {
            path,
            builds: AtomicUsize::new(0),
        })
        .unwrap()
    }

    fn write(r: &Reloadable<Number>, contents: &str) {
        std::fs::write(&r.files().path, contents).unwrap();
    }

    fn builds(r: &Reloadable<Number>) -> usize {
        r.files().builds.load(Ordering::Relaxed)
    }

    #[test]
    fn swaps_only_when_the_files_change_and_keeps_what_callers_hold() {
        let dir = tempfile::tempdir().unwrap();
        let r = number(dir.path(), "1");
        let held = r.current();
        assert_eq!(r.reload(), Reload::Unchanged);
        assert_eq!(builds(&r), 1, "unchanged files are not rebuilt");
        write(&r, "2");
        assert_eq!(r.reload(), Reload::Swapped);
        assert_eq!((*held, *r.current()), (1, 2));
    }

    #[test]
    fn a_broken_edit_keeps_the_value_and_fails_once_per_broken_state() {
        let dir = tempfile::tempdir().unwrap();
        let r = number(dir.path(), "1");
        write(&r, "one");
        let Reload::Failed { error, first: true } = r.reload() else {
            panic!("a broken file must fail")
        };
        assert!(error.to_string().starts_with("not a number"), "{error}");
        assert_eq!(
            r.reload(),
            Reload::Failed {
                error: error.clone(),
                first: false
            }
        );
        assert_eq!(builds(&r), 2, "the same broken files are not rebuilt");
        assert_eq!(*r.current(), 1);

        // Undoing the edit forgets the failure: breaking it the same way
        // again is a new failure.
        write(&r, "1");
        assert_eq!(r.reload(), Reload::Unchanged);
        write(&r, "one");
        assert!(matches!(r.reload(), Reload::Failed { first: true, .. }));
        write(&r, "3");
        assert_eq!(r.reload().into_result(), Ok(true));
        assert_eq!(*r.current(), 3);
    }

    #[test]
    fn a_missing_file_is_a_failure_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let r = number(dir.path(), "1");
        std::fs::remove_file(&r.files().path).unwrap();
        let err = r.reload().into_result().unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read number file"),
            "{err}"
        );
        assert_eq!(*r.current(), 1);
    }

    #[tokio::test]
    async fn poll_runs_until_stopped() {
        let stop = CancellationToken::new();
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(poll(
            Duration::from_millis(1),
            stop.clone(),
            || 7,
            move |n| {
                let _ = seen_tx.send(n);
            },
        ));
        assert_eq!(seen_rx.recv().await, Some(7));
        stop.cancel();
        task.await.unwrap();
        // `then` (and its sender) went with the task.
        while seen_rx.recv().await.is_some() {}
    }
}

//! Durable file replacement, one home: a file is either its old bytes or its new bytes after
//! a crash, never a torn mix, and the new name survives power loss.
//!
//! Writing to a temporary file in the same directory, `fsync`ing it, renaming it over the
//! target and then `fsync`ing the *directory* is the whole recipe; leaving out the last step
//! (as hand-written `tmp` + `rename` code tends to) lets the rename itself be lost, so a
//! file reported as written can be missing after a reboot. The temporary file gets a unique
//! name (`tempfile`), so concurrent writers of the same target never share it, and is
//! removed if anything fails before the rename. [`atomic_write`] creates the file private
//! to the gateway's user (mode 0600 on Unix); [`atomic_write_shared`] as `File::create`
//! would (0666 less the umask), for files meant to be read by others (a public key, an
//! audit anchor).

use std::io::{self, Write};
use std::path::Path;

/// Replace `path` with `bytes` atomically and durably (see the module docs). The parent
/// directory must exist.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write(path, bytes, tempfile::Builder::new())
}

/// [`atomic_write`] for a file others may read: mode 0666 less the umask, as
/// `File::create` would make it.
pub fn atomic_write_shared(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut builder = tempfile::Builder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    write(path, bytes, builder)
}

fn write(path: &Path, bytes: &[u8], mut builder: tempfile::Builder<'_, '_>) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut tmp = builder.prefix(".").suffix(".tmp").tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(dir)
}

/// Make a directory's entries (a rename into it) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    // Windows cannot open a directory as a file; NTFS journals the rename itself.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_then_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.bin");
        atomic_write(&path, b"first").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        atomic_write(&path, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
        assert_eq!(names(dir.path()), ["v.bin"]);
    }

    #[test]
    fn a_missing_directory_fails_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent").join("v.bin");
        assert!(atomic_write(&path, b"x").is_err());
        assert!(names(dir.path()).is_empty());
    }

    #[test]
    fn a_failed_rename_keeps_the_old_file_and_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        // A directory in the target's place: the rename fails after the write.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"kept").unwrap();
        assert!(atomic_write(&path, b"x").is_err());
        assert_eq!(names(dir.path()), ["taken"]);
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"kept");
    }

    #[cfg(unix)]
    #[test]
    fn a_private_file_is_the_owners_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let private = dir.path().join("adapter.wasm");
        atomic_write(&private, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&private), 0o600);
        let shared = dir.path().join("signing.pub");
        atomic_write_shared(&shared, b"y").unwrap();
        assert_eq!(std::fs::read(&shared).unwrap(), b"y");
        assert_eq!(
            mode(&shared) & 0o600,
            0o600,
            "the owner reads and writes it"
        );
        assert_eq!(names(dir.path()), ["adapter.wasm", "signing.pub"]);
    }
}

//! Giving freed memory back to the operating system.
//!
//! A large request that is parsed and refused (a 3 MiB name, 150 000 form
//! keys, a 5 MiB body) is freed at once, but glibc's allocator keeps freed
//! pages in its arenas, and after the first large buffer is freed it raises
//! its mmap threshold, so later large buffers come from those arenas too:
//! resident memory stays at its high-water mark (P7 in docs/benchmarks.md).
//! With `[gateway] return-memory = true` (the default) the gateway fixes the
//! mmap threshold at [`MMAP_THRESHOLD`] — larger buffers are mapped and
//! unmapped, never kept — and every [`TRIM_EVERY`] calls `malloc_trim(0)`,
//! which hands every whole free page of every arena back. Elsewhere than
//! Linux with glibc both are no-ops.

use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Buffers at least this large are mapped on their own and unmapped when freed.
pub const MMAP_THRESHOLD: usize = 128 << 10;

/// How often free pages are handed back.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Fix the allocator's mmap threshold (once, at start).
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    set_mmap_threshold();
}

/// Hand free pages back every [`TRIM_EVERY`] until `stop`.
pub async fn trim_until(stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(TRIM_EVERY) => {}
        }
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

/// Hand every whole free page of every arena back now.
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    malloc_trim();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(unsafe_code, reason = "mallopt has no safe wrapper; see SAFETY below")]
fn set_mmap_threshold() {
    let threshold = libc::c_int::try_from(MMAP_THRESHOLD).unwrap_or(libc::c_int::MAX);
    // SAFETY: mallopt takes two integers and changes only the allocator's
    // tunables; it is safe to call at any time from any thread.
    let ok = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, threshold) };
    if ok != 1 {
        tracing::warn!("the allocator's mmap threshold could not be set");
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "malloc_trim has no safe wrapper; see SAFETY below"
)]
fn malloc_trim() {
    // SAFETY: malloc_trim takes an integer (the padding to keep) and only
    // returns free pages to the kernel; it locks the arenas itself.
    unsafe {
        libc::malloc_trim(0);
    }
}

//! The few calls into libc that the standard library does not offer. All `unsafe` of
//! uvs lives here, each call with the reason it is sound.

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Runs `f` with the file-creation mask set to `mask`, then restores the previous mask.
/// The daemon binds its control socket this way so the socket is never, even for an
/// instant, accessible to anyone but its owner. The mask is process-wide: call this
/// before other threads create files.
pub fn with_umask<T>(mask: u32, f: impl FnOnce() -> T) -> T {
    // SAFETY: umask has no preconditions and cannot fail; it only swaps a process value.
    let previous = unsafe { libc::umask(mask as libc::mode_t) };
    let out = f();
    // SAFETY: as above.
    unsafe { libc::umask(previous) };
    out
}

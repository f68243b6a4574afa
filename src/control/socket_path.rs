//! Where the control socket lives: `--socket`, else `UVS_SOCKET`, else a default under
//! the runtime directory. The daemon and uvsadm compute the same default.

use std::path::PathBuf;

use crate::sys;

/// `/run/uvs/uvs.sock` for root; `$XDG_RUNTIME_DIR/uvs/uvs.sock` for other users, or
/// `$TMPDIR/uvs-<uid>/uvs.sock` where there is no runtime directory.
pub fn default_path() -> PathBuf {
    let uid = sys::effective_uid();
    if uid == 0 {
        return PathBuf::from("/run/uvs/uvs.sock");
    }
    match std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir.join("uvs").join("uvs.sock"),
        _ => std::env::temp_dir()
            .join(format!("uvs-{uid}"))
            .join("uvs.sock"),
    }
}

/// `UVS_SOCKET` when set and not empty, else [`default_path`].
pub fn from_env() -> PathBuf {
    match std::env::var_os("UVS_SOCKET") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => default_path(),
    }
}

//! How much room the disk under a database has left: SQLite reports a journal or
//! shared-memory index that could not grow on a full disk as an I/O error, and the error
//! mapping asks here before it blames the device.

use std::path::Path;

/// Whether the file system that holds `path` (or would hold it) has no room left for what
/// SQLite writes next to a database (its journal, its shared-memory index), so that a failed
/// write there is taken for a full disk, not a broken one.
pub fn no_room_left(path: &Path) -> bool {
    const ROOM: u64 = 64 * 1024;
    let at = if path.exists() {
        path
    } else {
        match path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            Some(dir) => dir,
            None => Path::new("."),
        }
    };
    free_bytes(at).is_some_and(|free| free < ROOM)
}

#[cfg(unix)]
fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is a NUL-terminated string and `stats` is written by the call before it
    // is read, which only happens when the call succeeded.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return None;
        }
        stats.assume_init()
    };
    // Both are narrower than 64 bits on some targets.
    #[allow(clippy::useless_conversion)]
    Some(u64::from(stats.f_bavail).saturating_mul(u64::from(stats.f_frsize)))
}

#[cfg(not(unix))]
fn free_bytes(_path: &Path) -> Option<u64> {
    None
}

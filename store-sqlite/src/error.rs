//! SQLite's failures as the store's neutral [`StorageError`]s: busy or locked is
//! [`StorageErrorKind::Locked`], a file that is not a database (or a damaged one) is `Corrupt`,
//! a full disk `Full`, a failed read, write or sync `Io`, a file made read-only or removed under
//! its writer `ReadOnly`, what cannot be opened at all `Unavailable`, the rest `Other`; SQLite's
//! own error stays the source.

use std::path::Path;

use rusqlite::ErrorCode;
use taskflow_store::{Error, StorageError, StorageErrorKind};

/// A SQLite failure on the database at `path`.
pub(crate) fn from_sqlite(path: &Path, error: rusqlite::Error) -> Error {
    at(path, storage(error))
}

/// A SQLite failure whose database the caller fills in with [`at`].
pub(crate) fn storage(error: rusqlite::Error) -> Error {
    let kind = match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StorageErrorKind::Locked,
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StorageErrorKind::Corrupt,
        Some(ErrorCode::DiskFull) => StorageErrorKind::Full,
        Some(ErrorCode::SystemIoFailure) => StorageErrorKind::Io,
        Some(ErrorCode::ReadOnly) => StorageErrorKind::ReadOnly,
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => StorageErrorKind::Unavailable,
        _ => StorageErrorKind::Other,
    };
    let detail = match kind {
        StorageErrorKind::ReadOnly => format!(
            "the file or its folder is read-only (the database writes beside the file even to \
             be read), or it was removed while in use: {error}"
        ),
        _ => error.to_string(),
    };
    Error::Storage(StorageError::new(kind, "", detail).with_source(error))
}

/// Names the database at `path` in a storage error that does not name one yet. A failed read
/// or write where the disk has no room left is the full disk: SQLite reports one as an I/O
/// error when it is its journal or shared-memory index that could not grow.
pub(crate) fn at(path: &Path, mut error: Error) -> Error {
    if let Error::Storage(storage) = &mut error {
        if storage.database.is_empty() {
            storage.database = path.display().to_string();
        }
        if storage.kind == StorageErrorKind::Io && crate::disk::no_room_left(path) {
            storage.kind = StorageErrorKind::Full;
        }
    }
    error
}

/// A storage error of `kind` about the database at `path`.
pub(crate) fn refused(path: &Path, kind: StorageErrorKind, detail: impl Into<String>) -> Error {
    Error::Storage(StorageError::new(kind, path.display().to_string(), detail))
}

/// `?` on a rusqlite result inside the backend.
pub(crate) trait Sql<T> {
    fn sql(self) -> taskflow_store::Result<T>;
}

impl<T> Sql<T> for rusqlite::Result<T> {
    fn sql(self) -> taskflow_store::Result<T> {
        self.map_err(storage)
    }
}

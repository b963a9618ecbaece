//! Writing a file inside a [`Workspace`], atomically: the one writer behind the `write_file`
//! action and the `write_file` tool. The path is confined first ([`Workspace::writable`]),
//! before any folder is created; the content goes to a temporary file beside the target, which
//! is then renamed over it, so neither a reader nor a crash ever sees half a file.

use std::io;
use std::path::{Path, PathBuf};

use crate::workspace::{PathError, Workspace};

/// Why a file was not written. Each caller words it for its own reader.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The workspace refused the path.
    Refused(PathError),
    /// The path names a folder.
    Folder(PathBuf),
    /// The file system refused `doing` (`cannot create`, `cannot write`, `cannot replace`) on
    /// `path`.
    Io { doing: &'static str, path: PathBuf, error: io::Error },
}

/// Writes `content` to `relative` inside `workspace`, creating its folders, through the
/// temporary file `.NAME.TAG` beside it. Returns the real path written. Blocking.
pub(crate) fn write_inside(
    workspace: &Workspace,
    relative: &str,
    content: &[u8],
    tag: &str,
) -> Result<PathBuf, WriteError> {
    let target = workspace.writable(relative).map_err(WriteError::Refused)?;
    if target.is_dir() {
        return Err(WriteError::Folder(target));
    }
    let io = |doing, path: &Path| {
        let path = path.to_owned();
        move |error| WriteError::Io { doing, path, error }
    };
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
    }
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let temporary = target.with_file_name(format!(".{name}.{tag}"));
    std::fs::write(&temporary, content).map_err(io("cannot write", &temporary))?;
    std::fs::rename(&temporary, &target).map_err(io("cannot replace", &target))?;
    Ok(target)
}

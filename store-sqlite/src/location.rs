//! Where the flow database lives and who may read it: the default path
//! (`$XDG_DATA_HOME/taskflow/flows.db`, else `~/.local/share/taskflow/flows.db`), and the
//! private permissions (directory 0700, file 0600) given to what taskflow creates. Flows hold
//! prompts, tool outputs and state that are nobody else's business.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use taskflow_store::{Error, Result, StorageErrorKind};

/// The database path when neither `--db` nor `TASKFLOW_DB` names one.
pub fn default_path() -> Result<PathBuf> {
    default_path_from(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
}

/// [`default_path`] from explicit values of `XDG_DATA_HOME` and `HOME`. A relative or empty
/// `XDG_DATA_HOME` is ignored, as the XDG base directory specification says.
pub fn default_path_from(
    xdg_data_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf> {
    let data_home = match xdg_data_home.map(PathBuf::from).filter(|dir| dir.is_absolute()) {
        Some(dir) => dir,
        None => {
            let home = home.filter(|home| !home.is_empty()).ok_or(Error::NoDataDir)?;
            PathBuf::from(home).join(".local").join("share")
        }
    };
    Ok(data_home.join("taskflow").join("flows.db"))
}

/// Makes sure the directory of `path` exists, creating what is missing with mode 0700, and that
/// the file exists with mode 0600 (an existing file's mode is left as its owner set it).
pub fn create_private(path: &Path) -> Result<()> {
    let io = |source| Error::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(io(error)),
    }
}

/// Refuses a database path that is there but is no file: a folder, a device (`/dev/null`), a
/// pipe or a socket, on which SQLite fails with an error that blames the disk.
pub fn check_file(path: &Path) -> Result<()> {
    let Ok(found) = std::fs::metadata(path) else { return Ok(()) };
    let what = if found.is_file() {
        return Ok(());
    } else if found.is_dir() {
        "a folder"
    } else {
        "a device, a pipe or a socket"
    };
    Err(crate::error::refused(
        path,
        StorageErrorKind::Unavailable,
        format!("it is {what}, not a database file"),
    ))
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| Error::Io { path: dir.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xdg: Option<&str>, home: Option<&str>, expected: Option<&str>) {
        let got = default_path_from(xdg.map(OsString::from), home.map(OsString::from));
        match expected {
            Some(path) => assert_eq!(got.unwrap(), PathBuf::from(path)),
            None => assert!(matches!(got, Err(Error::NoDataDir))),
        }
    }

    #[test]
    fn default_path() {
        check(Some("/x/data"), Some("/home/a"), Some("/x/data/taskflow/flows.db"));
        check(None, Some("/home/a"), Some("/home/a/.local/share/taskflow/flows.db"));
        check(Some("relative"), Some("/home/a"), Some("/home/a/.local/share/taskflow/flows.db"));
        check(Some(""), Some("/home/a"), Some("/home/a/.local/share/taskflow/flows.db"));
        check(None, None, None);
        check(None, Some(""), None);
    }

    #[cfg(unix)]
    #[test]
    fn creates_a_private_directory_and_file() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a/taskflow/flows.db");
        create_private(&path).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        std::fs::write(&path, b"kept").unwrap();
        create_private(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"kept", "an existing file is left alone");
    }
}

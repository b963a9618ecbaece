//! The folder file tools may touch: an agent's workspace, a pipeline's output folder. Every
//! path a model or a step gives is checked here before any file is opened or any folder
//! created: absolute paths and `..` are refused outright, and the real location (after
//! following symlinks) must stay inside the root, so a link that points outside does not
//! become a way out.

use std::io;
use std::path::{Component, Path, PathBuf};

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("`{0}` is absolute; give a path relative to the workspace")]
    Absolute(String),
    #[error("`{0}` goes up with `..`; paths must stay inside the workspace")]
    ParentComponent(String),
    #[error("`{0}` leads outside the workspace (through a symbolic link)")]
    Escapes(String),
    #[error("`{path}`: {reason}")]
    Io { path: String, reason: String },
}

/// A root folder, canonical, that file tools are confined to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// The workspace rooted at `root`, which must exist.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self { root: root.as_ref().canonicalize()? })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The real path of `relative`, which must exist and lie inside the workspace.
    pub fn existing(&self, relative: &str) -> Result<PathBuf, PathError> {
        let joined = self.join(relative)?;
        let real = joined.canonicalize().map_err(|error| io_error(relative, &error))?;
        self.inside(relative, real)
    }

    /// Where `relative` is to be written: its folder's real path joined with its file name.
    /// Folders that do not exist yet are fine (the writer creates them), as long as the part
    /// that exists lies inside the workspace.
    pub fn writable(&self, relative: &str) -> Result<PathBuf, PathError> {
        let joined = self.join(relative)?;
        let name = joined
            .file_name()
            .ok_or_else(|| io_error(relative, &io::Error::other("names no file")))?
            .to_owned();
        let parent = joined.parent().unwrap_or(&self.root);
        // The nearest folder that exists decides where the path really goes.
        let mut existing = parent;
        let mut missing = Vec::new();
        while !existing.exists() {
            missing.push(existing.file_name().map(ToOwned::to_owned));
            existing = existing.parent().unwrap_or(&self.root);
        }
        let mut real = existing.canonicalize().map_err(|error| io_error(relative, &error))?;
        for part in missing.into_iter().rev().flatten() {
            real.push(part);
        }
        real.push(&name);
        if let Ok(metadata) = std::fs::symlink_metadata(&real)
            && metadata.file_type().is_symlink()
        {
            let target = real.canonicalize().map_err(|error| io_error(relative, &error))?;
            return self.inside(relative, target);
        }
        self.inside(relative, real)
    }

    /// `relative` joined to the root, refusing absolute paths and `..`.
    fn join(&self, relative: &str) -> Result<PathBuf, PathError> {
        let mut joined = self.root.clone();
        for part in relative_path(relative)?.components() {
            joined.push(part);
        }
        Ok(joined)
    }

    fn inside(&self, relative: &str, real: PathBuf) -> Result<PathBuf, PathError> {
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(PathError::Escapes(relative.to_owned()))
        }
    }
}

/// The names `relative` goes through below a folder (`.` left out), refusing absolute paths
/// and `..`. This reads the text only: whether the path stays inside once links are followed
/// is for [`Workspace::existing`] and [`Workspace::writable`] to tell.
pub fn relative_path(relative: &str) -> Result<PathBuf, PathError> {
    let mut clean = PathBuf::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(PathError::ParentComponent(relative.to_owned())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(PathError::Absolute(relative.to_owned()));
            }
        }
    }
    Ok(clean)
}

fn io_error(relative: &str, error: &io::Error) -> PathError {
    let reason = match error.kind() {
        io::ErrorKind::NotFound => "no such file or folder in the workspace".to_owned(),
        _ => error.to_string(),
    };
    PathError::Io { path: relative.to_owned(), reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        outside: tempfile::TempDir,
        workspace: Workspace,
    }

    /// A workspace with `notes/a.md`, a link `out` to a folder outside, a link `loop_in` to
    /// `notes`, and a link `secret.md` to a file outside.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("notes")).unwrap();
        std::fs::write(dir.path().join("notes/a.md"), "a").unwrap();
        std::fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("notes"), dir.path().join("loop_in")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("secret.md"))
            .unwrap();
        let workspace = Workspace::new(dir.path()).unwrap();
        Fixture { _dir: dir, outside, workspace }
    }

    fn check_existing(path: &str, expected: Result<&str, fn(String) -> PathError>) {
        let fixture = fixture();
        let actual = fixture.workspace.existing(path);
        match expected {
            Ok(relative) => {
                assert_eq!(actual.unwrap(), fixture.workspace.root().join(relative), "{path}")
            }
            Err(make) => assert_eq!(actual.unwrap_err(), make(path.to_owned()), "{path}"),
        }
    }

    #[test]
    fn reading_stays_inside() {
        check_existing("notes/a.md", Ok("notes/a.md"));
        check_existing("./notes/./a.md", Ok("notes/a.md"));
        check_existing("loop_in/a.md", Ok("notes/a.md"));
        check_existing(".", Ok(""));
        check_existing("../etc/passwd", Err(PathError::ParentComponent));
        check_existing("notes/../../x", Err(PathError::ParentComponent));
        check_existing("/etc/passwd", Err(PathError::Absolute));
        check_existing("out/secret", Err(PathError::Escapes));
        check_existing("secret.md", Err(PathError::Escapes));
        let missing = fixture().workspace.existing("nope.md").unwrap_err();
        assert!(matches!(missing, PathError::Io { .. }), "{missing:?}");
    }

    #[test]
    fn writing_stays_inside() {
        let fixture = fixture();
        let root = fixture.workspace.root().to_owned();
        assert_eq!(fixture.workspace.writable("new.md").unwrap(), root.join("new.md"));
        assert_eq!(fixture.workspace.writable("a/b/c.md").unwrap(), root.join("a/b/c.md"));
        assert_eq!(fixture.workspace.writable("loop_in/b.md").unwrap(), root.join("notes/b.md"));
        for (path, expected) in [
            ("out/new.md", PathError::Escapes("out/new.md".into())),
            ("out/deeper/new.md", PathError::Escapes("out/deeper/new.md".into())),
            ("secret.md", PathError::Escapes("secret.md".into())),
            ("../x.md", PathError::ParentComponent("../x.md".into())),
            ("/tmp/x.md", PathError::Absolute("/tmp/x.md".into())),
        ] {
            assert_eq!(fixture.workspace.writable(path).unwrap_err(), expected, "{path}");
        }
        assert!(fixture.outside.path().join("secret").exists());
    }
}

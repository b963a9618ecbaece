//! `write_file`: writes `with.content` to `with.path` inside the spec's declared
//! `output_dir`, and nowhere else: an absolute path, `..`, or a symbolic link leading out of
//! the folder is refused, before any folder is created. A string is written as is, any other
//! value as pretty JSON. The file is replaced atomically (written beside it, then renamed: the
//! same writer as the `write_file` tool's), so a repeated attempt leaves the same file. The
//! output is `{"path", "bytes"}`, `path` being the real path written.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::params::string_param;
use crate::action::Action;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::workspace::{PathError, Workspace, relative_path};
use crate::write::{WriteError, write_inside};

pub struct WriteFile;

impl Action for WriteFile {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let relative = string_param(&input, "path").map_err(ActionError::permanent)?;
            let content = match input.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => serde_json::to_string_pretty(other).unwrap_or_default() + "\n",
                None => return Err(ActionError::permanent("`with.content` is missing")),
            };
            let folder = context.output_dir.clone().ok_or_else(|| {
                ActionError::permanent(
                    "write_file needs an output folder: declare `output_dir` in the pipeline",
                )
            })?;
            let folder = context.resolve(folder);
            let relative = relative.to_owned();
            let bytes = content.len();
            let path =
                tokio::task::spawn_blocking(move || write(&folder, &relative, content.as_bytes()))
                    .await
                    .map_err(|error| ActionError::failed(error.to_string()))??;
            Ok(json!({"path": path.display().to_string(), "bytes": bytes}))
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        let path = string_param(with, "path")?;
        if !path.contains("{{") {
            inside(path)?;
        }
        if with.get("content").is_none() {
            return Err("`with.content` is missing".to_owned());
        }
        Ok(())
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["path", "content"])
    }
}

/// The names `relative` goes through inside the output folder, refusing what would leave it
/// on paper.
fn inside(relative: &str) -> Result<PathBuf, String> {
    let clean = relative_path(relative).map_err(|_| {
        format!("`{relative}` must be a relative path inside the output folder, without `..`")
    })?;
    if clean.as_os_str().is_empty() {
        return Err("`with.path` names no file".to_owned());
    }
    Ok(clean)
}

/// Creates the output folder, then writes `relative` inside it.
fn write(folder: &Path, relative: &str, content: &[u8]) -> Result<PathBuf, ActionError> {
    let target = folder.join(inside(relative).map_err(ActionError::permanent)?);
    let failed = |what: &str, path: &Path, error: &dyn std::fmt::Display| {
        ActionError::failed(format!("{what} {}: {error}", path.display()))
    };
    std::fs::create_dir_all(folder).map_err(|e| failed("cannot create", folder, &e))?;
    let workspace = Workspace::new(folder).map_err(|e| failed("cannot resolve", folder, &e))?;
    write_inside(&workspace, relative, content, "taskflow-tmp").map_err(|error| match error {
        WriteError::Refused(PathError::Escapes(_)) => ActionError::permanent(format!(
            "{} leads out of the output folder {}",
            target.display(),
            workspace.root().display()
        )),
        WriteError::Refused(PathError::Io { reason, .. }) => {
            failed("cannot resolve", &target, &reason)
        }
        WriteError::Refused(refused) => ActionError::permanent(refused.to_string()),
        // Worded as the system words a rename over a folder.
        WriteError::Folder(path) => {
            failed("cannot replace", &path, &std::io::Error::from_raw_os_error(libc::EISDIR))
        }
        WriteError::Io { doing, path, error } => failed(doing, &path, &error),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_output_folder() {
        fn check(relative: &str, ok: bool) {
            assert_eq!(inside(relative).is_ok(), ok, "{relative}");
        }
        check("digest.md", true);
        check("./daily/digest.md", true);
        check("../escape.md", false);
        check("daily/../../escape.md", false);
        check("/etc/passwd", false);
        check("", false);
        check(".", false);
    }

    #[test]
    fn a_symbolic_link_out_of_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("link")).unwrap();
        for path in ["link/x.txt", "link/deeper/x.txt"] {
            let refused = write(&out, path, b"x");
            assert!(matches!(refused, Err(ActionError::Permanent(_))), "{path}: {refused:?}");
        }
        assert!(!elsewhere.join("x.txt").exists());
        assert!(!elsewhere.join("deeper").exists(), "no folder is made outside");
        std::fs::create_dir(out.join("folder")).unwrap();
        let refused = write(&out, "folder", b"x").unwrap_err();
        let retried =
            matches!(&refused, ActionError::Failed(error) if error.contains("Is a directory"));
        assert!(retried, "{refused:?}");
        let written = write(&out, "sub/x.txt", b"hello").unwrap();
        assert_eq!(written, out.canonicalize().unwrap().join("sub/x.txt"));
        assert_eq!(std::fs::read_to_string(written).unwrap(), "hello");
    }
}

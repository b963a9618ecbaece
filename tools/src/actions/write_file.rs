//! `write_file`: writes `with.content` to `with.path` inside the spec's declared
//! `output_dir`, and nowhere else: an absolute path, `..`, or a symbolic link leading out of
//! the folder is refused. A string is written as is, any other value as pretty JSON. The file
//! is replaced atomically (written beside it, then renamed), so a repeated attempt leaves the
//! same file. The output is `{"path", "bytes"}`.

use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::params::string_param;
use crate::action::Action;
use crate::step::{ActionError, ActionFuture, StepContext};

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
            let target = inside(&folder, relative).map_err(ActionError::permanent)?;
            let bytes = content.len();
            let path =
                tokio::task::spawn_blocking(move || write(&folder, &target, content.as_bytes()))
                    .await
                    .map_err(|error| ActionError::failed(error.to_string()))??;
            Ok(json!({"path": path.display().to_string(), "bytes": bytes}))
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        let path = string_param(with, "path")?;
        if !path.contains("{{") {
            inside(Path::new("out"), path)?;
        }
        if with.get("content").is_none() {
            return Err("`with.content` is missing".to_owned());
        }
        Ok(())
    }
}

/// `relative` under `folder`, refusing what would leave it on paper.
fn inside(folder: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative);
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            _ => {
                return Err(format!(
                    "`{relative}` must be a relative path inside the output folder, without `..`"
                ));
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Err("`with.path` names no file".to_owned());
    }
    Ok(folder.join(clean))
}

/// Creates the folders, checks that the real location is still inside the output folder (no
/// symbolic link leads out), then writes atomically.
fn write(folder: &Path, target: &Path, content: &[u8]) -> Result<PathBuf, ActionError> {
    let io = |what: &str, path: &Path, error: std::io::Error| {
        ActionError::failed(format!("{what} {}: {error}", path.display()))
    };
    std::fs::create_dir_all(folder).map_err(|e| io("cannot create", folder, e))?;
    let parent = target.parent().unwrap_or(folder);
    std::fs::create_dir_all(parent).map_err(|e| io("cannot create", parent, e))?;
    let real_folder = folder.canonicalize().map_err(|e| io("cannot resolve", folder, e))?;
    let real_parent = parent.canonicalize().map_err(|e| io("cannot resolve", parent, e))?;
    let name = target.file_name().ok_or_else(|| ActionError::permanent("no file name"))?;
    let real_target = real_parent.join(name);
    let escapes = !real_parent.starts_with(&real_folder)
        || std::fs::symlink_metadata(&real_target).is_ok_and(|meta| meta.file_type().is_symlink());
    if escapes {
        return Err(ActionError::permanent(format!(
            "{} leads out of the output folder {}",
            target.display(),
            real_folder.display()
        )));
    }
    let temporary = real_parent.join(format!(".{}.taskflow-tmp", name.to_string_lossy()));
    std::fs::write(&temporary, content).map_err(|e| io("cannot write", &temporary, e))?;
    std::fs::rename(&temporary, &real_target).map_err(|e| io("cannot replace", &real_target, e))?;
    Ok(real_target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_output_folder() {
        fn check(relative: &str, ok: bool) {
            assert_eq!(inside(Path::new("/out"), relative).is_ok(), ok, "{relative}");
        }
        check("digest.md", true);
        check("./daily/digest.md", true);
        check("../escape.md", false);
        check("daily/../../escape.md", false);
        check("/etc/passwd", false);
        check("", false);
    }

    #[test]
    fn a_symbolic_link_out_of_the_folder_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&out).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, out.join("link")).unwrap();
        let refused = write(&out, &out.join("link").join("x.txt"), b"x");
        assert!(matches!(refused, Err(ActionError::Permanent(_))), "{refused:?}");
        assert!(!elsewhere.join("x.txt").exists());
        let written = write(&out, &out.join("sub").join("x.txt"), b"hello").unwrap();
        assert_eq!(std::fs::read_to_string(written).unwrap(), "hello");
    }
}

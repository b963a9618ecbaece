//! `list_dir`: the entries of a folder inside the workspace, folders first, each with its
//! kind (`dir`, `file`, `link`, `other`) and, for files, its size. Links are not followed.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::arguments;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;

/// The most entries one listing returns.
const MAX_ENTRIES: usize = 1000;

pub struct ListDir {
    workspace: Workspace,
}

impl ListDir {
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    #[serde(default = "here")]
    path: String,
}

fn here() -> String {
    ".".to_owned()
}

impl Tool for ListDir {
    fn name(&self) -> &str {
        "list_dir"
    }

    fn description(&self) -> &str {
        "List a folder of the workspace (path relative to the workspace root, default `.`)"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "additionalProperties": false, "properties": {
            "path": {"type": "string", "description": "relative path of the folder", "default": "."}}})
    }

    fn call(&self, args: Value, _context: StepContext) -> ActionFuture {
        let workspace = self.workspace.clone();
        Box::pin(async move {
            let args: Args = arguments("list_dir", args)?;
            let path = workspace
                .existing(&args.path)
                .map_err(|error| ActionError::permanent(error.to_string()))?;
            let mut reader = tokio::fs::read_dir(&path).await.map_err(|error| {
                ActionError::permanent(format!("cannot list `{}`: {error}", args.path))
            })?;
            let mut entries = Vec::new();
            while let Some(entry) = reader.next_entry().await.map_err(|error| {
                ActionError::permanent(format!("cannot list `{}`: {error}", args.path))
            })? {
                let metadata = entry.metadata().await.ok();
                let kind = match &metadata {
                    Some(metadata) if metadata.is_dir() => "dir",
                    Some(metadata) if metadata.is_file() => "file",
                    Some(metadata) if metadata.is_symlink() => "link",
                    _ => "other",
                };
                let bytes = metadata.filter(|m| m.is_file()).map(|m| m.len());
                entries.push((
                    kind != "dir",
                    entry.file_name().to_string_lossy().into_owned(),
                    kind,
                    bytes,
                ));
            }
            entries.sort();
            let total = entries.len();
            let mut listed: Vec<Value> = entries
                .into_iter()
                .take(MAX_ENTRIES)
                .map(|(_, name, kind, bytes)| match bytes {
                    Some(bytes) => json!({"name": name, "kind": kind, "bytes": bytes}),
                    None => json!({"name": name, "kind": kind}),
                })
                .collect();
            if total > MAX_ENTRIES {
                listed.push(
                    json!({"note": format!("{} more entries not shown", total - MAX_ENTRIES)}),
                );
            }
            Ok(Value::Array(listed))
        })
    }
}

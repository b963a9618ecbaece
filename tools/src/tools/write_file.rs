//! `write_file`: writes a text file inside the workspace, creating its folders. The file is
//! written to a temporary name and renamed (the same writer as the `write_file` action's), so
//! a crash never leaves half a file.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::arguments;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;
use crate::write::{WriteError, write_inside};

pub struct WriteFileTool {
    workspace: Workspace,
}

impl WriteFileTool {
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    content: String,
}

impl Tool for WriteFileTool {
    fn name(&self) -> &str {
        "write_file"
    }

    fn description(&self) -> &str {
        "Write a text file in the workspace (path relative to the workspace root), replacing it"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["path", "content"], "additionalProperties": false, "properties": {
            "path": {"type": "string", "description": "relative path of the file"},
            "content": {"type": "string", "description": "the whole new text of the file"}}})
    }

    fn call(&self, args: Value, context: StepContext) -> ActionFuture {
        let workspace = self.workspace.clone();
        Box::pin(async move {
            let Args { path, content } = arguments("write_file", args)?;
            let bytes = content.len();
            let tag = format!("{}.tmp", context.idempotency_key);
            let relative = path.clone();
            let written = tokio::task::spawn_blocking(move || {
                write_inside(&workspace, &relative, content.as_bytes(), &tag)
            })
            .await
            .map_err(|error| ActionError::failed(error.to_string()))?;
            match written {
                Ok(_) => Ok(json!({"path": path, "bytes": bytes})),
                Err(WriteError::Refused(error)) => Err(ActionError::permanent(error.to_string())),
                Err(WriteError::Folder(_)) => {
                    Err(ActionError::permanent(format!("`{path}` is a folder")))
                }
                Err(WriteError::Io { error, .. }) => {
                    Err(ActionError::failed(format!("cannot write `{path}`: {error}")))
                }
            }
        })
    }
}

//! `write_file`: writes a text file inside the workspace, creating its folders. The file is
//! written to a temporary name and renamed, so a crash never leaves half a file.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::arguments;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;

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
            let args: Args = arguments("write_file", args)?;
            let path = workspace
                .writable(&args.path)
                .map_err(|error| ActionError::permanent(error.to_string()))?;
            if path.is_dir() {
                return Err(ActionError::permanent(format!("`{}` is a folder", args.path)));
            }
            let failed = |error: std::io::Error| {
                ActionError::failed(format!("cannot write `{}`: {error}", args.path))
            };
            if let Some(parent) = path.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(failed)?;
            }
            let temporary = path.with_file_name(format!(
                ".{}.{}.tmp",
                path.file_name().unwrap_or_default().to_string_lossy(),
                context.idempotency_key
            ));
            tokio::fs::write(&temporary, &args.content).await.map_err(failed)?;
            tokio::fs::rename(&temporary, &path).await.map_err(failed)?;
            Ok(json!({"path": args.path, "bytes": args.content.len()}))
        })
    }
}

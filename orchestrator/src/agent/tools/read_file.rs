//! `read_file`: the text of a file inside the workspace.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_OUTPUT_BYTES, arguments, truncated};
use crate::action::{ActionError, ActionFuture, StepContext};
use crate::agent::workspace::Workspace;
use crate::tools::Tool;

pub struct ReadFile {
    workspace: Workspace,
}

impl ReadFile {
    pub fn new(workspace: Workspace) -> Self {
        Self { workspace }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    path: String,
    #[serde(default)]
    max_bytes: Option<usize>,
}

impl Tool for ReadFile {
    fn name(&self) -> &'static str {
        "read_file"
    }

    fn description(&self) -> &'static str {
        "Read a text file of the workspace (path relative to the workspace root)"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
            "path": {"type": "string", "description": "relative path of the file"},
            "max_bytes": {"type": "integer", "description": "read at most this many bytes (default 65536)"}}})
    }

    fn call(&self, args: Value, _context: StepContext) -> ActionFuture {
        let workspace = self.workspace.clone();
        Box::pin(async move {
            let args: Args = arguments("read_file", args)?;
            let path = workspace
                .existing(&args.path)
                .map_err(|error| ActionError::permanent(error.to_string()))?;
            if path.is_dir() {
                return Err(ActionError::permanent(format!(
                    "`{}` is a folder; use list_dir",
                    args.path
                )));
            }
            let bytes = tokio::fs::read(&path).await.map_err(|error| {
                ActionError::permanent(format!("cannot read `{}`: {error}", args.path))
            })?;
            let text = String::from_utf8(bytes).map_err(|_| {
                ActionError::permanent(format!("`{}` is not UTF-8 text", args.path))
            })?;
            Ok(Value::String(truncated(&text, args.max_bytes.unwrap_or(MAX_OUTPUT_BYTES))))
        })
    }
}

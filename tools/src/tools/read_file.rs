//! `read_file`: the text of a file inside the workspace.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{MAX_OUTPUT_BYTES, arguments};
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;

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

/// The first `limit` bytes of the file as text (cut back to a character boundary), and how
/// many bytes were left unread. Only that part is read, so a huge file costs no more than a
/// small one. `None` when that part is not UTF-8.
async fn read_prefix(
    path: &std::path::Path,
    limit: usize,
) -> std::io::Result<(Option<String>, u64)> {
    use tokio::io::AsyncReadExt;
    let file = tokio::fs::File::open(path).await?;
    let size = file.metadata().await?.len();
    let mut bytes = Vec::with_capacity(limit.min(size as usize));
    file.take(limit as u64).read_to_end(&mut bytes).await?;
    let end = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        // The limit cut a character in two: keep the characters before it.
        Err(error) if error.error_len().is_none() && size > bytes.len() as u64 => {
            error.valid_up_to()
        }
        Err(_) => return Ok((None, 0)),
    };
    bytes.truncate(end);
    let rest = size.saturating_sub(end as u64);
    Ok((String::from_utf8(bytes).ok(), rest))
}

impl Tool for ReadFile {
    fn name(&self) -> &str {
        "read_file"
    }

    fn description(&self) -> &str {
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
            let limit = args.max_bytes.unwrap_or(MAX_OUTPUT_BYTES);
            read_prefix(&path, limit)
                .await
                .map_err(|error| {
                    ActionError::permanent(format!("cannot read `{}`: {error}", args.path))
                })
                .and_then(|(text, rest)| match text {
                    Some(text) if rest == 0 => Ok(Value::String(text)),
                    Some(text) => {
                        Ok(Value::String(format!("{text}\n[… {rest} more bytes not shown]")))
                    }
                    None => {
                        Err(ActionError::permanent(format!("`{}` is not UTF-8 text", args.path)))
                    }
                })
        })
    }
}

//! The tools an agent may call: `read_file`, `list_dir`, `write_file` (all confined to a
//! [`Workspace`]), `fetch_url`, and `run_command` (only programs on an allow-list). Each one
//! reads its arguments into a typed struct, so a call with bad arguments gets a precise error
//! that goes back to the model instead of a crash.

mod fetch_url;
mod list_dir;
mod read_file;
mod run_command;
mod write_file;

use serde::de::DeserializeOwned;
use serde_json::Value;

pub use fetch_url::FetchUrl;
pub use list_dir::ListDir;
pub use read_file::ReadFile;
pub use run_command::RunCommand;
pub use write_file::WriteFileTool;

use super::workspace::Workspace;
use crate::action::ActionError;
use crate::tools::Tools;

/// What the agent tools are allowed to touch.
#[derive(Debug, Clone)]
pub struct AgentToolSettings {
    pub workspace: Workspace,
    /// Programs `run_command` may start (by name, e.g. `ls`, `cargo`); empty means none.
    pub allowed_commands: Vec<String>,
}

/// Registers the agent tools on `tools`.
pub fn register(tools: &mut Tools, settings: &AgentToolSettings) {
    tools
        .register(ReadFile::new(settings.workspace.clone()))
        .register(ListDir::new(settings.workspace.clone()))
        .register(WriteFileTool::new(settings.workspace.clone()))
        .register(FetchUrl::default())
        .register(RunCommand::new(settings.workspace.clone(), settings.allowed_commands.clone()));
}

/// The arguments of a call to `tool`, read into `T`; a mismatch is an error for the model.
fn arguments<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ActionError> {
    serde_json::from_value(args)
        .map_err(|error| ActionError::permanent(format!("{tool}: bad arguments: {error}")))
}

/// The most bytes a tool returns to the model from one file, page or command.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// `text` cut to `limit` bytes at a character boundary, with a note when it was cut.
fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes not shown]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests;

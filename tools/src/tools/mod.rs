//! The built-in tools. `html_text` and `keyword_filter` work on JSON alone
//! ([`Tools::builtin`], what a pipeline's `tool` step may call). The agent tools
//! ([`register_agent_tools`]) are `read_file`, `list_dir`, `write_file` (all confined to a
//! [`Workspace`]), `fetch_url`, and `run_command` (only programs on an allow-list); each reads
//! its arguments into a typed struct, so a call with bad arguments gets a precise error that
//! goes back to the model instead of a crash.

pub(crate) mod args;
mod fetch_url;
mod html_text;
mod keyword_filter;
mod list_dir;
mod read_file;
mod run_command;
mod write_file;

pub use fetch_url::FetchUrl;
pub use html_text::HtmlText;
pub use keyword_filter::KeywordFilter;
pub use list_dir::ListDir;
pub use read_file::ReadFile;
pub use run_command::RunCommand;
pub use write_file::WriteFileTool;

use crate::tool::Tools;
use crate::workspace::Workspace;

impl Tools {
    /// `html_text` and `keyword_filter`.
    pub fn builtin() -> Self {
        let mut tools = Tools::default();
        tools.register(HtmlText).register(KeywordFilter);
        tools
    }
}

/// What the agent tools are allowed to touch.
#[derive(Debug, Clone)]
pub struct AgentToolSettings {
    pub workspace: Workspace,
    /// Programs `run_command` may start (by name, e.g. `ls`, `cargo`); empty means none.
    pub allowed_commands: Vec<String>,
}

/// The names of the agent tools, as [`register_agent_tools`] registers them.
pub const AGENT_TOOLS: [&str; 5] =
    ["read_file", "list_dir", "write_file", "fetch_url", "run_command"];

/// Registers the agent tools on `tools`.
pub fn register_agent_tools(tools: &mut Tools, settings: &AgentToolSettings) {
    tools
        .register(ReadFile::new(settings.workspace.clone()))
        .register(ListDir::new(settings.workspace.clone()))
        .register(WriteFileTool::new(settings.workspace.clone()))
        .register(FetchUrl::default())
        .register(RunCommand::new(settings.workspace.clone(), settings.allowed_commands.clone()));
}

#[cfg(test)]
mod tests;

//! The built-in actions: `echo`, `shell`, `fetch_urls`, `write_file`, `tool` (a built-in tool
//! as a step), `llm` (one model request) and `agent` (an agent run as a child flow of the
//! step's flow). Each is one file; [`Actions::builtin`] registers them all.

mod agent;
mod echo;
mod fetch_urls;
mod llm;
mod params;
mod shell;
mod tool;
mod write_file;

pub use agent::AgentAction;
pub use echo::Echo;
pub use fetch_urls::FetchUrls;
pub use llm::{Llm, reply_text};
pub use shell::Shell;
pub use tool::ToolAction;
pub use write_file::WriteFile;

use crate::action::Actions;
use crate::tool::Tools;

impl Actions {
    /// `echo`, `shell`, `fetch_urls`, `write_file`, `tool` (over [`Tools::builtin`]), `llm`
    /// (providers from the presets; an engine given other providers registers its own) and
    /// `agent` (an agent run as a child flow, with the engine's providers).
    pub fn builtin() -> Self {
        let mut actions = Actions::new();
        actions
            .register("agent", AgentAction)
            .register("echo", Echo)
            .register("llm", Llm::new(taskflow_providers::preset_providers()))
            .register("shell", Shell)
            .register("fetch_urls", FetchUrls::default())
            .register("write_file", WriteFile)
            .register("tool", ToolAction::new(Tools::builtin()));
        actions
    }
}

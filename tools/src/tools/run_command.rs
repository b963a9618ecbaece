//! `run_command`: runs a program from an allow-list in the workspace. The command line is
//! split into words like a shell would (quotes respected) but no shell runs it, so `;`, `|`,
//! `$(…)` and redirections are plain arguments and cannot smuggle in another program. A
//! program not on the list is refused, and the refusal says why, for the model to read.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{MAX_OUTPUT_BYTES, arguments, truncated};
use crate::process::run_child;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;

pub struct RunCommand {
    workspace: Workspace,
    allowed: Vec<String>,
}

impl RunCommand {
    pub fn new(workspace: Workspace, allowed: Vec<String>) -> Self {
        Self { workspace, allowed }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    command: String,
}

impl Tool for RunCommand {
    fn name(&self) -> &str {
        "run_command"
    }

    fn description(&self) -> &str {
        "Run a command in the workspace (only allowed programs; no shell: no pipes or redirections)"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["command"], "additionalProperties": false, "properties": {
            "command": {"type": "string", "description": "the command line, e.g. `ls -la src`"}}})
    }

    fn call(&self, args: Value, context: StepContext) -> ActionFuture {
        let root = self.workspace.root().to_owned();
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let args: Args = arguments("run_command", args)?;
            let words = shlex::split(&args.command).ok_or_else(|| {
                ActionError::permanent(format!("`{}`: unbalanced quotes", args.command))
            })?;
            let Some((program, rest)) = words.split_first() else {
                return Err(ActionError::permanent("run_command: the command is empty"));
            };
            if !allowed.iter().any(|name| name == program) {
                let allowed = if allowed.is_empty() {
                    "no programs are allowed (see --allow-command)".to_owned()
                } else {
                    format!("allowed programs: {}", allowed.join(", "))
                };
                return Err(ActionError::permanent(format!(
                    "`{program}` is not allowed; {allowed}"
                )));
            }
            let mut command = tokio::process::Command::new(program);
            command.args(rest).current_dir(&root);
            let output = run_child(command, &context).await?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            Ok(json!({
                "exit_code": output.status.code(),
                "stdout": truncated(&stdout, MAX_OUTPUT_BYTES),
                "stderr": truncated(&stderr, MAX_OUTPUT_BYTES / 4),
            }))
        })
    }
}

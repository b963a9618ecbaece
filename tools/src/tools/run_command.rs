//! `run_command`: runs a program from an allow-list in the workspace. The command line is
//! split into words like a shell would (quotes respected) but no shell runs it, so `;`, `|`,
//! `$(…)` and redirections are plain arguments and cannot smuggle in another program. A
//! program not on the list is refused, and the refusal says why, for the model to read.
//!
//! The command's output goes back to the model and into the journal, so it is bounded as it is
//! read: the first [`MAX_OUTPUT_BYTES`] of stdout and the last quarter of that of stderr are
//! kept, and a command whose stdout passes its limit is stopped there (SIGTERM to its process
//! group, SIGKILL after the grace period), since one that prints without end (`yes`) would
//! otherwise hold the run; the result says so (`stopped`). For the same reasons the command does not inherit the variables
//! whose names look like secrets (`*_API_KEY`, `*_TOKEN`, …): an `env` must not hand the model
//! the provider's key. How long a call may take is the agent runner's to bound.

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{MAX_OUTPUT_BYTES, arguments, kept_tail_text, kept_text};
use crate::process::{Capture, Keep, keep_secrets_off, run_child};
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;
use crate::workspace::Workspace;

/// What is kept of a command's output: the head of its stdout, and the end of its stderr, where
/// a build or a test run says why it failed (a noisy stderr does not stop the command, which
/// may still succeed).
const CAPTURE: Capture =
    Capture { stdout: Keep::Head(MAX_OUTPUT_BYTES), stderr: Keep::Tail(MAX_OUTPUT_BYTES / 4) };

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
            keep_secrets_off(&mut command);
            let ended = run_child(command, &context, CAPTURE, None).await?;
            let mut result = json!({
                "exit_code": ended.status.code(),
                "stdout": kept_text(&ended.stdout),
                "stderr": kept_tail_text(&ended.stderr),
            });
            if let Some(why) = ended.stopped {
                result["stopped"] = Value::String(format!(
                    "{why}, the most kept of a command's output, so it was stopped before its \
                     end; run a command that prints less"
                ));
            }
            Ok(result)
        })
    }
}

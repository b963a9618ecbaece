//! `shell`: runs `with.command` with `sh -c` in the spec's base folder. Its stdout (less one
//! trailing newline) is the output; a non-zero exit is an error carrying the end of stderr.
//!
//! The step's identity reaches the command as `TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`,
//! `TASKFLOW_STEP` and `TASKFLOW_ATTEMPT`. The command runs in its own process group, so a
//! cancel or timeout reaches everything it started: SIGTERM first, SIGKILL after the grace
//! period. On Linux the shell is also killed if the runner itself dies, so an orphan does not
//! keep working after a crash (the resumed step runs again instead).

use serde_json::Value;

use super::params::string_param;
use crate::action::Action;
use crate::process::run_child;
use crate::step::{ActionError, ActionFuture, StepContext};

/// How much of stderr an error message keeps (its end, where the reason usually is).
const STDERR_TAIL: usize = 2000;

pub struct Shell;

impl Action for Shell {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        Box::pin(async move {
            let command = string_param(&input, "command").map_err(ActionError::permanent)?;
            run(command, input.get("env"), &context).await
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        string_param(with, "command")?;
        match with.get("env") {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err("`with.env` must be a table of strings".to_owned()),
        }
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["command", "env"])
    }
}

async fn run(
    command: &str,
    env: Option<&Value>,
    context: &StepContext,
) -> Result<Value, ActionError> {
    let mut shell = tokio::process::Command::new("sh");
    shell.arg("-c").arg(command);
    if let Some(dir) = &context.base_dir {
        shell.current_dir(dir);
    }
    if let Some(Value::Object(vars)) = env {
        for (name, value) in vars {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            shell.env(name, value);
        }
    }
    let output = run_child(shell, context).await?;
    if output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        return Ok(Value::String(text));
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim_end();
    let tail = match stderr.char_indices().rev().nth(STDERR_TAIL) {
        Some((at, _)) => format!("…{}", &stderr[at..]),
        None => stderr.to_owned(),
    };
    let how =
        match (output.status.code(), std::os::unix::process::ExitStatusExt::signal(&output.status))
        {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "failed".to_owned(),
        };
    Err(ActionError::failed(if tail.is_empty() {
        format!("command {how}")
    } else {
        format!("command {how}: {tail}")
    }))
}

//! `shell`: runs `with.command` with `sh -c` in the spec's base folder. Its stdout (less one
//! trailing newline) is the output; a non-zero exit is an error carrying the end of stderr.
//!
//! The step's identity reaches the command as `TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`,
//! `TASKFLOW_STEP` and `TASKFLOW_ATTEMPT`. The command runs in its own process group, so a
//! cancel or timeout reaches everything it started: SIGTERM first, SIGKILL after the grace
//! period. On Linux the shell is also killed if the runner itself dies, so an orphan does not
//! keep working after a crash (the resumed step runs again instead).
//!
//! The output is journaled, so it is bounded as it is read: a command whose stdout passes
//! [`MAX_OUTPUT_BYTES`] (8 MiB) is stopped there the way a cancel stops it, and the step fails
//! without another attempt (it would print as much again); only the end of stderr is kept, for
//! the error.

use serde_json::Value;

use super::params::string_param;
use crate::action::Action;
use crate::process::{Capture, Keep, run_child};
use crate::step::{ActionError, ActionFuture, StepContext};

/// How much of stderr an error message keeps (its end, where the reason usually is).
const STDERR_TAIL: usize = 2000;

/// The most bytes of stdout a shell step's output holds.
const MAX_OUTPUT_BYTES: usize = 8 * 1024 * 1024;

/// What is kept of the command's output: stderr's end, up to 4 bytes a character.
const CAPTURE: Capture =
    Capture { stdout: Keep::Head(MAX_OUTPUT_BYTES), stderr: Keep::Tail(STDERR_TAIL * 4) };

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
    let output = run_child(shell, context, CAPTURE).await?;
    if let Some(why) = output.stopped {
        return Err(ActionError::permanent(format!(
            "command stopped: {why}, the most a shell step's output may hold; write a large \
             result to a file and output its path"
        )));
    }
    if output.status.success() {
        let mut text = String::from_utf8_lossy(&output.stdout.bytes).into_owned();
        if text.ends_with('\n') {
            text.pop();
        }
        return Ok(Value::String(text));
    }
    let stderr = String::from_utf8_lossy(&output.stderr.bytes);
    let stderr = stderr.trim_end();
    let tail = match stderr.char_indices().rev().nth(STDERR_TAIL) {
        Some((at, before)) => format!("…{}", &stderr[at + before.len_utf8()..]),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_output_is_stdout_bounded_and_an_error_the_end_of_stderr() {
        let long_stderr = "head -c 3000000 /dev/zero | tr '\\0' x >&2; exit 2";
        let tail = format!("command exit status 2: …{}", "x".repeat(STDERR_TAIL));
        // (the command, its outcome)
        let cases = [
            ("printf 'a\\nb\\n'", Ok(Value::from("a\nb"))),
            ("echo oops >&2; exit 3", Err("command exit status 3: oops".to_owned())),
            ("kill -9 $$", Err("command killed by signal 9".to_owned())),
            // Whatever stderr holds, only its end is kept, and the command is not stopped.
            (long_stderr, Err(tail)),
            (
                "yes",
                Err("command stopped: its stdout passed 8 MiB, the most a shell step's output \
                     may hold; write a large result to a file and output its path"
                    .to_owned()),
            ),
        ];
        for (command, outcome) in cases {
            let context = StepContext::for_test();
            let run = run(command, None, &context);
            let ran = tokio::time::timeout(std::time::Duration::from_secs(20), run)
                .await
                .unwrap_or_else(|_| panic!("`{command}` still runs"));
            assert_eq!(ran.map_err(|error| error.to_string()), outcome, "{command}");
        }
    }
}

//! `shell`: runs `with.command` with `sh -c` in the spec's base folder. Its stdout (less one
//! trailing newline) is the output; a non-zero exit is an error carrying the end of stderr.
//!
//! The step's identity reaches the command as `TASKFLOW_IDEMPOTENCY_KEY`, `TASKFLOW_FLOW_ID`,
//! `TASKFLOW_STEP` and `TASKFLOW_ATTEMPT`. The command runs in its own process group, so a
//! cancel or timeout reaches everything it started: SIGTERM first, SIGKILL after the grace
//! period. On Linux the shell is also killed if the runner itself dies, so an orphan does not
//! keep working after a crash (the resumed step runs again instead).
//!
//! Text from earlier steps reaches the command through `with.env`, where no shell reads it as
//! code, or `with.stdin`, its standard input, for text longer than a variable can hold (on
//! Linux 128 KiB) or holding a NUL byte.
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
            run(command, input.get("env"), stdin_text(input.get("stdin")), &context).await
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
        Some(&["command", "env", "stdin"])
    }
}

/// What `with.stdin` gives the command: text as it is, any other value (an earlier step's list
/// or object) as its JSON, as `with.env` gives it.
fn stdin_text(stdin: Option<&Value>) -> Option<String> {
    match stdin? {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

/// The longest text one variable or argument may hold on Linux (`MAX_ARG_STRLEN`), its name,
/// `=` and ending NUL byte included.
const MAX_ONE_STRING: usize = 128 * 1024;

/// Why `text`, the value of `what`, cannot be given to a process, if it cannot; `around` is
/// what the process's string holds besides it (a variable's name and `=`).
fn unpassable(what: &str, around: usize, text: &str) -> Option<String> {
    let why = if text.contains('\0') {
        "holds a NUL byte, which no variable or argument can".to_owned()
    } else if around + text.len() + 1 > MAX_ONE_STRING {
        let bytes = text.len();
        format!("is {bytes} bytes long, past the 128 KiB a variable or argument can hold")
    } else {
        return None;
    };
    Some(format!("{what} {why}; pass such text on the command's standard input, `with.stdin`"))
}

async fn run(
    command: &str,
    env: Option<&Value>,
    stdin: Option<String>,
    context: &StepContext,
) -> Result<Value, ActionError> {
    let mut problems = Vec::new();
    problems.extend(unpassable("`with.command`", 0, command));
    let mut shell = tokio::process::Command::new("sh");
    shell.arg("-c").arg(command);
    if let Some(dir) = &context.base_dir {
        if !dir.is_dir() {
            // Queued on one host, run on another: the folder it was written in is not here.
            return Err(ActionError::permanent(format!(
                "the pipeline's folder {}, where its commands run, is not on this host",
                dir.display()
            )));
        }
        shell.current_dir(dir);
    }
    if let Some(Value::Object(vars)) = env {
        for (name, value) in vars {
            let value = match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            problems.extend(unpassable(&format!("`with.env.{name}`"), name.len() + 1, &value));
            shell.env(name, value);
        }
    }
    if let Some(problem) = problems.into_iter().next() {
        return Err(ActionError::permanent(problem));
    }
    let output = run_child(shell, context, CAPTURE, stdin.map(String::into_bytes)).await?;
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
            let run = run(command, None, None, &context);
            let ran = tokio::time::timeout(std::time::Duration::from_secs(20), run)
                .await
                .unwrap_or_else(|_| panic!("`{command}` still runs"));
            assert_eq!(ran.map_err(|error| error.to_string()), outcome, "{command}");
        }
    }

    /// How `command` ends with `env` and `stdin`: its output, or the error's text.
    async fn ran(command: &str, env: Value, stdin: Option<&str>) -> Result<Value, String> {
        let context = StepContext::for_test();
        let run = run(command, Some(&env), stdin.map(str::to_owned), &context);
        tokio::time::timeout(std::time::Duration::from_secs(20), run)
            .await
            .unwrap_or_else(|_| panic!("`{command}` still runs"))
            .map_err(|error| error.to_string())
    }

    #[tokio::test]
    async fn a_pipeline_folder_that_is_not_on_this_host_is_named() {
        let mut context = StepContext::for_test();
        context.base_dir = Some("/nowhere/taskflow-pipelines".into());
        let error = run("true", None, None, &context).await.unwrap_err();
        assert!(matches!(error, ActionError::Permanent(_)), "{error:?}");
        assert_eq!(
            error.to_string(),
            "the pipeline's folder /nowhere/taskflow-pipelines, where its commands run, is not \
             on this host"
        );
    }

    #[tokio::test]
    async fn long_text_goes_in_on_stdin_and_what_no_variable_can_hold_is_refused_named() {
        let long = "x".repeat(200 * 1024);
        let count = "wc -c | tr -d ' '";
        assert_eq!(ran(count, serde_json::json!({}), Some(&long)).await, Ok(Value::from("204800")));
        assert_eq!(ran("echo ok", serde_json::json!({}), Some(&long)).await, Ok(Value::from("ok")));
        let pages = serde_json::json!([{"url": "a", "body": "x"}]);
        assert_eq!(stdin_text(Some(&pages)).as_deref(), Some(r#"[{"body":"x","url":"a"}]"#));
        assert_eq!(stdin_text(Some(&Value::Null)), None);
        // The longest a variable may be: `PAGE=`, the value and a NUL byte in 128 KiB.
        let fits = "x".repeat(128 * 1024 - 6);
        assert_eq!(
            ran("printf %s \"$PAGE\" | wc -c | tr -d ' '", serde_json::json!({"PAGE": fits}), None)
                .await,
            Ok(Value::from("131066"))
        );
        let past = ran("true", serde_json::json!({"PAGE": "x".repeat(128 * 1024 - 5)}), None).await;
        assert!(past.unwrap_err().contains("past the 128 KiB"));
        let advice = "pass such text on the command's standard input, `with.stdin`";
        let too_long = ran("true", serde_json::json!({"PAGE": long}), None).await.unwrap_err();
        assert_eq!(
            too_long,
            format!(
                "`with.env.PAGE` is 204800 bytes long, past the 128 KiB a variable or argument \
                 can hold; {advice}"
            )
        );
        let nul = ran("true", serde_json::json!({"DATA": "a\u{0}b"}), None).await.unwrap_err();
        assert_eq!(
            nul,
            format!(
                "`with.env.DATA` holds a NUL byte, which no variable or argument can; {advice}"
            )
        );
        let command = format!("echo {long}");
        let too_long = ran(&command, serde_json::json!({}), None).await.unwrap_err();
        assert!(too_long.starts_with("`with.command` is 204805 bytes long"), "{too_long}");
    }
}

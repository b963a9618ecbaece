//! The taskflow binary as end-to-end tests drive it: a command's outcome as text, and the
//! `--json` documents tests read back (a flow inspected, the only flow's id).

use std::process::{Command, Output};

use serde_json::Value;

/// A finished command's exit code (-1 when a signal ended it), stdout and stderr.
pub fn outcome(output: Output) -> (i32, String, String) {
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `command` run with `args` to its end.
pub fn run(mut command: Command, args: &[&str]) -> (i32, String, String) {
    outcome(command.args(args).output().unwrap())
}

/// `flows inspect --json ID`, which must succeed.
pub fn inspect(command: Command, id: &str) -> Value {
    let (code, stdout, stderr) = run(command, &["--json", "flows", "inspect", id]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

/// The id of the only flow (`flows list --json`), empty when there is none.
pub fn only_flow_id(command: Command) -> String {
    let (_, stdout, _) = run(command, &["--json", "flows", "list"]);
    let list: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    list["flows"][0]["id"].as_str().unwrap_or_default().to_owned()
}

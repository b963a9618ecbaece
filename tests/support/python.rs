//! The Python the tests drive real clients with: the interpreter `scripts/test` prepares (a
//! virtual environment with the packages of `scripts/services/requirements.txt`) and names in
//! TASKFLOW_TEST_PYTHON.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The interpreter; a clear failure when the tests were not started through `scripts/test`.
pub fn python() -> PathBuf {
    match std::env::var_os("TASKFLOW_TEST_PYTHON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "TASKFLOW_TEST_PYTHON is not set: these tests run Python clients against a real \
             serve; run them through `scripts/test`, which prepares that Python and sets the \
             variable"
        ),
    }
}

/// A file of the repository, from its root.
pub fn repository(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

/// `python SCRIPT ARGS…` with its output piped (stdin closed), and no token from the
/// environment but those in `env`.
pub fn spawn(script: &str, args: &[&str], env: &[(&str, &str)]) -> Child {
    Command::new(python())
        .arg(repository(script))
        .args(args)
        .env_remove("TASKFLOW_TOKEN")
        .envs(env.iter().copied())
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for `child` at most `limit` (reading its output meanwhile, so that a full pipe never
/// stops it), then kills it and fails; its output.
pub fn finish(child: Child, limit: Duration) -> Output {
    let pid = child.id().to_string();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || sender.send(child.wait_with_output()));
    match receiver.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            let output = receiver.recv().unwrap().unwrap();
            panic!(
                "still running after {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        }
    }
}

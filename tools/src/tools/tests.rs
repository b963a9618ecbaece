//! Each agent tool called as a model would call it: good calls, bad arguments, and every way
//! out of the workspace or the allow-list, refused with a reason.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use crate::step::StepContext;

struct Bench {
    dir: tempfile::TempDir,
    _outside: tempfile::TempDir,
    tools: Tools,
}

/// A workspace with `README.md`, `src/lib.rs`, and a link `escape` to a folder outside that
/// holds `secret.txt`; `ls` and `echo` are allowed commands.
fn bench() -> Bench {
    bench_allowing(&["ls", "echo"])
}

/// [`bench`] with `allowed` as the allowed commands.
fn bench_allowing(allowed: &[&str]) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# Demo\n").unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "pub fn f() {}\n").unwrap();
    std::fs::write(outside.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("escape")).unwrap();
    let settings = AgentToolSettings {
        workspace: Workspace::new(dir.path()).unwrap(),
        allowed_commands: allowed.iter().map(|&name| name.to_owned()).collect(),
    };
    let mut tools = Tools::default();
    register_agent_tools(&mut tools, &settings);
    Bench { dir, _outside: outside, tools }
}

async fn call(bench: &Bench, tool: &str, args: Value) -> Result<Value, String> {
    let tool = bench.tools.get(tool).expect("registered");
    tool.call(args, StepContext::for_test()).await.map_err(|error| error.to_string())
}

async fn check_ok(bench: &Bench, tool: &str, args: Value, expected: Value) {
    assert_eq!(call(bench, tool, args.clone()).await, Ok(expected), "{tool} {args}");
}

async fn check_err(bench: &Bench, tool: &str, args: Value, expected: &str) {
    match call(bench, tool, args.clone()).await {
        Err(message) => {
            assert!(message.contains(expected), "{tool} {args}: {message:?} lacks {expected:?}")
        }
        Ok(value) => panic!("{tool} {args} succeeded with {value}"),
    }
}

#[test]
fn the_agent_tools_are_the_names_listed() {
    let bench = bench();
    let mut names = bench.tools.names();
    names.sort_unstable();
    let mut listed = AGENT_TOOLS.to_vec();
    listed.sort_unstable();
    assert_eq!(names, listed);
}

#[tokio::test]
async fn reading_and_listing() {
    let bench = bench();
    check_ok(&bench, "read_file", json!({"path": "README.md"}), json!("# Demo\n")).await;
    check_ok(&bench, "read_file", json!({"path": "./src/lib.rs"}), json!("pub fn f() {}\n")).await;
    check_ok(
        &bench,
        "read_file",
        json!({"path": "README.md", "max_bytes": 3}),
        json!("# D\n[… 4 more bytes not shown]"),
    )
    .await;
    check_ok(
        &bench,
        "list_dir",
        json!({}),
        json!([
            {"name": "src", "kind": "dir"},
            {"name": "README.md", "kind": "file", "bytes": 7},
            {"name": "escape", "kind": "link"}
        ]),
    )
    .await;
    check_ok(
        &bench,
        "list_dir",
        json!({"path": "src"}),
        json!([{"name": "lib.rs", "kind": "file", "bytes": 14}]),
    )
    .await;
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused() {
    let bench = bench();
    for tool in ["read_file", "list_dir"] {
        check_err(&bench, tool, json!({"path": "../x"}), "goes up with `..`").await;
        check_err(&bench, tool, json!({"path": "/etc"}), "is absolute").await;
        check_err(&bench, tool, json!({"path": "escape"}), "leads outside the workspace").await;
    }
    check_err(
        &bench,
        "read_file",
        json!({"path": "escape/secret.txt"}),
        "leads outside the workspace",
    )
    .await;
    check_err(
        &bench,
        "write_file",
        json!({"path": "escape/new.txt", "content": "x"}),
        "leads outside",
    )
    .await;
    check_err(
        &bench,
        "write_file",
        json!({"path": "../new.txt", "content": "x"}),
        "goes up with `..`",
    )
    .await;
    check_err(&bench, "write_file", json!({"path": "/tmp/new.txt", "content": "x"}), "is absolute")
        .await;
    check_err(&bench, "read_file", json!({"path": "missing.md"}), "no such file").await;
    check_err(&bench, "read_file", json!({"path": "src"}), "is a folder").await;
    check_err(&bench, "write_file", json!({"path": "src", "content": "x"}), "`src` is a folder")
        .await;
}

#[tokio::test]
async fn writing_creates_folders_and_replaces_whole_files() {
    let bench = bench();
    check_ok(
        &bench,
        "write_file",
        json!({"path": "notes/today.md", "content": "hi"}),
        json!({"path": "notes/today.md", "bytes": 2}),
    )
    .await;
    check_ok(
        &bench,
        "write_file",
        json!({"path": "notes/today.md", "content": "bye"}),
        json!({"path": "notes/today.md", "bytes": 3}),
    )
    .await;
    assert_eq!(std::fs::read_to_string(bench.dir.path().join("notes/today.md")).unwrap(), "bye");
    let leftovers: Vec<_> = std::fs::read_dir(bench.dir.path().join("notes")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}

#[tokio::test]
async fn bad_arguments_say_what_is_wrong() {
    let bench = bench();
    check_err(&bench, "read_file", json!({}), "missing field `path`").await;
    check_err(&bench, "read_file", json!({"path": 3}), "invalid type").await;
    check_err(&bench, "read_file", json!({"path": "a", "mode": "x"}), "unknown field `mode`").await;
    check_err(&bench, "write_file", json!({"path": "a"}), "missing field `content`").await;
    check_err(&bench, "run_command", json!({"cmd": "ls"}), "unknown field `cmd`").await;
    check_err(
        &bench,
        "fetch_url",
        json!({"url": "file:///etc/passwd"}),
        "only http:// and https://",
    )
    .await;
}

#[tokio::test]
async fn only_allowed_programs_run_and_no_shell_interprets_them() {
    let bench = bench();
    let output = call(&bench, "run_command", json!({"command": "ls src"})).await.unwrap();
    assert_eq!(output, json!({"exit_code": 0, "stdout": "lib.rs\n", "stderr": ""}));
    let output = call(&bench, "run_command", json!({"command": "echo 'a b' ; rm -rf / $(id)"}))
        .await
        .unwrap();
    assert_eq!(output["stdout"], "a b ; rm -rf / $(id)\n", "shell syntax is plain text");
    check_err(
        &bench,
        "run_command",
        json!({"command": "rm -rf src"}),
        "`rm` is not allowed; allowed programs: ls, echo",
    )
    .await;
    check_err(&bench, "run_command", json!({"command": "/bin/ls"}), "`/bin/ls` is not allowed")
        .await;
    check_err(&bench, "run_command", json!({"command": "echo 'open"}), "unbalanced quotes").await;
    check_err(&bench, "run_command", json!({"command": "  "}), "the command is empty").await;
    let output = call(&bench, "run_command", json!({"command": "ls missing"})).await.unwrap();
    assert_ne!(output["exit_code"], 0, "a failing command is a result for the model, not an error");
    assert!(bench.dir.path().join("src/lib.rs").exists());
}

#[tokio::test]
async fn with_no_allowed_programs_every_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut tools = Tools::default();
    register_agent_tools(
        &mut tools,
        &AgentToolSettings {
            workspace: Workspace::new(dir.path()).unwrap(),
            allowed_commands: vec![],
        },
    );
    let error = tools
        .get("run_command")
        .unwrap()
        .call(json!({"command": "ls"}), StepContext::for_test())
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "`ls` is not allowed; no programs are allowed (see --allow-command)"
    );
}

#[tokio::test]
async fn a_command_that_prints_without_end_is_stopped_at_the_output_limit() {
    let bench = bench_allowing(&["yes"]);
    let call = call(&bench, "run_command", json!({"command": "yes"}));
    let output = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("stopped, not left to print")
        .unwrap();
    let stdout = output["stdout"].as_str().unwrap();
    let (kept, note) = stdout.rsplit_once('\n').unwrap();
    assert_eq!(kept.len(), 64 * 1024, "the limit's worth is kept");
    assert!(kept.starts_with("y\ny\n"), "{stdout:.20}");
    assert!(note.starts_with("[… ") && note.ends_with(" more bytes not shown]"), "{note}");
    assert_eq!(output["exit_code"], Value::Null, "ended by a signal");
    assert_eq!(
        output["stopped"],
        "its stdout passed 64 KiB, the most kept of a command's output, so it was stopped \
         before its end; run a command that prints less"
    );
}

#[tokio::test]
async fn output_within_the_limit_is_whole_and_nothing_is_stopped() {
    let bench = bench_allowing(&["head"]);
    let dir = bench.dir.path();
    for (bytes, shown) in [(64 * 1024, 64 * 1024), (16, 16)] {
        std::fs::write(dir.join("data.txt"), "x".repeat(bytes)).unwrap();
        let command = json!({"command": "head -c 1000000 data.txt"});
        let output = call(&bench, "run_command", command).await.unwrap();
        assert_eq!(output["stdout"].as_str().unwrap().len(), shown);
        assert_eq!(output["exit_code"], 0);
        assert_eq!(output.get("stopped"), None, "{bytes}");
    }
}

/// A command's stderr never stops it: its end is kept (where a build says why it failed),
/// after a note of how much before it is not shown.
#[tokio::test]
async fn a_noisy_stderr_keeps_its_end_and_does_not_stop_the_command() {
    let bench = bench_allowing(&["sh"]);
    let noisy = "head -c 100000 /dev/zero | tr '\\\\0' e >&2; echo done";
    let command = json!({"command": format!("sh -c \"{noisy}\"")});
    let output = call(&bench, "run_command", command).await.unwrap();
    assert_eq!((output["exit_code"].clone(), output.get("stopped")), (json!(0), None));
    assert_eq!(output["stdout"], "done\n");
    let stderr = output["stderr"].as_str().unwrap();
    let (note, kept) = stderr.split_once('\n').unwrap();
    assert_eq!(note, format!("[… {} earlier bytes not shown]", 100_000 - 16 * 1024));
    assert_eq!(kept, "e".repeat(16 * 1024));
}

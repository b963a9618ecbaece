//! The contract of `taskflow run`, `flows resume` and `flows fork` on real processes: the
//! bundled offline pipeline, `--json`, pipeline errors reported with file, line and column
//! before anything runs, a failed flow (exit 1) that a resume retries under the same key,
//! retries and timeouts of real commands, forks, two resumes racing for one flow, and cancels
//! from `flows cancel` and from Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

fn taskflow(db: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.arg("--db").arg(db).arg("--owner").arg("alice").env_remove("TASKFLOW_OWNER");
    command
}

/// The command `args` on `db` as alice, to start as a process of its own.
fn command(db: &Path, args: &[&str]) -> StdCommand {
    let mut command = StdCommand::new(BIN);
    command.arg("--db").arg(db).args(["--owner", "alice"]).args(args);
    command.env_remove("TASKFLOW_OWNER");
    command
}

fn spawn(db: &Path, args: &[&str]) -> Child {
    command(db, args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// How the command `args` ended, its output's reader gone before it started.
fn unread(db: &Path, args: &[&str]) -> std::process::ExitStatus {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command(db, args).stdout(Stdio::from(writer)).stderr(Stdio::null()).status().unwrap()
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn finish(child: Child) -> Output {
    let output = child.wait_with_output().unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// The flow id from the last line `flow ID STATUS (…)`.
fn flow_id(stdout: &str) -> String {
    let line = stdout.lines().rev().find(|line| line.starts_with("flow ")).expect(stdout);
    line.split_whitespace().nth(1).unwrap().to_owned()
}

fn inspect(db: &Path, id: &str) -> Value {
    let output = run(taskflow(db).args(["--json", "flows", "inspect", id]));
    assert_eq!(output.code, 0, "{}", output.stderr);
    serde_json::from_str(&output.stdout).unwrap()
}

fn pipeline(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_bundled_pipeline_runs_offline_and_exports_the_filtered_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let out = dir.path().join("out");
    let file = repo().join("examples/pipelines/news-digest/pipeline.toml");
    let output = run(taskflow(&db).arg("run").arg(&file).arg("--output-dir").arg(&out));
    assert_eq!(output.code, 0, "{}", output.stderr);
    assert!(output.stdout.ends_with("succeeded (4 steps done)\n"), "{}", output.stdout);
    assert_eq!(output.stderr, "", "nothing extra when piped");
    let digest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("digest.json")).unwrap()).unwrap();
    let titles: Vec<&str> =
        digest.as_array().unwrap().iter().map(|i| i["title"].as_str().unwrap()).collect();
    assert_eq!(
        titles,
        [
            "Rust 1.95 released",
            "Write-ahead logging in SQLite, explained",
            "How Kimi K2 writes tool calls"
        ]
    );
    let document = inspect(&db, &flow_id(&output.stdout));
    assert_eq!(document["flow"]["status"], "succeeded");
    let steps: Vec<&str> =
        document["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, ["scrape", "extract", "filter", "export"]);
    assert_eq!(document["steps"][0]["output"][0]["url"], "file:pages/rust-1-95.html");
}

#[test]
fn json_prints_one_document_with_the_flow_and_its_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = pipeline(
        dir.path(),
        "hello",
        "name = \"hello\"\n[[steps]]\nid = \"greet\"\naction = \"shell\"\nwith = { command = \"echo hello\" }\n",
    );
    let output = run(taskflow(&db).arg("--json").arg("run").arg(&file));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let document: Value = serde_json::from_str(&output.stdout).expect("one JSON document");
    assert_eq!(document["flow"]["status"], "succeeded");
    assert_eq!(document["flow"]["state"]["greet"], "hello");
    assert_eq!(document["steps"][0]["output"], "hello");
    assert_eq!(document["steps"][0]["attempt"], 1);
}

#[test]
fn pipeline_errors_name_file_line_and_column_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let fixtures = repo().join("fixtures/pipelines/invalid");
    let mut checked = 0;
    for entry in std::fs::read_dir(&fixtures).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "toml") {
            continue;
        }
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let expected = expected.replace("{FILE}", &path.display().to_string());
        let output = run(taskflow(&db).arg("run").arg(&path));
        assert_eq!(output.code, 1, "{}", path.display());
        assert_eq!(output.stderr, expected, "{}", path.display());
        assert_eq!(output.stdout, "");
        checked += 1;
    }
    assert!(checked >= 7, "{checked} fixtures");
    assert!(!db.exists(), "nothing was created");
}

#[test]
fn a_model_step_naming_a_provider_there_is_not_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let effect = dir.path().join("effect");
    let path = pipeline(
        dir.path(),
        "typo",
        &format!(
            "name = \"typo\"\n\
             [[steps]]\nid = \"first\"\naction = \"shell\"\nwith = {{ command = \"echo ran > '{}'\" }}\n\
             [[steps]]\nid = \"ask\"\naction = \"llm\"\nneeds = [\"first\"]\n\
             with = {{ provider = \"kimmi\", prompt = \"hi\" }}\n",
            effect.display()
        ),
    );
    let output = run(taskflow(&db).env("XDG_CONFIG_HOME", dir.path()).arg("run").arg(&path));
    assert_eq!(output.code, 1, "{}", output.stderr);
    assert!(
        output.stderr.starts_with("error: steps[1].with: unknown provider `kimmi`"),
        "{}",
        output.stderr
    );
    assert!(output.stderr.contains("(step `ask`)"), "{}", output.stderr);
    assert!(!effect.exists(), "the step before it ran");
    assert!(!db.exists(), "a flow was made");
}

#[test]
fn a_failed_flow_exits_1_and_resume_retries_the_step_under_the_same_key() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    // `gate` fails until the file `open` exists; every attempt logs its key.
    let text = r#"
name = "gated"

[[steps]]
id = "first"
action = "shell"
with = { command = "echo first >> log" }

[[steps]]
id = "gate"
action = "shell"
needs = ["first"]
retry = { max_attempts = 2, backoff_ms = 10 }
with = { command = "echo $TASKFLOW_IDEMPOTENCY_KEY >> keys; test -e open || { echo 'gate closed' >&2; exit 4; }" }
"#;
    let file = pipeline(dir.path(), "gated", text);
    let output = run(taskflow(&db).arg("run").arg(&file));
    assert_eq!(output.code, 1);
    let id = flow_id(&output.stdout);
    assert!(output.stdout.contains(&format!("flow {id} failed")), "{}", output.stdout);
    assert_eq!(
        output.stderr,
        format!(
            "error: step `gate` failed (attempt 2): command exit status 4: gate closed\n\
             hint: `taskflow flows resume {id}` tries the failed step again\n"
        )
    );
    std::fs::write(dir.path().join("open"), "").unwrap();
    let resumed = run(taskflow(&db).args(["flows", "resume", &id]));
    assert_eq!(resumed.code, 0, "{}", resumed.stderr);
    assert!(resumed.stdout.contains(&format!("flow {id} succeeded")), "{}", resumed.stdout);
    let keys = std::fs::read_to_string(dir.path().join("keys")).unwrap();
    let key = format!("{id}:2");
    assert_eq!(keys.lines().collect::<Vec<_>>(), [key.as_str(); 3], "one key for every attempt");
    assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "first\n", "never re-run");
    let steps = inspect(&db, &id)["steps"].clone();
    let summary: Vec<(String, String, u64)> = steps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
                s["attempt"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("first".to_owned(), "succeeded".to_owned(), 1),
            ("gate".to_owned(), "failed".to_owned(), 2),
            ("gate".to_owned(), "succeeded".to_owned(), 3)
        ]
    );
    let again = run(taskflow(&db).args(["flows", "resume", &id]));
    assert_eq!(again.code, 1);
    assert!(again.stderr.contains("already ended (succeeded)"), "{}", again.stderr);
}

#[test]
fn retries_and_timeouts_of_real_commands() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = r#"
name = "flaky and slow"

[[steps]]
id = "flaky"
action = "shell"
retry = { max_attempts = 3, backoff_ms = 20 }
with = { command = "echo x >> tries; test $(wc -l < tries) -ge 3 && echo ok-after-$TASKFLOW_ATTEMPT" }

[[steps]]
id = "slow"
action = "shell"
needs = ["flaky"]
timeout = "300ms"
retry = { max_attempts = 2, backoff_ms = 10 }
with = { command = "echo started >> slow; sleep 20" }
"#;
    let file = pipeline(dir.path(), "flaky", text);
    let started = Instant::now();
    let output = run(taskflow(&db).arg("--json").arg("run").arg(&file));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.code, 1);
    let document: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(document["steps"][0]["output"], "ok-after-3");
    assert_eq!(document["steps"][0]["attempt"], 3);
    assert_eq!(document["steps"][1]["status"], "failed");
    assert_eq!(document["steps"][1]["error"], "timed out after 300ms");
    assert_eq!(document["flow"]["error"], "step `slow` failed (attempt 2): timed out after 300ms");
    assert_eq!(std::fs::read_to_string(dir.path().join("slow")).unwrap().lines().count(), 2);
}

/// A run whose output nobody reads still ends with its flow's exit code: the line that says how
/// the flow ended is not the end of the command.
#[test]
fn a_failed_flow_exits_1_though_nobody_reads_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = "name = \"broken\"\n[[steps]]\nid = \"a\"\naction = \"shell\"\nwith = { command = \"exit 3\" }\n";
    let file = pipeline(dir.path(), "broken", text);
    let file = file.to_str().unwrap();
    assert_eq!(unread(&db, &["run", file]).code(), Some(1));
    assert_eq!(unread(&db, &["run", file, "--json"]).code(), Some(1));
}

#[test]
fn a_fork_reuses_the_steps_before_n_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = r#"
name = "forkable"

[[steps]]
id = "one"
action = "shell"
with = { command = "echo one >> log; echo 1" }

[[steps]]
id = "two"
action = "shell"
with = { command = "echo two >> log; echo $(({{steps.one.output}} + 1))" }
"#;
    let file = pipeline(dir.path(), "forkable", text);
    let output = run(taskflow(&db).arg("run").arg(&file));
    assert_eq!(output.code, 0, "{}", output.stderr);
    let source = flow_id(&output.stdout);
    let fork = run(taskflow(&db).args(["flows", "fork", &source, "--from-step", "two"]));
    assert_eq!(fork.code, 0, "{}", fork.stderr);
    let forked = flow_id(&fork.stdout);
    assert_ne!(forked, source);
    assert!(
        fork.stdout.starts_with(&format!("flow {forked} forked from flow {source} at step 2\n"))
    );
    assert_eq!(std::fs::read_to_string(dir.path().join("log")).unwrap(), "one\ntwo\ntwo\n");
    assert_eq!(inspect(&db, &forked)["flow"]["state"]["two"], "2");
    // Its first line goes to a reader that has gone: the fork runs all the same.
    let unread = unread(&db, &["flows", "fork", &source, "--from-step", "two"]);
    assert!(unread.success(), "{unread}");
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert_eq!(log, "one\ntwo\ntwo\ntwo\n", "the unread fork ran its step");
    let missing = run(taskflow(&db).args(["flows", "fork", &source, "--from-step", "nine"]));
    // No step of that name, or that seq: the same failure, not a misuse of the command line.
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.starts_with(&format!("error: flow {source} has no step `nine`")));
    let too_far = run(taskflow(&db).args(["flows", "fork", &source, "--from-step", "9"]));
    assert_eq!(too_far.code, 1);
    assert!(too_far.stderr.contains("has no step 9"), "{}", too_far.stderr);
    // A flow that has not ended is refused for that, before its steps are looked at.
    let greeting = repo().join("fixtures/pipelines/greeting.toml");
    let queued = run(taskflow(&db).arg("run").arg(&greeting).args(["--queue", "--id", "q"]));
    assert_eq!(queued.code, 0, "{}", queued.stderr);
    let early = run(taskflow(&db).args(["flows", "fork", "q", "--from-step", "greet"]));
    assert_eq!(early.code, 1);
    assert!(early.stderr.contains("only a flow that has ended can be forked"), "{}", early.stderr);
}

#[test]
fn two_resumes_of_one_flow_at_once_one_runs_and_the_other_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = "name = \"race\"\n[[steps]]\nid = \"slow\"\naction = \"shell\"\nwith = { command = \"echo ran >> runs; sleep 1\" }\n";
    let file = pipeline(dir.path(), "race", text);
    // A run killed before it finished leaves a flow to resume.
    let mut first =
        spawn(&db, &["run", file.to_str().unwrap(), "--id", "01J00000000000000000000000"]);
    wait_for("the first run", || dir.path().join("runs").exists());
    first.kill().unwrap();
    first.wait().unwrap();
    let id = "01J00000000000000000000000";
    let racers = [spawn(&db, &["flows", "resume", id]), spawn(&db, &["flows", "resume", id])];
    let outputs: Vec<Output> = racers.into_iter().map(finish).collect();
    let winners: Vec<&Output> = outputs.iter().filter(|o| o.code == 0).collect();
    let losers: Vec<&Output> = outputs.iter().filter(|o| o.code == 1).collect();
    assert_eq!(
        (winners.len(), losers.len()),
        (1, 1),
        "{:?}",
        outputs.iter().map(|o| &o.stderr).collect::<Vec<_>>()
    );
    assert!(winners[0].stdout.contains("succeeded"));
    let refusal = &losers[0].stderr;
    assert!(refusal.starts_with(&format!("error: flow {id} is leased by ")), "{refusal}");
    assert!(refusal.contains("hint: wait for that runner to finish"), "{refusal}");
    let document = inspect(&db, id);
    assert_eq!(document["steps"][0]["attempt"], 2, "the killed attempt, then the winner's");
    assert_eq!(std::fs::read_to_string(dir.path().join("runs")).unwrap().lines().count(), 2);
}

fn long_pipeline(dir: &Path) -> PathBuf {
    let text = "name = \"long\"\n[[steps]]\nid = \"wait\"\naction = \"shell\"\nwith = { command = \"echo $$ > pid; exec sleep 30\" }\n";
    pipeline(dir, "long", text)
}

fn gone(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    stat.is_empty() || stat.contains(") Z ")
}

#[test]
fn a_chosen_id_names_the_flow_and_running_it_again_continues_it_not_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let echo = |value: &str| {
        format!(
            "name = \"digest\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = {{ value = \"{value}\" }}\n"
        )
    };
    let file = pipeline(dir.path(), "digest", &echo("x"));
    let file = file.to_str().unwrap();
    let key = "digest-2026-12-03";

    let first = run(taskflow(&db).args(["run", file, "--id", key]));
    assert_eq!(
        (first.code, first.stdout.as_str()),
        (0, "flow digest-2026-12-03 succeeded (1 steps done)\n")
    );
    // The same pipeline again finds the flow that ended, runs nothing, and says how it ended.
    let again = run(taskflow(&db).args(["run", file, "--id", key]));
    assert_eq!((again.code, again.stdout), (0, first.stdout));
    assert_eq!(inspect(&db, key)["steps"].as_array().unwrap().len(), 1, "nothing ran twice");
    // Ids are case-sensitive: another case is another flow.
    let other = run(taskflow(&db).args(["run", file, "--id", "Digest-2026-12-03"]));
    assert_eq!(flow_id(&other.stdout), "Digest-2026-12-03");

    // Another pipeline under the same id is refused, naming what differs; nothing changes.
    let before = inspect(&db, key);
    pipeline(dir.path(), "digest", &echo("y"));
    let refused = run(taskflow(&db).args(["run", file, "--id", key]));
    assert_eq!(refused.code, 1);
    assert_eq!(
        refused.stderr.lines().next().unwrap(),
        "error: flow digest-2026-12-03 exists and was created from another spec: \
         `steps[0].with.value` is \"x\" there and \"y\" here"
    );
    assert!(refused.stderr.contains("hint: pick another id"), "{}", refused.stderr);
    assert_eq!(inspect(&db, key), before);

    // A bad id states the rule (usage, exit 2).
    for (bad, why) in [("my key", "character 3 is ' '"), ("", "it is empty")] {
        let output = run(taskflow(&db).args(["run", file, "--id", bad]));
        assert_eq!(output.code, 2, "{bad:?}");
        assert!(output.stderr.starts_with("error: --id: "), "{}", output.stderr);
        assert!(output.stderr.contains(why), "{}", output.stderr);
        assert!(output.stderr.contains("1 to 128 characters"), "{}", output.stderr);
    }
    let list = run(taskflow(&db).args(["--json", "flows", "list"]));
    let ids: Vec<String> = serde_json::from_str::<Value>(&list.stdout).unwrap()["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
}

#[test]
fn flows_cancel_from_another_process_ends_the_run_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = long_pipeline(dir.path());
    let id = "01J00000000000000000000001";
    let runner = spawn(&db, &["run", file.to_str().unwrap(), "--id", id]);
    wait_for("the step", || dir.path().join("pid").exists());
    let requested = Instant::now();
    let cancel = run(taskflow(&db).args(["flows", "cancel", id]));
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    let output = finish(runner);
    assert!(requested.elapsed() < Duration::from_secs(2), "{:?}", requested.elapsed());
    assert_eq!(output.code, 1);
    assert_eq!(output.stdout, format!("flow {id} cancelled (0 steps done)\n"));
    assert_eq!(output.stderr, format!("error: flow {id} was cancelled\n"));
    assert!(gone(&dir.path().join("pid")), "the command was stopped");
    assert_eq!(inspect(&db, id)["steps"][0]["status"], "cancelled");
}

#[test]
fn ctrl_c_during_run_requests_a_cancel_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let file = long_pipeline(dir.path());
    let id = "01J00000000000000000000002";
    let runner = spawn(&db, &["run", file.to_str().unwrap(), "--id", id]);
    wait_for("the step", || dir.path().join("pid").exists());
    // SAFETY: kill(2) on the child's pid only sends a signal.
    unsafe { libc_kill(runner.id() as i32, 2) };
    let output = finish(runner);
    assert_eq!(output.code, 1);
    assert_eq!(output.stdout, format!("flow {id} cancelled (0 steps done)\n"));
    assert!(gone(&dir.path().join("pid")));
    let document = inspect(&db, id);
    assert_eq!(document["flow"]["status"], "cancelled");
    assert!(document["flow"]["cancel_requested_at"].is_string());
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, signal: i32) -> i32;
}

#[test]
fn a_queued_run_refuses_the_settings_of_a_run_in_the_foreground() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = "name = \"p\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = \"x\" }\n";
    let file = pipeline(dir.path(), "p", text);
    for setting in [&["--attempts", "1"][..], &["--read-timeout-ms", "500"], &["--detach"]] {
        let refused = run(taskflow(&db).args(["run", "--queue"]).arg(&file).args(setting));
        assert_eq!(refused.code, 2, "{setting:?}: {}", refused.stderr);
        assert!(refused.stderr.contains("cannot be used with"), "{}", refused.stderr);
    }
    assert!(!db.exists(), "nothing queued");
}

/// What a step writes reaches the terminal with its control characters escaped: a command's
/// stderr cannot clear the screen, retitle the window or forge a line, in the error `run`
/// prints, nor in `flows inspect`'s fields and table; `--json` keeps the text as it was.
#[test]
fn control_characters_a_step_writes_are_escaped_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let text = r#"
name = "escapes"

[[steps]]
id = "a"
action = "shell"
retry = { max_attempts = 1 }
with = { command = "printf '\\033[2J\\033]0;owned\\007fake: all good\\rok' >&2; exit 1" }
"#;
    let file = pipeline(dir.path(), "escapes", text);
    let output = run(taskflow(&db).arg("run").arg(&file).args(["--id", "esc"]));
    assert_eq!(output.code, 1);
    let written = "\u{1b}[2J\u{1b}]0;owned\u{7}fake: all good\rok";
    let escaped = r"\u{1b}[2J\u{1b}]0;owned\u{7}fake: all good\rok";
    assert!(output.stderr.contains(escaped), "{}", output.stderr);
    let inspected = run(taskflow(&db).args(["flows", "inspect", "esc"]));
    let list = run(taskflow(&db).args(["flows", "list"]));
    for shown in [&output.stdout, &output.stderr, &inspected.stdout, &list.stdout] {
        assert!(!shown.contains(['\u{1b}', '\u{7}', '\r']), "{shown:?}");
    }
    assert_eq!(inspected.stdout.matches(escaped).count(), 2, "{}", inspected.stdout);
    let error = inspect(&db, "esc")["steps"][0]["error"].as_str().unwrap().to_owned();
    assert!(error.ends_with(written), "{error:?}");
}

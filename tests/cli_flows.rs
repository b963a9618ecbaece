//! The contract of `taskflow flows list | inspect | history | cancel` (DESIGN §6) on a real
//! database made with the library: aligned tables, the `--json` documents and their keys, owner
//! isolation, and one `error:` line with exit code 1 (and the database untouched) for an unknown
//! id, a corrupt, unreadable, newer or locked database.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use serde_json::{Value, json};
use taskflow_engine::{FlowId, FlowStatus, NewFlow, NewStep, StateReport, StepKind, StepOutcome};
use taskflow_store_sqlite::OpenOptions;

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
    digest: FlowId,
    child: FlowId,
    deploy: FlowId,
    queued: FlowId,
    secret: FlowId,
}

/// alice: `digest` (managed, running, two steps done, one running with a child: three steps,
/// the child a flow of its own, not a step), `deploy`
/// (mirrored, succeeded), `later` (queued). bob: `secret`.
fn database() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let taskflow = taskflow_store_sqlite::open(&path, &OpenOptions::default()).unwrap();
    let alice = taskflow.bind("alice").unwrap();
    let bob = taskflow.bind("bob").unwrap();

    let deploy = alice.create(NewFlow::mirrored("deploy", "ci")).unwrap().id;
    for status in [FlowStatus::Running, FlowStatus::Succeeded] {
        let report = StateReport { status: Some(status), ..StateReport::default() };
        alice.report(&deploy, report, None).unwrap();
    }
    std::thread::sleep(Duration::from_millis(3));
    let digest = alice.create(NewFlow::managed("digest").with_goal("daily news")).unwrap().id;
    let lease = alice.acquire_lease(&digest, Duration::from_secs(3600)).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    for (name, output) in [("scrape", "page text"), ("analyze", "three topics")] {
        let step = alice.begin_step(&lease, NewStep::new(name, StepKind::Action)).unwrap();
        alice.finish_step(&lease, step.seq, StepOutcome::Succeeded(json!(output))).unwrap();
    }
    alice.begin_step(&lease, NewStep::new("draft", StepKind::Llm)).unwrap();
    let (child, _) = alice.spawn_child(&lease, NewFlow::managed("research")).unwrap();
    std::thread::sleep(Duration::from_millis(3));
    let queued = alice.create(NewFlow::managed("later")).unwrap().id;
    let secret = bob.create(NewFlow::managed("secret")).unwrap().id;
    drop(taskflow);
    Db { _dir: dir, path, digest, child: child.id, deploy, queued, secret }
}

fn taskflow(db: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command.arg("--db").arg(db).arg("--owner").arg("alice").env_remove("TASKFLOW_OWNER");
    command
}

fn stdout(args: &[&str], db: &Path) -> String {
    let output = taskflow(db).args(args).assert().success();
    String::from_utf8(output.get_output().stdout.clone()).unwrap()
}

fn json_out(args: &[&str], db: &Path) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout(&all, db)).expect("stdout is one JSON document")
}

fn keys(value: &Value) -> Vec<&str> {
    value.as_object().unwrap().keys().map(String::as_str).collect()
}

fn has_keys(value: &Value, expected: &[&str]) {
    let present = keys(value);
    for key in expected {
        assert!(present.contains(key), "key {key} missing from {value}");
    }
}

const LIST_KEYS: &[&str] = &[
    "id",
    "name",
    "status",
    "sync_mode",
    "owner",
    "revision",
    "steps_done",
    "steps_total",
    "created_at",
    "updated_at",
];

#[test]
fn list_json_is_newest_first_with_the_contract_keys() {
    let db = database();
    let document = json_out(&["flows", "list"], &db.path);
    assert_eq!(keys(&document), ["flows"]);
    let flows = document["flows"].as_array().unwrap();
    let ids: Vec<&str> = flows.iter().map(|f| f["id"].as_str().unwrap()).collect();
    let expected = [&db.queued, &db.child, &db.digest, &db.deploy].map(ToString::to_string);
    assert_eq!(ids, expected, "newest first, alice's only");
    for flow in flows {
        has_keys(flow, LIST_KEYS);
    }
    let digest = &flows[2];
    assert_eq!(digest["status"], "running");
    assert_eq!((digest["steps_done"].as_u64(), digest["steps_total"].as_u64()), (Some(2), Some(3)));
    assert_eq!(digest["owner"], "alice");
    assert_eq!(flows[3]["sync_mode"], "mirrored");
    assert!(digest["created_at"].as_str().unwrap().ends_with('Z'));

    let running = json_out(&["flows", "list", "--status", "running", "--limit", "5"], &db.path);
    assert_eq!(running["flows"].as_array().unwrap().len(), 1);
    let one = json_out(&["flows", "list", "--limit", "1"], &db.path);
    assert_eq!(one["flows"][0]["id"], db.queued.to_string());
    let everyone = json_out(&["flows", "list", "--all-owners"], &db.path);
    assert_eq!(everyone["flows"][0]["id"], db.secret.to_string());
    assert_eq!(everyone["flows"][0]["owner"], "bob");
}

#[test]
fn list_table_is_aligned_with_status_revision_steps_and_age() {
    let db = database();
    let text = stdout(&["flows", "list"], &db.path);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5, "{text}");
    let header = lines[0];
    for column in ["ID", "NAME", "STATUS", "REV", "STEPS", "AGE"] {
        assert!(header.contains(column), "{header}");
    }
    let status_at = header.find("STATUS").unwrap();
    let digest = lines.iter().find(|line| line.contains("digest")).unwrap();
    assert_eq!(digest.find("running").unwrap(), status_at, "columns line up:\n{text}");
    assert!(digest.contains("2/3"), "{digest}");
    assert!(digest.starts_with(&db.digest.to_string()));
    assert!(lines[1].starts_with(&db.queued.to_string()), "newest first");
    assert!(lines.iter().all(|line| !line.contains("secret")));
    assert!(digest.trim_end().ends_with('s'), "age in seconds: {digest}");

    let everyone = stdout(&["flows", "list", "--all-owners"], &db.path);
    assert!(everyone.lines().next().unwrap().contains("OWNER"));
    assert!(everyone.contains("secret") && everyone.contains("bob"));

    let empty = stdout(&["flows", "list", "--status", "lost"], &db.path);
    assert_eq!(empty.trim(), "no lost flows for owner `alice`");
}

#[test]
fn a_missing_database_lists_nothing_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    assert_eq!(json_out(&["flows", "list"], &path), json!({"flows": []}));
    assert!(!path.exists());
}

#[test]
fn inspect_shows_the_flow_its_steps_children_and_revision() {
    let db = database();
    let document = json_out(&["flows", "inspect", &db.digest.to_string()], &db.path);
    assert_eq!(keys(&document), ["children", "flow", "steps", "usage"]);
    let flow = &document["flow"];
    has_keys(flow, LIST_KEYS);
    has_keys(flow, &["error", "cancel_requested_at", "parent_flow_id"]);
    // Created, leased, running, a child spawned: the steps themselves are journal records.
    assert_eq!(flow["revision"], 4);
    assert_eq!(flow["current_step"], "research", "the journal's last step");
    assert_eq!(flow["cancel_requested_at"], Value::Null);
    let steps = document["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4);
    for step in steps {
        has_keys(
            step,
            &[
                "seq",
                "name",
                "kind",
                "status",
                "attempt",
                "output",
                "error",
                "started_at",
                "ended_at",
                "child_flow_id",
            ],
        );
    }
    assert_eq!(steps[0]["output"], "page text");
    assert_eq!(
        (steps[2]["kind"].as_str(), steps[2]["status"].as_str()),
        (Some("llm"), Some("running"))
    );
    assert_eq!(steps[3]["child_flow_id"], db.child.to_string());
    assert_eq!(
        document["children"],
        json!([{"id": db.child.to_string(), "name": "research", "status": "queued", "stalled": false}])
    );

    let child = json_out(&["flows", "inspect", &db.child.to_string()], &db.path);
    assert_eq!(child["flow"]["parent_flow_id"], db.digest.to_string());

    let text = stdout(&["flows", "inspect", &db.digest.to_string()], &db.path);
    for expected in
        ["status", "running", "revision", "4", "2/3 done", "scrape", "draft", "research"]
    {
        assert!(text.contains(expected), "{expected} in\n{text}");
    }
}

#[test]
fn history_is_the_revision_timeline_oldest_first() {
    let db = database();
    let document = json_out(&["flows", "history", &db.deploy.to_string()], &db.path);
    let revisions = document["revisions"].as_array().unwrap();
    assert_eq!(revisions.len(), 3);
    for (index, revision) in revisions.iter().enumerate() {
        has_keys(revision, &["revision", "at", "actor", "change"]);
        assert_eq!(revision["revision"], index as u64 + 1);
        assert_eq!(revision["actor"], "alice");
    }
    assert_eq!(
        revisions[2]["change"]["status"],
        json!({"before": "running", "after": "succeeded"})
    );

    let text = stdout(&["flows", "history", &db.deploy.to_string()], &db.path);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].contains("REV") && lines[0].contains("CHANGE"), "{text}");
    assert!(lines[3].contains("status: running → succeeded"), "{text}");
}

#[test]
fn cancel_is_sticky_and_reports_what_it_did() {
    let db = database();
    let digest = db.digest.to_string();
    let text = stdout(&["flows", "cancel", &digest], &db.path);
    assert!(text.contains("cancel requested") && text.contains("1 running step(s)"), "{text}");
    let inspected = json_out(&["flows", "inspect", &digest], &db.path);
    assert_eq!(inspected["flow"]["status"], "running");
    assert!(inspected["flow"]["cancel_requested_at"].is_string());
    let child = json_out(&["flows", "inspect", &db.child.to_string()], &db.path);
    assert_eq!(child["flow"]["status"], "cancelled", "the queued child was cancelled at once");

    let again = json_out(&["flows", "cancel", &digest], &db.path);
    assert_eq!(again["already_requested"], true);
    assert_eq!(again["active_steps"], 1);
    has_keys(&again["flow"], LIST_KEYS);

    let queued = json_out(&["flows", "cancel", &db.queued.to_string()], &db.path);
    assert_eq!(queued["flow"]["status"], "cancelled");
    assert_eq!(queued["already_requested"], false);
    let list = json_out(&["flows", "list", "--status", "cancelled"], &db.path);
    assert_eq!(list["flows"].as_array().unwrap().len(), 2);
}

/// Runs a command that must fail: exit 1, nothing on stdout, one `error:` line (and at most a
/// `hint:` line) on stderr, and the database file byte for byte as it was.
fn fails(db: &Path, args: &[&str], message: &str) -> String {
    let before = std::fs::read(db).ok();
    let output = taskflow(db).args(args).env("TASKFLOW_BUSY_TIMEOUT_MS", "100").assert().code(1);
    let output = output.get_output();
    assert!(output.stdout.is_empty(), "{}", String::from_utf8_lossy(&output.stdout));
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(message), "{message} in {stderr}");
    assert!(lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("hint: ")), "{stderr}");
    if db.is_file() {
        assert_eq!(std::fs::read(db).ok(), before, "the database is unchanged");
    }
    stderr
}

#[test]
fn an_unknown_id_and_another_owners_id_fail_alike() {
    let db = database();
    let missing = FlowId::new().to_string();
    let secret = db.secret.to_string();
    for command in ["inspect", "history", "cancel"] {
        fails(&db.path, &["flows", command, &missing], &format!("no flow `{missing}`"));
        let stderr = fails(&db.path, &["flows", command, &secret], &format!("no flow `{secret}`"));
        assert!(stderr.contains("hint: "), "{stderr}");
        fails(&db.path, &["flows", command, "not-an-id"], "no flow `not-an-id`");
    }
    let other = tempfile::tempdir().unwrap();
    fails(&other.path().join("absent.db"), &["flows", "cancel", &missing], "no flow");
    // A blank owner is refused, not taken for the default one (a script's empty variable), and
    // the refusal names what was blank: the variable, or the option.
    for blank in ["", " "] {
        let by_variable = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .arg("--db")
            .arg(&db.path)
            .args(["flows", "cancel", &secret])
            .env("TASKFLOW_OWNER", blank)
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&by_variable.get_output().stderr).into_owned();
        assert!(
            stderr.starts_with(
                "error: TASKFLOW_OWNER is set but blank: an owner's name cannot be empty\n\
                 hint: unset TASKFLOW_OWNER for the default owner"
            ),
            "{stderr}"
        );
        assert!(!stderr.contains("--owner"), "{stderr}");
        let by_option = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .arg("--db")
            .arg(&db.path)
            .args(["--owner", blank, "flows", "cancel", &secret])
            .assert()
            .code(2);
        let stderr = String::from_utf8_lossy(&by_option.get_output().stderr).into_owned();
        assert!(stderr.contains("an owner's name cannot be empty"), "{stderr}");
        // The option, given, is the owner whatever the variable holds.
        Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .arg("--db")
            .arg(&db.path)
            .args(["--owner", "alice", "flows", "list"])
            .env("TASKFLOW_OWNER", blank)
            .assert()
            .success();
    }
}

/// `VAR= taskflow …` unsets VAR, as a shell user means it: an empty TASKFLOW_DB names no
/// database, so the default one is used.
#[test]
fn an_empty_taskflow_db_is_the_default_database() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let default = data.join("taskflow/flows.db");
    let taskflow = |db: &str, args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command
            .args(args)
            .env("TASKFLOW_DB", db)
            .env("XDG_DATA_HOME", &data)
            .env("TASKFLOW_CONFIG", "/dev/null")
            .env("TASKFLOW_OWNER", "alice");
        command.assert()
    };
    let listed = taskflow("", &["flows", "list"]).success();
    let stdout = String::from_utf8_lossy(&listed.get_output().stdout).into_owned();
    assert_eq!(stdout, "no flows for owner `alice`\n");
    taskflow("", &["flows", "cancel", &FlowId::new().to_string()]).code(1);

    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/pipelines/compare/three_steps.toml");
    taskflow("", &["run", file.to_str().unwrap(), "--id", "in-the-default"]).success();
    assert!(default.is_file(), "the run made the default database");
    let inspected = taskflow("", &["--json", "flows", "inspect", "in-the-default"]).success();
    let inspected: Value = serde_json::from_slice(&inspected.get_output().stdout).unwrap();
    assert_eq!(inspected["flow"]["status"], "succeeded");
}

/// A wait set in milliseconds that is not a number is a usage error naming the variable, never
/// silently the default wait.
#[test]
fn a_wait_variable_that_is_not_a_number_of_milliseconds_is_refused() {
    let db = database();
    for variable in ["TASKFLOW_BUSY_TIMEOUT_MS", "TASKFLOW_CONNECT_TIMEOUT_MS"] {
        for bad in ["abc", "-5", "1.5"] {
            let refused =
                taskflow(&db.path).args(["flows", "list"]).env(variable, bad).assert().code(2);
            let output = refused.get_output();
            assert!(output.stdout.is_empty());
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(
                stderr,
                format!(
                    "error: {variable}=\"{bad}\" is not a number of milliseconds\n\
                     hint: set {variable} to a whole number of milliseconds (such as 5000), or \
                     unset it for the default\n"
                )
            );
        }
        for fine in ["", " ", "300"] {
            taskflow(&db.path).args(["flows", "list"]).env(variable, fine).assert().success();
        }
    }
}

#[test]
fn a_corrupt_unreadable_or_newer_database_fails_without_changes() {
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, b"this is not a database, just text that is long enough".repeat(100))
        .unwrap();
    for args in [&["flows", "list"][..], &["flows", "cancel", &FlowId::new().to_string()]] {
        fails(&corrupt, args, "is damaged or not a taskflow database");
    }

    let directory = dir.path().join("a-directory.db");
    std::fs::create_dir(&directory).unwrap();
    fails(&directory, &["flows", "list"], "cannot open the flow database");

    let db = database();
    let conn = rusqlite::Connection::open(&db.path).unwrap();
    conn.pragma_update(None, "user_version", 1000).unwrap();
    drop(conn);
    let stderr =
        fails(&db.path, &["flows", "list"], "has schema version 1000, newer than this taskflow");
    assert!(stderr.contains("hint: "), "{stderr}");
    fails(&db.path, &["flows", "cancel", &db.digest.to_string()], "newer than this taskflow");
}

#[test]
fn a_locked_database_fails_without_changes() {
    let db = database();
    let writer = rusqlite::Connection::open(&db.path).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let stderr = fails(
        &db.path,
        &["flows", "cancel", &db.queued.to_string()],
        "is locked by another process",
    );
    assert!(stderr.contains("TASKFLOW_BUSY_TIMEOUT_MS"), "{stderr}");
    writer.execute_batch("ROLLBACK").unwrap();
    drop(writer);

    let after = json_out(&["flows", "inspect", &db.queued.to_string()], &db.path);
    assert_eq!(
        (after["flow"]["revision"].as_u64(), after["flow"]["status"].as_str()),
        (Some(1), Some("queued"))
    );
}

#[test]
fn an_unknown_status_is_a_usage_error() {
    let db = database();
    let output = taskflow(&db.path).args(["flows", "list", "--status", "done"]).assert().code(2);
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(stderr.contains("unknown flow status `done`"), "{stderr}");
}

#[test]
fn prune_removes_ended_flows_with_their_journals_and_never_an_unfinished_one() {
    let db = database();
    let kept_for_now = json_out(&["flows", "prune", "--ended-before", "1h"], &db.path);
    assert_eq!(kept_for_now["removed"], 0, "nothing ended an hour ago");

    std::thread::sleep(Duration::from_millis(20));
    let pruned = json_out(&["flows", "prune", "--ended-before", "10ms", "--vacuum"], &db.path);
    assert_eq!(pruned["removed"], 1, "{pruned}");
    assert_eq!(pruned["vacuumed"], true);
    let ids: Vec<String> = json_out(&["flows", "list"], &db.path)["flows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|flow| flow["id"].as_str().unwrap().to_owned())
        .collect();
    let expected = [&db.queued, &db.child, &db.digest].map(ToString::to_string);
    assert_eq!(ids, expected, "the ended `deploy` went; running, queued and children stay");
    fails(&db.path, &["flows", "history", &db.deploy.to_string()], "no flow");
    let everyone = json_out(&["flows", "list", "--all-owners"], &db.path);
    assert!(everyone["flows"].as_array().unwrap().iter().any(|f| f["id"] == db.secret.to_string()));

    let running = ["flows", "prune", "--ended-before", "1d", "--status", "running"];
    let output = taskflow(&db.path).args(running).assert().code(2);
    let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
    assert!(stderr.contains("only ended flows are removed"), "{stderr}");
    let output = taskflow(&db.path).args(["flows", "prune", "--ended-before", "3 weeks"]).assert();
    let stderr = String::from_utf8_lossy(&output.code(2).get_output().stderr).into_owned();
    assert!(stderr.contains("unknown unit"), "{stderr}");
}

/// A reader that goes away before the output ends (`… | head -1`) ends the command quietly:
/// exit 0, nothing on stderr, for every command that prints.
#[test]
fn output_to_a_reader_that_went_away_ends_quietly() {
    let db = database();
    let digest = db.digest.to_string();
    let commands: [&[&str]; 4] = [
        &["flows", "inspect", &digest],
        &["--json", "flows", "inspect", &digest],
        &["flows", "list"],
        &["flows", "history", &digest],
    ];
    for args in commands {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .arg("--db")
            .arg(&db.path)
            .args(["--owner", "alice"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Closed before the command prints anything.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

#[test]
fn cancelling_a_flow_whose_runner_died_ends_it_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let pipeline = dir.path().join("slow.toml");
    std::fs::write(
        &pipeline,
        "name = \"slow\"\n[[steps]]\nid = \"wait\"\naction = \"shell\"\n\
         with = { command = \"sleep 5\" }\n[[steps]]\nid = \"after\"\naction = \"echo\"\n\
         needs = [\"wait\"]\nwith = { value = 1 }\n",
    )
    .unwrap();
    let taskflow = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command.arg("--db").arg(&db).args(["--owner", "alice"]);
        command
    };
    let mut runner = taskflow()
        .args(["run", "--id", "dead"])
        .arg(&pipeline)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let inspect = || {
        let output = taskflow().args(["--json", "flows", "inspect", "dead"]).output().unwrap();
        serde_json::from_slice::<Value>(&output.stdout).unwrap_or(Value::Null)
    };
    let started = std::time::Instant::now();
    while inspect()["steps"][0]["status"] != "running" {
        assert!(started.elapsed() < Duration::from_secs(20), "the step never began");
        std::thread::sleep(Duration::from_millis(50));
    }
    runner.kill().unwrap();
    runner.wait().unwrap();

    // Nobody is left to settle the cancel: the command ends the flow itself.
    let cancel = taskflow().args(["flows", "cancel", "dead"]).output().unwrap();
    let said = String::from_utf8_lossy(&cancel.stdout);
    assert_eq!(cancel.status.code(), Some(0), "{}", String::from_utf8_lossy(&cancel.stderr));
    assert!(said.starts_with("flow dead cancelled"), "{said}");
    let flow = inspect();
    assert_eq!(flow["flow"]["status"], "cancelled", "{flow}");
    assert_eq!(flow["steps"][0]["status"], "cancelled", "{flow}");
}

//! `taskflow flows graph` on a real run: a pipeline whose second step fails, drawn as DOT,
//! Mermaid, SVG with its hooks, and JSON; the same `error:` lines as the other flow commands.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

const PIPELINE: &str = r#"
name = "digest"

[[steps]]
id = "fetch"
action = "echo"
with = { value = "pages" }

[[steps]]
id = "draft"
action = "shell"
needs = ["fetch"]
with = { command = "exit 3" }
retry = { max_attempts = 1 }

[[steps]]
id = "publish"
action = "echo"
with = { value = "{{steps.draft.output}}" }
"#;

fn taskflow(db: &Path) -> Command {
    let mut command = Command::cargo_bin("taskflow").unwrap();
    command.arg("--db").arg(db).args(["--owner", "alice"]).env_remove("TASKFLOW_OWNER");
    command
}

/// A database holding flow `run-1`, the pipeline above run to its failure.
fn failed_run() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pipeline.toml");
    std::fs::write(&file, PIPELINE).unwrap();
    let db = dir.path().join("flows.db");
    let run = taskflow(&db).arg("run").arg(&file).args(["--id", "run-1"]).output().unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", String::from_utf8_lossy(&run.stderr));
    dir
}

fn graph(db: &Path, args: &[&str]) -> String {
    let output = taskflow(db).args(["flows", "graph", "run-1"]).args(args).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn the_graph_is_the_pipeline_with_each_step_in_its_status() {
    let dir = failed_run();
    let db = dir.path().join("flows.db");

    let dot = graph(&db, &["--format", "dot"]);
    for line in [
        r#"graph [rankdir=TB, label="run-1 (failed)", labelloc=t];"#,
        r##"n0 [label="fetch\nsucceeded", fillcolor="#dcfce7", color="#15803d"];"##,
        r##"n1 [label="draft\nfailed", fillcolor="#fee2e2", color="#b91c1c"];"##,
        r##"n2 [label="publish\nnot run", fillcolor="#ffffff", color="#6b7280"];"##,
        "n0 -> n1;",
        "n1 -> n2;",
    ] {
        assert!(dot.contains(line), "{line} in\n{dot}");
    }

    let mermaid = graph(&db, &["--format", "mermaid"]);
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    assert!(mermaid.contains("n1[\"draft<br/>failed\"]:::failed"), "{mermaid}");

    let document: Value = serde_json::from_str(&graph(&db, &["--json"])).unwrap();
    assert_eq!(document["flow_id"], "run-1");
    assert_eq!(document["edges"], json!([[0, 1], [1, 2]]));
    let statuses: Vec<&str> = document["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["succeeded", "failed", "not run"]);

    let file = dir.path().join("run-1.svg");
    assert!(graph(&db, &["-o", file.to_str().unwrap()]).is_empty(), "nothing on stdout");
    let svg = std::fs::read_to_string(&file).unwrap();
    assert!(svg.contains("<svg"), "{svg}");
    for (step, status) in [("fetch", "succeeded"), ("draft", "failed"), ("publish", "not run")] {
        let hooks = format!("data-flow-id=\"run-1\" data-step=\"{step}\" data-status=\"{status}\"");
        assert!(svg.contains(&hooks), "{hooks}");
    }
}

#[test]
fn an_unknown_flow_or_an_unwritable_file_is_one_error_line() {
    let dir = failed_run();
    let db = dir.path().join("flows.db");
    let unknown = taskflow(&db).args(["flows", "graph", "nope"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.starts_with("error: no flow `nope`"), "{stderr}");

    let missing = dir.path().join("no-such-folder").join("g.svg");
    let unwritable =
        taskflow(&db).args(["flows", "graph", "run-1", "-o"]).arg(&missing).output().unwrap();
    assert_eq!(unwritable.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unwritable.stderr);
    assert!(stderr.starts_with("error: cannot write"), "{stderr}");
    assert!(stderr.contains("hint: "), "{stderr}");
}

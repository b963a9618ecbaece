//! Budgets on the command line: an agent run stops before the model call that its token or
//! cost budget no longer covers, the flow `blocked` with the reason and the command that
//! raises it; `flows resume ID --max-tokens N` (or `--max-cost USD`) raises it and the run
//! finishes without asking the model again for a turn it answered; `flows inspect` shows
//! what was spent. The replay script's usage is known: 443, 578 and 769 tokens a turn.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

/// `taskflow --db DB ARGS` with the config file `config`.
fn taskflow(db: &Path, config: &Path, args: &[&str]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("TASKFLOW_CONFIG", config)
        .output()
        .unwrap();
    Output {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn agent(db: &Path, config: &Path, budget: &[&str]) -> Output {
    let script = root("examples/agent/kimi-turns.toml");
    let workspace = root("examples/agent/workspace");
    let mut args = vec!["agent", "--provider", "replay", "--script", script.to_str().unwrap()];
    args.extend(["--workspace", workspace.to_str().unwrap()]);
    args.extend(budget);
    args.push("What is left to do in this project?");
    taskflow(db, config, &args)
}

fn inspect(db: &Path, config: &Path, id: &str) -> Value {
    let output = taskflow(db, config, &["--json", "flows", "inspect", id]);
    assert_eq!(output.code, 0, "{}", output.stderr);
    serde_json::from_str(&output.stdout).unwrap()
}

/// The flow id `taskflow agent` announced on stderr.
fn flow_id(stderr: &str) -> String {
    let line = stderr.lines().find(|line| line.starts_with("flow ")).unwrap();
    line.trim_start_matches("flow ").trim().to_owned()
}

#[test]
fn a_spent_budget_blocks_the_run_and_a_raise_on_resume_lets_it_finish() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[prices.replay]\ninput_per_mtok = 1.0\noutput_per_mtok = 4.0\n")
        .unwrap();
    // (budget flags, LLM calls made before it blocks, the reason, the flag its hint names, the
    // raise (in the agent's spelling for the cost, which `flows resume` takes too), the limit
    // it sets)
    for (budget, calls, reason, raise_flag, raise, limit) in [
        (
            ["--budget-tokens", "1000"],
            2,
            "the token budget is spent: 1021 tokens used of 1000",
            "--max-tokens",
            ["--max-tokens", "5000"],
            "max_tokens",
        ),
        (
            ["--budget-cost", "0.0005"],
            1,
            "the cost budget is spent: $0.0005 used of $0.0005",
            "--max-cost",
            ["--budget-cost", "1"],
            "max_cost_usd",
        ),
    ] {
        let db = dir.path().join(format!("{}.db", budget[0].trim_start_matches('-')));
        let blocked = agent(&db, &config, &budget);
        assert_eq!(blocked.code, 1, "{}\n{}", blocked.stdout, blocked.stderr);
        let id = flow_id(&blocked.stderr);
        assert!(blocked.stderr.contains(reason), "{}", blocked.stderr);
        assert!(
            blocked.stderr.contains(&format!("`taskflow flows resume {id} {raise_flag}")),
            "{}",
            blocked.stderr
        );
        let seen = inspect(&db, &config, &id);
        assert_eq!(seen["flow"]["status"], "blocked");
        // No model call past the budget: the journal's last step is no `llm` step begun.
        let llm_steps: Vec<&Value> =
            seen["steps"].as_array().unwrap().iter().filter(|step| step["kind"] == "llm").collect();
        assert_eq!(llm_steps.len(), calls, "{seen:#}");
        assert!(llm_steps.iter().all(|step| step["status"] == "succeeded"));
        let text = taskflow(&db, &config, &["flows", "inspect", &id]);
        assert!(text.stdout.contains("tokens"), "{}", text.stdout);
        assert!(text.stdout.contains("cost"), "{}", text.stdout);

        let mut args = vec!["flows", "resume", id.as_str()];
        args.extend(raise);
        let resumed = taskflow(&db, &config, &args);
        assert_eq!(resumed.code, 0, "{}\n{}", resumed.stdout, resumed.stderr);
        let done = inspect(&db, &config, &id);
        assert_eq!(done["flow"]["status"], "succeeded");
        assert_eq!(done["flow"]["error"], Value::Null);
        assert_eq!(done["usage"]["input_tokens"], 412 + 520 + 705);
        assert_eq!(done["usage"]["output_tokens"], 31 + 58 + 64);
        assert_eq!(done["usage"]["tokens"], 1790);
        let raised = raise[1].parse::<f64>().unwrap();
        assert_eq!(
            done["usage"][limit].as_f64(),
            Some(raised),
            "the raised limit is the one shown: {done:#}"
        );
        let cost = done["usage"]["cost_usd"].as_f64().unwrap();
        assert!((cost - (1637.0 + 153.0 * 4.0) / 1e6).abs() < 1e-12, "{cost}");
        let llm_calls = done["steps"].as_array().unwrap().iter().filter(|s| s["kind"] == "llm");
        assert_eq!(llm_calls.count(), 3, "{done:#}");
        // The raise is in the flow's history.
        let history = taskflow(&db, &config, &["--json", "flows", "history", &id]);
        assert!(history.stdout.contains("\"budget\""), "{}", history.stdout);
    }
}

#[test]
fn a_cost_budget_without_a_price_for_the_model_is_refused_before_any_call() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let output = agent(&db, &config, &["--budget-cost", "0.5"]);
    assert_ne!(output.code, 0);
    assert!(output.stderr.contains("[prices.\"replay\"]"), "{}", output.stderr);
    let list = taskflow(&db, &config, &["--json", "flows", "list"]);
    let flows: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
    assert!(flows["flows"].as_array().is_none_or(Vec::is_empty), "{}", list.stdout);
}

#[test]
fn a_price_table_that_is_not_numbers_names_its_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[prices.replay]\ninput_per_mtok = \"cheap\"\noutput_per_mtok = 1\n")
        .unwrap();
    let output = agent(&db, &config, &["--budget-cost", "0.5"]);
    assert_ne!(output.code, 0);
    assert!(output.stderr.contains("config.toml:2:"), "{}", output.stderr);
}

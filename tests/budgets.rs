//! Budgets on the command line: an agent run stops before the model call that its token or
//! cost budget no longer covers, the flow `blocked` with the reason and the command that
//! raises it; `flows resume ID --max-tokens N` (or `--max-cost USD`) raises it and the run
//! finishes without asking the model again for a turn it answered; `flows inspect` shows
//! what was spent. The replay script's usage is known: 443, 578 and 769 tokens a turn.
//!
//! A pipeline's budget (`[budget] max_tokens` in its file, or `taskflow run --budget-tokens`)
//! covers its whole tree: its `llm` steps and the turns of the agent runs its `agent` steps
//! start. The pipeline of `fixtures/pipelines/budget` blocks inside its agent child, then
//! before its last `llm` step, and finishes once raised; its usage survives both resumes.
//!
//! A pipeline's cost budget (`[budget] max_cost_usd`, `taskflow run --budget-cost`) prices
//! each call at the model of its step, read from the config file when the flow is created and
//! stored with it: `fixtures/pipelines/budget/cost.toml` runs its calls on three models, and a
//! model without a price refuses the run before anything runs.

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

/// A temporary folder with the path of a database in it and a config file holding `config`.
fn folder(config: impl AsRef<[u8]>) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = (dir.path().join("flows.db"), dir.path().join("config.toml"));
    std::fs::write(&file, config).unwrap();
    (dir, db, file)
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
    let (_dir, db, config) = folder("");
    let output = agent(&db, &config, &["--budget-cost", "0.5"]);
    assert_ne!(output.code, 0);
    assert!(output.stderr.contains("[prices.\"replay\"]"), "{}", output.stderr);
    let list = taskflow(&db, &config, &["--json", "flows", "list"]);
    let flows: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
    assert!(flows["flows"].as_array().is_none_or(Vec::is_empty), "{}", list.stdout);
}

#[test]
fn a_price_table_that_is_not_numbers_names_its_line_and_column() {
    let (_dir, db, config) =
        folder("[prices.replay]\ninput_per_mtok = \"cheap\"\noutput_per_mtok = 1\n");
    let output = agent(&db, &config, &["--budget-cost", "0.5"]);
    assert_ne!(output.code, 0);
    assert!(output.stderr.contains("config.toml:2:"), "{}", output.stderr);
}

/// The children of a flow, from its inspection.
fn child_ids(seen: &Value) -> Vec<String> {
    let children = seen["children"].as_array().unwrap();
    children.iter().map(|child| child["id"].as_str().unwrap().to_owned()).collect()
}

/// The `llm` steps of an inspection's journal, by name.
fn llm_steps(seen: &Value) -> Vec<String> {
    let steps = seen["steps"].as_array().unwrap().iter().filter(|step| step["kind"] == "llm");
    steps.map(|step| step["name"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn a_pipeline_budget_covers_its_tree_blocks_it_and_raises_let_it_finish() {
    let (_dir, db, config) = folder("");
    let pipeline = root("fixtures/pipelines/budget/pipeline.toml");
    let pipeline = pipeline.to_str().unwrap();

    // `outline` (120 tokens) and the agent's first turn (443) spend the file's 500: the agent
    // stops before its second turn, and the pipeline with it.
    let blocked = taskflow(&db, &config, &["run", pipeline, "--id", "survey"]);
    assert_eq!(blocked.code, 1, "{}\n{}", blocked.stdout, blocked.stderr);
    let reason = "pipeline survey: the token budget is spent: 563 tokens used of 500; \
                  `taskflow flows resume survey --max-tokens N` raises it";
    assert!(blocked.stderr.contains(reason), "{}", blocked.stderr);
    let seen = inspect(&db, &config, "survey");
    assert_eq!(seen["flow"]["status"], "blocked");
    assert!(seen["flow"]["error"].as_str().unwrap().starts_with(reason), "{seen:#}");
    assert_eq!(seen["usage"]["tokens"], 563);
    assert_eq!(seen["usage"]["max_tokens"], 500);
    assert_eq!(llm_steps(&seen), ["outline"]);
    let child = child_ids(&seen).pop().unwrap();
    let agent = inspect(&db, &config, &child);
    assert_eq!(agent["flow"]["status"], "blocked");
    assert_eq!(llm_steps(&agent), ["llm 1"], "no model call past the budget");
    // The agent resumed on its own, even with a budget of its own raised, spends the
    // pipeline's budget all the same: it stays blocked, naming the pipeline.
    for raise in [&[][..], &["--max-tokens", "100000"][..]] {
        let mut args = vec!["flows", "resume", &child];
        args.extend_from_slice(raise);
        let alone = taskflow(&db, &config, &args);
        assert_eq!(alone.code, 1, "{}\n{}", alone.stdout, alone.stderr);
        assert!(
            alone.stderr.contains("pipeline survey: the token budget is spent"),
            "{}",
            alone.stderr
        );
        let agent = inspect(&db, &config, &child);
        assert_eq!(agent["flow"]["status"], "blocked");
        assert_eq!(llm_steps(&agent), ["llm 1"], "no model call past the pipeline's budget");
    }

    // Raised to 1500: the agent's last two turns fit (1910 tokens), the `summary` call no more.
    let again = taskflow(&db, &config, &["flows", "resume", "survey", "--max-tokens", "1500"]);
    assert_eq!(again.code, 1, "{}\n{}", again.stdout, again.stderr);
    assert!(again.stderr.contains("1910 tokens used of 1500"), "{}", again.stderr);
    let seen = inspect(&db, &config, "survey");
    assert_eq!(seen["flow"]["status"], "blocked");
    assert_eq!(seen["usage"]["tokens"], 1910);
    assert_eq!(seen["usage"]["max_tokens"], 1500);
    assert_eq!(llm_steps(&seen), ["outline"], "`summary` is not begun");
    assert_eq!(child_ids(&seen), std::slice::from_ref(&child), "the same child ran on");
    assert_eq!(inspect(&db, &config, &child)["flow"]["status"], "succeeded");

    // Raised again (in the agent's spelling): the pipeline finishes; every call was made once.
    let done = taskflow(&db, &config, &["flows", "resume", "survey", "--budget-tokens", "5000"]);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let seen = inspect(&db, &config, "survey");
    assert_eq!(seen["flow"]["status"], "succeeded");
    assert_eq!(seen["flow"]["error"], Value::Null);
    assert_eq!(seen["usage"]["input_tokens"], 100 + 412 + 520 + 705 + 45);
    assert_eq!(seen["usage"]["output_tokens"], 20 + 31 + 58 + 64 + 15);
    assert_eq!(seen["usage"]["tokens"], 1970);
    assert_eq!(seen["usage"]["max_tokens"], 5000, "the raised limit is the one shown");
    assert_eq!(llm_steps(&seen), ["outline", "summary"]);
    assert_eq!(llm_steps(&inspect(&db, &config, &child)), ["llm 1", "llm 2", "llm 3"]);
    // The steps read the replies' text: the agent's prompt holds the outline's.
    let agent = inspect(&db, &config, &child);
    let prompt = agent["flow"]["spec"]["agent"]["prompt"].as_str().unwrap();
    assert_eq!(
        prompt,
        "Follow this outline: List the folder, read the README and the notes, then say what \
         is left."
    );
    assert_eq!(
        seen["flow"]["state"]["summary"],
        "Lighthouse needs its mailer wired, fetcher retries and an install section."
    );
}

#[test]
fn a_run_sets_the_pipeline_budget_and_a_cost_raise_is_refused_for_a_pipeline() {
    let (_dir, db, config) = folder("");
    let pipeline = root("fixtures/pipelines/budget/pipeline.toml");
    let args = ["run", pipeline.to_str().unwrap(), "--id", "tight", "--budget-tokens", "100"];
    let blocked = taskflow(&db, &config, &args);
    assert_eq!(blocked.code, 1, "{}", blocked.stderr);
    assert!(blocked.stderr.contains("120 tokens used of 100"), "{}", blocked.stderr);
    let seen = inspect(&db, &config, "tight");
    assert_eq!(seen["usage"]["max_tokens"], 100);
    let child = child_ids(&seen).pop().unwrap();
    assert!(llm_steps(&inspect(&db, &config, &child)).is_empty(), "the agent asked nothing");

    // Started without a cost budget, it stored no prices: a cost limit cannot be kept.
    let refused = taskflow(&db, &config, &["flows", "resume", "tight", "--max-cost", "1"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("step `outline`: a cost budget needs the price of the model"),
        "{}",
        refused.stderr
    );
    assert_eq!(inspect(&db, &config, "tight")["flow"]["status"], "blocked");
}

/// The prices of the models of `fixtures/pipelines/budget/cost.toml`, `large`'s if `large`.
fn price_table(large: bool) -> String {
    let mut table = "[prices.small]\ninput_per_mtok = 1.0\noutput_per_mtok = 4.0\n\
                     [prices.replay]\ninput_per_mtok = 2.0\noutput_per_mtok = 8.0\n"
        .to_owned();
    if large {
        table.push_str("[prices.large]\ninput_per_mtok = 10.0\noutput_per_mtok = 40.0\n");
    }
    table
}

fn assert_dollars(found: &Value, micro: f64) {
    let found = found.as_f64().unwrap_or(f64::NAN);
    assert!((found - micro / 1e6).abs() < 1e-12, "${found} is not {micro} millionths");
}

#[test]
fn a_pipeline_cost_budget_prices_each_call_at_its_steps_model_blocks_and_a_raise_finishes_it() {
    let (_dir, db, config) = folder(price_table(true));
    let pipeline = root("fixtures/pipelines/budget/cost.toml");

    // `outline` costs 100·1 + 20·4 millionths on `small`, the agent's first turn 412·2 + 31·8
    // on `replay`: 1252 of the file's 1000, so the agent stops before its second turn.
    let blocked = taskflow(&db, &config, &["run", pipeline.to_str().unwrap(), "--id", "priced"]);
    assert_eq!(blocked.code, 1, "{}\n{}", blocked.stdout, blocked.stderr);
    let reason = "pipeline priced: the cost budget is spent: $0.0013 used of $0.0010; \
                  `taskflow flows resume priced --max-cost USD` raises it";
    assert!(blocked.stderr.contains(reason), "{}", blocked.stderr);
    let seen = inspect(&db, &config, "priced");
    assert_eq!(seen["flow"]["status"], "blocked");
    assert_dollars(&seen["usage"]["cost_usd"], 1252.0);
    assert_eq!(seen["usage"]["max_cost_usd"], 0.001);
    let child = child_ids(&seen).pop().unwrap();
    assert_eq!(llm_steps(&inspect(&db, &config, &child)), ["llm 1"], "no call past the budget");
    // The prices are the flow's: a later config file does not change what was spent.
    assert_eq!(seen["flow"]["spec"]["prices"]["summary"]["model"], "large");
    std::fs::write(&config, "[prices.replay]\ninput_per_mtok = 99.0\noutput_per_mtok = 99.0\n")
        .unwrap();
    assert_dollars(&inspect(&db, &config, "priced")["usage"]["cost_usd"], 1252.0);

    // Raised to $0.005: the agent's turns (1504 and 1922) and `summary` (45·10 + 15·40) fit.
    let done = taskflow(&db, &config, &["flows", "resume", "priced", "--max-cost", "0.005"]);
    assert_eq!(done.code, 0, "{}\n{}", done.stdout, done.stderr);
    let seen = inspect(&db, &config, "priced");
    assert_eq!(seen["flow"]["status"], "succeeded");
    assert_eq!(seen["usage"]["tokens"], 1970);
    assert_dollars(&seen["usage"]["cost_usd"], 180.0 + 1072.0 + 1504.0 + 1922.0 + 1050.0);
    assert_eq!(seen["usage"]["max_cost_usd"], 0.005);
    assert_eq!(llm_steps(&seen), ["outline", "summary"]);
    assert_eq!(child_ids(&seen), std::slice::from_ref(&child), "the same child ran on");
    // The agent run keeps its own price: its turns alone.
    let agent = inspect(&db, &config, &child);
    assert_eq!(llm_steps(&agent), ["llm 1", "llm 2", "llm 3"]);
    assert_dollars(&agent["usage"]["cost_usd"], 1072.0 + 1504.0 + 1922.0);
    let text = taskflow(&db, &config, &["flows", "inspect", "priced"]);
    assert!(text.stdout.contains("$0.0057"), "{}", text.stdout);
}

#[test]
fn a_pipeline_cost_budget_without_the_price_of_a_steps_model_is_refused_before_the_run() {
    let (_dir, db, config) = folder(price_table(false));
    let pipeline = root("fixtures/pipelines/budget/cost.toml");
    let pipeline = pipeline.to_str().unwrap();
    for args in [vec!["run", pipeline], vec!["run", pipeline, "--budget-cost", "2"]] {
        let refused = taskflow(&db, &config, &args);
        assert_eq!(refused.code, 2, "{}", refused.stderr);
        assert!(refused.stderr.contains("step `summary`"), "{}", refused.stderr);
        assert!(refused.stderr.contains("[prices.\"large\"]"), "{}", refused.stderr);
    }
    let list = taskflow(&db, &config, &["--json", "flows", "list"]);
    let flows: Value = serde_json::from_str(&list.stdout).unwrap_or(Value::Null);
    assert!(flows["flows"].as_array().is_none_or(Vec::is_empty), "{}", list.stdout);
}

/// Model calls whose responses report no usage (a server that ignores
/// `stream_options.include_usage`) are not counted against a token budget: `flows inspect`
/// says how many there were, rather than showing a budget that looks untouched.
#[test]
fn calls_that_report_no_usage_are_shown_as_not_counted() {
    let (dir, db, config) = folder("");
    let script = dir.path().join("turns.toml");
    std::fs::write(&script, "[[turn]]\ncontent = \"Nothing is left.\"\n").unwrap();
    let workspace = root("examples/agent/workspace");
    let mut args = vec!["agent", "--provider", "replay", "--script", script.to_str().unwrap()];
    args.extend(["--workspace", workspace.to_str().unwrap(), "--budget-tokens", "10", "Go."]);
    let ran = taskflow(&db, &config, &args);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let id = flow_id(&ran.stderr);
    let seen = inspect(&db, &config, &id);
    assert_eq!(seen["usage"]["tokens"], 0);
    assert_eq!(seen["usage"]["calls_without_usage"], 1);
    let shown = taskflow(&db, &config, &["flows", "inspect", &id]);
    assert!(
        shown
            .stdout
            .contains("0 of 10 (in 0, out 0; 1 model call(s) reported no usage, not counted)"),
        "{}",
        shown.stdout
    );
}

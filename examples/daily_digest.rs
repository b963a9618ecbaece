//! A daily digest made durable with taskflow's library API: the program registers its own
//! `scrape`, `filter` and `draft` actions, builds the flow in code, and runs it through the
//! owner-bound handle. Each step's output is checkpointed, so a crash costs only the step it
//! interrupted.
//!
//! ```sh
//! # crash during `filter` (the process aborts, like a kill -9)
//! TASKFLOW_DIGEST_CRASH_IN=filter cargo run --example daily_digest
//! # run again: `scrape` is not repeated, `filter` runs again with the same idempotency key
//! cargo run --example daily_digest
//! ```
//!
//! The database is `TASKFLOW_DB` (default `target/daily-digest/flows.db`). A run continues the
//! newest unfinished digest of the owner `digest` if there is one, else starts a new one.

use std::io::Write;

use serde_json::{Value, json};
use taskflow_engine::{
    ActionError, Actions, Engine, EngineOptions, FlowSpec, FlowStatus, ListQuery, StepContext,
    StepSpec,
};
use taskflow_store_sqlite::OpenOptions;

const FLOW_NAME: &str = "daily digest";
const CRASH_ENV: &str = "TASKFLOW_DIGEST_CRASH_IN";

/// The day's headlines, as a scraper would find them.
const HEADLINES: &[(&str, &str)] = &[
    ("Rust 1.95 speeds up incremental builds", "rust"),
    ("Write-ahead logging in SQLite, explained", "databases"),
    ("A late tomato harvest", "garden"),
    ("Kimi K2 tool calls as tagged text", "llm"),
];

/// Topics the digest follows.
const TOPICS: &[&str] = &["rust", "databases", "llm"];

fn log(context: &StepContext, what: &str) {
    println!(
        "{}: attempt {} (key {}): {what}",
        context.step, context.attempt, context.idempotency_key
    );
    let _ = std::io::stdout().flush();
}

/// Crashes the process when `TASKFLOW_DIGEST_CRASH_IN` names this step, on its first attempt.
fn crash_if_asked(context: &StepContext) {
    if std::env::var(CRASH_ENV).is_ok_and(|step| step == context.step) && context.attempt == 1 {
        log(context, "crashing");
        std::process::abort();
    }
}

async fn scrape(_input: Value, context: StepContext) -> Result<Value, ActionError> {
    log(&context, "collecting headlines");
    let items: Vec<Value> =
        HEADLINES.iter().map(|(title, topic)| json!({"title": title, "topic": topic})).collect();
    Ok(Value::Array(items))
}

async fn filter(input: Value, context: StepContext) -> Result<Value, ActionError> {
    log(&context, "keeping the followed topics");
    crash_if_asked(&context);
    let items = input["items"].as_array().ok_or_else(|| ActionError::permanent("no items"))?;
    let kept: Vec<Value> = items
        .iter()
        .filter(|item| TOPICS.iter().any(|topic| item["topic"] == *topic))
        .cloned()
        .collect();
    Ok(Value::Array(kept))
}

async fn draft(input: Value, context: StepContext) -> Result<Value, ActionError> {
    log(&context, "drafting");
    crash_if_asked(&context);
    let items = input["items"].as_array().ok_or_else(|| ActionError::permanent("no items"))?;
    let mut text = String::from("# Daily digest\n");
    for item in items {
        text.push_str(&format!(
            "- {} ({})\n",
            item["title"].as_str().unwrap_or("?"),
            item["topic"].as_str().unwrap_or("?")
        ));
    }
    Ok(Value::String(text))
}

fn spec() -> FlowSpec {
    FlowSpec::new(FLOW_NAME)
        .step(StepSpec::new("scrape", "scrape"))
        .step(StepSpec::new("filter", "filter").with(json!({"items": "{{steps.scrape.output}}"})))
        .step(StepSpec::new("draft", "draft").with(json!({"items": "{{steps.filter.output}}"})))
}

#[tokio::main]
pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let db = std::env::var("TASKFLOW_DB").unwrap_or_else(|_| "target/daily-digest/flows.db".into());
    let taskflow = taskflow_store_sqlite::open(&db, &OpenOptions::default())?;
    let handle = taskflow.bind("digest")?;

    let mut actions = Actions::new();
    actions.register("scrape", scrape).register("filter", filter).register("draft", draft);
    let engine = Engine::new(handle.clone(), actions, EngineOptions::default());

    let unfinished = handle
        .list(&ListQuery::default())?
        .into_iter()
        .find(|flow| flow.name == FLOW_NAME && !flow.status.is_terminal());
    let id = match unfinished {
        Some(flow) => {
            println!("resuming flow {} ({} of {} steps done)", flow.id, flow.steps_done, 3);
            flow.id
        }
        None => {
            let flow = engine.create(&spec(), None).await?;
            println!("started flow {}", flow.id);
            flow.id
        }
    };
    let _ = std::io::stdout().flush();
    let flow = engine.run(&id).await?;
    match (flow.status, &flow.state) {
        (FlowStatus::Succeeded, Some(state)) => {
            print!("{}", state["draft"].as_str().unwrap_or_default());
            Ok(())
        }
        (status, _) => {
            Err(format!("flow {id} {status}: {}", flow.error.unwrap_or_default()).into())
        }
    }
}

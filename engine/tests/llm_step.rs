//! The `llm` action in a pipeline: prompts filled from earlier outputs, the model's response
//! (usage included) as the step's journaled output and its text as what later steps read, and
//! bad `with` tables refused before anything runs.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use taskflow_engine::{
    Actions, Engine, EngineOptions, FlowSpec, FlowStatus, StepKind, StepSpec, pipeline,
};
use taskflow_store_sqlite::OpenOptions;

fn engine(dir: &Path) -> Engine {
    let store = taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap();
    let options =
        EngineOptions { cancel_poll: Duration::from_millis(50), ..EngineOptions::default() };
    Engine::new(store.bind("alice").unwrap(), Actions::builtin(), options)
}

#[tokio::test]
async fn the_research_brief_runs_offline() {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/pipelines/research-brief/pipeline.toml");
    let mut spec = pipeline::load(&file, &Actions::builtin()).unwrap().spec;
    spec.output_dir = Some(dir.path().join("out"));
    let engine = engine(dir.path());
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let steps = engine.handle().steps(&flow.id).unwrap();
    let analyze = steps.iter().find(|step| step.name == "analyze").unwrap();
    let prompt = analyze.input.as_ref().unwrap()["prompt"].as_str().unwrap();
    assert!(prompt.contains("Rust 1.95"), "the prompt holds the extracted pages: {prompt}");
    // The step keeps the model's response, with the tokens it used, as an `llm` step.
    assert_eq!(analyze.kind, StepKind::Llm);
    let response = analyze.output.as_ref().unwrap();
    assert!(response["content"].as_str().unwrap().starts_with("1. Rust 1.95 is out"));
    assert_eq!(response["usage"]["prompt_tokens"], 610);
    assert_eq!(response["usage"]["completion_tokens"], 72);
    let draft = steps.iter().find(|step| step.name == "draft").unwrap();
    assert!(
        draft.input.as_ref().unwrap()["prompt"].as_str().unwrap().contains("SQLite in WAL mode")
    );
    let brief = std::fs::read_to_string(dir.path().join("out/brief.md")).unwrap();
    assert!(brief.starts_with("# This week: Rust 1.95"), "{brief}");
}

fn llm_step(with: Value) -> FlowSpec {
    FlowSpec::new("one call").step(StepSpec::new("ask", "llm").with(with))
}

#[tokio::test]
async fn bad_llm_steps_are_refused_or_fail_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    for (with, expected) in [
        (json!({"provider": "replay"}), "`with.prompt` is missing"),
        (json!({"prompt": "hi", "temperature": "hot"}), "`with.temperature` must be a number"),
        (json!({"prompt": "hi", "model": 7}), "`with.model` must be a string"),
    ] {
        let error = engine.create(&llm_step(with), None).await.unwrap_err().to_string();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
    for (with, expected) in [
        (json!({"prompt": "hi"}), "no provider chosen"),
        (json!({"prompt": "hi", "provider": "replay"}), "needs a script file"),
        (json!({"prompt": "hi", "provider": "nope"}), "unknown provider `nope`"),
    ] {
        let flow = engine.create(&llm_step(with), None).await.unwrap();
        let flow = engine.run(&flow.id).await.unwrap();
        assert_eq!(flow.status, FlowStatus::Failed);
        let error = flow.error.unwrap();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
    }
}

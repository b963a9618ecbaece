//! The `agent` pipeline action: an agent run as a child flow of the pipeline. Its answer feeds
//! later steps; the child is recorded under its parent; a resumed pipeline continues the same
//! child; a failed child fails the step; a cancel of the pipeline reaches the running child,
//! both live and across a restart of the process that ran them.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use taskflow_engine::agent::{ProviderChoice, ProviderFactory};
use taskflow_engine::{
    Actions, Engine, EngineOptions, Flow, FlowId, FlowSpec, FlowStatus, StepKind, StepStatus,
    pipeline,
};
use taskflow_providers::{
    ChatRequest, ChatResponse, ChatStream, Provider, ProviderError, ReplayProvider, ReplayScript,
};
use taskflow_store_sqlite::OpenOptions;

/// The agent's recorded turns: it reads a file of its workspace, then answers.
const TURNS: &str = r#"
format = "kimi"

[[turn]]
text = """Reading the notes.<|tool_calls_section_begin|><|tool_call_begin|>functions.read_file:0<|tool_call_argument_begin|>{"path": "notes.md"}<|tool_call_end|><|tool_calls_section_end|>"""

[[turn]]
content = "The parser release streams every format."
"#;

const ANSWER: &str = "The parser release streams every format.";

const PIPELINE: &str = r#"
name = "release notes"

[[steps]]
id = "topic"
action = "echo"
with = { value = "the parser release" }

[[steps]]
id = "ask"
action = "agent"

[steps.with]
provider = "replay"
script = "agent.turns.toml"
workspace = "work"
tools = ["read_file"]
max_turns = 4
prompt = "Write one line about {{steps.topic.output}} from notes.md."

[[steps]]
id = "publish"
action = "echo"
with = { value = "Released: {{steps.ask.output}}" }
"#;

/// A pipeline folder: the pipeline, the agent's turns and its workspace.
fn folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pipeline.toml"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("agent.turns.toml"), TURNS).unwrap();
    std::fs::create_dir(dir.path().join("work")).unwrap();
    std::fs::write(dir.path().join("work/notes.md"), "Streaming parsers for every format.\n")
        .unwrap();
    dir
}

fn spec(dir: &Path) -> FlowSpec {
    pipeline::load(&dir.join("pipeline.toml"), &Actions::builtin()).unwrap().spec
}

/// A provider that counts the requests it gets and answers from the agent's turns, except
/// from request number `block_from` on, which it never answers.
#[derive(Debug)]
struct Gated {
    inner: ReplayProvider,
    requests: Arc<AtomicUsize>,
    block_from: Option<usize>,
}

impl Gated {
    async fn gate(&self) {
        let number = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        if self.block_from.is_some_and(|from| number >= from) {
            std::future::pending::<()>().await;
        }
    }
}

#[async_trait::async_trait]
impl Provider for Gated {
    fn name(&self) -> &str {
        "gated"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.gate().await;
        self.inner.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.gate().await;
        self.inner.stream(request).await
    }
}

/// An engine over the store in `dir`, as a process would open it, whose providers are a
/// [`Gated`] replay of [`TURNS`]; the counter counts its requests.
fn engine(
    dir: &Path,
    options: EngineOptions,
    block_from: Option<usize>,
) -> (Engine, Arc<AtomicUsize>) {
    let requests = Arc::new(AtomicUsize::new(0));
    let inner = ReplayProvider::new(ReplayScript::parse(TURNS, "turns").unwrap(), "turns");
    let provider: Arc<dyn Provider> =
        Arc::new(Gated { inner, requests: Arc::clone(&requests), block_from });
    let factory: ProviderFactory =
        Arc::new(move |_choice: &ProviderChoice| Ok(Arc::clone(&provider)));
    let store = taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap();
    let engine = Engine::new(store.bind("alice").unwrap(), Actions::builtin(), options)
        .with_providers(factory);
    (engine, requests)
}

fn quick() -> EngineOptions {
    EngineOptions { cancel_poll: Duration::from_millis(50), ..EngineOptions::default() }
}

/// Options of a run that is going to be killed: a short lease, so that the next engine can take
/// the flows over soon after.
fn doomed(cancel_poll: Duration) -> EngineOptions {
    EngineOptions { lease_ttl: Duration::from_millis(300), cancel_poll, ..EngineOptions::default() }
}

/// Waits until the provider got `n` requests.
async fn requests_reach(requests: &AtomicUsize, n: usize) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while requests.load(Ordering::SeqCst) < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the agent asks the model");
}

/// The journal as (name, kind, status, attempt).
fn journal(engine: &Engine, id: &FlowId) -> Vec<(String, StepKind, StepStatus, u32)> {
    let steps = engine.handle().steps(id).unwrap();
    steps.into_iter().map(|step| (step.name, step.kind, step.status, step.attempt)).collect()
}

fn row(
    name: &str,
    kind: StepKind,
    status: StepStatus,
    attempt: u32,
) -> (String, StepKind, StepStatus, u32) {
    (name.to_owned(), kind, status, attempt)
}

/// The one child of `parent`.
fn only_child(engine: &Engine, parent: &Flow) -> Flow {
    let children = engine.handle().children(&parent.id).unwrap();
    assert_eq!(children.len(), 1, "{children:?}");
    engine.handle().flow(&children[0].id).unwrap()
}

#[tokio::test]
async fn an_agent_step_runs_as_a_child_flow_and_its_answer_feeds_the_next_step() {
    let dir = folder();
    // The presets build the replay provider from the step's `script`, relative to the pipeline.
    let store =
        taskflow_store_sqlite::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
    let engine = Engine::new(store.bind("alice").unwrap(), Actions::builtin(), quick());
    let flow = engine.create(&spec(dir.path()), None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    assert_eq!(flow.state, Some(json!({"publish": format!("Released: {ANSWER}")})));

    let inspection = engine.handle().inspect(&flow.id).unwrap();
    assert_eq!(inspection.children.len(), 1);
    assert_eq!(inspection.children[0].name, "ask (agent)");
    assert_eq!(inspection.children[0].status, FlowStatus::Succeeded);
    let child = engine.handle().flow(&inspection.children[0].id).unwrap();
    assert_eq!(child.parent_flow_id, Some(flow.id.clone()));
    assert_eq!(child.state.as_ref().unwrap()["answer"], ANSWER);

    use StepKind::{Action, Child, Llm, Tool};
    use StepStatus::Succeeded;
    assert_eq!(
        journal(&engine, &flow.id),
        [
            row("topic", Action, Succeeded, 1),
            row("ask", Action, Succeeded, 1),
            row("ask (agent)", Child, Succeeded, 1),
            row("publish", Action, Succeeded, 1),
        ]
    );
    let ask = &inspection.steps[1];
    assert_eq!(ask.output, Some(Value::String(ANSWER.to_owned())), "the answer text");
    assert_eq!(inspection.steps[2].child_flow_id, Some(child.id.clone()));

    // The child is an agent run with the rendered prompt, its paths resolved, marked with the
    // step's idempotency key.
    let stored = child.spec.as_ref().unwrap();
    let agent = &stored["agent"];
    assert_eq!(agent["prompt"], "Write one line about the parser release from notes.md.");
    assert_eq!(agent["provider"]["script"], json!(dir.path().join("agent.turns.toml")));
    assert_eq!(agent["workspace"], json!(dir.path().join("work").canonicalize().unwrap()));
    assert_eq!(agent["tools"], json!(["read_file"]));
    assert_eq!(agent["max_turns"], 4);
    assert_eq!(stored["step_key"], ask.idempotency_key.as_str());
    assert_eq!(
        journal(&engine, &child.id),
        [
            row("llm 1", Llm, Succeeded, 1),
            row("tool 1/functions.read_file:0", Tool, Succeeded, 1),
            row("llm 2", Llm, Succeeded, 1),
        ]
    );
    let read = &engine.handle().steps(&child.id).unwrap()[1];
    assert_eq!(read.output.as_ref().unwrap()["content"], "Streaming parsers for every format.\n");
}

#[tokio::test]
async fn a_pipeline_resumed_after_a_crash_continues_its_agent_child() {
    let dir = folder();
    let id = {
        // The first process: the agent's second turn never comes back, and the process dies.
        let (engine, requests) = engine(dir.path(), doomed(Duration::from_millis(200)), Some(2));
        let flow = engine.create(&spec(dir.path()), None).await.unwrap();
        let (runner, id) = (engine.clone(), flow.id.clone());
        let running = tokio::spawn(async move { runner.run(&id).await });
        requests_reach(&requests, 2).await;
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        flow.id
    };
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (engine, requests) = engine(dir.path(), quick(), None);
    let flow = engine.handle().flow(&id).unwrap();
    assert_eq!(flow.status, FlowStatus::Running);
    let flow = engine.run(&id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    assert_eq!(flow.state, Some(json!({"publish": format!("Released: {ANSWER}")})));
    assert_eq!(requests.load(Ordering::SeqCst), 1, "only the turn in flight is asked again");

    let child = only_child(&engine, &flow);
    assert_eq!(child.status, FlowStatus::Succeeded);
    use StepKind::{Action, Child, Llm, Tool};
    use StepStatus::Succeeded;
    assert_eq!(
        journal(&engine, &child.id),
        [
            row("llm 1", Llm, Succeeded, 1),
            row("tool 1/functions.read_file:0", Tool, Succeeded, 1),
            row("llm 2", Llm, Succeeded, 2),
        ]
    );
    assert_eq!(
        journal(&engine, &flow.id),
        [
            row("topic", Action, Succeeded, 1),
            row("ask", Action, Succeeded, 2),
            row("ask (agent)", Child, Succeeded, 1),
            row("publish", Action, Succeeded, 1),
        ]
    );
}

#[tokio::test]
async fn a_failed_child_fails_the_step_with_its_error() {
    let dir = folder();
    let (engine, requests) = engine(dir.path(), quick(), None);
    let mut spec = spec(dir.path());
    spec.steps[1].with["max_turns"] = json!(1);
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Failed);
    let child = only_child(&engine, &flow);
    assert_eq!(child.status, FlowStatus::Failed);
    let error = flow.error.unwrap();
    assert!(error.starts_with("step `ask` failed: the agent's child flow"), "{error}");
    assert!(error.contains("used its 1 turns"), "{error}");
    assert_eq!(requests.load(Ordering::SeqCst), 1, "a failed agent is not run again");
    let ask = &engine.handle().steps(&flow.id).unwrap()[1];
    assert_eq!((ask.status, ask.attempt), (StepStatus::Failed, 1));
}

#[tokio::test]
async fn a_cancel_of_the_pipeline_stops_its_agent_child_mid_turn() {
    let dir = folder();
    let (engine, requests) = engine(dir.path(), quick(), Some(1));
    let flow = engine.create(&spec(dir.path()), None).await.unwrap();
    let (runner, id) = (engine.clone(), flow.id.clone());
    let running = tokio::spawn(async move { runner.run(&id).await });
    requests_reach(&requests, 1).await;
    engine.cancel(&flow.id).await.unwrap();
    let ended =
        tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap().unwrap();
    assert_eq!(ended.status, FlowStatus::Cancelled);
    let child = only_child(&engine, &ended);
    assert_eq!(child.status, FlowStatus::Cancelled);
    use StepKind::{Action, Child, Llm};
    use StepStatus::{Cancelled, Succeeded};
    assert_eq!(journal(&engine, &child.id), [row("llm 1", Llm, Cancelled, 1)]);
    assert_eq!(
        journal(&engine, &ended.id),
        [
            row("topic", Action, Succeeded, 1),
            row("ask", Action, Cancelled, 1),
            row("ask (agent)", Child, Cancelled, 1),
        ]
    );
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_pipeline_cancelled_mid_child_and_restarted_ends_cancelled_with_its_child() {
    let dir = folder();
    let id = {
        // The first process never polls for the cancel before it dies, so both flows are left
        // running with a cancel request and a turn in flight.
        let (engine, requests) = engine(dir.path(), doomed(Duration::from_secs(60)), Some(1));
        let flow = engine.create(&spec(dir.path()), None).await.unwrap();
        let (runner, id) = (engine.clone(), flow.id.clone());
        let running = tokio::spawn(async move { runner.run(&id).await });
        requests_reach(&requests, 1).await;
        let outcome = engine.cancel(&flow.id).await.unwrap();
        assert_eq!(outcome.flow.status, FlowStatus::Running);
        running.abort();
        assert!(running.await.unwrap_err().is_cancelled());
        flow.id
    };
    tokio::time::sleep(Duration::from_millis(400)).await;

    let (engine, requests) = engine(dir.path(), quick(), None);
    let parent = engine.handle().flow(&id).unwrap();
    let child = only_child(&engine, &parent);
    for flow in [&parent, &child] {
        assert_eq!(flow.status, FlowStatus::Running, "left by the dead process");
        assert!(flow.cancel_requested_at.is_some(), "the request reached the child");
    }
    assert_eq!(
        engine.handle().check_resume(&id).unwrap(),
        taskflow_engine::ResumePlan::FinishCancel
    );

    let parent = engine.run(&id).await.unwrap();
    assert_eq!(parent.status, FlowStatus::Cancelled, "{:?}", parent.error);
    let child = engine.handle().flow(&child.id).unwrap();
    assert_eq!(child.status, FlowStatus::Cancelled);
    for flow in [&parent, &child] {
        assert!(flow.ended_at.is_some() && flow.lease.is_none());
    }
    assert_eq!(requests.load(Ordering::SeqCst), 0, "finishing a cancel asks no model");
    use StepKind::{Action, Child, Llm};
    use StepStatus::{Cancelled, Succeeded};
    assert_eq!(journal(&engine, &child.id), [row("llm 1", Llm, Cancelled, 1)]);
    assert_eq!(
        journal(&engine, &parent.id),
        [
            row("topic", Action, Succeeded, 1),
            row("ask", Action, Cancelled, 1),
            row("ask (agent)", Child, Cancelled, 1),
        ]
    );
}

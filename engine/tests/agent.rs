//! Agent runs on a real store with recorded model turns: each turn and each tool call a
//! checkpointed step, a resume that sends no checkpointed request again, malformed calls
//! answered to the model (and calls that could not be read at all), the turn limit, and
//! cancel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use taskflow_engine::agent::{AgentSpec, ProviderChoice, ProviderFactory};
use taskflow_engine::{Actions, Engine, EngineOptions, Flow, FlowStatus, StepKind, StepStatus};
use taskflow_providers::{
    ChatRequest, ChatResponse, ChatStream, Provider, ProviderError, ReplayProvider, ReplayScript,
};
use taskflow_store_sqlite::OpenOptions;

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent").join(path)
}

/// A provider that counts the requests it gets, then answers from a replay script (or never,
/// when it has none).
#[derive(Debug)]
struct Counting {
    inner: Option<ReplayProvider>,
    requests: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Provider for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        match &self.inner {
            Some(inner) => inner.complete(request).await,
            None => std::future::pending().await,
        }
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        match &self.inner {
            Some(inner) => inner.stream(request).await,
            None => std::future::pending().await,
        }
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    engine: Engine,
    requests: Arc<AtomicUsize>,
}

fn bench(script: Option<&str>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let inner = script
        .map(|text| ReplayProvider::new(ReplayScript::parse(text, "script").unwrap(), "script"));
    let provider: Arc<dyn Provider> = Arc::new(Counting { inner, requests: Arc::clone(&requests) });
    let factory: ProviderFactory =
        Arc::new(move |_choice: &ProviderChoice| Ok(Arc::clone(&provider)));
    let store =
        taskflow_store_sqlite::open(dir.path().join("flows.db"), &OpenOptions::default()).unwrap();
    let options =
        EngineOptions { cancel_poll: Duration::from_millis(50), ..EngineOptions::default() };
    let engine = Engine::new(store.bind("alice").unwrap(), Actions::builtin(), options)
        .with_providers(factory);
    Bench { _dir: dir, engine, requests }
}

fn spec(max_turns: u32) -> AgentSpec {
    AgentSpec {
        name: "what is left".into(),
        prompt: "What is left to do in this project?".into(),
        system: None,
        provider: ProviderChoice { provider: "replay".into(), ..ProviderChoice::default() },
        tools: vec![],
        workspace: example("workspace"),
        allowed_commands: vec![],
        max_turns,
        max_tokens: None,
        temperature: None,
    }
}

async fn run(bench: &Bench, spec: &AgentSpec) -> Flow {
    let flow = bench.engine.create_agent(spec, None).await.unwrap();
    bench.engine.run(&flow.id).await.unwrap()
}

/// The journal as (name, kind, status).
async fn journal(bench: &Bench, flow: &Flow) -> Vec<(String, StepKind, StepStatus)> {
    let steps = bench.engine.handle().steps(&flow.id).unwrap();
    steps.into_iter().map(|step| (step.name, step.kind, step.status)).collect()
}

fn step(name: &str, kind: StepKind) -> (String, StepKind, StepStatus) {
    (name.to_owned(), kind, StepStatus::Succeeded)
}

#[tokio::test]
async fn every_turn_and_tool_call_is_a_step() {
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    let bench = bench(Some(&script));
    let flow = run(&bench, &spec(10)).await;
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let answer = flow.state.as_ref().unwrap()["answer"].as_str().unwrap().to_owned();
    assert!(answer.starts_with("Three things are left in Lighthouse:"), "{answer}");
    assert_eq!(
        journal(&bench, &flow).await,
        [
            step("llm 1", StepKind::Llm),
            step("tool 1/functions.list_dir:0", StepKind::Tool),
            step("llm 2", StepKind::Llm),
            step("tool 2/functions.read_file:1", StepKind::Tool),
            step("tool 2/functions.read_file:2", StepKind::Tool),
            step("llm 3", StepKind::Llm),
        ]
    );
    assert_eq!(bench.requests.load(Ordering::SeqCst), 3);
    let steps = bench.engine.handle().steps(&flow.id).unwrap();
    let first_turn = steps[0].output.as_ref().unwrap();
    assert_eq!(first_turn["usage"]["prompt_tokens"], 412);
    assert!(first_turn["raw_content"].as_str().unwrap().contains("<|tool_call_begin|>"));
    let readme = steps[3].output.as_ref().unwrap();
    assert_eq!(readme["is_error"], false);
    assert!(readme["content"].as_str().unwrap().starts_with("# Lighthouse"));
    // The last request carried the whole conversation, tool results paired with Kimi's ids.
    let last_request = &steps[5].input.as_ref().unwrap()["request"]["messages"];
    let tool_ids: Vec<&str> = last_request
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["role"] == "tool")
        .map(|message| message["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        tool_ids,
        ["functions.list_dir:0", "functions.read_file:1", "functions.read_file:2"]
    );
}

#[tokio::test]
async fn a_resume_sends_no_checkpointed_request_again() {
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    let bench = bench(Some(&script));
    let done = run(&bench, &spec(10)).await;
    assert_eq!(bench.requests.load(Ordering::SeqCst), 3);
    // A copy of the journal up to the second turn's first tool call, run on from there.
    let fork = bench.engine.fork(&done.id, 4).await.unwrap();
    let resumed = bench.engine.run(&fork.id).await.unwrap();
    assert_eq!(resumed.status, FlowStatus::Succeeded);
    assert_eq!(resumed.state, done.state, "the same answer");
    assert_eq!(bench.requests.load(Ordering::SeqCst), 4, "only the third turn was asked for");
    let names: Vec<String> =
        journal(&bench, &resumed).await.into_iter().map(|(name, ..)| name).collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[tokio::test]
async fn malformed_calls_are_answered_not_run() {
    let script = r#"
[[turn]]
text = """<|tool_calls_section_begin|><|tool_call_begin|>functions.delete_everything:0<|tool_call_argument_begin|>{}<|tool_call_end|><|tool_call_begin|>functions.read_file:1<|tool_call_argument_begin|>{"path": <|tool_call_end|><|tool_call_begin|>functions.read_file:2<|tool_call_argument_begin|>{"path": "../../etc/passwd"}<|tool_call_end|><|tool_call_begin|>functions.read_file:3<|tool_call_argument_begin|>{"file": "README.md"}<|tool_call_end|><|tool_calls_section_end|>"""

[[turn]]
content = "I could not read anything."
"#;
    let bench = bench(Some(script));
    let flow = run(&bench, &spec(5)).await;
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let steps = bench.engine.handle().steps(&flow.id).unwrap();
    let results: Vec<(bool, String)> = steps
        .iter()
        .filter(|step| step.kind == StepKind::Tool)
        .map(|step| {
            let output = step.output.as_ref().unwrap();
            (output["is_error"] == true, output["content"].as_str().unwrap().to_owned())
        })
        .collect();
    let expected = [
        "there is no tool `delete_everything`",
        "the call could not be read (invalid_arguments",
        "goes up with `..`",
        "unknown field `file`",
    ];
    assert_eq!(results.len(), expected.len());
    for ((is_error, content), expected) in results.iter().zip(expected) {
        assert!(is_error, "{content}");
        assert!(content.contains(expected), "{content:?} lacks {expected:?}");
    }
    // The model saw every one of them as a tool result.
    let request = &steps.last().unwrap().input.as_ref().unwrap()["request"]["messages"];
    let tool_messages = request.as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
    assert_eq!(tool_messages, 4);
}

#[tokio::test]
async fn a_call_without_a_name_gets_the_model_another_turn() {
    let script = r#"
[[turn]]
text = """<|tool_calls_section_begin|><|tool_call_begin|>{{ id }}<|tool_call_argument_begin|>{"path": "."}<|tool_call_end|><|tool_calls_section_end|>"""

[[turn]]
content = "Nothing is left."
"#;
    let bench = bench(Some(script));
    let flow = run(&bench, &spec(5)).await;
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let steps = bench.engine.handle().steps(&flow.id).unwrap();
    assert!(steps.iter().all(|step| step.kind == StepKind::Llm), "no tool step ran");
    assert_eq!(steps.len(), 2);
    let request = &steps[1].input.as_ref().unwrap()["request"]["messages"];
    let last = request.as_array().unwrap().last().unwrap();
    assert_eq!(last["role"], "user");
    assert!(last["content"].as_str().unwrap().contains("invalid_id"), "{last}");
}

#[tokio::test]
async fn the_turn_limit_ends_the_run_with_a_clear_error() {
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    let bench = bench(Some(&script));
    let flow = run(&bench, &spec(1)).await;
    assert_eq!(flow.status, FlowStatus::Failed);
    assert_eq!(
        flow.error.as_deref(),
        Some("the agent used its 1 turns (--max-turns) without a final answer")
    );
    assert_eq!(bench.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_cancel_stops_a_turn_in_flight() {
    let bench = bench(None);
    let flow = bench.engine.create_agent(&spec(5), None).await.unwrap();
    let engine = bench.engine.clone();
    let id = flow.id.clone();
    let running = tokio::spawn(async move { engine.run(&id).await });
    while bench.requests.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bench.engine.cancel(&flow.id).await.unwrap();
    let ended =
        tokio::time::timeout(Duration::from_secs(5), running).await.unwrap().unwrap().unwrap();
    assert_eq!(ended.status, FlowStatus::Cancelled);
    assert_eq!(
        journal(&bench, &ended).await,
        [("llm 1".to_owned(), StepKind::Llm, StepStatus::Cancelled)]
    );
}

#[tokio::test]
async fn a_bad_workspace_or_tool_is_refused_before_anything_runs() {
    let bench = bench(Some("[[turn]]\ncontent = \"x\"\n"));
    let mut missing = spec(3);
    missing.workspace = example("no-such-folder");
    let error = bench.engine.create_agent(&missing, None).await.unwrap_err().to_string();
    assert!(error.contains("cannot be used"), "{error}");
    let mut unknown = spec(3);
    unknown.tools = vec!["teleport".into()];
    let error = bench.engine.create_agent(&unknown, None).await.unwrap_err().to_string();
    assert!(error.contains("there is no agent tool `teleport`"), "{error}");
}

#[tokio::test]
async fn calls_numbered_by_position_get_their_own_steps_in_each_turn() {
    let script = r#"
format = "hermes"

[[turn]]
text = """<tool_call>{"name": "list_dir", "arguments": {"path": "."}}</tool_call>"""

[[turn]]
text = """<tool_call>{"name": "read_file", "arguments": {"path": "README.md"}}</tool_call>"""

[[turn]]
content = "Read it."
"#;
    let bench = bench(Some(script));
    let flow = run(&bench, &spec(5)).await;
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    assert_eq!(
        journal(&bench, &flow).await,
        [
            step("llm 1", StepKind::Llm),
            step("tool 1/call_0", StepKind::Tool),
            step("llm 2", StepKind::Llm),
            step("tool 2/call_0", StepKind::Tool),
            step("llm 3", StepKind::Llm),
        ]
    );
}

//! Agent runs on a real store with recorded model turns: each turn and each tool call a
//! checkpointed step, a resume that sends no checkpointed request again, malformed calls
//! answered to the model (and calls that could not be read at all), the turn limit, a turn cut
//! while it streams asked for again, and cancel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use taskflow_engine::agent::{AgentSpec, ProviderChoice, ProviderFactory};
use taskflow_engine::{Actions, Engine, EngineOptions, Flow, FlowStatus, StepKind, StepStatus};
use taskflow_providers::{
    ChatRequest, ChatResponse, ChatStream, Provider, ProviderError, ReplayProvider, ReplayScript,
};
use taskflow_store_sqlite::OpenOptions;

fn example(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent").join(path)
}

/// Leases short enough that a test can wait for one to expire.
const LEASE_TTL: Duration = Duration::from_millis(500);

/// A provider that counts the requests it gets and keeps each as the JSON it was, then answers
/// from a replay script (or never, when it has none, or from turn `hang_at` on).
#[derive(Debug)]
struct Counting {
    inner: Option<ReplayProvider>,
    requests: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<String>>>,
    hang_at: Option<usize>,
}

impl Counting {
    /// Counts and keeps `request`; whether to answer it.
    fn take(&self, request: &ChatRequest) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.sent.lock().unwrap().push(serde_json::to_string(request).unwrap());
        self.hang_at.is_none_or(|turn| request.assistant_turns() + 1 < turn)
    }
}

#[async_trait::async_trait]
impl Provider for Counting {
    fn name(&self) -> &str {
        "counting"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        match (&self.inner, self.take(request)) {
            (Some(inner), true) => inner.complete(request).await,
            _ => std::future::pending().await,
        }
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        match (&self.inner, self.take(request)) {
            (Some(inner), true) => inner.stream(request).await,
            _ => std::future::pending().await,
        }
    }
}

struct Bench {
    _dir: Option<tempfile::TempDir>,
    engine: Engine,
    requests: Arc<AtomicUsize>,
    sent: Arc<Mutex<Vec<String>>>,
}

impl Bench {
    /// The requests sent, as JSON, oldest first.
    fn sent(&self) -> Vec<String> {
        self.sent.lock().unwrap().clone()
    }

    /// The messages of the last request sent.
    fn last_messages(&self) -> Vec<Value> {
        let last: Value = serde_json::from_str(self.sent().last().unwrap()).unwrap();
        last["messages"].as_array().unwrap().clone()
    }
}

fn bench(script: Option<&str>) -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let mut bench = bench_at(dir.path(), script, None);
    bench._dir = Some(dir);
    bench
}

/// A bench on the database in `dir`, whose provider hangs from turn `hang_at` on.
fn bench_at(dir: &Path, script: Option<&str>, hang_at: Option<usize>) -> Bench {
    let requests = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let inner = script
        .map(|text| ReplayProvider::new(ReplayScript::parse(text, "script").unwrap(), "script"));
    let provider: Arc<dyn Provider> = Arc::new(Counting {
        inner,
        requests: Arc::clone(&requests),
        sent: Arc::clone(&sent),
        hang_at,
    });
    let factory: ProviderFactory =
        Arc::new(move |_choice: &ProviderChoice| Ok(Arc::clone(&provider)));
    let store = taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap();
    let options = EngineOptions {
        cancel_poll: Duration::from_millis(50),
        lease_ttl: LEASE_TTL,
        ..EngineOptions::default()
    };
    let engine = Engine::new(store.bind("alice").unwrap(), Actions::builtin(), options)
        .with_providers(factory);
    Bench { _dir: None, engine, requests, sent }
}

fn spec(max_turns: u32) -> AgentSpec {
    AgentSpec {
        name: "what is left".into(),
        prompt: "What is left to do in this project?".into(),
        system: None,
        provider: ProviderChoice { provider: "replay".into(), ..ProviderChoice::default() },
        tools: vec![],
        workspace: example("workspace"),
        mcp: vec![],
        allowed_commands: vec![],
        max_turns,
        max_tokens: None,
        temperature: None,
        approvals: Default::default(),
        budget: Default::default(),
        price: None,
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
    let last_request = bench.last_messages();
    let tool_ids: Vec<&str> = last_request
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_turn_in_flight_is_asked_again_exactly_as_before_from_a_journal_without_its_copy() {
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The third turn never comes back: the run is dropped there, its step left running.
    let first = bench_at(dir.path(), Some(&script), Some(3));
    let flow = first.engine.create_agent(&spec(10), None).await.unwrap();
    let (engine, id) = (first.engine.clone(), flow.id.clone());
    let run = tokio::spawn(async move { engine.run(&id).await });
    while first.requests.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.abort();
    let _ = run.await;
    let asked = first.sent();
    let steps = first.engine.handle().steps(&flow.id).unwrap();
    let third = steps.last().unwrap();
    assert_eq!((third.name.as_str(), third.status), ("llm 3", StepStatus::Running));
    let input = third.input.as_ref().unwrap();
    assert!(input.get("request").is_none(), "the journal holds no copy of the conversation");
    assert_eq!(input["messages"], 6, "{input}");

    // Another runner takes over once the lease expires and asks the third turn again: the
    // request rebuilt from the journal is the one sent before, byte for byte.
    tokio::time::sleep(LEASE_TTL + Duration::from_millis(100)).await;
    let second = bench_at(dir.path(), Some(&script), None);
    let done = second.engine.run(&flow.id).await.unwrap();
    assert_eq!(done.status, FlowStatus::Succeeded, "{:?}", done.error);
    assert_eq!(second.sent(), [asked[2].clone()]);
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
    let request = bench.last_messages();
    let tool_messages = request.iter().filter(|m| m["role"] == "tool").count();
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
    // The second turn's request ends with the note of why the first turn was no answer.
    let request = bench.last_messages();
    let last = request.last().unwrap();
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

#[tokio::test]
async fn a_spent_budget_blocks_before_the_next_call_and_a_raise_lets_the_run_finish() {
    use taskflow_engine::agent::{Budget, Price};
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    // The script's turns use 443, 578 and 769 tokens (412 + 31 of them the first turn's).
    let price = Price { input_per_mtok: 1.0, output_per_mtok: 4.0 };
    for (budget, raise, calls_made, reason) in [
        (
            Budget { max_tokens: Some(1_000), max_cost: None },
            Budget { max_tokens: Some(5_000), max_cost: None },
            2,
            "the token budget is spent: 1021 tokens used of 1000; `taskflow flows resume",
        ),
        (
            Budget { max_tokens: None, max_cost: Some(0.0005) },
            Budget { max_tokens: None, max_cost: Some(0.01) },
            1,
            "the cost budget is spent: $0.0005 used of $0.0005",
        ),
    ] {
        let bench = bench(Some(&script));
        let spec = AgentSpec { budget, price: Some(price), ..spec(10) };
        let blocked = run(&bench, &spec).await;
        assert_eq!(blocked.status, FlowStatus::Blocked, "{budget:?}");
        let error = blocked.error.clone().unwrap();
        assert!(error.contains(reason), "{error}");
        assert!(error.contains(&blocked.id.to_string()), "{error}");
        assert!(blocked.lease.is_none());
        // No model call past the budget: the journal ends with the tool calls of the last turn.
        assert_eq!(bench.requests.load(Ordering::SeqCst), calls_made);
        let llm_steps = journal(&bench, &blocked)
            .await
            .into_iter()
            .filter(|(_, kind, _)| *kind == StepKind::Llm)
            .count();
        assert_eq!(llm_steps, calls_made);
        // A raise is a revision of the flow's state; the run goes on from its journal.
        bench.engine.raise_budget(&blocked.id, raise).await.unwrap();
        let history = bench.engine.handle().history(&blocked.id).unwrap();
        assert!(history.iter().any(|revision| {
            revision
                .change
                .iter()
                .any(|change| change.field == "state" && change.after["budget"].is_object())
        }));
        let done = bench.engine.run(&blocked.id).await.unwrap();
        assert_eq!(done.status, FlowStatus::Succeeded, "{:?}", done.error);
        assert_eq!(done.error, None);
        assert_eq!(bench.requests.load(Ordering::SeqCst), 3);
    }
}

#[tokio::test]
async fn a_cost_budget_without_the_models_price_is_refused_before_any_call() {
    use taskflow_engine::agent::Budget;
    let bench = bench(None);
    let spec = AgentSpec { budget: Budget { max_tokens: None, max_cost: Some(1.0) }, ..spec(3) };
    let error = bench.engine.create_agent(&spec, None).await.unwrap_err().to_string();
    assert!(error.contains("a cost budget needs the price of model"), "{error}");
    assert_eq!(bench.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_budget_is_raised_on_a_failed_run_too_and_a_pipelines_cost_needs_its_prices() {
    use taskflow_engine::agent::{Budget, Price, StepModel};
    let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
    let bench = bench(Some(&script));
    let failed = run(&bench, &spec(1)).await;
    assert_eq!(failed.status, FlowStatus::Failed);
    let raise = Budget { max_tokens: Some(10_000), max_cost: None };
    let raised = bench.engine.raise_budget(&failed.id, raise).await.unwrap();
    assert_eq!(raised.status, FlowStatus::Queued);
    assert_eq!(raised.state.unwrap()["budget"], serde_json::json!({"max_tokens": 10_000}));
    let llm = taskflow_engine::StepSpec::new("a", "llm").with(serde_json::json!({"prompt": "x"}));
    let unpriced = taskflow_engine::FlowSpec::new("p").step(llm);
    let pipeline = bench.engine.create(&unpriced, None).await.unwrap();
    let raised = bench.engine.raise_budget(&pipeline.id, raise).await.unwrap();
    assert_eq!(raised.state.unwrap()["budget"], serde_json::json!({"max_tokens": 10_000}));
    let cost = Budget { max_tokens: None, max_cost: Some(1.0) };
    let error = bench.engine.raise_budget(&pipeline.id, cost).await.unwrap_err();
    assert!(error.to_string().contains("step `a`: a cost budget needs the price"), "{error}");
    // Started with the price of its step's model, a pipeline's cost limit can be raised.
    let mut priced = unpriced.clone();
    let price = Price { input_per_mtok: 1.0, output_per_mtok: 2.0 };
    priced.prices.insert("a".into(), StepModel { model: "m".into(), price: Some(price) });
    let pipeline = bench.engine.create(&priced, None).await.unwrap();
    let raised = bench.engine.raise_budget(&pipeline.id, cost).await.unwrap();
    assert_eq!(raised.state.unwrap()["budget"], serde_json::json!({"max_cost": 1.0}));
}

/// Plays the model from a script, but cuts the answers of its first `cuts` requests after their
/// first event, as a dropped connection does (or, with `transient: false`, answers them with a
/// failure that does not pass).
#[derive(Debug)]
struct Cutting {
    inner: ReplayProvider,
    cuts: AtomicUsize,
    transient: bool,
    requests: AtomicUsize,
}

#[async_trait::async_trait]
impl Provider for Cutting {
    fn name(&self) -> &str {
        "cutting"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.inner.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        use futures_util::StreamExt;
        self.requests.fetch_add(1, Ordering::SeqCst);
        let stream = self.inner.stream(request).await?;
        let cut = self.cuts.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        if cut.is_err() {
            return Ok(stream);
        }
        let kind = if self.transient {
            taskflow_providers::ErrorKind::Interrupted
        } else {
            taskflow_providers::ErrorKind::BadResponse
        };
        let failure = ProviderError::new(kind, "the stream ended before the answer was complete");
        Ok(Box::pin(stream.take(1).chain(futures_util::stream::iter([Err(failure)]))))
    }
}

/// An engine of alice's in `dir` whose every model is `provider`.
fn engine_of(dir: &Path, provider: Arc<dyn Provider>) -> Engine {
    let factory: ProviderFactory = Arc::new(move |_: &ProviderChoice| Ok(Arc::clone(&provider)));
    let store = taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap();
    Engine::new(store.bind("alice").unwrap(), Actions::builtin(), EngineOptions::default())
        .with_providers(factory)
}

/// A model server that cannot be reached: its answer never begins.
#[derive(Debug, Default)]
struct Unreachable {
    requests: AtomicUsize,
}

#[async_trait::async_trait]
impl Provider for Unreachable {
    fn name(&self) -> &str {
        "unreachable"
    }

    async fn complete(&self, _: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        unreachable!("an agent streams its turns")
    }

    async fn stream(&self, _: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Err(ProviderError::new(taskflow_providers::ErrorKind::Connect, "connection refused"))
    }
}

/// A failure before the answer begins was the provider's to try again (it does, by its own
/// policy): the turn is not asked for again on top of it, and the run fails with it.
#[tokio::test]
async fn a_turn_whose_answer_never_began_is_not_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(Unreachable::default());
    let engine = engine_of(dir.path(), provider.clone());
    let flow = engine.create_agent(&spec(3), None).await.unwrap();
    let ended = engine.run(&flow.id).await.unwrap();
    assert_eq!(ended.status, FlowStatus::Failed);
    assert!(ended.error.as_deref().unwrap().contains("connection refused"), "{:?}", ended.error);
    assert_eq!(provider.requests.load(Ordering::SeqCst), 1);
}

/// A turn whose answer is cut while it streams by a failure that may pass is asked for again,
/// up to three times, and nothing of a cut answer is kept; a failure that does not pass fails
/// the run at once.
#[tokio::test]
async fn a_turn_cut_while_it_streams_is_asked_for_again() {
    let script = "[[turn]]\ncontent = \"Nothing is left.\"\n";
    // (cuts, transient, requests made, how the run ends)
    let cases = [
        (1, true, 2, FlowStatus::Succeeded),
        (2, true, 3, FlowStatus::Succeeded),
        (3, true, 3, FlowStatus::Failed),
        (1, false, 1, FlowStatus::Failed),
    ];
    for (cuts, transient, requests, status) in cases {
        let dir = tempfile::tempdir().unwrap();
        let provider = Arc::new(Cutting {
            inner: ReplayProvider::new(ReplayScript::parse(script, "script").unwrap(), "script"),
            cuts: AtomicUsize::new(cuts),
            transient,
            requests: AtomicUsize::new(0),
        });
        let engine = engine_of(dir.path(), provider.clone());
        let flow = engine.create_agent(&spec(3), None).await.unwrap();
        let ended = engine.run(&flow.id).await.unwrap();
        let label = format!("{cuts} cut(s), transient {transient}");
        assert_eq!(ended.status, status, "{label}: {:?}", ended.error);
        assert_eq!(provider.requests.load(Ordering::SeqCst), requests, "{label}");
        let steps = engine.handle().steps(&flow.id).unwrap();
        assert_eq!(steps.len(), 1, "{label}: one turn, one step");
        if status == FlowStatus::Succeeded {
            assert_eq!(ended.state.unwrap()["answer"], "Nothing is left.", "{label}");
        }
    }
}

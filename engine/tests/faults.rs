//! The fault matrix: a pipeline run and an agent run, each with each storage fault (a full disk, an I/O error, a write
//! kept but reported failed, a panic mid-write) at every write position of the run. After each
//! faulty run: the flow is ended, or no lease is left on it (nothing says "running" for a run
//! that stopped); a resume on the healthy store finishes it with the outputs of a clean run; and
//! no step whose success was committed before the fault runs again.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use taskflow_engine::agent::{AgentSpec, ProviderChoice, ProviderFactory};
use taskflow_engine::{
    Actions, Engine, EngineOptions, FlowId, FlowSpec, FlowStatus, StepContext, StepSpec,
    StepStatus, TaskFlow, Timestamp,
};
use taskflow_providers::{
    ChatRequest, ChatResponse, ChatStream, Provider, ProviderError, ReplayProvider, ReplayScript,
};
use taskflow_store::FlowStore;
use taskflow_store::faults::{Fault, FaultyStore};
use taskflow_store_sqlite::{OpenOptions, SqliteStore};

const OWNER: &str = "alice";

fn options() -> EngineOptions {
    EngineOptions {
        kill_grace: Duration::from_millis(100),
        lease_ttl: Duration::from_millis(500),
        ..EngineOptions::default()
    }
}

/// Calls of the `work` action per step name, across every run of a test.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u32>>>);

impl Calls {
    fn actions(&self) -> Actions {
        let mut actions = Actions::builtin();
        let calls = self.0.clone();
        actions.register("work", move |input: Value, context: StepContext| {
            let calls = calls.clone();
            async move {
                *calls.lock().unwrap().entry(context.step.clone()).or_default() += 1;
                Ok(json!({ "step": context.step, "input": input }))
            }
        });
        actions
    }

    fn of(&self, step: &str) -> u32 {
        self.0.lock().unwrap().get(step).copied().unwrap_or(0)
    }

    /// The recorded model turns of `examples/agent`, each request counted as a call of the
    /// turn it asks for (`llm N`, N = the assistant turns it holds + 1).
    fn providers(&self) -> ProviderFactory {
        let script = std::fs::read_to_string(example("kimi-turns.toml")).unwrap();
        let replay = ReplayProvider::new(ReplayScript::parse(&script, "script").unwrap(), "script");
        let provider: Arc<dyn Provider> = Arc::new(CountingTurns { replay, calls: self.clone() });
        Arc::new(move |_choice: &ProviderChoice| Ok(Arc::clone(&provider)))
    }

    fn count_turn(&self, request: &ChatRequest) {
        let turn = format!("llm {}", request.assistant_turns() + 1);
        *self.0.lock().unwrap().entry(turn).or_default() += 1;
    }
}

#[derive(Debug)]
struct CountingTurns {
    replay: ReplayProvider,
    calls: Calls,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Calls").field(&self.0.lock().unwrap()).finish()
    }
}

#[async_trait::async_trait]
impl Provider for CountingTurns {
    fn name(&self) -> &str {
        "counting turns"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        self.calls.count_turn(request);
        self.replay.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        self.calls.count_turn(request);
        self.replay.stream(request).await
    }
}

fn example(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/agent").join(path)
}

/// What runs under the faults.
#[derive(Debug, Clone, Copy)]
enum Workload {
    Pipeline,
    /// Three recorded model turns with three tool calls between them (six steps).
    Agent,
}

fn agent_spec() -> AgentSpec {
    AgentSpec {
        name: "what is left".into(),
        prompt: "What is left to do in this project?".into(),
        system: None,
        provider: ProviderChoice { provider: "replay".into(), ..ProviderChoice::default() },
        tools: vec![],
        workspace: example("workspace"),
        mcp: vec![],
        allowed_commands: vec![],
        max_turns: 10,
        max_tokens: None,
        temperature: None,
        approvals: Default::default(),
        budget: Default::default(),
        price: None,
    }
}

/// `a` → `b` → `c` → `d`, each reading the output before it (one step at a time, so a run
/// makes the same writes in the same order every time).
fn spec() -> FlowSpec {
    let mut spec = FlowSpec::new("faulty").step(StepSpec::new("a", "work").with(json!({ "n": 1 })));
    for (step, before) in [("b", "a"), ("c", "b"), ("d", "c")] {
        let from = format!("{{{{steps.{before}.output}}}}");
        spec = spec.step(StepSpec::new(step, "work").with(json!({ "from": from })).needs([before]));
    }
    spec
}

fn sqlite(dir: &Path) -> Arc<dyn FlowStore> {
    Arc::new(SqliteStore::open(dir.join("flows.db"), &OpenOptions::default()).unwrap())
}

fn engine(store: Arc<dyn FlowStore>, calls: &Calls) -> Engine {
    Engine::new(TaskFlow::new(store).bind(OWNER).unwrap(), calls.actions(), options())
        .with_providers(calls.providers())
}

/// Each step's output, by name.
fn outputs(store: &Arc<dyn FlowStore>, id: &FlowId) -> BTreeMap<String, Value> {
    let steps = store.steps(OWNER, id).unwrap();
    steps
        .into_iter()
        .filter(|step| step.status == StepStatus::Succeeded)
        .map(|step| (step.name, step.output.unwrap_or(Value::Null)))
        .collect()
}

/// Creates the flow on the healthy store and runs it through `store`; the run's result, or
/// `Err` when it panicked.
async fn run_through(
    workload: Workload,
    healthy: &Arc<dyn FlowStore>,
    store: Arc<dyn FlowStore>,
    calls: &Calls,
) -> (FlowId, Result<(), String>) {
    let creator = engine(healthy.clone(), calls);
    let flow = match workload {
        Workload::Pipeline => creator.create(&spec(), None).await.unwrap(),
        Workload::Agent => creator.create_agent(&agent_spec(), None).await.unwrap(),
    };
    let runner = engine(store, calls);
    let id = flow.id.clone();
    let run = tokio::spawn(async move { runner.run(&id).await });
    let result = match run.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => Err(error.to_string()),
        Err(join) if join.is_panic() => Err("panicked".to_owned()),
        Err(join) => Err(join.to_string()),
    };
    (flow.id, result)
}

/// Runs `workload` under every fault at every write position; returns the number of faulty
/// runs.
async fn matrix(workload: Workload, steps: usize) -> usize {
    // The clean run: its outputs, and how many writes it makes.
    let dir = tempfile::tempdir().unwrap();
    let healthy = sqlite(dir.path());
    let counting = Arc::new(FaultyStore::counting(healthy.clone()));
    let calls = Calls::default();
    let (id, result) = run_through(workload, &healthy, counting.clone(), &calls).await;
    assert_eq!(result, Ok(()));
    let expected = outputs(&healthy, &id);
    assert_eq!(expected.len(), steps, "{expected:?}");
    let writes = counting.writes();
    assert!(writes > steps, "a run of {steps} steps writes more than {writes} times");

    let mut cases = 0;
    for fault in Fault::ALL {
        for at in 1..=writes {
            let dir = tempfile::tempdir().unwrap();
            let healthy = sqlite(dir.path());
            let faulty = Arc::new(FaultyStore::new(healthy.clone(), fault, at));
            let calls = Calls::default();
            let (id, result) = run_through(workload, &healthy, faulty.clone(), &calls).await;
            let case = format!("{workload:?}: {fault:?} at write {at} of {writes}");
            assert!(faulty.fired(), "{case}: the fault never happened");

            // Nothing says "running" for a run that stopped.
            let flow = healthy.flow(OWNER, &id).unwrap();
            if !flow.status.is_terminal() {
                assert!(result.is_err(), "{case}: the run ended well but left {flow:?}");
                // A refused write leaves no lease behind. A lease can outlive the run only
                // where the runner cannot know it holds one (its grant was kept but reported
                // failed) or where the runner itself died mid-write (a panic); it then expires
                // and the flow is adopted as stalled.
                let may_keep_lease = matches!(fault, Fault::Unacknowledged | Fault::Panic);
                assert!(
                    flow.lease.is_none() || may_keep_lease,
                    "{case}: a stopped run left its lease: {flow:?}"
                );
                // A run that got its lease and then hit a refused write says why; one refused
                // its lease never started.
                if let Fault::Refused(_) = fault
                    && flow.status != FlowStatus::Queued
                {
                    assert_eq!(flow.status, FlowStatus::Blocked, "{case}");
                    assert!(flow.error.is_some(), "{case}: the cause is recorded");
                }
            }

            // What was committed done before the fault is never run again.
            let done_before = outputs(&healthy, &id);
            let calls_before: BTreeMap<String, u32> =
                done_before.keys().map(|step| (step.clone(), calls.of(step))).collect();
            if !flow.status.is_terminal() {
                // The lease was released, or a panicked run's expires.
                tokio::time::sleep(if flow.lease.is_some() {
                    options().lease_ttl
                } else {
                    Duration::ZERO
                })
                .await;
                let resumed = engine(healthy.clone(), &calls).run(&id).await;
                assert!(resumed.is_ok(), "{case}: resume failed: {resumed:?}");
            }
            let flow = healthy.flow(OWNER, &id).unwrap();
            assert_eq!(flow.status, FlowStatus::Succeeded, "{case}");
            assert_eq!(outputs(&healthy, &id), expected, "{case}: the same result");
            for (step, before) in calls_before {
                assert_eq!(
                    calls.of(&step),
                    before,
                    "{case}: `{step}` ran again after its success was committed"
                );
            }
            cases += 1;
        }
    }
    println!(
        "fault matrix, {workload:?}: {} faults × {writes} write positions = {cases} faulty runs",
        Fault::ALL.len()
    );
    cases
}

/// Injected panics are expected here: keep their messages out of the test's output.
fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|message| message.starts_with("injected panic"));
        if !injected {
            default(info);
        }
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_at_any_write_of_a_pipeline_loses_nothing_reruns_no_finished_step() {
    quiet_injected_panics();
    assert!(matrix(Workload::Pipeline, 4).await >= 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_at_any_write_of_an_agent_run_loses_nothing_repeats_no_finished_turn() {
    quiet_injected_panics();
    assert!(matrix(Workload::Agent, 6).await >= 24);
}

/// A database that stops taking writes (a network split, a server that answers nothing) stops
/// the renewals of a run's lease. The run kills its steps' processes before the lease expires,
/// though it is itself waiting on the database, so that a runner taking the flow over then
/// never runs a step beside them; that runner finishes the flow, the step run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_lease_is_not_renewed_kills_its_steps_before_the_lease_expires() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = sqlite(dir.path());
    let faulty = Arc::new(FaultyStore::counting(healthy.clone()));
    let options = EngineOptions {
        kill_grace: Duration::from_millis(100),
        lease_ttl: Duration::from_secs(2),
        ..EngineOptions::default()
    };
    let engine = |store: Arc<dyn FlowStore>| {
        Engine::new(TaskFlow::new(store).bind(OWNER).unwrap(), Actions::builtin(), options.clone())
    };
    // The first attempt beats (the time, in ms) into a file until it is killed; a later one
    // ends at once.
    let beats = dir.path().join("beats");
    let command = format!(
        "test $TASKFLOW_ATTEMPT -gt 1 && exit 0; \
         while true; do date +%s%3N >> {}; sleep 0.02; done",
        beats.display()
    );
    let step = StepSpec::new("beat", "shell")
        .with(json!({ "command": command }))
        .retry(taskflow_engine::RetryPolicy::never());
    let spec = FlowSpec::new("beating").step(step);
    let flow = engine(healthy.clone()).create(&spec, None).await.unwrap();
    let runner = engine(faulty.clone());
    let id = flow.id.clone();
    let run = tokio::spawn(async move { runner.run(&id).await });
    let last_beat = || {
        let text = std::fs::read_to_string(&beats).unwrap_or_default();
        text.lines().filter_map(|line| line.trim().parse::<i64>().ok()).next_back()
    };
    while last_beat().is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    // Writes go on when the test ends, passed or not: a write left waiting would keep the
    // runtime from shutting down.
    struct Unstall(Arc<FaultyStore>);
    impl Drop for Unstall {
        fn drop(&mut self) {
            self.0.stall(false);
        }
    }
    faulty.stall(true);
    let unstall = Unstall(faulty.clone());
    // Past the lease's expiry (a renewal under way when the writes stopped may still move it),
    // the beats have stopped before it.
    let lease = || healthy.flow(OWNER, &flow.id).unwrap().lease.unwrap().expires_at;
    loop {
        let left = lease().as_millis() - Timestamp::now().as_millis();
        if left < -500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(left.clamp(50, 500).unsigned_abs())).await;
    }
    let (expires_at, last) = (lease(), last_beat().unwrap());
    assert!(last < expires_at.as_millis(), "a beat at {last}, the lease expired at {expires_at}");
    assert!(!run.is_finished(), "the run waits on the database");

    drop(unstall);
    let ended = tokio::time::timeout(Duration::from_secs(10), run).await;
    let error = ended.expect("the run stops").unwrap().unwrap_err().to_string();
    assert!(error.contains("no longer held"), "{error}");
    while healthy
        .flow(OWNER, &flow.id)
        .unwrap()
        .lease
        .is_some_and(|lease| lease.expires_at > Timestamp::now())
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let finished = engine(healthy.clone()).run(&flow.id).await.unwrap();
    assert_eq!(finished.status, FlowStatus::Succeeded, "{:?}", finished.error);
    let steps = healthy.steps(OWNER, &flow.id).unwrap();
    assert_eq!((steps.len(), steps[0].attempt), (1, 2), "{steps:?}");
}

/// Model turns that each take a while, though less than a third of the lease.
#[derive(Debug)]
struct SlowTurns(ReplayProvider);

#[async_trait::async_trait]
impl Provider for SlowTurns {
    fn name(&self) -> &str {
        "slow turns"
    }

    async fn complete(&self, request: &ChatRequest) -> Result<ChatResponse, ProviderError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.complete(request).await
    }

    async fn stream(&self, request: &ChatRequest) -> Result<ChatStream, ProviderError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.stream(request).await
    }
}

/// An agent run of many short turns (each a fiftieth of the lease, a timer that started again
/// with each would never renew it), twice as long as its lease, keeps the lease live from its
/// first turn to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_run_of_short_turns_keeps_its_lease_live_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = sqlite(dir.path());
    let turn = r#"[[turn]]
text = """Looking.<|tool_calls_section_begin|><|tool_call_begin|>functions.list_dir:N<|tool_call_argument_begin|>{"path": "."}<|tool_call_end|><|tool_calls_section_end|>"""
"#;
    let mut script = String::from("format = \"kimi\"\n");
    for n in 0..100 {
        script += &turn.replace(":N", &format!(":{n}"));
    }
    script += "[[turn]]\ntext = \"Done.\"\n";
    let replay = ReplayProvider::new(ReplayScript::parse(&script, "script").unwrap(), "script");
    let provider: Arc<dyn Provider> = Arc::new(SlowTurns(replay));
    let providers: ProviderFactory = Arc::new(move |_: &ProviderChoice| Ok(Arc::clone(&provider)));
    let options = EngineOptions { lease_ttl: Duration::from_millis(1500), ..options() };
    let engine =
        Engine::new(TaskFlow::new(store.clone()).bind(OWNER).unwrap(), Actions::builtin(), options)
            .with_providers(providers);
    let spec = AgentSpec { max_turns: 110, ..agent_spec() };
    let flow = engine.create_agent(&spec, None).await.unwrap();
    let id = flow.id.clone();
    let started = std::time::Instant::now();
    let run = tokio::spawn(async move { engine.run(&id).await });
    let mut seen = 0;
    while !run.is_finished() {
        let now = Timestamp::now();
        let flow = store.flow(OWNER, &flow.id).unwrap();
        if flow.status == FlowStatus::Running
            && let Some(lease) = flow.lease
        {
            assert!(
                lease.expires_at > now,
                "the lease expired at {} while the run went on",
                lease.expires_at
            );
            seen += 1;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let ended = run.await.unwrap().unwrap_or_else(|error| panic!("the run stopped: {error}"));
    assert_eq!(ended.status, FlowStatus::Succeeded, "{:?}", ended.error);
    assert!(seen > 10, "the run was watched while it ran ({seen} looks)");
    let took = started.elapsed();
    assert!(took > Duration::from_millis(3000), "the run outlasted its lease twice ({took:?})");
}

/// A store that takes no writes for a while under a process that runs flows for long (serve, a
/// worker): the run it stopped could not give its lease back then, and gives it back once the
/// store takes writes again, so the flow is run again at once, not when its lease expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_a_refused_write_kept_is_given_back_once_the_store_takes_writes_again() {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStore::counting(sqlite(dir.path())));
    let store: Arc<dyn FlowStore> = faulty.clone();
    let calls = Calls::default();
    let (started, mut step_began) = tokio::sync::mpsc::unbounded_channel();
    let mut actions = calls.actions();
    actions.register("slow", move |_: Value, _: StepContext| {
        let started = started.clone();
        async move {
            let _ = started.send(());
            tokio::time::sleep(Duration::from_millis(300)).await;
            Ok(json!("done"))
        }
    });
    // A lease far longer than the test: only its giving back lets the flow run again in time.
    let options = EngineOptions { lease_ttl: Duration::from_secs(120), ..options() };
    let engine = Engine::new(TaskFlow::new(store.clone()).bind(OWNER).unwrap(), actions, options);
    let flow = engine
        .create(&FlowSpec::new("refused").step(StepSpec::new("a", "slow")), None)
        .await
        .unwrap();
    let runs = taskflow_engine::Runs::new(TaskFlow::new(store.clone()), engine.clone(), 1);
    let failures = Arc::new(Mutex::new(Vec::new()));
    runs.on_failure({
        let failures = failures.clone();
        move |_, error, _| failures.lock().unwrap().push(error.to_string())
    });
    let sweeping = tokio::spawn({
        let runs = runs.clone();
        async move { runs.sweep(Duration::from_millis(20)).await }
    });
    step_began.recv().await.unwrap();
    faulty.read_only(true);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while failures.lock().unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the refused checkpoint failed the run");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = store.flow(OWNER, &flow.id).unwrap();
    assert!(held.lease.is_some(), "the lease could not be given back while writes are refused");
    tokio::time::sleep(Duration::from_millis(200)).await;
    faulty.read_only(false);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let now = store.flow(OWNER, &flow.id).unwrap();
        if now.status == FlowStatus::Succeeded {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the flow ran again once writes were taken: {now:?}, {:?}",
            failures.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    runs.shut_down(Duration::from_secs(1)).await;
    sweeping.await.unwrap();
}

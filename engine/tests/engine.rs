//! The engine on a real store: checkpoints and templates, custom actions, resume after a
//! runner died mid-step, retries with the same idempotency key, timeouts, cancels of real child
//! processes, concurrency limits, forks, failures, and many flows in one engine.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskflow_engine::engine::quiet;
use taskflow_engine::{
    ActionError, Actions, Engine, EngineOptions, Flow, FlowSpec, FlowStatus, LeaseHolder, NewFlow,
    NewStep, RetryPolicy, RunControl, StepContext, StepKind, StepOutcome, StepSpec, StepStatus,
    TaskFlow,
};
use taskflow_store_sqlite::OpenOptions;

fn options() -> EngineOptions {
    EngineOptions { kill_grace: Duration::from_millis(300), ..EngineOptions::default() }
}

fn open(dir: &Path) -> TaskFlow {
    taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap()
}

fn new_engine(dir: &Path, actions: Actions) -> Engine {
    Engine::new(open(dir).bind("alice").unwrap(), actions, options())
}

fn echo(id: &str, value: Value) -> StepSpec {
    StepSpec::new(id, "echo").with(json!({ "value": value }))
}

/// A custom action that counts its calls and records each context it saw.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<(String, u32, String)>>>,
}

impl Recorder {
    fn register(&self, actions: &mut Actions, name: &str) {
        let calls = Arc::clone(&self.calls);
        actions.register(name, move |input: Value, context: StepContext| {
            let calls = Arc::clone(&calls);
            async move {
                calls.lock().unwrap().push((
                    context.step.clone(),
                    context.attempt,
                    context.idempotency_key.clone(),
                ));
                Ok(json!({ "seen": input, "step": context.step }))
            }
        });
    }

    fn steps(&self) -> Vec<String> {
        self.calls.lock().unwrap().iter().map(|(step, _, _)| step.clone()).collect()
    }
}

fn outputs(engine: &Engine, flow: &Flow) -> Vec<(String, StepStatus, u32, Option<Value>)> {
    engine
        .handle()
        .steps(&flow.id)
        .unwrap()
        .into_iter()
        .map(|step| (step.name, step.status, step.attempt, step.output))
        .collect()
}

#[tokio::test]
async fn a_pipeline_runs_with_templates_and_its_result_is_the_last_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let mut actions = Actions::builtin();
    recorder.register(&mut actions, "record");
    let engine = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("digest")
        .step(echo("title", json!("Daily")))
        .step(echo("items", json!(["a", "b"])))
        .step(StepSpec::new("draft", "record").with(json!({
            "heading": "# {{steps.title.output}}",
            "items": "{{steps.items.output}}",
        })));
    let flow = engine.create(&spec, None).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Queued);
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let draft = json!({"seen": {"heading": "# Daily", "items": ["a", "b"]}, "step": "draft"});
    assert_eq!(flow.state, Some(json!({ "draft": draft })));
    let steps = outputs(&engine, &flow);
    assert_eq!(steps.len(), 3);
    assert!(
        steps
            .iter()
            .all(|(_, status, attempt, _)| *status == StepStatus::Succeeded && *attempt == 1)
    );
    assert_eq!(steps[2].3, Some(draft));
    let key = recorder.calls.lock().unwrap()[0].2.clone();
    assert_eq!(key, format!("{}:3", flow.id));
    assert!(flow.lease.is_none() && flow.ended_at.is_some());
    let again = engine.run(&flow.id).await.unwrap_err();
    assert!(again.to_string().contains("already ended (succeeded)"), "{again}");
}

#[tokio::test]
async fn a_step_left_running_by_a_dead_runner_runs_again_with_the_same_key_and_done_steps_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let mut actions = Actions::builtin();
    recorder.register(&mut actions, "record");
    let engine = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("resume")
        .step(StepSpec::new("one", "record"))
        .step(StepSpec::new("two", "record").needs(["one"]))
        .step(StepSpec::new("three", "record").needs(["two"]));
    let flow = engine.create(&spec, None).await.unwrap();

    // A runner that died: it finished `one`, began `two`, and its process is gone.
    let alice = open(dir.path()).bind("alice").unwrap();
    let dead = LeaseHolder { pid: 4_194_304 + 99, ..LeaseHolder::current() };
    let lease = alice.acquire_lease_as(&flow.id, dead, Duration::from_secs(3600)).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    let one = alice.begin_step(&lease, NewStep::new("one", StepKind::Action)).unwrap();
    alice.finish_step(&lease, one.seq, StepOutcome::Succeeded(json!("journaled"))).unwrap();
    let two = alice
        .begin_step(&lease, NewStep::new("two", StepKind::Action).with_input(json!({"x": 1})))
        .unwrap();

    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    assert_eq!(recorder.steps(), ["two", "three"], "`one` is never run again");
    let calls = recorder.calls.lock().unwrap().clone();
    assert_eq!((calls[0].1, calls[0].2.clone()), (2, two.idempotency_key.clone()));
    let steps = outputs(&engine, &flow);
    assert_eq!(steps[0].3, Some(json!("journaled")));
    assert_eq!((steps[1].0.as_str(), steps[1].2), ("two", 2));
    assert_eq!(steps[1].3, Some(json!({"seen": {"x": 1}, "step": "two"})), "the journaled input");
    let history = engine.handle().history(&flow.id).unwrap();
    let restart = history
        .iter()
        .flat_map(|r| &r.change)
        .find(|c| c.field == "step 2 (two)" && c.after == json!({"attempt": 2}));
    let restart = restart.expect("the restart is a revision");
    assert_eq!(restart.before["ended"], "the runner stopped during attempt 1");
}

/// An action that fails until it has been called `succeed_on` times.
fn flaky(actions: &mut Actions, succeed_on: u32) -> Arc<AtomicU32> {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    actions.register("flaky", move |_input: Value, context: StepContext| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n >= succeed_on {
                Ok(json!({"attempt": context.attempt, "key": context.idempotency_key}))
            } else {
                Err(ActionError::failed(format!("flaky failure {n}")))
            }
        }
    });
    calls
}

#[tokio::test]
async fn retries_keep_the_key_and_count_attempts_then_exhaustion_fails_the_flow_and_resume_retries()
{
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    let calls = flaky(&mut actions, 3);
    let engine = new_engine(dir.path(), actions);
    let quick = RetryPolicy { max_attempts: 3, backoff_ms: 5 };
    let spec = FlowSpec::new("retry").step(StepSpec::new("flaky", "flaky").retry(quick));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let steps = outputs(&engine, &flow);
    assert_eq!(steps.len(), 1, "retries are attempts of one step");
    assert_eq!(steps[0].2, 3);
    assert_eq!(steps[0].3.as_ref().unwrap()["key"], format!("{}:1", flow.id));

    // Two attempts are not enough for an action that needs five: the flow fails with the
    // step's error; a resume tries it again under the same key and it succeeds.
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    let calls = flaky(&mut actions, 5);
    let engine = new_engine(dir.path(), actions);
    let two = RetryPolicy { max_attempts: 2, backoff_ms: 5 };
    let spec = FlowSpec::new("retry")
        .step(echo("before", json!(1)))
        .step(StepSpec::new("flaky", "flaky").needs(["before"]).retry(two))
        .step(echo("after", json!(2)).needs(["flaky"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let failed = engine.run(&flow.id).await.unwrap();
    assert_eq!(failed.status, FlowStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("step `flaky` failed (attempt 2): flaky failure 2"));
    let again = engine.run(&flow.id).await.unwrap();
    assert_eq!(again.status, FlowStatus::Failed, "attempts 3 and 4 fail too");
    let done = engine.run(&flow.id).await.unwrap();
    assert_eq!(done.status, FlowStatus::Succeeded, "{:?}", done.error);
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let steps = engine.handle().steps(&flow.id).unwrap();
    let flaky_rows: Vec<_> = steps.iter().filter(|s| s.name == "flaky").collect();
    assert_eq!(
        flaky_rows.iter().map(|s| (s.status, s.attempt)).collect::<Vec<_>>(),
        [(StepStatus::Failed, 2), (StepStatus::Failed, 4), (StepStatus::Succeeded, 5)]
    );
    assert!(flaky_rows.iter().all(|s| s.idempotency_key == flaky_rows[0].idempotency_key));
    assert_eq!(steps.iter().filter(|s| s.name == "before").count(), 1, "never re-run");
}

/// A failed attempt's end is in the journal while the runner waits to try again: a reader sees
/// it during the wait, and a runner that dies in the wait leaves it recorded.
#[tokio::test]
async fn a_failed_attempt_is_recorded_before_the_wait_for_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    let calls = flaky(&mut actions, 2);
    let engine = new_engine(dir.path(), actions);
    let slow = RetryPolicy { max_attempts: 2, backoff_ms: 60_000 };
    let spec = FlowSpec::new("retry").step(StepSpec::new("flaky", "flaky").retry(slow));
    let flow = engine.create(&spec, None).await.unwrap();
    let running = tokio::spawn({
        let engine = engine.clone();
        let id = flow.id.clone();
        async move { engine.run(&id).await }
    });
    let ended = |engine: &Engine| {
        let history = engine.handle().history(&flow.id).unwrap();
        history.iter().flat_map(|revision| revision.change.clone()).find(|change| {
            change.field == "step 1 (flaky)" && change.after == json!({"attempt": 2})
        })
    };
    let started = Instant::now();
    let change = loop {
        if let Some(change) = ended(&engine) {
            break change;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the failed attempt is recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(change.before, json!({"attempt": 1, "ended": "flaky failure 1"}));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the next attempt waits for its backoff");
    let steps = engine.handle().steps(&flow.id).unwrap();
    assert_eq!((steps[0].status, steps[0].attempt), (StepStatus::Running, 2));
    running.abort();
}

fn shell(id: &str, command: &str) -> StepSpec {
    StepSpec::new(id, "shell").with(json!({ "command": command })).retry(RetryPolicy::never())
}

#[tokio::test]
async fn shell_steps_see_their_key_and_a_failing_command_reports_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let spec = FlowSpec::new("shell")
        .step(shell("key", "echo \"$TASKFLOW_IDEMPOTENCY_KEY $TASKFLOW_STEP $TASKFLOW_ATTEMPT\""))
        .step(shell("fail", "echo partial; echo 'disk on fire' >&2; exit 3").needs(["key"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Failed);
    assert_eq!(
        flow.error.as_deref(),
        Some("step `fail` failed: command exit status 3: disk on fire")
    );
    let steps = outputs(&engine, &flow);
    assert_eq!(steps[0].3, Some(json!(format!("{}:1 key 1", flow.id))));
}

#[tokio::test]
async fn a_step_that_outlives_its_timeout_is_stopped_and_retried() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let marker = dir.path().join("attempts");
    let command = format!("echo x >> {}; sleep 10", marker.display());
    let step = StepSpec::new("slow", "shell")
        .with(json!({ "command": command }))
        .timeout(Duration::from_millis(300))
        .retry(RetryPolicy { max_attempts: 2, backoff_ms: 10 });
    let flow = engine.create(&FlowSpec::new("timeout").step(step), None).await.unwrap();
    let started = Instant::now();
    let flow = engine.run(&flow.id).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(flow.status, FlowStatus::Failed);
    assert_eq!(
        flow.error.as_deref(),
        Some("step `slow` failed (attempt 2): timed out after 300ms")
    );
    assert_eq!(std::fs::read_to_string(&marker).unwrap().lines().count(), 2);
}

#[tokio::test]
async fn a_cancel_from_another_connection_stops_running_commands_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let pids = dir.path().join("pids");
    // One step exits on SIGTERM, the other ignores it and needs the SIGKILL after the grace.
    let polite = format!("echo $$ >> {}; exec sleep 30", pids.display());
    let stubborn =
        format!("trap '' TERM; echo $$ >> {}; while true; do sleep 0.05; done", pids.display());
    let spec = FlowSpec::new("cancel")
        .step(shell("polite", &polite))
        .step(shell("stubborn", &stubborn))
        .step(echo("never", json!(0)).needs(["polite", "stubborn"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let id = flow.id.clone();
    let runner = tokio::spawn({
        let (engine, id) = (engine.clone(), id.clone());
        async move { engine.run(&id).await }
    });
    while std::fs::read_to_string(&pids).map_or(0, |text| text.lines().count()) < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let other = open(dir.path()).bind("alice").unwrap();
    let requested = Instant::now();
    let outcome = other.request_cancel(&id, None).unwrap();
    assert_eq!((outcome.flow.status, outcome.active_steps), (FlowStatus::Running, 2));
    let flow = runner.await.unwrap().unwrap();
    let took = requested.elapsed();
    assert_eq!(flow.status, FlowStatus::Cancelled);
    assert!(took < Duration::from_secs(2), "cancelled after {took:?}");
    let steps = outputs(&engine, &flow);
    assert_eq!(steps.len(), 2, "nothing new was scheduled");
    assert!(steps.iter().all(|(_, status, _, _)| *status == StepStatus::Cancelled));
    for pid in std::fs::read_to_string(&pids).unwrap().lines() {
        let alive = Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "process {pid} still runs");
    }
}

/// A command that finishes its work after the cancel's SIGTERM, within the grace before the
/// SIGKILL, did its work: its step is that success, never run again, and nothing new starts.
#[tokio::test]
async fn a_command_that_finishes_after_the_cancels_sigterm_keeps_its_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let (started, done) = (dir.path().join("started"), dir.path().join("done"));
    // It ends its work when told to stop, and exits 0.
    let script = format!(
        "trap 'echo work >> {}; echo finished; exit 0' TERM; touch {}; \
         while true; do sleep 0.05; done",
        done.display(),
        started.display()
    );
    let spec = FlowSpec::new("late")
        .step(shell("work", &script))
        .step(echo("never", json!(0)).needs(["work"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let runner = tokio::spawn({
        let (engine, id) = (engine.clone(), flow.id.clone());
        async move { engine.run(&id).await }
    });
    while !started.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open(dir.path()).bind("alice").unwrap().request_cancel(&flow.id, None).unwrap();
    let flow = runner.await.unwrap().unwrap();
    assert_eq!(flow.status, FlowStatus::Cancelled);
    let steps = outputs(&engine, &flow);
    assert_eq!(steps.len(), 1, "nothing new was scheduled");
    assert_eq!((steps[0].1, steps[0].3.clone()), (StepStatus::Succeeded, Some(json!("finished"))));
    assert_eq!(std::fs::read_to_string(&done).unwrap(), "work\n", "the work was done once");
}

#[tokio::test]
async fn independent_steps_run_in_parallel_up_to_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (now2, peak2) = (Arc::clone(&now), Arc::clone(&peak));
    actions.register("busy", move |_input: Value, _context: StepContext| {
        let (now, peak) = (Arc::clone(&now2), Arc::clone(&peak2));
        async move {
            let running = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(running, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(40)).await;
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    });
    let engine = new_engine(dir.path(), actions);
    let mut spec = FlowSpec::new("fan out").concurrency(3);
    for n in 0..10 {
        spec = spec.step(StepSpec::new(format!("s{n}"), "busy"));
    }
    spec = spec.step(echo("join", json!("all done")).needs((0..10).map(|n| format!("s{n}"))));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    let steps = engine.handle().steps(&flow.id).unwrap();
    let join = steps.iter().find(|s| s.name == "join").unwrap();
    assert!(
        steps.iter().filter(|s| s.name != "join").all(|s| s.ended_at.unwrap() <= join.started_at)
    );
}

#[tokio::test]
async fn a_failed_branch_lets_running_siblings_finish_and_schedules_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let spec = FlowSpec::new("branches")
        .step(shell("broken", "exit 1"))
        .step(shell("slow", "sleep 0.3; echo fine"))
        .step(echo("after", json!(1)).needs(["broken", "slow"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Failed);
    assert_eq!(flow.error.as_deref(), Some("step `broken` failed: command exit status 1"));
    let mut steps = outputs(&engine, &flow);
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(steps.len(), 2);
    assert_eq!(
        (steps[1].0.as_str(), steps[1].1, steps[1].3.clone()),
        ("slow", StepStatus::Succeeded, Some(json!("fine")))
    );
}

#[tokio::test]
async fn a_fork_keeps_the_steps_before_n_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::default();
    let mut actions = Actions::builtin();
    recorder.register(&mut actions, "record");
    let engine = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("fork")
        .step(StepSpec::new("a", "record"))
        .step(StepSpec::new("b", "record").needs(["a"]))
        .step(StepSpec::new("c", "record").with(json!({"b": "{{steps.b.output}}"})));
    let source = engine.create(&spec, None).await.unwrap();
    let source = engine.run(&source.id).await.unwrap();
    assert_eq!(source.status, FlowStatus::Succeeded);
    let fork = engine.fork(&source.id, 2).await.unwrap();
    assert_ne!(fork.id, source.id);
    assert_eq!(fork.status, FlowStatus::Queued);
    assert_eq!(fork.current_step.as_deref(), Some("a"), "the copied journal's last step");
    assert_eq!(engine.handle().flow(&fork.id).unwrap().current_step, fork.current_step);
    let fork = engine.run(&fork.id).await.unwrap();
    assert_eq!(fork.status, FlowStatus::Succeeded);
    assert_eq!(recorder.steps(), ["a", "b", "c", "b", "c"]);
    let steps = engine.handle().steps(&fork.id).unwrap();
    assert_eq!(steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["a", "b", "c"]);
    assert_eq!(steps[0].output, Some(json!({"seen": {}, "step": "a"})));
    let history = engine.handle().history(&fork.id).unwrap();
    assert_eq!(
        history[0].change.iter().find(|c| c.field == "forked_from").unwrap().after["flow"],
        source.id.to_string()
    );
    for (from, ok) in [(0, false), (4, true), (5, false)] {
        assert_eq!(engine.fork(&source.id, from).await.is_ok(), ok, "from {from}");
    }
}

/// On a multi-threaded runtime a runner commits its own checkpoint when nothing else is being
/// committed, and the writer thread batches the rest: both paths are taken here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_flows_run_at_once_in_one_engine() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let mut spec = FlowSpec::new("many");
    for n in 0..5 {
        let step = echo(&format!("s{n}"), json!(n));
        spec = spec.step(if n > 0 { step.needs([format!("s{}", n - 1)]) } else { step });
    }
    let mut runs = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let flow = engine.create(&spec, None).await.unwrap();
        let engine = engine.clone();
        runs.spawn(async move { engine.run(&flow.id).await });
    }
    let mut succeeded = 0;
    while let Some(result) = runs.join_next().await {
        let flow = result.unwrap().unwrap();
        assert_eq!(flow.state, Some(json!({"s4": 4})));
        succeeded += 1;
    }
    assert_eq!(succeeded, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_engine_runs_two_owners_flows_at_once_and_keeps_them_apart() {
    let dir = tempfile::tempdir().unwrap();
    let taskflow = open(dir.path());
    let alice = Engine::new(taskflow.bind("alice").unwrap(), Actions::builtin(), options());
    let bob = alice.for_owner(taskflow.bind("bob").unwrap());
    let spec = FlowSpec::new("pair")
        .step(echo("first", json!(1)))
        .step(echo("second", json!(2)).needs(["first"]));
    let mut runs = tokio::task::JoinSet::new();
    let mut made = Vec::new();
    for engine in [&alice, &bob, &alice, &bob] {
        for _ in 0..4 {
            let flow = engine.create(&spec, None).await.unwrap();
            made.push((engine.handle().owner().to_owned(), flow.id.clone()));
            let engine = engine.clone();
            runs.spawn(
                async move { (engine.handle().owner().to_owned(), engine.run(&flow.id).await) },
            );
        }
    }
    while let Some(result) = runs.join_next().await {
        let (owner, ended) = result.unwrap();
        let ended = ended.unwrap();
        assert_eq!((ended.status, ended.owner), (FlowStatus::Succeeded, owner));
    }
    for (owner, id) in made {
        let (mine, theirs) = if owner == "alice" { (&alice, &bob) } else { (&bob, &alice) };
        assert_eq!(mine.handle().flow(&id).unwrap().owner, owner);
        assert!(theirs.handle().flow(&id).is_err(), "another owner's flow is not found");
        assert!(theirs.run(&id).await.is_err(), "nor run");
        assert!(theirs.cancel(&id).await.is_err(), "nor cancelled");
    }
    let listed = |engine: &Engine| engine.handle().list(&Default::default()).unwrap().len();
    assert_eq!((listed(&alice), listed(&bob)), (8, 8));

    // A cancel through one owner's engine reaches that owner's running flow, and only it.
    let slow = FlowSpec::new("slow").step(shell("wait", "sleep 30"));
    let (mine, theirs) =
        (alice.create(&slow, None).await.unwrap(), bob.create(&slow, None).await.unwrap());
    let runs = [(&alice, mine.id.clone()), (&bob, theirs.id.clone())].map(|(engine, id)| {
        let engine = engine.clone();
        tokio::spawn(async move { engine.run(&id).await })
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    bob.cancel(&theirs.id).await.unwrap();
    let [alice_run, bob_run] = runs;
    assert_eq!(bob_run.await.unwrap().unwrap().status, FlowStatus::Cancelled);
    assert_eq!(alice.handle().flow(&mine.id).unwrap().status, FlowStatus::Running);
    alice.cancel(&mine.id).await.unwrap();
    assert_eq!(alice_run.await.unwrap().unwrap().status, FlowStatus::Cancelled);
}

#[tokio::test]
async fn a_second_runner_of_a_live_flow_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let flow =
        engine.create(&FlowSpec::new("busy").step(shell("wait", "sleep 0.5")), None).await.unwrap();
    let id = flow.id.clone();
    let first = tokio::spawn({
        let (engine, id) = (engine.clone(), id.clone());
        async move { engine.run(&id).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second =
        Engine::new(open(dir.path()).bind("alice").unwrap(), Actions::builtin(), options());
    let refused = second.run(&id).await.unwrap_err();
    assert!(refused.to_string().contains("is leased by"), "{refused}");
    assert_eq!(first.await.unwrap().unwrap().status, FlowStatus::Succeeded);
}

#[tokio::test]
async fn a_panicking_action_fails_its_step_not_the_runner() {
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    actions.register("explode", |_input: Value, _context: StepContext| async move {
        if std::hint::black_box(true) {
            panic!("boom");
        }
        Ok(Value::Null)
    });
    let engine = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("panics").step(StepSpec::new("bang", "explode"));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Failed);
    assert_eq!(
        flow.error.as_deref(),
        Some("step `bang` failed: the step's handler panicked: boom")
    );
}

#[tokio::test]
async fn an_action_that_cancels_its_own_token_stops_only_itself() {
    let dir = tempfile::tempdir().unwrap();
    let mut actions = Actions::builtin();
    // Cancelling the context is how an action stops the work it started itself.
    actions.register("tidy", |_input: Value, context: StepContext| async move {
        context.cancel.cancel();
        Ok(json!("tidied"))
    });
    let engine = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("tidy")
        .step(StepSpec::new("tidy", "tidy"))
        .step(echo("after", json!("ran")).needs(["tidy"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded);
    assert_eq!(flow.cancel_requested_at, None);
    let steps = outputs(&engine, &flow);
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[1].3, Some(json!("ran")));
}

/// A loopback HTTP server answering each request with the next of `answers` (status, body),
/// then closing the connection.
fn serve(answers: Vec<(u16, &'static str)>) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (status, body) in answers {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            let reply = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn fetch_urls_reads_http_and_retries_only_what_another_attempt_may_fix() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let quick = RetryPolicy { max_attempts: 3, backoff_ms: 5 };
    let fetch = |id: &str, url: &str| {
        StepSpec::new(id, "fetch_urls").with(json!({ "urls": [url] })).retry(quick)
    };
    // A 503 is worth another attempt; the second attempt gets the page.
    let flaky = serve(vec![(503, "busy"), (200, "<p>hello</p>")]);
    let flow =
        engine.create(&FlowSpec::new("http").step(fetch("page", &flaky)), None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded, "{:?}", flow.error);
    let steps = outputs(&engine, &flow);
    assert_eq!(steps[0].2, 2);
    assert_eq!(steps[0].3, Some(json!([{"url": flaky, "body": "<p>hello</p>"}])));
    // A 404 is not: one attempt, and the flow fails with the status.
    let missing = serve(vec![(404, "no")]);
    let flow =
        engine.create(&FlowSpec::new("http").step(fetch("page", &missing)), None).await.unwrap();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Failed);
    let error = flow.error.unwrap();
    assert!(
        error.starts_with("step `page` failed: ") && error.ends_with("HTTP 404 Not Found"),
        "{error}"
    );
}

#[tokio::test]
async fn a_stored_spec_that_cannot_run_is_refused_and_leaves_no_lease() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    // An engine with a `mark` action created it; this one does not know `mark`.
    let mut actions = Actions::builtin();
    actions.register("mark", |_input: Value, _context: StepContext| {
        std::future::ready(Ok(Value::Null))
    });
    let creator = new_engine(dir.path(), actions);
    let spec = FlowSpec::new("marked").step(StepSpec::new("only", "mark"));
    let flow = creator.create(&spec, None).await.unwrap();
    let unreadable = engine
        .handle()
        .create(NewFlow::managed("garbled").with_spec(json!({"name": 7, "steps": "none"})))
        .unwrap();

    let error = engine.run(&flow.id).await.unwrap_err().to_string();
    assert!(error.contains("unknown action `mark`"), "{error}");
    let error = engine.run(&unreadable.id).await.unwrap_err().to_string();
    assert!(error.contains("cannot read"), "{error}");
    for id in [&flow.id, &unreadable.id] {
        let stored = engine.handle().flow(id).unwrap();
        assert_eq!((stored.status, stored.lease), (FlowStatus::Queued, None));
    }
    // The engine that knows the action runs it at once: nothing holds the flow.
    assert_eq!(creator.run(&flow.id).await.unwrap().status, FlowStatus::Succeeded);
}

#[tokio::test]
async fn a_drained_run_finishes_its_running_step_starts_nothing_new_and_gives_the_flow_back() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let spec = FlowSpec::new("drained")
        .step(shell("slow", "sleep 0.4; echo slow"))
        .step(echo("after", json!("done")).needs(["slow"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let control = RunControl::default();
    let run = tokio::spawn({
        let (engine, id, control) = (engine.clone(), flow.id.clone(), control.clone());
        async move { engine.run_controlled(&id, quiet(), control).await }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    control.drain.cancel();
    let left = run.await.unwrap().unwrap();
    assert_eq!((left.status, left.lease.is_none()), (FlowStatus::Running, true));
    let done: Vec<(String, StepStatus)> =
        outputs(&engine, &flow).into_iter().map(|(name, status, ..)| (name, status)).collect();
    assert_eq!(done, [("slow".to_owned(), StepStatus::Succeeded)], "nothing new started");
    // Another runner takes it at once and finishes it.
    let ended = engine.run(&flow.id).await.unwrap();
    assert_eq!(ended.status, FlowStatus::Succeeded);

    // A stop after the drain ends the running step as cancelled, not the flow; a resume runs
    // the step again under the same key.
    let flow = engine
        .create(&FlowSpec::new("stopped").step(shell("slow", "sleep 30")), None)
        .await
        .unwrap();
    let control = RunControl::default();
    let run = tokio::spawn({
        let (engine, id, control) = (engine.clone(), flow.id.clone(), control.clone());
        async move { engine.run_controlled(&id, quiet(), control).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    control.drain.cancel();
    control.stop.cancel();
    let left = tokio::time::timeout(Duration::from_secs(10), run).await.unwrap().unwrap().unwrap();
    assert_eq!((left.status, left.lease.is_none()), (FlowStatus::Running, true));
    let steps = engine.handle().steps(&flow.id).unwrap();
    assert_eq!(steps[0].status, StepStatus::Cancelled);
    assert!(left.cancel_requested_at.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_whose_run_fails_rests_longer_each_time_and_each_failure_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let unreadable = NewFlow { spec: Some(json!({"steps": 5})), ..NewFlow::managed("bad") };
    let bad = engine.handle().create(unreadable).unwrap();
    let runs = taskflow_engine::Runs::new(open(dir.path()), engine.clone(), 2);
    let told = Arc::new(Mutex::new(Vec::new()));
    runs.on_failure({
        let told = told.clone();
        move |id, error, pause| {
            told.lock().unwrap().push((Instant::now(), id.clone(), error.to_string(), pause))
        }
    });
    // Sweeps every 5 ms: without a rest, the flow would be run again at once, each time.
    let sweeping = tokio::spawn({
        let runs = runs.clone();
        async move { runs.sweep(Duration::from_millis(5)).await }
    });
    let until_told = |count: usize| {
        let told = told.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while told.lock().unwrap().len() < count {
                assert!(Instant::now() < deadline, "{count} failures were not told in time");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    until_told(2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let told = told.lock().unwrap().clone();
    let pauses: Vec<Duration> = told.iter().map(|(_, _, _, pause)| *pause).collect();
    assert_eq!(pauses, [Duration::from_secs(1), Duration::from_secs(2)], "{told:?}");
    assert!(told[1].0 - told[0].0 >= Duration::from_secs(1), "the second run after the rest");
    assert!(told.iter().all(|(_, id, why, _)| *id == bad.id && why.contains("cannot read")));
    runs.shut_down(Duration::from_secs(1)).await;
    sweeping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resting_flows_are_left_alone_by_the_sweep_and_keep_no_other_flow_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let unreadable = || NewFlow { spec: Some(json!({"steps": 5})), ..NewFlow::managed("bad") };
    let bad = [
        engine.handle().create(unreadable()).unwrap(),
        engine.handle().create(unreadable()).unwrap(),
    ];
    // One run at a time, and the failing flows are the oldest: a sweep that claimed them while
    // they rest (and gave them back) would never reach the newer flow.
    let runs = taskflow_engine::Runs::new(open(dir.path()), engine.clone(), 1);
    let failures = Arc::new(AtomicU32::new(0));
    runs.on_failure({
        let failures = failures.clone();
        move |_, _, _| {
            failures.fetch_add(1, Ordering::SeqCst);
        }
    });
    let sweeping = tokio::spawn({
        let runs = runs.clone();
        async move { runs.sweep(Duration::from_millis(5)).await }
    });
    while failures.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let good =
        engine.create(&FlowSpec::new("good").step(echo("a", json!("hi"))), None).await.unwrap();
    // Without the fix the new flow never runs: the sweep takes the oldest flow, resting or not.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let flow = engine.handle().flow(&good.id).unwrap();
        if flow.status == FlowStatus::Succeeded {
            break;
        }
        assert!(Instant::now() < deadline, "the new flow waits behind the resting ones: {flow:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for flow in &bad {
        let history = engine.handle().history(&flow.id).unwrap();
        // A claim and a release per run (a few runs), not per sweep (every 5 ms).
        assert!(history.len() < 10, "{history:#?}");
    }
    runs.shut_down(Duration::from_secs(1)).await;
    sweeping.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_made_to_run_here_is_held_from_its_creation_and_no_other_runner_claims_it() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let other = LeaseHolder { pid: std::process::id() + 1, ..LeaseHolder::current() };
    let claims = || open(dir.path()).claim_as(&other, Duration::from_secs(30), 10, &[]).unwrap();
    let spec = FlowSpec::new("held").step(echo("a", json!(1))).step(echo("b", json!(2)));

    let (made, lease) = engine.create_held(&spec, None, None).await.unwrap();
    assert_eq!(made.status, FlowStatus::Queued);
    assert!(claims().is_empty(), "a worker woken by the creation finds nothing to claim");
    let ran = engine.run_claimed(lease, quiet(), RunControl::default()).await.unwrap();
    assert_eq!(ran.status, FlowStatus::Succeeded);

    let (fork, lease) = engine.fork_held(&made.id, 2).await.unwrap();
    assert!(claims().is_empty(), "nor one woken by a fork");
    let ran = engine.run_claimed(lease, quiet(), RunControl::default()).await.unwrap();
    assert_eq!((ran.id, ran.status), (fork.id, FlowStatus::Succeeded));

    // A queued creation, by contrast, is any runner's.
    let queued = engine.create(&spec, None).await.unwrap();
    let claimed = claims();
    assert_eq!(claimed.iter().map(|claim| &claim.lease.flow_id).collect::<Vec<_>>(), [&queued.id]);
}

/// A failed flow whose stored pipeline breaks a rule it was stored before (a key its action does
/// not take) is not opened again by a resume, which could only fail to run it: it stays failed
/// with its error, and the refusal names the place in the spec.
#[tokio::test]
async fn a_failed_flow_whose_stored_spec_cannot_run_stays_failed_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let engine = new_engine(dir.path(), Actions::builtin());
    let alice = open(dir.path()).bind("alice").unwrap();
    let mut new = NewFlow::managed("old");
    new.spec = Some(json!({
        "name": "old",
        "steps": [{"id": "a", "action": "echo", "with": {"value": 1, "vaule": 2}}],
    }));
    let flow = alice.create(new).unwrap();
    let lease = alice.acquire_lease(&flow.id, Duration::from_secs(30)).unwrap();
    alice.set_status(&lease, FlowStatus::Running, None).unwrap();
    alice.set_status(&lease, FlowStatus::Failed, Some("the old error".to_owned())).unwrap();

    let refused = engine.run(&flow.id).await.unwrap_err().to_string();
    assert!(refused.starts_with("steps[0].with: `with.vaule` is not a parameter"), "{refused}");
    let kept = alice.flow(&flow.id).unwrap();
    assert_eq!((kept.status, kept.error.as_deref()), (FlowStatus::Failed, Some("the old error")));
}

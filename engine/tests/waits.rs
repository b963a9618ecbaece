//! Durable timers and signals on a real store: a flow whose steps wait gives its lease up and
//! holds no process, runs on when its timer is due or its signal arrived, keeps a signal sent
//! before the step for it, fails a signal's timeout, runs a short timer out within one run while
//! other steps work, and is cancelled at once while it waits.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use taskflow_engine::{
    Actions, Engine, EngineOptions, Flow, FlowSpec, FlowStatus, StepSpec, StepStatus, TaskFlow,
    Timestamp,
};
use taskflow_store_sqlite::OpenOptions;

fn engine(dir: &Path) -> Engine {
    let taskflow: TaskFlow =
        taskflow_store_sqlite::open(dir.join("flows.db"), &OpenOptions::default()).unwrap();
    Engine::new(taskflow.bind("alice").unwrap(), Actions::builtin(), EngineOptions::default())
}

fn echo(id: &str, value: Value) -> StepSpec {
    StepSpec::new(id, "echo").with(json!({ "value": value }))
}

/// Each step's name, status and attempt, in journal order.
fn journal(engine: &Engine, flow: &Flow) -> Vec<(String, StepStatus, u32)> {
    let steps = engine.handle().steps(&flow.id).unwrap();
    steps.into_iter().map(|step| (step.name, step.status, step.attempt)).collect()
}

fn step(name: &str, status: StepStatus, attempt: u32) -> (String, StepStatus, u32) {
    (name.to_owned(), status, attempt)
}

/// Runs the flow again each time it is due, until it ends; how many runs it took.
async fn run_until_ended(engine: &Engine, flow: &Flow) -> (Flow, usize) {
    let started = Instant::now();
    let mut runs = 0;
    loop {
        let ran = engine.run(&flow.id).await.unwrap();
        runs += 1;
        if ran.status.is_terminal() {
            return (ran, runs);
        }
        assert_eq!(ran.status, FlowStatus::Waiting);
        while engine.handle().flow(&flow.id).unwrap().wake_at.is_none_or(|at| at > Timestamp::now())
        {
            assert!(started.elapsed() < Duration::from_secs(20), "never due: {ran:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_sleeps_without_a_lease_and_runs_on_once_its_timer_is_due() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let spec = FlowSpec::new("nightly")
        .step(echo("scrape", json!("pages")))
        .step(StepSpec::new("pause", "sleep").with(json!({"for": "1s"})).needs(["scrape"]))
        .step(echo("draft", json!("{{steps.scrape.output}} drafted")).needs(["pause"]));
    let flow = engine.create(&spec, None).await.unwrap();
    let started = Instant::now();

    let waiting = engine.run(&flow.id).await.unwrap();
    assert_eq!((waiting.status, waiting.lease.clone()), (FlowStatus::Waiting, None));
    let wait = waiting.wait.clone().unwrap();
    assert_eq!(wait["steps"][0]["step"], "pause");
    assert_eq!(wait["until"], json!(waiting.wake_at.unwrap().to_string()));
    assert!(started.elapsed() < Duration::from_millis(900), "the run returned while it waits");
    assert_eq!(
        journal(&engine, &flow),
        [step("scrape", StepStatus::Succeeded, 1), step("pause", StepStatus::Running, 1)]
    );

    // Run again before it is due: it finds the timer not over and waits again, same attempt.
    let again = engine.run(&flow.id).await.unwrap();
    assert_eq!((again.status, again.wake_at), (FlowStatus::Waiting, waiting.wake_at));

    let (ended, _) = run_until_ended(&engine, &flow).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(ended.status, FlowStatus::Succeeded);
    assert_eq!(ended.state, Some(json!({"draft": "pages drafted"})));
    assert_eq!(
        journal(&engine, &flow),
        [
            step("scrape", StepStatus::Succeeded, 1),
            step("pause", StepStatus::Succeeded, 1),
            step("draft", StepStatus::Succeeded, 1),
        ],
        "the timer kept its attempt and began once"
    );
    let slept = &engine.handle().steps(&flow.id).unwrap()[1];
    assert_eq!(slept.output, Some(json!(waiting.wake_at.unwrap().to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_before_or_while_the_flow_waits_is_the_steps_output() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let spec = FlowSpec::new("review")
        .step(StepSpec::new("approval", "wait_signal").with(json!({"name": "approve"})))
        .step(echo("publish", json!("{{steps.approval.output}}")).needs(["approval"]));

    // Sent before the step is reached: kept for it, and the flow never waits.
    let early = engine.create(&spec, None).await.unwrap();
    engine.handle().send_signal(&early.id, "approve", json!({"by": "bob"})).unwrap();
    let ended = engine.run(&early.id).await.unwrap();
    assert_eq!(ended.status, FlowStatus::Succeeded);
    assert_eq!(ended.state, Some(json!({"publish": {"by": "bob"}})));

    // Sent while it waits: the flow is due at once and runs on with the payload.
    let late = engine.create(&spec, None).await.unwrap();
    let waiting = engine.run(&late.id).await.unwrap();
    assert_eq!((waiting.status, waiting.wake_at), (FlowStatus::Waiting, None));
    assert_eq!(waiting.wait.clone().unwrap()["signals"], json!(["approve"]));
    engine.handle().send_signal(&late.id, "other", json!(1)).unwrap();
    assert_eq!(engine.handle().flow(&late.id).unwrap().wake_at, None, "another name wakes nothing");
    let (_, woken) = engine.handle().send_signal(&late.id, "approve", json!("yes")).unwrap();
    assert!(woken.wake_at.is_some_and(|at| at <= Timestamp::now()));
    let (ended, runs) = run_until_ended(&engine, &late).await;
    assert_eq!((ended.status, runs), (FlowStatus::Succeeded, 1));
    assert_eq!(ended.state, Some(json!({"publish": "yes"})));
    let fields: Vec<String> = engine
        .handle()
        .history(&late.id)
        .unwrap()
        .iter()
        .flat_map(|revision| revision.change.iter().map(|change| change.field.clone()))
        .filter(|field| field == "signal")
        .collect();
    assert_eq!(fields.len(), 2, "each signal is recorded in the flow's history");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_that_does_not_arrive_within_its_timeout_fails_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let spec = FlowSpec::new("review").step(
        StepSpec::new("approval", "wait_signal").with(json!({"name": "approve", "timeout": "1s"})),
    );
    let flow = engine.create(&spec, None).await.unwrap();
    let waiting = engine.run(&flow.id).await.unwrap();
    assert_eq!(waiting.status, FlowStatus::Waiting);
    assert!(waiting.wake_at.is_some(), "the timeout is a timer");
    let (ended, _) = run_until_ended(&engine, &flow).await;
    assert_eq!(ended.status, FlowStatus::Failed);
    let error = ended.error.unwrap();
    assert!(error.contains("no signal `approve` arrived within 1000ms"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_timer_runs_out_within_the_run_while_other_steps_work() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let spec = FlowSpec::new("both")
        .step(StepSpec::new("pause", "sleep").with(json!({"for": "200ms"})))
        .step(echo("after", json!("woke")).needs(["pause"]))
        .step(StepSpec::new("work", "shell").with(json!({"command": "sleep 1; echo done"})));
    let flow = engine.create(&spec, None).await.unwrap();
    let ended = engine.run(&flow.id).await.unwrap();
    assert_eq!(ended.status, FlowStatus::Succeeded);
    let statuses: Vec<String> = engine
        .handle()
        .history(&flow.id)
        .unwrap()
        .iter()
        .flat_map(|revision| revision.change.iter())
        .filter(|change| change.field == "status")
        .map(|change| change.after.as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(statuses, ["queued", "running", "succeeded"], "it never waited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_flow_is_cancelled_at_once_with_its_waiting_steps() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path());
    let spec = FlowSpec::new("nightly")
        .step(StepSpec::new("pause", "sleep").with(json!({"until": "2999-01-01T00:00:00Z"})));
    let flow = engine.create(&spec, None).await.unwrap();
    assert_eq!(engine.run(&flow.id).await.unwrap().status, FlowStatus::Waiting);
    let outcome = engine.cancel(&flow.id).await.unwrap();
    assert_eq!(outcome.flow.status, FlowStatus::Cancelled);
    assert_eq!(journal(&engine, &flow), [step("pause", StepStatus::Cancelled, 1)]);
}

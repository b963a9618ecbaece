//! The engine's checkpoint cost, in one run (DESIGN §7), as `name: value` lines:
//!
//! - `raw_sqlite_commits_per_sec`: one-row commits on a bare WAL connection with
//!   `synchronous=FULL`, the ceiling for anything durable on this disk;
//! - `schema_floor_commits_per_sec`: the rows one step's checkpoint writes (the step's row
//!   ends, the next step's row begins), as bare prepared SQL on a store's own schema, one
//!   commit each: what the stored records cost before any engine work. With
//!   `one_flow_ratio_to_schema_floor` it tells the engine's own overhead apart from the cost of
//!   what it stores;
//! - `one_flow_echo_steps_per_sec`: a chain of `echo` steps in one flow (each step's outcome and
//!   the next step's start are one commit); target ≥ 80% of the raw rate;
//! - `flows_64_echo_steps_per_sec`: 64 such flows at once in one engine (group commit);
//!   target ≥ 4× the one-flow rate;
//! - `resume_10000_completed_steps_ms`: from `run` on a stalled flow with 10,000 completed steps
//!   to its first new step starting; target < 100 ms.
//!
//! Each figure is the median of interleaved rounds. In each round the raw rate is measured twice,
//! before and after the schema floor and the one-flow run, and those two are compared with the
//! mean of the two windows around them: this disk's fsync latency drifts within seconds, and a
//! ratio of two measurements far apart in time measures the drift as much as the engine. The
//! commit rates are steady-state rates: every store is first written past its first WAL
//! checkpoint (raw commits, or a warm-up flow), because until then each commit also grows the
//! WAL file, and a growing file makes every fsync commit file-system metadata too (on this kind
//! of disk the first ~1,000 frames of a new file commit at about 60% of the later rate). Both
//! sides are measured past that point. Run with
//! `cargo bench -p taskflow-engine --bench engine`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::{Value, json};
use taskflow_engine::{
    Actions, CheckpointOp, Engine, EngineOptions, FlowStatus, LeaseHolder, NewFlow, NewStep,
    StepContext, StepKind, StepOutcome, StepSpec,
};
use taskflow_store_sqlite::OpenOptions;

#[path = "support/checkpoints.rs"]
mod checkpoints;

use checkpoints::{chain, commits_per_sec, median};

/// Rounds of each measurement, interleaved (raw, schema floor, one flow, raw, 64 flows, raw, …)
/// so that a machine whose load changes during the run shifts them alike; medians are reported.
const ROUNDS: usize = 7;
/// Each of a round's two raw windows, and the schema floor's.
const RAW_SECONDS: f64 = 0.5;
/// SQLite checkpoints the WAL into the database once it holds 1,000 frames; from then on the
/// WAL file is rewritten in place.
const WARM_UP_FRAMES: usize = 1_200;
/// A step's commit writes at least one frame (the steps' leaf, and now and then the pages of a
/// split).
const WARM_UP_STEPS: usize = WARM_UP_FRAMES;
const ONE_FLOW_STEPS: usize = 1_000;
const FLOWS: usize = 64;
const STEPS_PER_FLOW: usize = 40;
const RESUME_DONE: usize = 10_000;
const RESUME_ROUNDS: usize = 3;

fn main() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut raw, mut floor, mut one, mut many) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut floor_ratio, mut one_ratio, mut one_floor_ratio, mut many_ratio) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let raw_db = RawDatabase::warm(&dir.path().join(format!("raw{round}.db")));
        let raw_before = raw_db.commits_per_sec();
        let floor_rate = schema_floor_commits_per_sec(&dir.path().join(format!("floor{round}.db")));
        let one_rate = runtime.block_on(one_flow(&dir.path().join(format!("one{round}.db"))));
        let raw_after = raw_db.commits_per_sec();
        let many_rate = runtime.block_on(many_flows(&dir.path().join(format!("many{round}.db"))));
        let raw_rate = (raw_before + raw_after) / 2.0;
        eprintln!(
            "round {round}: raw {raw_before:.0} / {raw_after:.0}, schema floor {floor_rate:.0}, \
             one flow {one_rate:.0} ({:.2} of raw), 64 flows {many_rate:.0}",
            one_rate / raw_rate
        );
        raw.push(raw_rate);
        floor.push(floor_rate);
        one.push(one_rate);
        many.push(many_rate);
        floor_ratio.push(floor_rate / raw_rate);
        one_ratio.push(one_rate / raw_rate);
        one_floor_ratio.push(one_rate / floor_rate);
        many_ratio.push(many_rate / one_rate);
    }
    println!("raw_sqlite_commits_per_sec: {:.0}", median(&mut raw));
    println!("schema_floor_commits_per_sec: {:.0}", median(&mut floor));
    println!("schema_floor_ratio_to_raw: {:.2}", median(&mut floor_ratio));
    println!("one_flow_echo_steps_per_sec: {:.0}", median(&mut one));
    println!("one_flow_ratio_to_raw: {:.2}", median(&mut one_ratio));
    println!("one_flow_ratio_to_schema_floor: {:.2}", median(&mut one_floor_ratio));
    println!("flows_64_echo_steps_per_sec: {:.0}", median(&mut many));
    println!("flows_64_ratio_to_one_flow: {:.2}", median(&mut many_ratio));
    let mut resumes: Vec<f64> = (0..RESUME_ROUNDS)
        .map(|round| {
            let path = dir.path().join(format!("resume{round}.db"));
            runtime.block_on(resume(&path)).as_secs_f64() * 1000.0
        })
        .collect();
    println!("resume_10000_completed_steps_ms: {:.1}", median(&mut resumes));
}

/// A bare WAL database with `synchronous=FULL` and one table, written past its first WAL
/// checkpoint.
struct RawDatabase {
    conn: Connection,
}

impl RawDatabase {
    fn warm(path: &Path) -> Self {
        let conn = Connection::open(path).expect("open");
        let _: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
        conn.pragma_update(None, "synchronous", "FULL").unwrap();
        conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)").unwrap();
        let raw = RawDatabase { conn };
        for _ in 0..WARM_UP_FRAMES {
            raw.commit();
        }
        raw
    }

    /// One one-row commit: outside a transaction each statement is its own (one frame each).
    fn commit(&self) {
        let mut insert = self.conn.prepare_cached("INSERT INTO t (v) VALUES (?1)").unwrap();
        insert.execute(["a checkpoint"]).unwrap();
    }

    fn commits_per_sec(&self) -> f64 {
        commits_per_sec(RAW_SECONDS, || self.commit())
    }
}

fn schema_floor_commits_per_sec(path: &Path) -> f64 {
    let taskflow = taskflow_store_sqlite::open(path, &OpenOptions::default()).expect("open");
    let flow = taskflow.bind("bench").unwrap().create(NewFlow::managed("floor")).unwrap();
    drop(taskflow);
    let conn = Connection::open(path).expect("open");
    conn.pragma_update(None, "synchronous", "FULL").unwrap();
    conn.pragma_update(None, "foreign_keys", "ON").unwrap();
    let id = flow.id.to_string();
    let execute = |sql: &str, params: &[&dyn rusqlite::ToSql]| {
        conn.prepare_cached(sql).unwrap().execute(params).unwrap();
    };
    let begin = |seq: u32, now: i64| {
        let (name, key, input) =
            (format!("s{seq}"), format!("{id}:{seq}"), format!("{{\"value\":{seq}}}"));
        execute(
            "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
             input, started_at) VALUES (?1, ?2, ?3, 'action', 'running', 1, ?4, ?5, ?6)",
            &[&id, &seq, &name, &key, &input, &now],
        );
    };
    begin(1, 0);
    let step = |seq: u32| {
        let now = taskflow_engine::Timestamp::now().as_millis();
        execute("BEGIN IMMEDIATE", &[]);
        execute(
            "UPDATE steps SET status = 'succeeded', output = ?1, ended_at = ?2 \
             WHERE flow_id = ?3 AND seq = ?4 AND status = 'running'",
            &[&seq.to_string(), &now, &id, &seq],
        );
        begin(seq + 1, now);
        execute("COMMIT", &[]);
    };
    let mut seq = 1;
    for _ in 0..WARM_UP_STEPS {
        step(seq);
        seq += 1;
    }
    commits_per_sec(RAW_SECONDS, || {
        step(seq);
        seq += 1;
    })
}

fn engine(path: &Path, actions: Actions) -> Engine {
    let taskflow = taskflow_store_sqlite::open(path, &OpenOptions::default()).expect("open");
    Engine::new(taskflow.bind("bench").unwrap(), actions, EngineOptions::default())
}

/// An engine on a new store that has run a flow of [`WARM_UP_STEPS`] steps.
async fn warm_engine(path: &Path) -> Engine {
    let engine = engine(path, Actions::builtin());
    let flow = engine.create(&chain("warm-up", WARM_UP_STEPS), None).await.unwrap();
    assert_eq!(engine.run(&flow.id).await.unwrap().status, FlowStatus::Succeeded);
    engine
}

async fn one_flow(path: &Path) -> f64 {
    let engine = warm_engine(path).await;
    let flow = engine.create(&chain("one", ONE_FLOW_STEPS), None).await.unwrap();
    let started = Instant::now();
    let flow = engine.run(&flow.id).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(flow.status, FlowStatus::Succeeded);
    ONE_FLOW_STEPS as f64 / elapsed.as_secs_f64()
}

async fn many_flows(path: &Path) -> f64 {
    let engine = warm_engine(path).await;
    let spec = chain("many", STEPS_PER_FLOW);
    let mut ids = Vec::new();
    for _ in 0..FLOWS {
        ids.push(engine.create(&spec, None).await.unwrap().id);
    }
    let started = Instant::now();
    let mut runs = tokio::task::JoinSet::new();
    for id in ids {
        let engine = engine.clone();
        runs.spawn(async move { engine.run(&id).await });
    }
    while let Some(run) = runs.join_next().await {
        assert_eq!(run.unwrap().unwrap().status, FlowStatus::Succeeded);
    }
    (FLOWS * STEPS_PER_FLOW) as f64 / started.elapsed().as_secs_f64()
}

/// A flow of 10,001 steps whose first 10,000 succeeded under a runner that died; the time from
/// `run` to the 10,001st step starting.
async fn resume(path: &Path) -> Duration {
    let first_new: Arc<Mutex<Option<Instant>>> = Arc::default();
    let mut actions = Actions::builtin();
    let seen = Arc::clone(&first_new);
    actions.register("mark", move |_input: Value, _context: StepContext| {
        seen.lock().unwrap().get_or_insert_with(Instant::now);
        std::future::ready(Ok(Value::Null))
    });
    let engine = engine(path, actions);
    let spec = chain("resume", RESUME_DONE)
        .step(StepSpec::new("last", "mark").needs([format!("s{}", RESUME_DONE - 1)]));
    let flow = engine.create(&spec, None).await.unwrap();

    let handle = engine.handle();
    let dead = LeaseHolder { pid: 4_194_304 + 1, ..LeaseHolder::current() };
    let lease = handle.acquire_lease_as(&flow.id, dead, Duration::from_secs(3600)).unwrap();
    handle.set_status(&lease, FlowStatus::Running, None).unwrap();
    let mut ops = Vec::with_capacity(2 * RESUME_DONE);
    for n in 0..RESUME_DONE {
        let step = NewStep::new(format!("s{n}"), StepKind::Action).with_input(json!({"value": n}));
        ops.push(CheckpointOp::Begin { lease: lease.clone(), step });
        let outcome = StepOutcome::Succeeded(json!(n));
        ops.push(CheckpointOp::Finish { lease: lease.clone(), seq: n as u32 + 1, outcome });
    }
    let answers = handle.checkpoint(ops).unwrap();
    assert!(answers.iter().all(Result::is_ok));

    let started = Instant::now();
    let flow = engine.run(&flow.id).await.unwrap();
    assert_eq!(flow.status, FlowStatus::Succeeded);
    let first = first_new.lock().unwrap().expect("the new step ran");
    first.duration_since(started)
}

//! Task Flow on PostgreSQL, in one run, as `name: value` lines (ratios of figures taken in the
//! same run, on the same server):
//!
//! 1. `one_flow_ratio_to_raw`: a chain of `echo` steps in one flow, run by the engine on the
//!    PostgreSQL store (each step's outcome and the next step's start are one transaction),
//!    against the raw commit rate of the same server: one small row inserted per transaction
//!    on one connection, with the server's durability settings (`synchronous_commit`, `fsync`)
//!    for both. Target ≥ 0.8. The rounds interleave (raw, one flow, DBOS, raw) and each flow
//!    is compared with the mean of the two raw windows around it, as the engine's SQLite bench
//!    does: the disk's fsync latency drifts within seconds. Beside it, in the same rounds,
//!    `store_chain_ratio_to_raw`: the same checkpoints written straight to the store, without
//!    the engine (each ends a step and begins the next): what the store and the server take of
//!    a step, and so what the engine adds.
//! 2. `workers_4_ratio_to_1`: 64 flows of five I/O-bound steps (each fetches a URL of a
//!    loopback server that answers after 50 ms, as a model call waits on the network:
//!    `fixtures/pipelines/workers/io_bound.toml`), run by four `taskflow worker` processes of
//!    `--concurrency 16` against one such worker. The workers run first, as deployed workers
//!    do, and the flows are queued once each of them listens. A first batch of flows warms the
//!    workers up (their pools' connections, each a new server process); the five batches after
//!    it are measured, each is printed, and the ratio is of their medians. Each time is the
//!    span the database records, from the first step's start to the last step's end. Target ≥ 3.
//! 3. `one_flow_ratio_to_dbos`: the same chain as a DBOS workflow of as many sequential steps
//!    (DBOS's Python package, pinned in `benches/postgres/dbos-requirements.txt`, installed once
//!    into `target/bench-dbos`), its rounds interleaved with taskflow's. Target ≥ 10. When pip
//!    cannot install it the bench says so and prints the other figures.
//!
//! Each part works in a schema of its own on the server that `TASKFLOW_TEST_POSTGRES` names:
//! `source scripts/services/python.sh; source scripts/services/postgres.sh` starts one and sets
//! it. Run with `cargo bench -p taskflow-cli --bench postgres` (`TASKFLOW_BENCH_ROUNDS=N`,
//! `TASKFLOW_BENCH_STEPS=N` set the rounds and the chain's length, `TASKFLOW_BENCH_BATCHES=N`
//! the workers' measured batches; `TASKFLOW_BENCH_NO_DBOS=1` leaves DBOS out).

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use serde_json::json;
use taskflow_engine::{Actions, Engine, EngineOptions, FlowId, FlowStatus};
use taskflow_store::{
    CheckpointDone, CheckpointOp, NewFlow, NewStep, OwnerHandle, StepKind, StepOutcome,
};
use taskflow_store_postgres::scratch::{Scratch, TEST_URL_ENV};

#[path = "../../engine/benches/support/checkpoints.rs"]
mod checkpoints;
#[path = "support/venv.rs"]
mod venv;
#[path = "../../tests/support/workers.rs"]
mod workers;

use checkpoints::{chain, commits_per_sec, median};

/// Each of a round's two raw windows.
const RAW_SECONDS: f64 = 1.0;
const FLOWS: usize = 64;
const STEPS_PER_IO_FLOW: i64 = 5;
const IO_PIPELINE: &str = "fixtures/pipelines/workers/io_bound.toml";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn main() {
    if std::env::var(TEST_URL_ENV).map_or(true, |url| url.is_empty()) {
        eprintln!(
            "{TEST_URL_ENV} is not set: this bench runs against a real PostgreSQL server. Start \
             a throwaway one and run the bench from the workspace root with:\n\n  \
             source scripts/services/python.sh; source scripts/services/postgres.sh; \
             cargo bench -p taskflow-cli --bench postgres"
        );
        std::process::exit(2);
    }
    let rounds = setting("TASKFLOW_BENCH_ROUNDS", 5).max(1);
    let steps = setting("TASKFLOW_BENCH_STEPS", 200).max(2);
    chains(rounds, steps);
    workers_side_by_side(setting("TASKFLOW_BENCH_BATCHES", 5).max(1));
}

/// Part 1 and part 3: interleaved rounds of raw commits, taskflow's chain and DBOS's.
fn chains(rounds: usize, steps: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let raw_schema = Scratch::new();
    let mut raw = RawCommits::new(&raw_schema.url());
    let flow_schema = Scratch::new();
    let engine = runtime.block_on(warm_engine(&flow_schema.url(), steps));
    let store_schema = Scratch::new();
    let store = store_handle(&store_schema.url(), steps);
    let dbos_schema = Scratch::new();
    let mut dbos = Dbos::start(dbos_schema.schema(), steps)
        .map_err(|why| println!("dbos: not measured ({why})"))
        .ok();

    let (mut raws, mut ones, mut one_ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stores, mut store_ratios) = (Vec::new(), Vec::new());
    let (mut dboses, mut dbos_ratios) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let raw_before = raw.commits_per_sec();
        let one = runtime.block_on(one_flow(&engine, steps));
        let alone = store_chain(&store, steps);
        let dbos_rate = dbos.as_mut().map(|dbos| dbos.round());
        let raw_after = raw.commits_per_sec();
        let raw_rate = (raw_before + raw_after) / 2.0;
        eprintln!(
            "round {round}: raw {raw_before:.0} / {raw_after:.0} commits/s, one flow {one:.0} \
             steps/s ({:.2} of raw), the store alone {alone:.0} ({:.2}){}",
            one / raw_rate,
            alone / raw_rate,
            dbos_rate.map_or(String::new(), |rate| format!(", DBOS {rate:.1} steps/s"))
        );
        raws.push(raw_rate);
        ones.push(one);
        one_ratios.push(one / raw_rate);
        stores.push(alone);
        store_ratios.push(alone / raw_rate);
        if let Some(rate) = dbos_rate {
            dboses.push(rate);
            dbos_ratios.push(one / rate);
        }
    }
    println!("chain_steps: {steps}");
    println!("raw_postgres_commits_per_sec: {:.0}", median(&mut raws));
    println!("one_flow_echo_steps_per_sec: {:.0}", median(&mut ones));
    println!("one_flow_ratio_to_raw: {:.2}", median(&mut one_ratios));
    println!("store_chain_checkpoints_per_sec: {:.0}", median(&mut stores));
    println!("store_chain_ratio_to_raw: {:.2}", median(&mut store_ratios));
    if !dboses.is_empty() {
        println!("dbos_steps_per_sec: {:.1}", median(&mut dboses));
        println!("one_flow_ratio_to_dbos: {:.2}", median(&mut dbos_ratios));
    }
}

/// One small row per transaction on one connection (each statement outside `BEGIN` commits on
/// its own).
struct RawCommits {
    client: Client,
    insert: postgres::Statement,
}

impl RawCommits {
    fn new(url: &str) -> Self {
        let mut client = Client::connect(url, NoTls).expect("the test server");
        client
            .batch_execute("CREATE TABLE t (id BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)")
            .expect("a table");
        let insert = client.prepare("INSERT INTO t (v) VALUES ($1)").expect("a statement");
        let mut raw = RawCommits { client, insert };
        // Past the table's first pages and the connection's first plans, as the flow is.
        commits_per_sec(RAW_SECONDS / 2.0, || raw.commit());
        raw
    }

    fn commit(&mut self) {
        self.client.execute(&self.insert, &[&"a checkpoint"]).expect("an insert");
    }

    fn commits_per_sec(&mut self) -> f64 {
        commits_per_sec(RAW_SECONDS, || self.commit())
    }
}

/// An engine on the PostgreSQL store at `url` that has run one chain of `steps` steps.
async fn warm_engine(url: &str, steps: usize) -> Engine {
    let options = taskflow_store_postgres::OpenOptions::default();
    let taskflow = taskflow_store_postgres::open(url, &options).expect("the store opens");
    let engine =
        Engine::new(taskflow.bind("bench").unwrap(), Actions::builtin(), EngineOptions::default());
    one_flow(&engine, steps).await;
    engine
}

/// Steps per second of one chain of `steps` steps, from `run` to its end.
async fn one_flow(engine: &Engine, steps: usize) -> f64 {
    let flow = engine.create(&chain("one", steps), None).await.unwrap();
    let started = Instant::now();
    let flow = engine.run(&flow.id).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(flow.status, FlowStatus::Succeeded);
    steps as f64 / elapsed.as_secs_f64()
}

/// The owner-bound store at `url`, warmed up by one chain of `steps` checkpoints.
fn store_handle(url: &str, steps: usize) -> OwnerHandle {
    let options = taskflow_store_postgres::OpenOptions::default();
    let taskflow = taskflow_store_postgres::open(url, &options).expect("the store opens");
    let handle = taskflow.bind("bench").unwrap();
    store_chain(&handle, steps);
    handle
}

/// Checkpoints per second of a chain of `steps` steps written straight to the store: one that
/// begins the first step, then one per step that ends it and begins the next, and one that ends
/// the last step and the flow, as the engine writes a chain (the first one also starts the
/// flow), and no engine.
fn store_chain(handle: &OwnerHandle, steps: usize) -> f64 {
    let (_, lease) =
        handle.create_held(NewFlow::managed("store-chain"), Duration::from_secs(600)).unwrap();
    let begin = |n: usize| CheckpointOp::Begin {
        lease: lease.clone(),
        step: NewStep::new(format!("s{n}"), StepKind::Action).with_input(json!({"value": n})),
    };
    let begun = |done: Vec<taskflow_store::Result<CheckpointDone>>| match done.last() {
        Some(Ok(CheckpointDone::Step(step))) => step.seq,
        other => panic!("a step begins: {other:?}"),
    };
    let started = Instant::now();
    let running = CheckpointOp::Status {
        lease: lease.clone(),
        to: FlowStatus::Running,
        error: None,
        state: None,
    };
    let mut seq = begun(handle.checkpoint(vec![running, begin(0)]).unwrap());
    for n in 1..steps {
        let finish = CheckpointOp::Finish {
            lease: lease.clone(),
            seq,
            outcome: StepOutcome::Succeeded(json!({"value": n - 1})),
        };
        seq = begun(handle.checkpoint(vec![finish, begin(n)]).unwrap());
    }
    let last = StepOutcome::Succeeded(json!({"value": steps - 1}));
    let ended = vec![
        CheckpointOp::Finish { lease: lease.clone(), seq, outcome: last },
        CheckpointOp::Status { lease, to: FlowStatus::Succeeded, error: None, state: None },
    ];
    for done in handle.checkpoint(ended).unwrap() {
        done.expect("the last step ends, and the flow with it");
    }
    steps as f64 / started.elapsed().as_secs_f64()
}

/// DBOS's side: `benches/postgres/dbos_chain.py` in its own environment, one workflow per line
/// it is sent.
struct Dbos {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Dbos {
    fn start(schema: &str, steps: usize) -> Result<Dbos, String> {
        if std::env::var_os("TASKFLOW_BENCH_NO_DBOS").is_some() {
            return Err("TASKFLOW_BENCH_NO_DBOS is set".into());
        }
        let benches = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/postgres");
        let venv = workers::root().join("target/bench-dbos");
        venv::python_environment(&venv, &benches.join("dbos-requirements.txt"))?;
        let mut child = Command::new(venv.join("bin/python"))
            .arg(benches.join("dbos_chain.py"))
            .arg(std::env::var(TEST_URL_ENV).unwrap())
            .arg(schema)
            .arg(steps.to_string())
            .env("DBOS__CLOUD", "false")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| format!("cannot start python: {error}"))?;
        let input = child.stdin.take().unwrap();
        let mut output = BufReader::new(child.stdout.take().unwrap());
        let mut ready = String::new();
        output.read_line(&mut ready).map_err(|error| error.to_string())?;
        if ready.trim() != "ready" {
            let _ = child.kill();
            let _ = child.wait();
            return Err("dbos_chain.py did not start".into());
        }
        Ok(Dbos { child, input, output })
    }

    /// Steps per second of one workflow.
    fn round(&mut self) -> f64 {
        writeln!(self.input, "run").expect("DBOS's side reads");
        let mut line = String::new();
        self.output.read_line(&mut line).expect("DBOS's side answers");
        line.trim().parse().unwrap_or_else(|_| panic!("DBOS's side answered {line:?}"))
    }
}

impl Drop for Dbos {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Part 2: 64 queued I/O-bound flows run by four workers, then by one, `batches` times each
/// once warm.
fn workers_side_by_side(batches: usize) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(async {
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .respond_with(
                wiremock::ResponseTemplate::new(200)
                    .set_body_string("an answer")
                    .set_delay(Duration::from_millis(50)),
            )
            .mount(&server)
            .await;
        server
    });
    let fixture = std::fs::read_to_string(workers::root().join(IO_PIPELINE)).expect("the fixture");
    let folder = tempfile::tempdir().expect("a temporary folder");
    let pipeline = folder.path().join("io_bound.toml");
    let address = server.address().to_string();
    std::fs::write(&pipeline, fixture.replace("MODEL_SERVER", &address)).expect("the pipeline");
    let pipeline = pipeline.to_str().expect("a UTF-8 path");
    let four = workers_run(4, pipeline, batches);
    let one = workers_run(1, pipeline, batches);
    println!("workers_flows: {FLOWS}");
    println!("workers_4_seconds: {:.2}", four.as_secs_f64());
    println!("workers_1_seconds: {:.2}", one.as_secs_f64());
    println!("workers_4_ratio_to_1: {:.2}", one.as_secs_f64() / four.as_secs_f64());
}

/// The span the database records for [`FLOWS`] flows run by `count` workers of concurrency
/// 16, in a schema of their own: the median of `batches` batches. The workers are started first
/// and the flows queued once every one of them listens, as flows reach workers that are already
/// running. A first batch of as many flows warms the workers up (their pools make connections
/// as they need them, and each new connection is a new server process that prepares every
/// statement again); the batches after it are the ones measured, as deployed workers that have
/// run flows before would run them. One batch of four workers lasts under half a second, so a
/// busy moment of the machine moves it by a tenth or more: the median of several is steadier.
fn workers_run(count: usize, pipeline: &str, batches: usize) -> Duration {
    let scratch = Scratch::new();
    let db = scratch.url();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let engine = runtime.block_on(async {
        // A connection for each flow, so that a batch is queued at once: the submitter is not
        // what is measured. Through the default pool of 16 the flows were queued over up to a
        // tenth of a second, which the span of four workers (a third of a second) counted.
        let options = taskflow_store_postgres::OpenOptions {
            pool_size: FLOWS as u32,
            ..taskflow_store_postgres::OpenOptions::default()
        };
        let taskflow = taskflow_store_postgres::open(&db, &options).expect("the store opens");
        Engine::new(taskflow.bind("alice").unwrap(), Actions::builtin(), EngineOptions::default())
    });
    let plan = taskflow_engine::pipeline::load(Path::new(pipeline), &Actions::builtin())
        .expect("the pipeline loads");
    let effects = tempfile::NamedTempFile::new().expect("a temporary file");
    let mut running: Vec<workers::Worker> = (0..count)
        .map(|n| workers::worker(&db, &format!("host-{n}"), effects.path(), 16))
        .collect();
    let mut client = Client::connect(&db, NoTls).expect("the test server");
    workers::wait_until(Duration::from_secs(30), || listening(&mut client) >= count);
    let mut batch = |name: &str| {
        let busy_before = busy_cpu();
        // All at once, each on a connection of its own, so that the flows are queued within a
        // few commits of each other rather than one commit after another.
        runtime.block_on(futures_util::future::join_all((0..FLOWS).map(|n| {
            let id = FlowId::parse(&format!("{name}-{n}")).expect("an id");
            let (engine, spec) = (&engine, &plan.spec);
            async move { engine.create(spec, Some(id)).await.expect("a queued flow") }
        })));
        let mut span = span_once_done(&mut client, count, &format!("{name}-%"));
        assert!(span.steps >= FLOWS as i64 * STEPS_PER_IO_FLOW, "every step ran");
        span.busy_per_flow = busy_before
            .zip(busy_cpu())
            .map(|(before, after)| (after - before).as_secs_f64() * 1000.0 / FLOWS as f64);
        span
    };
    let first = batch("first");
    let measured: Vec<Span> = (0..batches).map(|n| batch(&format!("measured{n}"))).collect();
    for child in &mut running {
        workers::kill(child);
    }
    let warm_up = [("first batch, the workers just started", &first)];
    let names: Vec<String> =
        (1..=batches).map(|n| format!("measured batch {n} of {batches}")).collect();
    for (which, span) in warm_up.into_iter().chain(names.iter().map(String::as_str).zip(&measured))
    {
        eprintln!(
            "{count} worker(s), {which}: {FLOWS} flows in {:.2} s from the first step to the \
             last; a step took {:.0} ms on average (the server answers after 50 ms); the last \
             flow began {} ms after the first (the flows were queued within {} ms, and began \
             {:.0} ms after they were queued on average){}",
            span.millis as f64 / 1000.0,
            span.step_millis,
            span.starts_millis,
            span.created_millis,
            span.waited_millis,
            span.busy_per_flow.map_or(String::new(), |busy| format!(
                "; the machine's processors were busy {busy:.1} ms per flow, from the first \
                 flow queued until the span was read"
            )),
        );
    }
    let mut spans: Vec<f64> = measured.iter().map(|span| span.millis as f64).collect();
    Duration::from_secs_f64(median(&mut spans) / 1000.0)
}

/// Waits until every flow whose id is like `flows` has succeeded (no flow may fail), then reads
/// what the database recorded of their run.
fn span_once_done(client: &mut Client, workers: usize, flows: &str) -> Span {
    let started = Instant::now();
    let mut progress = Instant::now();
    loop {
        let row = client
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), \
                        count(*) FILTER (WHERE status IN ('failed', 'cancelled')) \
                 FROM flows WHERE id LIKE $1",
                &[&flows],
            )
            .expect("a count");
        let (succeeded, failed): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!(failed, 0, "flows failed under {workers} workers");
        if succeeded == FLOWS as i64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(300), "{workers} workers did not finish");
        if progress.elapsed() > Duration::from_secs(5) {
            eprintln!("{workers} worker(s): {succeeded} of {FLOWS} flows done");
            progress = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    client
        .query_one(
            "SELECT max(ended_at) - min(started_at), count(*), \
                    avg(ended_at - started_at)::float8, \
                    (SELECT max(s) - min(s) FROM (SELECT min(started_at) AS s \
                     FROM steps WHERE flow_id LIKE $1 GROUP BY flow_id) AS starts), \
                    (SELECT max(created_at) - min(created_at) FROM flows WHERE id LIKE $1), \
                    (SELECT avg(s - f.created_at)::float8 FROM flows f JOIN \
                     (SELECT flow_id, min(started_at) AS s FROM steps WHERE flow_id LIKE $1 \
                      GROUP BY flow_id) AS firsts ON firsts.flow_id = f.id) \
             FROM steps WHERE flow_id LIKE $1",
            &[&flows],
        )
        .map(|row| Span {
            busy_per_flow: None,
            millis: row.get(0),
            steps: row.get(1),
            step_millis: row.get(2),
            starts_millis: row.get(3),
            created_millis: row.get(4),
            waited_millis: row.get(5),
        })
        .expect("the span")
}

/// What the database recorded of a run of the workers, in milliseconds.
struct Span {
    /// From the first step's start to the last step's end.
    millis: i64,
    steps: i64,
    /// A step's mean duration.
    step_millis: f64,
    /// From the first flow's first step to the last flow's.
    starts_millis: i64,
    /// From the first flow queued to the last.
    created_millis: i64,
    /// From a flow queued to its first step, on average.
    waited_millis: f64,
    /// The time every processor of the machine was busy (any process), per flow, from the
    /// first flow queued until the span was read; `None` where `/proc/stat` is missing.
    busy_per_flow: Option<f64>,
}

/// How long the machine's processors have been busy since it started, all together (Linux:
/// the `cpu` line of `/proc/stat`: user, nice, system, irq and softirq; not idle, I/O wait,
/// time stolen by a hypervisor, nor the guest columns, which user already counts).
fn busy_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|n| n.parse().ok()).collect();
    let busy: u64 = [0, 1, 2, 5, 6].iter().filter_map(|&column| ticks.get(column)).sum();
    // The kernel counts in USER_HZ, 100 per second on every Linux architecture that matters.
    Some(Duration::from_millis(busy * 10))
}

/// How many connections of the server wait for wake-ups (one per worker).
fn listening(client: &mut Client) -> usize {
    let row = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
            &[&format!("LISTEN {}", taskflow_store_postgres::WAKE_CHANNEL)],
        )
        .expect("the server's activity");
    row.get::<_, i64>(0) as usize
}

//! The PostgreSQL backend: the conformance kit of `taskflow-store` on a real server (each test
//! in a scratch schema of its own), and what only a server has: URLs with passwords, schema
//! versions, and connections the server drops.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use taskflow_store::testkit::{self, Database, Harness};
use taskflow_store::{
    CheckpointDone, CheckpointOp, FlowStatus, LeaseHolder, NewFlow, NewStep, StateReport, StepKind,
    StepOutcome, StepReport, StepStatus, StorageErrorKind, TaskFlow,
};
use taskflow_store_postgres::scratch::{CollatedDatabase, Scratch};
use taskflow_store_postgres::{OpenOptions, PostgresStore};

struct Postgres;

fn open(url: &str) -> TaskFlow {
    TaskFlow::new(Arc::new(PostgresStore::open(url, &OpenOptions::default()).unwrap()))
}

impl Harness for Postgres {
    fn fresh(&self) -> Database {
        let scratch = Scratch::new();
        let url = scratch.url();
        let taskflow = open(&url);
        Database::new(taskflow, move || open(&url), scratch)
    }
}

taskflow_store::conformance_tests!(Postgres);

/// A harness whose databases are schemas of one database of a locale's collation.
struct Collated<'a>(&'a CollatedDatabase);

impl Harness for Collated<'_> {
    fn fresh(&self) -> Database {
        let scratch = self.0.scratch();
        let url = scratch.url();
        let taskflow = open(&url);
        Database::new(taskflow, move || open(&url), scratch)
    }
}

/// In a database whose collation orders text as a language does (ICU's or `en_US.UTF-8`, the
/// usual default of a distribution's server), ids and names still compare by their bytes, as
/// on SQLite: the kit's tests that filter and order by them pass there too.
#[test]
fn ids_and_names_compare_by_their_bytes_in_a_database_of_a_locales_collation() {
    let database = match CollatedDatabase::new() {
        Ok(database) => database,
        Err(why) => {
            eprintln!("skipped: no database of a locale's collation can be made here: {why}");
            return;
        }
    };
    let collated = Collated(&database);
    eprintln!("under {}", database.collation());
    let kit: [fn(&dyn Harness); 4] = [
        testkit::a_schedules_flows_are_its_slots_and_schedules_come_in_the_order_of_their_names_bytes,
        testkit::list_is_newest_first_per_owner_with_filters_and_step_counts,
        testkit::schedules_are_owner_scoped_with_revisions_and_apply_twice_changes_nothing,
        testkit::prune_removes_ended_trees_in_batches_and_never_an_unfinished_flow,
    ];
    for test in kit {
        test(&collated);
    }
}

/// Options that give up on a server within a third of a second.
fn impatient() -> OpenOptions {
    OpenOptions {
        connect_timeout: Duration::from_millis(300),
        retry_for: Duration::from_millis(300),
        ..OpenOptions::default()
    }
}

fn server() -> postgres::Client {
    postgres::Client::connect(&taskflow_store_postgres::scratch::server_url(), postgres::NoTls)
        .unwrap()
}

/// `url` with a password added to its user (the test server trusts loopback, so any is taken).
fn with_password(url: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, hosts) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:{password}@{hosts}")
}

#[test]
fn the_password_of_the_url_never_reaches_a_message() {
    let scratch = Scratch::new();
    let url = with_password(&scratch.url(), "s3cret-pw");
    let store = PostgresStore::open(&url, &OpenOptions::default()).unwrap();
    let shown = format!("{store:?} {}", store.location());
    assert!(!shown.contains("s3cret-pw") && shown.contains("taskflow@127.0.0.1"), "{shown}");

    // A server that is not there: the error names the database, not the password.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let quick = impatient();
    let nowhere = format!("postgres://taskflow:s3cret-pw@127.0.0.1:{port}/postgres");
    let error = PostgresStore::open(&nowhere, &quick).unwrap_err();
    let message = format!("{error} {error:?}");
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Unavailable), "{message}");
    assert!(!message.contains("s3cret-pw"), "{message}");
    assert!(
        message.contains(&format!("postgres://taskflow@127.0.0.1:{port}/postgres")),
        "{message}"
    );
}

#[test]
fn a_newer_schema_is_refused_and_left_as_it_is() {
    let scratch = Scratch::new();
    drop(open(&scratch.url()));
    let mut server = server();
    let table = format!("{}.taskflow_schema", scratch.schema());
    server.batch_execute(&format!("UPDATE {table} SET version = 42")).unwrap();
    let error = PostgresStore::open(&scratch.url(), &OpenOptions::default()).unwrap_err();
    assert_eq!(
        error.storage_kind(),
        Some(StorageErrorKind::SchemaTooNew {
            found: 42,
            supported: taskflow_store_postgres::SCHEMA_VERSION
        })
    );
    assert!(error.to_string().contains("newer than this taskflow"), "{error}");
    let version: i64 =
        server.query_one(&format!("SELECT version FROM {table}"), &[]).unwrap().get(0);
    assert_eq!(version, 42, "nothing written");
    let schema_version = taskflow_store_postgres::schema_version_of;
    assert!(schema_version(&scratch.url(), &OpenOptions::default()).is_err());
}

/// A server that takes no writes (`default_transaction_read_only`, set here for the connection
/// as a standby or a read-only user's setting would have it) is a database that cannot be
/// written, and says why in the server's terms; reads go on.
#[test]
fn a_server_that_takes_no_writes_says_why() {
    let scratch = Scratch::new();
    let alice = open(&scratch.url()).bind("alice").unwrap();
    let flow = alice.create(NewFlow::managed("before")).unwrap();
    let read_only = format!("{}%20-c%20default_transaction_read_only%3Don", scratch.url());
    let alice = open(&read_only).bind("alice").unwrap();
    let taskflow_store::Error::Storage(error) = alice.create(NewFlow::managed("x")).unwrap_err()
    else {
        panic!("not a storage error")
    };
    assert_eq!(error.kind, StorageErrorKind::ReadOnly, "{error}");
    assert!(error.detail.contains("the server takes no writes"), "{error}");
    assert!(error.detail.contains("`default_transaction_read_only` is on"), "{error}");
    assert!(error.detail.contains("or the server is a standby"), "{error}");
    let said = error.to_string();
    assert!(said.contains("cannot be written: the server takes no writes"), "{said}");
    assert!(!said.contains("file"), "{said}");
    assert_eq!(alice.flow(&flow.id).unwrap(), flow);
}

#[test]
fn tables_of_another_program_are_not_taken_for_a_store() {
    let scratch = Scratch::new();
    server().batch_execute(&format!("CREATE TABLE {}.flows (x int)", scratch.schema())).unwrap();
    let error = PostgresStore::open(&scratch.url(), &OpenOptions::default()).unwrap_err();
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Corrupt), "{error}");
    assert!(error.to_string().contains("no taskflow schema version"), "{error}");
}

#[test]
fn connections_the_server_drops_are_replaced_before_any_work_is_sent() {
    let scratch = Scratch::new();
    let name = format!("drop-{}", scratch.schema());
    let url = format!("{}&application_name={name}", scratch.url());
    let alice = open(&url).bind("alice").unwrap();
    let flow = alice.create(NewFlow::managed("survives")).unwrap();
    for _ in 0..3 {
        end_connections(&name);
        let lease = alice.acquire_lease(&flow.id, Duration::from_secs(30)).unwrap();
        assert_eq!(alice.flow(&flow.id).unwrap().lease.unwrap().expires_at, lease.expires_at);
        alice.release_lease(&lease).unwrap();
    }
}

/// Ends the server's connections of application `name` (at least one); returns the
/// connection that asked, to watch them go.
fn end_connections(name: &str) -> postgres::Client {
    let mut server = server();
    let ended: i64 = server
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&name],
        )
        .unwrap()
        .get(0);
    assert!(ended >= 1, "the store's connections were ended");
    server
}

#[test]
fn a_role_is_held_by_one_store_at_a_time_per_schema_and_freed_when_its_holder_goes() {
    let (scratch, other) = (Scratch::new(), Scratch::new());
    let (first, second) = (open(&scratch.url()), open(&scratch.url()));
    let mut held = first.lead("scheduler").unwrap().expect("the role is free");
    assert!(held.still_held());
    assert!(second.lead("scheduler").unwrap().is_none(), "held by the first store");
    assert!(second.lead("another role").unwrap().is_some(), "roles are apart");
    assert!(open(&other.url()).lead("scheduler").unwrap().is_some(), "schemas are apart");
    assert!(scratch.role_held("scheduler"));
    drop(held);
    let mut taken = second.lead("scheduler").unwrap().expect("free once let go");
    assert!(taken.still_held());

    // The holder's connection cut by the server (as when its process dies): the role is lost
    // and free for another.
    let mut server = server();
    server
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks
             WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
               AND (classid::bigint << 32 | objid::bigint)
                   = hashtextextended($1, 0)",
            &[&format!("{}:scheduler", scratch.schema())],
        )
        .unwrap();
    wait_for(|| !taken.still_held());
    assert!(first.lead("scheduler").unwrap().is_some());
}

fn wait_for(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < std::time::Duration::from_secs(10), "not done after 10 s");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A runner's chain as one store runs it: a flow leased and running, its first step begun.
struct Chain {
    store: Arc<PostgresStore>,
    alice: taskflow_store::OwnerHandle,
    lease: taskflow_store::Lease,
    running: taskflow_store::Step,
}

impl Chain {
    fn start(url: &str, ttl: Duration) -> Chain {
        let store = Arc::new(PostgresStore::open(url, &OpenOptions::default()).unwrap());
        let alice = TaskFlow::new(store.clone()).bind("alice").unwrap();
        let flow = alice.create(NewFlow::managed("chain")).unwrap();
        let lease = alice.acquire_lease(&flow.id, ttl).unwrap();
        alice.set_status(&lease, FlowStatus::Running, None).unwrap();
        let running = alice.begin_step(&lease, NewStep::new("s0", StepKind::Action)).unwrap();
        Chain { store, alice, lease, running }
    }

    /// Ends the running step and begins step `name`; returns the answers and the round trips
    /// they took.
    fn next(&mut self, name: &str) -> (Vec<taskflow_store::Result<CheckpointDone>>, u64) {
        let before = self.store.round_trips();
        let answers = self
            .alice
            .checkpoint(vec![
                CheckpointOp::Finish {
                    lease: self.lease.clone(),
                    seq: self.running.seq,
                    outcome: StepOutcome::Succeeded(json!(name)),
                },
                CheckpointOp::Begin {
                    lease: self.lease.clone(),
                    step: NewStep::new(name, StepKind::Action),
                },
            ])
            .unwrap();
        if let Some(Ok(CheckpointDone::Step(step))) = answers.get(1) {
            self.running = step.clone();
        }
        (answers, self.store.round_trips() - before)
    }

    /// The seq and status of each step of the flow's journal.
    fn journal(&self) -> Vec<(u32, String)> {
        let steps = self.alice.steps(&self.lease.flow_id).unwrap();
        steps.iter().map(|step| (step.seq, step.status.as_str().to_owned())).collect()
    }
}

fn journal(entries: &[(u32, &str)]) -> Vec<(u32, String)> {
    entries.iter().map(|&(seq, status)| (seq, status.to_owned())).collect()
}

/// A runner's checkpoint that ends one step and begins the next costs one round trip: the
/// store remembers what its last checkpoint of the flow left, and sends every write with the
/// `BEGIN`, behind statements that fail the transaction unless the flow is still as
/// remembered, and with the `COMMIT`.
#[test]
fn a_checkpoint_that_ends_a_step_and_begins_the_next_takes_one_round_trip() {
    let scratch = Scratch::new();
    let mut chain = Chain::start(&scratch.url(), Duration::from_secs(60));
    for n in 1..4 {
        let (answers, round_trips) = chain.next(&format!("s{n}"));
        assert_eq!(round_trips, 1, "step {n}");
        assert!(answers.iter().all(Result::is_ok), "step {n}: {answers:?}");
    }
    let ended = [(1, "succeeded"), (2, "succeeded"), (3, "succeeded"), (4, "running")];
    assert_eq!(chain.journal(), journal(&ended));
}

/// A run's first checkpoint after its start and its last, which ends its step and the flow, take
/// one round trip each: the store remembers the flow as the start read it, its whole journal
/// with it, so neither reads the flow nor counts its running steps.
#[test]
fn a_runs_first_checkpoint_and_its_last_take_one_round_trip_each() {
    let scratch = Scratch::new();
    let store = Arc::new(PostgresStore::open(&scratch.url(), &OpenOptions::default()).unwrap());
    let alice = TaskFlow::new(store.clone()).bind("alice").unwrap();
    let flow = alice.create(NewFlow::managed("run")).unwrap();
    let lease = alice.acquire_lease(&flow.id, Duration::from_secs(60)).unwrap();
    alice.run_start(&flow.id).unwrap();
    let status = |to| CheckpointOp::Status { lease: lease.clone(), to, error: None, state: None };
    let first = vec![
        status(FlowStatus::Running),
        CheckpointOp::Begin { lease: lease.clone(), step: NewStep::new("only", StepKind::Action) },
    ];
    let last = vec![
        CheckpointOp::Finish {
            lease: lease.clone(),
            seq: 1,
            outcome: StepOutcome::Succeeded(json!("done")),
        },
        status(FlowStatus::Succeeded),
    ];
    for (ops, which) in [(first, "the first checkpoint"), (last, "the last")] {
        let before = store.round_trips();
        let answers = alice.checkpoint(ops).unwrap();
        assert!(answers.iter().all(Result::is_ok), "{which}: {answers:?}");
        assert_eq!(store.round_trips() - before, 1, "{which}");
    }
    assert_eq!(alice.flow(&flow.id).unwrap().status, FlowStatus::Succeeded);
}

/// What another process changed since a store's last checkpoint of a flow (a cancel, another
/// runner's lease, a step) fails the remembering transaction before it writes anything; the
/// checkpoint then runs again reading the flow, and answers as a store that remembers nothing.
#[test]
fn a_checkpoint_finds_what_another_process_changed_since_its_last_one() {
    let scratch = Scratch::new();
    let other = open(&scratch.url()).bind("alice").unwrap();

    // A cancel requested elsewhere: the running step ends, no step begins after it.
    let mut chain = Chain::start(&scratch.url(), Duration::from_secs(60));
    assert_eq!(chain.next("s1").1, 1);
    other.request_cancel(&chain.lease.flow_id, None).unwrap();
    let (answers, round_trips) = chain.next("s2");
    assert!(round_trips > 1, "the stale attempt, then the checkpoint again: {round_trips}");
    assert!(answers[0].is_ok(), "{answers:?}");
    let refused = answers[1].as_ref().unwrap_err().to_string();
    assert!(refused.contains("cancel"), "{refused}");
    assert_eq!(chain.journal(), journal(&[(1, "succeeded"), (2, "succeeded")]));

    // The lease taken over by another runner once it expired: nothing is written.
    let mut chain = Chain::start(&scratch.url(), Duration::from_millis(300));
    assert_eq!(chain.next("s1").1, 1);
    std::thread::sleep(Duration::from_millis(400));
    let taken = other.acquire_lease(&chain.lease.flow_id, Duration::from_secs(60)).unwrap();
    assert_ne!(taken.token, chain.lease.token);
    let (answers, _) = chain.next("s2");
    assert!(answers.iter().all(Result::is_err), "{answers:?}");
    assert_eq!(chain.journal(), journal(&[(1, "succeeded"), (2, "running")]));
}

/// Checkpoints of one flow from several threads of one store (a runner's renewals beside its
/// other writes) while another store writes to the flow: each run starts from the memory it
/// took before it began or from none, so a stale memory always leads to a second run, never to
/// an error.
#[test]
fn checkpoints_of_one_flow_from_several_threads_never_fail_on_a_stale_memory() {
    let scratch = Scratch::new();
    let chain = Chain::start(&scratch.url(), Duration::from_secs(600));
    let other = open(&scratch.url()).bind("alice").unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let signals = {
        let (stop, id) = (stop.clone(), chain.lease.flow_id.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                other.send_signal(&id, "poke", json!(1)).unwrap();
            }
        })
    };
    let renewers: Vec<_> = (0..3)
        .map(|_| {
            let (alice, lease) = (chain.alice.clone(), chain.lease.clone());
            std::thread::spawn(move || {
                let renewals =
                    (0..400).map(|_| alice.renew_lease(&lease, Duration::from_secs(600)));
                renewals
                    .filter_map(|renewed| renewed.err().map(|error| error.to_string()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let failures: Vec<String> =
        renewers.into_iter().flat_map(|renewer| renewer.join().unwrap()).collect();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    signals.join().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
}

/// A pooled connection the server closed while it sat unused is found before a checkpoint's
/// one round trip is sent on it, so the checkpoint goes on a fresh connection, once.
#[test]
fn a_checkpoint_goes_on_a_fresh_connection_when_the_server_closed_the_pooled_one() {
    let scratch = Scratch::new();
    let name = format!("idle-{}", scratch.schema());
    let url = format!("{}&application_name={name}", scratch.url());
    let mut chain = Chain::start(&url, Duration::from_secs(60));
    assert_eq!(chain.next("s1").1, 1);
    let mut server = end_connections(&name);
    wait_for(|| {
        let left: i64 = server
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .unwrap()
            .get(0);
        left == 0
    });
    let (answers, round_trips) = chain.next("s2");
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(round_trips, 1);
    assert_eq!(chain.journal(), journal(&[(1, "succeeded"), (2, "succeeded"), (3, "running")]));
}

/// Creating a flow waits for the server twice: to look for a flow of the same id (with the
/// `BEGIN`), then for the flow, its spec, its revision, its event and the `COMMIT` together.
#[test]
fn a_flow_is_created_in_two_round_trips() {
    let scratch = Scratch::new();
    let store = Arc::new(PostgresStore::open(&scratch.url(), &OpenOptions::default()).unwrap());
    let alice = TaskFlow::new(store.clone()).bind("alice").unwrap();
    let before = store.round_trips();
    let spec = json!({"name": "created", "steps": []});
    let flow = alice.create(NewFlow::managed("created").with_spec(spec.clone())).unwrap();
    assert_eq!(store.round_trips() - before, 2);
    assert_eq!(alice.flow(&flow.id).unwrap().spec, Some(spec));
    assert_eq!(alice.history(&flow.id).unwrap().len(), 1);
    let taken = alice.create(NewFlow::managed("again").with_id(flow.id.clone()));
    assert!(taken.is_err(), "an id taken is refused");
}

/// A claim reads the flows it takes as it locks them, and nothing waits for its writes: the
/// query that finds and locks them goes with the `BEGIN`, every lease and revision with the
/// `COMMIT`. Two round trips, however many flows.
#[test]
fn a_claim_reads_its_flows_once_as_it_locks_them() {
    const FLOWS: usize = 8;
    let scratch = Scratch::new();
    let store = Arc::new(PostgresStore::open(&scratch.url(), &OpenOptions::default()).unwrap());
    let taskflow = TaskFlow::new(store.clone());
    let alice = taskflow.bind("alice").unwrap();
    for n in 0..FLOWS {
        alice.create(NewFlow::managed(format!("queued {n}"))).unwrap();
    }
    let before = store.round_trips();
    let claims =
        taskflow.claim_as(&LeaseHolder::current(), Duration::from_secs(60), 100, &[]).unwrap();
    assert_eq!(claims.len(), FLOWS);
    assert_eq!(store.round_trips() - before, 2);
    let events = alice.events(&taskflow_store::EventQuery::default()).unwrap();
    for claim in &claims {
        let flow = alice.flow(&claim.lease.flow_id).unwrap();
        assert_eq!(flow.lease.unwrap().expires_at, claim.lease.expires_at);
        let revisions: Vec<u64> =
            alice.history(&flow.id).unwrap().iter().map(|revision| revision.revision).collect();
        assert_eq!(revisions, [1, 2], "the lease's revision written once");
        let flow_events = events.iter().filter(|event| event.flow_id == flow.id).count();
        assert_eq!(flow_events, 2, "its creation and its lease");
        alice.renew_lease(&claim.lease, Duration::from_secs(60)).unwrap();
    }
}

/// A read is one round trip: `BEGIN` and the query go together, and the `COMMIT` of a
/// read-only transaction is not waited for. The connection then serves the next transactions
/// as before.
#[test]
fn a_read_takes_one_round_trip_and_leaves_its_connection_ready() {
    let scratch = Scratch::new();
    let options = OpenOptions { pool_size: 1, ..OpenOptions::default() };
    let store = Arc::new(PostgresStore::open(&scratch.url(), &options).unwrap());
    let alice = TaskFlow::new(store.clone()).bind("alice").unwrap();
    let flow = alice.create(NewFlow::managed("read")).unwrap();
    for _ in 0..3 {
        let before = store.round_trips();
        assert_eq!(alice.flow_without_spec(&flow.id).unwrap().id, flow.id);
        assert_eq!(store.round_trips() - before, 1);
        let lease = alice.acquire_lease(&flow.id, Duration::from_secs(60)).unwrap();
        alice.release_lease(&lease).unwrap();
    }
    assert_eq!(
        alice.history(&flow.id).unwrap().len(),
        7,
        "created, then three leases taken and given back"
    );
}

/// A log-in the server refuses for good (here, a database that does not exist) fails at once
/// and says why, where a server that cannot be reached is waited for (`retry_for`).
#[test]
fn a_log_in_the_server_refuses_fails_at_once() {
    let server = taskflow_store_postgres::scratch::server_url();
    let (base, _) = server.rsplit_once('/').unwrap();
    let url = format!("{base}/no_such_database");
    let patient = OpenOptions { retry_for: Duration::from_secs(120), ..OpenOptions::default() };
    let started = Instant::now();
    let error = PostgresStore::open(&url, &patient).unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(60), "refused at once, not retried: {waited:?}");
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Unavailable), "{error}");
    assert!(error.to_string().contains("\"no_such_database\" does not exist"), "{error}");
}

/// Batches larger than the socket's buffers (a report of several megabytes, its answer read
/// back) go out and come back whole: the connection waits until the socket can take more,
/// reading the server's answers meanwhile.
#[test]
fn a_batch_larger_than_the_sockets_buffers_goes_and_comes_back_whole() {
    let scratch = Scratch::new();
    let options = OpenOptions { pool_size: 1, ..OpenOptions::default() };
    let alice = TaskFlow::new(Arc::new(PostgresStore::open(&scratch.url(), &options).unwrap()))
        .bind("alice")
        .unwrap();
    let flow = alice.create(NewFlow::mirrored("big", "ci")).unwrap();
    let big: String = (0..4_000_000).map(|n| char::from(b'a' + (n % 26) as u8)).collect();
    let report = StateReport {
        state: Some(json!({ "notes": big })),
        steps: (0..3)
            .map(|n| StepReport {
                name: format!("part {n}"),
                status: StepStatus::Succeeded,
                output: Some(json!(big)),
                error: None,
            })
            .collect(),
        ..StateReport::default()
    };
    alice.report(&flow.id, report, None).unwrap();
    let read = alice.flow(&flow.id).unwrap();
    assert_eq!(read.state.as_ref().unwrap()["notes"].as_str().unwrap(), big);
    let steps = alice.steps(&flow.id).unwrap();
    assert_eq!(steps.len(), 3);
    assert!(steps.iter().all(|step| step.output.as_ref().unwrap().as_str() == Some(&big)));
}

/// A server that takes the connection and never answers the log-in is given up on after the
/// connect timeout, as one that does not take it at all.
#[test]
fn a_server_that_never_answers_the_log_in_is_given_up_on() {
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let taken: Vec<_> = silent.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(3));
        drop(taken);
    });
    let quick = impatient();
    let url = format!("postgres://taskflow@127.0.0.1:{port}/postgres");
    let started = Instant::now();
    let error = PostgresStore::open(&url, &quick).unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(3), "given up on before the server let go: {waited:?}");
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Unavailable), "{error}");
    held.join().unwrap();
}

/// A wake-up connection the server cut is made again, and its next wait says so at once: a
/// wake-up sent while it was away is lost, so its owner looks for work then. Wake-ups come
/// again on the new connection. The channel is the database's, so the other tests' wake-ups
/// (of their own schemas) may come in between, and one may be the wake-up a wait gives.
#[test]
fn a_listener_whose_connection_was_cut_wakes_its_owner_once_it_is_back() {
    use taskflow_store_postgres::Wake;
    let scratch = Scratch::new();
    let name = format!("listen-{}", scratch.schema());
    let url = format!("{}&application_name={name}", scratch.url());
    let store = PostgresStore::open(&url, &OpenOptions::default()).unwrap();
    let mut listener = store.listen().unwrap();
    assert_eq!(listener.wait(Duration::from_millis(50)).unwrap(), None, "nothing yet");
    let cut = server()
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE 'LISTEN%'",
            &[&name],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(cut, 1, "the listener's connection");
    // Until a deadline, not for a number of wake-ups: the other tests' may come by the dozen.
    let mut wait_for = |wanted: &dyn Fn(&Wake) -> bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if listener
                .wait(Duration::from_millis(50))
                .ok()
                .flatten()
                .is_some_and(|woke| wanted(&woke))
            {
                return true;
            }
        }
        false
    };
    assert!(
        wait_for(&|woke| *woke == Wake::Reconnected),
        "the wait said the connection was made again"
    );
    // A wait gives the first of the wake-ups that came together, which may be another test's:
    // any flow's shows that the new connection listens.
    let taskflow = TaskFlow::new(Arc::new(store));
    taskflow.bind("alice").unwrap().create(NewFlow::managed("w")).unwrap();
    assert!(wait_for(&|woke| matches!(woke, Wake::Flow(_))), "a new flow woke the listener");
}

#[test]
fn creates_of_one_id_racing_make_one_flow_and_find_the_id_taken_in_every_other() {
    let scratch = Scratch::new();
    let taskflow = open(&scratch.url());
    for round in 0..20 {
        let id = taskflow_store::FlowId::parse(&format!("race-{round}")).unwrap();
        let start = Arc::new(std::sync::Barrier::new(4));
        let creates: Vec<_> = (0..4)
            .map(|_| {
                let (alice, start, id) =
                    (taskflow.bind("alice").unwrap(), start.clone(), id.clone());
                std::thread::spawn(move || {
                    let mut new = NewFlow::mirrored("race", "alice");
                    new.id = Some(id);
                    start.wait();
                    alice.create(new)
                })
            })
            .collect();
        let outcomes: Vec<_> = creates.into_iter().map(|create| create.join().unwrap()).collect();
        let created = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(created, 1, "{outcomes:?}");
        for outcome in outcomes.iter().filter(|outcome| outcome.is_err()) {
            assert!(
                matches!(outcome, Err(taskflow_store::Error::IdTaken { id: taken }) if *taken == id.to_string()),
                "{outcome:?}"
            );
        }
    }
}

/// What a client's first message to a server asks (its protocol code): a log-in in plain text,
/// or TLS first.
const PLAIN_LOG_IN: u32 = 196_608;
const TLS_REQUEST: u32 = 80_877_103;

/// A server on a loopback port that answers the first message of its `n`th connection with
/// `answers[n]` (the last for those after) and closes it; the codes of those first messages
/// come back through the channel.
fn scripted_server(answers: Vec<Vec<u8>>) -> (u16, std::sync::mpsc::Receiver<u32>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (heard, asked) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0; 8];
            if stream.read_exact(&mut head).is_err() {
                continue;
            }
            let length = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
            let mut rest = vec![0; length.saturating_sub(8)];
            let _ = stream.read_exact(&mut rest);
            let _ = heard.send(u32::from_be_bytes(head[4..].try_into().unwrap()));
            let _ = stream.write_all(&answers[n.min(answers.len() - 1)]);
        }
    });
    (port, asked)
}

/// A server's `ErrorResponse` of `severity`, `code` and `message`.
fn error_response(severity: &str, code: &str, message: &str) -> Vec<u8> {
    let mut fields = Vec::new();
    for (field, value) in [(b'S', severity), (b'V', severity), (b'C', code), (b'M', message)] {
        fields.push(field);
        fields.extend_from_slice(value.as_bytes());
        fields.push(0);
    }
    fields.push(0);
    let mut message = vec![b'E'];
    message.extend_from_slice(&(fields.len() as u32 + 4).to_be_bytes());
    message.extend_from_slice(&fields);
    message
}

/// `sslmode=require` against a server without TLS fails at once, like a wrong password: that
/// server will not have TLS on the next try either.
#[test]
fn sslmode_require_against_a_server_without_tls_fails_at_once() {
    let (port, asked) = scripted_server(vec![b"N".to_vec()]);
    let url = format!("postgres://taskflow:s3cret@127.0.0.1:{port}/postgres?sslmode=require");
    let patient = OpenOptions { retry_for: Duration::from_secs(20), ..OpenOptions::default() };
    let started = Instant::now();
    let error = PostgresStore::open(&url, &patient).unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "refused at once, not retried: {waited:?}");
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Unavailable), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "cannot open the flow database postgres://taskflow@127.0.0.1:{port}/postgres: the \
             server does not take TLS connections, which the URL's sslmode insists on: turn ssl \
             on in the server's configuration, or use sslmode=prefer where plain text will do"
        )
    );
    assert_eq!(asked.recv().unwrap(), TLS_REQUEST);
}

/// `sslmode=allow` logs in in plain text first, and asks for TLS when the server refuses that;
/// what both attempts met is said.
#[test]
fn sslmode_allow_asks_for_tls_when_the_server_refuses_plain_text() {
    let plain_refused = error_response(
        "FATAL",
        "28000",
        "no pg_hba.conf entry for host \"127.0.0.1\", user \"taskflow\", database \"postgres\", \
         no encryption",
    );
    let (port, asked) = scripted_server(vec![plain_refused, b"N".to_vec()]);
    let url = format!("postgres://taskflow:s3cret@127.0.0.1:{port}/postgres?sslmode=allow");
    let error = PostgresStore::open(&url, &impatient()).unwrap_err();
    assert_eq!(asked.recv().unwrap(), PLAIN_LOG_IN);
    assert_eq!(asked.recv().unwrap(), TLS_REQUEST);
    let message = error.to_string();
    assert!(message.contains("in plain text: FATAL: no pg_hba.conf entry for host"), "{message}");
    assert!(message.contains("; with TLS: the server does not take TLS connections"), "{message}");
    assert!(!message.contains("s3cret"), "{message}");
}

/// A role of its own on the test server, without any privilege but to log in; dropped, with
/// what it was granted, when done.
struct Role(String);

impl Role {
    fn new(scratch: &Scratch) -> Role {
        let name = format!("r_{}", scratch.schema());
        server().batch_execute(&format!("CREATE ROLE {name} LOGIN")).unwrap();
        Role(name)
    }

    /// `url` with this role as its user.
    fn url(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").unwrap();
        let (_, hosts) = rest.split_once('@').unwrap();
        format!("{scheme}://{}:s3cret@{hosts}", self.0)
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = server().batch_execute(&format!("DROP OWNED BY {0}; DROP ROLE {0}", self.0));
    }
}

/// Opens `url` as a role that lacks a privilege: it fails at once (a server that is down would
/// be waited for), as no unreachable server, and says what to grant.
fn refused_a_privilege(url: &str) -> String {
    let patient = OpenOptions { retry_for: Duration::from_secs(20), ..OpenOptions::default() };
    let started = Instant::now();
    let error = PostgresStore::open(url, &patient).unwrap_err();
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "refused at once, not retried: {waited:?}");
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Other), "{error}");
    let message = error.to_string();
    assert!(!message.contains("s3cret"), "{message}");
    message
}

#[test]
fn a_role_that_may_not_create_tables_is_told_what_to_grant() {
    let scratch = Scratch::new();
    let role = Role::new(&scratch);
    let schema = scratch.schema();
    server().batch_execute(&format!("GRANT USAGE ON SCHEMA {schema} TO {}", role.0)).unwrap();
    let message = refused_a_privilege(&role.url(&scratch.url()));
    assert_eq!(
        message,
        format!(
            "flow database error: migration from schema version 0 failed: ERROR: permission \
             denied for schema {schema}; the role may not create tables in schema {schema}: \
             grant it CREATE there, or use a database it owns"
        )
    );
}

#[test]
fn a_role_that_may_not_use_the_tables_is_told_what_to_grant() {
    let scratch = Scratch::new();
    drop(open(&scratch.url()));
    let role = Role::new(&scratch);
    server()
        .batch_execute(&format!("GRANT USAGE ON SCHEMA {} TO {}", scratch.schema(), role.0))
        .unwrap();
    let message = refused_a_privilege(&role.url(&scratch.url()));
    assert_eq!(
        message,
        "flow database error: permission denied for table taskflow_schema; the role may not \
         read or write table taskflow_schema: grant it SELECT, INSERT, UPDATE and DELETE on \
         taskflow's tables and USAGE on their sequences, or use the role that made them"
    );
}

/// A role that may not connect to the database is refused at its log-in, for good.
#[test]
fn a_role_that_may_not_connect_is_told_what_to_grant() {
    let scratch = Scratch::new();
    let role = Role::new(&scratch);
    let database = format!("d_{}", scratch.schema());
    let mut server = server();
    server.batch_execute(&format!("CREATE DATABASE {database}")).unwrap();
    server.batch_execute(&format!("REVOKE CONNECT ON DATABASE {database} FROM PUBLIC")).unwrap();
    let url = role.url(&taskflow_store_postgres::scratch::server_url());
    let (base, _) = url.rsplit_once('/').unwrap();
    let message = refused_a_privilege(&format!("{base}/{database}"));
    let _ = server.batch_execute(&format!("DROP DATABASE {database}"));
    assert!(
        message.ends_with(&format!(
            "FATAL: permission denied for database \"{database}\"; the role may not connect to \
             database {database}: grant it CONNECT there"
        )),
        "{message}"
    );
}

//! `flows list` on a big store: 100,000 flows of one owner (plus 10,000 of another, with steps
//! and revisions), then the first page (limit 50) timed the way the CLI runs it (open the
//! store, bind the owner, list) and on an open store. Target: under 200 ms for the first page.
//!
//! Run with `cargo bench -p taskflow-engine --bench list`. Prints `name: value` lines.

use std::time::{Duration, Instant};

use rusqlite::{Connection, params};
use taskflow_store::{FlowStatus, ListQuery};
use taskflow_store_sqlite::{Durability, OpenOptions, open};

const FLOWS: usize = 100_000;
const OTHER_OWNER_FLOWS: usize = 10_000;
const STEPS_PER_FLOW: usize = 3;
const RUNS: usize = 30;

fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("flows.db");
    let options = OpenOptions { durability: Durability::Normal, ..OpenOptions::default() };
    drop(open(&path, &options).expect("create the store"));

    let started = Instant::now();
    fill(&path);
    println!("setup_flows: {}", FLOWS + OTHER_OWNER_FLOWS);
    println!("setup_seconds: {:.1}", started.elapsed().as_secs_f64());

    let first_page = ListQuery { limit: 50, ..ListQuery::default() };
    let cold = time(RUNS, || {
        let taskflow = open(&path, &OpenOptions::default()).expect("open");
        let page = taskflow.bind("alice").unwrap().list(&first_page).expect("list");
        assert_eq!(page.len(), 50);
    });
    report("flows_list_first_page_open_and_list_ms", &cold);

    let taskflow = open(&path, &OpenOptions::default()).expect("open");
    let alice = taskflow.bind("alice").unwrap();
    let warm = time(RUNS, || assert_eq!(alice.list(&first_page).unwrap().len(), 50));
    report("flows_list_first_page_ms", &warm);

    let by_status = ListQuery { status: Some(FlowStatus::Failed), ..first_page.clone() };
    let filtered = time(RUNS, || assert_eq!(alice.list(&by_status).unwrap().len(), 50));
    report("flows_list_status_failed_first_page_ms", &filtered);

    let everyone = ListQuery { all_owners: true, ..first_page };
    let all = time(RUNS, || assert_eq!(alice.list(&everyone).unwrap().len(), 50));
    report("flows_list_all_owners_first_page_ms", &all);
}

/// Writes the flows straight into the schema the store created, in one transaction: going
/// through the API would cost one durable commit per flow and time the setup, not the list.
fn fill(path: &std::path::Path) {
    let mut conn = Connection::open(path).expect("open for setup");
    let tx = conn.transaction().expect("setup transaction");
    let start = 1_700_000_000_000_i64;
    let statuses = ["succeeded", "failed", "running", "queued", "cancelled"];
    {
        let mut flow = tx
            .prepare(
                "INSERT INTO flows (id, owner, name, sync_mode, status, revision, created_at, \
                 updated_at) VALUES (?1, ?2, ?3, 'managed', ?4, 5, ?5, ?5)",
            )
            .unwrap();
        let mut step = tx
            .prepare(
                "INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
                 started_at, ended_at) VALUES (?1, ?2, 'step', 'action', 'succeeded', 1, ?3, ?4, ?4)",
            )
            .unwrap();
        let mut revision = tx
            .prepare(
                "INSERT INTO revisions (flow_id, revision, at, actor, change) \
                 VALUES (?1, ?2, ?3, 'bench', '[]')",
            )
            .unwrap();
        for i in 0..FLOWS + OTHER_OWNER_FLOWS {
            let created = start + i as i64 * 1_000;
            let id = ulid::Ulid::from_parts(created as u64, i as u128).to_string();
            let owner = if i % 11 == 10 && i >= FLOWS { "bob" } else { "alice" };
            let status = statuses[i % statuses.len()];
            flow.execute(params![id, owner, format!("flow {i}"), status, created]).unwrap();
            for seq in 1..=STEPS_PER_FLOW as i64 {
                step.execute(params![id, seq, format!("{id}:{seq}"), created]).unwrap();
            }
            for rev in 1..=5 {
                revision.execute(params![id, rev, created]).unwrap();
            }
        }
    }
    tx.commit().expect("setup commit");
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;").expect("checkpoint");
}

fn time(runs: usize, mut work: impl FnMut()) -> Vec<Duration> {
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            work();
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples
}

fn report(name: &str, sorted: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1_000.0;
    println!("{name}_median: {:.3}", ms(sorted[sorted.len() / 2]));
    println!("{name}_max: {:.3}", ms(sorted[sorted.len() - 1]));
}

//! Many `taskflow` processes opening one database file at the same moment: a file that does
//! not exist yet (50 rounds) and a file at an old schema version (20 rounds), 8 processes a
//! round. Every process succeeds, the schema is written or migrated exactly once, and the file
//! ends at the current version with every flow in it.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use rusqlite::Connection;
use taskflow_store_sqlite::SCHEMA_VERSION;

const PROCESSES: usize = 8;
const PIPELINE: &str =
    "name = \"q\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = \"x\" }\n";
const OLD_FLOW: &str = "01JB0000000000000000000001";

fn taskflow(db: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .args(args)
        .env_remove("TASKFLOW_OWNER")
        // What is checked is the first open; the runs after it queue for the write lock, and on
        // a slow disk eight of them can outwait the default five seconds.
        .env("TASKFLOW_BUSY_TIMEOUT_MS", "60000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for every process and fails with what each one that did not succeed printed.
fn all_succeed(round: usize, children: Vec<Child>) {
    let failures: Vec<String> = children
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .filter(|output| !output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stderr).into_owned())
        .collect();
    assert!(
        failures.is_empty(),
        "round {round}: {} processes failed: {failures:#?}",
        failures.len()
    );
}

fn schema_version(db: &Path) -> i64 {
    let conn = Connection::open(db).unwrap();
    conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
}

fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db).unwrap().query_row(sql, [], |row| row.get(0)).unwrap()
}

#[test]
fn processes_creating_one_new_database_at_once_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("q.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let pipeline = pipeline.to_str().unwrap();
    for round in 0..50 {
        let db = dir.path().join(format!("new-{round}.db"));
        let children = (0..PROCESSES).map(|_| taskflow(&db, &["run", pipeline])).collect();
        all_succeed(round, children);
        assert_eq!(schema_version(&db), SCHEMA_VERSION, "round {round}");
        let succeeded = "SELECT count(*) FROM flows WHERE status = 'succeeded'";
        assert_eq!(count(&db, succeeded), PROCESSES as i64, "round {round}");
    }
}

#[test]
fn processes_opening_one_old_database_at_once_migrate_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("q.toml");
    std::fs::write(&pipeline, PIPELINE).unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/schema/v1.sql");
    let old_schema = std::fs::read_to_string(fixture).unwrap();
    for round in 0..20 {
        let db = dir.path().join(format!("old-{round}.db"));
        Connection::open(&db).unwrap().execute_batch(&old_schema).unwrap();
        assert_eq!(schema_version(&db), 1);
        // Writers and readers mixed: a run creates a flow, `flows` commands only read.
        let children = (0..PROCESSES)
            .map(|i| match i % 4 {
                0 | 1 => taskflow(&db, &["run", pipeline]),
                2 => taskflow(&db, &["--json", "flows", "list"]),
                _ => taskflow(&db, &["--json", "flows", "inspect", OLD_FLOW]),
            })
            .collect();
        all_succeed(round, children);
        assert_eq!(schema_version(&db), SCHEMA_VERSION, "round {round}");
        assert_eq!(count(&db, "SELECT count(*) FROM flows"), 1 + PROCESSES as i64 / 2);
        let old_spec = format!("SELECT count(*) FROM flow_specs WHERE flow_id = '{OLD_FLOW}'");
        assert_eq!(count(&db, &old_spec), 1, "round {round}: the old flow's spec moved once");
        let old_steps = format!("SELECT count(*) FROM steps WHERE flow_id = '{OLD_FLOW}'");
        assert_eq!(count(&db, &old_steps), 1, "round {round}");
    }
}

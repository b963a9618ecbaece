//! The SQLite backend: the conformance kit of `taskflow-store` on real database files, and what
//! only a file has: its permissions, what opening it refuses, and another process's lock.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use taskflow_store::testkit::{Database, Harness};
use taskflow_store::{FlowStatus, NewFlow, OwnerHandle, StorageErrorKind, TaskFlow};
use taskflow_store_sqlite::{OpenOptions, SqliteStore};

/// Each database in a folder of its own, two levels down (so that the store makes the folders).
struct Sqlite;

fn open(path: &Path) -> TaskFlow {
    TaskFlow::new(Arc::new(SqliteStore::open(path, &OpenOptions::default()).unwrap()))
}

impl Harness for Sqlite {
    fn fresh(&self) -> Database {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/taskflow/flows.db");
        let taskflow = open(&path);
        Database::new(taskflow, move || open(&path), dir)
    }
}

taskflow_store::conformance_tests!(Sqlite);

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    taskflow: TaskFlow,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/taskflow/flows.db");
        Fixture { taskflow: open(&path), _dir: dir, path }
    }

    fn alice(&self) -> OwnerHandle {
        self.taskflow.bind("alice").unwrap()
    }
}

#[cfg(unix)]
#[test]
fn the_database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fx.path), 0o600);
    assert_eq!(mode(fx.path.parent().unwrap()), 0o700);
}

#[test]
fn opening_refuses_what_it_cannot_use_without_writing_to_it() {
    fn check(setup: impl FnOnce(&Path), fragment: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flows.db");
        setup(&path);
        let before = std::fs::read(&path).ok();
        let error = SqliteStore::open(&path, &OpenOptions { create: false, ..Default::default() })
            .unwrap_err()
            .to_string();
        assert!(error.contains(fragment), "{error}");
        assert_eq!(std::fs::read(&path).ok(), before, "unchanged");
    }
    check(|_| {}, "no such file");
    check(
        |path| std::fs::write(path, vec![b'x'; 8192]).unwrap(),
        "damaged or not a taskflow database",
    );
    check(|path| std::fs::create_dir(path).unwrap(), "cannot open the flow database");
    let newer = format!(
        "schema version 42, newer than this taskflow understands ({})",
        taskflow_store_sqlite::SCHEMA_VERSION
    );
    check(
        |path| {
            drop(SqliteStore::open(path, &OpenOptions::default()).unwrap());
            let conn = rusqlite::Connection::open(path).unwrap();
            conn.pragma_update(None, "user_version", 42).unwrap();
        },
        &newer,
    );
}

#[test]
fn a_write_lock_held_elsewhere_is_reported_as_locked() {
    let fx = Fixture::new();
    let flow = fx.alice().create(NewFlow::managed("x")).unwrap();
    let holder = rusqlite::Connection::open(&fx.path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let quick = OpenOptions { busy_timeout: Duration::from_millis(50), ..Default::default() };
    let taskflow = TaskFlow::new(Arc::new(SqliteStore::open(&fx.path, &quick).unwrap()));
    let alice = taskflow.bind("alice").unwrap();
    assert_eq!(alice.flow(&flow.id).unwrap().id, flow.id, "readers are not blocked (WAL)");
    let error = alice.request_cancel(&flow.id, None).unwrap_err();
    assert_eq!(error.storage_kind(), Some(StorageErrorKind::Locked), "{error}");
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(alice.request_cancel(&flow.id, None).unwrap().flow.status, FlowStatus::Cancelled);
}

#[test]
fn reports_handed_to_the_writer_together_are_each_accepted_or_refused_alone() {
    use std::sync::mpsc;
    use taskflow_store::{StateReport, StepReport, StepStatus};

    let fx = Fixture::new();
    let alice = fx.alice();
    let flows: Vec<_> =
        (0..20).map(|i| alice.create(NewFlow::mirrored(format!("m{i}"), "ci")).unwrap()).collect();
    let (sender, answers) = mpsc::channel();
    for (i, flow) in flows.iter().enumerate() {
        // Every third report begins a step and ends the flow with it running: refused, and
        // the step it wrote must go with it.
        let refused = i % 3 == 0;
        let report = StateReport {
            status: Some(if refused { FlowStatus::Succeeded } else { FlowStatus::Running }),
            steps: vec![StepReport {
                name: "work".into(),
                status: StepStatus::Running,
                output: None,
                error: None,
            }],
            ..StateReport::default()
        };
        let sender = sender.clone();
        alice.submit_report(
            &flow.id,
            report,
            Some(1),
            Box::new(move |answer| {
                let _ = sender.send((i, answer.map(|flow| flow.revision)));
            }),
        );
    }
    drop(sender);
    let mut answers: Vec<_> = answers.iter().collect();
    answers.sort_by_key(|(i, _)| *i);
    assert_eq!(answers.len(), 20);
    for ((i, answer), flow) in answers.iter().zip(&flows) {
        let steps = alice.steps(&flow.id).unwrap().len();
        if i % 3 == 0 {
            assert!(answer.is_err(), "{i}: {answer:?}");
            assert_eq!((steps, alice.flow(&flow.id).unwrap().revision), (0, 1), "{i}: rolled back");
        } else {
            assert_eq!(answer.as_ref().unwrap(), &2, "{i}");
            assert_eq!(steps, 1, "{i}");
        }
    }
}

#[test]
fn a_role_is_always_granted_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flows.db");
    let (first, second) = (open(&path), open(&path));
    let mut held = first.lead("scheduler").unwrap().expect("granted");
    assert!(second.lead("scheduler").unwrap().is_some(), "granted to every store");
    assert!(held.still_held());
}

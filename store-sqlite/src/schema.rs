//! The SQLite schema and its migrations, keyed by `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1`. A database newer than this
//! build is refused before anything is written; an older one is brought up to date in one
//! transaction, so a crash mid-migration leaves it at its old version. Processes opening one
//! file at once agree: each reads the version from one snapshot, and creating or migrating
//! happens under the write lock after a second look, so exactly one of them writes the schema
//! and the others wait for it. `application_id` marks
//! the file as taskflow's, so another program's SQLite file is not mistaken for an empty store.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, TransactionBehavior};

use taskflow_store::{Result, StorageErrorKind};

use crate::error::{from_sqlite, refused};

/// `PRAGMA application_id` of a taskflow database: "TFLW".
pub const APPLICATION_ID: i64 = 0x5446_4C57;

/// The migrations in order; the `CHECK`s restate the enums of `status.rs` and `model.rs`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: flows, steps, revisions.
    r#"
    CREATE TABLE flows (
        id                  TEXT PRIMARY KEY NOT NULL,
        owner               TEXT NOT NULL,
        name                TEXT NOT NULL,
        sync_mode           TEXT NOT NULL CHECK (sync_mode IN ('managed', 'mirrored')),
        controller          TEXT,
        status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting',
                                'blocked', 'succeeded', 'failed', 'cancelled', 'lost')),
        revision            INTEGER NOT NULL CHECK (revision >= 1),
        goal                TEXT,
        current_step        TEXT,
        state               TEXT,
        wait                TEXT,
        spec                TEXT,
        parent_flow_id      TEXT REFERENCES flows (id),
        cancel_requested_at INTEGER,
        lease_token         TEXT,
        lease_host          TEXT,
        lease_pid           INTEGER,
        lease_process_start INTEGER,
        lease_expires_at    INTEGER,
        created_at          INTEGER NOT NULL,
        updated_at          INTEGER NOT NULL,
        ended_at            INTEGER,
        error               TEXT,
        CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
    );
    -- `flows list`: newest first, per owner, optionally per status, without a sort step.
    CREATE INDEX flows_by_owner ON flows (owner, created_at DESC, id DESC);
    CREATE INDEX flows_by_owner_status ON flows (owner, status, created_at DESC, id DESC);
    CREATE INDEX flows_by_age ON flows (created_at DESC, id DESC);
    CREATE INDEX flows_by_parent ON flows (parent_flow_id) WHERE parent_flow_id IS NOT NULL;

    CREATE TABLE steps (
        flow_id         TEXT NOT NULL REFERENCES flows (id),
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('llm', 'tool', 'action', 'child')),
        status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed',
                            'cancelled')),
        attempt         INTEGER NOT NULL CHECK (attempt >= 1),
        idempotency_key TEXT NOT NULL,
        input           TEXT,
        output          TEXT,
        error           TEXT,
        started_at      INTEGER NOT NULL,
        ended_at        INTEGER,
        child_flow_id   TEXT REFERENCES flows (id),
        PRIMARY KEY (flow_id, seq),
        CHECK ((status = 'running') = (ended_at IS NULL))
    ) WITHOUT ROWID;
    CREATE INDEX steps_running ON steps (flow_id) WHERE status = 'running';

    CREATE TABLE revisions (
        flow_id  TEXT NOT NULL REFERENCES flows (id),
        revision INTEGER NOT NULL CHECK (revision >= 1),
        at       INTEGER NOT NULL,
        actor    TEXT NOT NULL,
        change   TEXT NOT NULL,
        PRIMARY KEY (flow_id, revision)
    ) WITHOUT ROWID;
    "#,
    // 1 -> 2: a flow's spec moves out of the flow row, which every checkpoint rewrote, into
    // its own table, written once when the flow is created.
    r#"
    CREATE TABLE flow_specs (
        flow_id TEXT PRIMARY KEY NOT NULL REFERENCES flows (id),
        spec    TEXT NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO flow_specs (flow_id, spec) SELECT id, spec FROM flows WHERE spec IS NOT NULL;
    ALTER TABLE flows DROP COLUMN spec;
    "#,
    // 2 -> 3: a step's `kind` and `status` checks become chains of comparisons. SQLite builds
    // an ephemeral table (a page cache of its own) for an `IN` list of more than two constants
    // each time a statement evaluates it, and every checkpoint inserts and updates steps.
    // Same rows, same rules; the table is rebuilt because SQLite cannot alter a CHECK.
    r#"
    CREATE TABLE steps_v3 (
        flow_id         TEXT NOT NULL REFERENCES flows (id),
        seq             INTEGER NOT NULL CHECK (seq >= 1),
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind = 'llm' OR kind = 'tool' OR kind = 'action'
                            OR kind = 'child'),
        status          TEXT NOT NULL CHECK (status = 'running' OR status = 'succeeded'
                            OR status = 'failed' OR status = 'cancelled'),
        attempt         INTEGER NOT NULL CHECK (attempt >= 1),
        idempotency_key TEXT NOT NULL,
        input           TEXT,
        output          TEXT,
        error           TEXT,
        started_at      INTEGER NOT NULL,
        ended_at        INTEGER,
        child_flow_id   TEXT REFERENCES flows (id),
        PRIMARY KEY (flow_id, seq),
        CHECK ((status = 'running') = (ended_at IS NULL))
    ) WITHOUT ROWID;
    INSERT INTO steps_v3 (flow_id, seq, name, kind, status, attempt, idempotency_key, input,
        output, error, started_at, ended_at, child_flow_id)
    SELECT flow_id, seq, name, kind, status, attempt, idempotency_key, input, output, error,
        started_at, ended_at, child_flow_id FROM steps;
    DROP TABLE steps;
    ALTER TABLE steps_v3 RENAME TO steps;
    CREATE INDEX steps_running ON steps (flow_id) WHERE status = 'running';
    "#,
    // 3 -> 4: the partial index of running steps goes. Each checkpoint added an entry to it and
    // removed one, a page more in every commit; running steps are counted only when a flow
    // ends or has a cancel pending, from the flow's own steps (its primary-key range).
    r#"
    DROP INDEX steps_running;
    "#,
    // 4 -> 5: a step that begins or ends no longer rewrites its flow's row, so a managed flow's
    // current step is read from its journal; the column, which older builds kept current and
    // would now find stale, holds only what a mirrored flow's owner reports. The version moves
    // so that an older build refuses the file instead of showing that stale column.
    r#"
    UPDATE flows SET current_step = NULL WHERE sync_mode = 'managed';
    "#,
    // 5 -> 6: the change feed, one row per accepted change, appended in the transaction of the
    // change. The rowid is the event's id: rows are appended at the end of the tree (one leaf
    // page per commit), and the newest row is never deleted, so ids keep increasing without
    // AUTOINCREMENT's extra table. Readers filter a range of ids by owner and flow. And the
    // flows a recovery sweep may adopt, indexed apart from the rest.
    r#"
    CREATE TABLE events (
        id      INTEGER PRIMARY KEY,
        flow_id TEXT NOT NULL,
        owner   TEXT NOT NULL,
        at      INTEGER NOT NULL,
        change  TEXT NOT NULL
    );
    -- The flows a runner may have to adopt (queued, or running under a lease that may be
    -- dead), oldest first, for every owner: a recovery sweep reads this and not every flow.
    CREATE INDEX flows_active ON flows (created_at, id)
        WHERE sync_mode = 'managed' AND (status = 'queued' OR status = 'running');
    "#,
    // 6 -> 7: a mirrored flow's owner names the step each report is about, and the newest step
    // of that name was found by walking the flow's journal from its end: a cost that grew with
    // every step reported. Steps are found by name through this index instead.
    r#"
    CREATE INDEX steps_by_name ON steps (flow_id, name, seq);
    "#,
    // 7 -> 8: time. A waiting flow's `wake_at` (when it is due to run again), indexed for the
    // server that wakes flows; signals, kept in the order they arrived until a step takes one;
    // schedules, their history and their slots.
    r#"
    ALTER TABLE flows ADD COLUMN wake_at INTEGER;
    CREATE INDEX flows_due ON flows (wake_at) WHERE status = 'waiting' AND wake_at IS NOT NULL;

    CREATE TABLE signals (
        id       INTEGER PRIMARY KEY,
        flow_id  TEXT NOT NULL REFERENCES flows (id),
        name     TEXT NOT NULL,
        payload  TEXT NOT NULL,
        sent_at  INTEGER NOT NULL,
        taken_by INTEGER,
        taken_at INTEGER,
        CHECK ((taken_by IS NULL) = (taken_at IS NULL))
    );
    -- A flow's signals of one name not taken yet, oldest first; and the one a step took.
    CREATE INDEX signals_pending ON signals (flow_id, name, id) WHERE taken_by IS NULL;
    CREATE INDEX signals_by_flow ON signals (flow_id, taken_by);

    -- Schedules: what each is (spec and pipeline as JSON), and its scheduler's cursor, the
    -- first slot not decided yet and when it fires.
    CREATE TABLE schedules (
        name       TEXT PRIMARY KEY NOT NULL,
        owner      TEXT NOT NULL,
        revision   INTEGER NOT NULL CHECK (revision >= 1),
        spec       TEXT NOT NULL,
        pipeline   TEXT NOT NULL,
        paused     INTEGER NOT NULL CHECK (paused = 0 OR paused = 1),
        next_slot  INTEGER,
        next_fire  INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        CHECK ((next_slot IS NULL) = (next_fire IS NULL))
    ) WITHOUT ROWID;
    CREATE INDEX schedules_by_owner ON schedules (owner, name);
    -- What the scheduler looks at: the schedules due next, without reading the others.
    CREATE INDEX schedules_due ON schedules (next_fire) WHERE paused = 0 AND next_fire IS NOT NULL;

    CREATE TABLE schedule_revisions (
        name     TEXT NOT NULL REFERENCES schedules (name),
        revision INTEGER NOT NULL CHECK (revision >= 1),
        at       INTEGER NOT NULL,
        actor    TEXT NOT NULL,
        change   TEXT NOT NULL,
        PRIMARY KEY (name, revision)
    ) WITHOUT ROWID;

    -- What became of each slot: a flow that fired (`NAME@SLOT`), or why it did not run; a range
    -- of missed slots is one row. A fired slot's record outlives its flow when `flows prune`
    -- removes that, so `flow_id` names the flow without a reference to it.
    CREATE TABLE slots (
        schedule   TEXT NOT NULL REFERENCES schedules (name),
        at         INTEGER NOT NULL,
        status     TEXT NOT NULL CHECK (status = 'running' OR status = 'ended'
                       OR status = 'skipped' OR status = 'missed' OR status = 'gated'
                       OR status = 'buffered' OR status = 'failed'),
        flow_id    TEXT,
        reason     TEXT,
        last_at    INTEGER,
        count      INTEGER NOT NULL CHECK (count >= 1),
        decided_at INTEGER NOT NULL,
        PRIMARY KEY (schedule, at),
        CHECK ((flow_id IS NOT NULL) = (status = 'running' OR status = 'ended'))
    ) WITHOUT ROWID;
    -- A slot's flow ends: its record follows, found by the flow's id.
    CREATE INDEX slots_by_flow ON slots (flow_id) WHERE flow_id IS NOT NULL;
    -- The slots not decided for good, which the scheduler looks at again.
    CREATE INDEX slots_open ON slots (at)
        WHERE status = 'running' OR status = 'gated' OR status = 'buffered';
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// The schema version of the taskflow database at `path`, read without writing anything (no
/// migration, no journal mode change): what `taskflow doctor` compares with this build's.
pub fn version_of(path: &Path) -> Result<i64> {
    let sqlite = |error| from_sqlite(path, error);
    let mut conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(sqlite)?;
    let version = check(&tx, path)?;
    tx.commit().map_err(sqlite)?;
    Ok(version)
}

/// Checks that the database at `path` is taskflow's and not newer than this build, puts it in
/// WAL mode, then migrates it to [`CURRENT_VERSION`]. Nothing is written when the check fails.
/// `busy_timeout` bounds the wait for other processes doing the same.
pub fn prepare(conn: &mut Connection, path: &Path, busy_timeout: Duration) -> Result<()> {
    let sqlite = |error| from_sqlite(path, error);
    // The version, the owner mark and the tables are read in one read transaction, so they
    // come from one snapshot: a schema another process is creating or migrating is seen either
    // whole or not at all, never as tables without a version.
    let version = {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred).map_err(sqlite)?;
        let version = check(&tx, path)?;
        tx.commit().map_err(sqlite)?;
        version
    };
    use_wal(conn, path, busy_timeout)?;
    if version == CURRENT_VERSION {
        return Ok(());
    }
    // The write lock first, then the check again: another process may have created or
    // migrated the schema while this one waited for the lock, and only one of them writes it.
    let Some(tx) = lock_unless_current(conn, path, busy_timeout)? else {
        return Ok(());
    };
    let version = check(&tx, path)?;
    if version == CURRENT_VERSION {
        return Ok(());
    }
    for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(migration).map_err(|error| {
            let detail = format!("migration from schema version {from} failed: {error}");
            refused(path, StorageErrorKind::Unavailable, detail)
        })?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID).map_err(sqlite)?;
    tx.pragma_update(None, "user_version", CURRENT_VERSION).map_err(sqlite)?;
    tx.commit().map_err(sqlite)
}

/// How long one turn of waiting for the write lock lasts before the version is looked at again.
const LOCK_TURN: Duration = Duration::from_millis(50);

/// The write lock for a migration, or `None` once another process has brought the schema to
/// [`CURRENT_VERSION`]. Waiting for the lock only to find the schema written would queue this
/// process behind every write of the processes already running on the file: SQLite's busy
/// handler polls, and a process that has just committed usually takes the lock again before a
/// poller does. So the wait goes in short turns, and between turns a read (which in WAL mode
/// never waits for a writer) looks whether the schema is current; all turns together last at
/// most `busy_timeout`.
fn lock_unless_current<'c>(
    conn: &'c Connection,
    path: &Path,
    busy_timeout: Duration,
) -> Result<Option<rusqlite::Transaction<'c>>> {
    let sqlite = |error| from_sqlite(path, error);
    let deadline = Instant::now() + busy_timeout;
    loop {
        let turn = deadline.saturating_duration_since(Instant::now()).min(LOCK_TURN);
        conn.busy_timeout(turn).map_err(sqlite)?;
        let begun = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate);
        conn.busy_timeout(busy_timeout).map_err(sqlite)?;
        match begun {
            Ok(tx) => return Ok(Some(tx)),
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                // One read transaction, as for the first look: a schema committed between two
                // reads would show tables without a version.
                let read =
                    rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Deferred)
                        .map_err(sqlite)?;
                let version = check(&read, path)?;
                read.commit().map_err(sqlite)?;
                if version == CURRENT_VERSION {
                    return Ok(None);
                }
            }
            Err(error) => return Err(sqlite(error)),
        }
    }
}

/// Puts the file in WAL mode (a no-op once it is). Leaving rollback mode takes the file's
/// exclusive lock from inside a read, and SQLite answers "busy" at once, without waiting, when
/// another process holds the write lock then (waiting could deadlock); so this waits and tries
/// again, up to `busy_timeout`.
fn use_wal(conn: &Connection, path: &Path, busy_timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + busy_timeout;
    let mode: String = loop {
        match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(error)
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(fastrand::u64(1..=10)));
            }
            result => break result.map_err(|error| from_sqlite(path, error))?,
        }
    };
    if !mode.eq_ignore_ascii_case("wal") {
        let detail = format!("cannot use WAL (journal mode {mode})");
        return Err(refused(path, StorageErrorKind::Unavailable, detail));
    }
    Ok(())
}

/// Reads the schema version, refusing a newer schema and a file that belongs to another
/// program.
fn check(conn: &Connection, path: &Path) -> Result<i64> {
    let sqlite = |error| from_sqlite(path, error);
    let version: i64 =
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(sqlite)?;
    let application_id: i64 =
        conn.pragma_query_value(None, "application_id", |row| row.get(0)).map_err(sqlite)?;
    if application_id != 0 && application_id != APPLICATION_ID {
        let detail = format!("it belongs to another program (application_id {application_id})");
        return Err(refused(path, StorageErrorKind::Corrupt, detail));
    }
    if version > CURRENT_VERSION {
        let kind = StorageErrorKind::SchemaTooNew { found: version, supported: CURRENT_VERSION };
        return Err(refused(path, kind, "written by a newer taskflow"));
    }
    if version == 0 {
        let tables: i64 = conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table'", [], |row| {
                row.get(0)
            })
            .map_err(sqlite)?;
        if tables > 0 {
            let detail = "it holds tables but no taskflow schema version";
            return Err(refused(path, StorageErrorKind::Corrupt, detail));
        }
    }
    if version < 0 {
        let detail = format!("schema version {version} is not one taskflow writes");
        return Err(refused(path, StorageErrorKind::Corrupt, detail));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &tempfile::TempDir) -> (Connection, std::path::PathBuf) {
        let path = dir.path().join("flows.db");
        (Connection::open(&path).unwrap(), path)
    }

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |row| row.get(0)).unwrap()
    }

    #[test]
    fn a_new_database_is_migrated_to_the_current_version_and_again_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = open(&dir);
        prepare(&mut conn, &path, Duration::from_secs(5)).unwrap();
        assert_eq!(version(&conn), CURRENT_VERSION);
        prepare(&mut conn, &path, Duration::from_secs(5)).unwrap();
        assert_eq!(version(&conn), CURRENT_VERSION);
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "events",
                "flow_specs",
                "flows",
                "revisions",
                "schedule_revisions",
                "schedules",
                "signals",
                "slots",
                "steps"
            ]
        );
    }

    #[test]
    fn a_version_1_database_keeps_its_specs_in_their_own_table() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = open(&dir);
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 1; \
             INSERT INTO flows (id, owner, name, sync_mode, status, revision, spec, created_at, \
             updated_at) VALUES ('a', 'o', 'n', 'managed', 'queued', 1, '{\"steps\": []}', 1, 1), \
             ('b', 'o', 'n', 'managed', 'queued', 1, NULL, 1, 1);",
        )
        .unwrap();
        prepare(&mut conn, &path, Duration::from_secs(5)).unwrap();
        assert_eq!(version(&conn), CURRENT_VERSION);
        let specs: Vec<(String, String)> = conn
            .prepare("SELECT flow_id, spec FROM flow_specs")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(specs, [("a".to_owned(), "{\"steps\": []}".to_owned())]);
        let columns: i64 = conn
            .query_row(
                "SELECT count(*) FROM pragma_table_info('flows') WHERE name = 'spec'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(columns, 0);
    }

    #[test]
    fn a_version_4_database_keeps_only_mirrored_flows_current_step_in_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = open(&dir);
        for migration in &MIGRATIONS[..4] {
            conn.execute_batch(migration).unwrap();
        }
        conn.execute_batch(
            "PRAGMA user_version = 4; \
             INSERT INTO flows (id, owner, name, sync_mode, status, revision, current_step, \
             created_at, updated_at) VALUES \
             ('a', 'o', 'n', 'managed', 'running', 3, 'old', 1, 1), \
             ('b', 'o', 'n', 'mirrored', 'running', 2, 'deploy', 1, 1);",
        )
        .unwrap();
        prepare(&mut conn, &path, Duration::from_secs(5)).unwrap();
        assert_eq!(version(&conn), CURRENT_VERSION);
        let columns: Vec<(String, Option<String>)> = conn
            .prepare("SELECT id, current_step FROM flows ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(columns, [("a".to_owned(), None), ("b".to_owned(), Some("deploy".to_owned()))]);
    }

    #[test]
    fn a_version_2_database_keeps_its_steps_and_their_rules() {
        let dir = tempfile::tempdir().unwrap();
        let (mut conn, path) = open(&dir);
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.execute_batch(
            "PRAGMA user_version = 2; \
             INSERT INTO flows (id, owner, name, sync_mode, status, revision, created_at, \
             updated_at) VALUES ('a', 'o', 'n', 'managed', 'running', 1, 1, 1); \
             INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, \
             input, output, started_at, ended_at) VALUES \
             ('a', 1, 's1', 'action', 'succeeded', 1, 'a:1', '1', '2', 5, 6), \
             ('a', 2, 's2', 'tool', 'running', 2, 'a:2', NULL, NULL, 7, NULL);",
        )
        .unwrap();
        prepare(&mut conn, &path, Duration::from_secs(5)).unwrap();
        assert_eq!(version(&conn), CURRENT_VERSION);
        let rows: Vec<String> = conn
            .prepare(
                "SELECT concat_ws(' ', seq, kind, status, coalesce(output, '-'), \
                 coalesce(ended_at, '-')) FROM steps ORDER BY seq",
            )
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, ["1 action succeeded 2 6", "2 tool running - -"]);
        let running: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'index' AND name = 'steps_running'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(running, 0, "version 4 drops the index of running steps");
        for bad in ["kind = 'shell'", "status = 'lost'"] {
            let error = conn
                .execute_batch(&format!("UPDATE steps SET {bad} WHERE seq = 1"))
                .unwrap_err()
                .to_string();
            assert!(error.contains("CHECK constraint failed"), "{bad}: {error}");
        }
    }

    /// A process that found the file new or old, and waits for the write lock to write the
    /// schema, stops waiting once another process has written it, even while writers keep the
    /// lock busy for longer than its busy timeout.
    #[test]
    fn a_schema_written_by_another_process_ends_the_wait_for_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let (other, path) = open(&dir);
        other.pragma_update(None, "journal_mode", "WAL").unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let opening = {
            let path = path.clone();
            std::thread::spawn(move || {
                let busy_timeout = Duration::from_millis(1500);
                let mut conn = Connection::open(&path).unwrap();
                conn.busy_timeout(busy_timeout).unwrap();
                prepare(&mut conn, &path, busy_timeout)
            })
        };
        // The opening connection has read the version (0) and waits for the lock.
        std::thread::sleep(Duration::from_millis(300));
        for migration in MIGRATIONS {
            other.execute_batch(migration).unwrap();
        }
        other.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
        other.pragma_update(None, "user_version", CURRENT_VERSION).unwrap();
        // Committed, and the lock taken again at once, held past the opener's busy timeout.
        other.execute_batch("COMMIT; BEGIN IMMEDIATE").unwrap();
        let started = Instant::now();
        while !opening.is_finished() && started.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(10));
        }
        other.execute_batch("COMMIT").unwrap();
        opening.join().unwrap().unwrap();
        assert_eq!(version(&other), CURRENT_VERSION);
    }

    #[test]
    fn refusals() {
        fn check(setup: &str, fragment: &str) {
            let dir = tempfile::tempdir().unwrap();
            let (mut conn, path) = open(&dir);
            conn.execute_batch(setup).unwrap();
            let error = prepare(&mut conn, &path, Duration::from_secs(5)).unwrap_err().to_string();
            assert!(error.contains(fragment), "{setup}: {error}");
        }
        check("PRAGMA user_version = 99;", "schema version 99, newer than this taskflow");
        check("PRAGMA application_id = 7;", "belongs to another program");
        check("CREATE TABLE notes (x);", "no taskflow schema version");
    }

    #[test]
    fn a_refused_newer_database_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let (conn, path) = open(&dir);
        conn.execute_batch("PRAGMA user_version = 99; CREATE TABLE future (x);").unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let mut conn = Connection::open(&path).unwrap();
        let error = prepare(&mut conn, &path, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            error.storage_kind(),
            Some(StorageErrorKind::SchemaTooNew { found: 99, supported: CURRENT_VERSION })
        );
        drop(conn);
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

//! The PostgreSQL schema and its migrations, versioned in the table `taskflow_schema`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to `i + 1` (this backend's own versions,
//! apart from SQLite's). A database newer than this build is refused before anything is
//! written; an older one is brought up to date in one transaction, so a failed migration leaves
//! it at its old version. Processes opening one database at once agree: the version is read and
//! the migrations run under a transaction-level advisory lock, so exactly one of them writes the
//! schema and the others wait for it, then find it current.
//!
//! Integers are `BIGINT` throughout (times are milliseconds since the epoch, like SQLite's), and
//! JSON is stored as the text it was written as, so both backends hand back the same documents.
//! Text is `COLLATE "C"` (from version 4): ids and names compare and sort by their bytes, as on
//! SQLite, whatever collation the database was made with; a column added later says so too
//! (`every_text_column_compares_by_its_bytes`).

use taskflow_store::{Result, StorageErrorKind};

use crate::error::{self, Pg};
use crate::pool::Conn;

/// The advisory lock under which the schema is checked and migrated ("TFLW" + 1).
const MIGRATION_LOCK: i64 = 0x5446_4C57_0001;

/// The migrations in order; the `CHECK`s restate the enums of `status.rs` and `model.rs` (but
/// for the journal's: see version 3).
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the store as SQLite's schema version 8 has it, plus what concurrent writers on
    // many connections need: each flow's tree root (the row every write to the tree locks
    // first), and event ids from a sequence.
    r#"
    CREATE TABLE taskflow_schema (version BIGINT NOT NULL);
    INSERT INTO taskflow_schema (version) VALUES (0);

    CREATE TABLE flows (
        id                  TEXT PRIMARY KEY,
        root_id             TEXT NOT NULL,
        owner               TEXT NOT NULL,
        name                TEXT NOT NULL,
        sync_mode           TEXT NOT NULL CHECK (sync_mode IN ('managed', 'mirrored')),
        controller          TEXT,
        status              TEXT NOT NULL CHECK (status IN ('queued', 'running', 'waiting',
                                'blocked', 'succeeded', 'failed', 'cancelled', 'lost')),
        revision            BIGINT NOT NULL CHECK (revision >= 1),
        goal                TEXT,
        current_step        TEXT,
        state               TEXT,
        wait                TEXT,
        wake_at             BIGINT,
        parent_flow_id      TEXT REFERENCES flows (id),
        cancel_requested_at BIGINT,
        lease_token         TEXT,
        lease_host          TEXT,
        lease_pid           BIGINT,
        lease_process_start BIGINT,
        lease_expires_at    BIGINT,
        created_at          BIGINT NOT NULL,
        updated_at          BIGINT NOT NULL,
        ended_at            BIGINT,
        error               TEXT,
        CHECK ((lease_token IS NULL) = (lease_expires_at IS NULL))
    );
    CREATE INDEX flows_by_owner ON flows (owner, created_at DESC, id DESC);
    CREATE INDEX flows_by_owner_status ON flows (owner, status, created_at DESC, id DESC);
    CREATE INDEX flows_by_age ON flows (created_at DESC, id DESC);
    CREATE INDEX flows_by_parent ON flows (parent_flow_id) WHERE parent_flow_id IS NOT NULL;
    CREATE INDEX flows_active ON flows (created_at, id)
        WHERE sync_mode = 'managed' AND status IN ('queued', 'running');
    CREATE INDEX flows_due ON flows (wake_at) WHERE status = 'waiting' AND wake_at IS NOT NULL;

    CREATE TABLE flow_specs (
        flow_id TEXT PRIMARY KEY REFERENCES flows (id),
        spec    TEXT NOT NULL
    );

    CREATE TABLE steps (
        flow_id         TEXT NOT NULL REFERENCES flows (id),
        seq             BIGINT NOT NULL CHECK (seq >= 1),
        name            TEXT NOT NULL,
        kind            TEXT NOT NULL CHECK (kind IN ('llm', 'tool', 'action', 'child')),
        status          TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed',
                            'cancelled')),
        attempt         BIGINT NOT NULL CHECK (attempt >= 1),
        idempotency_key TEXT NOT NULL,
        input           TEXT,
        output          TEXT,
        error           TEXT,
        started_at      BIGINT NOT NULL,
        ended_at        BIGINT,
        child_flow_id   TEXT REFERENCES flows (id),
        PRIMARY KEY (flow_id, seq),
        CHECK ((status = 'running') = (ended_at IS NULL))
    );
    CREATE INDEX steps_by_name ON steps (flow_id, name, seq);

    CREATE TABLE revisions (
        flow_id  TEXT NOT NULL REFERENCES flows (id),
        revision BIGINT NOT NULL CHECK (revision >= 1),
        at       BIGINT NOT NULL,
        actor    TEXT NOT NULL,
        change   TEXT NOT NULL,
        PRIMARY KEY (flow_id, revision)
    );

    CREATE SEQUENCE events_id;
    CREATE TABLE events (
        id      BIGINT PRIMARY KEY,
        flow_id TEXT NOT NULL,
        owner   TEXT NOT NULL,
        at      BIGINT NOT NULL,
        change  TEXT NOT NULL
    );

    CREATE TABLE signals (
        id       BIGSERIAL PRIMARY KEY,
        flow_id  TEXT NOT NULL REFERENCES flows (id),
        name     TEXT NOT NULL,
        payload  TEXT NOT NULL,
        sent_at  BIGINT NOT NULL,
        taken_by BIGINT,
        taken_at BIGINT,
        CHECK ((taken_by IS NULL) = (taken_at IS NULL))
    );
    CREATE INDEX signals_pending ON signals (flow_id, name, id) WHERE taken_by IS NULL;
    CREATE INDEX signals_by_flow ON signals (flow_id, taken_by);

    CREATE TABLE schedules (
        name       TEXT PRIMARY KEY,
        owner      TEXT NOT NULL,
        revision   BIGINT NOT NULL CHECK (revision >= 1),
        spec       TEXT NOT NULL,
        pipeline   TEXT NOT NULL,
        paused     BOOLEAN NOT NULL,
        next_slot  BIGINT,
        next_fire  BIGINT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        CHECK ((next_slot IS NULL) = (next_fire IS NULL))
    );
    CREATE INDEX schedules_by_owner ON schedules (owner, name);
    CREATE INDEX schedules_due ON schedules (next_fire) WHERE NOT paused AND next_fire IS NOT NULL;

    CREATE TABLE schedule_revisions (
        name     TEXT NOT NULL REFERENCES schedules (name),
        revision BIGINT NOT NULL CHECK (revision >= 1),
        at       BIGINT NOT NULL,
        actor    TEXT NOT NULL,
        change   TEXT NOT NULL,
        PRIMARY KEY (name, revision)
    );

    CREATE TABLE slots (
        schedule   TEXT NOT NULL REFERENCES schedules (name),
        at         BIGINT NOT NULL,
        status     TEXT NOT NULL CHECK (status IN ('running', 'ended', 'skipped', 'missed',
                       'gated', 'buffered', 'failed')),
        flow_id    TEXT,
        reason     TEXT,
        last_at    BIGINT,
        count      BIGINT NOT NULL CHECK (count >= 1),
        decided_at BIGINT NOT NULL,
        PRIMARY KEY (schedule, at),
        CHECK ((flow_id IS NOT NULL) = (status IN ('running', 'ended')))
    );
    CREATE INDEX slots_by_flow ON slots (flow_id) WHERE flow_id IS NOT NULL;
    CREATE INDEX slots_open ON slots (at) WHERE status IN ('running', 'gated', 'buffered');
    "#,
    // 1 -> 2: `steps_by_name` made partial on a condition every row meets (`name` is never
    // null), so that only a query by a step's name can use it. A lookup of a step by its key
    // then always goes through the primary key: in a table the server has not analysed yet it
    // could not tell the two indexes apart, and a plan made then (kept by the connection)
    // read the flow's whole journal through this one to find one step.
    r#"
    DROP INDEX steps_by_name;
    CREATE INDEX steps_by_name ON steps (flow_id, name, seq) WHERE name IS NOT NULL;
    "#,
    // 2 -> 3: the journal's `CHECK`s dropped. The server reads a table's `CHECK`s again, from
    // their stored text, for every statement that writes a row, and a step's checkpoint writes
    // two journal rows: their five `CHECK`s were about an eighth of a chained step's time. What
    // they restated is written by the store's one implementation of the rules, which SQLite's
    // schema still checks (the conformance kit runs on both); the other tables, written at a
    // flow's changes only, keep theirs.
    r#"
    ALTER TABLE steps
        DROP CONSTRAINT IF EXISTS steps_seq_check,
        DROP CONSTRAINT IF EXISTS steps_kind_check,
        DROP CONSTRAINT IF EXISTS steps_status_check,
        DROP CONSTRAINT IF EXISTS steps_attempt_check,
        DROP CONSTRAINT IF EXISTS steps_check;
    "#,
    // 3 -> 4: every text column `COLLATE "C"`, compared and sorted by its bytes as SQLite's
    // `BINARY` does, whatever the database's collation. Under a locale's (an ICU database, or
    // `en_US.UTF-8`, the usual default of a distribution's server) the range `[a@, aA)` of the
    // list's filter by schedule `a` (`GET /v1/flows?schedule=a`) held `a1` and `A2`, and pages
    // and schedules came in another order than on SQLite. Declared on the columns rather than
    // in the statements, so that the indexes (rebuilt here, with their columns' collation)
    // still serve every comparison and order. No table is rewritten; each table's columns
    // change in one statement, so that each index is rebuilt once.
    r#"
    ALTER TABLE flows
        ALTER COLUMN id TYPE TEXT COLLATE "C",
        ALTER COLUMN root_id TYPE TEXT COLLATE "C",
        ALTER COLUMN owner TYPE TEXT COLLATE "C",
        ALTER COLUMN name TYPE TEXT COLLATE "C",
        ALTER COLUMN sync_mode TYPE TEXT COLLATE "C",
        ALTER COLUMN controller TYPE TEXT COLLATE "C",
        ALTER COLUMN status TYPE TEXT COLLATE "C",
        ALTER COLUMN goal TYPE TEXT COLLATE "C",
        ALTER COLUMN current_step TYPE TEXT COLLATE "C",
        ALTER COLUMN state TYPE TEXT COLLATE "C",
        ALTER COLUMN wait TYPE TEXT COLLATE "C",
        ALTER COLUMN parent_flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN lease_token TYPE TEXT COLLATE "C",
        ALTER COLUMN lease_host TYPE TEXT COLLATE "C",
        ALTER COLUMN error TYPE TEXT COLLATE "C";
    ALTER TABLE flow_specs
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN spec TYPE TEXT COLLATE "C";
    ALTER TABLE steps
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN name TYPE TEXT COLLATE "C",
        ALTER COLUMN kind TYPE TEXT COLLATE "C",
        ALTER COLUMN status TYPE TEXT COLLATE "C",
        ALTER COLUMN idempotency_key TYPE TEXT COLLATE "C",
        ALTER COLUMN input TYPE TEXT COLLATE "C",
        ALTER COLUMN output TYPE TEXT COLLATE "C",
        ALTER COLUMN error TYPE TEXT COLLATE "C",
        ALTER COLUMN child_flow_id TYPE TEXT COLLATE "C";
    ALTER TABLE revisions
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN actor TYPE TEXT COLLATE "C",
        ALTER COLUMN change TYPE TEXT COLLATE "C";
    ALTER TABLE events
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN owner TYPE TEXT COLLATE "C",
        ALTER COLUMN change TYPE TEXT COLLATE "C";
    ALTER TABLE signals
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN name TYPE TEXT COLLATE "C",
        ALTER COLUMN payload TYPE TEXT COLLATE "C";
    ALTER TABLE schedules
        ALTER COLUMN name TYPE TEXT COLLATE "C",
        ALTER COLUMN owner TYPE TEXT COLLATE "C",
        ALTER COLUMN spec TYPE TEXT COLLATE "C",
        ALTER COLUMN pipeline TYPE TEXT COLLATE "C";
    ALTER TABLE schedule_revisions
        ALTER COLUMN name TYPE TEXT COLLATE "C",
        ALTER COLUMN actor TYPE TEXT COLLATE "C",
        ALTER COLUMN change TYPE TEXT COLLATE "C";
    ALTER TABLE slots
        ALTER COLUMN schedule TYPE TEXT COLLATE "C",
        ALTER COLUMN status TYPE TEXT COLLATE "C",
        ALTER COLUMN flow_id TYPE TEXT COLLATE "C",
        ALTER COLUMN reason TYPE TEXT COLLATE "C";
    "#,
];

/// The schema version this build writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Checks that the database is not newer than this build, then migrates it to
/// [`CURRENT_VERSION`]. Nothing is written when the check fails.
pub(crate) fn prepare(conn: &mut Conn, database: &str) -> Result<()> {
    conn.batch_execute("BEGIN").pg()?;
    let result = (|| {
        conn.query_text("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).pg()?;
        let version = check(conn, database)?;
        for (from, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            conn.batch_execute(migration)
                .map_err(|failure| error::migration_failed(database, from, failure))?;
        }
        if version != CURRENT_VERSION {
            conn.query_text("UPDATE taskflow_schema SET version = $1", &[&CURRENT_VERSION]).pg()?;
        }
        conn.batch_execute("COMMIT").pg()
    })();
    if result.is_err() {
        let _ = conn.batch_execute("ROLLBACK");
    }
    result
}

/// The schema version of the database, read without writing anything.
pub(crate) fn version_of(conn: &mut Conn, database: &str) -> Result<i64> {
    conn.batch_execute("BEGIN READ ONLY").pg()?;
    let version = check(conn, database);
    let _ = conn.batch_execute("ROLLBACK");
    version
}

/// Reads the schema version (0 for a database without taskflow's tables), refusing a newer
/// schema and a database whose tables are another program's.
fn check(conn: &mut Conn, database: &str) -> Result<i64> {
    let mut has_table = |name: &str| -> Result<bool> {
        let rows = conn
            .query_text(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_tables \
                 WHERE schemaname = current_schema() AND tablename = $1)",
                &[&name],
            )
            .pg()?;
        rows.first().map_or(Ok(false), |row| row.try_get(0).pg())
    };
    if !has_table("taskflow_schema")? {
        if has_table("flows")? {
            let detail = "it holds a `flows` table but no taskflow schema version";
            return Err(error::refused(database, StorageErrorKind::Corrupt, detail));
        }
        return Ok(0);
    }
    let rows = conn.query_text("SELECT version FROM taskflow_schema", &[]).pg()?;
    let version: i64 = match rows.first() {
        Some(row) => row.try_get(0).pg()?,
        None => 0,
    };
    if version > CURRENT_VERSION {
        let kind = StorageErrorKind::SchemaTooNew { found: version, supported: CURRENT_VERSION };
        return Err(error::refused(database, kind, "written by a newer taskflow"));
    }
    if version < 0 {
        let detail = format!("schema version {version} is not one taskflow writes");
        return Err(error::refused(database, StorageErrorKind::Corrupt, detail));
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use postgres::{Client, NoTls};

    use super::{CURRENT_VERSION, MIGRATIONS};
    use crate::pool::SESSION;
    use crate::scratch::Scratch;
    use crate::transaction::JOURNAL;
    use crate::tx::END_STEP;

    /// 40 flows of six steps and one flow, `long`, with none yet.
    const SHORT_JOURNALS: &str = "\
        INSERT INTO flows (id, root_id, owner, name, sync_mode, status, revision, created_at, \
            updated_at) \
        SELECT id, id, 'o', 'n', 'managed', 'running', 1, 0, 0 \
        FROM (SELECT 'f' || i AS id FROM generate_series(0, 39) i UNION ALL SELECT 'long') AS ids; \
        INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, input, \
            output, started_at, ended_at) \
        SELECT 'f' || (i % 40), i, 's' || i, 'action', 'succeeded', 1, 'k', '{}', '{}', 0, 0 \
        FROM generate_series(1, 240) i;";

    /// 3,000 steps of flow `long`, the last one running.
    const LONG_JOURNAL: &str = "\
        INSERT INTO steps (flow_id, seq, name, kind, status, attempt, idempotency_key, input, \
            output, started_at, ended_at) \
        SELECT 'long', i, 's' || i, 'action', \
            CASE WHEN i = 3000 THEN 'running' ELSE 'succeeded' END, 1, 'k', '{}', '{}', 0, \
            CASE WHEN i = 3000 THEN NULL ELSE 0 END \
        FROM generate_series(1, 3000) i;";

    /// The plan a connection of the store keeps for `sql` (parameters of `types`), made at its
    /// first execution (`short`, arguments for a short journal) after `statistics` ran, and
    /// then run with `long`, arguments for flow `long`, once its journal is long.
    fn kept_plan(statistics: &str, sql: &str, types: &str, short: &str, long: &str) -> String {
        let scratch = Scratch::new();
        drop(crate::open(&scratch.url(), &crate::OpenOptions::default()).unwrap());
        let mut client = Client::connect(&scratch.url(), NoTls).unwrap();
        // Autovacuum analyses a table when it chooses: here the test decides.
        client.batch_execute("ALTER TABLE steps SET (autovacuum_enabled = false)").unwrap();
        client.batch_execute(SHORT_JOURNALS).unwrap();
        client.batch_execute(statistics).unwrap();
        client
            .batch_execute(&format!(
                "{}; PREPARE kept ({types}) AS {sql}; EXECUTE kept ({short}); {LONG_JOURNAL}",
                SESSION.join("; ")
            ))
            .unwrap();
        let explain =
            format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE kept ({long})");
        let rows = client.query(explain.as_str(), &[]).unwrap();
        rows.iter().map(|row| row.get::<_, String>(0)).collect::<Vec<_>>().join("\n")
    }

    /// Checks that the plan kept for a hot statement reads the steps it needs by the primary
    /// key and reads no other row, whatever the statistics were when it was made.
    fn check_by_key(sql: &str, types: &str, short: &str, long: &str) {
        for statistics in ["ANALYZE steps", "SELECT 'never analysed'"] {
            let plan = kept_plan(statistics, sql, types, short, long);
            for line in plan.lines() {
                let context = format!("{statistics}:\n{plan}");
                assert!(
                    !line.contains("Scan")
                        || !line.contains(" on steps")
                        || line.contains("using steps_pkey"),
                    "{context}"
                );
                assert!(!line.contains("Rows Removed"), "{context}");
                if let Some((_, rows)) = line.split_once("actual rows=") {
                    let rows: u64 = rows.split(' ').next().unwrap().parse().unwrap();
                    assert!(rows <= 1, "{context}");
                }
            }
        }
    }

    #[test]
    fn the_journal_guard_reads_only_the_remembered_steps_however_long_the_journal() {
        check_by_key(
            JOURNAL,
            "text, bigint, bigint[], bigint[]",
            "'f0', 240, '{}', '{}'",
            "'long', 3000, '{3000}', '{1}'",
        );
    }

    #[test]
    fn the_end_of_a_running_step_finds_it_by_its_key_however_long_the_journal() {
        check_by_key(
            END_STEP,
            "text, text, text, bigint, text, bigint",
            "'succeeded', NULL, NULL, 1, 'f0', 40",
            "'succeeded', NULL, NULL, 1, 'long', 3000",
        );
    }

    /// Text compares by its bytes in every column, whatever the database's collation: a column
    /// a later migration adds without `COLLATE "C"` fails this.
    #[test]
    fn every_text_column_compares_by_its_bytes() {
        let scratch = Scratch::new();
        drop(crate::open(&scratch.url(), &crate::OpenOptions::default()).unwrap());
        let mut client = Client::connect(&scratch.url(), NoTls).unwrap();
        let rows = client
            .query(
                "SELECT table_name || '.' || column_name, \
                 coalesce(collation_name, '(the database''s)') FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND data_type = 'text' \
                 AND collation_name IS DISTINCT FROM 'C' ORDER BY 1",
                &[],
            )
            .unwrap();
        let other: Vec<(String, String)> =
            rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        assert_eq!(other, Vec::new(), "columns of another collation");
    }

    #[test]
    fn a_database_at_schema_version_1_is_brought_up_to_date_with_its_rows() {
        let scratch = Scratch::new();
        let mut client = Client::connect(&scratch.url(), NoTls).unwrap();
        client.batch_execute(MIGRATIONS[0]).unwrap();
        client.batch_execute("UPDATE taskflow_schema SET version = 1").unwrap();
        client.batch_execute(SHORT_JOURNALS).unwrap();
        drop(crate::open(&scratch.url(), &crate::OpenOptions::default()).unwrap());
        let row = client
            .query_one(
                "SELECT (SELECT version FROM taskflow_schema), (SELECT count(*) FROM steps), \
                 pg_get_indexdef('steps_by_name'::regclass), \
                 (SELECT count(*) FROM pg_constraint WHERE conrelid = 'steps'::regclass \
                  AND contype = 'c'), \
                 (SELECT count(*) FROM pg_constraint WHERE conrelid = 'flows'::regclass \
                  AND contype = 'c')",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, i64>(0), CURRENT_VERSION);
        assert_eq!(row.get::<_, i64>(1), 240);
        assert!(row.get::<_, String>(2).ends_with("WHERE (name IS NOT NULL)"));
        assert_eq!(
            (row.get::<_, i64>(3), row.get::<_, i64>(4)),
            (0, 4),
            "the journal's checks are gone (version 3), the flows' kept"
        );
    }
}

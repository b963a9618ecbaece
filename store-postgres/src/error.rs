//! PostgreSQL's failures as the store's neutral [`StorageError`]s, by SQLSTATE class: a
//! deadlock or a serialization failure is [`StorageErrorKind::Conflict`], a lock not available
//! `Locked`, a full disk `Full`, a read-only transaction or server `ReadOnly`, data corruption
//! `Corrupt`, a connection that could not be made or was lost `Unavailable`, the rest `Other`
//! (a privilege the role lacks among them: no server that is down, and its message says what
//! to grant). The driver's error stays the source. No message here holds the URL's password: errors name
//! the database by its shown form ([`crate::location::Location`]), and the driver's own
//! messages never quote the connection settings.

use taskflow_store::{Error, StorageError, StorageErrorKind};
use tokio_postgres::error::SqlState;

/// A PostgreSQL failure whose database the caller fills in with [`at`].
pub(crate) fn storage(error: tokio_postgres::Error) -> Error {
    let kind = kind_of(&error);
    let detail = match error.as_db_error() {
        // Only the guard of a flow row's update divides (`update.rs`), and the guards of a
        // checkpoint from memory (`known.rs`), whose failure is taken for a stale memory and
        // never reaches this.
        Some(db) if *db.code() == SqlState::DIVISION_BY_ZERO => {
            "a flow's row was not at the revision read, though its tree was locked: a fault \
             of the store, and the transaction wrote nothing"
                .to_owned()
        }
        // The server's words ("cannot execute UPDATE in a read-only transaction") name neither
        // the setting nor the server's state that refuses the write.
        Some(db) if kind == StorageErrorKind::ReadOnly => format!(
            "the server takes no writes on this connection ({}): `default_transaction_read_only` \
             is on for the server, this database or this user, or the server is a standby",
            db.message()
        ),
        Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => {
            lacking(db.message(), Doing::Work)
        }
        Some(db) => db.message().to_owned(),
        None => error.to_string(),
    };
    Error::Storage(StorageError::new(kind, "", detail).with_source(error))
}

/// The failure of the migration from schema version `from`, of the kind its SQLSTATE says (a
/// privilege the role lacks is no server that is down).
pub(crate) fn migration_failed(
    database: &str,
    from: usize,
    failure: tokio_postgres::Error,
) -> Error {
    let said = match failure.as_db_error() {
        Some(db) if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE => {
            format!("{}: {}", db.severity(), lacking(db.message(), Doing::Migration))
        }
        _ => said(&failure),
    };
    let detail = format!("migration from schema version {from} failed: {said}");
    Error::Storage(StorageError::new(kind_of(&failure), database, detail).with_source(failure))
}

/// What the role was doing when the server refused it a privilege: the same words ("permission
/// denied for schema public") want CREATE of a migration and USAGE of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doing {
    LogIn,
    Migration,
    Work,
}

/// The server's refusal of a privilege (SQLSTATE 42501, `message` its words), followed by what
/// the URL's role lacks and what to grant it.
pub(crate) fn lacking(message: &str, doing: Doing) -> String {
    let object = |prefix: &str| message.strip_prefix(prefix).map(|name| name.trim_matches('"'));
    let needs = if let Some(schema) = object("permission denied for schema ") {
        if doing == Doing::Migration {
            format!(
                "the role may not create tables in schema {schema}: grant it CREATE there, or use \
                 a database it owns"
            )
        } else {
            format!("the role may not use schema {schema}: grant it USAGE there")
        }
    } else if let Some(table) = object("permission denied for table ") {
        format!(
            "the role may not read or write table {table}: grant it SELECT, INSERT, UPDATE and \
             DELETE on taskflow's tables and USAGE on their sequences, or use the role that made \
             them"
        )
    } else if let Some(sequence) = object("permission denied for sequence ") {
        format!("the role may not use sequence {sequence}: grant it USAGE on taskflow's sequences")
    } else if let Some(database) = object("permission denied for database ") {
        format!("the role may not connect to database {database}: grant it CONNECT there")
    } else if let Some(owned) = object("must be owner of ") {
        format!(
            "only the owner of {owned} may change it: open the database once with that role \
             (which brings the schema up to date), or use a database this role owns"
        )
    } else {
        "the role lacks a privilege this needs: grant it, or use a role that has it".to_owned()
    };
    format!("{message}; {needs}")
}

/// Why a connection could not be made (`socket.rs`), and whether trying again can help.
#[derive(Debug, thiserror::Error)]
#[error("{said}")]
pub(crate) struct ConnectError {
    /// What the attempt met, in one line.
    pub said: String,
    /// Set when the server, or its certificate, refused the log-in for good.
    pub refusal: Option<Refusal>,
    /// Whether the server answered the log-in with an error (`sslmode=allow` then tries TLS).
    pub answered: bool,
}

/// A log-in refused for good.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The credentials, the database's name, or TLS: the database cannot be opened.
    LogIn,
    /// The role may not connect to the database (SQLSTATE 42501).
    Privilege,
}

impl ConnectError {
    /// A connection that failed before the server answered: it may come on another try.
    pub fn unanswered(said: impl std::fmt::Display) -> Self {
        ConnectError { said: said.to_string(), refusal: None, answered: false }
    }

    /// The kind of storage error it is.
    pub fn kind(&self) -> StorageErrorKind {
        match self.refusal {
            Some(Refusal::Privilege) => StorageErrorKind::Other,
            Some(Refusal::LogIn) | None => StorageErrorKind::Unavailable,
        }
    }

    /// The storage error it is, about `database`.
    pub fn at(&self, database: &str) -> Error {
        refused(database, self.kind(), self.said.clone())
    }
}

/// What `error` says in one line: the server's own words when it answered with an error
/// (`FATAL: role "x" does not exist`, and its detail), else the driver's message and its
/// causes, which it leaves out itself ("error performing TLS handshake", not that the
/// certificate was refused, and why).
pub(crate) fn said(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return match db.detail() {
            Some(detail) => format!("{}: {} ({detail})", db.severity(), db.message()),
            None => format!("{}: {}", db.severity(), db.message()),
        };
    }
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(inner) = cause {
        let said = inner.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        cause = inner.source();
    }
    text
}

fn kind_of(error: &tokio_postgres::Error) -> StorageErrorKind {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection failed or closed, or the driver could not convert a value.
        return if is_connection_loss(error) {
            StorageErrorKind::Unavailable
        } else {
            StorageErrorKind::Other
        };
    };
    if *code == SqlState::T_R_DEADLOCK_DETECTED || *code == SqlState::T_R_SERIALIZATION_FAILURE {
        return StorageErrorKind::Conflict;
    }
    if *code == SqlState::LOCK_NOT_AVAILABLE {
        return StorageErrorKind::Locked;
    }
    if *code == SqlState::DISK_FULL || *code == SqlState::OUT_OF_MEMORY {
        return StorageErrorKind::Full;
    }
    if *code == SqlState::READ_ONLY_SQL_TRANSACTION {
        return StorageErrorKind::ReadOnly;
    }
    if *code == SqlState::DATA_CORRUPTED || *code == SqlState::INDEX_CORRUPTED {
        return StorageErrorKind::Corrupt;
    }
    match &code.code()[..2] {
        // Connection exceptions, insufficient resources, operator intervention (a server
        // shutting down, an admin ending the session), a server that cannot take connections.
        "08" | "53" | "57" => StorageErrorKind::Unavailable,
        "58" => StorageErrorKind::Io,
        _ => StorageErrorKind::Other,
    }
}

/// Whether `error` means the connection is gone (or never came): the work can be tried again
/// on a new connection when nothing of it was committed.
pub(crate) fn is_connection_loss(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        return matches!(&code.code()[..2], "08" | "57");
    }
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

/// Whether `error`, the failure of a checkpoint that started from what this process
/// remembered of a flow (`known.rs`), is its guards' finding that the flow is no longer so: the
/// transaction did nothing, and the checkpoint may run again, reading the flow.
pub(crate) fn is_stale_memory(error: &Error) -> bool {
    let Error::Storage(storage) = error else { return false };
    let failure = storage.source.as_deref().and_then(|source| source.downcast_ref());
    failure.and_then(tokio_postgres::Error::code) == Some(&SqlState::DIVISION_BY_ZERO)
}

/// `error` as the semantics would have said it had they seen the other transaction's commit:
/// two transactions that each found no flow `created` and inserted it, the later one failing
/// on the primary key when the first committed, is the id taken (`Error::IdTaken`), which a
/// submission of the same body takes for the flow it finds.
pub(crate) fn id_taken(error: Error, created: &[String]) -> Error {
    let Error::Storage(storage) = &error else { return error };
    let failure: Option<&tokio_postgres::Error> =
        storage.source.as_deref().and_then(|source| source.downcast_ref());
    let on_flows_key = failure.and_then(tokio_postgres::Error::as_db_error).is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some("flows_pkey")
    });
    match created {
        [id] if on_flows_key => Error::IdTaken { id: id.clone() },
        _ => error,
    }
}

/// Names the database in a storage error that does not name one yet.
pub(crate) fn at(database: &str, mut error: Error) -> Error {
    if let Error::Storage(storage) = &mut error
        && storage.database.is_empty()
    {
        storage.database = database.to_owned();
    }
    error
}

/// A storage error of `kind` about `database`.
pub(crate) fn refused(database: &str, kind: StorageErrorKind, detail: impl Into<String>) -> Error {
    Error::Storage(StorageError::new(kind, database, detail))
}

/// `?` on a driver result inside the backend.
pub(crate) trait Pg<T> {
    fn pg(self) -> taskflow_store::Result<T>;
}

impl<T> Pg<T> for Result<T, tokio_postgres::Error> {
    fn pg(self) -> taskflow_store::Result<T> {
        self.map_err(storage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_privilege_refused_says_what_the_role_lacks_and_what_to_grant() {
        fn check(message: &str, doing: Doing, expected: &str) {
            assert_eq!(lacking(message, doing), format!("{message}; {expected}"), "{message}");
        }
        check(
            "permission denied for schema public",
            Doing::Migration,
            "the role may not create tables in schema public: grant it CREATE there, or use a \
             database it owns",
        );
        check(
            "permission denied for schema public",
            Doing::Work,
            "the role may not use schema public: grant it USAGE there",
        );
        check(
            "permission denied for table taskflow_schema",
            Doing::Work,
            "the role may not read or write table taskflow_schema: grant it SELECT, INSERT, \
             UPDATE and DELETE on taskflow's tables and USAGE on their sequences, or use the \
             role that made them",
        );
        check(
            "permission denied for sequence events_id_seq",
            Doing::Work,
            "the role may not use sequence events_id_seq: grant it USAGE on taskflow's sequences",
        );
        check(
            "permission denied for database \"flows\"",
            Doing::LogIn,
            "the role may not connect to database flows: grant it CONNECT there",
        );
        check(
            "must be owner of table flows",
            Doing::Migration,
            "only the owner of table flows may change it: open the database once with that role \
             (which brings the schema up to date), or use a database this role owns",
        );
        check(
            "permission denied to create extension \"x\"",
            Doing::Migration,
            "the role lacks a privilege this needs: grant it, or use a role that has it",
        );
    }
}

//! Where the flow database is, and how a command opens it: one that only reads (or records a
//! cancel) never creates a database, and finds no flows where there is no file yet; one that
//! runs flows creates it. `TASKFLOW_BUSY_TIMEOUT_MS` says how long either waits for another
//! process's write lock.
//!
//! `--db` (or `TASKFLOW_DB`) names a SQLite file, or a PostgreSQL database by its
//! `postgres://` URL: the two `open_*` functions are the one place that picks the backend, and
//! every command, serve and the worker get the store through them. A URL is shown through
//! [`shown`], never as given, so its password stays out of every message.

use std::path::{Path, PathBuf};
use std::time::Duration;

use taskflow_store::{Durability, TaskFlow};
use taskflow_store_postgres::Location;
use taskflow_store_sqlite::OpenOptions;

use crate::error::{ApiError, Result};

/// How long to wait for another process's write lock, in milliseconds.
pub const BUSY_TIMEOUT_ENV: &str = "TASKFLOW_BUSY_TIMEOUT_MS";
const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// `TASKFLOW_BUSY_TIMEOUT_MS`, else five seconds.
pub fn busy_timeout() -> Duration {
    std::env::var(BUSY_TIMEOUT_ENV)
        .ok()
        .and_then(|ms| ms.trim().parse().ok())
        .map_or(DEFAULT_BUSY_TIMEOUT, Duration::from_millis)
}

const URL_HINT: &str = "--db (or TASKFLOW_DB) names a SQLite file's path or a \
     postgres://USER[:PASSWORD]@HOST[:PORT]/DB URL (with ?sslmode=… and ?sslrootcert=… for TLS)";

/// The database named (`--db` or `TASKFLOW_DB`), else the default one.
pub fn location(named: Option<&Path>) -> Result<PathBuf> {
    let Some(path) = named else { return Ok(taskflow_store_sqlite::default_path()?) };
    let text = path.to_str().unwrap_or_default();
    if Location::is_postgres_url(text) {
        // A URL the driver cannot read (a port past 65535, an unknown `sslmode`) is a mistake
        // in the command, found before anything connects.
        return match Location::parse(text) {
            Ok(_) => Ok(path.to_owned()),
            Err(taskflow_store::Error::Storage(error)) => Err(ApiError::Invalid {
                message: format!("the database URL {}: {}", error.database, error.detail),
                hint: Some(URL_HINT.to_owned()),
            }),
            Err(error) => Err(error.into()),
        };
    }
    // A URL that is not PostgreSQL's (a typo in its scheme, spaces around it) would otherwise
    // name a file, its password among the folders made for it.
    let trimmed = text.trim();
    if let Some(url) = Location::shown_if_url(trimmed) {
        let why = if Location::is_postgres_url(trimmed) {
            "has spaces around it"
        } else {
            "is a URL, but not a postgres:// or postgresql:// one"
        };
        return Err(ApiError::Invalid {
            message: format!("the database {url} {why}"),
            hint: Some(URL_HINT.to_owned()),
        });
    }
    // Nor would a PostgreSQL URL missing its `//`, or a key=value connection string; neither
    // is shown, as either may hold a password.
    let lower = trimmed.to_ascii_lowercase();
    let names_postgres = ["postgres:", "postgresql:", "postgres//", "postgresql//"]
        .iter()
        .any(|start| lower.starts_with(start));
    let why = if names_postgres {
        Some("names PostgreSQL, but is not a postgres:// URL")
    } else if trimmed.split_whitespace().any(|word| {
        ["host=", "hostaddr=", "dbname=", "user=", "password=", "port=", "sslmode="]
            .iter()
            .any(|key| word.to_ascii_lowercase().starts_with(key))
    }) {
        Some("is a key=value connection string, which taskflow does not read")
    } else {
        None
    };
    if let Some(why) = why {
        return Err(ApiError::Invalid {
            message: format!("the database given {why}"),
            hint: Some(URL_HINT.to_owned()),
        });
    }
    Ok(path.to_owned())
}

/// The PostgreSQL URL `location` holds, if it names a PostgreSQL database.
pub fn postgres_url(location: &Path) -> Option<&str> {
    location.to_str().filter(|text| Location::is_postgres_url(text))
}

/// `location` as messages show it: a file's path, or a URL without its password.
pub fn shown(location: &Path) -> String {
    match postgres_url(location) {
        Some(url) => match Location::parse(url) {
            Ok(parsed) => parsed.shown().to_owned(),
            Err(_) => "postgres://…".to_owned(),
        },
        None => location.display().to_string(),
    }
}

/// A PostgreSQL store that waits `TASKFLOW_BUSY_TIMEOUT_MS` for a server it cannot reach (a
/// restart) before failing.
fn open_postgres(url: &str) -> Result<TaskFlow> {
    let options = taskflow_store_postgres::OpenOptions {
        retry_for: busy_timeout(),
        ..taskflow_store_postgres::OpenOptions::default()
    };
    Ok(taskflow_store_postgres::open(url, &options)?)
}

/// The folder the stderr of MCP servers goes to (`NAME.log` each): `mcp-logs` beside the
/// database file, or in the default data folder for a PostgreSQL database.
pub fn mcp_log_dir(database: &Path) -> PathBuf {
    let beside = match postgres_url(database) {
        Some(_) => taskflow_store_sqlite::default_path()
            .ok()
            .and_then(|path| path.parent().map(Path::to_path_buf)),
        None => database.parent().map(Path::to_path_buf),
    };
    beside.unwrap_or_else(|| PathBuf::from(".")).join("mcp-logs")
}

/// The database at `path` to read from; `None` when there is no file, which holds no flows.
/// A PostgreSQL database is always there (its schema is made when missing).
pub fn open_existing(path: &Path) -> Result<Option<TaskFlow>> {
    if let Some(url) = postgres_url(path) {
        return open_postgres(url).map(Some);
    }
    if !path.exists() {
        return Ok(None);
    }
    let options =
        OpenOptions { busy_timeout: busy_timeout(), create: false, ..OpenOptions::default() };
    Ok(Some(taskflow_store_sqlite::open(path, &options)?))
}

/// The database at `path` to run flows in, created when missing.
pub fn open_for_running(path: &Path, durability: Durability) -> Result<TaskFlow> {
    if let Some(url) = postgres_url(path) {
        return open_postgres(url);
    }
    let options = OpenOptions { durability, busy_timeout: busy_timeout(), create: true };
    Ok(taskflow_store_sqlite::open(path, &options)?)
}

/// How long a worker waits for a server it cannot reach: it rides out a restart, so longer
/// than a command.
pub fn worker_wait() -> Duration {
    busy_timeout().max(Duration::from_secs(60))
}

/// A PostgreSQL store for a worker, with a listener that wakes it when a flow is queued,
/// signalled or cancelled, waiting `first_wait` for a server it cannot reach as it opens and
/// [`worker_wait`] in each outage after; `None` when `path` names no PostgreSQL database.
pub fn open_worker(
    path: &Path,
    first_wait: Duration,
) -> Result<Option<(TaskFlow, taskflow_store_postgres::Listener)>> {
    let Some(url) = postgres_url(path) else { return Ok(None) };
    let options = taskflow_store_postgres::OpenOptions {
        retry_for: first_wait,
        ..taskflow_store_postgres::OpenOptions::default()
    };
    let store =
        taskflow_store_postgres::PostgresStore::open(url, &options)?.with_retry_for(worker_wait());
    let listener = store.listen()?;
    Ok(Some((TaskFlow::new(std::sync::Arc::new(store)), listener)))
}

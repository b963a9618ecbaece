//! Where the flow database is, and how a command opens it: one that only reads (or records a
//! cancel) never creates a database, and finds no flows where there is no file yet; one that
//! runs flows creates it. `TASKFLOW_BUSY_TIMEOUT_MS` says how long either waits for another
//! process's write lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use taskflow_store::{Durability, TaskFlow};
use taskflow_store_sqlite::OpenOptions;

use crate::error::Result;

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

/// The database named (`--db` or `TASKFLOW_DB`), else the default one.
pub fn location(named: Option<&Path>) -> Result<PathBuf> {
    match named {
        Some(path) => Ok(path.to_owned()),
        None => Ok(taskflow_store_sqlite::default_path()?),
    }
}

/// The folder the stderr of MCP servers goes to (`NAME.log` each): `mcp-logs` beside the
/// database.
pub fn mcp_log_dir(database: &Path) -> PathBuf {
    database.parent().unwrap_or_else(|| Path::new(".")).join("mcp-logs")
}

/// The database at `path` to read from; `None` when there is no file, which holds no flows.
pub fn open_existing(path: &Path) -> Result<Option<TaskFlow>> {
    if !path.exists() {
        return Ok(None);
    }
    let options =
        OpenOptions { busy_timeout: busy_timeout(), create: false, ..OpenOptions::default() };
    Ok(Some(taskflow_store_sqlite::open(path, &options)?))
}

/// The database at `path` to run flows in, created when missing.
pub fn open_for_running(path: &Path, durability: Durability) -> Result<TaskFlow> {
    let options = OpenOptions { durability, busy_timeout: busy_timeout(), create: true };
    Ok(taskflow_store_sqlite::open(path, &options)?)
}

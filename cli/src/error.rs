//! The CLI's one error type: every failure a command can report, with the exit code and the
//! hint that go with it. Library errors are turned into this type at the command boundary.

use std::fmt;
use std::path::Path;

/// Exit code of a command that failed (including a flow that ended `failed`).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of a command line that could not be understood.
pub const EXIT_USAGE: u8 = 2;

/// A failure to report as one `error:` line on stderr, an optional `hint:` line, and an exit code.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
    exit_code: u8,
}

impl CliError {
    /// A failure of the command itself (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: EXIT_FAILURE }
    }

    /// A command line that makes no sense (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self { message: message.into(), hint: None, exit_code: EXIT_USAGE }
    }

    /// A write of `what` to standard output that failed. When its reader has gone
    /// (`taskflow parse --stream | head -1`), the command has nothing more to say to anyone: it
    /// ends quietly and successfully, as it does when `println!` finds the output closed.
    pub fn writing_output(what: &str, error: std::io::Error) -> Self {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            return Self { message: String::new(), hint: None, exit_code: 0 };
        }
        Self::failure(format!("cannot write {what}: {error}"))
    }

    /// Whether this ends the command quietly with success (the output's reader has gone).
    pub fn is_quiet(&self) -> bool {
        self.exit_code == 0
    }

    /// Adds a hint that tells the user what to do about it.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn exit_code(&self) -> u8 {
        self.exit_code
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CliError {}

pub type CliResult<T = ()> = Result<T, CliError>;

impl From<taskflow_engine::Error> for CliError {
    /// A flow store failure, with the hint that tells the user what to do about it. Input the
    /// store refuses (a name, a schedule's `--after`, a signal's name) came from the command
    /// line: a usage error.
    fn from(error: taskflow_engine::Error) -> Self {
        use taskflow_engine::{Error, StorageErrorKind};
        if let Error::InvalidInput(message) = &error {
            return CliError::usage(message.clone());
        }
        let hint = match &error {
            Error::NotFound { .. } => Some(
                "`taskflow flows list` shows your flows; --owner (or TASKFLOW_OWNER) picks whose",
            ),
            Error::RevisionConflict { .. } => {
                Some("the flow changed meanwhile; `taskflow flows inspect ID` shows its revision")
            }
            Error::Storage(error) => match error.kind {
                StorageErrorKind::SchemaTooNew { .. } => {
                    Some("it was written by a newer taskflow; use that version, or another --db")
                }
                StorageErrorKind::Corrupt
                    if taskflow_api::database::postgres_url(Path::new(&error.database))
                        .is_some() =>
                {
                    Some(
                        "point --db (or TASKFLOW_DB) at a taskflow database; `taskflow doctor` \
                         says what is wrong with this one",
                    )
                }
                StorageErrorKind::Corrupt => Some(
                    "point --db (or TASKFLOW_DB) at a taskflow database, or move this file aside \
                     to start afresh",
                ),
                StorageErrorKind::Locked => Some(
                    "another taskflow process holds it; retry when it is done \
                     (TASKFLOW_BUSY_TIMEOUT_MS sets how long to wait)",
                ),
                StorageErrorKind::Unavailable
                    if taskflow_api::database::postgres_url(Path::new(&error.database))
                        .is_some() =>
                {
                    Some(
                        "check that the PostgreSQL server in the URL given by --db (or \
                         TASKFLOW_DB) runs and takes connections, and the URL's user, password \
                         and database; TASKFLOW_BUSY_TIMEOUT_MS sets how long to wait for a \
                         server that is down",
                    )
                }
                StorageErrorKind::Unavailable => {
                    Some("check the path given by --db (or TASKFLOW_DB) and its permissions")
                }
                StorageErrorKind::Full => Some(
                    "free space on the disk that holds it; a run it stopped continues with \
                     `taskflow flows resume ID`",
                ),
                StorageErrorKind::Io => Some(
                    "check the disk that holds it (the system log names the device); a run it \
                     stopped continues with `taskflow flows resume ID`",
                ),
                StorageErrorKind::ReadOnly
                    if taskflow_api::database::postgres_url(Path::new(&error.database))
                        .is_some() =>
                {
                    Some(
                        "let the server take writes again (`default_transaction_read_only` off \
                         for the server, the database and the user; a primary, not a standby); a \
                         run it stopped, if any, continues with `taskflow flows resume ID`",
                    )
                }
                StorageErrorKind::ReadOnly => Some(
                    "make the file and its folder writable (or put the file back where it was); \
                     a run it stopped, if any, continues with `taskflow flows resume ID`",
                ),
                StorageErrorKind::Conflict | StorageErrorKind::Other => None,
            },
            Error::Io { .. } => {
                Some("check the path given by --db (or TASKFLOW_DB) and its permissions")
            }
            Error::NoDataDir => Some("name the database with --db or TASKFLOW_DB"),
            Error::LeaseHeld { .. } => {
                Some("wait for that runner to finish, or for its lease to expire")
            }
            Error::ScheduleNotFound { .. } => Some(
                "`taskflow schedules list` shows your schedules; --owner (or TASKFLOW_OWNER) \
                 picks whose",
            ),
            Error::ScheduleExists { .. } => Some(
                "`taskflow schedules apply FILE` updates a schedule; pick another name to add one",
            ),
            Error::ScheduleNameTaken { .. } => Some("pick another name"),
            _ => None,
        };
        let failure = CliError::failure(error.to_string());
        match hint {
            Some(hint) => failure.with_hint(hint),
            None => failure,
        }
    }
}

impl From<taskflow_api::ApiError> for CliError {
    /// An api failure: a store failure as above, a request that makes no sense as a usage
    /// error, the rest (a refusal among them) as failures with the api's hint.
    fn from(error: taskflow_api::ApiError) -> Self {
        use taskflow_api::ApiError;
        let hint = error.hint().map(str::to_owned);
        let cli = match error {
            ApiError::Store(error) => return error.into(),
            ApiError::Invalid { message, .. } => CliError::usage(message),
            other => CliError::failure(other.to_string()),
        };
        match hint {
            Some(hint) => cli.with_hint(hint),
            None => cli,
        }
    }
}

//! Saying that the database cannot be reached, once. While a server is down, the tasks that use
//! it (the scheduler asking for its role, a worker's wake-up connection) try again every few
//! hundred milliseconds; each failure is not news. [`Outage`] turns them into one warning when
//! the database is first found unreachable and one line when it is reached again, with how long
//! it was away. Only failures to reach it count ([`StorageErrorKind::Unavailable`]); others are
//! for their task to report.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use taskflow_store::{Error, StorageErrorKind};

/// Whether the database is unreachable now, shared by the tasks that find out.
pub struct Outage {
    since: Mutex<Option<Instant>>,
    say: Box<dyn Fn(&str) + Send + Sync>,
}

impl Default for Outage {
    /// Says it on stderr.
    fn default() -> Self {
        Outage::saying(|line| eprintln!("{line}"))
    }
}

impl Outage {
    /// Says each line with `say`.
    pub fn saying(say: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Outage { since: Mutex::new(None), say: Box::new(say) }
    }

    /// A task could not reach the database: the first such failure says so. Returns whether
    /// `error` was one (then the caller says nothing more of it).
    pub fn failed(&self, error: &Error) -> bool {
        let Error::Storage(storage) = error else { return false };
        if storage.kind != StorageErrorKind::Unavailable {
            return false;
        }
        let mut since = self.lock();
        if since.is_none() {
            *since = Some(Instant::now());
            (self.say)(&format!(
                "warning: the database cannot be reached ({error}); trying again until it can"
            ));
        }
        true
    }

    /// A task reached the database: if it could not be reached before, say that it is back.
    pub fn reached(&self) {
        if let Some(since) = self.lock().take() {
            (self.say)(&format!("the database is reached again, after {}", away(since.elapsed())));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.since.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// How long, as a person reads it.
fn away(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use taskflow_store::StorageError;

    use super::*;

    enum Seen {
        Failed(StorageErrorKind),
        Reached,
    }

    /// The lines said for `seen`, in order, times left out; and what each `failed` answered.
    fn check(seen: &[Seen], expected_lines: &[&str], expected_answers: &[bool]) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let outage = {
            let lines = Arc::clone(&lines);
            Outage::saying(move |line| lines.lock().unwrap().push(line.to_owned()))
        };
        let mut answers = Vec::new();
        for event in seen {
            match event {
                Seen::Failed(kind) => {
                    let error = Error::Storage(StorageError::new(
                        *kind,
                        "postgres://u@db/x",
                        "connection refused",
                    ));
                    answers.push(outage.failed(&error));
                }
                Seen::Reached => outage.reached(),
            }
        }
        let lines = lines.lock().unwrap();
        let shown: Vec<&str> =
            lines.iter().map(|line| line.split(", after").next().unwrap()).collect();
        assert_eq!(shown, expected_lines);
        assert_eq!(answers, expected_answers);
    }

    #[test]
    fn an_outage_is_said_once_when_it_starts_and_once_when_it_ends() {
        use Seen::*;
        use StorageErrorKind::*;
        let down = "warning: the database cannot be reached (cannot open the flow database \
                    postgres://u@db/x: connection refused); trying again until it can";
        let back = "the database is reached again";
        check(&[Reached, Reached], &[], &[]);
        check(
            &[Failed(Unavailable), Failed(Unavailable), Failed(Unavailable), Reached, Reached],
            &[down, back],
            &[true, true, true],
        );
        check(
            &[Failed(Unavailable), Reached, Failed(Unavailable)],
            &[down, back, down],
            &[true, true],
        );
        check(&[Failed(Conflict), Failed(Full), Reached], &[], &[false, false]);
    }
}

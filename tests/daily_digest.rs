//! The daily-digest example (`examples/daily_digest.rs`, a program using the library API with
//! its own actions) crashes during `filter` and, run again, resumes there: `scrape` is not run
//! again, `filter` runs again with the same idempotency key as attempt 2, and the digest is
//! complete. The example's source is compiled into this test, which runs it in a copy of
//! itself so that the crash (an abort) ends only that copy.

#[path = "../examples/daily_digest.rs"]
mod daily_digest;

use std::process::Command;

const WORKER: &str = "TASKFLOW_DIGEST_TEST_WORKER";
const TEST: &str = "the_daily_digest_resumes_at_filter_after_a_crash_during_it";

fn digest_run(db: &std::path::Path, crash_in: Option<&str>) -> (Option<i32>, String) {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args(["--exact", TEST, "--nocapture", "--test-threads", "1"])
        .env(WORKER, "1")
        .env("TASKFLOW_DB", db);
    match crash_in {
        Some(step) => command.env("TASKFLOW_DIGEST_CRASH_IN", step),
        None => command.env_remove("TASKFLOW_DIGEST_CRASH_IN"),
    };
    let output = command.output().unwrap();
    (output.status.code(), String::from_utf8(output.stdout).unwrap())
}

/// The lines of the program that start with `prefix` (the test harness may print its own
/// text before the first one, on the same line).
fn lines<'a>(stdout: &'a str, prefix: &str) -> Vec<&'a str> {
    stdout.lines().filter_map(|line| line.find(prefix).map(|at| &line[at..])).collect()
}

#[test]
fn the_daily_digest_resumes_at_filter_after_a_crash_during_it() {
    if std::env::var(WORKER).is_ok() {
        daily_digest::main().unwrap();
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");

    let (code, first) = digest_run(&db, Some("filter"));
    assert_eq!(code, None, "the first run dies of SIGABRT: {first}");
    let id = lines(&first, "started flow ")[0].trim_start_matches("started flow ").to_owned();
    assert_eq!(
        lines(&first, "scrape: "),
        [format!("scrape: attempt 1 (key {id}:1): collecting headlines")]
    );
    assert_eq!(
        lines(&first, "filter: ").last().copied(),
        Some(format!("filter: attempt 1 (key {id}:2): crashing").as_str())
    );
    assert!(lines(&first, "draft: ").is_empty());

    let (code, second) = digest_run(&db, None);
    assert_eq!(code, Some(0), "{second}");
    assert_eq!(
        lines(&second, "resuming flow "),
        [format!("resuming flow {id} (1 of 3 steps done)")]
    );
    assert!(lines(&second, "scrape: ").is_empty(), "scrape is never run again: {second}");
    assert_eq!(
        lines(&second, "filter: "),
        [format!("filter: attempt 2 (key {id}:2): keeping the followed topics")]
    );
    assert_eq!(lines(&second, "draft: "), [format!("draft: attempt 1 (key {id}:3): drafting")]);
    assert_eq!(lines(&second, "- ").len(), 3);
    assert!(!second.contains("tomato"));
}

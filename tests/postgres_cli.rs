//! The same CLI on both backends: a pipeline run through `taskflow run` on a SQLite file and on
//! PostgreSQL (a scratch schema of the test server) gives the same `flows list`, `flows inspect`
//! and `flows history` documents, once times and lease holders are set aside. And a URL's
//! password appears in no output, error included.

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;
use taskflow_store_postgres::scratch::Scratch;

const PIPELINE: &str = "fixtures/pipelines/compare/three_steps.toml";

fn taskflow(db: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["--db", db, "--owner", "alice"])
        .env_remove("TASKFLOW_OWNER")
        .env_remove("TASKFLOW_DB");
    command
}

fn json(db: &str, args: &[&str]) -> Value {
    let output = taskflow(db).arg("--json").args(args).assert().success();
    serde_json::from_slice(&output.get_output().stdout).expect("one JSON document")
}

/// `value` with every time and lease holder (which differ from run to run) replaced by a mark.
fn normalized(mut value: Value) -> Value {
    fn walk(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    let varies = key == "at" || key.ends_with("_at") || key == "lease";
                    if varies && !item.is_null() {
                        *item = Value::from("<varies>");
                    } else {
                        walk(item);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            // A lease holder in a history's change ("HOST:PID").
            Value::String(text)
                if text.split(':').count() == 2
                    && text.split(':').nth(1).is_some_and(|pid| pid.parse::<u32>().is_ok()) =>
            {
                *text = "<holder>".to_owned();
            }
            _ => {}
        }
    }
    walk(&mut value);
    value
}

fn documents(db: &str) -> Vec<Value> {
    taskflow(db).args(["run", PIPELINE, "--id", "compare-1"]).assert().success();
    [
        vec!["flows", "list"],
        vec!["flows", "inspect", "compare-1"],
        vec!["flows", "history", "compare-1"],
    ]
    .iter()
    .map(|args| normalized(json(db, args)))
    .collect()
}

#[test]
fn flows_list_inspect_and_history_print_the_same_documents_on_both_backends() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flows.db");
    let sqlite = documents(file.to_str().unwrap());
    let scratch = Scratch::new();
    let postgres = documents(&scratch.url());
    assert_eq!(sqlite[0]["flows"][0]["steps_done"], 3, "{}", sqlite[0]);
    for (on_sqlite, on_postgres) in sqlite.iter().zip(&postgres) {
        assert_eq!(on_sqlite, on_postgres);
    }
}

#[test]
fn help_does_not_show_the_database_url_the_environment_gives() {
    for args in [&["--help"][..], &["worker", "--help"], &["flows", "list", "--help"]] {
        let output = Command::new(env!("CARGO_BIN_EXE_taskflow"))
            .env("TASKFLOW_DB", "postgres://taskflow:pg-s3cret@127.0.0.1:1/flows")
            .args(args)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("[env: TASKFLOW_DB"), "{args:?}: {text}");
        assert!(!text.contains("pg-s3cret"), "{args:?}: {text}");
    }
}

#[test]
fn the_password_of_a_postgres_url_appears_in_no_output() {
    let scratch = Scratch::new();
    let url = scratch.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, hosts) = rest.split_once('@').unwrap();
    let with_password = format!("{scheme}://{user}:pg-s3cret@{hosts}");
    let runs = [
        taskflow(&with_password).args(["run", PIPELINE, "--id", "p-1"]).output().unwrap(),
        taskflow(&with_password).args(["flows", "list"]).output().unwrap(),
        taskflow(&with_password).args(["flows", "inspect", "missing"]).output().unwrap(),
        taskflow(&with_password).args(["--json", "doctor"]).output().unwrap(),
        taskflow("postgres://taskflow:pg-s3cret@127.0.0.1:1/none")
            .env("TASKFLOW_BUSY_TIMEOUT_MS", "200")
            .args(["flows", "list"])
            .output()
            .unwrap(),
    ];
    for (i, run) in runs.iter().enumerate() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(!text.contains("pg-s3cret"), "run {i}: {text}");
        assert!(!text.is_empty(), "run {i} printed something");
    }
    assert!(runs[0].status.success() && runs[1].status.success() && runs[3].status.success());
    let refused = String::from_utf8_lossy(&runs[4].stderr);
    assert!(refused.contains("postgres://taskflow@127.0.0.1:1/none"), "{refused}");

    // Given as TASKFLOW_DB, the URL does not reach a step's processes, whose output the
    // journal keeps; a file's path still does.
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("env.toml");
    let command = "env | grep ^TASKFLOW_DB= || echo none";
    std::fs::write(
        &pipeline,
        format!("name = \"env\"\n[[steps]]\nid = \"e\"\naction = \"shell\"\nwith = {{ command = \"{command}\" }}\n"),
    )
    .unwrap();
    for (db, seen) in [(with_password.clone(), "none".to_owned()), {
        let file = dir.path().join("flows.db").display().to_string();
        (file.clone(), format!("TASKFLOW_DB={file}"))
    }] {
        let mut run = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        run.env("TASKFLOW_DB", &db).args(["--json", "run"]).arg(&pipeline);
        let output = run.output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let document: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(document["steps"][0]["output"], seen, "{db}");
    }
}

#[test]
fn a_database_url_that_is_not_a_postgres_one_it_can_read_is_a_usage_error_that_makes_no_file() {
    let scratch = Scratch::new();
    let url = scratch.url();
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, hosts) = rest.split_once('@').unwrap();
    // The scheme in upper case is the same URL.
    let upper = format!("{}://{user}:pg-s3cret@{hosts}", scheme.to_uppercase());
    let listed = taskflow(&upper).args(["flows", "list"]).output().unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let dir = tempfile::tempdir().unwrap();
    for (db, why) in [
        (format!("postgress://{user}:pg-s3cret@{hosts}"), "not a postgres:// or postgresql://"),
        (format!(" {scheme}://{user}:pg-s3cret@{hosts}"), "has spaces around it"),
        // PostgreSQL URLs the driver cannot read.
        (
            format!("{scheme}://{user}:pg-s3cret@127.0.0.1:99999/db"),
            "invalid value for option `port`",
        ),
        (
            format!("{scheme}://{user}:pg-s3cret@127.0.0.1/db?sslmode=bogus"),
            "the sslmode given is not a mode",
        ),
        // A password with delimiters of URLs unencoded: read as the driver reads it, part of it
        // would be the host, and shown.
        (format!("{scheme}://{user}:pg/s3cret@{hosts}"), "percent-encode `@`, `/`, `?` and `#`"),
        (format!("{scheme}://{user}:pg@s3cret@{hosts}"), "percent-encode `@`, `/`, `?` and `#`"),
        // Not URLs, but no files either.
        (
            format!("{scheme}:/{user}:pg-s3cret@{hosts}"),
            "names PostgreSQL, but is not a postgres://",
        ),
        (
            format!("{scheme}//{user}:pg-s3cret@{hosts}"),
            "names PostgreSQL, but is not a postgres://",
        ),
        (format!("host=127.0.0.1 user={user} password=pg-s3cret"), "key=value connection string"),
    ] {
        let output =
            taskflow(&db).current_dir(dir.path()).args(["flows", "list"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(why) && !stderr.contains("s3cret"), "{stderr}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no file made for {db:?}");
    }
}

/// A database that cannot be opened says why in the server's or the system's words, with a hint
/// about the URL and the server rather than about a file; a server that is down is waited for
/// as long as `TASKFLOW_BUSY_TIMEOUT_MS` says, a log-in refused for good not at all.
#[test]
fn a_postgres_database_that_cannot_be_opened_says_why() {
    let scratch = Scratch::new();
    let url = scratch.url();
    let missing = match url.split_once('?') {
        Some((base, query)) => {
            format!("{}/no_such_database?{query}", base.rsplit_once('/').unwrap().0)
        }
        None => format!("{}/no_such_database", url.rsplit_once('/').unwrap().0),
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = format!("postgres://taskflow@{closed}/db");
    for (db, said) in [
        (missing.as_str(), "FATAL: database \"no_such_database\" does not exist"),
        (down.as_str(), &*format!("cannot connect to {closed}: Connection refused")),
    ] {
        let started = std::time::Instant::now();
        let output = taskflow(db)
            .env("TASKFLOW_BUSY_TIMEOUT_MS", "300")
            .args(["flows", "list"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(said), "{stderr}");
        assert!(stderr.contains("hint: check that the PostgreSQL server"), "{stderr}");
        assert!(!stderr.contains("path") && !stderr.contains("db error"), "{stderr}");
        // The connect timeout is five seconds: waiting it out would ignore the setting.
        assert!(started.elapsed() < std::time::Duration::from_secs(4), "{stderr}");
    }
    // A worker waits a minute for a server that is down, and says so at once.
    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["--db", &down, "worker"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = worker.stderr.take().unwrap();
    let (said, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stderr), &mut line);
        let _ = said.send(line);
    });
    let line = first.recv_timeout(std::time::Duration::from_secs(10));
    let _ = worker.kill();
    let _ = worker.wait();
    let line = line.expect("a line within ten seconds");
    assert!(line.starts_with("warning: ") && line.contains("Connection refused"), "{line}");
    assert!(line.contains("waiting up to 60 s for it"), "{line}");
}

/// `doctor` reads a PostgreSQL database's schema version without migrating it, as on SQLite: an
/// older one is the finding `schema`, left as it is, and `--fix` migrates it; a database without
/// taskflow's tables has nothing to check, and gets none.
#[test]
fn doctor_reports_an_older_postgres_schema_untouched_and_migrates_it_with_fix() {
    let scratch = Scratch::new();
    let url = scratch.url();
    let mut server = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let doctor = |args: &[&str]| {
        let output = taskflow(&url).args(["--json", "doctor"]).args(args).output().unwrap();
        let document: Value = serde_json::from_slice(&output.stdout).expect("one JSON document");
        (output.status.code(), document)
    };

    let (code, empty) = doctor(&[]);
    assert_eq!((code, &empty["findings"]), (Some(0), &serde_json::json!([])), "{empty}");
    let tables: i64 = server
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()", &[])
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "doctor makes no schema");

    taskflow(&url).args(["flows", "list"]).assert().success();
    server.batch_execute("UPDATE taskflow_schema SET version = 2").unwrap();
    let version = |server: &mut postgres::Client| -> i64 {
        server.query_one("SELECT version FROM taskflow_schema", &[]).unwrap().get(0)
    };
    let (code, document) = doctor(&[]);
    assert_eq!(code, Some(1), "{document}");
    let finding = &document["findings"][0];
    assert_eq!((&finding["code"], &finding["fixed"]), (&"schema".into(), &Value::Null));
    let current = taskflow_store_postgres::SCHEMA_VERSION;
    let reason = format!("schema version 2, this taskflow writes {current}");
    assert!(finding["reason"].as_str().unwrap().starts_with(&reason), "{document}");
    assert_eq!(version(&mut server), 2, "nothing written, not even a migration");

    let (code, document) = doctor(&["--fix"]);
    assert_eq!(code, Some(0), "{document}");
    let fixed = format!("migrated to schema version {current}");
    assert_eq!(document["findings"][0]["fixed"], fixed.as_str(), "{document}");
    assert_eq!(version(&mut server), current);
}

/// A server that takes no writes says so in its terms, and the hint is about the server, not
/// about a file.
#[test]
fn a_postgres_server_that_takes_no_writes_is_said_to_and_not_taken_for_a_file() {
    let scratch = Scratch::new();
    let url = scratch.url();
    taskflow(&url).args(["flows", "list"]).assert().success();
    let read_only = format!("{url}%20-c%20default_transaction_read_only%3Don");
    let output = taskflow(&read_only).args(["run", PIPELINE, "--id", "ro-1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot be written: the server takes no writes"), "{stderr}");
    assert!(stderr.contains("hint: let the server take writes again"), "{stderr}");
    assert!(!stderr.contains("file"), "{stderr}");
}

/// A worker runs every owner's flows of a PostgreSQL database. `--owner` given to it is refused
/// (it would pick nothing), but not TASKFLOW_OWNER, which people export for their other
/// commands; a SQLite file is refused with the ways to go on; and its help says both.
#[test]
fn a_worker_takes_a_postgres_url_and_no_owner() {
    let scratch = Scratch::new();
    let url = scratch.url();
    // A worker that starts instead of refusing runs for ever: ten seconds end it.
    let worker = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
        command
            .args(args)
            .env("TASKFLOW_CONFIG", "/dev/null")
            .env_remove("TASKFLOW_DB")
            .env_remove("TASKFLOW_OWNER")
            .timeout(std::time::Duration::from_secs(10));
        command
    };
    for args in
        [["--db", &url, "worker", "--owner", "bob"], ["--db", &url, "--owner", "bob", "worker"]]
    {
        let refused = worker(&args).output().unwrap();
        assert_eq!(refused.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&refused.stderr),
            "error: --owner does not apply to `taskflow worker`\n\
             hint: a worker runs every owner's flows; leave --owner out\n"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("flows.db");
    let refused = worker(&["--db", file.to_str().unwrap(), "worker"]).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&refused.stderr),
        format!(
            "error: a worker runs the flows of a PostgreSQL database, and {} is a SQLite file\n\
             hint: give --db (or TASKFLOW_DB) postgres://USER@HOST/DB; `taskflow serve` runs the \
             flows of a SQLite file\n",
            file.display()
        )
    );
    assert!(!file.exists(), "no database is made for a worker that does not start");

    let help = worker(&["worker", "--help"]).output().unwrap();
    let help =
        String::from_utf8_lossy(&help.stdout).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        help.contains(
            "The database must be PostgreSQL's: --db (or TASKFLOW_DB) postgres://USER@HOST/DB"
        ),
        "{help}"
    );
    assert!(help.contains("A worker runs every owner's flows: --owner does not apply"), "{help}");

    let mut started = std::process::Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["--db", &url, "worker"])
        .env("TASKFLOW_CONFIG", "/dev/null")
        .env("TASKFLOW_OWNER", "bob")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = started.stdout.take().unwrap();
    let (said, first) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = said.send(line);
    });
    let line = first.recv_timeout(std::time::Duration::from_secs(10));
    let _ = started.kill();
    let _ = started.wait();
    let line = line.expect("a line within ten seconds");
    assert!(line.starts_with("working on postgres://"), "{line}");
}

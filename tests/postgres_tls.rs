//! TLS to PostgreSQL through rustls. The test server (scripts/services/postgres.sh) takes TLS
//! with a certificate for 127.0.0.1 and localhost, signed by an authority of the tests' own
//! (TASKFLOW_TEST_POSTGRES_CA). A pipeline runs over `sslmode=verify-full` and `verify-ca`
//! trusting that authority; trusting another, the CLI fails with an error that says the
//! certificate was refused and names the database without its password.

use std::path::Path;
use std::process::Output;

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

/// The authority that signed the test server's certificate.
fn server_authority() -> String {
    std::env::var("TASKFLOW_TEST_POSTGRES_CA").expect(
        "TASKFLOW_TEST_POSTGRES_CA is not set: run the tests through scripts/test, which starts \
         the server with TLS (scripts/services/postgres.sh)",
    )
}

/// `url` with a password and the query parameters `tls`.
fn tls_url(url: &str, tls: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (user, hosts) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:pg-s3cret@{hosts}&{tls}")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_pipeline_runs_over_tls_checked_against_the_servers_authority() {
    let scratch = Scratch::new();
    let ca = server_authority();
    for (mode, id) in [("verify-full", "tls-full"), ("verify-ca", "tls-ca"), ("require", "tls-req")]
    {
        let url = tls_url(&scratch.url(), &format!("sslmode={mode}&sslrootcert={ca}"));
        let run = taskflow(&url).args(["run", PIPELINE, "--id", id]).output().unwrap();
        assert!(run.status.success(), "{mode}: {}", text(&run));
        let inspected = taskflow(&url).args(["--json", "flows", "inspect", id]).output().unwrap();
        assert!(!text(&run).contains("pg-s3cret") && !text(&inspected).contains("pg-s3cret"));
        let flow: Value = serde_json::from_slice(&inspected.stdout).unwrap();
        assert_eq!(flow["flow"]["status"], "succeeded", "{mode}: {flow}");
    }
}

#[test]
fn an_authority_that_did_not_sign_the_servers_certificate_is_refused_clearly() {
    let scratch = Scratch::new();
    let dir = tempfile::tempdir().unwrap();
    let stranger = dir.path().join("stranger.crt");
    let made = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
        .args(["-nodes", "-days", "1", "-subj", "/CN=a stranger"])
        .args(["-addext", "basicConstraints=critical,CA:TRUE"])
        .arg("-keyout")
        .arg(dir.path().join("stranger.key"))
        .arg("-out")
        .arg(&stranger)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let url =
        tls_url(&scratch.url(), &format!("sslmode=verify-full&sslrootcert={}", stranger.display()));
    // Refused at once: the wait for a server that cannot be reached (a minute here) is not
    // for a certificate the client refuses.
    let started = std::time::Instant::now();
    let refused = taskflow(&url)
        .env("TASKFLOW_BUSY_TIMEOUT_MS", "60000")
        .args(["flows", "list"])
        .output()
        .unwrap();
    let waited = started.elapsed();
    let said = text(&refused);
    assert!(!refused.status.success(), "{said}");
    assert!(waited < std::time::Duration::from_secs(30), "refused at once: {waited:?}");
    assert!(said.contains("certificate"), "says why: {said}");
    assert!(said.contains("postgres://taskflow@127.0.0.1"), "names the database: {said}");
    assert!(!said.contains("pg-s3cret"), "{said}");

    // A mode that is no mode, and a verifying mode without an authority, are refused at once.
    for (tls, fragment) in [
        ("sslmode=verify", "the sslmode given is not a mode"),
        ("sslmode=verify-full", "need sslrootcert=PATH"),
    ] {
        let refused =
            taskflow(&tls_url(&scratch.url(), tls)).args(["flows", "list"]).output().unwrap();
        assert!(
            !refused.status.success() && text(&refused).contains(fragment),
            "{}",
            text(&refused)
        );
        assert!(!text(&refused).contains("pg-s3cret"));
    }
}

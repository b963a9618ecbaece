//! serve's OpenAPI document is its contract: schemathesis (from PyPI, in the Python of
//! `scripts/test`) reads a live serve's `/openapi.json` and calls every operation with requests
//! made from it, valid and not, one by one and in sequences that follow the document's links.
//! Every check schemathesis has runs: no answer is a server error; every answer matches the
//! document (its status, content type, headers and body, each event of the event stream too);
//! a request the document calls invalid is refused, and one it calls valid is not refused as
//! malformed; a request without the token, or with a wrong one, is 401. Flows seeded first
//! (mirrored ones in several states, a managed flow that succeeded and one that failed) are
//! among the ids it tries, so its requests reach the rules, not only "no such flow".

#[path = "support/python.rs"]
mod python;
#[path = "support/serve.rs"]
mod serve_process;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use serve_process::{BIN, Serve, folder};

/// Flows the fuzzer is given by id.
const MIRRORED: [&str; 6] = ["m0", "m1", "m2", "m3", "m4", "m5"];
const MANAGED: [(&str, &str); 2] = [("g0", "echo done"), ("g1", "exit 3")];

const TOKEN: &str = "fuzz-token-0123456789";

/// The run's settings: the seeded ids as dictionaries the fuzzer draws from, the event stream
/// read for one second per request (it never ends), no example database left behind.
///
/// A request the document calls valid may still be refused with 422 (`positive_data_acceptance`
/// is told so): the rules a flow's state decides (a mirrored flow is not resumed, an ended one
/// takes no report, only an ended managed flow is forked) and a pipeline's own checks (its
/// actions, its `needs`) are beyond any schema. A 400 for such a request stays a failure.
fn config() -> String {
    let flows: Vec<&str> = MIRRORED.iter().copied().chain(MANAGED.map(|(id, _)| id)).collect();
    format!(
        "suppress-health-check = [\"too_slow\"]\n\
         [generation]\ndatabase = \"none\"\n\
         [dictionaries.flows]\nvalues = {}\n\
         [dictionaries.steps]\nvalues = [1, 2, \"one\", \"two\"]\n\
         [parameters]\n\
         \"path.id\" = {{ dictionary = \"flows\", probability = 0.8 }}\n\
         \"query.flow\" = {{ dictionary = \"flows\", probability = 0.5 }}\n\
         \"body.from_step\" = {{ dictionary = \"steps\", probability = 0.7 }}\n\
         [[operations]]\ninclude-operation-id = \"events\"\nrequest-timeout = 1\n\
         [checks.positive_data_acceptance]\n\
         expected-statuses = [\"2xx\", \"401\", \"404\", \"409\", \"422\"]\n",
        json!(flows)
    )
}

async fn call(request: reqwest::RequestBuilder) -> Value {
    let response = request.bearer_auth(TOKEN).send().await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    response.json().await.unwrap()
}

/// Mirrored flows queued, running and waiting; managed flows succeeded and failed (run by the
/// CLI, the host's own user: the fuzzer's token is not trusted with shell steps).
async fn seed(serve: &Serve, db: &Path, dir: &Path) {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for id in MIRRORED {
        let body = json!({"id": id, "name": "fuzzed", "sync_mode": "mirrored"});
        call(http.post(serve.url("/v1/flows")).json(&body)).await;
    }
    let report =
        |id: &str, body: Value| http.post(serve.url(&format!("/v1/flows/{id}/report"))).json(&body);
    call(report("m1", json!({"status": "running", "steps": [{"name": "a", "status": "running"}]})))
        .await;
    call(report("m2", json!({"status": "waiting", "wait": {"for": "a person"}}))).await;
    for (id, command) in MANAGED {
        let pipeline = dir.join(format!("{id}.toml"));
        std::fs::write(
            &pipeline,
            format!(
                "name = \"fuzzed\"\n\
                 [[steps]]\nid = \"one\"\naction = \"shell\"\nwith = {{ command = \"echo one\" }}\n\
                 [[steps]]\nid = \"two\"\naction = \"shell\"\nneeds = [\"one\"]\n\
                 with = {{ command = \"{command}\" }}\n"
            ),
        )
        .unwrap();
        let queued = Command::new(BIN)
            .arg("--db")
            .arg(db)
            .args(["--owner", "alice", "run", "--queue", "--id", id])
            .arg(&pipeline)
            .output()
            .unwrap();
        assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));
    }
    let started = Instant::now();
    for (id, _) in MANAGED {
        loop {
            let inspected = call(http.get(serve.url(&format!("/v1/flows/{id}")))).await;
            if inspected["flow"]["ended_at"].is_string() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "{id} never ended");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_no_answer_off_the_document_and_no_way_in_without_the_token()
 {
    let python = python::python();
    let (dir, db) = folder();
    let tokens = dir.path().join("config.toml");
    std::fs::write(
        &tokens,
        "[serve.tokens]\nfuzz = { owner = \"alice\", token_env = \"T_FUZZ\" }\n",
    )
    .unwrap();
    let serve =
        Serve::start(&db, &[], &[("TASKFLOW_CONFIG", tokens.to_str().unwrap()), ("T_FUZZ", TOKEN)]);
    seed(&serve, &db, dir.path()).await;
    let settings = dir.path().join("schemathesis.toml");
    std::fs::write(&settings, config()).unwrap();
    let started = Instant::now();
    let run = Command::new(python)
        .args(["-m", "schemathesis.cli", "--no-color", "--config-file"])
        .arg(&settings)
        .args(["run", &serve.url("/openapi.json"), "--checks", "all"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        // One worker: two share the interpreter's threads, and hypothesis' parse of its own
        // source in both at once fails under CPython 3.11 ("AST constructor recursion depth
        // mismatch"); on two cores a second worker gains nothing anyway.
        .args(["--max-examples", "25", "--seed", "20261205", "--workers", "1"])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = python::finish(run, Duration::from_secs(170));
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems (exit {:?}):\n{report}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("19 selected / 19 total"), "every operation was tested:\n{report}");
    eprintln!("{report}\nschemathesis took {:.1?}", started.elapsed());
}

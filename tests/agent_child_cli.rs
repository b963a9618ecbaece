//! A pipeline whose `agent` step is mid-turn when its `taskflow run` is killed with SIGKILL:
//! `flows cancel` records the request on the pipeline and its agent child, and `flows resume`
//! in a new process finishes the cancel of both. The model is a loopback server that takes
//! requests and never answers.

use std::io::Read;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A model server that reads each request and never answers; the count is of requests seen.
fn silent_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = format!("http://{}/v1", listener.local_addr().unwrap());
    let requests = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || {
                let mut buffer = [0u8; 4096];
                let mut counted = false;
                // Held open, unanswered, until the client goes away.
                while let Ok(read) = stream.read(&mut buffer) {
                    if read == 0 {
                        break;
                    }
                    if !counted {
                        counted = true;
                        seen.fetch_add(1, Ordering::SeqCst);
                    }
                }
            });
        }
    });
    (address, requests)
}

fn taskflow(db: &Path, config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_taskflow"));
    command
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .env_remove("TASKFLOW_OWNER")
        .env("TASKFLOW_CONFIG", config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn json(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_killed_pipeline_cancelled_mid_agent_ends_cancelled_with_its_child_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let config = Path::new("/dev/null").to_path_buf();
    let (base_url, requests) = silent_server();
    let pipeline = dir.path().join("pipeline.toml");
    std::fs::write(
        &pipeline,
        format!(
            r#"
name = "ask then publish"

[[steps]]
id = "ask"
action = "agent"
with = {{ prompt = "What changed?", provider = "vllm", model = "m", base_url = "{base_url}", tools = ["read_file"] }}

[[steps]]
id = "publish"
action = "echo"
with = {{ value = "{{{{steps.ask.output}}}}" }}
"#
        ),
    )
    .unwrap();

    let mut run = taskflow(&db, &config).arg("run").arg(&pipeline).spawn().unwrap();
    let started = Instant::now();
    while requests.load(Ordering::SeqCst) == 0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the agent never asked the model");
        assert!(run.try_wait().unwrap().is_none(), "`taskflow run` ended early");
        std::thread::sleep(Duration::from_millis(10));
    }
    run.kill().unwrap();
    run.wait().unwrap();

    let list = json(&taskflow(&db, &config).args(["--json", "flows", "list"]).output().unwrap());
    let flows = list["flows"].as_array().unwrap();
    let id_of = |name: &str| {
        let flow = flows.iter().find(|flow| flow["name"] == name).expect(name);
        assert_eq!(flow["status"], "running", "left by the killed process");
        flow["id"].as_str().unwrap().to_owned()
    };
    let (parent, child) = (id_of("ask then publish"), id_of("ask (agent)"));

    let cancel = taskflow(&db, &config).args(["flows", "cancel", &parent]).output().unwrap();
    assert!(cancel.status.success(), "{}", String::from_utf8_lossy(&cancel.stderr));
    let resume = taskflow(&db, &config).args(["flows", "resume", &parent]).output().unwrap();
    assert_eq!(resume.status.code(), Some(1), "a cancelled flow is not a success");

    let inspect = |id: &str| {
        json(&taskflow(&db, &config).args(["--json", "flows", "inspect", id]).output().unwrap())
    };
    let parent_view = inspect(&parent);
    assert_eq!(parent_view["flow"]["status"], "cancelled");
    assert_eq!(parent_view["children"][0]["id"], child.as_str());
    assert_eq!(parent_view["children"][0]["status"], "cancelled");
    let steps: Vec<(&str, &str)> = parent_view["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|step| (step["name"].as_str().unwrap(), step["status"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("ask", "cancelled"), ("ask (agent)", "cancelled")]);
    let child_view = inspect(&child);
    assert_eq!(child_view["flow"]["status"], "cancelled");
    assert_eq!(child_view["flow"]["parent_flow_id"], parent.as_str());
    assert_eq!(requests.load(Ordering::SeqCst), 1, "finishing the cancel asks no model");
}

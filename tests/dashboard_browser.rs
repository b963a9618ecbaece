//! The dashboard in a real browser: Debian's Chromium (TASKFLOW_TEST_CHROMIUM, installed by
//! `scripts/services/chromium.sh`) driven by Playwright from the Python of `scripts/test`
//! (`tests/python/dashboard_browser.py`) against a real serve: the list, a running step's node
//! turning `succeeded` without a reload, a cancel by keyboard seen `cancelled`, a child link and
//! back. Screenshots are saved under `target/dashboard-screenshots/`.

#[path = "support/python.rs"]
mod python;
#[path = "support/serve.rs"]
mod serve_process;

use std::time::Duration;

use serde_json::json;

use serve_process::{Serve, call, client, folder, status_of, wait_until};

fn chromium() -> String {
    match std::env::var("TASKFLOW_TEST_CHROMIUM") {
        Ok(path) if std::path::Path::new(&path).exists() => path,
        _ => panic!(
            "TASKFLOW_TEST_CHROMIUM does not name a browser: the dashboard's browser test drives \
             Debian's Chromium; run the tests through `scripts/test`, which installs it with \
             apt-get when it is missing and sets the variable"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_chromium_updates_live_cancels_and_follows_children() {
    let chromium = chromium();
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[("TASKFLOW_CONFIG", "/dev/null")]);
    // A parent whose `agent` step runs a child flow, answered by a recorded turn.
    let turns = dir.path().join("answer.turns.toml");
    std::fs::write(&turns, "[[turn]]\ncontent = \"All three pages say the same.\"\n").unwrap();
    let spec = json!({"steps": [
        {"id": "ask", "action": "agent",
         "with": {"prompt": "Compare the pages", "provider": "replay", "script": turns}},
        {"id": "publish", "action": "echo", "needs": ["ask"], "with": {"value": "{{steps.ask.output}}"}},
    ]});
    let body = json!({"id": "brief", "name": "research brief", "spec": spec});
    let (status, created) = call(client().post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    wait_until("the parent to succeed", async || status_of(&serve, "brief").await == "succeeded")
        .await;

    let shots = python::repository("target/dashboard-screenshots");
    let shots = shots.to_str().unwrap();
    let mut env = Vec::new();
    let readme = std::env::var("TASKFLOW_UPDATE_SCREENSHOT").ok();
    if let Some(path) = &readme {
        env.push(("TASKFLOW_UPDATE_SCREENSHOT", path.as_str()));
    }
    let script = python::spawn(
        "tests/python/dashboard_browser.py",
        &[&serve.url, &chromium, shots, "brief"],
        &env,
    );
    let output = python::finish(script, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the browser scenario failed:\n{stdout}\n{stderr}");
    assert!(stdout.trim_end().ends_with("ok"), "{stdout}");
    for name in ["list", "flow", "cancelled", "child"] {
        let path = format!("{shots}/{name}.png");
        let bytes = std::fs::read(&path).unwrap_or_else(|_| panic!("no screenshot {path}"));
        assert!(bytes.starts_with(b"\x89PNG"), "{path} is not a PNG");
    }
    assert_eq!(status_of(&serve, "sleepy").await, "cancelled");
}

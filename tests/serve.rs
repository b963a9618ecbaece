//! `taskflow serve` as a real process on a loopback port: the API's contract (managed and
//! mirrored flows, idempotent submits, conflicts, refusals, bad input), tokens and owners, the
//! event stream resumed with `Last-Event-ID`, recovery of every flow after a kill -9, queued
//! flows from `run --queue`, and a shutdown that gives the flows back.

#[path = "support/serve.rs"]
mod serve_process;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use serve_process::{BIN, Serve, call, client, folder, status_of, wait_until};

fn pipeline(steps: &[(&str, &str)]) -> Value {
    let steps: Vec<Value> = steps
        .iter()
        .enumerate()
        .map(|(at, (id, command))| {
            let mut step = json!({"id": id, "action": "shell", "with": {"command": command}});
            if at > 0 {
                step["needs"] = json!([steps[at - 1].0]);
            }
            step
        })
        .collect();
    json!({ "steps": steps })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_flows_are_submitted_once_run_and_refused_with_clear_errors() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let (status, health) = call(http.get(serve.url("/healthz"))).await;
    assert_eq!((status, health["ok"].clone()), (200, json!(true)));

    let body = json!({"id": "digest-2026-12-05", "name": "digest", "goal": "the day's digest",
                      "spec": {"steps": [{"id": "a", "action": "echo", "with": {"value": "x"}},
                                         {"id": "b", "action": "echo", "needs": ["a"],
                                          "with": {"value": "{{steps.a.output}}!"}}]}});
    let (status, created) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["flow"]["id"], "digest-2026-12-05");
    assert_eq!(created["flow"]["goal"], "the day's digest");
    wait_until("the flow to succeed", async || {
        status_of(&serve, "digest-2026-12-05").await == "succeeded"
    })
    .await;
    let (_, inspected) = call(http.get(serve.url("/v1/flows/digest-2026-12-05"))).await;
    assert_eq!(inspected["flow"]["state"], json!({"b": "x!"}));
    assert_eq!(inspected["steps"].as_array().unwrap().len(), 2);
    // The same body again finds the flow; another body under the id is a conflict.
    let (status, again) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!((status, again["flow"]["status"].clone()), (200, json!("succeeded")));
    let mut other = body.clone();
    other["spec"]["steps"][0]["with"]["value"] = json!("y");
    let (status, conflict) = call(http.post(serve.url("/v1/flows")).json(&other)).await;
    assert_eq!((status, conflict["error"]["code"].clone()), (409, json!("conflict")));
    assert!(conflict["error"]["message"].as_str().unwrap().contains("steps[0].with.value"));
    for goal in [json!("another digest"), Value::Null] {
        let mut other = body.clone();
        other["goal"] = goal;
        let (status, conflict) = call(http.post(serve.url("/v1/flows")).json(&other)).await;
        assert_eq!((status, conflict["error"]["code"].clone()), (409, json!("conflict")));
        assert!(conflict["error"]["message"].as_str().unwrap().contains("`goal`"), "{conflict}");
    }
    // A mirrored flow asked for under the id: the kind of flow is the difference named.
    let mirrored = json!({"id": "digest-2026-12-05", "name": "digest", "sync_mode": "mirrored"});
    let (status, conflict) = call(http.post(serve.url("/v1/flows")).json(&mirrored)).await;
    assert_eq!(status, 409, "{conflict}");
    let message = conflict["error"]["message"].as_str().unwrap();
    assert!(message.contains(r#"`sync_mode` is "managed" there and "mirrored" here"#), "{message}");
    let (status, history) = call(http.get(serve.url("/v1/flows/digest-2026-12-05/history"))).await;
    assert_eq!(status, 200);
    assert_eq!(history["revisions"][0]["revision"], 1);

    // Bad input: clear errors, nothing created.
    let cases = [
        (
            json!({"name": "x", "spec": {"steps": [{"id": "a", "action": "teleport"}]}}),
            422,
            "teleport",
        ),
        (
            json!({"name": "x", "spec": {"steps": [{"id": "a", "action": "echo", "retry": 3}]}}),
            400,
            "spec.steps[0].retry",
        ),
        (json!({"name": "x", "spec": {"steps": []}, "colour": "red"}), 400, "colour"),
        (json!({"name": "x"}), 400, "needs `spec`"),
        (json!({"id": "bad id", "name": "x", "spec": {"steps": []}}), 400, "not a flow id"),
        (json!({"name": "x", "sync_mode": "mirrored", "spec": {}}), 400, "managed flows"),
        (json!({"name": "x", "spec": {"name": "y", "steps": []}}), 422, "differs from `name`"),
        (json!({"name": "x", "spec": {}}), 400, "spec: missing field `steps`"),
        (
            json!({"name": "x", "spec": {"steps": [{"id": "a", "action": "echo", "timeout": -5}]}}),
            400,
            "spec.steps[0].timeout: a duration cannot be negative (-5)",
        ),
    ];
    for (body, expected, fragment) in cases {
        let (status, error) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
        assert_eq!(status, expected, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(fragment), "{body}: {message}");
    }
    // A refused spec names the step and the field, in the message and as keys.
    let steps = json!([{"id": "a", "action": "echo", "with": {"value": "1"}},
                       {"id": "b", "action": "echo"}]);
    let (status, error) = call(
        http.post(serve.url("/v1/flows")).json(&json!({"name": "x", "spec": {"steps": steps}})),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(error["error"]["message"], "spec.steps[1].with (step `b`): `with.value` is missing");
    assert_eq!(
        (&error["error"]["step"], &error["error"]["field"]),
        (&json!("b"), &json!("spec.steps[1].with"))
    );
    // So does one whose model step names a provider there is not, before anything runs.
    let steps =
        json!([{"id": "ask", "action": "llm", "with": {"provider": "kimmi", "prompt": "hi"}}]);
    let (status, error) = call(
        http.post(serve.url("/v1/flows")).json(&json!({"name": "x", "spec": {"steps": steps}})),
    )
    .await;
    assert_eq!(status, 422, "{error}");
    assert_eq!(
        (&error["error"]["step"], &error["error"]["field"]),
        (&json!("ask"), &json!("spec.steps[0].with"))
    );
    assert!(error["error"]["message"].as_str().unwrap().contains("unknown provider `kimmi`"));
    let not_an_object =
        json!({"name": "x", "spec": {"steps": [{"id": "a", "action": "echo", "with": "1"}]}});
    let (status, error) = call(http.post(serve.url("/v1/flows")).json(&not_an_object)).await;
    assert_eq!(status, 400, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().starts_with("spec.steps[0].with:"));
    let (status, _) = call(
        http.post(serve.url("/v1/flows"))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(status, 400);
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(9 * 1024 * 1024));
    let (status, error) = call(
        client().post(serve.url("/v1/flows")).header("content-type", "application/json").body(huge),
    )
    .await;
    assert_eq!((status, error["error"]["code"].clone()), (413, json!("too_large")));
    let limit = "the body is larger than serve's limit of 8 MiB";
    assert_eq!(error["error"]["message"], limit);
    // The errors the HTTP layers answer have the same shape.
    let huge = format!("\"{}\"", "x".repeat(9 * 1024 * 1024));
    let (status, error) = call(
        client()
            .post(serve.url("/v1/flows/a/signals/go"))
            .header("content-type", "application/json")
            .body(huge),
    )
    .await;
    assert_eq!((status, error["error"]["code"].clone()), (413, json!("too_large")), "{error}");
    assert_eq!(error["error"]["message"], limit);
    // A JSON body sent as something else (curl's `-d` sends a form's type) is told what to send.
    let (status, error) = call(
        http.post(serve.url("/v1/flows"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(r#"{"name": "x", "sync_mode": "mirrored"}"#),
    )
    .await;
    assert_eq!((status, error["error"]["code"].clone()), (400, json!("bad_request")), "{error}");
    let said = "the body is JSON: send it with `Content-Type: application/json`";
    assert_eq!(error["error"]["message"], said);
    // A method the route does not serve is 405, whatever the query.
    let (status, error) = call(http.delete(serve.url("/v1/flows/digest-2026-12-05?x=1"))).await;
    assert_eq!((status, error["error"]["code"].clone()), (405, json!("method_not_allowed")));
    assert!(error["error"]["message"].as_str().unwrap().contains("method"), "{error}");
    // A route refuses a query parameter or a body field it does not take, naming it, rather
    // than ignoring it (no route takes a query parameter its OpenAPI operation does not list).
    let flow = "/v1/flows/digest-2026-12-05";
    let mirrored = json!({"name": "x", "sync_mode": "mirrored"});
    for (request, named) in [
        (http.post(serve.url("/v1/flows?dry_run=1")).json(&mirrored), "dry_run"),
        (
            http.post(serve.url(&format!("{flow}/fork?from_step=1")))
                .json(&json!({"from_step": 1})),
            "from_step",
        ),
        (http.post(serve.url(&format!("{flow}/signals/go?x=1"))), "x"),
        (http.get(serve.url("/healthz?verbose=1")), "verbose"),
        (http.get(serve.url(&format!("{flow}?verbose=1"))), "verbose"),
        (http.get(serve.url(&format!("{flow}/history?since=3"))), "since"),
        (http.get(serve.url("/v1/schedules?limit=2")), "limit"),
        (
            http.post(serve.url(&format!("{flow}/cancel"))).json(&json!({"expected_revision": 3})),
            "expected_revision",
        ),
        (
            http.post(serve.url(&format!("{flow}/resume"))).json(&json!({"from_step": 2})),
            "from_step",
        ),
    ] {
        let (status, error) = call(request).await;
        assert_eq!(status, 400, "{error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{named}`")), "{message}");
    }
    let (status, _) = call(http.get(serve.url(&format!("{flow}/history")))).await;
    assert_eq!(status, 200, "no parameters at all");
    // Input of megabytes is refused in a line: an error quotes only the start of it.
    let long = "x".repeat(2 * 1024 * 1024);
    for (body, expected) in [
        (json!({"name": long, "sync_mode": "mirrored"}), 422),
        (json!({"name": "x", "sync_mode": "mirrored", "controller": long}), 422),
        (json!({"id": long, "name": "x", "sync_mode": "mirrored"}), 400),
        (json!({"name": "x", "sync_mode": long}), 400),
        (json!({long.clone(): 1, "name": "x", "sync_mode": "mirrored"}), 400),
    ] {
        let (status, error) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
        let message = error["error"]["message"].as_str().unwrap();
        assert_eq!(status, expected, "{message}");
        assert!(message.len() < 1200, "{} bytes: {}", message.len(), &message[..200]);
    }
    let (status, missing) = call(http.get(serve.url("/v1/flows/nobody"))).await;
    assert_eq!((status, missing["error"]["code"].clone()), (404, json!("not_found")));
    // A path segment that is not UTF-8 is bad input, answered in the same shape as the rest.
    for request in [
        http.get(serve.url("/v1/flows/%FF")),
        http.get(serve.url("/v1/flows/%FF/history")),
        http.post(serve.url("/v1/flows/%FF/cancel")),
        http.post(serve.url("/v1/flows/a/signals/%FF")).json(&json!(1)),
        http.get(serve.url("/v1/schedules/%FF")),
    ] {
        let (status, error) = call(request).await;
        assert_eq!(
            (status, error["error"]["code"].clone()),
            (400, json!("bad_request")),
            "{error}"
        );
        assert!(error["error"]["message"].as_str().unwrap().contains("UTF-8"), "{error}");
    }
    // An array is no object, though serde would read it as a struct's fields in order.
    let array = json!(["by-position", "x", "mirrored", null, null, null, null]);
    let (status, error) = call(http.post(serve.url("/v1/flows")).json(&array)).await;
    assert_eq!(
        (status, error["error"]["message"].clone()),
        (400, json!("the body must be a JSON object"))
    );
    let (status, error) =
        call(http.post(serve.url("/v1/flows/nobody/fork")).json(&json!([1]))).await;
    assert_eq!(status, 400, "{error}");
    let (_, list) = call(http.get(serve.url("/v1/flows?limit=10"))).await;
    assert_eq!(list["flows"].as_array().unwrap().len(), 1, "no bad submission created a flow");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_flows_owner_reports_with_expected_revisions() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let create =
        json!({"id": "deploy-7", "name": "deploy", "sync_mode": "mirrored", "goal": "ship"});
    let (status, created) = call(http.post(serve.url("/v1/flows")).json(&create)).await;
    assert_eq!((status, created["flow"]["revision"].clone()), (201, json!(1)));
    let report = |body: Value| http.post(serve.url("/v1/flows/deploy-7/report")).json(&body);
    let (status, running) = call(report(json!({"expected_revision": 1, "status": "running",
        "steps": [{"name": "build", "status": "running"}], "state": {"percent": 10}})))
    .await;
    assert_eq!(status, 200, "{running}");
    assert_eq!(
        (running["flow"]["revision"].clone(), running["flow"]["current_step"].clone()),
        (json!(2), json!("build"))
    );
    let (status, stale) = call(report(json!({"expected_revision": 1, "status": "waiting"}))).await;
    assert_eq!((status, stale["error"]["current_revision"].clone()), (409, json!(2)));
    // A whole number is one however it is written.
    let (status, stale) = call(report(json!({"expected_revision": 1.0}))).await;
    assert_eq!((status, stale["error"]["current_revision"].clone()), (409, json!(2)));
    // In the query, where no route reads it, the revision is refused rather than ignored: the
    // report is not applied at whatever revision the flow is.
    let in_the_query = http.post(serve.url("/v1/flows/deploy-7/report?expected_revision=1"));
    let (status, refused) = call(in_the_query.json(&json!({"status": "waiting"}))).await;
    assert_eq!(status, 400, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("unknown query parameter `expected_revision`"), "{message}");
    let (status, refused) = call(report(json!({"status": "queued"}))).await;
    assert_eq!(status, 422);
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("running") && message.contains("queued"), "{message}");
    let (status, cleared) = call(report(json!({"expected_revision": 2, "state": null,
        "steps": [{"name": "build", "status": "succeeded", "output": {"image": "v7"}}], "status": "succeeded"}))).await;
    assert_eq!(status, 200, "{cleared}");
    assert_eq!(
        (cleared["flow"]["state"].clone(), cleared["flow"]["status"].clone()),
        (Value::Null, json!("succeeded"))
    );
    // The answer to a report gives the flow's row, its journal not counted; reading the flow
    // counts it.
    let counts = |flow: &Value| (flow["steps_done"].clone(), flow["steps_total"].clone());
    assert_eq!(counts(&cleared["flow"]), (Value::Null, Value::Null));
    let (_, inspected) = call(http.get(serve.url("/v1/flows/deploy-7"))).await;
    assert_eq!(inspected["steps"][0]["output"], json!({"image": "v7"}));
    assert_eq!(counts(&inspected["flow"]), (json!(1), json!(1)));
    let (status, ended) = call(report(json!({"status": "running"}))).await;
    assert_eq!(
        (status, &ended["error"]["from"], &ended["error"]["to"]),
        (422, &json!("succeeded"), &json!("running")),
        "{ended}"
    );
    let (status, _) = call(http.post(serve.url("/v1/flows/deploy-7/resume"))).await;
    assert_eq!(status, 422, "a mirrored flow is never run");
    let (status, bad) = call(report(json!({"steps": [{"name": "x", "status": "sleeping"}]}))).await;
    assert_eq!(status, 400);
    let message = bad["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("steps[0].status: unknown step status `sleeping`"), "{message}");
    assert!(message.contains("(one of: running, succeeded, failed, cancelled)"), "{message}");
    let (status, bad) = call(report(json!({"status": "asleep"}))).await;
    assert_eq!(status, 400);
    assert!(bad["error"]["message"].as_str().unwrap().starts_with("status: unknown flow status"));

    // The creation again, after the reports, finds the flow; any other creation under its id
    // is a conflict naming what differs.
    let (status, again) = call(http.post(serve.url("/v1/flows")).json(&create)).await;
    assert_eq!((status, again["flow"]["status"].clone()), (200, json!("succeeded")));
    for (field, value) in [("goal", json!("sail")), ("state", json!({"percent": 0}))] {
        let mut other = create.clone();
        other[field] = value;
        let (status, conflict) = call(http.post(serve.url("/v1/flows")).json(&other)).await;
        assert_eq!(status, 409, "{conflict}");
        let message = conflict["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }
    // A flow created with a state is found by its creation whatever state it reported since.
    let create = json!({"id": "deploy-8", "name": "deploy", "sync_mode": "mirrored",
                        "state": {"percent": 0}});
    assert_eq!(call(http.post(serve.url("/v1/flows")).json(&create)).await.0, 201);
    let (status, _) = call(
        http.post(serve.url("/v1/flows/deploy-8/report")).json(&json!({"state": {"percent": 50}})),
    )
    .await;
    assert_eq!(status, 200);
    let (status, again) = call(http.post(serve.url("/v1/flows")).json(&create)).await;
    assert_eq!((status, again["flow"]["state"].clone()), (200, json!({"percent": 50})));
    // And by the goal it was created with (or without), whatever goal it reported since.
    for (id, goal) in [("deploy-9", json!("ship it")), ("deploy-10", Value::Null)] {
        let create = json!({"id": id, "name": "deploy", "sync_mode": "mirrored", "goal": goal});
        assert_eq!(call(http.post(serve.url("/v1/flows")).json(&create)).await.0, 201);
        let report = json!({"goal": "ship it v2"});
        let url = serve.url(&format!("/v1/flows/{id}/report"));
        assert_eq!(call(http.post(url).json(&report)).await.0, 200);
        let (status, again) = call(http.post(serve.url("/v1/flows")).json(&create)).await;
        assert_eq!((status, again["flow"]["goal"].clone()), (200, json!("ship it v2")), "{again}");
        let mut other = create.clone();
        other["goal"] = json!("ship it v2");
        assert_eq!(call(http.post(serve.url("/v1/flows")).json(&other)).await.0, 409);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_the_owner_and_owners_do_not_see_each_other() {
    let (dir, db) = folder();
    let (alice_token, bob_token) = ("alice-token-0123456789", "bob-token-0123456789xx");
    let tokens = [("alice", alice_token, false), ("bob", bob_token, false)];
    let serve = Serve::with_tokens(&db, dir.path(), &tokens);
    let http = client();
    let (status, _) = call(http.get(serve.url("/v1/flows"))).await;
    assert_eq!(status, 401);
    let (status, _) =
        call(http.get(serve.url("/v1/flows")).bearer_auth("wrong-token-0123456789")).await;
    assert_eq!(status, 401);
    let mirrored = json!({"name": "secret", "sync_mode": "mirrored"});
    let (status, created) =
        call(http.post(serve.url("/v1/flows")).bearer_auth(alice_token).json(&mirrored)).await;
    assert_eq!((status, created["flow"]["owner"].clone()), (201, json!("alice")));
    let id = created["flow"]["id"].as_str().unwrap();
    for request in [
        http.get(serve.url(&format!("/v1/flows/{id}"))),
        http.get(serve.url(&format!("/v1/flows/{id}/history"))),
        http.post(serve.url(&format!("/v1/flows/{id}/report"))).json(&json!({"status": "running"})),
        http.post(serve.url(&format!("/v1/flows/{id}/cancel"))),
        // Its events too: as for a flow that is not there, not an empty stream.
        http.get(serve.url(&format!("/v1/events?flow={id}"))),
        http.get(serve.url("/v1/events?flow=nowhere")),
    ] {
        let (status, error) = call(request.bearer_auth(bob_token)).await;
        assert_eq!((status, error["error"]["code"].clone()), (404, json!("not_found")));
    }
    let (_, bobs) = call(http.get(serve.url("/v1/flows")).bearer_auth(bob_token)).await;
    assert_eq!(bobs["flows"].as_array().unwrap().len(), 0);
    let (_, flow) =
        call(http.get(serve.url(&format!("/v1/flows/{id}"))).bearer_auth(alice_token)).await;
    assert_eq!(
        (flow["flow"]["status"].clone(), flow["flow"]["revision"].clone()),
        (json!("queued"), json!(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_pipelines_stay_off_the_host_unless_the_token_says_host() {
    let (dir, db) = folder();
    let (alice_token, ops_token) = ("alice-token-0123456789", "ops-token-0123456789xxx");
    let tokens = [("alice", alice_token, false), ("ops", ops_token, true)];
    let serve = Serve::with_tokens(&db, dir.path(), &tokens);
    let http = client();
    let submit = |token: &'static str, steps: Value| {
        let body = json!({"name": "p", "sync_mode": "managed", "spec": {"steps": steps}});
        http.post(serve.url("/v1/flows")).bearer_auth(token).json(&body)
    };
    let echo = json!({"id": "greet", "action": "echo", "with": {"value": "hi"}});
    let reaching = [
        (json!({"id": "run", "action": "shell", "with": {"command": "env"}}), "`shell`"),
        (
            json!({"id": "run", "action": "fetch_urls", "with": {"urls": ["file:/etc/hostname"]}}),
            "`fetch_urls`",
        ),
        (
            json!({"id": "run", "action": "write_file", "with": {"path": "x", "content": "y"}}),
            "`write_file`",
        ),
        (
            json!({"id": "run", "action": "tool", "with": {"name": "read_file", "args": {"path": "/etc/hostname"}}}),
            "`tool`",
        ),
        (
            json!({"id": "run", "action": "llm", "with": {"prompt": "hi", "api_key_env": "T_OPS"}}),
            "`with.api_key_env`",
        ),
        (
            json!({"id": "run", "action": "llm", "with": {"prompt": "hi", "base_url": "http://127.0.0.1:9/v1"}}),
            "`with.base_url`",
        ),
    ];
    for (step, named) in reaching {
        let (status, error) = call(submit(alice_token, json!([echo, step]))).await;
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 422, "{error}");
        assert_eq!(
            (error["error"]["step"].clone(), error["error"]["field"].clone()),
            (json!("run"), json!("spec.steps[1]"))
        );
        assert!(message.contains(named) && message.contains("host = true"), "{message}");
    }
    let (_, flows) = call(http.get(serve.url("/v1/flows")).bearer_auth(alice_token)).await;
    assert_eq!(flows["flows"].as_array().unwrap().len(), 0, "a refused pipeline makes no flow");
    let (status, created) = call(submit(alice_token, json!([echo]))).await;
    assert_eq!((status, created["flow"]["owner"].clone()), (201, json!("alice")));
    // Waiting reaches nothing of the host: a timer, a signal its owner sends.
    let waits = json!([
        {"id": "nap", "action": "sleep", "with": {"for": "1s"}},
        {"id": "go", "action": "wait_signal", "with": {"name": "go"}},
    ]);
    let (status, created) = call(submit(alice_token, waits)).await;
    assert_eq!(status, 201, "{created}");
    let shell = json!({"id": "run", "action": "shell", "with": {"command": "true"}});
    let (status, created) = call(submit(ops_token, json!([shell]))).await;
    assert_eq!((status, created["flow"]["owner"].clone()), (201, json!("ops")));
}

#[test]
fn a_listen_address_beyond_this_host_without_tokens_is_refused() {
    let (_dir, db) = folder();
    let output = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env("TASKFLOW_CONFIG", "/dev/null")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: 0.0.0.0:0 is not a loopback address"), "{stderr}");
    assert!(stderr.contains("hint:") && stderr.contains("[serve.tokens]"), "{stderr}");
}

/// The events of a stream, as (id, data with the `event:` line as its `kind`) pairs, until
/// `count` have come.
async fn read_events(response: reqwest::Response, count: usize) -> Vec<(u64, Value)> {
    use futures_util::StreamExt;
    let mut events = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < count {
        let chunk = tokio::time::timeout_at(deadline, body.next()).await.expect("events in time");
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            events.extend(changes_of(&block));
        }
    }
    events
}

/// The changes of one server-sent event, as (id, data with its kind) pairs: the steps a flow's
/// event carries (each with its own id, its flow and time the flow event's), then the event.
fn changes_of(block: &str) -> Vec<(u64, Value)> {
    let field = |name: &str| block.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let (Some(id), Some(kind), Some(data)) = (field("id:"), field("event:"), field("data:")) else {
        return Vec::new();
    };
    let mut event: Value = serde_json::from_str(data).unwrap();
    for repeated in ["id", "kind", "owner"] {
        assert_eq!(event.get(repeated), None, "the frame or the caller says it");
    }
    let mut changes = Vec::new();
    if let Some(Value::Array(steps)) = event.as_object_mut().unwrap().remove("steps") {
        assert_eq!(kind, "flow", "only a flow's event carries steps");
        for mut step in steps {
            let step_id = step["id"].as_u64().expect("each step its own id");
            step.as_object_mut().unwrap().remove("id");
            step["kind"] = "step".into();
            step["flow_id"] = event["flow_id"].clone();
            step["at"] = event["at"].clone();
            changes.push((step_id, step));
        }
    }
    event["kind"] = kind.into();
    changes.push((id.parse().unwrap(), event));
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let (_, created) = call(
        http.post(serve.url("/v1/flows"))
            .json(&json!({"id": "m", "name": "m", "sync_mode": "mirrored"})),
    )
    .await;
    assert_eq!(created["flow"]["id"], "m");
    let stream = http.get(serve.url("/v1/events?after=0")).send().await.unwrap();
    let first = read_events(stream, 1).await;
    assert_eq!(first[0].1["kind"], "flow");
    // While nobody watches, the flow changes five times; a watcher resuming from the event it
    // saw gets all five, in order, once.
    for at in 0..5 {
        let body = json!({"steps": [{"name": format!("s{at}"), "status": "succeeded"}]});
        let (status, _) = call(http.post(serve.url("/v1/flows/m/report")).json(&body)).await;
        assert_eq!(status, 200);
    }
    let resumed = http
        .get(serve.url("/v1/events"))
        .header("Last-Event-ID", first[0].0.to_string())
        .send()
        .await
        .unwrap();
    // Each report is two changes: its step's, ended, and the flow's (one server-sent event).
    let events = read_events(resumed, 10).await;
    let ids: Vec<u64> = events.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "{ids:?}");
    assert!(ids[0] > first[0].0, "nothing twice");
    let names: Vec<String> = events
        .iter()
        .filter(|(_, event)| event["kind"] == "step" && event["status"] == "succeeded")
        .map(|(_, event)| event["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["s0", "s1", "s2", "s3", "s4"]);
    // A step that came inside its flow's event has an id of its own to resume after.
    assert_eq!((&events[0].1["kind"], &events[1].1["kind"]), (&json!("step"), &json!("flow")));
    let after_step =
        http.get(serve.url("/v1/events")).header("Last-Event-ID", ids[0].to_string()).send();
    let rest = read_events(after_step.await.unwrap(), 9).await;
    assert_eq!(rest.iter().map(|(id, _)| *id).collect::<Vec<_>>(), ids[1..]);
    // And events keep coming live.
    let live = http.get(serve.url("/v1/events?flow=m")).send().await.unwrap();
    let (status, _) =
        call(http.post(serve.url("/v1/flows/m/report")).json(&json!({"status": "running"}))).await;
    assert_eq!(status, 200);
    let next = read_events(live, 1).await;
    assert_eq!(
        (next[0].1["kind"].clone(), next[0].1["status"].clone()),
        (json!("flow"), json!("running"))
    );
    // An id past the newest event (a client of a database begun again) is no reason to skip
    // the events still to come.
    let ahead =
        http.get(serve.url("/v1/events")).header("Last-Event-ID", "1000000").send().await.unwrap();
    let (status, _) =
        call(http.post(serve.url("/v1/flows/m/report")).json(&json!({"status": "waiting"}))).await;
    assert_eq!(status, 200);
    let next = read_events(ahead, 1).await;
    assert_eq!(next[0].1["status"], json!("waiting"), "{next:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_from_now_is_refused_while_the_feed_cannot_be_read_not_sent_every_event() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let body = json!({"id": "old", "name": "old", "sync_mode": "mirrored"});
    assert_eq!(call(http.post(serve.url("/v1/flows")).json(&body)).await.0, 201);
    // The feed cannot be read for a moment (its table is away).
    let sqlite = rusqlite::Connection::open(&db).unwrap();
    sqlite.execute_batch("ALTER TABLE events RENAME TO events_away").unwrap();
    let (status, error) = call(http.get(serve.url("/v1/events"))).await;
    assert!(status >= 500, "{status} {error}");
    assert!(error["error"]["message"].is_string(), "{error}");
    // Back, a watcher from now gets what happens from now on, not the flow made before.
    sqlite.execute_batch("ALTER TABLE events_away RENAME TO events").unwrap();
    let stream = http.get(serve.url("/v1/events")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let body = json!({"id": "new", "name": "new", "sync_mode": "mirrored"});
    assert_eq!(call(http.post(serve.url("/v1/flows")).json(&body)).await.0, 201);
    let first = read_events(stream, 1).await;
    assert_eq!(first[0].1["flow_id"], "new", "{first:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flow_another_process_queues_is_run_at_once_not_at_the_next_sweep() {
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    // Past the sweep serve makes as it starts; the next one is seconds away.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pipeline = dir.path().join("queued.toml");
    std::fs::write(
        &pipeline,
        "name = \"queued\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = 1 }\n",
    )
    .unwrap();
    let queued = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "run", "--queue", "--id", "soon"])
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));
    let http = client();
    let started = Instant::now();
    loop {
        let (_, flow) = call(http.get(serve.url("/v1/flows/soon"))).await;
        if flow["flow"]["status"] == "succeeded" {
            break;
        }
        assert!(started.elapsed() < Duration::from_millis(2500), "not run yet: {flow}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_serve_killed_mid_pipeline_finishes_every_flow_after_a_restart_and_runs_no_step_twice() {
    let (dir, db) = folder();
    let log = dir.path().join("runs.log");
    let marker = |name: &str| {
        format!("echo \"$TASKFLOW_IDEMPOTENCY_KEY\" >> {}; sleep 0.3; echo {name}", log.display())
    };
    let spec =
        pipeline(&[("one", &marker("one")), ("two", &marker("two")), ("three", &marker("three"))]);
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let mut ids = Vec::new();
    for n in 0..4 {
        let body = json!({"id": format!("p{n}"), "name": "p", "spec": spec});
        let (status, _) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
        assert_eq!(status, 201);
        ids.push(format!("p{n}"));
    }
    // A queued flow from the CLI, which no serve runs yet.
    let file = dir.path().join("queued.toml");
    std::fs::write(&file, format!("name = \"q\"\n[[steps]]\nid = \"only\"\naction = \"shell\"\nwith = {{ command = {:?} }}\n", marker("only"))).unwrap();
    let queued = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "run", "--queue", "--id", "q0"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&queued.stdout), "flow q0 queued\n");
    ids.push("q0".to_owned());
    wait_until("a first step to end", async || {
        std::fs::read_to_string(&log).unwrap_or_default().lines().count() >= 3
    })
    .await;
    serve.kill();

    let serve = Serve::start(&db, &[], &[]);
    for id in &ids {
        wait_until(id, async || status_of(&serve, id).await == "succeeded").await;
    }
    let keys: Vec<String> =
        std::fs::read_to_string(&log).unwrap().lines().map(str::to_owned).collect();
    let (_, list) = call(client().get(serve.url("/v1/flows?limit=100"))).await;
    let mut repeated = 0;
    for flow in list["flows"].as_array().unwrap() {
        let id = flow["id"].as_str().unwrap();
        let (_, inspected) = call(client().get(serve.url(&format!("/v1/flows/{id}")))).await;
        for step in inspected["steps"].as_array().unwrap() {
            let key = step["idempotency_key"].as_str().unwrap();
            let runs = keys.iter().filter(|seen| *seen == key).count();
            if step["attempt"] == 1 {
                assert_eq!(runs, 1, "{id} step {}: a completed step ran once", step["name"]);
            } else {
                repeated += runs - 1;
            }
        }
    }
    assert!(repeated <= 5, "only the steps in flight at the kill ran again: {repeated}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_running_steps_reach_their_checkpoint_ends_event_streams_and_gives_the_flow_back()
 {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &["--grace-ms", "5000"], &[]);
    let http = client();
    let spec = pipeline(&[("slow", "sleep 0.6; echo slow"), ("after", "echo after")]);
    let (status, _) = call(
        http.post(serve.url("/v1/flows")).json(&json!({"id": "g", "name": "g", "spec": spec})),
    )
    .await;
    assert_eq!(status, 201);
    wait_until("the step to start", async || {
        let (_, flow) = call(client().get(serve.url("/v1/flows/g"))).await;
        flow["steps"].as_array().is_some_and(|steps| !steps.is_empty())
    })
    .await;
    // A watcher's stream never ends by itself: serve ends it when it stops.
    let watching = http.get(serve.url("/v1/events?after=0")).send().await.unwrap();
    assert_eq!(watching.status(), 200);
    let mut serve = serve;
    let pid = serve.child.id();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "serve did not stop within 20 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
    let stream = tokio::time::timeout(Duration::from_secs(5), watching.text()).await;
    let stream = stream.expect("the stream ended").expect("the stream ended in good order");
    let changes: Vec<(u64, Value)> = stream.split_inclusive("\n\n").flat_map(changes_of).collect();
    assert!(
        changes.iter().any(|(_, change)| change["kind"] == "step"),
        "the watcher saw the step begin: {stream}"
    );
    let inspect = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "--json", "flows", "inspect", "g"])
        .output()
        .unwrap();
    let document: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(
        document["steps"][0]["status"], "succeeded",
        "the running step reached its checkpoint"
    );
    assert_eq!(document["steps"].as_array().unwrap().len(), 1, "nothing new started");
    assert_eq!(document["flow"]["lease"], Value::Null, "the flow was given back");
    let serve = Serve::start(&db, &[], &[]);
    wait_until("the next serve to finish it", async || status_of(&serve, "g").await == "succeeded")
        .await;
}

/// A client that sent half a request does not hold serve past its grace (its head timeout is
/// 30 s), and from SIGTERM on serve takes no flow: one queued meanwhile stays queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_by_a_half_sent_request_and_takes_no_new_flow() {
    let (_dir, db) = folder();
    let mut serve = Serve::start(&db, &["--grace-ms", "1000"], &[]);
    let address = serve.url.strip_prefix("http://").unwrap().to_owned();
    let mut half = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut half, b"GET /v1/fl").await.unwrap();
    let pid = serve.child.id();
    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap().success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "run", "fixtures/pipelines/greeting.toml", "--queue"])
        .args(["--id", "late"])
        .current_dir(env!("CARGO_MANIFEST_DIR").to_owned() + "/..")
        .output()
        .unwrap();
    assert!(queued.status.success(), "{}", String::from_utf8_lossy(&queued.stderr));
    let status = loop {
        if let Some(status) = serve.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "serve still runs 15 s on");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    let inspect = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "--json", "flows", "inspect", "late"])
        .output()
        .unwrap();
    let document: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(document["flow"]["status"], "queued", "taken after SIGTERM: {document}");
}

/// SIGTERM as soon as serve says it listens stops it gracefully (exit 0): its handlers are in
/// place before it says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_as_soon_as_serve_listens_stops_it_gracefully() {
    let (_dir, db) = folder();
    for _ in 0..5 {
        let mut serve = Serve::start(&db, &[], &[]);
        let pid = serve.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = serve.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
    }
}

/// Lines a child prints, read on a thread, until `done` accepts one or 20 s pass.
fn lines_until(child: &mut Child, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let stdout = child.stdout.take().unwrap();
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if send.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    while let Ok(line) = receive.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let value: Value = serde_json::from_str(&line).expect("a JSON line");
        let stop = done(&value);
        seen.push(value);
        if stop {
            return seen;
        }
    }
    panic!("the watcher did not print the change in time: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_watch_prints_each_change_as_a_json_line_from_the_database_or_from_a_serve_across_its_restart()
 {
    let (dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let watch = |args: &[&str]| {
        Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["--owner", "alice", "flows", "watch"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // A flow that is not there is said so, not watched in silence for ever.
    for args in [&["nope"][..], &["--server", &serve.url, "nope"]] {
        let output = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["--owner", "alice", "flows", "watch"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: no flow `nope`"), "{stderr}");
    }
    let mut from_database = watch(&["--after", "0"]);
    let mut from_serve = watch(&["--after", "0", "--server", &serve.url]);
    // An id past the newest event starts from the newest, from the database as from serve.
    let mut from_beyond = watch(&["--after", "999999999"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let http = client();
    let body = json!({"id": "w", "name": "w", "sync_mode": "mirrored"});
    assert_eq!(call(http.post(serve.url("/v1/flows")).json(&body)).await.0, 201);
    let report = json!({"steps": [{"name": "fetch", "status": "succeeded"}]});
    assert_eq!(call(http.post(serve.url("/v1/flows/w/report")).json(&report)).await.0, 200);
    let step =
        |name: &'static str| move |event: &Value| event["kind"] == "step" && event["name"] == name;
    let mut from_database_seen = Vec::new();
    for watcher in [&mut from_database, &mut from_beyond] {
        let seen = lines_until(watcher, step("fetch"));
        assert_eq!(seen[0]["kind"], "flow", "{seen:?}");
        assert!(seen.iter().all(|event| event["flow_id"] == "w"), "{seen:?}");
        let _ = watcher.kill();
        let _ = watcher.wait();
        if from_database_seen.is_empty() {
            from_database_seen = seen;
        }
    }

    // Watching a serve survives its restart: the watch tries again while nobody listens, then
    // resumes after the last event it printed, or, if it printed none, after the event where
    // serve began its stream.
    let from_now = watch(&["--server", &serve.url]);
    // One asked to start past the newest event began at the newest: it resumes from there too.
    let from_beyond_serve = watch(&["--server", &serve.url, "--after", "999999999"]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let address = serve.address().to_owned();
    serve.kill();
    // A flow queued while serve is down: a change the watchers must not miss.
    let queued = dir.path().join("queued.toml");
    std::fs::write(
        &queued,
        "name = \"queued\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = \"x\" }\n",
    )
    .unwrap();
    let run = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "alice", "run", "--queue", "--id", "q"])
        .arg(&queued)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let serve = Serve::start_on(&db, &address, &[], &[]);
    let report = json!({"steps": [{"name": "store", "status": "succeeded"}]});
    assert_eq!(call(http.post(serve.url("/v1/flows/w/report")).json(&report)).await.0, 200);
    let seen = lines_until(&mut from_serve, step("store"));
    assert_eq!(seen[0]["kind"], "flow", "{seen:?}");
    assert_eq!(
        seen[..from_database_seen.len()],
        from_database_seen,
        "a change is printed the same from the database and from serve"
    );
    assert!(seen.iter().any(step("fetch")) && seen.iter().any(step("store")), "{seen:?}");
    let ids: Vec<u64> = seen.iter().map(|event| event["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|pair| pair[0] < pair[1]), "in order, none twice: {ids:?}");
    let _ = from_serve.kill();
    let _ = from_serve.wait();
    for mut watcher in [from_now, from_beyond_serve] {
        let seen = lines_until(&mut watcher, step("store"));
        assert!(seen.iter().any(|event| event["flow_id"] == "q"), "the queued flow: {seen:?}");
        assert!(!seen.iter().any(step("fetch")), "only what happened since it began: {seen:?}");
        let _ = watcher.kill();
        let _ = watcher.wait();
    }

    // A reader that goes away ends the watch quietly, at a change after that. (The reader of
    // `lines_until` closes its end once it reads a line nobody waits for.)
    let mut reader = watch(&["--after", "0"]);
    lines_until(&mut reader, step("store"));
    for name in ["publish", "notify"] {
        let report = json!({"steps": [{"name": name, "status": "succeeded"}]});
        assert_eq!(call(http.post(serve.url("/v1/flows/w/report")).json(&report)).await.0, 200);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let status = wait_for_exit(&mut reader, Duration::from_secs(10));
    assert_eq!(status.and_then(|status| status.code()), Some(0), "no panic, no failure");

    // An address that is not a URL is a usage error.
    let output =
        Command::new(BIN).args(["flows", "watch", "--server", "127.0.0.1:7878"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
}

/// The exit status of `child` once it exits, within `limit`.
fn wait_for_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flows_graph_is_a_picture_that_runs_nothing_in_every_format() {
    let (_dir, db) = folder();
    let serve = Serve::start(&db, &[], &[]);
    let http = client();
    let body = json!({"id": "pictured", "name": "digest", "spec": pipeline(&[("a", "true"), ("b", "exit 3")])});
    let (status, created) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    wait_until("the flow to fail", async || status_of(&serve, "pictured").await == "failed").await;

    let svg = http.get(serve.url("/v1/flows/pictured/graph")).send().await.unwrap();
    assert_eq!(svg.status(), 200);
    let header = |name: &str| svg.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "image/svg+xml");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert!(header("content-security-policy").starts_with("default-src 'none'"));
    let picture = svg.text().await.unwrap();
    for (step, status) in [("a", "succeeded"), ("b", "failed")] {
        let hooks =
            format!("data-flow-id=\"pictured\" data-step=\"{step}\" data-status=\"{status}\"");
        assert!(picture.contains(&hooks), "{hooks} in {picture}");
    }

    let dot = http.get(serve.url("/v1/flows/pictured/graph?format=dot")).send().await.unwrap();
    assert!(dot.headers()["content-type"].to_str().unwrap().starts_with("text/vnd.graphviz"));
    assert!(dot.text().await.unwrap().contains("n0 -> n1;"));
    let (status, graph) = call(http.get(serve.url("/v1/flows/pictured/graph?format=json"))).await;
    assert_eq!((status, graph["edges"].clone()), (200, json!([[0, 1]])));

    let (status, bad) = call(http.get(serve.url("/v1/flows/pictured/graph?format=png"))).await;
    assert_eq!((status, bad["error"]["code"].clone()), (400, json!("bad_request")), "{bad}");
    let (status, _) = call(http.get(serve.url("/v1/flows/pictured/graph?colour=red"))).await;
    assert_eq!(status, 400);
    let (status, _) = call(http.get(serve.url("/v1/flows/nobody/graph"))).await;
    assert_eq!(status, 404);

    // Too many steps to lay out (the layout's time grows faster than their cube): refused,
    // pointing at the forms that hold them all; the dashboard's page says the same.
    let steps: Vec<Value> = (0..501)
        .map(|n| json!({"id": format!("s{n}"), "action": "echo", "with": {"value": n}}))
        .collect();
    let body = json!({"id": "wide", "name": "wide", "spec": {"steps": steps}});
    let (status, created) = call(http.post(serve.url("/v1/flows")).json(&body)).await;
    assert_eq!(status, 201, "{created}");
    let (status, refused) = call(http.get(serve.url("/v1/flows/wide/graph"))).await;
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("501 steps are more than a picture is drawn of"), "{message}");
    let dot = http.get(serve.url("/v1/flows/wide/graph?format=dot")).send().await.unwrap();
    assert!(dot.text().await.unwrap().contains("s500"));
    let page = http.get(serve.url("/flows/wide")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("501 steps are more than a picture is drawn of"), "{page}");
}

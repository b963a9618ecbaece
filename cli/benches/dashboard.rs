//! The dashboard of the real `taskflow serve`, measured in one run:
//!
//! - with 10,000 flows in the database (each with three steps), the server time of the flows
//!   page's first page (`GET /`, newest first, 50 rows) and of a filtered one, medians and p95
//!   over repeated loads on a keep-alive connection (target: under 100 ms);
//! - a status change visible in the page: from the commit of a mirrored flow's report to the
//!   moment the flow page's live part, fetched the way the page's script does it when the
//!   change feed names the flow, shows the new status (target: under 1 s);
//! - the page's own weight: the HTML of the first page of the list and of a flow page, the
//!   script and the stylesheet (target: under 200 KB for a page with its assets).
//!
//! `cargo bench -p taskflow-cli --bench dashboard` (`TASKFLOW_BENCH_FLOWS=N` sets the flows).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use taskflow_api::database;
use taskflow_store::{Durability, FlowStatus, NewFlow, StateReport, StepReport, StepStatus};

#[path = "support/serve.rs"]
mod support;

use support::Serve;

const LOADS: usize = 40;
const CHANGES: usize = 20;

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn percentile(sorted: &[Duration], share: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * share).round() as usize]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// `flows` mirrored flows of owner `bench`, each with three steps, half of them ended.
fn fill(path: &std::path::Path, flows: usize) {
    let taskflow = database::open_for_running(path, Durability::Normal).expect("the database");
    let handle = taskflow.bind("bench").expect("the owner");
    for n in 0..flows {
        let mut new = NewFlow::mirrored(if n % 10 == 0 { "digest" } else { "ingest" }, "bench");
        new.goal = Some(format!("flow {n}"));
        let flow = handle.create(new).expect("a flow");
        let steps = ["fetch", "parse", "store"]
            .iter()
            .map(|name| StepReport {
                name: (*name).to_owned(),
                status: StepStatus::Succeeded,
                output: Some(json!({"flow": n, "step": name})),
                error: None,
            })
            .collect();
        let report =
            StateReport { status: Some(FlowStatus::Running), steps, ..StateReport::default() };
        handle.report(&flow.id, report, None).expect("a report");
        if n % 2 == 1 {
            let done =
                StateReport { status: Some(FlowStatus::Succeeded), ..StateReport::default() };
            handle.report(&flow.id, done, None).expect("the end");
        }
    }
}

async fn load(http: &reqwest::Client, url: &str) -> (Duration, String) {
    let started = Instant::now();
    let response = http.get(url).send().await.expect("an answer");
    assert!(response.status().is_success(), "{url}: {}", response.status());
    let body = response.text().await.expect("a body");
    (started.elapsed(), body)
}

async fn server_time(http: &reqwest::Client, url: &str) -> Vec<Duration> {
    let _ = load(http, url).await;
    let mut times = Vec::with_capacity(LOADS);
    for _ in 0..LOADS {
        times.push(load(http, url).await.0);
    }
    times.sort();
    times
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let flows = setting("TASKFLOW_BENCH_FLOWS", 10_000);
    let dir = tempfile::tempdir().expect("a folder");
    let db = dir.path().join("flows.db");
    let started = Instant::now();
    fill(&db, flows);
    println!("setup_flows: {flows}");
    println!("setup_seconds: {:.1}", started.elapsed().as_secs_f64());

    let serve = Serve::start(&db);
    let at = |path: &str| format!("{}{path}", serve.url);
    let http = reqwest::Client::builder().no_proxy().build().expect("a client");

    for (name, path) in [("first_page", "/"), ("filtered_page", "/?status=running&name=digest")] {
        let times = server_time(&http, &at(path)).await;
        println!("{name}_ms_median: {:.1}", ms(percentile(&times, 0.5)));
        println!("{name}_ms_p95: {:.1}", ms(percentile(&times, 0.95)));
    }
    let api = server_time(&http, &at("/v1/flows")).await;
    println!("api_first_page_ms_median: {:.1}", ms(percentile(&api, 0.5)));

    // A change visible: commit, then the feed's event, then the live part showing it.
    let taskflow = database::open_for_running(&db, Durability::Normal).expect("the database");
    let handle = taskflow.bind("bench").expect("the owner");
    let mut visible = Vec::with_capacity(CHANGES);
    for n in 0..CHANGES {
        let flow = handle.create(NewFlow::mirrored("watched", "bench")).expect("a flow");
        let running = StateReport { status: Some(FlowStatus::Running), ..StateReport::default() };
        handle.report(&flow.id, running, None).expect("running");
        let events = http
            .get(at(&format!("/v1/events?flow={}", flow.id)))
            .send()
            .await
            .expect("the event stream");
        let mut events = events.bytes_stream();
        let live = at(&format!("/flows/{}?part=live", flow.id));
        let status = if n % 2 == 0 { FlowStatus::Succeeded } else { FlowStatus::Failed };
        let wanted = format!("data-status=\"{}\"", status.as_str());
        let committed = Instant::now();
        let done = StateReport { status: Some(status), ..StateReport::default() };
        let reporting = handle.clone();
        let id = flow.id.clone();
        tokio::task::spawn_blocking(move || reporting.report(&id, done, None))
            .await
            .expect("the report ran")
            .expect("the report");
        let seen = loop {
            let chunk = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream goes on")
                .expect("a chunk");
            if !String::from_utf8_lossy(&chunk).contains("\"kind\":\"flow\"") {
                continue;
            }
            let (_, page) = load(&http, &live).await;
            if page.contains(&wanted) {
                break committed.elapsed();
            }
        };
        visible.push(seen);
    }
    visible.sort();
    println!("change_visible_ms_median: {:.1}", ms(percentile(&visible, 0.5)));
    println!("change_visible_ms_max: {:.1}", ms(percentile(&visible, 1.0)));

    let (_, list) = load(&http, &at("/")).await;
    let first = list.split("<tr data-flow-id=\"").nth(1).expect("a row");
    let id = &first[..first.find('"').expect("an id")];
    let (_, flow) = load(&http, &at(&format!("/flows/{id}"))).await;
    let (_, script) = load(&http, &at("/assets/app.js")).await;
    let (_, style) = load(&http, &at("/assets/app.css")).await;
    let assets = script.len() + style.len();
    println!("list_page_bytes: {}", list.len());
    println!("flow_page_bytes: {}", flow.len());
    println!("script_and_style_bytes: {assets}");
    println!("list_page_with_assets_kb: {:.1}", (list.len() + assets) as f64 / 1024.0);
    println!("flow_page_with_assets_kb: {:.1}", (flow.len() + assets) as f64 / 1024.0);
}

//! What 10,000 schedules in one database cost, measured on the real binary in one run:
//!
//! - `taskflow serve`'s CPU while none of them is due (idle), as a share of one core;
//! - the fire lag of slots that come due meanwhile (a few schedules firing every second beside
//!   the 10,000): from a slot's instant to the creation of its flow, percentiles;
//! - the wall time of `taskflow schedules list` (a new process each time, the table and
//!   `--json`).
//!
//! `cargo bench -p taskflow-cli --bench schedules` (`TASKFLOW_BENCH_SCHEDULES=N` sets how many
//! schedules, `TASKFLOW_BENCH_SECONDS=N` how long each phase lasts).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use taskflow_api::{database, schedules};
use taskflow_engine::schedule::{ScheduleInput, SlotClock};
use taskflow_engine::{FlowSpec, OwnerHandle, StepSpec, Timestamp};
use taskflow_store::Durability;

#[path = "support/serve.rs"]
mod support;

use support::Serve;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");
const ZONES: [&str; 4] = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"];
const FIRING: usize = 20;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|value| value.parse().ok()).unwrap_or(default)
}

fn pipeline(name: &str) -> FlowSpec {
    FlowSpec::new(name).step(StepSpec::new("a", "echo").with(json!({"value": 1})))
}

/// `count` daily schedules in four zones, none of them due within the next hour.
fn add_idle(handle: &OwnerHandle, count: usize) {
    let now = Timestamp::now();
    let quiet_until = now.plus(Duration::from_secs(3600));
    let mut added = 0;
    let mut n = 0usize;
    while added < count {
        n += 1;
        let zone = ZONES[n % ZONES.len()];
        let cron = format!("{} {} * * *", n % 60, (n / 60) % 24);
        let input =
            ScheduleInput { cron: Some(cron), zone: Some(zone.into()), ..ScheduleInput::default() };
        let spec = schedules::spec_of(&input).unwrap();
        let clock = SlotClock::new(&spec.timing, &spec.zone).unwrap();
        if clock.next_after(now).is_none_or(|next| next <= quiet_until) {
            continue;
        }
        let name = format!("idle-{n}");
        schedules::add(handle, &name, spec, &pipeline(&name), false, now).unwrap();
        added += 1;
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Wall times of `taskflow schedules list` (with `extra` arguments), in milliseconds, sorted.
fn list_times(db: &Path, extra: &[&str], runs: usize) -> Vec<f64> {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let out = Command::new(BIN)
                .arg("--db")
                .arg(db)
                .args(["--owner", "bench"])
                .args(extra)
                .args(["schedules", "list"])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn main() {
    let count = setting("TASKFLOW_BENCH_SCHEDULES", 10_000) as usize;
    let seconds = setting("TASKFLOW_BENCH_SECONDS", 20);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let handle =
        database::open_for_running(&db, Durability::Normal).unwrap().bind("bench").unwrap();
    let started = Instant::now();
    add_idle(&handle, count);
    println!("{count} schedules added in {:.1} s", started.elapsed().as_secs_f64());

    let serve = Serve::start(&db);
    // Let start-up (the first sweep and passes) settle, then measure an idle stretch.
    std::thread::sleep(Duration::from_secs(2));
    let (cpu_before, wall) = (serve.cpu(), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let idle = serve.cpu().zip(cpu_before).map(|(after, before)| {
        (after - before).as_secs_f64() / wall.elapsed().as_secs_f64() * 100.0
    });
    match idle {
        Some(share) => println!(
            "idle CPU of serve with {count} schedules: {share:.2}% of a core ({seconds} s)"
        ),
        None => println!("idle CPU of serve: not measured (no /proc)"),
    }

    // Slots firing beside them: schedules every second, added while serve runs.
    let now = Timestamp::now();
    let names: Vec<String> = (0..FIRING).map(|n| format!("firing-{n}")).collect();
    for name in &names {
        let input = ScheduleInput {
            every: Some("1s".into()),
            overlap: Some("allow".into()),
            ..ScheduleInput::default()
        };
        let spec = schedules::spec_of(&input).unwrap();
        schedules::add(&handle, name, spec, &pipeline(name), false, now).unwrap();
    }
    let firing_from = Timestamp::now().plus(Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(seconds));
    let firing_to = Timestamp::now().minus(Duration::from_secs(1));
    let mut lags = Vec::new();
    let mut missed = 0;
    for name in &names {
        let (_, slots) = handle.schedule(name, None, 10_000).unwrap();
        for slot in slots.iter().filter(|slot| slot.at >= firing_from && slot.at <= firing_to) {
            match &slot.flow_id {
                Some(id) => {
                    let flow = handle.flow_without_spec(id).unwrap();
                    lags.push((flow.created_at.as_millis() - slot.at.as_millis()) as f64);
                }
                None => missed += slot.count,
            }
        }
    }
    lags.sort_by(f64::total_cmp);
    println!(
        "fire lag, {} slots of {FIRING} schedules every 1 s beside {count}: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({missed} not run)",
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags.last().copied().unwrap_or(f64::NAN),
    );
    drop(serve);

    let read = Instant::now();
    let summaries = handle.schedules().unwrap();
    let read = read.elapsed();
    let best = (0..10)
        .map(|_| {
            let again = Instant::now();
            handle.schedules().unwrap();
            again.elapsed()
        })
        .min()
        .unwrap_or_default();
    let render = Instant::now();
    let text =
        serde_json::to_string_pretty(&taskflow_api::schedule_documents::schedules_list(&summaries))
            .unwrap();
    println!(
        "schedules list in process: the store's read {:.0} ms (best of 10 more: {:.0} ms), the --json document {:.0} ms ({} KiB)",
        read.as_secs_f64() * 1000.0,
        best.as_secs_f64() * 1000.0,
        render.elapsed().as_secs_f64() * 1000.0,
        text.len() / 1024
    );
    for (label, extra) in [("table", &[][..]), ("--json", &["--json"][..])] {
        let times = list_times(&db, extra, 10);
        println!(
            "schedules list ({label}) of {} schedules: median {:.0} ms, max {:.0} ms (10 runs, process start included)",
            count + FIRING,
            percentile(&times, 0.5),
            times.last().copied().unwrap_or(f64::NAN),
        );
    }
}

//! `taskflow schedules` as a real process on a real database: add (cron or interval, zones,
//! gates, policies) with clear errors and nothing written on a bad one, list and show with
//! `--json`, apply of a pipeline's `[schedule]` table twice, pause and resume, trigger and
//! backfill (a slot fires once, by the creation of its flow `NAME@SLOT`), and remove.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

#[path = "support/serve.rs"]
mod support;

use support::Serve;

const BIN: &str = env!("CARGO_BIN_EXE_taskflow");

fn taskflow(db: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(["--owner", "alice"])
        .args(args)
        .env_remove("TASKFLOW_OWNER")
        .output()
        .unwrap()
}

/// The `--json` document of a command that succeeds.
fn json_of(db: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = taskflow(db, &all);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A command that fails with `code`, its stderr holding `fragment`.
fn fails(db: &Path, args: &[&str], code: i32, fragment: &str) {
    let out = taskflow(db, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(stderr.contains(fragment), "{args:?}: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

const PIPELINE: &str = r#"
name = "draft"

[[steps]]
id = "write"
action = "echo"
with = { value = "the digest" }
"#;

struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        Folder { dir: tempfile::tempdir().unwrap() }
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.path().join("flows.db")
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

#[test]
fn schedules_are_added_listed_and_shown_and_bad_ones_are_refused_with_the_option_named() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    let add = |name: &str, more: &[&str]| {
        let mut args = vec!["schedules", "add", name, "--pipeline", &pipeline];
        args.extend_from_slice(more);
        json_of(&db, &args)
    };
    let scrape = add("scrape", &["--cron", "0 7 * * *", "--tz", "Europe/Paris"]);
    assert_eq!(scrape["change"], "added");
    assert_eq!(scrape["schedule"]["spec"]["zone"], "Europe/Paris");
    assert!(scrape["schedule"]["next_slot"].as_str().unwrap().ends_with("T06:00:00.000Z"));
    let draft = add(
        "draft",
        &[
            "--cron",
            "30 7 * * *",
            "--tz",
            "Europe/Paris",
            "--after",
            "scrape",
            "--within",
            "2h",
            "--otherwise",
            "skip",
            "--overlap",
            "buffer-one",
            "--catch-up",
            "all",
            "--max-catch-up",
            "3",
            "--jitter",
            "30s",
            "--timeout",
            "1h",
        ],
    );
    let spec = &draft["schedule"]["spec"];
    assert_eq!(
        (spec["after"].clone(), spec["within"].clone(), spec["overlap"].clone()),
        (json!(["scrape"]), json!("2h"), json!("buffer-one"))
    );
    assert_eq!((spec["catch_up"].clone(), spec["max_catch_up"].clone()), (json!("all"), json!(3)));
    let every = add("tick", &["--every", "2s", "--paused"]);
    assert_eq!(
        (every["schedule"]["timing"].clone(), every["schedule"]["paused"].clone()),
        (json!("every 2s"), json!(true))
    );

    let cases: [(&[&str], i32, &str); 12] = [
        (&["--cron", "0 25 * * *"], 2, "--cron: `0 25 * * *` is not a cron expression"),
        (&["--cron", "0 7 31 2 *"], 2, "--cron: `0 7 31 2 *` matches no date to come"),
        (&["--every", "500ms"], 2, "--every: an interval must be"),
        (&["--every", "999999999999999999d"], 2, "is longer than taskflow keeps"),
        (
            &["--cron", "0 7 * * *", "--tz", "Europe/Pariss"],
            2,
            "--tz: `Europe/Pariss` is not an IANA",
        ),
        (&["--every", "soon"], 2, "--every: `soon` is not a duration"),
        (
            &["--cron", "0 7 * * *", "--overlap", "queue"],
            2,
            "--overlap: `queue` is not one of skip",
        ),
        (
            &["--cron", "0 7 * * *", "--after", "nothing", "--within", "1h"],
            2,
            "`nothing`, which is not one of your schedules",
        ),
        (&["--cron", "0 7 * * *", "--after", "scrape"], 2, "--within"),
        (&["--cron", "0 7 * * *", "--every", "1m"], 2, "cannot be used with"),
        (&["--tz", "UTC"], 2, "<--cron <EXPR>|--every <DURATION>>"),
        (&["--cron", "0 7 * * *", "--jitter", "x"], 2, "--jitter"),
    ];
    for (more, code, fragment) in cases {
        let mut args = vec!["schedules", "add", "other", "--pipeline", &pipeline];
        args.extend_from_slice(more);
        fails(&db, &args, code, fragment);
    }
    fails(
        &db,
        &["schedules", "add", "scrape", "--pipeline", &pipeline, "--cron", "0 8 * * *"],
        1,
        "schedule `scrape` already exists",
    );
    // Another owner's name: no hint to update what is not theirs.
    let bob = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "bob", "schedules", "add", "scrape", "--pipeline", &pipeline])
        .args(["--cron", "0 8 * * *"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&bob.stderr);
    assert_eq!(bob.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the schedule name `scrape` is taken by another owner"), "{stderr}");
    assert!(stderr.contains("hint: pick another name") && !stderr.contains("apply"), "{stderr}");
    fails(
        &db,
        &["schedules", "add", "bad name", "--pipeline", &pipeline, "--cron", "0 8 * * *"],
        2,
        "not a schedule name",
    );
    let broken =
        folder.file("broken.toml", "name = \"x\"\n[[steps]]\nid = \"a\"\naction = \"teleport\"\n");
    fails(
        &db,
        &["schedules", "add", "other", "--pipeline", &broken, "--cron", "0 8 * * *"],
        1,
        "broken.toml:4:10: unknown action `teleport`",
    );
    // A cycle is refused, named.
    fails(
        &db,
        &[
            "schedules",
            "add",
            "loop",
            "--pipeline",
            &pipeline,
            "--cron",
            "0 8 * * *",
            "--after",
            "loop",
            "--within",
            "1h",
        ],
        2,
        "would wait for itself: loop → loop",
    );

    let list = json_of(&db, &["schedules", "list"]);
    let names: Vec<&str> =
        list["schedules"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["draft", "scrape", "tick"], "nothing written by a refused add");
    let table = String::from_utf8(taskflow(&db, &["schedules", "list"]).stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("scrape  0 7 * * *"), "{table}");
    let shown = json_of(&db, &["schedules", "show", "draft"]);
    assert_eq!(
        (shown["schedule"]["name"].clone(), shown["slots"].clone()),
        (json!("draft"), json!([]))
    );
    fails(&db, &["schedules", "show", "nothing"], 1, "no schedule `nothing`");
    // Another owner sees none of them.
    let bob = Command::new(BIN)
        .arg("--db")
        .arg(&db)
        .args(["--owner", "bob", "--json", "schedules", "list"])
        .output()
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&bob.stdout).unwrap(), json!({"schedules": []}));
    // Without a database there are none, and none is created.
    let absent = folder.dir.path().join("absent.db");
    assert_eq!(json_of(&absent, &["schedules", "list"]), json!({"schedules": []}));
    assert!(!absent.exists());
}

#[test]
fn a_pipelines_schedule_table_is_applied_once_and_again_changes_nothing() {
    let folder = Folder::new();
    let db = folder.db();
    let declared = format!(
        "{PIPELINE}\n[schedule]\nname = \"draft\"\ncron = \"0 7 * * MON-FRI\"\nzone = \"America/New_York\"\n"
    );
    let file = folder.file("draft.toml", &declared);
    assert_eq!(json_of(&db, &["schedules", "apply", &file])["change"], "created");
    let again = json_of(&db, &["schedules", "apply", &file]);
    assert_eq!(
        (again["change"].clone(), again["schedule"]["revision"].clone()),
        (json!("unchanged"), json!(1))
    );
    folder.file("draft.toml", &declared.replace("0 7 * * MON-FRI", "0 8 * * MON-FRI"));
    let updated = json_of(&db, &["schedules", "apply", &file]);
    assert_eq!(
        (updated["change"].clone(), updated["schedule"]["revision"].clone()),
        (json!("updated"), json!(2))
    );
    folder.file("draft.toml", &format!("{declared}paused = true\n"));
    let paused = json_of(&db, &["schedules", "apply", &file]);
    assert_eq!(paused["schedule"]["paused"], true);
    let history = json_of(&db, &["schedules", "history", "draft"]);
    assert_eq!(history["revisions"].as_array().unwrap().len(), 4);

    let bad = folder.file(
        "bad.toml",
        &format!("{PIPELINE}\n[schedule]\nname = \"x\"\ncron = \"0 7 * * *\"\ncolour = 1\n"),
    );
    fails(
        &db,
        &["schedules", "apply", &bad],
        1,
        "bad.toml:12:1: unknown key `colour` in [schedule]",
    );
    let none = folder.file("none.toml", PIPELINE);
    fails(&db, &["schedules", "apply", &none], 1, "no `[schedule]` table");
    // What only the database can tell is placed in the file too: a gate on no schedule, a
    // schedule that would wait for itself.
    let gated = |after: &str| {
        format!(
            "{PIPELINE}\n[schedule]\nname = \"send\"\ncron = \"0 9 * * *\"\n\
             after = [\"{after}\"]\nwithin = \"2h\"\n"
        )
    };
    let ghost = folder.file("ghost.toml", &gated("ghost"));
    fails(
        &db,
        &["schedules", "apply", &ghost],
        1,
        "ghost.toml:12:9: schedule `send` runs after `ghost`, which is not one of your schedules",
    );
    let send = folder.file("send.toml", &gated("draft"));
    assert_eq!(json_of(&db, &["schedules", "apply", &send])["change"], "created");
    folder.file("draft.toml", &format!("{declared}after = [\"send\"]\nwithin = \"1h\"\n"));
    fails(
        &db,
        &["schedules", "apply", &file],
        1,
        "draft.toml:13:9: schedule `draft` would wait for itself",
    );
    let spaced = folder.file("spaced.toml", &gated("draft").replace("\"send\"", "\"s 4\""));
    fails(
        &db,
        &["schedules", "apply", &spaced],
        1,
        "spaced.toml:10:8: `s 4` is not a schedule name",
    );
}

#[test]
fn trigger_and_backfill_fire_slots_by_creating_their_flows_once() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    json_of(
        &db,
        &[
            "schedules",
            "add",
            "digest",
            "--pipeline",
            &pipeline,
            "--cron",
            "0 7 * * *",
            "--tz",
            "Europe/Paris",
        ],
    );
    let range = ["--from", "2026-10-24T00:00:00Z", "--to", "2026-10-26T23:59:59Z"];
    let mut args = vec!["schedules", "backfill", "digest"];
    args.extend_from_slice(&range);
    let filled = json_of(&db, &args);
    let ids: Vec<&str> = filled["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| slot["flow_id"].as_str().unwrap())
        .collect();
    // 07:00 in Paris: CEST before the clocks go back on the 25th, CET after.
    assert_eq!(
        ids,
        [
            "digest@2026-10-24T05:00:00Z",
            "digest@2026-10-25T06:00:00Z",
            "digest@2026-10-26T06:00:00Z",
        ]
    );
    // The same range again finds the same flows: no slot fires twice.
    let again = json_of(&db, &args);
    let again: Vec<&str> = again["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| slot["flow_id"].as_str().unwrap())
        .collect();
    assert_eq!(again, ids);
    let flows = json_of(&db, &["flows", "list"]);
    assert_eq!(flows["flows"].as_array().unwrap().len(), 3);
    let flow = json_of(&db, &["flows", "inspect", "digest@2026-10-25T06:00:00Z"]);
    assert_eq!(
        (flow["flow"]["status"].clone(), flow["flow"]["name"].clone()),
        (json!("queued"), json!("digest"))
    );

    let triggered = json_of(&db, &["schedules", "trigger", "digest"]);
    assert_eq!(triggered["slots"][0]["reason"], "triggered by hand");
    assert_eq!(triggered["fired"], true);
    let shown = json_of(&db, &["schedules", "show", "digest"]);
    let reasons: Vec<&str> = shown["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|slot| slot["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, ["triggered by hand", "backfill", "backfill", "backfill"], "newest first");

    fails(
        &db,
        &[
            "schedules",
            "backfill",
            "digest",
            "--from",
            "2026-10-26T00:00:00Z",
            "--to",
            "2026-10-24T00:00:00Z",
        ],
        2,
        "is after --to",
    );
    fails(
        &db,
        &[
            "schedules",
            "backfill",
            "digest",
            "--from",
            "2026-10-26T00:00:00Z",
            "--to",
            "2999-01-01T00:00:00Z",
        ],
        2,
        "is in the future",
    );
    fails(
        &db,
        &["schedules", "backfill", "digest", "--from", "yesterday", "--to", "2026-10-24T00:00:00Z"],
        2,
        "not an RFC 3339 instant",
    );
}

#[test]
fn a_paused_schedule_records_what_it_missed_when_resumed_and_remove_keeps_the_flows() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    json_of(&db, &["schedules", "add", "tick", "--pipeline", &pipeline, "--every", "1s"]);
    json_of(&db, &["schedules", "trigger", "tick"]);
    let paused = json_of(&db, &["schedules", "pause", "tick"]);
    assert_eq!(
        (paused["change"].clone(), paused["schedule"]["paused"].clone()),
        (json!("paused"), json!(true))
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    // Paused, no slot of it is next (its cursor is where the pause found it, now past).
    let listed = taskflow(&db, &["schedules", "list"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.lines().nth(1).is_some_and(|row| row.contains("- (paused)")), "{listed}");
    let resumed = json_of(&db, &["schedules", "resume", "tick"]);
    assert_eq!(resumed["schedule"]["paused"], false);
    let shown = json_of(&db, &["schedules", "show", "tick"]);
    let missed = &shown["slots"][0];
    assert_eq!(
        (missed["status"].clone(), missed["reason"].clone()),
        (json!("missed"), json!("the schedule was paused"))
    );
    assert!(missed["count"].as_u64().unwrap() >= 2, "{missed}");
    assert!(
        resumed["schedule"]["next_slot"].as_str().unwrap()
            > missed["last_at"].as_str().unwrap_or("")
    );

    let removed = json_of(&db, &["schedules", "remove", "tick"]);
    assert_eq!(removed["schedule"]["name"], "tick");
    assert_eq!(json_of(&db, &["schedules", "list"]), json!({"schedules": []}));
    let flows = json_of(&db, &["flows", "list"]);
    assert_eq!(flows["flows"].as_array().unwrap().len(), 1, "the triggered slot's flow stays");
    fails(&db, &["schedules", "pause", "tick"], 1, "no schedule `tick`");
}

/// A backfill of slots that a resume recorded missed as one range splits the range: each other
/// slot stays recorded missed, the parts with their counts and the range's reason, in `schedules
/// show` and its `--json`, whether the slot backfilled is the range's first or one in its middle.
#[test]
fn backfilled_slots_of_a_missed_range_leave_the_others_recorded_missed_with_their_count() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    json_of(&db, &["schedules", "add", "bf", "--pipeline", &pipeline, "--every", "1s", "--paused"]);
    std::thread::sleep(std::time::Duration::from_millis(4200));
    json_of(&db, &["schedules", "resume", "bf"]);
    let records = || -> Vec<(String, String, Value, u64, String)> {
        let shown = json_of(&db, &["schedules", "show", "bf", "--limit", "100"]);
        let slots = shown["slots"].as_array().unwrap().iter();
        slots
            .map(|slot| {
                let text = |field: &str| slot[field].as_str().unwrap_or_default().to_owned();
                let count = slot["count"].as_u64().unwrap();
                (text("at"), text("status"), slot["last_at"].clone(), count, text("reason"))
            })
            .collect()
    };
    let range = records();
    let (first, last, count) = (range[0].0.clone(), range[0].2.clone(), range[0].3);
    assert!(count >= 4 && range.len() == 1, "{range:?}");
    let paused = "the schedule was paused".to_owned();
    let plus = |seconds: i64| {
        let at = chrono::DateTime::parse_from_rfc3339(&first).unwrap();
        let later = at + chrono::Duration::seconds(seconds);
        later.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let backfill =
        |at: &str| json_of(&db, &["schedules", "backfill", "bf", "--from", at, "--to", at]);

    // The range's first slot: the others are one range from the next second.
    backfill(&first);
    let missed = |at: String, count: u64, last: Value| {
        (at, "missed".to_owned(), last, count, paused.clone())
    };
    let fired = |at: String| (at, "running".to_owned(), Value::Null, 1, "backfill".to_owned());
    assert_eq!(records(), [missed(plus(1), count - 1, last.clone()), fired(first.clone())]);
    let text = String::from_utf8(taskflow(&db, &["schedules", "show", "bf"]).stdout).unwrap();
    assert!(text.contains(&format!("({} slots)", count - 1)), "{text}");

    // One in its middle: one slot before it, the rest after.
    backfill(&plus(2));
    let after = if count - 3 > 1 { last } else { Value::Null };
    assert_eq!(
        records(),
        [
            missed(plus(3), count - 3, after),
            fired(plus(2)),
            missed(plus(1), 1, Value::Null),
            fired(first.clone()),
        ]
    );
}

#[test]
fn serve_fires_slots_as_flows_named_by_them_and_a_gated_slot_waits_for_its_schedule() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    json_of(&db, &["schedules", "add", "scrape", "--pipeline", &pipeline, "--every", "2s"]);
    json_of(
        &db,
        &[
            "schedules",
            "add",
            "draft",
            "--pipeline",
            &pipeline,
            "--every",
            "2s",
            "--after",
            "scrape",
            "--within",
            "1s",
        ],
    );
    let serve = Serve::start(&db, &[], &[]);
    let started = std::time::Instant::now();
    let ended = |name: &str| -> Vec<Value> {
        let shown = json_of(&db, &["schedules", "show", name]);
        shown["slots"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|slot| slot["status"] == "ended")
            .cloned()
            .collect()
    };
    while ended("draft").len() < 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "draft never ran");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(serve);
    let scrape = ended("scrape");
    for slot in ended("draft") {
        assert_eq!(slot["flow_status"], "succeeded", "{slot}");
        let at = slot["at"].as_str().unwrap();
        let id = slot["flow_id"].as_str().unwrap();
        assert!(id.starts_with("draft@") && id.ends_with('Z'), "{id}");
        let gate = scrape.iter().find(|scraped| scraped["at"] == at);
        assert_eq!(
            gate.map(|gate| gate["flow_status"].clone()),
            Some(json!("succeeded")),
            "{slot}"
        );
    }
    let flow = json_of(&db, &["flows", "inspect", scrape[0]["flow_id"].as_str().unwrap()]);
    assert_eq!(flow["flow"]["state"], json!({"write": "the digest"}));
}

/// Copies `from` (a folder of the repository) to the same place under `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_readmes_daily_digest_applies_and_both_of_its_pipelines_run_offline() {
    let folder = Folder::new();
    let db = folder.db();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    for part in ["examples/schedules/daily-digest", "examples/pipelines/news-digest/pages"] {
        copy_tree(&repo.join(part), &folder.dir.path().join(part));
    }
    let example = folder.dir.path().join("examples/schedules/daily-digest");
    let scrape = example.join("scrape.toml");
    let draft = example.join("draft.toml");
    for file in [&scrape, &draft] {
        let applied = json_of(&db, &["schedules", "apply", file.to_str().unwrap()]);
        assert_eq!(applied["change"], "created");
        let again = json_of(&db, &["schedules", "apply", file.to_str().unwrap()]);
        assert_eq!(again["change"], "unchanged");
    }
    let shown = json_of(&db, &["schedules", "show", "draft"]);
    let spec = &shown["schedule"]["spec"];
    assert_eq!(
        (spec["after"].clone(), spec["within"].clone(), spec["otherwise"].clone()),
        (json!(["scrape"]), json!("2h"), json!("skip"))
    );
    assert_eq!(
        (spec["cron"].clone(), spec["zone"].clone()),
        (json!("0 7 * * *"), json!("Europe/Paris"))
    );
    // Both pipelines run as they are, offline: the draft reads what the scrape saved.
    for file in [&scrape, &draft] {
        let out = taskflow(&db, &["run", file.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let digest = std::fs::read_to_string(example.join("out/digest.md")).unwrap();
    assert!(digest.starts_with("Rust 1.95 has shipped."), "{digest}");
}

#[test]
fn a_schedule_whose_timing_changes_records_the_old_slots_no_serve_decided() {
    let folder = Folder::new();
    let db = folder.db();
    let declared =
        |every: &str| format!("{PIPELINE}\n[schedule]\nname = \"tick\"\nevery = \"{every}\"\n");
    let file = folder.file("tick.toml", &declared("1s"));
    json_of(&db, &["schedules", "apply", &file]);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    folder.file("tick.toml", &declared("1m"));
    let updated = json_of(&db, &["schedules", "apply", &file]);
    assert_eq!(updated["change"], "updated");
    let shown = json_of(&db, &["schedules", "show", "tick"]);
    let missed = &shown["slots"][0];
    assert_eq!(missed["status"], "missed");
    assert!(missed["reason"].as_str().unwrap().contains("timing changed"), "{missed}");
    assert!(missed["count"].as_u64().unwrap() >= 2, "{missed}");
    assert!(shown["schedule"]["next_slot"].as_str().unwrap().ends_with(":00.000Z"), "{shown}");
}

#[test]
fn a_flow_under_a_slots_id_that_the_schedule_did_not_make_is_not_taken_for_its_run_nor_made_by_hand()
 {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    let other = folder.file(
        "other.toml",
        "name = \"other\"\n[[steps]]\nid = \"a\"\naction = \"echo\"\nwith = { value = 1 }\n",
    );
    // A flow cannot be made by hand under a slot's id.
    for id in ["digest@2026-10-24T07:00:00Z", "digest@2026-10-24T07:00:00.000Z"] {
        let by_hand = ["run", "--queue", "--id", id, &other];
        fails(&db, &by_hand, 2, "has the form of a schedule slot's flow id");
    }
    // An earlier schedule of the name, with another pipeline, ran the 24th's slot.
    let earlier = ["schedules", "add", "digest", "--pipeline", &other, "--cron", "0 7 * * *"];
    json_of(&db, &earlier);
    let backfill = |to: &str| {
        let range = ["--from", "2026-10-24T00:00:00Z", "--to", to];
        json_of(&db, &[&["schedules", "backfill", "digest"][..], &range].concat())
    };
    backfill("2026-10-24T23:59:59Z");
    let inspect = ["flows", "inspect", "digest@2026-10-24T07:00:00Z"];
    let earlier_run = json_of(&db, &inspect)["flow"].clone();
    json_of(&db, &["schedules", "remove", "digest"]);
    let add = ["schedules", "add", "digest", "--pipeline", &pipeline, "--cron", "0 7 * * *"];
    json_of(&db, &add);
    let filled = backfill("2026-10-25T23:59:59Z");
    let slots = filled["slots"].as_array().unwrap();
    let seen: Vec<(&str, &Value)> =
        slots.iter().map(|slot| (slot["status"].as_str().unwrap(), &slot["flow_id"])).collect();
    assert_eq!(
        seen,
        [("skipped", &Value::Null), ("running", &json!("digest@2026-10-25T07:00:00Z"))],
        "{filled:#}"
    );
    let reason = slots[0]["reason"].as_str().unwrap();
    assert!(reason.contains("is not a run of this schedule"), "{reason}");
    let flow = json_of(&db, &inspect)["flow"].clone();
    assert_eq!(flow["revision"], earlier_run["revision"], "the earlier run is left as it was");
}

#[test]
fn a_trigger_within_the_second_of_another_says_its_slot_fired_already() {
    let folder = Folder::new();
    let db = folder.db();
    let pipeline = folder.file("draft.toml", PIPELINE);
    json_of(&db, &["schedules", "add", "digest", "--pipeline", &pipeline, "--every", "1h"]);
    // Two triggers in one second name one slot; a pair that straddles a second is tried again.
    for _ in 0..10 {
        let first = taskflow(&db, &["schedules", "trigger", "digest"]);
        let second = taskflow(&db, &["schedules", "trigger", "digest"]);
        let (first, second) =
            (String::from_utf8_lossy(&first.stdout), String::from_utf8_lossy(&second.stdout));
        assert!(!first.contains("fired already"), "{first}");
        // Who runs the slot's flow: serve, or a worker where the database is PostgreSQL.
        assert!(
            first.trim_end().ends_with(
                "\na running `taskflow serve` or `taskflow worker` runs them (or `taskflow flows \
                 resume ID`)"
            ),
            "{first}"
        );
        if second.contains("had fired already") {
            assert_eq!(second.lines().nth(1), first.lines().next(), "the same slot: {second}");
            // With --json too; and the slot's record is the first trigger's.
            let shown = json_of(&db, &["schedules", "show", "digest"]);
            let third = json_of(&db, &["schedules", "trigger", "digest"]);
            if third["slots"][0]["at"] == shown["slots"][0]["at"] {
                assert_eq!(third["fired"], false, "{third}");
                assert_eq!(third["slots"][0], shown["slots"][0], "the record is as it was");
            }
            return;
        }
    }
    panic!("no two triggers fell in one second in ten tries");
}

#[test]
fn a_schedules_pipeline_with_a_cost_budget_is_priced_when_added_so_its_runs_count_their_cost() {
    let folder = Folder::new();
    let db = folder.db();
    let config = folder.dir.path().join("config");
    std::fs::create_dir_all(config.join("taskflow")).unwrap();
    std::fs::write(
        config.join("taskflow/config.toml"),
        "[prices.replay]\ninput_per_mtok = 1000000.0\noutput_per_mtok = 0.0\n",
    )
    .unwrap();
    folder.file(
        "turns.toml",
        "[[turn]]\ncontent = \"hi\"\nusage = { prompt_tokens = 2, completion_tokens = 1 }\n",
    );
    let pipeline = folder.file(
        "costly.toml",
        "name = \"costly\"\n[budget]\nmax_cost_usd = 5.0\n\
         [[steps]]\nid = \"ask\"\naction = \"llm\"\n\
         with = { provider = \"replay\", script = \"turns.toml\", prompt = \"hi\" }\n",
    );
    let with_config = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("--db")
            .arg(&db)
            .args(["--owner", "alice", "--json"])
            .args(args)
            .env_remove("TASKFLOW_OWNER")
            .env("XDG_CONFIG_HOME", &config)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    with_config(&["schedules", "add", "costly", "--pipeline", &pipeline, "--every", "1h"]);
    let fired = with_config(&["schedules", "trigger", "costly"]);
    let id = fired["slots"][0]["flow_id"].as_str().unwrap().to_owned();
    // Run where no config file prices anything: the price came with the schedule.
    let out = taskflow(&db, &["flows", "resume", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let usage = json_of(&db, &["flows", "inspect", &id])["usage"].clone();
    assert_eq!(usage["cost_usd"], json!(2.0), "{usage}");
    assert_eq!(usage["max_cost_usd"], json!(5.0), "{usage}");
}

/// A run its schedule cancels says why on its slot's record, in `schedules show` as in its
/// JSON: here, past the schedule's `--timeout` (the pipeline sleeps much longer).
#[test]
fn a_run_past_its_schedules_timeout_is_cancelled_and_its_slot_says_why() {
    let folder = Folder::new();
    let db = folder.db();
    let slow = "name = \"slow\"\n\n[[steps]]\nid = \"nap\"\naction = \"sleep\"\nwith = { for = \"60s\" }\n";
    let pipeline = folder.file("slow.toml", slow);
    json_of(
        &db,
        &["schedules", "add", "to", "--pipeline", &pipeline, "--every", "2s", "--timeout", "1s"],
    );
    let serve = Serve::start(&db, &[], &[]);
    let started = std::time::Instant::now();
    let cancelled = || -> Option<Value> {
        let shown = json_of(&db, &["schedules", "show", "to"]);
        shown["slots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|slot| slot["flow_status"] == "cancelled")
            .cloned()
    };
    let slot = loop {
        if let Some(slot) = cancelled() {
            break slot;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(30), "no run was cancelled");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    drop(serve);
    let why = "cancelled: ran past the schedule's timeout (1s)";
    let reason = slot["reason"].as_str().unwrap_or_default();
    assert!(reason.ends_with(why), "{slot}");
    let shown = taskflow(&db, &["schedules", "show", "to"]);
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(table.contains(why), "{table}");
}

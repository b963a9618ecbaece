//! Schedules as the store keeps them (DESIGN §9): what a schedule is (its timing as the user
//! wrote it, its zone, the gates on other schedules, its overlap and catch-up policies, the
//! pipeline each slot runs), where its scheduler stands (the first slot not decided yet), and
//! what became of each slot. The store records and checks; what a cron expression means and
//! which slots fire is the scheduler's (in the engine), which hands its decisions to the store
//! to be written atomically.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::id::FlowId;
use crate::status::FlowStatus;
use crate::time::Timestamp;

/// The longest schedule name: its slots' flow ids (`NAME@2026-12-05T07:00:00Z`) stay within
/// the 128 characters of an id.
pub const MAX_SCHEDULE_NAME: usize = 100;

/// Checks a schedule name: 1 to 100 letters, digits, `.`, `_` or `-` (so that `NAME@SLOT`
/// is a flow id and tells the name from the slot).
pub fn check_name(name: &str) -> Result<()> {
    let bad = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')));
    if name.is_empty() || name.len() > MAX_SCHEDULE_NAME || bad.is_some() {
        let why = match bad {
            Some(c) => format!("{c:?} is not allowed"),
            None if name.is_empty() => "it is empty".to_owned(),
            None => format!("it is {} characters long", name.len()),
        };
        return Err(Error::InvalidInput(format!(
            "`{}` is not a schedule name: {why} (1 to {MAX_SCHEDULE_NAME} letters, digits, \
             `.`, `_` or `-`)",
            name.escape_debug()
        )));
    }
    Ok(())
}

/// What follows the `@` of a slot's flow id, as SQL `LIKE` patterns (`_`: any one character):
/// its instant in RFC 3339 UTC, to the second or (a slot off the second) to the millisecond.
pub const SLOT_INSTANT_PATTERNS: [&str; 2] = ["____-__-__T__:__:__Z", "____-__-__T__:__:__.___Z"];

/// The range of ids in which the flows of schedule `name`'s slots lie: `[NAME@0, NAME@:)`, `NAME@`
/// and a digit, as an instant begins (`:` is the character after `9`); a name that is no
/// schedule's has none (an empty range). Listing a schedule's flows takes the ids of this range
/// that end with `@` and one of the [`SLOT_INSTANT_PATTERNS`], and [`is_slot_flow_id`] is that
/// same test, so that no flow a schedule's list takes is made but by its slot.
pub fn slot_id_range(name: &str) -> (String, String) {
    let first = format!("{name}@0");
    let past = if check_name(name).is_ok() { format!("{name}@:") } else { first.clone() };
    (first, past)
}

/// Whether `id` has the form of a slot's flow id ([`slot_flow_id`]): it lies in the
/// [`slot_id_range`] of the schedule name before its first `@`, and ends with `@` and an
/// instant ([`SLOT_INSTANT_PATTERNS`], letters of any case, as SQLite's `LIKE` takes them).
/// Those ids are the scheduler's: a flow made under one by anyone else would keep its slot from
/// firing (a slot's instants are known ahead), or be listed among the schedule's flows.
pub fn is_slot_flow_id(id: &str) -> bool {
    let Some((name, _)) = id.split_once('@') else { return false };
    let (first, past) = slot_id_range(name);
    let ends_with_an_instant = |pattern: &str| {
        let Some(start) = id.len().checked_sub(pattern.len() + 1) else { return false };
        let tail = &id.as_bytes()[start..];
        tail[0] == b'@'
            && tail[1..]
                .iter()
                .zip(pattern.bytes())
                .all(|(byte, want)| want == b'_' || byte.eq_ignore_ascii_case(&want))
    };
    first.as_str() <= id
        && id < past.as_str()
        && SLOT_INSTANT_PATTERNS.iter().any(|pattern| ends_with_an_instant(pattern))
}

/// The id of the flow of slot `slot` of schedule `name`: `NAME@SLOT`, the slot's instant in
/// RFC 3339 UTC to the second.
pub fn slot_flow_id(name: &str, slot: Timestamp) -> Result<FlowId> {
    let text = slot.to_string();
    // `2026-12-05T07:00:00.000Z`: slots are whole seconds, shown without the milliseconds.
    let instant = match text.strip_suffix(".000Z") {
        Some(seconds) => format!("{seconds}Z"),
        None => text,
    };
    FlowId::parse(&format!("{name}@{instant}"))
        .map_err(|error| Error::InvalidInput(error.to_string()))
}

macro_rules! named {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
        #[serde(rename_all = "kebab-case")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            pub const ALL: &[$name] = &[$($name::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(text: &str) -> Result<Self> {
                $name::ALL.iter().copied().find(|value| value.as_str() == text).ok_or_else(|| {
                    let names: Vec<&str> = $name::ALL.iter().map(|value| value.as_str()).collect();
                    Error::InvalidInput(format!("`{text}` is not one of {}", names.join(", ")))
                })
            }
        }
    };
}

named! {
    /// What happens to a slot that comes due while the schedule's previous run is still going
    /// (Temporal's names).
    Overlap {
        /// The slot is skipped, and recorded as such.
        #[default]
        Skip = "skip",
        /// The slot waits for the run to end; one waits at most, later ones are skipped.
        BufferOne = "buffer-one",
        /// Every such slot waits its turn, in order.
        BufferAll = "buffer-all",
        /// The running run is cancelled; the slot runs once it has ended.
        CancelOther = "cancel-other",
        /// The slot runs beside it.
        Allow = "allow",
    }
}

named! {
    /// Which slots run that came due while no scheduler was running (serve down, the machine
    /// asleep): the others are recorded `missed`.
    CatchUp {
        /// None of them.
        None = "none",
        /// The latest of them.
        #[default]
        Latest = "latest",
        /// The latest `max_catch_up` of them.
        All = "all",
    }
}

named! {
    /// What a gated slot does once its gate cannot open any more: the window passed, or a
    /// schedule it waits for failed or did not run that slot.
    Otherwise {
        /// It is skipped, with the reason.
        #[default]
        Skip = "skip",
        /// It runs anyway, and the record says why.
        Run = "run",
        /// It is a failed slot, with the reason.
        Fail = "fail",
    }
}

/// When a schedule's slots come: a cron expression (in `zone`) or a fixed interval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timing {
    /// 5 fields, or 6 with seconds first; names (`MON`, `JAN`) and `@daily`-style nicknames.
    Cron(String),
    /// Every this many milliseconds, counted from the Unix epoch (so `2s` falls on even
    /// seconds).
    EveryMs(u64),
}

/// What a schedule is, as its owner declared it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    pub timing: Timing,
    /// The IANA zone the cron expression is read in (`Europe/Paris`); `UTC` by default.
    pub zone: String,
    /// Schedules whose slot at or before each slot must have succeeded first (all of them).
    #[serde(default)]
    pub after: Vec<String>,
    /// How long a slot waits for its gate, from its instant (milliseconds).
    #[serde(default)]
    pub within_ms: Option<u64>,
    #[serde(default)]
    pub otherwise: Otherwise,
    #[serde(default)]
    pub overlap: Overlap,
    #[serde(default)]
    pub catch_up: CatchUp,
    /// Slots older than this when the scheduler finds them are missed (milliseconds).
    pub catch_up_window_ms: u64,
    /// How many late slots run at most (`catch_up` latest: at most 1).
    pub max_catch_up: u32,
    /// Each slot fires up to this much after its instant, the same for a slot every time
    /// (milliseconds).
    #[serde(default)]
    pub jitter_ms: u64,
    /// A run still going this long after its slot fired is cancelled (milliseconds).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A schedule as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub name: String,
    pub owner: String,
    /// Bumped by every accepted change of the schedule (its spec, its pipeline, paused).
    pub revision: u64,
    pub spec: ScheduleSpec,
    /// The flow spec each slot runs (a pipeline, as JSON).
    pub pipeline: Value,
    pub paused: bool,
    /// The scheduler's cursor: the first slot not decided yet (`None`: the timing has no
    /// further slot).
    pub next_slot: Option<Timestamp>,
    /// When that slot fires: its instant plus its jitter.
    pub next_fire: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a schedule is to become: added, or applied (created or brought up to date).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSchedule {
    pub name: String,
    pub spec: ScheduleSpec,
    pub pipeline: Value,
    pub paused: bool,
    /// Where its scheduler starts: the first slot after now.
    pub next_slot: Option<Timestamp>,
    pub next_fire: Option<Timestamp>,
}

/// What adding or applying a schedule did.
#[derive(Debug, Clone, PartialEq)]
pub struct Put {
    pub schedule: Schedule,
    pub created: bool,
    /// A change was recorded (always, for a new schedule).
    pub changed: bool,
}

named! {
    /// What became of a slot.
    SlotStatus {
        /// Its flow was created; the flow has not ended.
        #[default]
        Running = "running",
        /// Its flow was created and has ended (the flow's status says how).
        Ended = "ended",
        /// Not run: an overlap or a gate's `otherwise skip` (the reason says which).
        Skipped = "skipped",
        /// Not run: it came due while no scheduler ran, beyond the catch-up policy, or while
        /// the schedule was paused.
        Missed = "missed",
        /// Waits for the schedules it runs after.
        Gated = "gated",
        /// Waits for the schedule's previous run to end (overlap `buffer-*`, `cancel-other`).
        Buffered = "buffered",
        /// A gate's `otherwise fail`: a failed slot, with no flow.
        Failed = "failed",
    }
}

impl SlotStatus {
    /// A slot that is not decided for good yet: its flow runs, or it waits.
    pub fn is_open(self) -> bool {
        matches!(self, SlotStatus::Running | SlotStatus::Gated | SlotStatus::Buffered)
    }
}

/// A slot as one decision left it: a slot that fires again finds the flow an earlier decision
/// made, and keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct Decided {
    pub slot: Slot,
    /// Whether this decision made the slot's flow.
    pub made_flow: bool,
}

/// One slot of a schedule, or a range of missed slots.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub schedule: String,
    /// The slot's instant.
    pub at: Timestamp,
    pub status: SlotStatus,
    /// The flow of a slot that fired: `NAME@SLOT`.
    pub flow_id: Option<FlowId>,
    /// That flow's status, read with the slot.
    pub flow_status: Option<FlowStatus>,
    /// Why it did not run, why it waits, or why it ran despite its gate.
    pub reason: Option<String>,
    /// A range of missed slots: its last instant and how many it holds.
    pub last_at: Option<Timestamp>,
    pub count: u64,
    /// When this record was last written.
    pub decided_at: Timestamp,
}

/// A decision about one slot, as the scheduler hands it to the store.
#[derive(Debug, Clone, PartialEq)]
pub enum SlotDecision {
    /// Its flow is created (the only way a slot fires); `reason` when it runs despite its gate.
    Fire { at: Timestamp, reason: Option<String> },
    /// Recorded `skipped`, `missed`, `gated`, `buffered` or `failed` with the reason; a missed
    /// range covers `count` slots from `at` to `last_at`.
    Record {
        at: Timestamp,
        status: SlotStatus,
        reason: String,
        last_at: Option<Timestamp>,
        count: u64,
    },
}

impl SlotDecision {
    pub fn at(&self) -> Timestamp {
        match self {
            SlotDecision::Fire { at, .. } | SlotDecision::Record { at, .. } => *at,
        }
    }
}

/// A schedule's slots as its timing gives them: the engine's clock, which the store does not
/// hold. The store asks it when a slot is decided inside a recorded range of missed slots, to
/// keep the others of the range recorded (a closure of the same signature is one).
pub trait SlotTimes {
    /// The slots of a schedule of `spec` from `from` to `to` (both included), oldest first, at
    /// most `limit`; and whether there were more.
    fn between(
        &self,
        spec: &ScheduleSpec,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<(Vec<Timestamp>, bool)>;
}

impl<F> SlotTimes for F
where
    F: Fn(&ScheduleSpec, Timestamp, Timestamp, usize) -> Result<(Vec<Timestamp>, bool)>,
{
    fn between(
        &self,
        spec: &ScheduleSpec,
        from: Timestamp,
        to: Timestamp,
        limit: usize,
    ) -> Result<(Vec<Timestamp>, bool)> {
        self(spec, from, to, limit)
    }
}

/// A schedule with its latest slot, as `schedules list` shows it (the schedule without its
/// pipeline, which is `null`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleSummary {
    pub schedule: Schedule,
    pub last_slot: Option<Slot>,
}

/// Where one schedule stands for a slot gated on it at instant `at`: whether it has decided
/// every slot up to `at`, and its latest slot at or before `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct GateState {
    pub schedule: String,
    /// The schedule exists (for the gated schedule's owner).
    pub exists: bool,
    /// It has decided all its slots up to `at` (its cursor is past `at`).
    pub decided: bool,
    pub paused: bool,
    pub latest: Option<Slot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_make_flow_ids_of_their_slots() {
        fn check(name: &str, ok: bool) {
            assert_eq!(check_name(name).is_ok(), ok, "{name:?}");
        }
        check("daily-digest", true);
        check("etl.nightly_2", true);
        check(&"x".repeat(100), true);
        check(&"x".repeat(101), false);
        check("", false);
        check("with space", false);
        check("a@b", false);
        check("a:b", false);
        let id = slot_flow_id(&"x".repeat(100), Timestamp::from_millis(1_764_918_000_000)).unwrap();
        assert_eq!(id.as_str(), format!("{}@2025-12-05T07:00:00Z", "x".repeat(100)));
        let odd = slot_flow_id("a", Timestamp::from_millis(1_500)).unwrap();
        assert_eq!(odd.as_str(), "a@1970-01-01T00:00:01.500Z");
    }

    #[test]
    fn only_ids_of_a_slots_form_are_the_schedulers() {
        let slot = slot_flow_id("digest", Timestamp::from_millis(1_764_918_000_000)).unwrap();
        let odd = slot_flow_id("digest", Timestamp::from_millis(1_764_918_000_250)).unwrap();
        for (id, reserved) in [
            (slot.as_str(), true),
            (odd.as_str(), true),
            ("night.ly-2@2026-01-31T23:59:59Z", true),
            ("digest@2026-01-31T23:59:59.000Z", true),
            ("digest@2026-01-31t23:59:59.000z", true),
            ("a@b@2026-01-31T23:59:59Z", false),
            ("a@1@2026-01-31T23:59:59Z", true),
            ("digest@2026-01-31", false),
            ("digest@2026-01-31T23:59:59", false),
            ("digest@2026-01-31T23:59:59.00Z", false),
            ("digest 2026-01-31T23:59:59Z", false),
            ("@2026-01-31T23:59:59Z", false),
            ("alice@example.com", false),
        ] {
            assert_eq!(is_slot_flow_id(id), reserved, "{id}");
        }
    }

    #[test]
    fn a_schedules_flows_are_the_ids_of_its_range_and_a_name_that_is_no_schedules_has_none() {
        assert_eq!(slot_id_range("digest"), ("digest@0".to_owned(), "digest@:".to_owned()));
        let (first, past) = slot_id_range("a@b");
        assert_eq!(first, past, "an empty range");
    }

    #[test]
    fn policies_travel_by_their_names() {
        for overlap in Overlap::ALL {
            assert_eq!(overlap.as_str().parse::<Overlap>().unwrap(), *overlap);
        }
        assert_eq!("buffer-one".parse::<Overlap>().unwrap(), Overlap::BufferOne);
        let error = "sometimes".parse::<CatchUp>().unwrap_err().to_string();
        assert!(error.contains("none, latest, all"), "{error}");
        assert_eq!(serde_json::to_string(&Overlap::CancelOther).unwrap(), "\"cancel-other\"");
    }
}

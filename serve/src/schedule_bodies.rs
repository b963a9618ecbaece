//! The shapes of the schedule routes' answers, described to the OpenAPI document: the api
//! crate's schedule documents (the same as `taskflow schedules … --json`).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /v1/schedules`: the caller's schedules by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleListDoc {
    pub schedules: Vec<ScheduleRowDoc>,
}

/// One schedule of the list, with its latest slot.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleRowDoc {
    pub name: String,
    /// A cron expression, or `every 2s`.
    pub timing: String,
    pub zone: String,
    /// The schedules whose slots it waits for.
    pub after: Vec<String>,
    pub paused: bool,
    pub revision: u64,
    pub next_slot: Option<String>,
    pub next_fire: Option<String>,
    pub last_slot: Option<SlotDoc>,
}

/// One slot, or a range of missed slots.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotDoc {
    pub at: String,
    /// `fired`, `skipped`, `missed`, `gated`, `buffered` or `failed`.
    pub status: String,
    /// The flow of a slot that fired: `NAME@SLOT`.
    pub flow_id: Option<String>,
    pub flow_status: Option<String>,
    /// Why it did not run, why it waits, or why it ran despite its gate.
    pub reason: Option<String>,
    pub last_at: Option<String>,
    pub count: u64,
    pub decided_at: String,
}

/// A schedule: what it is, and where its scheduler stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleDoc {
    pub name: String,
    pub owner: String,
    pub revision: u64,
    pub timing: String,
    /// Its options, durations as text (`2h`).
    #[schema(value_type = Object)]
    pub spec: Value,
    pub paused: bool,
    pub next_slot: Option<String>,
    pub next_fire: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /v1/schedules/{name}`: a schedule and its slots, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleShowDoc {
    pub schedule: ScheduleDoc,
    pub slots: Vec<SlotDoc>,
}

/// `{"schedule"}`: a schedule as a pause or a resume left it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleEnvelope {
    pub schedule: ScheduleDoc,
}

/// `{"slot"}`: the slot a trigger fired.
#[derive(Debug, Serialize, ToSchema)]
pub struct SlotEnvelope {
    pub slot: SlotDoc,
}

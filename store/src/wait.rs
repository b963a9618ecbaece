//! What a waiting managed flow waits for: the `wait` document its runner's waiting steps make
//! when the flow becomes `waiting`, the instant it is due again, and the reading of that
//! document back (by a signal that may wake the flow, by the runner that resumes it). One
//! definition, so the store, the engine and every front end agree on its keys:
//!
//! ```json
//! {"until": "2026-12-05T07:00:00.000Z", "signals": ["approve"],
//!  "steps": [{"seq": 2, "step": "pause", "until": "2026-12-05T07:00:00.000Z", "signal": null},
//!            {"seq": 3, "step": "approval", "until": null, "signal": "approve"}]}
//! ```
//!
//! `until` is the earliest timer of the steps (`null` when they wait for signals only) and
//! `signals` the names they wait for.

use serde_json::{Value, json};

use crate::model::WaitingStep;
use crate::time::Timestamp;

/// The `wait` document of a flow whose running steps are `steps`.
pub fn document(steps: &[WaitingStep]) -> Value {
    let mut signals: Vec<&str> = steps.iter().filter_map(|step| step.signal.as_deref()).collect();
    signals.sort_unstable();
    signals.dedup();
    json!({
        "until": earliest(steps),
        "signals": signals,
        "steps": steps
            .iter()
            .map(|step| json!({
                "seq": step.seq,
                "step": step.step,
                "until": step.until,
                "signal": step.signal,
            }))
            .collect::<Vec<_>>(),
    })
}

/// The earliest instant one of `steps` can end at by itself.
pub fn earliest(steps: &[WaitingStep]) -> Option<Timestamp> {
    steps.iter().filter_map(|step| step.until).min()
}

/// The seqs of the steps a `wait` document lists: the steps that were waiting, not
/// interrupted, when their runner gave the flow up.
pub fn waiting_seqs(wait: Option<&Value>) -> Vec<u32> {
    let steps = wait.and_then(|wait| wait.get("steps")).and_then(Value::as_array);
    steps
        .into_iter()
        .flatten()
        .filter_map(|step| step.get("seq").and_then(Value::as_u64))
        .filter_map(|seq| u32::try_from(seq).ok())
        .collect()
}

/// Whether something could wake a flow waiting on this `wait` document: a timer, a signal, or
/// an approval.
pub fn can_wake(wait: Option<&Value>) -> bool {
    let Some(wait) = wait.and_then(Value::as_object) else { return false };
    let named = |key: &str| match wait.get(key) {
        None | Some(Value::Null) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(_) => true,
    };
    ["until", "signals", "signal", "approval"].into_iter().any(named)
}

/// Whether a `wait` document waits for a signal called `name`.
pub fn waits_for_signal(wait: Option<&Value>, name: &str) -> bool {
    let signals = wait.and_then(|wait| wait.get("signals")).and_then(Value::as_array);
    signals.into_iter().flatten().any(|signal| signal.as_str() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(seq: u32, until: Option<i64>, signal: Option<&str>) -> WaitingStep {
        WaitingStep {
            seq,
            step: format!("s{seq}"),
            until: until.map(Timestamp::from_millis),
            signal: signal.map(str::to_owned),
        }
    }

    #[test]
    fn a_wait_can_wake_when_it_names_a_timer_a_signal_or_an_approval() {
        assert!(can_wake(Some(&document(&[step(2, Some(5_000), None)]))));
        assert!(can_wake(Some(&document(&[step(2, None, Some("go"))]))));
        assert!(can_wake(Some(&json!({"approval": {"call_id": "c1"}}))));
        assert!(!can_wake(Some(&document(&[]))));
        assert!(!can_wake(Some(&json!({"until": null, "signals": []}))));
        assert!(!can_wake(Some(&json!("later"))));
        assert!(!can_wake(None));
    }

    #[test]
    fn the_document_names_the_earliest_timer_and_each_signal_once() {
        let steps = [
            step(2, Some(5_000), None),
            step(3, Some(2_000), Some("approve")),
            step(4, None, Some("approve")),
            step(5, None, Some("audit")),
        ];
        let wait = document(&steps);
        assert_eq!(wait["until"], "1970-01-01T00:00:02.000Z");
        assert_eq!(wait["signals"], json!(["approve", "audit"]));
        assert_eq!(
            wait["steps"][0],
            json!({"seq": 2, "step": "s2",
            "until": "1970-01-01T00:00:05.000Z", "signal": null})
        );
        assert_eq!(waiting_seqs(Some(&wait)), [2, 3, 4, 5]);
        assert!(waits_for_signal(Some(&wait), "audit"));
        assert!(!waits_for_signal(Some(&wait), "other"));
    }

    #[test]
    fn signals_only_have_no_until_and_no_document_waits_for_nothing() {
        let wait = document(&[step(1, None, Some("go"))]);
        assert_eq!(wait["until"], Value::Null);
        assert_eq!(earliest(&[step(1, None, Some("go"))]), None);
        assert_eq!(waiting_seqs(None), Vec::<u32>::new());
        assert!(!waits_for_signal(None, "go"));
        assert!(!waits_for_signal(Some(&json!({"until": "approval"})), "approval"));
    }
}

//! When a schedule's slots come: a cron expression read in an IANA zone, or a fixed interval.
//!
//! Cron expressions (5 fields, or 6 with seconds first; names such as `MON` and `JAN`;
//! `@daily`, `@hourly`, `@weekly`, `@monthly`, `@yearly`) are read by croner, over wall-clock
//! times of the zone (chrono-tz's copy of the IANA database). Each wall time the expression
//! matches is one slot, at the instant that wall time is in the zone, with two rules for the
//! days the clocks change:
//!
//! - a wall time that occurs twice (the clocks go back) is one slot, at its first occurrence;
//! - a wall time that does not occur (the clocks go forward) is a slot at the first instant after
//!   the gap, and several such wall times are that one slot.
//!
//! An interval (`every = "2s"`) counts from the Unix epoch, so its slots fall on multiples of it
//! whatever the zone.

use chrono::{DateTime, LocalResult, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use taskflow_store::Timing;
use taskflow_store::time::Timestamp;

/// The slots of one schedule.
#[derive(Debug, Clone)]
pub struct SlotClock {
    kind: Kind,
    zone: Tz,
}

#[derive(Debug, Clone)]
enum Kind {
    Cron(Box<Cron>),
    Every(i64),
}

/// The longest `every` interval: ten years of days. Its slots' instants stay within the years
/// RFC 3339 writes (four digits), which the slots' flow ids use.
const LONGEST_INTERVAL_DAYS: u64 = 3660;

/// Why a timing cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClockError {
    #[error(
        "`{expression}` is not a cron expression: {reason} (5 fields, or 6 with seconds \
             first; names such as MON and JAN; @daily, @hourly)"
    )]
    Cron { expression: String, reason: String },
    #[error("`{0}` is not an IANA time zone (such as Europe/Paris, America/New_York or UTC)")]
    Zone(String),
    #[error(
        "an interval must be a whole number of seconds, from 1s to {}d (a cron expression \
         names longer calendars)",
        LONGEST_INTERVAL_DAYS
    )]
    Interval,
}

impl SlotClock {
    pub fn new(timing: &Timing, zone: &str) -> Result<SlotClock, ClockError> {
        let zone: Tz = zone.parse().map_err(|_| ClockError::Zone(zone.to_owned()))?;
        let kind = match timing {
            Timing::Cron(expression) => Kind::Cron(Box::new(parse_cron(expression)?)),
            Timing::EveryMs(ms) => {
                if *ms < 1000 || ms % 1000 != 0 || *ms > LONGEST_INTERVAL_DAYS * 86_400_000 {
                    return Err(ClockError::Interval);
                }
                Kind::Every(i64::try_from(*ms).map_err(|_| ClockError::Interval)?)
            }
        };
        Ok(SlotClock { kind, zone })
    }

    /// The first slot strictly after `after`; `None` when there is none (a cron expression
    /// that matches no date to come).
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match &self.kind {
            Kind::Every(period) => {
                let next =
                    after.as_millis().div_euclid(*period).checked_add(1)?.checked_mul(*period)?;
                Some(Timestamp::from_millis(next))
            }
            Kind::Cron(cron) => {
                let mut wall = self.wall_time(after)?;
                // Wall times already passed (the second pass of a duplicated hour) map to
                // instants at or before `after`: look on from each until one is later.
                loop {
                    let candidate = cron.find_next_occurrence(&wall, false).ok()?;
                    let instant = self.instant(candidate)?;
                    if instant > after {
                        return Some(instant);
                    }
                    wall = candidate;
                }
            }
        }
    }

    /// The first slot at or after `at`.
    pub fn first_from(&self, at: Timestamp) -> Option<Timestamp> {
        self.next_after(Timestamp::from_millis(at.as_millis() - 1))
    }

    /// The slots from `from` to `to` (both included), oldest first, at most `limit`: and
    /// whether there were more.
    pub fn between(&self, from: Timestamp, to: Timestamp, limit: usize) -> (Vec<Timestamp>, bool) {
        let mut slots = Vec::new();
        let mut next = self.first_from(from);
        while let Some(slot) = next.filter(|slot| *slot <= to) {
            if slots.len() == limit {
                return (slots, true);
            }
            slots.push(slot);
            next = self.next_after(slot);
        }
        (slots, false)
    }

    /// The wall-clock time of `at` in the zone, to the second (slots are whole seconds).
    fn wall_time(&self, at: Timestamp) -> Option<NaiveDateTime> {
        let utc = DateTime::<Utc>::from_timestamp_millis(at.as_millis())?;
        Some(utc.with_timezone(&self.zone).naive_local())
    }

    /// The instant of wall time `wall` in the zone: its first occurrence when it occurs twice,
    /// the first instant after the gap when it does not occur.
    fn instant(&self, wall: NaiveDateTime) -> Option<Timestamp> {
        let at = match self.zone.from_local_datetime(&wall) {
            LocalResult::Single(at) => at,
            LocalResult::Ambiguous(first, _) => first,
            LocalResult::None => return self.after_gap(wall),
        };
        Some(Timestamp::from_millis(at.timestamp_millis()))
    }

    /// The first instant whose wall time is later than `wall`, which falls in a gap: found by
    /// bisection over the seconds around it (offsets are within a day of UTC, and the clocks
    /// change on whole seconds).
    fn after_gap(&self, wall: NaiveDateTime) -> Option<Timestamp> {
        let as_utc = wall.and_utc().timestamp();
        let (mut low, mut high) = (as_utc - 30 * 3600, as_utc + 30 * 3600);
        let later = |second: i64| {
            DateTime::<Utc>::from_timestamp(second, 0)
                .is_some_and(|utc| utc.with_timezone(&self.zone).naive_local() > wall)
        };
        if later(low) || !later(high) {
            return None;
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if later(middle) {
                high = middle;
            } else {
                low = middle;
            }
        }
        Some(Timestamp::from_millis(high * 1000))
    }
}

/// A cron expression as croner reads it: seconds optional (6 fields), no year field.
fn parse_cron(expression: &str) -> Result<Cron, ClockError> {
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
    parser.parse(expression).map_err(|error| ClockError::Cron {
        expression: expression.to_owned(),
        reason: error.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(text: &str) -> Timestamp {
        let at = DateTime::parse_from_rfc3339(text).unwrap();
        Timestamp::from_millis(at.timestamp_millis())
    }

    fn text(at: Timestamp) -> String {
        at.to_string().replace(".000Z", "Z")
    }

    /// The slots of `timing` in `zone` after `after`, as many as `expected` lists.
    fn check(timing: Timing, zone: &str, after: &str, expected: &[&str]) {
        let clock = SlotClock::new(&timing, zone).unwrap();
        let mut at = instant(after);
        let mut slots = Vec::new();
        for _ in expected {
            at = clock.next_after(at).unwrap();
            slots.push(text(at));
        }
        assert_eq!(slots, expected, "{timing:?} in {zone} after {after}");
    }

    fn cron(expression: &str) -> Timing {
        Timing::Cron(expression.to_owned())
    }

    #[test]
    fn five_and_six_fields_names_and_nicknames() {
        check(
            cron("0 7 * * *"),
            "UTC",
            "2026-12-05T06:59:59Z",
            &["2026-12-05T07:00:00Z", "2026-12-06T07:00:00Z"],
        );
        check(
            cron("*/20 * * * * *"),
            "UTC",
            "2026-12-05T07:00:00Z",
            &["2026-12-05T07:00:20Z", "2026-12-05T07:00:40Z", "2026-12-05T07:01:00Z"],
        );
        // 2026-12-05 is a Saturday.
        check(
            cron("30 8 * * MON-FRI"),
            "UTC",
            "2026-12-05T00:00:00Z",
            &["2026-12-07T08:30:00Z", "2026-12-08T08:30:00Z"],
        );
        check(cron("0 0 1 JAN *"), "UTC", "2026-12-05T00:00:00Z", &["2027-01-01T00:00:00Z"]);
        check(cron("@daily"), "UTC", "2026-12-05T12:00:00Z", &["2026-12-06T00:00:00Z"]);
        check(
            cron("@hourly"),
            "UTC",
            "2026-12-05T12:00:00Z",
            &["2026-12-05T13:00:00Z", "2026-12-05T14:00:00Z"],
        );
        // A zone moves every slot: 07:00 in Paris is 06:00 UTC in winter.
        check(cron("0 7 * * *"), "Europe/Paris", "2026-12-05T00:00:00Z", &["2026-12-05T06:00:00Z"]);
    }

    #[test]
    fn a_wall_time_skipped_by_a_spring_forward_fires_at_the_first_instant_after_the_gap() {
        // Paris, 2026-03-29: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        check(
            cron("30 2 * * *"),
            "Europe/Paris",
            "2026-03-27T12:00:00Z",
            &["2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
        );
        // Every wall time of the gap is that one slot, and 03:00 itself is not a second one.
        check(
            cron("*/20 * * * *"),
            "Europe/Paris",
            "2026-03-29T00:30:00Z",
            &["2026-03-29T00:40:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z"],
        );
        // New York, 2026-03-08: 02:00 EST becomes 03:00 EDT (07:00 UTC).
        check(
            cron("15 2 * * *"),
            "America/New_York",
            "2026-03-07T12:00:00Z",
            &["2026-03-08T07:00:00Z", "2026-03-09T06:15:00Z"],
        );
    }

    #[test]
    fn a_wall_time_that_occurs_twice_fires_once_at_its_first_occurrence() {
        // Paris, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 happens at 00:30 and 01:30 UTC.
        check(
            cron("30 2 * * *"),
            "Europe/Paris",
            "2026-10-24T12:00:00Z",
            &["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"],
        );
        // Every half hour: the repeated 02:00 and 02:30 do not fire again.
        check(
            cron("*/30 * * * *"),
            "Europe/Paris",
            "2026-10-24T23:45:00Z",
            &["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"],
        );
        // New York, 2026-11-01: 02:00 EDT becomes 01:00 EST; 01:30 is at 05:30 and 06:30 UTC.
        check(
            cron("30 1 * * *"),
            "America/New_York",
            "2026-10-31T12:00:00Z",
            &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        );
        // Looking on from inside the second pass finds what comes after it.
        check(
            cron("30 1 * * *"),
            "America/New_York",
            "2026-11-01T06:00:00Z",
            &["2026-11-02T06:30:00Z"],
        );
    }

    #[test]
    fn an_interval_counts_from_the_epoch_in_any_zone() {
        let every = |ms| Timing::EveryMs(ms);
        check(
            every(2000),
            "Europe/Paris",
            "2026-12-05T07:00:00.500Z",
            &["2026-12-05T07:00:02Z", "2026-12-05T07:00:04Z"],
        );
        check(every(3_600_000), "UTC", "2026-12-05T07:00:00Z", &["2026-12-05T08:00:00Z"]);
        let clock = SlotClock::new(&every(60_000), "UTC").unwrap();
        let (slots, more) =
            clock.between(instant("2026-12-05T07:00:00Z"), instant("2026-12-05T07:03:00Z"), 10);
        assert_eq!((slots.len(), more), (4, false));
        let (slots, more) =
            clock.between(instant("2026-12-05T07:00:00Z"), instant("2026-12-05T07:03:00Z"), 2);
        assert_eq!((slots.len(), more), (2, true));
    }

    #[test]
    fn bad_timings_say_what_is_wrong() {
        fn refused(timing: Timing, zone: &str, fragment: &str) {
            let error = SlotClock::new(&timing, zone).unwrap_err().to_string();
            assert!(error.contains(fragment), "{timing:?} {zone}: {error}");
        }
        refused(cron("61 * * * *"), "UTC", "`61 * * * *` is not a cron expression");
        refused(cron("0 7 * *"), "UTC", "is not a cron expression");
        refused(cron("0 0 7 * * * 2027"), "UTC", "is not a cron expression");
        refused(cron("0 7 * * *"), "Europe/Pariss", "`Europe/Pariss` is not an IANA time zone");
        refused(Timing::EveryMs(1500), "UTC", "whole number of seconds");
        refused(Timing::EveryMs(0), "UTC", "from 1s");
        refused(Timing::EveryMs(3661 * 86_400_000), "UTC", "to 3660d");
    }
}

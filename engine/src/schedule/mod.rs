//! The scheduler (DESIGN §9). Its core is pure: when a schedule's slots come ([`clock`]), when
//! each fires ([`jitter`]), which of them run ([`policy`]: catch-up, gates, overlap), and what a
//! schedule is as its owner writes it, on the command line or in a pipeline's `[schedule]`
//! table ([`declare`], [`table`]). [`scheduler`] makes passes over the store with it, deciding
//! every owner's due and waiting slots; `taskflow serve` runs it and the flows it fires.

pub mod clock;
pub mod declare;
pub mod jitter;
pub mod policy;
pub mod scheduler;
pub mod table;

pub use clock::{ClockError, SlotClock};
pub use declare::{ScheduleError, ScheduleInput};
pub use scheduler::{Outcome, Scheduler};

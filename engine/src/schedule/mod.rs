//! The scheduler's core (DESIGN §9), pure and without a store: when a schedule's slots come
//! ([`clock`]), and what a schedule is as its owner writes it, on the command line or in a
//! pipeline's `[schedule]` table ([`declare`], [`table`]), and when each slot fires
//! ([`jitter`]).

pub mod clock;
pub mod declare;
pub mod jitter;
pub mod table;

pub use clock::{ClockError, SlotClock};
pub use declare::{ScheduleError, ScheduleInput};

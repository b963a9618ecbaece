//! How hard a commit works to survive a power cut: a choice the user makes for every backend,
//! each mapping it to its own settings.

use std::str::FromStr;

use crate::error::{Error, Result};

/// How hard a commit works to survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A committed checkpoint survives a power cut (SQLite's `synchronous=FULL`).
    #[default]
    Full,
    /// A commit survives a crash of the process, and may be lost on a power cut; faster
    /// (SQLite's `synchronous=NORMAL`).
    Normal,
}

impl FromStr for Durability {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            other => {
                Err(Error::InvalidInput(format!("unknown durability `{other}` (full or normal)")))
            }
        }
    }
}

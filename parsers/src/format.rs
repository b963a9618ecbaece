//! The tagged-text formats this crate reads, by name.

use std::fmt;
use std::str::FromStr;

/// A tagged tool-call format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Kimi K2 / Kimi Coding: `<|tool_calls_section_begin|>` … `<|tool_call_end|>`.
    Kimi,
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Kimi];

    pub fn name(self) -> &'static str {
        match self {
            Format::Kimi => "kimi",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownFormat(pub String);

impl fmt::Display for UnknownFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<_> = Format::ALL.iter().map(|format| format.name()).collect();
        write!(f, "unknown format `{}` (known: {})", self.0, known.join(", "))
    }
}

impl std::error::Error for UnknownFormat {}

impl FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|format| format.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

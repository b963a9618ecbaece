//! One module per command of the CLI contract (DESIGN §6).

pub mod parse;

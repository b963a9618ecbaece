//! One module per command of the CLI contract (DESIGN §6).

pub mod agent;
pub mod chat;
pub mod completions;
pub mod doctor;
pub mod flows;
pub mod man;
pub mod mcp;
pub mod mcp_list;
pub mod mcp_serve;
pub mod parse;
pub mod proxy;
pub mod run;
pub mod schedules;
pub mod serve;
pub mod worker;

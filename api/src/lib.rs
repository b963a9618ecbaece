//! `taskflow-api`: what every front end of taskflow shares, so the CLI, `serve`, a scheduler and
//! an MCP server answer the same way: the JSON documents of flows, steps and history
//! ([`documents`]), whose flows a request sees ([`owner`]), the checks a front end makes before
//! it hands a flow to a run ([`control`]) or decides an approval ([`approvals`]), where the
//! flow database is and how it is opened ([`database`]), create-or-continue under an id of one's choosing ([`submit`]),
//! the config file ([`config`]), which provider a run talks to ([`providers`]), and schedules
//! as front ends change them ([`schedules`]) and show them ([`schedule_documents`]).
//!
//! Errors are one type, [`ApiError`], that each front end turns into its own answer.

pub mod approvals;
pub mod config;
pub mod control;
pub mod database;
pub mod documents;
pub mod error;
pub mod graph;
pub mod owner;
pub mod providers;
pub mod schedule_documents;
pub mod schedules;
pub mod submit;
pub mod tokens;

pub use config::Config;
pub use error::{ApiError, ErrorCode, Result};
pub use owner::resolve_owner;
pub use providers::{ProviderSettings, override_model_steps, prepare_model_steps};
pub use submit::{
    Hold, Submitted, create_or_continue, create_or_find_mirrored, step_reaching_host,
};
pub use taskflow_store::Durability;
pub use tokens::ServeToken;

//! `taskflow`: durable LLM agent runs and pipelines.
//!
//! This facade re-exports the workspace's library crates under one name, so a program can
//! depend on `taskflow` alone. It also hosts the end-to-end tests of the `taskflow` binary
//! (`tests/`).

pub use taskflow_engine as engine;
pub use taskflow_parsers as parsers;
pub use taskflow_providers as providers;
pub use taskflow_store as store;
pub use taskflow_store_sqlite as store_sqlite;

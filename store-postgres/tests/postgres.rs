//! The PostgreSQL backend: the conformance kit of `taskflow-store` on a real server (each test
//! in a scratch schema of its own), and what only a server has: URLs with passwords, schema
//! versions, and connections the server drops.

use std::sync::Arc;

use taskflow_store::TaskFlow;
use taskflow_store::testkit::{Database, Harness};
use taskflow_store_postgres::scratch::Scratch;
use taskflow_store_postgres::{OpenOptions, PostgresStore};

struct Postgres;

fn open(url: &str) -> TaskFlow {
    TaskFlow::new(Arc::new(PostgresStore::open(url, &OpenOptions::default()).unwrap()))
}

impl Harness for Postgres {
    fn fresh(&self) -> Database {
        let scratch = Scratch::new();
        let url = scratch.url();
        let taskflow = open(&url);
        Database::new(taskflow, move || open(&url), scratch)
    }
}

taskflow_store::conformance_tests!(Postgres);

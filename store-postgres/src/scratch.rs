//! Scratch databases for tests (feature `testkit`): each a schema of its own in the test
//! server's database, named in the URL (`options=-c search_path=…`), dropped when done. The
//! server is the one `scripts/test` starts and names in `TASKFLOW_TEST_POSTGRES`.

use postgres::NoTls;

/// The variable that names the test server's URL.
pub const TEST_URL_ENV: &str = "TASKFLOW_TEST_POSTGRES";

/// The test server's URL; a clear failure when the tests were not started through
/// `scripts/test`.
pub fn server_url() -> String {
    match std::env::var(TEST_URL_ENV) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{TEST_URL_ENV} is not set: the PostgreSQL tests run against a real server; run them \
             through `scripts/test`, which starts one (scripts/services/postgres.sh) and sets the \
             variable"
        ),
    }
}

/// An empty schema on the test server, dropped with everything in it when this is dropped.
pub struct Scratch {
    schema: String,
    server: String,
}

impl Scratch {
    pub fn new() -> Self {
        let server = server_url();
        let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut client = postgres::Client::connect(&server, NoTls).expect("the test server");
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("a scratch schema");
        Scratch { schema, server }
    }

    /// The URL of the scratch schema.
    pub fn url(&self) -> String {
        let separator = if self.server.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.server, self.schema)
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.server, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

impl Scratch {
    /// Whether some session holds the store's role `role` in this schema (the advisory lock of
    /// `lead.rs`): tries to take it from a connection of its own, and lets go at once if it can.
    pub fn role_held(&self, role: &str) -> bool {
        let mut client = postgres::Client::connect(&self.server, NoTls).expect("the test server");
        let key = format!("{}:{role}", self.schema);
        let row = client
            .query_one("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", &[&key])
            .expect("an advisory lock");
        let taken: bool = row.get(0);
        if taken {
            client
                .execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", &[&key])
                .expect("the lock let go");
        }
        !taken
    }
}

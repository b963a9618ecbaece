//! Scratch databases for tests (feature `testkit`): each a schema of its own in the test
//! server's database, named in the URL (`options=-c search_path=…`), dropped when done. The
//! server is the one `scripts/test` starts and names in `TASKFLOW_TEST_POSTGRES`. What a
//! database's own settings decide (its collation) is tested in a database of its own
//! ([`CollatedDatabase`]), also dropped when done.

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
    /// The URL of the database it is in.
    database: String,
}

impl Scratch {
    pub fn new() -> Self {
        Self::in_database(server_url())
    }

    /// An empty schema in the database at `database` (a URL).
    pub fn in_database(database: String) -> Self {
        let schema = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
        let mut client = postgres::Client::connect(&database, NoTls).expect("the test server");
        client.batch_execute(&format!("CREATE SCHEMA {schema}")).expect("a scratch schema");
        Scratch { schema, database }
    }

    /// The URL of the scratch schema.
    pub fn url(&self) -> String {
        let separator = if self.database.contains('?') { '&' } else { '?' };
        format!("{}{separator}options=-c%20search_path%3D{}", self.database, self.schema)
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
        if let Ok(mut client) = postgres::Client::connect(&self.database, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        }
    }
}

impl Scratch {
    /// Whether some session holds the store's role `role` in this schema (the advisory lock of
    /// `lead.rs`): tries to take it from a connection of its own, and lets go at once if it can.
    pub fn role_held(&self, role: &str) -> bool {
        let mut client = postgres::Client::connect(&self.database, NoTls).expect("the test server");
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

/// A database of its own on the test server whose collation orders text as a language does,
/// not by its bytes: ICU's root locale (`und-x-icu`) where the server has it, else
/// `en_US.UTF-8`, the usual default of a distribution's server. Dropped, with its connections,
/// when this is dropped.
pub struct CollatedDatabase {
    name: String,
    url: String,
    collation: &'static str,
}

impl CollatedDatabase {
    /// `Err` says why the test server cannot make one: it has neither collation.
    pub fn new() -> Result<Self, String> {
        let server = server_url();
        let mut client = postgres::Client::connect(&server, NoTls).expect("the test server");
        let row = client
            .query_one(
                "SELECT current_setting('server_version_num')::int >= 150000 \
                 AND EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'), \
                 EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'en_US.utf8')",
                &[],
            )
            .expect("the server's collations");
        // A database's own ICU collation needs PostgreSQL 15.
        let (collation, settings) = match (row.get(0), row.get(1)) {
            (true, _) => ("und-x-icu", "LOCALE_PROVIDER icu ICU_LOCALE 'und'"),
            (false, true) => ("en_US.UTF-8", "LC_COLLATE 'en_US.UTF-8' LC_CTYPE 'en_US.UTF-8'"),
            (false, false) => {
                return Err("the test server has neither ICU's `und-x-icu` (on PostgreSQL 15 or \
                            later) nor the locale `en_US.UTF-8`"
                    .to_owned());
            }
        };
        let name = format!("t_{}", ulid::Ulid::new().to_string().to_lowercase());
        client
            .batch_execute(&format!(
                "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' {settings}"
            ))
            .expect("a database of its own");
        Ok(CollatedDatabase { url: database_url(&server, &name), name, collation })
    }

    /// The collation it was made with.
    pub fn collation(&self) -> &'static str {
        self.collation
    }

    /// An empty schema in it.
    pub fn scratch(&self) -> Scratch {
        Scratch::in_database(self.url.clone())
    }
}

impl Drop for CollatedDatabase {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&server_url(), NoTls) {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// The URL of database `name` on the server of `server`, its options kept.
fn database_url(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("the test server's URL");
    let authority = rest.split('/').next().unwrap_or(rest);
    format!("{scheme}://{authority}/{name}{query}")
}

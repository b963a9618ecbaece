//! The store's connections: an r2d2 pool of clients, each with the statements it has prepared.
//! Every statement of the store is prepared once per connection and found again by its text, so
//! a query costs one round trip, not a prepare and an execute. A connection the server closed
//! (a restart, an admin) is noticed when used and left out of the pool.

use std::collections::HashMap;
use std::time::Duration;

use postgres::{Client, NoTls, Statement};

use crate::location::Location;

/// One connection and its prepared statements.
pub(crate) struct Conn {
    pub client: Client,
    statements: HashMap<&'static str, Statement>,
}

impl Conn {
    /// The statement for `sql`, prepared on first use.
    pub fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql, statement.clone());
        Ok(statement)
    }
}

/// Makes connections to one database for r2d2.
pub(crate) struct Manager {
    config: postgres::Config,
}

impl Manager {
    pub fn new(location: &Location, connect_timeout: Duration) -> Self {
        let mut config = location.config.clone();
        config.connect_timeout(connect_timeout);
        if config.get_application_name().is_none() {
            config.application_name("taskflow");
        }
        Manager { config }
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        let client = self.config.connect(NoTls)?;
        Ok(Conn { client, statements: HashMap::new() })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        conn.client.simple_query("").map(|_| ())
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.client.is_closed()
    }
}

/// A pool with no idle minimum (connections are made as they are needed) that gives up on
/// making one after `connect_timeout`, trying again meanwhile with backoff.
pub(crate) fn build(
    location: &Location,
    size: u32,
    connect_timeout: Duration,
) -> r2d2::Pool<Manager> {
    r2d2::Pool::builder()
        .max_size(size)
        .min_idle(Some(0))
        .connection_timeout(connect_timeout)
        .test_on_check_out(false)
        .error_handler(Box::new(r2d2::NopErrorHandler))
        .build_unchecked(Manager::new(location, connect_timeout))
}

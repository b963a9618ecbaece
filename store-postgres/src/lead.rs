//! A role held by one process at a time (the scheduler among several serves): a session
//! advisory lock taken on a connection of its own, keyed by the schema in use and the role's
//! name, so stores in different schemas of one database never exclude each other. The server
//! lets go of the lock when that connection ends: the holder died, or the connection was lost,
//! and then the holder learns it lost the role on its next check. A process that asks while
//! another holds the role keeps the connection it asked on for its next try, so waiting costs
//! one round trip per try, not a connection.

use std::time::Duration;

use taskflow_store::{Hold, Leadership, Result};

use crate::PostgresStore;
use crate::error::{self, Pg};
use crate::pool::{self, Conn};

const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock(hashtextextended(current_schema() || ':' || $1, 0))";

struct Held {
    conn: Option<Conn>,
}

impl Hold for Held {
    fn still_held(&mut self) -> bool {
        let alive = self.conn.as_mut().is_some_and(|conn| conn.batch_execute("").is_ok());
        if !alive {
            self.conn = None;
        }
        alive
    }
}

pub(crate) fn lead(
    store: &PostgresStore,
    role: &str,
    connect_timeout: Duration,
) -> Result<Option<Leadership>> {
    let mut spare = store.spare_lead_conn();
    let mut conn = match spare.take().filter(|conn| !conn.is_closed()) {
        Some(conn) => conn,
        None => Conn::connect(&pool::settings(store.location(), connect_timeout))
            .map_err(|failure| failure.at(store.location().shown()))?,
    };
    let row = conn
        .query_one(TRY_LOCK, &[&role])
        .pg()
        .map_err(|failure| error::at(store.location().shown(), failure))?;
    let granted: bool = row.get(0);
    if !granted {
        *spare = Some(conn);
        return Ok(None);
    }
    Ok(Some(Leadership::held(Box::new(Held { conn: Some(conn) }))))
}

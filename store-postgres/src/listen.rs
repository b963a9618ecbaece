//! Waking workers at once: a [`Listener`] holds a connection of its own that LISTENs on the
//! channel every commit that queues, parks or cancels a flow, or sends it a signal, notifies
//! (`tx.rs`). A lost connection is made again; a caller still polls the database now and then,
//! since a notification sent while no listener was connected is not kept.

use std::time::Duration;

use taskflow_store::{Result, StorageErrorKind};

use crate::error::{self, Pg};
use crate::pool::{self, Conn};
use crate::{PostgresStore, WAKE_CHANNEL};

/// A connection listening for wake-ups.
pub struct Listener {
    settings: pool::Settings,
    database: String,
    conn: Option<Conn>,
}

impl Listener {
    pub(crate) fn new(store: &PostgresStore, connect_timeout: Duration) -> Result<Self> {
        let mut listener = Listener {
            settings: pool::settings(store.location(), connect_timeout),
            database: store.location().shown().to_owned(),
            conn: None,
        };
        listener.connect()?;
        Ok(listener)
    }

    fn connect(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(Conn::is_closed) {
            let mut conn = Conn::connect(&self.settings).map_err(|failure| {
                error::refused(&self.database, StorageErrorKind::Unavailable, failure.to_string())
            })?;
            conn.batch_execute(&format!("LISTEN {WAKE_CHANNEL}"))
                .pg()
                .map_err(|failure| error::at(&self.database, failure))?;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected just now"))
    }

    /// Waits at most `timeout` for a wake-up; the id of the flow it is about, if one came.
    /// Every wake-up that arrived meanwhile is taken, and the first is returned. The error says
    /// that the server cannot be reached (after `timeout`: the next call tries again).
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<String>> {
        let conn = match self.connect() {
            Ok(conn) => conn,
            Err(error) => {
                std::thread::sleep(timeout);
                return Err(error);
            }
        };
        let Some(first) = conn.notification(timeout) else { return Ok(None) };
        while conn.notification(Duration::ZERO).is_some() {}
        Ok(Some(first.payload().to_owned()))
    }
}

//! Waking workers at once: a [`Listener`] holds a connection of its own that LISTENs on the
//! channel every commit that queues, parks or cancels a flow, or sends it a signal, notifies
//! (`tx.rs`). A lost connection is made again; a caller still polls the database now and then,
//! since a notification sent while no listener was connected is not kept.

use std::time::Duration;

use taskflow_store::Result;

use crate::error::{self, Pg};
use crate::pool::{self, Conn};
use crate::{PostgresStore, WAKE_CHANNEL};

/// A connection listening for wake-ups.
pub struct Listener {
    settings: pool::Settings,
    database: String,
    conn: Option<Conn>,
    /// Whether the connection was made again since the last wait: what was sent meanwhile is
    /// lost.
    made_again: bool,
}

/// What woke a [`Listener`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wake {
    /// A commit about this flow.
    Flow(String),
    /// The connection was lost and is made again: anything may have changed meanwhile.
    Reconnected,
}

impl Listener {
    pub(crate) fn new(store: &PostgresStore, connect_timeout: Duration) -> Result<Self> {
        let mut listener = Listener {
            settings: pool::settings(store.location(), connect_timeout),
            database: store.location().shown().to_owned(),
            conn: None,
            made_again: false,
        };
        listener.connect()?;
        Ok(listener)
    }

    fn connect(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_none_or(Conn::is_closed) {
            let mut conn =
                Conn::connect(&self.settings).map_err(|failure| failure.at(&self.database))?;
            conn.batch_execute(&format!("LISTEN {WAKE_CHANNEL}"))
                .pg()
                .map_err(|failure| error::at(&self.database, failure))?;
            self.made_again = self.conn.is_some() || self.made_again;
            self.conn = Some(conn);
        }
        Ok(self.conn.as_mut().expect("connected just now"))
    }

    /// Waits at most `timeout` for a wake-up, if one came. Every wake-up that arrived meanwhile
    /// is taken, and the first is returned; a connection made again is one at once. The error
    /// says that the server cannot be reached (after `timeout`: the next call tries again).
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<Wake>> {
        if let Err(error) = self.connect() {
            std::thread::sleep(timeout);
            return Err(error);
        }
        if std::mem::take(&mut self.made_again) {
            return Ok(Some(Wake::Reconnected));
        }
        let conn = self.connect()?;
        let Some(first) = conn.notification(timeout) else { return Ok(None) };
        while conn.notification(Duration::ZERO).is_some() {}
        Ok(Some(Wake::Flow(first.payload().to_owned())))
    }
}

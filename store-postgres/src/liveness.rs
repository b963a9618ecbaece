//! How a TCP connection to the server notices that the server went silent (a network split, a
//! host that died without closing it): keepalive probes and the user timeout, as the URL's
//! libpq parameters say (`location.rs` reads them). The driver's own settings are not used:
//! it reads `tcp_user_timeout` in seconds where libpq means milliseconds, and it cannot leave
//! the keepalives' idle time to the operating system.

use std::io;
use std::net::TcpStream;
use std::time::Duration;

/// The settings; `None` leaves the operating system's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Liveness {
    /// Whether keepalive probes are sent at all (`keepalives`).
    pub keepalives: bool,
    /// Silence before the first probe (`keepalives_idle`).
    pub idle: Option<Duration>,
    /// Time between probes (`keepalives_interval`).
    pub interval: Option<Duration>,
    /// Probes left unanswered before the connection is closed (`keepalives_count`).
    pub count: Option<u32>,
    /// How long sent data may stay unacknowledged before the connection is closed
    /// (`tcp_user_timeout`).
    pub user_timeout: Option<Duration>,
}

impl Liveness {
    /// Sets `stream`'s keepalives and user timeout as these settings say.
    pub fn set_up(&self, stream: &TcpStream) -> io::Result<()> {
        let socket = socket2::SockRef::from(stream);
        if self.keepalives {
            let mut keepalive = socket2::TcpKeepalive::new();
            if let Some(idle) = self.idle {
                keepalive = keepalive.with_time(idle);
            }
            if let Some(interval) = self.interval {
                keepalive = keepalive.with_interval(interval);
            }
            if let Some(count) = self.count {
                keepalive = keepalive.with_retries(count);
            }
            socket.set_tcp_keepalive(&keepalive)?;
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if let Some(unacknowledged) = self.user_timeout {
            socket.set_tcp_user_timeout(Some(unacknowledged))?;
        }
        Ok(())
    }
}

//! How a long-running command (`serve`, `mcp serve`, `worker`) learns it should stop: SIGTERM
//! (what a service manager or an MCP client sends) or Ctrl-C.

use std::future::Future;

/// Resolves on SIGTERM or Ctrl-C. The handlers are in place once it returns, before it is
/// first awaited: a command makes it before it says it is ready, so that a signal sent as soon
/// as it is ready stops it gracefully instead of killing it. Called within a runtime.
pub(crate) fn shutdown() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::terminate()).and_then(|terminate| {
            signal(SignalKind::interrupt()).map(|interrupt| (terminate, interrupt))
        });
        async move {
            match handlers {
                Ok((mut terminate, mut interrupt)) => {
                    tokio::select! {
                        _ = terminate.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

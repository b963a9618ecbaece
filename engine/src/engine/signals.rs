//! The signals a running pipeline step takes: the engine's side of [`Signals`]. A step takes a
//! signal under the lease of its flow's run, as a store call of its own; the store keeps which
//! step took which signal, so a step that runs again after a crash gets the same one.

use taskflow_store::error::Error;
use taskflow_store::lease::Lease;
use taskflow_tools::{ActionError, SignalFuture, Signals, StepContext};

use super::store_access::StoreAccess;

/// The signals of one run's flow.
#[derive(Clone)]
pub(crate) struct RunSignals {
    pub(crate) store: StoreAccess,
    /// The lease of the flow's run.
    pub(crate) lease: Lease,
}

impl std::fmt::Debug for RunSignals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunSignals").field("flow", &self.lease.flow_id).finish_non_exhaustive()
    }
}

impl Signals for RunSignals {
    fn take(&self, name: &str, context: &StepContext) -> SignalFuture {
        let (store, lease, seq, name) =
            (self.store.clone(), self.lease.clone(), context.seq, name.to_owned());
        Box::pin(async move {
            let taken = store.call(move |handle| handle.take_signal(&lease, seq, &name)).await;
            match taken {
                Ok(signal) => Ok(signal.map(|signal| signal.payload)),
                Err(Error::CancelRequested { .. } | Error::AlreadyEnded { .. }) => {
                    Err(ActionError::Cancelled)
                }
                Err(error) => Err(ActionError::failed(error.to_string())),
            }
        })
    }
}

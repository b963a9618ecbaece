//! Flow ids. A flow's id is a ULID by default, so ids sort by creation time and are unique
//! without coordination.

use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use serde::Serialize;
use ulid::Ulid;

use crate::error::{Error, Result};

/// A flow's id: a ULID, so ids sort by creation time and are unique without coordination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(Ulid);

impl FlowId {
    /// A new id, greater than every id this process made before (ids made within the same
    /// millisecond are ordered too, so "newest first" holds within a process).
    pub fn new() -> Self {
        static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
        let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        FlowId(generator.generate().unwrap_or_else(|_| Ulid::new()))
    }

    pub fn from_ulid(ulid: Ulid) -> Self {
        FlowId(ulid)
    }
}

impl Default for FlowId {
    fn default() -> Self {
        FlowId::new()
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl FromStr for FlowId {
    type Err = Error;

    /// Text that is not a ULID names no flow, so it is [`Error::NotFound`] like any unknown id.
    fn from_str(s: &str) -> Result<Self> {
        Ulid::from_string(s.trim()).map(FlowId).map_err(|_| Error::NotFound { id: s.to_owned() })
    }
}

impl Serialize for FlowId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::FlowId;

    #[test]
    fn ids_made_in_one_process_only_grow_and_round_trip() {
        let ids: Vec<FlowId> = (0..1000).map(|_| FlowId::new()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
        for id in &ids[..3] {
            assert_eq!(id.to_string().parse::<FlowId>().unwrap(), *id);
        }
        assert!("not-an-id".parse::<FlowId>().is_err());
    }
}

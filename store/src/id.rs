//! Flow ids. A flow's id is a ULID by default (ids then sort by creation time and are unique
//! without coordination), or a key its creator chooses, such as `digest-2026-12-03` or a
//! schedule's slot `nightly@2026-12-03T07:00:00Z`: 1 to 128 characters, each a letter, a digit
//! or one of `. _ : @ -`. Ids are case-sensitive and shown as given.
//!
//! A [`FlowId`] shares its text: cloning one is a reference count, not a copy of the text.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use ulid::Ulid;

use crate::error::Error;
use crate::excerpt::excerpt;

/// The longest id.
pub const MAX_ID_LEN: usize = 128;

/// What a flow id may hold, as the error for a bad one states it.
pub const ID_RULE: &str =
    "an id is 1 to 128 characters, each a letter, a digit or one of . _ : @ -";

#[derive(Clone)]
pub struct FlowId(Arc<str>);

/// Why a text is not a flow id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a flow id: {reason} ({ID_RULE})")]
pub struct InvalidId {
    text: String,
    reason: String,
}

impl FlowId {
    /// A new ULID, greater than every id this process made before (ids made within the same
    /// millisecond are ordered too, so "newest first" holds within a process).
    pub fn new() -> Self {
        static GENERATOR: Mutex<ulid::Generator> = Mutex::new(ulid::Generator::new());
        let mut generator = GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        FlowId::from_ulid(generator.generate().unwrap_or_else(|_| Ulid::new()))
    }

    pub fn from_ulid(ulid: Ulid) -> Self {
        FlowId(ulid.to_string().into())
    }

    /// `text` as an id, if it keeps the rule ([`ID_RULE`]).
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let invalid = |reason: String| InvalidId { text: excerpt(text), reason };
        if text.is_empty() {
            return Err(invalid("it is empty".to_owned()));
        }
        if let Some((at, bad)) = text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
            return Err(invalid(format!("character {} is {bad:?}", at + 1)));
        }
        if text.len() > MAX_ID_LEN {
            return Err(invalid(format!("it is {} characters long", text.len())));
        }
        Ok(FlowId(text.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-')
}

impl Default for FlowId {
    fn default() -> Self {
        FlowId::new()
    }
}

impl PartialEq for FlowId {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for FlowId {}

impl Hash for FlowId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for FlowId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlowId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl fmt::Debug for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FlowId").field(&self.as_str()).finish()
    }
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FlowId {
    type Err = InvalidId;

    fn from_str(s: &str) -> Result<Self, InvalidId> {
        FlowId::parse(s)
    }
}

impl From<InvalidId> for Error {
    fn from(error: InvalidId) -> Self {
        Error::InvalidInput(error.to_string())
    }
}

impl Serialize for FlowId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
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
            assert_eq!(id.as_str().len(), 26);
        }
    }

    #[test]
    fn chosen_ids_keep_the_rule_and_their_case() {
        fn check(text: &str, error: Option<&str>) {
            match (FlowId::parse(text), error) {
                (Ok(id), None) => assert_eq!(id.as_str(), text),
                (Err(found), Some(expected)) => {
                    let message = found.to_string();
                    assert!(message.contains(expected), "{text:?}: {message}");
                    assert!(message.contains("1 to 128 characters"), "{message}");
                }
                (other, _) => panic!("{text:?}: {other:?}"),
            }
        }
        check("digest-2026-12-03", None);
        check("nightly@2026-12-03T07:00:00Z", None);
        check("a.b_c:d@e-f", None);
        check("X", None);
        check(&"k".repeat(128), None);
        check("", Some("it is empty"));
        check(&"k".repeat(129), Some("it is 129 characters long"));
        check("my key", Some("character 3 is ' '"));
        check("slash/es", Some("character 6 is '/'"));
        check("é", Some("character 1 is 'é'"));
        check("tab\there", Some("character 4 is '\\t'"));
        assert_ne!(FlowId::parse("Key").unwrap(), FlowId::parse("key").unwrap());
    }
}

//! API keys. The type has no `Display`, no `Serialize`, and a `Debug` that hides the value, so
//! a key cannot reach an error message, a log line, output or the journal by accident; the one
//! way out is [`ApiKey::expose`], used where a header is set (here, and in `taskflow-proxy`,
//! which forwards requests with the upstream's key).

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key, unless the text is empty or only whitespace.
    pub fn new(key: impl Into<String>) -> Option<Self> {
        let key = key.into();
        let trimmed = key.trim();
        if trimmed.is_empty() { None } else { Some(Self(trimmed.to_owned())) }
    }

    /// The key from the environment variable `name`, if set and not empty.
    pub fn from_env(name: &str) -> Option<Self> {
        std::env::var(name).ok().and_then(Self::new)
    }

    /// The key itself, for the request header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Removes every occurrence of the key from `text` (server error bodies may echo it).
    pub fn redact(&self, text: &str) -> String {
        if text.contains(&self.0) { text.replace(&self.0, "[redacted]") } else { text.to_owned() }
    }

    /// Removes every occurrence of the key from `bytes`, which need not be UTF-8 (a body an
    /// upstream sent, passed on as it came).
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let key = self.0.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut rest = bytes;
        while let Some(at) = rest.windows(key.len()).position(|window| window == key) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(b"[redacted]");
            rest = &rest[at + key.len()..];
        }
        out.extend_from_slice(rest);
        out
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_redaction_hide_the_key() {
        let key = ApiKey::new(" sk-secret-123 ").unwrap();
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(key.expose(), "sk-secret-123");
        assert_eq!(key.redact("bad key sk-secret-123!"), "bad key [redacted]!");
        assert_eq!(
            key.redact_bytes(b"\xffsk-secret-123\xfe sk-secret-12 sk-secret-123"),
            b"\xff[redacted]\xfe sk-secret-12 [redacted]"
        );
        assert!(ApiKey::new("   ").is_none());
    }
}

//! The tokens of `taskflow serve`, from the config file's `[serve.tokens]` table:
//! `NAME = { owner = "alice", token_env = "ALICE_TOKEN" }` (or `token_file = "PATH"`). Each
//! token is bound to one owner, so the token a request carries decides whose flows it sees. The
//! secret itself is read from the environment or a file, never written in the config file, and
//! never shown: a token's `Debug` hides it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{ApiError, Result};

/// `[serve]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSection {
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenConfig>,
}

/// One entry of `[serve.tokens]`: whose token it is, and where its secret is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub owner: String,
    /// The environment variable that holds the secret.
    pub token_env: Option<String>,
    /// The file that holds the secret (its first line).
    pub token_file: Option<PathBuf>,
    /// Whether the pipelines its owner sends may reach serve's host: commands, files, the
    /// network, the environment (`shell`, `write_file`, `fetch_urls`, `tool`, `agent`, an
    /// `llm` step's own `base_url`). Off by default: a token's owner then runs `echo` and
    /// model steps on the providers serve's configuration names.
    #[serde(default)]
    pub host: bool,
}

/// A token serve accepts, and the owner it acts for.
#[derive(Clone)]
pub struct ServeToken {
    pub name: String,
    pub owner: String,
    /// See [`TokenConfig::host`].
    pub host: bool,
    secret: String,
}

impl ServeToken {
    pub fn new(
        name: impl Into<String>,
        owner: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        ServeToken { name: name.into(), owner: owner.into(), host: false, secret: secret.into() }
    }

    /// The same token, its owner's pipelines allowed to reach the host or not.
    pub fn with_host(mut self, host: bool) -> Self {
        self.host = host;
        self
    }

    /// The secret a request must present.
    pub fn secret(&self) -> &str {
        &self.secret
    }
}

impl std::fmt::Debug for ServeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeToken")
            .field("name", &self.name)
            .field("owner", &self.owner)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// Shorter secrets are refused: a token guards a server that may listen beyond this host.
pub const MIN_SECRET_LEN: usize = 16;

impl ServeSection {
    /// The tokens of `[serve.tokens]`, each with its secret read; a token whose secret cannot
    /// be read, or is too short, is an error naming the token (never the secret).
    pub fn tokens(&self) -> Result<Vec<ServeToken>> {
        let invalid = |name: &str, why: String| ApiError::Config {
            message: format!("[serve.tokens] {name}: {why}"),
            hint: Some(
                "give each token `owner` and one of `token_env` (a variable holding the \
                 secret) or `token_file`"
                    .to_owned(),
            ),
        };
        let mut tokens = Vec::new();
        for (name, token) in &self.tokens {
            if token.owner.trim().is_empty() {
                return Err(invalid(name, "its `owner` is empty".to_owned()));
            }
            let secret = match (&token.token_env, &token.token_file) {
                (Some(variable), None) => std::env::var(variable)
                    .map_err(|_| invalid(name, format!("the variable {variable} is not set")))?,
                (None, Some(path)) => std::fs::read_to_string(path)
                    .map_err(|error| invalid(name, format!("{}: {error}", path.display())))?
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
                _ => return Err(invalid(name, "name one of `token_env` or `token_file`".into())),
            };
            let secret = secret.trim().to_owned();
            if secret.chars().count() < MIN_SECRET_LEN {
                let why = format!(
                    "its secret is shorter than {MIN_SECRET_LEN} characters (`openssl rand -hex \
                     32` makes one)"
                );
                return Err(invalid(name, why));
            }
            let owner = token.owner.trim();
            // A secret decides the owner, so one secret for two owners would let one of them
            // act as the other. The secret is compared, never shown.
            if let Some(other) = tokens
                .iter()
                .find(|other: &&ServeToken| other.secret == secret && other.owner != owner)
            {
                let why = format!(
                    "its secret is also the secret of token `{}`, which acts for another owner \
                     (`{}`, not `{owner}`)",
                    other.name, other.owner
                );
                return Err(invalid(name, why));
            }
            tokens.push(ServeToken::new(name.clone(), owner, secret).with_host(token.host));
        }
        Ok(tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tokens of a `[serve.tokens]` table whose entries read their secrets from files
    /// holding their secrets, one entry per `(name, owner, secret)`.
    fn tokens_of(entries: &[(&str, &str, &str)]) -> Result<Vec<ServeToken>> {
        let dir = tempfile::tempdir().unwrap();
        let mut tokens = BTreeMap::new();
        for (name, owner, secret) in entries {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("{secret}\n")).unwrap();
            let config = TokenConfig {
                owner: (*owner).to_owned(),
                token_env: None,
                token_file: Some(path),
                host: false,
            };
            tokens.insert((*name).to_owned(), config);
        }
        ServeSection { tokens }.tokens()
    }

    #[test]
    fn one_secret_for_two_owners_is_refused_without_showing_it() {
        let secret = "shared-secret-0123456789";
        let error = tokens_of(&[("alice", "alice", secret), ("bob", "bob", secret)]).unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains("[serve.tokens] bob:") && shown.contains("token `alice`"),
            "{shown}"
        );
        assert!(!shown.contains(secret), "{shown}");
    }

    #[test]
    fn one_secret_under_two_names_of_one_owner_is_accepted() {
        let secret = "laptop-secret-0123456789";
        let tokens = tokens_of(&[("laptop", "alice", secret), ("phone", "alice", secret)]);
        assert_eq!(tokens.unwrap().len(), 2);
    }

    #[test]
    fn a_short_secret_is_refused_saying_how_long_one_must_be() {
        let error = tokens_of(&[("laptop", "alice", "short-secret")]).unwrap_err().to_string();
        assert!(error.contains("[serve.tokens] laptop:"), "{error}");
        assert!(error.contains("shorter than 16 characters"), "{error}");
        assert!(!error.contains("short-secret"), "{error}");
        assert!(tokens_of(&[("laptop", "alice", "sixteen-chars-ok")]).is_ok());
        // Characters, not bytes: nine of two bytes each are too few.
        assert!(tokens_of(&[("laptop", "alice", "ééééééééé")]).is_err());
    }
}

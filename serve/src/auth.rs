//! Who a request acts for. The owner is never chosen by the request: with tokens configured,
//! the `Authorization: Bearer TOKEN` header names one token and the token decides the owner; a
//! missing or unknown token is 401 and nothing more. A request that only reads (GET, HEAD) may
//! instead carry the cookie of a dashboard session logged in with a token (the dashboard's
//! live updates read the event stream that way); a cookie never authorizes a change through
//! the API, so no other site can make a browser change anything with it. With no token
//! configured (serve then listens on loopback only) every request acts as serve's own owner.

use axum::extract::FromRequestParts;
use axum::http::Method;
use axum::http::request::Parts;
use taskflow_api::ServeToken;
use taskflow_http_server::{bearer_token, same_secret};

use crate::error::HttpError;
use crate::state::AppState;

/// The owner a request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner(pub String);

impl FromRequestParts<AppState> for Owner {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let tokens = state.tokens();
        if tokens.is_empty() {
            return Ok(Owner(state.default_owner().to_owned()));
        }
        if let Some(presented) = bearer_token(&parts.headers) {
            return owner_of(tokens, presented).map(Owner).ok_or_else(HttpError::unauthorized);
        }
        if parts.method == Method::GET || parts.method == Method::HEAD {
            let session = state.sessions().of_request(&parts.headers);
            if let Some(owner) = session.and_then(|session| session.owner) {
                return Ok(Owner(owner));
            }
        }
        Err(HttpError::unauthorized())
    }
}

/// Whether a request may send pipelines that reach serve's host (commands, files, the network,
/// the environment): with no token configured it comes from the host's own user (serve then
/// listens on loopback only); with tokens, only a token configured with `host = true` may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostAccess(pub bool);

impl FromRequestParts<AppState> for HostAccess {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let tokens = state.tokens();
        if tokens.is_empty() {
            return Ok(HostAccess(true));
        }
        let token = bearer_token(&parts.headers).and_then(|presented| token_of(tokens, presented));
        Ok(HostAccess(token.is_some_and(|token| token.host)))
    }
}

/// The owner of the token `presented` is, comparing it with every token in constant time (the
/// time taken does not tell how much of a token was right, nor which one matched).
pub(crate) fn owner_of(tokens: &[ServeToken], presented: &str) -> Option<String> {
    token_of(tokens, presented).map(|token| token.owner.clone())
}

/// The token `presented` is, compared as [`owner_of`] does.
fn token_of<'t>(tokens: &'t [ServeToken], presented: &str) -> Option<&'t ServeToken> {
    let mut found = None;
    for token in tokens {
        if same_secret(token.secret().as_bytes(), presented.as_bytes()) {
            found = Some(token);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_its_owner_and_nothing_else_does() {
        let tokens = vec![
            ServeToken::new("a", "alice", "s3cret-alice"),
            ServeToken::new("b", "bob", "s3cret-bob"),
        ];
        assert_eq!(owner_of(&tokens, "s3cret-alice").as_deref(), Some("alice"));
        assert_eq!(owner_of(&tokens, "s3cret-bob").as_deref(), Some("bob"));
        for wrong in ["", "s3cret", "s3cret-alice ", "s3cret-alicE", "s3cret-alice-and-more"] {
            assert_eq!(owner_of(&tokens, wrong), None, "{wrong:?}");
        }
    }
}

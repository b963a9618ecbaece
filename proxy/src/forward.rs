//! What crosses the proxy besides the body: which headers go on to the upstream and back to
//! the client, and whose key the upstream sees. Hop-by-hop headers stay on their hop; the
//! client's `Authorization` goes on only when the proxy has neither its own upstream key nor
//! a client token (which is the proxy's, not the upstream's).

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use taskflow_http_server::{bearer_token, same_secret};
use taskflow_providers::ApiKey;

use crate::config::IDS_HEADER;

/// Headers that belong to one connection (RFC 9110 §7.6.1), or that the HTTP client sets.
const HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    header::HOST,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

/// The headers to send upstream for a client's `headers`.
pub(crate) fn upstream_headers(
    headers: &HeaderMap,
    api_key: Option<&ApiKey>,
    client_token_set: bool,
    identity: bool,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let drop = HOP_BY_HOP.contains(name)
            || name.as_str() == "keep-alive"
            || name.as_str() == IDS_HEADER
            || (name == header::AUTHORIZATION && (api_key.is_some() || client_token_set))
            || (identity && name == header::ACCEPT_ENCODING);
        if !drop {
            out.append(name.clone(), value.clone());
        }
    }
    if let Some(key) = api_key
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
    {
        value.set_sensitive(true);
        out.insert(header::AUTHORIZATION, value);
    }
    if identity {
        // The answer is read, so it must come uncompressed.
        out.insert(header::ACCEPT_ENCODING, HeaderValue::from_static("identity"));
    }
    out
}

/// The upstream's answer headers that go on to the client, the upstream's `key` replaced in
/// any that echoes it. `rewritten` drops the ones that describe the upstream's body rather than
/// the one the client gets.
pub(crate) fn client_headers(
    headers: &HeaderMap,
    rewritten: bool,
    key: Option<&ApiKey>,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let drop = HOP_BY_HOP.contains(name)
            || name.as_str() == "keep-alive"
            || (rewritten && (name == header::CONTENT_ENCODING || name == header::ETAG));
        if drop {
            continue;
        }
        let value = match key {
            Some(key) => HeaderValue::from_bytes(&key.redact_bytes(value.as_bytes()))
                .unwrap_or_else(|_| HeaderValue::from_static("[redacted]")),
            None => value.clone(),
        };
        out.append(name.clone(), value);
    }
    out
}

/// Whether `headers` carry the bearer `token`.
pub(crate) fn has_token(headers: &HeaderMap, token: &ApiKey) -> bool {
    bearer_token(headers)
        .is_some_and(|given| same_secret(token.expose().as_bytes(), given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn a_header_of_the_upstreams_answer_that_echoes_its_key_goes_on_without_it() {
        let answer = headers(&[("x-echo", "key sk-upstream here"), ("x-other", "fine")]);
        let key = ApiKey::new("sk-upstream").unwrap();
        let out = client_headers(&answer, false, Some(&key));
        assert_eq!(out["x-echo"], "key [redacted] here");
        assert_eq!(out["x-other"], "fine");
        assert_eq!(client_headers(&answer, false, None)["x-echo"], "key sk-upstream here");
    }

    #[test]
    fn the_upstream_key_replaces_the_clients_authorization() {
        let client = headers(&[
            ("authorization", "Bearer client-token"),
            ("connection", "keep-alive"),
            ("x-custom", "1"),
            ("x-taskflow-ids", "safe"),
            ("accept-encoding", "gzip"),
        ]);
        let key = ApiKey::new("sk-upstream").unwrap();
        let out = upstream_headers(&client, Some(&key), false, true);
        assert_eq!(out["authorization"], "Bearer sk-upstream");
        assert_eq!(out["accept-encoding"], "identity");
        assert_eq!(out["x-custom"], "1");
        assert!(out.get("connection").is_none() && out.get("x-taskflow-ids").is_none());

        let passed = upstream_headers(&client, None, false, false);
        assert_eq!(passed["authorization"], "Bearer client-token");
        assert_eq!(passed["accept-encoding"], "gzip");
        let token_only = upstream_headers(&client, None, true, false);
        assert!(token_only.get("authorization").is_none());
    }

    #[test]
    fn tokens_are_checked_whole() {
        let token = ApiKey::new("s3cret").unwrap();
        assert!(has_token(&headers(&[("authorization", "Bearer s3cret")]), &token));
        assert!(has_token(&headers(&[("authorization", "bearer s3cret")]), &token));
        for wrong in ["Bearer s3cre", "Bearer s3cret2", "s3cret", "Basic s3cret"] {
            let given = HeaderMap::from_iter([(
                header::AUTHORIZATION,
                HeaderValue::from_str(wrong).unwrap(),
            )]);
            assert!(!has_token(&given, &token), "{wrong}");
        }
        assert!(!has_token(&HeaderMap::new(), &token));
    }
}

//! The bearer token a request presents (`Authorization: Bearer TOKEN`, RFC 6750), and secrets
//! compared in constant time: how long a comparison takes does not tell how much of a guess was
//! right.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;

/// The token of `headers`' `Authorization`, if it is a bearer token. The scheme's name is
/// matched whatever its case, as HTTP's are; spaces around the token are not part of it.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `presented` is `expected`, every byte of `expected` looked at whatever the first
/// difference.
pub fn same_secret(expected: &[u8], presented: &[u8]) -> bool {
    let mut difference = expected.len() ^ presented.len();
    for (at, byte) in expected.iter().enumerate() {
        difference |= usize::from(byte ^ presented.get(at).copied().unwrap_or(!*byte));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// The bearer token read from an `Authorization` header of `value` (none: no header).
    fn check(value: Option<&[u8]>, expected: Option<&str>) {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(AUTHORIZATION, HeaderValue::from_bytes(value).unwrap());
        }
        assert_eq!(bearer_token(&headers), expected, "{value:?}");
    }

    #[test]
    fn a_bearer_token_is_read_whatever_the_schemes_case() {
        check(Some(b"Bearer s3cret"), Some("s3cret"));
        check(Some(b"bearer s3cret"), Some("s3cret"));
        check(Some(b"BEARER   s3cret  "), Some("s3cret"));
        check(Some(b"Bearer a b"), Some("a b"));
        check(Some(b"Basic czNjcmV0"), None);
        check(Some(b"Bearers3cret"), None);
        check(Some(b"Bearer "), None);
        check(Some(b"Bearer"), None);
        check(Some(b"s3cret"), None);
        check(Some(b"Bearer s3\xffcret"), None);
        check(None, None);
    }

    #[test]
    fn secrets_are_the_same_only_byte_for_byte() {
        assert!(same_secret(b"abc", b"abc") && same_secret(b"", b""));
        for other in [&b"abd"[..], b"ab", b"abcd", b"", b"ABC"] {
            assert!(!same_secret(b"abc", other), "{other:?}");
        }
        assert!(!same_secret(b"", b"x"));
    }
}

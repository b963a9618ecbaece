//! What protects the people who use serve from a browser against other sites, for every route:
//!
//! - a request that may change something (any method but GET, HEAD and OPTIONS) sent by
//!   another site's page is refused with 403: the browser says so in `Sec-Fetch-Site`, or in an
//!   `Origin` that is not this server's;
//! - without tokens (serve then listens on loopback and asks nobody who they are), a request
//!   whose `Host` is not a loopback name is refused with 421, so that a name an attacker points
//!   at 127.0.0.1 (DNS rebinding) reaches nothing.
//!
//! Programs other than browsers send neither header and are not affected.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::HttpError;
use crate::state::AppState;

pub async fn same_origin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if state.tokens().is_empty() && !host_is_loopback(headers) {
        return HttpError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected",
            "this server answers only to loopback names (localhost, 127.0.0.1, [::1])",
        )
        .into_response();
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if changes && !from_this_site(headers) {
        return HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "a request from another site's page is refused",
        )
        .into_response();
    }
    next.run(request).await
}

/// Whether the request names this host by a loopback name (or names no host at all).
fn host_is_loopback(headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(HOST) else { return true };
    let Ok(host) = host.to_str() else { return false };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// Whether nothing says the request comes from another site's page.
fn from_this_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site")
        && !matches!(site.to_str(), Ok("same-origin" | "none"))
    {
        return false;
    }
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let (Ok(origin), Some(Ok(host))) = (origin.to_str(), headers.get(HOST).map(|h| h.to_str()))
    else {
        return false;
    };
    let origin_host = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
    origin_host.is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_loopback_names_reach_a_server_without_tokens() {
        let check = |host: &'static str, expected: bool| {
            assert_eq!(host_is_loopback(&headers(&[("host", host)])), expected, "{host}");
        };
        for host in ["127.0.0.1:7878", "localhost:7878", "LOCALHOST", "[::1]:80", "127.1.2.3"] {
            check(host, true);
        }
        for host in ["evil.example:7878", "10.0.0.1:7878", "localhost.evil.example", "[::2]:1"] {
            check(host, false);
        }
        assert!(host_is_loopback(&HeaderMap::new()));
    }

    #[test]
    fn a_change_from_another_sites_page_is_refused() {
        let check = |pairs: &[(&'static str, &'static str)], expected: bool| {
            assert_eq!(from_this_site(&headers(pairs)), expected, "{pairs:?}");
        };
        check(&[("host", "127.0.0.1:7878")], true);
        check(&[("host", "127.0.0.1:7878"), ("origin", "http://127.0.0.1:7878")], true);
        check(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "same-origin")], true);
        check(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "none")], true);
        check(&[("host", "127.0.0.1:7878"), ("origin", "http://evil.example")], false);
        check(&[("host", "127.0.0.1:7878"), ("origin", "http://127.0.0.1:7879")], false);
        check(&[("host", "127.0.0.1:7878"), ("origin", "null")], false);
        check(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "cross-site")], false);
        check(&[("host", "127.0.0.1:7878"), ("sec-fetch-site", "same-site")], false);
        check(&[("origin", "http://127.0.0.1:7878")], false);
    }
}

//! Where a client's request goes: the upstream's base URL as clients of the upstream would use
//! it (`http://localhost:8000/v1`), and the URL of each path asked of the proxy. A base may hold
//! credentials (`http://user:password@host/v1`): requests use them, but messages and the log
//! only ever show the base without them.

use crate::error::ProxyError;

/// The upstream server.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The base URL requests use, without a trailing `/`, e.g. `http://localhost:8000/v1` (an
    /// origin alone stands for its `/v1`).
    base_url: String,
    /// Where paths outside `/v1` go: the base without its `/v1`, or the origin.
    root_url: String,
    /// The base as messages show it: without its userinfo.
    base: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        let fail = |reason: &str| ProxyError::Upstream {
            url: without_userinfo(url),
            reason: reason.into(),
        };
        let parsed =
            reqwest::Url::parse(url).map_err(|error| fail(&format!("is not a URL: {error}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(fail("is not http or https"));
        }
        if parsed.host_str().is_none() {
            return Err(fail("names no host"));
        }
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(fail("has a query or a fragment; give the base URL only"));
        }
        // The origin with the credentials it may hold.
        let mut origin = parsed.clone();
        origin.set_path("");
        let origin = origin.as_str().trim_end_matches('/').to_owned();
        let base_url = match parsed.path().trim_end_matches('/') {
            // An origin alone serves the OpenAI paths under `/v1`, as every known server does.
            "" => format!("{origin}/v1"),
            _ => url.trim_end_matches('/').to_owned(),
        };
        let root_url = match base_url.strip_suffix("/v1") {
            Some(root) => root.to_owned(),
            None => origin,
        };
        Ok(Self { base: without_userinfo(&base_url), base_url, root_url })
    }

    /// The upstream URL of a path (with its query) asked of the proxy: `/v1/…` under the base,
    /// anything else under the root.
    pub fn url(&self, path_and_query: &str) -> String {
        match path_and_query.strip_prefix("/v1") {
            Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                format!("{}{rest}", self.base_url)
            }
            _ => format!("{}{path_and_query}", self.root_url),
        }
    }

    /// The base URL for messages and logs, without the userinfo it may hold.
    pub fn base(&self) -> &str {
        &self.base
    }
}

/// `url` without the `user:password@` of its authority; read as text, so that a URL too broken
/// to parse (refused, and named in the refusal) loses its password too.
fn without_userinfo(url: &str) -> String {
    let start = url.find("://").map_or(0, |at| at + 3);
    let end = url[start..].find(['/', '?', '#']).map_or(url.len(), |at| start + at);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}{}", &url[..start], &url[start + at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_under_the_base_or_the_root() {
        let up = Upstream::parse("http://127.0.0.1:8000/v1/").unwrap();
        assert_eq!(up.url("/v1/chat/completions"), "http://127.0.0.1:8000/v1/chat/completions");
        assert_eq!(up.url("/v1/models?x=1"), "http://127.0.0.1:8000/v1/models?x=1");
        assert_eq!(up.url("/health"), "http://127.0.0.1:8000/health");
        assert_eq!(up.url("/v1beta"), "http://127.0.0.1:8000/v1beta");

        let glm = Upstream::parse("https://example.test/api/paas/v4").unwrap();
        assert_eq!(
            glm.url("/v1/chat/completions"),
            "https://example.test/api/paas/v4/chat/completions"
        );
        assert_eq!(glm.url("/other"), "https://example.test/other");

        let bare = Upstream::parse("http://localhost:11434").unwrap();
        assert_eq!(bare.url("/v1/models"), "http://localhost:11434/v1/models");
        assert_eq!(bare.url("/api/tags"), "http://localhost:11434/api/tags");
    }

    #[test]
    fn messages_show_the_base_without_its_credentials() {
        // (upstream given, base shown)
        let cases = [
            ("http://user:hunter2@127.0.0.1:1/v1", "http://127.0.0.1:1/v1"),
            ("http://user@localhost:8000", "http://localhost:8000/v1"),
            ("https://a:b@c:d@example.test/api/v4/", "https://example.test/api/v4"),
            ("http://127.0.0.1:8000/v1/me@home", "http://127.0.0.1:8000/v1/me@home"),
        ];
        for (given, shown) in cases {
            let upstream = Upstream::parse(given).unwrap();
            assert_eq!(upstream.base(), shown, "{given}");
        }
        // Requests keep them, on every path.
        let cases = [
            (
                "http://user:hunter2@127.0.0.1:1/v1",
                "/v1/models",
                "http://user:hunter2@127.0.0.1:1/v1/models",
            ),
            (
                "http://user:hunter2@127.0.0.1:1/v1",
                "/health",
                "http://user:hunter2@127.0.0.1:1/health",
            ),
            (
                "http://user:hunter2@localhost:8000",
                "/v1/models",
                "http://user:hunter2@localhost:8000/v1/models",
            ),
            ("https://u:p@example.test/api/v4", "/other", "https://u:p@example.test/other"),
        ];
        for (given, path, url) in cases {
            assert_eq!(Upstream::parse(given).unwrap().url(path), url, "{given} {path}");
        }
        // Refused URLs, parsed or not, are named without them.
        for refused in
            ["http://user:hunter2@x/v1?key=1", "ftp://u:hunter2@x/", "u:hunter2@x:bad/v1"]
        {
            let message = Upstream::parse(refused).unwrap_err().to_string();
            assert!(!message.contains("hunter2") && message.contains("x"), "{message}");
        }
    }

    #[test]
    fn bad_urls_are_refused() {
        for url in ["localhost:8000", "ftp://x/v1", "http://x/v1?key=1", "not a url", ""] {
            assert!(Upstream::parse(url).is_err(), "{url}");
        }
    }
}

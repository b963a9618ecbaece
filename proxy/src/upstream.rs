//! Where a client's request goes: the upstream's base URL as clients of the upstream would use
//! it (`http://localhost:8000/v1`), and the URL of each path asked of the proxy.

use crate::error::ProxyError;

/// The upstream server.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// The base URL without a trailing `/`, e.g. `http://localhost:8000/v1` (an origin alone
    /// stands for its `/v1`).
    base: String,
    /// Where paths outside `/v1` go: the base without its `/v1`, or the origin.
    root: String,
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Self, ProxyError> {
        let fail =
            |reason: &str| ProxyError::Upstream { url: url.to_owned(), reason: reason.into() };
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
        let origin = parsed.origin().ascii_serialization();
        let base = match parsed.path().trim_end_matches('/') {
            // An origin alone serves the OpenAI paths under `/v1`, as every known server does.
            "" => format!("{origin}/v1"),
            _ => url.trim_end_matches('/').to_owned(),
        };
        let root = match base.strip_suffix("/v1") {
            Some(root) => root.to_owned(),
            None => origin,
        };
        Ok(Self { base, root })
    }

    /// The upstream URL of a path (with its query) asked of the proxy: `/v1/…` under the base,
    /// anything else under the root.
    pub fn url(&self, path_and_query: &str) -> String {
        match path_and_query.strip_prefix("/v1") {
            Some(rest) if rest.is_empty() || rest.starts_with(['/', '?']) => {
                format!("{}{rest}", self.base)
            }
            _ => format!("{}{path_and_query}", self.root),
        }
    }

    pub fn base(&self) -> &str {
        &self.base
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
    fn bad_urls_are_refused() {
        for url in ["localhost:8000", "ftp://x/v1", "http://x/v1?key=1", "not a url", ""] {
            assert!(Upstream::parse(url).is_err(), "{url}");
        }
    }
}

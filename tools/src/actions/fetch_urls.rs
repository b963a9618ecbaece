//! `fetch_urls`: reads every URL of `with.urls` and returns `[{"url", "body"}, …]` in order.
//! `http://` and `https://` URLs are fetched (a 5xx or 429 answer is worth another attempt,
//! another non-success status is not); `file:` URLs are read from disk, a relative one
//! (`file:pages/a.html`) from the spec's base folder, so a pipeline and its pages move together.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::action::Action;
use crate::http::{FetchError, Fetcher, get_text};
use crate::step::{ActionError, ActionFuture, StepContext};

pub struct FetchUrls {
    http: Fetcher,
}

impl Default for FetchUrls {
    /// No bound on a whole request: a step's `timeout` is the bound.
    fn default() -> Self {
        FetchUrls { http: Fetcher::new(None) }
    }
}

impl Action for FetchUrls {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        let client = self.http.client();
        Box::pin(async move {
            let urls = urls(&input).map_err(ActionError::permanent)?;
            let mut pages = Vec::with_capacity(urls.len());
            for url in urls {
                let body = tokio::select! {
                    body = fetch(&client, &url, &context) => body?,
                    () = context.cancel.cancelled() => return Err(ActionError::Cancelled),
                };
                pages.push(json!({"url": url, "body": body}));
            }
            Ok(Value::Array(pages))
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        match with.get("urls") {
            // A template that will be filled with a list.
            Some(Value::String(_)) => Ok(()),
            Some(_) => urls(with).map(|_| ()),
            None => Err("`with.urls` is missing".to_owned()),
        }
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["urls"])
    }
}

fn urls(with: &Value) -> Result<Vec<String>, String> {
    let list =
        with.get("urls").and_then(Value::as_array).ok_or("`with.urls` must be a list of URLs")?;
    list.iter()
        .map(|url| match url.as_str() {
            Some(url) if is_supported(url) => Ok(url.to_owned()),
            Some(url) => Err(format!("`{url}` is not an http(s) or file URL")),
            None => Err("`with.urls` must be a list of URL strings".to_owned()),
        })
        .collect()
}

fn is_supported(url: &str) -> bool {
    ["http://", "https://", "file:"].iter().any(|scheme| url.starts_with(scheme))
}

async fn fetch(
    client: &reqwest::Client,
    url: &str,
    context: &StepContext,
) -> Result<String, ActionError> {
    if let Some(rest) = url.strip_prefix("file:") {
        let path = file_path(url, rest, context)?;
        return tokio::fs::read_to_string(&path).await.map_err(|error| {
            let message = format!("{url}: cannot read {}: {error}", path.display());
            if error.kind() == std::io::ErrorKind::NotFound {
                ActionError::permanent(message)
            } else {
                ActionError::failed(message)
            }
        });
    }
    get_text(client, url).await.map_err(|error| {
        let message = match &error {
            FetchError::Status(status) => format!("{url}: HTTP {status}"),
            FetchError::Send(error) | FetchError::Body(error) => format!("{url}: {error}"),
        };
        if error.is_transient() {
            ActionError::failed(message)
        } else {
            ActionError::permanent(message)
        }
    })
}

/// `file:///abs/path` (or `file://localhost/abs/path`) is absolute; `file:rel/path` is relative
/// to the spec's base folder.
fn file_path(url: &str, rest: &str, context: &StepContext) -> Result<PathBuf, ActionError> {
    if let Some(authority_and_path) = rest.strip_prefix("//") {
        let parsed = reqwest::Url::parse(url)
            .map_err(|error| ActionError::permanent(format!("{url}: {error}")))?;
        let host_ok = authority_and_path.starts_with('/') || parsed.host_str() == Some("localhost");
        return match parsed.to_file_path() {
            Ok(path) if host_ok => Ok(path),
            _ => Err(ActionError::permanent(format!("{url}: not a local file URL"))),
        };
    }
    if rest.is_empty() {
        return Err(ActionError::permanent(format!("{url}: no path")));
    }
    Ok(context.resolve(rest))
}

//! `fetch_url`: the body of an `http://` or `https://` URL, as text, at most 64 KiB of it
//! (fetched as the `fetch_urls` action fetches). Other schemes are refused (a `file:` URL would
//! be a way around the workspace).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{MAX_OUTPUT_BYTES, arguments, truncated};
use crate::http::{FetchError, Fetcher, get_text};
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

pub struct FetchUrl {
    http: Fetcher,
}

impl Default for FetchUrl {
    /// A request, body included, may take a minute.
    fn default() -> Self {
        FetchUrl { http: Fetcher::new(Some(Duration::from_secs(60))) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Args {
    url: String,
}

impl Tool for FetchUrl {
    fn name(&self) -> &str {
        "fetch_url"
    }

    fn description(&self) -> &str {
        "Fetch an http(s) URL and return its body as text"
    }

    fn parameters(&self) -> Value {
        json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
            "url": {"type": "string", "description": "an http:// or https:// URL"}}})
    }

    fn call(&self, args: Value, context: StepContext) -> ActionFuture {
        let client = self.http.client();
        Box::pin(async move {
            let args: Args = arguments("fetch_url", args)?;
            let lower = args.url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(ActionError::permanent(format!(
                    "`{}`: only http:// and https:// URLs can be fetched",
                    args.url
                )));
            }
            let url = &args.url;
            let body = tokio::select! {
                body = get_text(&client, url) => body,
                () = context.cancel.cancelled() => return Err(ActionError::Cancelled),
            };
            // Every error status is final here: the model reads it and decides what to do.
            match body {
                Ok(body) => Ok(Value::String(truncated(&body, MAX_OUTPUT_BYTES))),
                Err(FetchError::Send(error)) => {
                    Err(ActionError::failed(format!("cannot fetch `{url}`: {error}")))
                }
                Err(FetchError::Body(error)) => {
                    Err(ActionError::failed(format!("cannot read `{url}`: {error}")))
                }
                Err(FetchError::Status(status)) => {
                    Err(ActionError::permanent(format!("`{url}` answered HTTP {status}")))
                }
            }
        })
    }
}

//! `fetch_url`: the body of an `http://` or `https://` URL, as text. Other schemes are refused
//! (a `file:` URL would be a way around the workspace).

use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::args::{MAX_OUTPUT_BYTES, arguments, truncated};
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

#[derive(Default)]
pub struct FetchUrl {
    client: OnceLock<reqwest::Client>,
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
        let client = self
            .client
            .get_or_init(|| {
                reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .timeout(Duration::from_secs(60))
                    .user_agent(concat!("taskflow/", env!("CARGO_PKG_VERSION")))
                    .build()
                    .unwrap_or_default()
            })
            .clone();
        Box::pin(async move {
            let args: Args = arguments("fetch_url", args)?;
            let lower = args.url.to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                return Err(ActionError::permanent(format!(
                    "`{}`: only http:// and https:// URLs can be fetched",
                    args.url
                )));
            }
            let fetch = async {
                let response = client.get(&args.url).send().await.map_err(|error| {
                    ActionError::failed(format!("cannot fetch `{}`: {error}", args.url))
                })?;
                let status = response.status();
                let body = response.text().await.map_err(|error| {
                    ActionError::failed(format!("cannot read `{}`: {error}", args.url))
                })?;
                if !status.is_success() {
                    return Err(ActionError::permanent(format!(
                        "`{}` answered HTTP {status}",
                        args.url
                    )));
                }
                Ok(Value::String(truncated(&body, MAX_OUTPUT_BYTES)))
            };
            tokio::select! {
                result = fetch => result,
                () = context.cancel.cancelled() => Err(ActionError::Cancelled),
            }
        })
    }
}

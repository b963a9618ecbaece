//! A tool of an MCP server as a taskflow [`Tool`]: offered to the model as `SERVER__TOOL` with
//! the server's description and JSON input schema, and called with the step's idempotency key
//! in the request's `_meta` (`taskflow/idempotency_key`), so a call repeated after a crash
//! carries the key of the first attempt. What goes wrong with a call (an error answer, an
//! `isError` result, no answer within `tool_timeout_sec`) is an error the model reads, never
//! retried: the server may have done the work.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, RequestMetaObject};
use rmcp::{Peer, RoleClient};
use serde_json::Value;

use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

/// The `_meta` key of a call's idempotency key.
pub const IDEMPOTENCY_META_KEY: &str = "taskflow/idempotency_key";

/// The longest tool name providers accept.
const MAX_NAME: usize = 64;

/// A server's tool.
pub struct McpTool {
    /// `SERVER__TOOL`.
    name: String,
    server: String,
    /// The server's own name for it.
    tool: String,
    description: String,
    schema: Value,
    timeout: Duration,
    peer: Peer<RoleClient>,
}

impl McpTool {
    pub(crate) fn new(
        server: &str,
        tool: &rmcp::model::Tool,
        timeout: Duration,
        peer: Peer<RoleClient>,
    ) -> McpTool {
        let description =
            tool.description.as_deref().or(tool.title.as_deref()).unwrap_or_default().to_owned();
        McpTool {
            name: runtime_name(server, &tool.name),
            server: server.to_owned(),
            tool: tool.name.to_string(),
            description,
            schema: Value::Object((*tool.input_schema).clone()),
            timeout,
            peer,
        }
    }
}

/// The name a model sees: `SERVER__TOOL`, with every character a provider refuses in a tool
/// name (outside `A-Z a-z 0-9 _ -`) written as `_`; a name longer than 64 characters keeps its
/// first 55 and a hash of the whole, so it stays the same from one run to the next.
pub fn runtime_name(server: &str, tool: &str) -> String {
    let name: String = format!("{server}__{tool}")
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    if name.len() <= MAX_NAME {
        return name;
    }
    format!(
        "{}_{:08x}",
        &name[..MAX_NAME - 9],
        fnv1a(format!("{server}__{tool}").as_bytes()) as u32
    )
}

/// FNV-1a: a hash that is the same in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the model reads of a result: its text blocks, one per line; any other block (an
/// image, a resource) as its JSON; the structured content when there is no block at all.
pub(crate) fn result_text(result: &CallToolResult) -> String {
    let blocks: Vec<String> = result
        .content
        .iter()
        .map(|block| match block {
            ContentBlock::Text(text) => text.text.clone(),
            other => serde_json::to_string(other).unwrap_or_default(),
        })
        .collect();
    match (&result.structured_content, blocks.is_empty()) {
        (Some(structured), true) => structured.to_string(),
        _ => blocks.join("\n"),
    }
}

impl Tool for McpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.schema.clone()
    }

    fn call(&self, args: Value, context: StepContext) -> ActionFuture {
        let (peer, server, tool, limit) =
            (self.peer.clone(), self.server.clone(), self.tool.clone(), self.timeout);
        Box::pin(async move {
            let Value::Object(arguments) = args else {
                return Err(ActionError::permanent("the arguments must be a JSON object"));
            };
            let mut meta = RequestMetaObject::new();
            meta.insert(IDEMPOTENCY_META_KEY.to_owned(), Value::String(context.idempotency_key));
            let mut params = CallToolRequestParams::new(tool).with_arguments(arguments);
            params.meta = Some(meta);
            let answer = tokio::select! {
                answer = tokio::time::timeout(limit, peer.call_tool(params)) => answer,
                () = context.cancel.cancelled() => return Err(ActionError::Cancelled),
            };
            match answer {
                Err(_) => Err(ActionError::permanent(format!(
                    "the MCP server `{server}` did not answer within {} s (tool_timeout_sec)",
                    limit.as_secs_f64()
                ))),
                Ok(Err(error)) => Err(ActionError::permanent(format!(
                    "the MCP server `{server}` failed the call: {error}"
                ))),
                Ok(Ok(result)) if result.is_error == Some(true) => {
                    Err(ActionError::permanent(result_text(&result)))
                }
                Ok(Ok(result)) => Ok(Value::String(result_text(&result))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_sees_server_and_tool_in_the_characters_providers_accept() {
        for (server, tool, expected) in [
            ("fx", "count", "fx__count"),
            ("files", "read.file/v2", "files__read_file_v2"),
            ("gh", "créer", "gh__cr_er"),
        ] {
            assert_eq!(runtime_name(server, tool), expected);
        }
        let long = runtime_name("server", &"t".repeat(80));
        assert_eq!(long.len(), 64);
        assert_eq!(long, runtime_name("server", &"t".repeat(80)), "the same in every run");
        assert_ne!(long, runtime_name("server", &"t".repeat(81)));
        assert!(long.starts_with("server__ttt"), "{long}");
    }

    #[test]
    fn a_result_reads_as_its_text_blocks_or_else_its_structured_content() {
        let text: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
            "structuredContent": {"n": 2},
        }))
        .unwrap();
        assert_eq!(result_text(&text), "one\ntwo");
        let structured: CallToolResult = serde_json::from_value(
            serde_json::json!({"content": [], "structuredContent": {"n": 2}}),
        )
        .unwrap();
        assert_eq!(result_text(&structured), r#"{"n":2}"#);
        let image: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [{"type": "image", "data": "AAAA", "mimeType": "image/png"}],
        }))
        .unwrap();
        assert!(result_text(&image).contains("image/png"), "{}", result_text(&image));
    }
}

//! A tool of an MCP server as a taskflow [`Tool`]: offered to the model as `SERVER__TOOL` with
//! the server's description and JSON input schema, and called with the step's idempotency key
//! in the request's `_meta` (`taskflow/idempotency_key`), so a call repeated after a crash
//! carries the key of the first attempt. What goes wrong with a call (an error answer, an
//! `isError` result, a reply that cannot be read, no answer within `tool_timeout_sec`, a
//! server that stopped) is an error the model reads, never retried: the server may have done
//! the work. A result goes to the model and into the journal, so it is cut as the built-in
//! tools' are.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock, RequestMetaObject};
use rmcp::{Peer, RoleClient, ServiceError};
use serde_json::Value;

use super::connection::McpError;
use super::stdio::{Stopped, unreadable_reply};
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tool;

/// The `_meta` key of a call's idempotency key.
pub const IDEMPOTENCY_META_KEY: &str = "taskflow/idempotency_key";

/// The longest tool name providers accept.
const MAX_NAME: usize = 64;

/// The most bytes of a result the model reads: what a built-in tool returns at most.
pub const MAX_RESULT_BYTES: usize = crate::tools::args::MAX_OUTPUT_BYTES;

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
    stopped: Arc<Stopped>,
}

impl McpTool {
    pub(crate) fn new(
        server: &str,
        tool: &rmcp::model::Tool,
        timeout: Duration,
        peer: Peer<RoleClient>,
        stopped: &Arc<Stopped>,
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
            stopped: stopped.clone(),
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

/// The first two of `tools` (each its server's name and the server's name of the tool) that a
/// model would see under one name, as the error that refuses them.
pub(crate) fn clash<'a>(tools: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<McpError> {
    let mut seen: HashMap<String, (&str, &str)> = HashMap::new();
    for (server, tool) in tools {
        let name = runtime_name(server, tool);
        let Some((first_server, first_tool)) = seen.insert(name.clone(), (server, tool)) else {
            continue;
        };
        let problem = if first_server == server {
            format!(
                "offers its tools `{first_tool}` and `{tool}` both as `{name}`, so a model \
                 could not call one of them; leave one out with `disabled_tools` in \
                 [mcp_servers.{server}]"
            )
        } else {
            format!(
                "offers its tool `{first_tool}` as `{name}`, the name the MCP server `{server}` \
                 offers its tool `{tool}` as, so a model could not call one of them; leave one \
                 out with `disabled_tools`"
            )
        };
        return Some(McpError { server: first_server.to_owned(), problem });
    }
    None
}

/// FNV-1a: a hash that is the same in every build.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What the model reads of a result: its text blocks, one per line; any other block (an
/// image, a resource) as its JSON; the structured content when there is no block at all; cut
/// at [`MAX_RESULT_BYTES`], with a note of how much is not shown.
pub(crate) fn result_text(result: &CallToolResult) -> String {
    crate::tools::args::truncated(&whole_text(result), MAX_RESULT_BYTES)
}

/// The whole text of a result, as [`result_text`] reads it.
fn whole_text(result: &CallToolResult) -> String {
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
        let stopped = self.stopped.clone();
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
                Ok(Err(error)) => {
                    let known = match &error {
                        ServiceError::McpError(data) => unreadable_reply(data).map(str::to_owned),
                        // A server that stopped fails every call from then on: how it ended
                        // says why.
                        _ => stopped.message(&server),
                    };
                    Err(ActionError::permanent(known.unwrap_or_else(|| {
                        format!("the MCP server `{server}` failed the call: {error}")
                    })))
                }
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
    fn tools_a_model_would_see_under_one_name_are_refused_naming_both() {
        assert_eq!(clash([("a", "dup.x"), ("b", "dup.x"), ("a", "b")]), None);
        let within = clash([("a", "dup.x"), ("a", "other"), ("a", "dup_x")]).unwrap();
        assert_eq!(within.server, "a");
        assert!(
            within.to_string().starts_with(
                "MCP server `a` offers its tools `dup.x` and `dup_x` both as `a__dup_x`"
            ),
            "{within}"
        );
        let across = clash([("a", "b__c"), ("a__b", "c")]).unwrap();
        assert!(
            across.to_string().starts_with(
                "MCP server `a` offers its tool `b__c` as `a__b__c`, the name the MCP server \
                 `a__b` offers its tool `c` as"
            ),
            "{across}"
        );
    }

    #[test]
    fn a_result_past_the_limit_is_cut_saying_how_much_is_not_shown() {
        let long: CallToolResult = serde_json::from_value(serde_json::json!({
            "content": [{"type": "text", "text": "é".repeat(MAX_RESULT_BYTES)}],
        }))
        .unwrap();
        let text = result_text(&long);
        let shown = "é".repeat(MAX_RESULT_BYTES / 2);
        assert_eq!(text, format!("{shown}\n[… {} more bytes not shown]", MAX_RESULT_BYTES));
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

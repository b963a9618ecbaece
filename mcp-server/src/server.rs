//! The MCP server itself: the handler every transport runs. It answers `tools/list` with the
//! tool set and `tools/call` by calling the tool for the caller's owner, which the caller never
//! chooses: over stdio the owner the server was started for, over HTTP the owner the host's
//! authentication put on the request ([`RequestOwner`]). A tool that fails answers a tool
//! error (`isError`) that says what went wrong, its stable code and, where one helps, a hint;
//! a flow of another owner is not found, exactly as one that does not exist.

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value, json};
use taskflow_api::{ApiError, ErrorCode};

use crate::calls::Flows;
use crate::tools::FlowTool;

/// Whose flows the tools see and change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerBinding {
    /// Every call acts for this owner (a stdio server, started by its user).
    Fixed(String),
    /// Each call acts for the owner its HTTP request carries ([`RequestOwner`]).
    PerRequest,
}

/// The owner an HTTP request acts for, put into the request's extensions by the host's
/// authentication before the MCP service sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestOwner(pub String);

/// Whether an HTTP request's pipelines may reach the host (commands, files, the network, the
/// environment), put beside its [`RequestOwner`]; a request without it may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHost(pub bool);

/// The MCP server of one process; cheap to clone (each HTTP session gets a clone).
#[derive(Clone)]
pub struct FlowServer(Arc<Inner>);

struct Inner {
    flows: Flows,
    owner: OwnerBinding,
    tools: Vec<Tool>,
}

impl FlowServer {
    pub fn new(flows: Flows, owner: OwnerBinding) -> Self {
        let tools = FlowTool::ALL.map(FlowTool::describe).to_vec();
        FlowServer(Arc::new(Inner { flows, owner, tools }))
    }

    /// The owner a call acts for.
    fn owner(&self, context: &RequestContext<RoleServer>) -> Result<String, ErrorData> {
        match &self.0.owner {
            OwnerBinding::Fixed(owner) => Ok(owner.clone()),
            OwnerBinding::PerRequest => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<RequestOwner>())
                .map(|RequestOwner(owner)| owner.clone())
                .ok_or_else(|| ErrorData::internal_error("the request carries no owner", None)),
        }
    }

    /// Whether a call's pipelines may reach the host: a stdio server's caller is its user.
    fn host(&self, context: &RequestContext<RoleServer>) -> bool {
        match &self.0.owner {
            OwnerBinding::Fixed(_) => true,
            OwnerBinding::PerRequest => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<RequestHost>())
                .is_some_and(|RequestHost(host)| *host),
        }
    }
}

impl ServerHandler for FlowServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("taskflow", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Durable flows (pipelines and agent runs) of one owner, as tools: list, \
                 inspect and follow them, run a pipeline, resume, cancel, send a signal, decide \
                 a tool call an agent run waits for. Flows keep running when this session ends.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.0.tools.clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0.tools.iter().find(|tool| tool.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(tool) = FlowTool::named(&request.name) else {
            let known: Vec<&str> = FlowTool::ALL.map(FlowTool::name).to_vec();
            return Err(ErrorData::invalid_params(
                format!("there is no tool `{}` (tools: {})", request.name, known.join(", ")),
                None,
            ));
        };
        let owner = self.owner(&context)?;
        let host = self.host(&context);
        let arguments = request.arguments.unwrap_or_default();
        let answer = self.0.flows.call(&owner, host, tool, arguments).await;
        Ok(match answer {
            Ok(document) => CallToolResult::structured(document),
            Err(error) => tool_error(&error),
        }
        .into())
    }
}

/// A failed call as a tool error: `{"error": {"code", "message", "hint"?}}`, and the same in
/// words for a model that reads only text.
fn tool_error(error: &ApiError) -> CallToolResult {
    let code = error.code();
    let hint = error.hint().map(str::to_owned).or_else(|| match code {
        ErrorCode::NotFound => Some("list_flows shows your flows".to_owned()),
        _ => None,
    });
    let mut body = Map::new();
    body.insert("code".to_owned(), json!(code.as_str()));
    body.insert("message".to_owned(), json!(error.to_string()));
    let mut text = format!("error ({}): {error}", code.as_str());
    if let Some(hint) = hint {
        text.push_str(&format!("\nhint: {hint}"));
        body.insert("hint".to_owned(), json!(hint));
    }
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({ "error": Value::Object(body) }));
    result
}

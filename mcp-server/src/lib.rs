//! `taskflow-mcp-server`: taskflow as an MCP server (DESIGN §11). Other agents see an owner's
//! flows as tools: list, inspect and follow them, run a pipeline, resume, cancel, send a
//! signal, decide an approval. The tool set ([`tools`]) and what each tool does ([`calls`])
//! are defined once and served over two transports: stdio ([`stdio`], `taskflow mcp serve`)
//! and streamable HTTP ([`http`], mounted by `taskflow serve` at `/mcp`).
//!
//! Every tool answers with the documents of `taskflow_api::documents`, the same ones the CLI's
//! `--json` and serve's HTTP API answer, through the same store calls and api checks: no
//! operation is implemented twice. The caller never chooses its owner ([`OwnerBinding`]).
//!
//! ```text
//! let server = FlowServer::new(Flows { taskflow, engine, runs, files: true }, OwnerBinding::Fixed(owner));
//! serve_stdio(server, runs, grace, shutdown).await?;       // or http::service(server, options)
//! ```

pub mod calls;
pub mod http;
pub mod inputs;
pub mod server;
pub mod stdio;
pub mod tools;

pub use calls::Flows;
pub use server::{FlowServer, OwnerBinding, RequestHost, RequestOwner};
pub use stdio::{StdioError, serve_stdio};

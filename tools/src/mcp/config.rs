//! What the config file says about MCP servers: one `[mcp_servers.NAME]` table each, in the
//! shape Codex users know. A server is started as a child process that talks on stdio
//! (`command`, `args`, `env`, `cwd`) or reached over streamable HTTP (`url`, with the bearer
//! token read from `bearer_token_env_var`); `enabled_tools` / `disabled_tools` choose which of
//! its tools a model sees, `startup_timeout_sec` bounds its start and `tool_timeout_sec` each
//! call. A table is checked whole when the file is read, and every refusal names the server
//! and the key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

/// How long a server may take to start and answer `initialize`, unless its table says.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one tool call may take, unless its table says.
pub const DEFAULT_TOOL_TIMEOUT: Duration = Duration::from_secs(60);

/// The configured servers by name, in name order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpServers(pub BTreeMap<String, McpServer>);

/// One configured server.
#[derive(Debug, Clone, PartialEq)]
pub struct McpServer {
    pub transport: McpTransport,
    /// `false`: the server is configured but not used (`enabled = false`).
    pub enabled: bool,
    /// Only these tools are offered (by the server's names), when given.
    pub enabled_tools: Option<Vec<String>>,
    /// These tools are never offered.
    pub disabled_tools: Vec<String>,
    pub startup_timeout: Duration,
    pub tool_timeout: Duration,
}

/// How a server is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum McpTransport {
    /// A child process talking MCP on its stdin and stdout; its stderr goes to a log file.
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// Streamable HTTP at `url`, with `Authorization: Bearer` from that variable when named.
    Http { url: String, bearer_token_env_var: Option<String> },
}

impl McpServer {
    /// Whether the model is offered the server's tool `name`.
    pub fn offers(&self, name: &str) -> bool {
        let enabled = self.enabled_tools.as_ref().is_none_or(|only| only.iter().any(|n| n == name));
        enabled && !self.disabled_tools.iter().any(|n| n == name)
    }
}

impl McpTransport {
    /// `stdio` or `http`.
    pub fn kind(&self) -> &'static str {
        match self {
            McpTransport::Stdio { .. } => "stdio",
            McpTransport::Http { .. } => "http",
        }
    }
}

/// A table as written, before it is checked.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    bearer_token_env_var: Option<String>,
    enabled: Option<bool>,
    enabled_tools: Option<Vec<String>>,
    #[serde(default)]
    disabled_tools: Vec<String>,
    startup_timeout_sec: Option<f64>,
    tool_timeout_sec: Option<f64>,
}

/// Whether `name` can prefix tool names (`NAME__TOOL`) every provider accepts, and is all of
/// what comes before their first `__` (no `__` in it, no `_` at its end): then no two servers'
/// tools can have one name, and a name says which server its tool is of.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.contains("__")
        && !name.ends_with('_')
}

/// The longest `startup_timeout_sec`.
const MAX_STARTUP_SECONDS: f64 = 3600.0;
/// The longest `tool_timeout_sec`: an agent stops any tool call after 300 s.
const MAX_TOOL_SECONDS: f64 = 300.0;

fn seconds(value: Option<f64>, key: &str, max: f64, default: Duration) -> Result<Duration, String> {
    match value {
        None => Ok(default),
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= max => {
            Ok(Duration::from_secs_f64(seconds))
        }
        Some(seconds) => {
            Err(format!("`{key}` is {seconds}; it must be above 0 and at most {max} seconds"))
        }
    }
}

impl TryFrom<Table> for McpServer {
    type Error = String;

    fn try_from(table: Table) -> Result<Self, String> {
        let stdio_only = [
            ("args", !table.args.is_empty()),
            ("env", !table.env.is_empty()),
            ("cwd", table.cwd.is_some()),
        ];
        let transport = match (table.command, table.url) {
            (Some(_), Some(_)) => {
                return Err("has both `command` and `url`; give `command` for a server started \
                            as a child process (stdio) or `url` for streamable HTTP, not both"
                    .to_owned());
            }
            (None, None) => {
                return Err("has neither `command` nor `url`; give `command` for a server \
                            started as a child process (stdio) or `url` for streamable HTTP"
                    .to_owned());
            }
            (Some(command), None) => {
                if command.trim().is_empty() {
                    return Err("`command` is empty".to_owned());
                }
                if let Some(variable) = table.bearer_token_env_var {
                    return Err(format!(
                        "`bearer_token_env_var` (`{variable}`) is for a `url` server; a \
                         `command` server reads its secrets from its environment"
                    ));
                }
                McpTransport::Stdio { command, args: table.args, env: table.env, cwd: table.cwd }
            }
            (None, Some(url)) => {
                if let Some((key, _)) = stdio_only.iter().find(|(_, given)| *given) {
                    return Err(format!("`{key}` is for a `command` server, not a `url` one"));
                }
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!(
                        "`url` is `{url}`; it must begin with http:// or https://"
                    ));
                }
                if let Some(variable) = &table.bearer_token_env_var
                    && variable.trim().is_empty()
                {
                    return Err("`bearer_token_env_var` is empty".to_owned());
                }
                McpTransport::Http { url, bearer_token_env_var: table.bearer_token_env_var }
            }
        };
        Ok(McpServer {
            transport,
            enabled: table.enabled.unwrap_or(true),
            enabled_tools: table.enabled_tools,
            disabled_tools: table.disabled_tools,
            startup_timeout: seconds(
                table.startup_timeout_sec,
                "startup_timeout_sec",
                MAX_STARTUP_SECONDS,
                DEFAULT_STARTUP_TIMEOUT,
            )?,
            tool_timeout: seconds(
                table.tool_timeout_sec,
                "tool_timeout_sec",
                MAX_TOOL_SECONDS,
                DEFAULT_TOOL_TIMEOUT,
            )?,
        })
    }
}

impl<'de> Deserialize<'de> for McpServers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Servers;

        impl<'de> Visitor<'de> for Servers {
            type Value = McpServers;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table of MCP servers, one `[mcp_servers.NAME]` each")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<McpServers, A::Error> {
                let mut servers = BTreeMap::new();
                while let Some(name) = map.next_key::<String>()? {
                    let at = format!("[mcp_servers.{name}]");
                    if !valid_server_name(&name) {
                        return Err(A::Error::custom(format!(
                            "{at}: a server's name is 1 to 32 letters, digits, `_` or `-`, \
                             without `__` and not ending in `_` (its tools are offered as \
                             NAME__TOOL, and two servers' tools must not share a name)"
                        )));
                    }
                    let table: Table = map.next_value().map_err(|error| {
                        let error = error.to_string();
                        let error = error.trim().replace("unknown field", "unknown key");
                        A::Error::custom(format!("{at}: {error}"))
                    })?;
                    let server = McpServer::try_from(table)
                        .map_err(|error| A::Error::custom(format!("{at} {error}")))?;
                    servers.insert(name, server);
                }
                Ok(McpServers(servers))
            }
        }

        deserializer.deserialize_map(Servers)
    }
}

impl McpServers {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&McpServer> {
        self.0.get(name)
    }

    /// The servers named, in the order given, each once; an unknown or disabled one is an
    /// error that says which servers there are.
    pub fn chosen(&self, names: &[String]) -> Result<Vec<(String, McpServer)>, String> {
        let mut chosen: Vec<(String, McpServer)> = Vec::new();
        for name in names {
            if chosen.iter().any(|(known, _)| known == name) {
                continue;
            }
            match self.0.get(name) {
                Some(server) if server.enabled => chosen.push((name.clone(), server.clone())),
                Some(_) => {
                    return Err(format!(
                        "the MCP server `{name}` is disabled in the config file \
                         ([mcp_servers.{name}] enabled = false)"
                    ));
                }
                None => {
                    let known: Vec<&str> = self.0.keys().map(String::as_str).collect();
                    let known = if known.is_empty() {
                        "none is configured".to_owned()
                    } else {
                        format!("configured: {}", known.join(", "))
                    };
                    return Err(format!(
                        "there is no MCP server `{name}` in the config file's [mcp_servers] \
                         ({known})"
                    ));
                }
            }
        }
        Ok(chosen)
    }
}

/// The serialized form keeps nothing secret: it is what `taskflow mcp list --json` shows of a
/// server (the names of `env`'s variables, never their values).
impl Serialize for McpServer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("transport", self.transport.kind())?;
        match &self.transport {
            McpTransport::Stdio { command, args, env, cwd } => {
                map.serialize_entry("command", command)?;
                map.serialize_entry("args", args)?;
                map.serialize_entry("env", &env.keys().collect::<Vec<_>>())?;
                map.serialize_entry("cwd", cwd)?;
            }
            McpTransport::Http { url, bearer_token_env_var } => {
                map.serialize_entry("url", url)?;
                map.serialize_entry("bearer_token_env_var", bearer_token_env_var)?;
            }
        }
        map.serialize_entry("enabled", &self.enabled)?;
        map.serialize_entry("enabled_tools", &self.enabled_tools)?;
        map.serialize_entry("disabled_tools", &self.disabled_tools)?;
        map.serialize_entry("startup_timeout_sec", &self.startup_timeout.as_secs_f64())?;
        map.serialize_entry("tool_timeout_sec", &self.tool_timeout.as_secs_f64())?;
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        mcp_servers: McpServers,
    }

    fn read(text: &str) -> Result<McpServers, String> {
        toml::from_str::<File>(text)
            .map(|file| file.mcp_servers)
            .map_err(|e| e.message().to_owned())
    }

    /// The file `text` is refused with a message that holds `expected`.
    fn refused(text: &str, expected: &str) {
        match read(text) {
            Ok(servers) => panic!("accepted {text:?} as {servers:?}"),
            Err(error) => assert!(error.contains(expected), "{error:?} lacks {expected:?}"),
        }
    }

    #[test]
    fn stdio_and_http_servers_are_read_with_their_defaults() {
        let servers = read(
            r#"
[mcp_servers.files]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]
env = { LOG_LEVEL = "debug" }
cwd = "/srv"
disabled_tools = ["write_file"]
tool_timeout_sec = 2.5

[mcp_servers.docs]
url = "https://mcp.example.com/mcp"
bearer_token_env_var = "DOCS_TOKEN"
enabled_tools = ["search"]
startup_timeout_sec = 20
"#,
        )
        .unwrap();
        let files = servers.get("files").unwrap();
        assert_eq!(
            files.transport,
            McpTransport::Stdio {
                command: "npx".into(),
                args: vec![
                    "-y".into(),
                    "@modelcontextprotocol/server-filesystem".into(),
                    "/tmp".into()
                ],
                env: BTreeMap::from([("LOG_LEVEL".into(), "debug".into())]),
                cwd: Some("/srv".into()),
            }
        );
        assert_eq!(files.startup_timeout, DEFAULT_STARTUP_TIMEOUT);
        assert_eq!(files.tool_timeout, Duration::from_millis(2500));
        assert!(files.offers("read_file") && !files.offers("write_file"));
        let docs = servers.get("docs").unwrap();
        assert_eq!(docs.transport.kind(), "http");
        assert_eq!(docs.startup_timeout, Duration::from_secs(20));
        assert!(docs.offers("search") && !docs.offers("fetch"));
        assert!(read("").unwrap().is_empty());
    }

    #[test]
    fn every_refusal_names_the_server_and_the_key() {
        for (text, expected) in [
            ("[mcp_servers.a]\ncomand = \"x\"\n", "[mcp_servers.a]: unknown key `comand`"),
            (
                "[mcp_servers.a]\ncommand = \"x\"\nurl = \"http://h\"\n",
                "[mcp_servers.a] has both `command` and `url`",
            ),
            (
                "[mcp_servers.a]\nargs = [\"x\"]\n",
                "[mcp_servers.a] has neither `command` nor `url`",
            ),
            ("[mcp_servers.a]\ncommand = \" \"\n", "[mcp_servers.a] `command` is empty"),
            ("[mcp_servers.a]\nurl = \"ftp://h\"\n", "[mcp_servers.a] `url` is `ftp://h`"),
            (
                "[mcp_servers.a]\nurl = \"http://h\"\nargs = [\"x\"]\n",
                "[mcp_servers.a] `args` is for a `command` server",
            ),
            (
                "[mcp_servers.a]\ncommand = \"x\"\nbearer_token_env_var = \"T\"\n",
                "[mcp_servers.a] `bearer_token_env_var` (`T`) is for a `url` server",
            ),
            (
                "[mcp_servers.a]\ncommand = \"x\"\ntool_timeout_sec = 0\n",
                "[mcp_servers.a] `tool_timeout_sec` is 0",
            ),
            (
                "[mcp_servers.a]\ncommand = \"x\"\nstartup_timeout_sec = -1\n",
                "`startup_timeout_sec` is -1",
            ),
            ("[mcp_servers.a]\ncommand = \"x\"\ntool_timeout_sec = 301\n", "at most 300 seconds"),
            ("[mcp_servers.a]\ncommand = 3\n", "[mcp_servers.a]: invalid type"),
            ("[mcp_servers.\"a.b\"]\ncommand = \"x\"\n", "[mcp_servers.a.b]: a server's name is"),
            // `a__b`'s tool `c` and `a`'s tool `b__c` would both be `a__b__c`; `a_`'s tool `x`
            // and `a`'s tool `_x` both `a___x`.
            ("[mcp_servers.a__b]\ncommand = \"x\"\n", "[mcp_servers.a__b]: a server's name is"),
            ("[mcp_servers.a_]\ncommand = \"x\"\n", "without `__` and not ending in `_`"),
        ] {
            refused(text, expected);
        }
    }

    #[test]
    fn servers_are_chosen_by_name_and_unknown_or_disabled_ones_are_refused() {
        let servers = read(
            "[mcp_servers.a]\ncommand = \"x\"\n[mcp_servers.b]\ncommand = \"y\"\nenabled = false\n",
        )
        .unwrap();
        let names = |chosen: Vec<(String, McpServer)>| -> Vec<String> {
            chosen.into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(names(servers.chosen(&["a".into(), "a".into()]).unwrap()), ["a"]);
        let error = servers.chosen(&["c".into()]).unwrap_err();
        assert!(
            error.contains("no MCP server `c`") && error.contains("configured: a, b"),
            "{error}"
        );
        assert!(servers.chosen(&["b".into()]).unwrap_err().contains("`b` is disabled"));
        assert!(
            McpServers::default().chosen(&["a".into()]).unwrap_err().contains("none is configured")
        );
    }

    #[test]
    fn the_serialized_form_keeps_env_values_out() {
        let servers = read(
            "[mcp_servers.a]\ncommand = \"x\"\nenv = { TOKEN = \"s3cret\" }\n[mcp_servers.b]\nurl = \"http://h/mcp\"\nbearer_token_env_var = \"B\"\n",
        )
        .unwrap();
        let text = serde_json::to_string(&servers.0).unwrap();
        assert!(text.contains("\"env\":[\"TOKEN\"]") && !text.contains("s3cret"), "{text}");
        assert!(text.contains("\"bearer_token_env_var\":\"B\""), "{text}");
    }
}

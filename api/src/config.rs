//! The config file: default provider and model, named providers (a preset with its own
//! address, model and key variable), agent defaults, the approval policy of agent tools and
//! the price of each model (for cost budgets), and the MCP servers agents may use.
//! Command-line flags override it.
//!
//! It is read from `TASKFLOW_CONFIG` if set, else `$XDG_CONFIG_HOME/taskflow/config.toml`,
//! else `~/.config/taskflow/config.toml`; a missing file is an empty config. What would only
//! fail later, or worse not fail, is refused as the file is read, with its position: a price
//! below zero or not a number (a cost budget would never be reached).
//!
//! ```toml
//! [defaults]
//! provider = "local"
//! max_turns = 30
//! allow_commands = ["ls", "cargo"]
//!
//! [approvals]
//! ask = ["run_command", "write_file"]
//! deny = ["fetch_url"]
//!
//! [prices."kimi-k2-0905-preview"]
//! input_per_mtok = 0.6
//! output_per_mtok = 2.5
//!
//! [serve.tokens]
//! ci = { owner = "ci", token_env = "TASKFLOW_CI_TOKEN" }
//!
//! [mcp_servers.files]
//! command = "npx"
//! args = ["-y", "@modelcontextprotocol/server-filesystem", "/srv/notes"]
//! disabled_tools = ["write_file"]
//!
//! [mcp_servers.docs]
//! url = "https://mcp.example.com/mcp"
//! bearer_token_env_var = "DOCS_MCP_TOKEN"
//!
//! [providers.local]
//! preset = "vllm"
//! base_url = "http://127.0.0.1:8000/v1"
//! model = "Qwen/Qwen3-32B"
//! api_key_env = "LOCAL_VLLM_KEY"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use taskflow_engine::agent::Price;
use taskflow_engine::tools::mcp::{McpServers, McpSettings};
use taskflow_providers::{ApiKey, ProviderConfig, check_base_url};

use crate::error::{ApiError, Result};

/// The variable that names another config file.
pub const CONFIG_ENV: &str = "TASKFLOW_CONFIG";

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub providers: BTreeMap<String, NamedProvider>,
    /// `taskflow serve`'s settings.
    #[serde(default)]
    pub serve: crate::tokens::ServeSection,
    /// Which agent tools wait for a person's decision (`ask`) and which never run (`deny`);
    /// the others are allowed.
    #[serde(default)]
    pub approvals: taskflow_engine::agent::Approvals,
    /// What each model costs (US dollars per million tokens), for cost budgets.
    #[serde(default, deserialize_with = "checked_prices")]
    pub prices: BTreeMap<String, Price>,
    /// The MCP servers agents may use (`--mcp NAME`), each checked whole when the file is read.
    #[serde(default)]
    pub mcp_servers: McpServers,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// A preset or a name under `[providers]`.
    pub provider: Option<String>,
    pub model: Option<String>,
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub allow_commands: Vec<String>,
}

/// A provider of one's own: a preset with other settings.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedProvider {
    pub preset: String,
    pub base_url: Option<String>,
    pub model: Option<String>,
    /// The environment variable that holds the key (better than the key itself).
    pub api_key_env: Option<String>,
    /// The key itself; it is never printed or stored anywhere else.
    api_key: Option<String>,
}

impl std::fmt::Debug for NamedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NamedProvider")
            .field("preset", &self.preset)
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key_env", &self.api_key_env)
            .field("api_key", &self.api_key.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl Config {
    /// The config file's path, if one can be named.
    pub fn path() -> Option<PathBuf> {
        Config::named_path().or_else(Config::default_path)
    }

    /// The file `TASKFLOW_CONFIG` names.
    fn named_path() -> Option<PathBuf> {
        std::env::var_os(CONFIG_ENV).filter(|path| !path.is_empty()).map(PathBuf::from)
    }

    fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".config")))?;
        Some(base.join("taskflow").join("config.toml"))
    }

    /// The config file, or an empty config when the usual one is not there. A file that
    /// `TASKFLOW_CONFIG` names must be there: a misspelt name would otherwise run on defaults
    /// without a word.
    pub fn load() -> Result<Config> {
        if let Some(path) = Config::named_path() {
            if !path.exists() {
                return Err(ApiError::Config {
                    message: format!("{CONFIG_ENV} names {}, which does not exist", path.display()),
                    hint: Some(format!(
                        "unset {CONFIG_ENV} to read the usual config file, or name an empty file \
                         (such as /dev/null) to run without one"
                    )),
                });
            }
            return Config::read(&path);
        }
        match Config::default_path() {
            Some(path) => Config::read(&path),
            None => Ok(Config::default()),
        }
    }

    /// The config file at `path`; an empty config when there is none.
    pub fn read(path: &Path) -> Result<Config> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Config::default());
            }
            Err(error) => {
                return Err(ApiError::Config {
                    message: format!("cannot read {}: {error}", path.display()),
                    hint: None,
                });
            }
        };
        toml::from_str(&text).map_err(|error| {
            let position = error.span().map_or(String::new(), |span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
                format!(":{line}:{column}")
            });
            ApiError::Config {
                message: format!("{}{position}: {}", path.display(), error.message().trim()),
                hint: Some(
                    "the config file is TOML: [defaults], [providers.NAME], [approvals], \
                     [prices.\"MODEL\"], [mcp_servers.NAME] and [serve] tables"
                        .to_owned(),
                ),
            }
        })
    }

    /// The provider called `name` (a name under `[providers]` or a preset), with this file's
    /// settings; `None` when it is neither.
    pub fn provider(&self, name: &str) -> std::result::Result<ProviderConfig, String> {
        let Some(named) = self.providers.get(name) else {
            let mut config = ProviderConfig::named(name).map_err(|error| error.message)?;
            if self.defaults.provider.as_deref() == Some(name)
                && let Some(model) = &self.defaults.model
            {
                config.model = model.clone();
            }
            return Ok(config);
        };
        let mut config = ProviderConfig::named(&named.preset)
            .map_err(|error| format!("[providers.{name}]: {}", error.message))?;
        if let Some(base_url) = &named.base_url {
            check_base_url(base_url)
                .map_err(|problem| format!("[providers.{name}] base_url: {problem}"))?;
            config.base_url = base_url.clone();
        }
        match (&named.model, &self.defaults.model) {
            (Some(model), _) => config.model = model.clone(),
            (None, Some(model)) if self.defaults.provider.as_deref() == Some(name) => {
                config.model = model.clone();
            }
            _ => {}
        }
        if let Some(variable) = &named.api_key_env {
            config.api_key = Some(ApiKey::from_named_env(variable)?);
        }
        if let Some(key) = named.api_key.clone().and_then(ApiKey::new) {
            config.api_key = Some(key);
        }
        Ok(config)
    }

    /// The MCP servers of this file, their logs beside the database at `database`.
    pub fn mcp_settings(&self, database: &Path) -> McpSettings {
        McpSettings {
            servers: self.mcp_servers.clone(),
            logs: Some(crate::database::mcp_log_dir(database)),
        }
    }

    /// Whether `name` names a provider (a preset or one of this file).
    pub fn knows(&self, name: &str) -> bool {
        self.providers.contains_key(name) || ProviderConfig::named(name).is_ok()
    }
}

/// `[prices."MODEL"]`, each checked as it is read, so that an error has its position.
fn checked_prices<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<BTreeMap<String, Price>, D::Error> {
    struct Prices;

    impl<'de> Visitor<'de> for Prices {
        type Value = BTreeMap<String, Price>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a table of prices, one `[prices.\"MODEL\"]` each")
        }

        fn visit_map<A: MapAccess<'de>>(
            self,
            mut map: A,
        ) -> std::result::Result<Self::Value, A::Error> {
            let mut prices = BTreeMap::new();
            while let Some(model) = map.next_key::<String>()? {
                let price = map.next_value_seed(CheckedPrice { model: &model })?;
                prices.insert(model, price);
            }
            Ok(prices)
        }
    }

    deserializer.deserialize_map(Prices)
}

/// One model's price: a number of dollars, 0 or more. A price below zero makes a run's cost
/// go down as it calls the model, and `nan` or `inf` make it no number, so that a cost budget
/// is never reached (or at once).
struct CheckedPrice<'a> {
    model: &'a str,
}

impl<'de> DeserializeSeed<'de> for CheckedPrice<'_> {
    type Value = Price;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Price, D::Error> {
        let price = Price::deserialize(deserializer)?;
        let fields =
            [("input_per_mtok", price.input_per_mtok), ("output_per_mtok", price.output_per_mtok)];
        for (field, value) in fields {
            if !value.is_finite() || value < 0.0 {
                return Err(D::Error::custom(format!(
                    "[prices.\"{}\"] {field} = {value} is not a price: give US dollars per \
                     million tokens, 0 or more",
                    self.model
                )));
            }
        }
        Ok(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn named_providers_build_on_presets() {
        let config = config(
            r#"
[defaults]
provider = "local"
model = "fallback-model"

[providers.local]
preset = "vllm"
base_url = "http://127.0.0.1:9000/v1"

[providers.coder]
preset = "kimi-code"
model = "kimi-for-coding"
api_key = "sk-from-file"
"#,
        );
        let local = config.provider("local").unwrap();
        assert_eq!(local.preset.name, "vllm");
        assert_eq!(local.base_url, "http://127.0.0.1:9000/v1");
        assert_eq!(
            local.model, "fallback-model",
            "the default model goes with the default provider"
        );
        let coder = config.provider("coder").unwrap();
        assert_eq!(coder.model, "kimi-for-coding");
        assert!(coder.api_key.is_some());
        assert!(!format!("{config:?}").contains("sk-from-file"), "Debug hides the key");
        let ollama = config.provider("ollama").unwrap();
        assert_eq!(ollama.base_url, "http://127.0.0.1:11434/v1");
        assert!(config.provider("nope").unwrap_err().contains("unknown provider `nope`"));
        assert!(config.knows("local") && config.knows("moonshot") && !config.knows("nope"));
    }

    #[test]
    fn a_bad_file_is_an_error_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        assert!(Config::read(&path).unwrap().providers.is_empty(), "a missing file is empty");
        std::fs::write(&path, "[defaults]\nprovider = \"x\"\nmodle = \"y\"\n").unwrap();
        let error = Config::read(&path).unwrap_err().to_string();
        assert!(error.contains("config.toml:3:1"), "{error}");
        assert!(error.contains("unknown field `modle`"), "{error}");
    }

    #[test]
    fn the_approval_policy_names_tools_to_ask_about_and_tools_to_deny() {
        use taskflow_engine::agent::Approval;
        let approvals =
            config("[approvals]\nask = [\"run_command\"]\ndeny = [\"fetch_url\"]\n").approvals;
        assert_eq!(approvals.policy("run_command"), Approval::Ask);
        assert_eq!(approvals.policy("fetch_url"), Approval::Deny);
        assert_eq!(approvals.policy("read_file"), Approval::Allow);
        assert!(config("").approvals.is_empty());
        assert!(toml::from_str::<Config>("[approvals]\nallow = [\"x\"]").is_err());
    }

    #[test]
    fn a_bad_mcp_server_table_is_an_error_with_its_position_server_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        for (text, expected) in [
            (
                "[mcp_servers.docs]\nurl = \"http://127.0.0.1:1/mcp\"\ncommand = \"x\"\n",
                "config.toml:1:2: [mcp_servers.docs] has both `command` and `url`",
            ),
            (
                "[defaults]\n\n[mcp_servers.fx]\ncommand = \"x\"\ntimeout = 3\n",
                "config.toml:3:2: [mcp_servers.fx]: unknown key `timeout`",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = Config::read(&path).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        }
        std::fs::write(&path, "[mcp_servers.fx]\ncommand = \"python3\"\n").unwrap();
        let settings = Config::read(&path).unwrap().mcp_settings(&dir.path().join("flows.db"));
        assert!(settings.servers.get("fx").is_some());
        assert_eq!(settings.log_dir(), dir.path().join("mcp-logs"));
    }

    #[test]
    fn tokens_come_from_files_or_variables_and_are_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bob.token");
        std::fs::write(&file, "bob-secret-from-a-file\nignored\n").unwrap();
        let text = format!(
            "[serve.tokens]\nbob = {{ owner = \"bob\", token_file = {:?} }}\n",
            file.display().to_string()
        );
        let tokens = config(&text).serve.tokens().unwrap();
        assert_eq!(
            (tokens[0].owner.as_str(), tokens[0].secret()),
            ("bob", "bob-secret-from-a-file")
        );
        assert!(!format!("{tokens:?}").contains("secret-from"), "{tokens:?}");

        let missing =
            "[serve.tokens]\nci = { owner = \"ci\", token_env = \"TASKFLOW_TEST_NO_SUCH_VAR\" }";
        let error = config(missing).serve.tokens().unwrap_err().to_string();
        assert!(error.contains("ci") && error.contains("TASKFLOW_TEST_NO_SUCH_VAR"), "{error}");
        let short = dir.path().join("short");
        std::fs::write(&short, "abc").unwrap();
        let text = format!(
            "[serve.tokens]\nx = {{ owner = \"x\", token_file = {:?} }}",
            short.display().to_string()
        );
        assert!(config(&text).serve.tokens().unwrap_err().to_string().contains("shorter"));
        let neither = "[serve.tokens]\nx = { owner = \"x\" }";
        assert!(config(neither).serve.tokens().is_err());
        assert!(
            toml::from_str::<Config>("[serve.tokens]\nx = { owner = \"x\", token = \"s\" }")
                .is_err()
        );
    }

    fn check_price(text: &str, expected: std::result::Result<(), &str>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        match (Config::read(&path), expected) {
            (Ok(_), Ok(())) => {}
            (Ok(config), Err(expected)) => panic!("{text:?} was read: {config:?}; {expected}"),
            (Err(error), Ok(())) => panic!("{text:?} was refused: {error}"),
            (Err(error), Err(expected)) => {
                let error = error.to_string();
                assert!(error.contains(expected), "{error:?} lacks {expected:?}");
            }
        }
    }

    #[test]
    fn prices_below_zero_or_not_numbers_are_refused_with_their_position() {
        check_price("[prices.\"m1\"]\ninput_per_mtok = 0.0\noutput_per_mtok = 2.5\n", Ok(()));
        check_price("[prices.free]\ninput_per_mtok = 0\noutput_per_mtok = 0\n", Ok(()));
        check_price(
            "[defaults]\n\n[prices.\"m1\"]\ninput_per_mtok = -1000.0\noutput_per_mtok = 1.0\n",
            Err("config.toml:3:"),
        );
        check_price(
            "[prices.\"m1\"]\ninput_per_mtok = -1000.0\noutput_per_mtok = 1.0\n",
            Err("[prices.\"m1\"] input_per_mtok = -1000 is not a price: give US dollars per \
                 million tokens, 0 or more"),
        );
        check_price(
            "[prices.\"m2\"]\ninput_per_mtok = 1.0\noutput_per_mtok = nan\n",
            Err("[prices.\"m2\"] output_per_mtok = NaN is not a price"),
        );
        check_price(
            "[prices.m3]\ninput_per_mtok = inf\noutput_per_mtok = 1.0\n",
            Err("[prices.\"m3\"] input_per_mtok = inf is not a price"),
        );
        check_price(
            "prices = { m4 = { input_per_mtok = 1.0, output_per_mtok = -0.5 } }\n",
            Err("config.toml:1:"),
        );
    }

    #[test]
    fn a_named_provider_with_a_base_url_that_is_not_http_is_refused() {
        let config = config(
            "[providers.local]\npreset = \"vllm\"\nmodel = \"m\"\nbase_url = \"localhost:8000/v1\"\n",
        );
        let error = config.provider("local").unwrap_err();
        assert!(
            error.starts_with("[providers.local] base_url: the base URL must be an http(s) URL"),
            "{error}"
        );
    }
}

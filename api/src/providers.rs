//! Which provider a run talks to, and with what settings: a provider named by the user (a flag,
//! a request) wins over the config file, which wins over the preset's defaults; a provider named
//! by the user replaces the one a pipeline's `llm` and `agent` steps name, in the flow as stored,
//! so one file runs on recorded turns, Kimi or a local server, and a resume uses the same.
//! Settings no request could work with (a base URL that is no http(s) URL, a timeout of 0) are
//! refused here, as usage errors, before a flow is made or a request sent.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use taskflow_engine::agent::{ProviderChoice, ProviderFactory, StepModel};
use taskflow_engine::pipeline::{SpecError, SpecField};
use taskflow_engine::{EngineError, FlowSpec};
use taskflow_providers::{
    ApiKey, CONNECT_TIMEOUT_ENV, Preset, ProviderConfig, check_base_url, resolve_connect_timeout,
};

use crate::config::Config;
use crate::error::{ApiError, Result};

/// What the user said about providers; everything left out comes from the config file and the
/// presets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderSettings {
    /// A preset or a provider of the config file.
    pub provider: Option<String>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// The environment variable that holds the key (never the key).
    pub api_key_env: Option<String>,
    /// The replay provider's script.
    pub script: Option<PathBuf>,
    pub connect_timeout_ms: Option<u64>,
    pub read_timeout_ms: Option<u64>,
    /// Attempts per request, the first included.
    pub attempts: Option<u32>,
}

impl ProviderSettings {
    /// Whether these settings choose the provider or its model, address or script.
    pub fn chooses_a_provider(&self) -> bool {
        self.provider.is_some()
            || self.model.is_some()
            || self.base_url.is_some()
            || self.script.is_some()
    }

    /// These settings without the choice of provider: the timeouts, attempts and key variable.
    pub fn tuning_only(&self) -> ProviderSettings {
        ProviderSettings {
            provider: None,
            model: None,
            base_url: None,
            script: None,
            ..self.clone()
        }
    }

    /// The provider's configuration, and warnings to show (an unreadable environment value).
    pub fn config(&self) -> Result<(ProviderConfig, Vec<String>)> {
        let file = Config::load()?;
        let choice = self.choice_in(&file)?;
        let mut config = resolve(&file, &choice).map_err(ApiError::invalid)?;
        let env_timeout = std::env::var(CONNECT_TIMEOUT_ENV).ok();
        let (connect_timeout, warning) =
            resolve_connect_timeout(self.connect_timeout_ms, env_timeout.as_deref());
        self.tune(&mut config, connect_timeout).map_err(ApiError::invalid)?;
        config.check().map_err(|error| ApiError::invalid(error.message))?;
        Ok((config, warning.into_iter().collect()))
    }

    /// Refuses the flags no request could work with: a timeout of 0 (every request would time
    /// out at once) and a base URL that is no http(s) URL (every request would fail alike,
    /// after all its attempts, as if the server were down).
    fn check(&self) -> Result<()> {
        let timeouts = [
            ("--connect-timeout-ms", self.connect_timeout_ms),
            ("--read-timeout-ms", self.read_timeout_ms),
        ];
        if let Some((flag, _)) = timeouts.iter().find(|(_, ms)| *ms == Some(0)) {
            return Err(ApiError::invalid(format!("{flag} must be more than 0")));
        }
        if let Some(base_url) = &self.base_url {
            check_base_url(base_url)
                .map_err(|problem| ApiError::invalid(format!("--base-url: {problem}")))?;
        }
        Ok(())
    }

    /// Builds providers for agent runs and `llm` steps: a provider named here replaces the one
    /// a step or an agent names; a step that names none gets the config file's default; the
    /// timeouts and attempts apply to every provider.
    pub fn factory(&self) -> Result<(ProviderFactory, Vec<String>)> {
        self.check()?;
        let file = Config::load()?;
        let overriding = match &self.provider {
            Some(_) => Some(self.choice_in(&file)?),
            None => None,
        };
        let env_timeout = match self.connect_timeout_ms {
            Some(_) => None,
            None => std::env::var(CONNECT_TIMEOUT_ENV).ok(),
        };
        let (connect_timeout, warning) =
            resolve_connect_timeout(self.connect_timeout_ms, env_timeout.as_deref());
        let settings = self.clone();
        let factory: ProviderFactory = Arc::new(move |choice: &ProviderChoice| {
            let mut choice = overriding.clone().unwrap_or_else(|| choice.clone());
            if choice.provider.trim().is_empty() {
                choice.provider = file.defaults.provider.clone().unwrap_or_default();
            }
            let mut config = resolve(&file, &choice)?;
            settings.tune(&mut config, connect_timeout)?;
            config.build().map_err(|error| error.message)
        });
        Ok((factory, warning.into_iter().collect()))
    }

    /// The choice these settings (and the config file) make, to store on a flow.
    pub fn choice(&self) -> Result<ProviderChoice> {
        self.choice_in(&Config::load()?)
    }

    fn choice_in(&self, file: &Config) -> Result<ProviderChoice> {
        self.check()?;
        Ok(ProviderChoice {
            provider: self.provider_name(file)?,
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            script: self.script.as_deref().map(absolute).transpose()?,
            api_key_env: self.api_key_env.clone(),
        })
    }

    /// The provider named here, or the config file's default.
    fn provider_name(&self, config: &Config) -> Result<String> {
        let name = self.provider.clone().or_else(|| config.defaults.provider.clone()).ok_or_else(
            || ApiError::Invalid {
                message: "no provider chosen".to_owned(),
                hint: Some(format!(
                    "pass --provider, one of: {}; or set [defaults] provider in the config file",
                    Preset::names()
                )),
            },
        )?;
        if !config.knows(&name) {
            return Err(ApiError::invalid(unknown_provider(config, &name)));
        }
        Ok(name)
    }

    /// What these settings give every provider: the key variable, timeouts and attempts.
    fn tune(
        &self,
        config: &mut ProviderConfig,
        connect_timeout: Duration,
    ) -> std::result::Result<(), String> {
        if let Some(variable) = &self.api_key_env {
            config.api_key = Some(ApiKey::from_named_env(variable)?);
        }
        config.connect_timeout = connect_timeout;
        if let Some(ms) = self.read_timeout_ms {
            config.read_timeout = Duration::from_millis(ms);
        }
        if let Some(attempts) = self.attempts {
            config.retry.max_attempts = attempts;
        }
        Ok(())
    }
}

/// A choice's provider configuration: the config file's settings for its name, then the
/// choice's own model, address and script.
fn resolve(file: &Config, choice: &ProviderChoice) -> std::result::Result<ProviderConfig, String> {
    if choice.provider.trim().is_empty() {
        return Err("no provider chosen: name one, or set [defaults] provider in the config file"
            .to_owned());
    }
    let mut config = file.provider(&choice.provider)?;
    if let Some(model) = &choice.model {
        config.model = model.clone();
    }
    if let Some(base_url) = &choice.base_url {
        config.base_url = base_url.clone();
    }
    if choice.script.is_some() {
        config.script = choice.script.clone();
    }
    if let Some(variable) = &choice.api_key_env {
        config.api_key = Some(ApiKey::from_named_env(variable)?);
    }
    Ok(config)
}

/// Why `name` names no provider: neither a preset nor a provider of the config file.
fn unknown_provider(file: &Config, name: &str) -> String {
    let names = Preset::names();
    let own: Vec<&str> = file.providers.keys().map(String::as_str).collect();
    let known = if own.is_empty() { names } else { format!("{names}, {}", own.join(", ")) };
    format!("unknown provider `{name}` (known: {known})")
}

/// `path` made absolute, so that a stored flow finds it again from any folder.
fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path)
        .map_err(|error| ApiError::invalid(format!("{}: {error}", path.display())))
}

/// Points the pipeline's model steps (`llm`, `agent`) at the provider `settings` name, if they
/// name one, and at their key variable, if they name one: the choice is stored with the flow,
/// so a resume uses it too.
pub fn override_model_steps(spec: &mut FlowSpec, settings: &ProviderSettings) -> Result<()> {
    let model_steps = spec.model_steps_mut();
    if settings.chooses_a_provider() {
        let choice = settings.choice()?;
        for step in model_steps {
            choose_provider(&mut step.with, &choice);
        }
    } else if let Some(variable) = &settings.api_key_env {
        for step in model_steps {
            if let Some(with) = step.with.as_object_mut() {
                with.insert("api_key_env".to_owned(), variable.clone().into());
            }
        }
    }
    Ok(())
}

/// Points a step's `with` at `choice`: its provider, model, address, script and key variable,
/// and no other.
fn choose_provider(with: &mut Value, choice: &ProviderChoice) {
    let Some(with) = with.as_object_mut() else { return };
    with.insert("provider".to_owned(), choice.provider.clone().into());
    let fields = [
        ("model", choice.model.clone()),
        ("base_url", choice.base_url.clone()),
        ("script", choice.script.as_ref().map(|path| path.display().to_string())),
        ("api_key_env", choice.api_key_env.clone()),
    ];
    for (key, value) in fields {
        match value {
            Some(value) => with.insert(key.to_owned(), value.into()),
            None => with.remove(key),
        };
    }
}

/// Readies a pipeline's model steps (`llm`, `agent`) before its flow is made, so that none
/// fails later on what is known now: each must name a provider there is (its own, else the
/// config file's default; one a template fills in is checked when the step runs), and a
/// pipeline with a cost budget is priced ([`price_model_steps_in`]).
pub fn prepare_model_steps(spec: &mut FlowSpec) -> Result<()> {
    if spec.model_steps().next().is_none() {
        return Ok(());
    }
    let file = Config::load()?;
    check_model_providers(spec, &file)?;
    if spec.budget.max_cost.is_none() {
        return Ok(());
    }
    price_model_steps_in(spec, &file)
}

/// Refuses a pipeline one of whose model steps names a provider there is not, or none where
/// the config file's default names none there is: a problem of the pipeline at the step's
/// `with.provider`, as the engine's checks give theirs.
fn check_model_providers(spec: &FlowSpec, file: &Config) -> Result<()> {
    let problems: Vec<SpecError> = spec
        .model_steps_at()
        .filter_map(|(at, step)| {
            let named = step.with.get("provider").and_then(Value::as_str).map(str::trim);
            let problem = match (named.filter(|name| !name.is_empty()), &file.defaults.provider) {
                (Some(name), _) if name.contains("{{") || file.knows(name) => return None,
                (Some(name), _) => unknown_provider(file, name),
                (None, Some(default)) if file.knows(default) => return None,
                (None, Some(default)) => format!(
                    "names none, and the config file's [defaults] provider: {}",
                    unknown_provider(file, default)
                ),
                (None, None) => format!(
                    "names no provider, and the config file has no [defaults] provider: give \
                     it one of {}",
                    Preset::names()
                ),
            };
            let message = format!("{problem} (step `{}`)", step.id);
            Some(SpecError {
                step: Some(at),
                field: SpecField::With(Some("provider".into())),
                message,
            })
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(ApiError::Engine(EngineError::Spec(problems))) }
}

/// Stores with a pipeline that has a cost budget the model each `llm` and `agent` step calls
/// and that model's price from the config file's `[prices."MODEL"]` (the step's own `provider`
/// and `model`, else the config file's defaults), so what its calls cost does not change with
/// the config file later; a model without a price is refused, named, before anything runs.
fn price_model_steps_in(spec: &mut FlowSpec, file: &Config) -> Result<()> {
    let mut prices = std::collections::BTreeMap::new();
    for step in spec.model_steps() {
        let text = |key: &str| step.with.get(key).and_then(Value::as_str).map(str::to_owned);
        let choice = ProviderChoice {
            provider: text("provider")
                .or_else(|| file.defaults.provider.clone())
                .unwrap_or_default(),
            model: text("model"),
            ..ProviderChoice::default()
        };
        let model = resolve(file, &choice)
            .map_err(|error| ApiError::invalid(format!("step `{}`: {error}", step.id)))?
            .model;
        let price = file.prices.get(&model).copied();
        prices.insert(step.id.clone(), StepModel { model, price });
    }
    spec.prices = prices;
    spec.check_prices().map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        ApiError::invalid(lines.join("; "))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use taskflow_engine::StepSpec;
    use taskflow_engine::agent::{Budget, Price};

    fn step(id: &str, action: &str, with: Value) -> StepSpec {
        StepSpec::new(id, action).with(with)
    }

    /// Flags (for vllm and a model, unless they name others), and the usage error they give
    /// (none: `Ok`), by the way `config` goes without reading the config file.
    fn check(settings: ProviderSettings, expected: std::result::Result<(), &str>) {
        let settings = ProviderSettings {
            provider: settings.provider.clone().or(Some("vllm".to_owned())),
            model: settings.model.clone().or(Some("m".to_owned())),
            ..settings
        };
        let file = Config::default();
        let found = settings.choice_in(&file).and_then(|choice| {
            let mut config = resolve(&file, &choice).map_err(ApiError::invalid)?;
            settings.tune(&mut config, Duration::from_secs(1)).map_err(ApiError::invalid)?;
            config.check().map_err(|error| ApiError::invalid(error.message))
        });
        match (found, expected) {
            (Ok(()), Ok(())) => {}
            (Ok(()), Err(expected)) => panic!("{settings:?} was taken; {expected}"),
            (Err(error), Ok(())) => panic!("{settings:?} was refused: {error}"),
            (Err(error), Err(expected)) => {
                assert!(matches!(error, ApiError::Invalid { .. }), "{error:?}");
                assert_eq!(error.to_string(), expected);
            }
        }
    }

    #[test]
    fn base_urls_that_are_not_http_and_zero_timeouts_are_usage_errors() {
        let url = |base_url: &str| ProviderSettings {
            base_url: Some(base_url.to_owned()),
            ..ProviderSettings::default()
        };
        check(ProviderSettings::default(), Ok(()));
        check(url("http://127.0.0.1:8000/v1"), Ok(()));
        check(
            url("not a url"),
            Err("--base-url: the base URL must be an http(s) URL such as \
                 http://127.0.0.1:8000/v1, not \"not a url\""),
        );
        check(
            url("ftp://host/v1"),
            Err("--base-url: the base URL must be an http(s) URL such as \
                 http://127.0.0.1:8000/v1, not \"ftp://host/v1\""),
        );
        let timeouts = |connect: Option<u64>, read: Option<u64>| ProviderSettings {
            connect_timeout_ms: connect,
            read_timeout_ms: read,
            ..ProviderSettings::default()
        };
        check(timeouts(Some(1), Some(1)), Ok(()));
        check(timeouts(None, Some(0)), Err("--read-timeout-ms must be more than 0"));
        check(timeouts(Some(0), None), Err("--connect-timeout-ms must be more than 0"));
        // A replay script needs no server.
        check(
            ProviderSettings {
                provider: Some("replay".to_owned()),
                model: Some("replay".to_owned()),
                ..ProviderSettings::default()
            },
            Ok(()),
        );
    }

    /// What `check_model_providers` says of one `llm` step whose `with` is `with`, under a
    /// config file `config`: `Ok`, or the error's text.
    fn check_provider(config: &str, with: Value, expected: std::result::Result<(), &str>) {
        let file: Config = toml::from_str(config).unwrap();
        let spec = FlowSpec::new("p").step(step("ask", "llm", with.clone()));
        let found = check_model_providers(&spec, &file).map_err(|error| error.to_string());
        assert_eq!(found, expected.map_err(str::to_owned), "{with}");
    }

    #[test]
    fn a_model_step_must_name_a_provider_there_is() {
        use serde_json::json;
        let own = "[providers.local]\npreset = \"vllm\"\nmodel = \"m\"\n";
        let defaults = "[defaults]\nprovider = \"replay\"\n";
        check_provider("", json!({"provider": "replay"}), Ok(()));
        check_provider("", json!({"provider": "Moonshot"}), Ok(()));
        check_provider(own, json!({"provider": "local"}), Ok(()));
        check_provider("", json!({"provider": "{{ steps.pick.output }}"}), Ok(()));
        check_provider(defaults, json!({"prompt": "hi"}), Ok(()));
        let known = format!("known: {}", Preset::names());
        let unknown =
            format!("steps[0].with: unknown provider `kimmi` ({known}, local) (step `ask`)");
        check_provider(own, json!({"provider": "kimmi"}), Err(&unknown));
        let none = format!(
            "steps[0].with: names no provider, and the config file has no [defaults] \
             provider: give it one of {} (step `ask`)",
            Preset::names()
        );
        check_provider("", json!({"prompt": "hi"}), Err(&none));
        check_provider("", json!({"provider": " "}), Err(&none));
        let ghost = format!(
            "steps[0].with: names none, and the config file's [defaults] provider: \
             unknown provider `ghost` ({known}) (step `ask`)"
        );
        check_provider("[defaults]\nprovider = \"ghost\"\n", json!({"prompt": "hi"}), Err(&ghost));
    }

    #[test]
    fn each_model_step_is_priced_by_its_own_model_or_the_default() {
        let file: Config = toml::from_str(
            "[defaults]\nprovider = \"replay\"\n\
             [prices.small]\ninput_per_mtok = 1.0\noutput_per_mtok = 4.0\n\
             [prices.replay]\ninput_per_mtok = 2.0\noutput_per_mtok = 8.0\n",
        )
        .unwrap();
        let cost = Budget { max_tokens: None, max_cost: Some(1.0) };
        let pipeline = |model: &str| {
            FlowSpec::new("p")
                .budget(cost)
                .step(step("a", "llm", serde_json::json!({"prompt": "x", "model": model})))
                .step(step("b", "agent", serde_json::json!({"prompt": "y"})))
                .step(step("c", "echo", serde_json::json!({"value": "z"})))
        };
        let mut priced = pipeline("small");
        price_model_steps_in(&mut priced, &file).unwrap();
        let found: Vec<(&str, &str, Option<Price>)> = priced
            .prices
            .iter()
            .map(|(id, model)| (id.as_str(), model.model.as_str(), model.price))
            .collect();
        assert_eq!(
            found,
            [
                ("a", "small", Some(Price { input_per_mtok: 1.0, output_per_mtok: 4.0 })),
                ("b", "replay", Some(Price { input_per_mtok: 2.0, output_per_mtok: 8.0 })),
            ]
        );
        let error = price_model_steps_in(&mut pipeline("large"), &file).unwrap_err().to_string();
        assert!(error.contains("step `a`"), "{error}");
        assert!(error.contains("[prices.\"large\"]"), "{error}");
    }
}

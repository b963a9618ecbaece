//! Choosing a provider by names: a preset, a model, an address, a replay script and the name
//! of the variable that holds the key. A choice is what a stored flow keeps (it holds no
//! secret), and a [`ProviderFactory`] turns it into a [`Provider`] in whichever process runs
//! the flow.

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Provider;
use crate::config::ProviderConfig;
use crate::secret::ApiKey;

/// Which provider and model to use, as names and addresses (never keys).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderChoice {
    /// A preset name (`moonshot`, `vllm`, `replay`, …).
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The replay provider's script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<PathBuf>,
    /// The environment variable that holds the API key. Only its name is kept (a stored flow
    /// reads the key again when it resumes); the key itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
}

impl ProviderChoice {
    /// The preset's configuration with this choice's model, address and script; the key from
    /// the choice's environment variable, else the preset's.
    pub fn config(&self) -> Result<ProviderConfig, String> {
        if self.provider.trim().is_empty() {
            return Err(
                "no provider chosen: name one (`provider`), or set a default in the config file"
                    .to_owned(),
            );
        }
        let mut config = ProviderConfig::named(&self.provider).map_err(|error| error.message)?;
        if let Some(model) = &self.model {
            config.model = model.clone();
        }
        if let Some(base_url) = &self.base_url {
            config.base_url = base_url.clone();
        }
        config.script = self.script.clone();
        if let Some(variable) = &self.api_key_env {
            config.api_key = Some(ApiKey::from_named_env(variable)?);
        }
        Ok(config)
    }
}

/// Builds the provider a choice names. The CLI's factory adds its flags and config file; the
/// default ([`preset_providers`]) uses the presets and the environment.
pub type ProviderFactory =
    Arc<dyn Fn(&ProviderChoice) -> Result<Arc<dyn Provider>, String> + Send + Sync>;

/// Providers from the presets, keys from the environment.
pub fn preset_providers() -> ProviderFactory {
    Arc::new(|choice| choice.config()?.build().map_err(|error| error.message))
}

//! Building the provider a configuration names: the one place that knows every adapter, so the
//! configuration itself (presets, timeouts, keys) stays plain data the adapters read.

use std::sync::Arc;

use crate::Provider;
use crate::anthropic::AnthropicProvider;
use crate::config::{Protocol, ProviderConfig};
use crate::error::{ErrorKind, ProviderError};
use crate::openai::OpenAiProvider;
use crate::replay::ReplayProvider;

impl ProviderConfig {
    /// Builds the provider, checking that it can work (an http(s) base URL and timeouts
    /// longer than zero, a key where one is needed, a script for replay).
    pub fn build(&self) -> Result<Arc<dyn Provider>, ProviderError> {
        self.check()?;
        if self.preset.key_required && self.api_key.is_none() {
            let variable = self.preset.key_env.unwrap_or("the key variable");
            return Err(ProviderError::new(
                ErrorKind::Config,
                format!("provider `{}` needs an API key: set {variable}", self.preset.name),
            ));
        }
        if self.model.trim().is_empty() && self.preset.protocol != Protocol::Replay {
            return Err(ProviderError::new(
                ErrorKind::Config,
                format!(
                    "provider `{}` needs a model: pass --model with the name the server serves",
                    self.preset.name
                ),
            ));
        }
        Ok(match self.preset.protocol {
            Protocol::OpenAi => Arc::new(OpenAiProvider::new(self)?),
            Protocol::Anthropic => Arc::new(AnthropicProvider::new(self)?),
            Protocol::Replay => {
                let script = self.script.as_ref().ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Config,
                        "the replay provider needs a script file (--script FILE)",
                    )
                })?;
                Arc::new(ReplayProvider::from_file(script)?)
            }
        })
    }
}

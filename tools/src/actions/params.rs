//! Reading a step's `with` table: the checks and messages the built-in actions share, so that
//! the same mistake reads the same in every action.

use serde_json::Value;
use taskflow_providers::ProviderChoice;

use crate::step::StepContext;

/// The string parameter `key` of `with`, if present; a template counts as present.
pub(super) fn string_param<'a>(with: &'a Value, key: &str) -> Result<&'a str, String> {
    match with.get(key) {
        Some(Value::String(text)) => Ok(text),
        Some(_) => Err(format!("`with.{key}` must be a string")),
        None => Err(format!("`with.{key}` is missing")),
    }
}

pub(super) fn optional_text(with: &Value, key: &str) -> Result<Option<String>, String> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.clone())),
        Some(_) => Err(format!("`with.{key}` must be a string")),
    }
}

pub(super) fn optional_number(with: &Value, key: &str) -> Result<Option<f64>, String> {
    match with.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            value.as_f64().map(Some).ok_or_else(|| format!("`with.{key}` must be a number"))
        }
    }
}

/// The provider choice of a step (`provider`, `model`, `base_url`, `script`, `api_key_env`:
/// parameters of every action that calls a model); a relative `script` is relative to the
/// pipeline file.
pub(super) fn provider_choice(
    with: &Value,
    context: Option<&StepContext>,
) -> Result<ProviderChoice, String> {
    let script = optional_text(with, "script")?.map(|path| match context {
        Some(context) => context.resolve(path),
        None => path.into(),
    });
    let base_url = optional_text(with, "base_url")?;
    // A template is checked once it is filled in, when the step runs.
    if let Some(url) = base_url.as_deref().filter(|url| !url.contains("{{")) {
        taskflow_providers::check_base_url(url).map_err(|why| format!("`with.base_url`: {why}"))?;
    }
    Ok(ProviderChoice {
        provider: optional_text(with, "provider")?.unwrap_or_default(),
        model: optional_text(with, "model")?,
        base_url,
        script,
        api_key_env: optional_text(with, "api_key_env")?,
    })
}

//! `llm`: one model request as a pipeline step. `with.prompt` is a template that reads
//! earlier outputs (`{{steps.scrape.output}}`); the provider and model come from `with`
//! (`provider`, `model`, `base_url`, `script`, `api_key_env`) or, left out, from the provider
//! factory's
//! defaults (the CLI's config file). The reply's text is the step's output.

use serde_json::Value;
use taskflow_providers::{ChatMessage, ChatRequest};

use super::{Action, ActionError, ActionFuture, StepContext, string_param};
use crate::agent::{ProviderChoice, ProviderFactory};

pub struct Llm {
    providers: ProviderFactory,
}

impl Llm {
    pub fn new(providers: ProviderFactory) -> Self {
        Self { providers }
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

/// The provider choice of a step; a relative `script` is relative to the pipeline file.
pub(super) fn choice(
    with: &Value,
    context: Option<&StepContext>,
) -> Result<ProviderChoice, String> {
    let script = optional_text(with, "script")?.map(|path| match context {
        Some(context) => context.resolve(path),
        None => path.into(),
    });
    Ok(ProviderChoice {
        provider: optional_text(with, "provider")?.unwrap_or_default(),
        model: optional_text(with, "model")?,
        base_url: optional_text(with, "base_url")?,
        script,
        api_key_env: optional_text(with, "api_key_env")?,
    })
}

impl Action for Llm {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        let providers = self.providers.clone();
        Box::pin(async move {
            let prompt = string_param(&input, "prompt").map_err(ActionError::permanent)?.to_owned();
            let choice = choice(&input, Some(&context)).map_err(ActionError::permanent)?;
            let provider = providers(&choice).map_err(ActionError::permanent)?;
            let request = ChatRequest {
                model: String::new(),
                system: optional_text(&input, "system").map_err(ActionError::permanent)?,
                messages: vec![ChatMessage::User { content: prompt }],
                tools: Vec::new(),
                temperature: optional_number(&input, "temperature")
                    .map_err(ActionError::permanent)?
                    .map(|t| t as f32),
                max_tokens: optional_number(&input, "max_tokens")
                    .map_err(ActionError::permanent)?
                    .map(|n| n as u32),
            };
            let answer = tokio::select! {
                answer = provider.complete(&request) => answer,
                () = context.cancel.cancelled() => return Err(ActionError::Cancelled),
            };
            match answer {
                Ok(response) => Ok(Value::String(response.message.content.unwrap_or_default())),
                Err(error) if error.is_transient() => Err(ActionError::failed(error.to_string())),
                Err(error) => Err(ActionError::permanent(error.to_string())),
            }
        })
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        string_param(with, "prompt")?;
        optional_text(with, "system")?;
        optional_number(with, "temperature")?;
        if optional_number(with, "max_tokens")?.is_some_and(|n| n < 1.0 || n.fract() != 0.0) {
            return Err("`with.max_tokens` must be a positive whole number".to_owned());
        }
        choice(with, None).map(|_| ())
    }
}

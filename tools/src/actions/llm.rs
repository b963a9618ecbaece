//! `llm`: one model request as a pipeline step. `with.prompt` is a template that reads
//! earlier outputs (`{{steps.scrape.output}}`); the provider and model come from `with`
//! (`provider`, `model`, `base_url`, `script`, `api_key_env`) or, left out, from the provider
//! factory's defaults (the CLI's config file).
//!
//! The step checkpoints the model's whole response, as an agent run's `llm` steps do, so the
//! tokens it used are in the journal (a pipeline's budget is summed from them, see
//! `crate::budget`); templates and the flow's result read only its text ([`reply_text`]).

use serde_json::Value;
use taskflow_providers::{ChatMessage, ChatRequest, ProviderFactory};

use super::params::{optional_number, optional_text, provider_choice, string_param};
use crate::action::Action;
use crate::step::{ActionError, ActionFuture, StepContext};

pub struct Llm {
    providers: ProviderFactory,
}

impl Llm {
    pub fn new(providers: ProviderFactory) -> Self {
        Self { providers }
    }
}

impl Action for Llm {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        let providers = self.providers.clone();
        Box::pin(async move {
            let prompt = string_param(&input, "prompt").map_err(ActionError::permanent)?.to_owned();
            let choice = provider_choice(&input, Some(&context)).map_err(ActionError::permanent)?;
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
                Ok(response) => serde_json::to_value(&response)
                    .map_err(|error| ActionError::permanent(error.to_string())),
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
        provider_choice(with, None).map(|_| ())
    }

    /// The request's own keys, then those of the provider choice (`provider_choice`).
    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&[
            "prompt",
            "system",
            "temperature",
            "max_tokens",
            "provider",
            "model",
            "base_url",
            "script",
            "api_key_env",
        ])
    }

    fn model_call(&self) -> bool {
        true
    }

    /// A model of the providers the host configured; a step's own `base_url` would send the
    /// host's key anywhere, its `api_key_env` send any variable of the host's, its `script`
    /// read a file of the host's.
    fn off_host(&self, with: &Value) -> Result<(), String> {
        match ["base_url", "api_key_env", "script"].into_iter().find(|key| with.get(key).is_some())
        {
            Some(key) => {
                Err(format!("its `with.{key}` reaches past the providers the host configured"))
            }
            None => Ok(()),
        }
    }
}

/// What templates and a flow's result read of an `llm` step's output: the reply's text. The
/// output is the model's response (its `content` is the text); a journal written before
/// responses were kept holds the text itself, read as it is.
pub fn reply_text(output: &Value) -> Value {
    match output {
        Value::Object(response) => Value::String(
            response.get("content").and_then(Value::as_str).unwrap_or_default().to_owned(),
        ),
        text => text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn templates_read_the_text_of_a_response_and_old_outputs_as_they_are() {
        for (output, expected) in [
            (
                json!({"content": "A brief.", "usage": {"prompt_tokens": 9, "completion_tokens": 3}}),
                json!("A brief."),
            ),
            (json!({"content": null, "tool_calls": []}), json!("")),
            (json!("A brief journaled as text."), json!("A brief journaled as text.")),
        ] {
            assert_eq!(reply_text(&output), expected, "{output}");
        }
    }
}

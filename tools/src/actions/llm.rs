//! `llm`: one model request as a pipeline step. `with.prompt` is a template that reads
//! earlier outputs (`{{steps.scrape.output}}`); the provider and model come from `with`
//! (`provider`, `model`, `base_url`, `script`, `api_key_env`) or, left out, from the provider
//! factory's defaults (the CLI's config file). The reply's text is the step's output.

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
        provider_choice(with, None).map(|_| ())
    }
}

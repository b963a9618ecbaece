//! `tool`: calls the built-in tool `with.name` with the arguments `with.args`; the tool's
//! result is the step's output.

use serde_json::{Map, Value};

use super::params::string_param;
use crate::action::Action;
use crate::step::{ActionError, ActionFuture, StepContext};
use crate::tool::Tools;

pub struct ToolAction {
    tools: Tools,
}

impl ToolAction {
    pub fn new(tools: Tools) -> Self {
        ToolAction { tools }
    }
}

impl Action for ToolAction {
    fn run(&self, input: Value, context: StepContext) -> ActionFuture {
        let name = match string_param(&input, "name") {
            Ok(name) => name.to_owned(),
            Err(message) => {
                return Box::pin(std::future::ready(Err(ActionError::permanent(message))));
            }
        };
        let Some(tool) = self.tools.get(&name) else {
            let message = format!("unknown tool `{name}`");
            return Box::pin(std::future::ready(Err(ActionError::permanent(message))));
        };
        let args = input.get("args").cloned().unwrap_or_else(|| Value::Object(Map::new()));
        tool.call(args, context)
    }

    fn check(&self, with: &Value) -> Result<(), String> {
        let name = string_param(with, "name")?;
        if self.tools.get(name).is_none() {
            return Err(format!(
                "unknown tool `{name}` (built-in tools: {})",
                self.tools.names().join(", ")
            ));
        }
        match with.get("args") {
            None | Some(Value::Object(_)) => Ok(()),
            Some(_) => Err("`with.args` must be a table".to_owned()),
        }
    }

    fn parameters(&self) -> Option<&'static [&'static str]> {
        Some(&["name", "args"])
    }
}

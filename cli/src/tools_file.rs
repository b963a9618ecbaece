//! Tools files: the tools a command offers or declares, as a JSON array of
//! `{"name", "description", "parameters"}` objects or in OpenAI's `tools` shape
//! (`{"type": "function", "function": {…}}`), so a file written for one client works here.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{CliError, CliResult};

/// The tools of the file at `path`, each read as a `T`.
pub fn read<T: DeserializeOwned>(path: &Path) -> CliResult<Vec<T>> {
    let invalid = |reason: String| {
        CliError::failure(format!("{} is not a tools file: {reason}", path.display())).with_hint(
            "give a JSON array of {\"name\": …, \"parameters\": {…}} (or the OpenAI `tools` array)",
        )
    };
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::failure(format!("cannot read {}: {error}", path.display())))?;
    let value: Value = serde_json::from_str(&text).map_err(|error| invalid(error.to_string()))?;
    let Value::Array(entries) = value else {
        return Err(invalid("the file holds no JSON array".to_owned()));
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(index, mut entry)| {
            if let Some(function) = entry.get_mut("function").map(Value::take) {
                entry = function;
            }
            serde_json::from_value(entry).map_err(|error| invalid(format!("tool {index}: {error}")))
        })
        .collect()
}

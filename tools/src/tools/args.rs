//! What the agent tools share about talking to a model: arguments read into a typed struct,
//! so a call with bad arguments gets a precise error back instead of a crash, and a bound on
//! what one call returns.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::step::ActionError;

/// The arguments of a call to `tool`, read into `T`; a mismatch is an error for the model.
pub(super) fn arguments<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ActionError> {
    serde_json::from_value(args)
        .map_err(|error| ActionError::permanent(format!("{tool}: bad arguments: {error}")))
}

/// The most bytes a tool returns to the model from one file, page or command.
pub(super) const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// `text` cut to `limit` bytes at a character boundary, with a note when it was cut.
pub(super) fn truncated(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[… {} more bytes not shown]", &text[..end], text.len() - end)
}

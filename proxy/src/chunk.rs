//! A chunk of a chat completion's stream that the proxy writes itself (a call it took out of
//! the text, text it held back and lets go): the fields it copies from the upstream's chunks,
//! and its writing as an event. The rewriter and the redactor of joined texts both write them.

use serde_json::{Map, Value};

use crate::sse::write_event;

/// The fields of a chunk that a chunk the proxy writes itself copies from the last one.
const TEMPLATE_FIELDS: [&str; 5] = ["id", "object", "created", "model", "system_fingerprint"];

/// The fields of `chunk` that a chunk the proxy writes itself copies, when it has choices
/// (the chunks that carry only `usage` may lack them).
pub(crate) fn template(chunk: &Map<String, Value>) -> Option<Map<String, Value>> {
    chunk.get("choices").and_then(Value::as_array).filter(|choices| !choices.is_empty())?;
    let copied = TEMPLATE_FIELDS
        .iter()
        .filter_map(|key| Some(((*key).to_owned(), chunk.get(*key)?.clone())));
    Some(copied.collect())
}

/// Writes a chunk of the proxy's own: `template`'s fields and `choices`, if there are any.
pub(crate) fn write_chunk(template: &Map<String, Value>, choices: Vec<Value>, out: &mut Vec<u8>) {
    if choices.is_empty() {
        return;
    }
    let mut chunk = template.clone();
    chunk.insert("choices".into(), Value::Array(choices));
    write_event(out, b"", Value::Object(chunk).to_string().as_bytes());
}

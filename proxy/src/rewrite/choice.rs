//! One choice of an answer: its two text fields read by their own parsers, the structured
//! calls the upstream sent, and the one sequence of call indices they share on the client's
//! side (tagged calls numbered as they are found, structured ones as they first appear).

use std::collections::HashMap;

use serde_json::{Value, json};
use taskflow_parsers::{Diagnostic, Format, ParseOptions};
use taskflow_providers::tool_ids;

use super::Reading;
use super::field::{Field, FieldReader};
use super::pieces::Pieces;
use crate::config::IdMode;

/// The calls of one choice as the client numbers them.
pub(crate) struct Calls {
    next: usize,
    ids: IdMode,
    /// The upstream's index of a structured call → the client's.
    structured: HashMap<u64, usize>,
    pub tagged: usize,
    pub notes: Vec<Diagnostic>,
}

impl Calls {
    pub(crate) fn start_tagged(&mut self) -> usize {
        self.tagged += 1;
        self.take_index()
    }

    fn take_index(&mut self) -> usize {
        self.next += 1;
        self.next - 1
    }

    /// The id the client gets for the model's `id`.
    pub(crate) fn client_id(&self, id: &str) -> String {
        match self.ids {
            IdMode::Keep => id.to_owned(),
            IdMode::Safe => tool_ids::encode(id),
        }
    }
}

/// The reasoning field names servers use; `reasoning_content` unless the upstream sent the
/// other.
const REASONING_FIELDS: [&str; 2] = ["reasoning_content", "reasoning"];

pub(crate) struct ChoiceRewriter {
    content: FieldReader,
    reasoning: FieldReader,
    pub calls: Calls,
    pub finished: bool,
    pub reasoning_key: &'static str,
}

impl ChoiceRewriter {
    pub(crate) fn new(reading: &Reading) -> Self {
        let options = ParseOptions { tools: reading.tools.clone() };
        Self {
            content: FieldReader::new(Field::Content, reading.format, &options),
            reasoning: FieldReader::new(Field::Reasoning, reading.format, &options),
            calls: Calls {
                next: 0,
                ids: reading.ids,
                structured: HashMap::new(),
                tagged: 0,
                notes: Vec::new(),
            },
            finished: false,
            reasoning_key: REASONING_FIELDS[0],
        }
    }

    /// Reads the text fields of a message or delta object into `out` and takes them out of
    /// it; returns the text they held, to tell whether anything changed.
    pub(crate) fn read_text(
        &mut self,
        message: &mut serde_json::Map<String, Value>,
        out: &mut Pieces,
    ) -> TextIn {
        let mut text_in = TextIn::default();
        for key in REASONING_FIELDS {
            if let Some(Value::String(text)) = message.get(key) {
                self.reasoning_key = key;
                self.reasoning.feed(text, &mut self.calls, out);
                text_in.reasoning = Some(text.clone());
                break;
            }
        }
        if let Some(Value::String(text)) = message.get("content") {
            self.content.feed(text, &mut self.calls, out);
            text_in.content = Some(text.clone());
        }
        text_in
    }

    /// The choice's text is complete.
    pub(crate) fn finish(&mut self, out: &mut Pieces) {
        if !self.finished {
            self.finished = true;
            self.reasoning.finish(&mut self.calls, out);
            self.content.finish(&mut self.calls, out);
        }
    }

    /// Gives a structured call of the upstream (a streamed delta or a message's entry at
    /// `position`) its index and id on the client's side; says whether it changed.
    pub(crate) fn structured(&mut self, entry: &mut Value, position: usize) -> bool {
        let Some(entry) = entry.as_object_mut() else { return false };
        let wire_index = entry.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let client = match self.calls.structured.get(&wire_index) {
            Some(client) => *client,
            None => {
                let client = self.calls.take_index();
                self.calls.structured.insert(wire_index, client);
                client
            }
        };
        let mut changed = false;
        if entry.contains_key("index") && wire_index != client as u64 {
            entry.insert("index".into(), json!(client));
            changed = true;
        }
        if let Some(Value::String(id)) = entry.get_mut("id") {
            let client_id = self.calls.client_id(id);
            if client_id != *id {
                *id = client_id;
                changed = true;
            }
        }
        changed
    }

    pub(crate) fn has_calls(&self) -> bool {
        self.calls.next > 0
    }

    /// The format that read this choice's tagged text, if any did.
    pub(crate) fn format(&self) -> Option<Format> {
        if self.calls.tagged == 0 {
            return None;
        }
        self.content.format().or(self.reasoning.format())
    }
}

/// The text fields a message or delta held before it was read.
#[derive(Debug, Default)]
pub(crate) struct TextIn {
    pub content: Option<String>,
    pub reasoning: Option<String>,
}

impl TextIn {
    /// Whether `out` gives the client exactly this text and nothing else.
    pub(crate) fn same_as(&self, out: &Pieces) -> bool {
        out.calls.is_empty()
            && self.content.as_deref().unwrap_or("") == out.content
            && self.reasoning.as_deref().unwrap_or("") == out.reasoning
    }
}

/// Writes `out`'s text into a message or delta object, in place of what it held.
pub(crate) fn write_text(
    message: &mut serde_json::Map<String, Value>,
    text_in: &TextIn,
    out: &Pieces,
    reasoning_key: &str,
    empty_is_null: bool,
) {
    let mut put = |key: &str, text: &str, had: bool| {
        if !text.is_empty() {
            message.insert(key.to_owned(), json!(text));
        } else if had {
            if empty_is_null {
                message.insert(key.to_owned(), Value::Null);
            } else {
                message.remove(key);
            }
        }
    };
    put("content", &out.content, text_in.content.is_some());
    put(reasoning_key, &out.reasoning, text_in.reasoning.is_some());
}

//! One choice of an answer: its two text fields read by their own parsers, the structured
//! calls the upstream sent, and the one sequence of call indices they share on the client's
//! side (tagged calls numbered as they are found, structured ones as they first appear).
//!
//! A structured call of the upstream without a tool name is held, not sent: no client can run
//! `name: ""` (DESIGN §12). OpenAI-style streams name a call in its first delta, so a call
//! whose first delta names it passes at once, and its later deltas pass as they come (empty
//! names included). One whose first delta names nothing waits until a delta names it (it then
//! goes out as one delta with all it held) or the choice ends: then it is not a call, and its
//! text goes to the content, with a note, as the parsers do with a call they cannot name.
//!
//! Some servers send the reasoning under both of its names, `reasoning_content` and
//! `reasoning`, with the same text: it is read once, and both fields get what the client is
//! to see (each read on its own would give every call in it twice).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use taskflow_parsers::{Diagnostic, DiagnosticKind, Format, ParseOptions};
use taskflow_providers::tool_ids;

use super::Reading;
use super::field::{Field, FieldReader};
use super::pieces::Pieces;
use crate::config::IdMode;

/// The calls of one choice as the client numbers them.
pub(crate) struct Calls {
    next: usize,
    ids: IdMode,
    /// The structured calls by the upstream's index.
    structured: BTreeMap<u64, Structured>,
    pub tagged: usize,
    /// Structured calls without a name, given to the client as text.
    dropped: usize,
    pub notes: Vec<Diagnostic>,
}

/// A structured call of the upstream.
enum Structured {
    /// Passed on, with the client's index.
    Named(usize),
    /// No name yet: held.
    Nameless(HeldCall),
}

/// What the deltas of a structured call without a name said so far.
#[derive(Default)]
struct HeldCall {
    id: String,
    name: String,
    arguments: String,
}

impl HeldCall {
    /// Takes in one delta (or a whole message's entry), as the SDKs fold them.
    fn add(&mut self, entry: &serde_json::Map<String, Value>) {
        if let Some(Value::String(id)) = entry.get("id")
            && self.id.is_empty()
        {
            self.id.push_str(id);
        }
        let function = entry.get("function");
        if let Some(Value::String(name)) = function.and_then(|f| f.get("name")) {
            self.name.push_str(name);
        }
        if let Some(Value::String(arguments)) = function.and_then(|f| f.get("arguments")) {
            self.arguments.push_str(arguments);
        }
    }

    fn named(&self) -> bool {
        !self.name.trim().is_empty()
    }

    /// The call as the text the client gets in its place: the entry, its fields in the
    /// order of the wire.
    fn text(&self) -> String {
        let quoted = |text: &str| Value::from(text).to_string();
        format!(
            "{{\"id\": {}, \"type\": \"function\", \
             \"function\": {{\"name\": {}, \"arguments\": {}}}}}",
            quoted(&self.id),
            quoted(&self.name),
            quoted(&self.arguments)
        )
    }

    /// The call as one entry: the first delta of a streamed call, once it is named.
    fn entry(&self, wire_index: Option<u64>) -> Value {
        let mut entry = json!({
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        });
        if !self.id.is_empty() {
            entry["id"] = json!(self.id);
        }
        if let Some(index) = wire_index {
            entry["index"] = json!(index);
        }
        entry
    }
}

/// Whether a structured call's first delta (or whole entry) is a function call that names no
/// tool. Other kinds of call are not the proxy's to judge.
fn names_no_tool(entry: &serde_json::Map<String, Value>) -> bool {
    let function = entry.get("type").and_then(Value::as_str).is_none_or(|kind| kind == "function");
    let name = entry.get("function").and_then(|f| f.get("name")).and_then(Value::as_str);
    function && name.is_none_or(|name| name.trim().is_empty())
}

/// What became of a structured call's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// It goes on as it came.
    Same,
    /// It goes on changed (its index, its id, or it is the held call now named).
    Changed,
    /// It names no tool (yet): it must be taken out.
    Held,
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
static REASONING_FIELDS: [&str; 2] = ["reasoning_content", "reasoning"];

pub(crate) struct ChoiceRewriter {
    content: FieldReader,
    reasoning: FieldReader,
    pub calls: Calls,
    pub finished: bool,
    /// The fields the reasoning goes to: those the upstream last sent it in.
    pub reasoning_keys: &'static [&'static str],
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
                structured: BTreeMap::new(),
                tagged: 0,
                dropped: 0,
                notes: Vec::new(),
            },
            finished: false,
            reasoning_keys: &REASONING_FIELDS[..1],
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
        let texts = REASONING_FIELDS.map(|key| match message.get(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        });
        // The field with text is read (the first, when both have some). The other, when it
        // says the same, is the same reasoning; when it says something else, it passes as it
        // came.
        let at = match texts {
            [Some(one), Some(other)] if one.is_empty() && !other.is_empty() => 1,
            [None, Some(_)] => 1,
            _ => 0,
        };
        if let Some(text) = texts[at] {
            let twice = texts[1 - at].is_some_and(|other| other == text);
            self.reasoning_keys =
                if twice { &REASONING_FIELDS } else { &REASONING_FIELDS[at..=at] };
            self.reasoning.feed(text, &mut self.calls, out);
            text_in.reasoning = Some(text.clone());
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
    /// `position`) its index and id on the client's side, or holds it while it names no tool.
    pub(crate) fn structured(&mut self, entry: &mut Value, position: usize) -> Entry {
        let Some(fields) = entry.as_object_mut() else { return Entry::Same };
        let has_index = fields.contains_key("index");
        let wire_index = fields.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let mut changed = false;
        let client = match self.calls.structured.get_mut(&wire_index) {
            Some(Structured::Named(client)) => *client,
            Some(Structured::Nameless(held)) => {
                held.add(fields);
                if !held.named() {
                    return Entry::Held;
                }
                *entry = held.entry(has_index.then_some(wire_index));
                changed = true;
                let client = self.calls.take_index();
                self.calls.structured.insert(wire_index, Structured::Named(client));
                client
            }
            None if names_no_tool(fields) => {
                let mut held = HeldCall::default();
                held.add(fields);
                self.calls.structured.insert(wire_index, Structured::Nameless(held));
                return Entry::Held;
            }
            None => {
                let client = self.calls.take_index();
                self.calls.structured.insert(wire_index, Structured::Named(client));
                client
            }
        };
        let Some(entry) = entry.as_object_mut() else { return Entry::Same };
        if has_index && wire_index != client as u64 {
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
        if changed { Entry::Changed } else { Entry::Same }
    }

    /// Takes a message's or delta's structured calls through [`Self::structured`], the held
    /// ones out; says whether the list changed.
    pub(crate) fn structured_list(&mut self, calls: &mut Vec<Value>) -> bool {
        let mut changed = false;
        let mut position = 0;
        calls.retain_mut(|call| {
            let entry = self.structured(call, position);
            position += 1;
            changed |= entry != Entry::Same;
            entry != Entry::Held
        });
        changed
    }

    /// The choice is over: structured calls that never named a tool are not calls. Their text
    /// goes to the content, with a note.
    pub(crate) fn drop_nameless(&mut self, out: &mut Pieces) {
        let calls = &mut self.calls;
        calls.structured.retain(|wire_index, call| {
            let Structured::Nameless(held) = call else { return true };
            out.content.push_str(&held.text());
            calls.dropped += 1;
            let call = match held.id.as_str() {
                "" => format!("at index {wire_index}"),
                id => format!("`{id}`"),
            };
            calls.notes.push(Diagnostic {
                kind: DiagnosticKind::MalformedCall,
                call_index: None,
                offset: 0,
                message: format!(
                    "the upstream's tool call {call} has no tool name: it is not a tool call, \
                     its text is kept as content"
                ),
                text: None,
            });
            false
        });
    }

    /// The finish reason the client gets in place of the upstream's `reason` (`None`: none,
    /// or empty), where it must differ: a choice that made calls, tagged or structured,
    /// finishes with `tool_calls` (clients look there for calls to run), and one whose every
    /// call was taken out for naming no tool, with `stop`. Other reasons (`length`,
    /// `content_filter`) say why the answer ended, and stay.
    pub(crate) fn finish_reason(&self, reason: Option<&str>) -> Option<&'static str> {
        let made_calls = self.calls.next > 0;
        match reason {
            None | Some("stop") if made_calls => Some("tool_calls"),
            Some("tool_calls") if self.calls.dropped > 0 && !made_calls => Some("stop"),
            _ => None,
        }
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

/// Writes `out`'s text into a message or delta object, in place of what it held; the
/// reasoning goes to each of `reasoning_keys`.
pub(crate) fn write_text(
    message: &mut serde_json::Map<String, Value>,
    text_in: &TextIn,
    out: &Pieces,
    reasoning_keys: &[&str],
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
    for key in reasoning_keys {
        put(key, &out.reasoning, text_in.reasoning.is_some());
    }
}

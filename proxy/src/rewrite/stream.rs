//! A streamed answer, one server-sent event at a time. A chunk whose text holds no marker
//! (and no id to rewrite, no structured call without a name) is passed on as it came;
//! otherwise its text fields are replaced by what the parser made certain, with tagged calls
//! as index-keyed `tool_calls` deltas. Text held back as a possible marker start goes out with
//! a later chunk, so a chunk that carried only such text is not sent at all. At the finish
//! reason the parsers are flushed into that chunk, a structured call that never named its tool
//! becomes text, and a choice that made calls finishes with `tool_calls` (one whose every call
//! became text, with `stop`). An event keeps its other fields (`event:`, `id:`); an event that
//! is not JSON (not even UTF-8) and a comment (a keep-alive) pass on at once as they came.
//!
//! With the upstream key, what the client is to get goes through a [`DeltaRedactor`] last, so
//! that the key is out of the texts the client joins, across chunks as within one, whatever the
//! parsers made of them (a call taken out of the content joins the text around it).

use std::collections::BTreeMap;
use std::io::Write as _;

use serde_json::{Map, Value, json};
use taskflow_providers::ApiKey;

use super::choice::{ChoiceRewriter, write_text};
use super::pieces::Pieces;
use super::{NOT_JSON, Reading, Report};
use crate::chunk::{template, write_chunk};
use crate::fault::Fault;
use crate::redact::DeltaRedactor;
use crate::sse::{Event, Item, write_comment, write_event};

pub(crate) struct StreamRewriter {
    reading: Reading,
    choices: BTreeMap<u64, ChoiceRewriter>,
    template: Map<String, Value>,
    done: bool,
    pub report: Report,
    /// Notes already written to the client as comments.
    notes_sent: usize,
    /// The upstream key out of the texts the client joins, when the proxy has one.
    redactor: Option<DeltaRedactor>,
}

impl StreamRewriter {
    pub(crate) fn new(reading: Reading, key: Option<&ApiKey>) -> Self {
        Self {
            reading,
            choices: BTreeMap::new(),
            template: Map::new(),
            done: false,
            report: Report::default(),
            notes_sent: 0,
            redactor: key.cloned().map(DeltaRedactor::new),
        }
    }

    /// Whether the upstream said the answer is complete (`[DONE]`, or every choice finished).
    pub(crate) fn complete(&self) -> bool {
        self.done || (!self.choices.is_empty() && self.choices.values().all(|c| c.finished))
    }

    /// One item of the upstream's stream; what the client gets is appended to `out` as SSE.
    pub(crate) fn item(&mut self, item: &Item, out: &mut Vec<u8>) {
        match item {
            Item::Comment(line) => write_comment(out, line),
            Item::Event(event) => self.event(event, out),
        }
    }

    fn event(&mut self, event: &Event, out: &mut Vec<u8>) {
        let Some(data) = &event.data else {
            event.write(out);
            return;
        };
        if data.trim_ascii() == b"[DONE]" {
            self.flush(out);
            self.done = true;
            event.write(out);
            return;
        }
        let mut chunk = match serde_json::from_slice::<Value>(data) {
            Ok(Value::Object(chunk)) => chunk,
            Ok(_) => {
                event.write(out);
                return;
            }
            Err(why) => {
                let first = self.report.unreadable.is_none();
                self.report.not_json("event", &why);
                event.write(out);
                if let (true, Some(text)) = (first, &self.report.unreadable) {
                    let text = text.replace(['\r', '\n'], " ");
                    let _ = write!(out, ": taskflow-proxy {NOT_JSON}: {text}\n\n");
                }
                return;
            }
        };
        if chunk.contains_key("error") {
            event.write(out);
            return;
        }
        self.report.usage(chunk.get("usage"));
        let mut changed = false;
        if let Some(template) = template(&chunk) {
            self.template = template;
        }
        if let Some(Value::Array(choices)) = chunk.get_mut("choices") {
            for (position, choice) in choices.iter_mut().enumerate() {
                changed |= self.choice(choice, position);
            }
        }
        if let Some(redactor) = &mut self.redactor {
            changed |= redactor.chunk(&mut chunk);
        }
        if !changed {
            event.write(out);
        } else if !is_empty_chunk(&chunk) {
            write_event(out, &event.fields, Value::Object(chunk).to_string().as_bytes());
        }
        self.write_notes(out);
    }

    /// The upstream's stream ended, after `fault` if it broke. An answer the upstream did not
    /// complete ends with an error event, so that no client takes a cut answer for a whole one.
    pub(crate) fn end(&mut self, fault: Option<&Fault>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if fault.is_none() && self.complete() {
            self.flush(out);
            self.write_notes(out);
            self.done = true;
            return;
        }
        self.done = true;
        // What was held back for the key is text of the answer all the same.
        self.write_choices(Vec::new(), out);
        let ended = Fault::interrupted(
            "the upstream stream ended before the answer was complete".to_owned(),
        );
        let fault = fault.unwrap_or(&ended);
        let error = json!({"error": {
            "message": fault.message,
            "type": fault.kind.name(),
            "code": fault.kind.name(),
        }});
        write_event(out, b"", error.to_string().as_bytes());
    }

    fn choice(&mut self, choice: &mut Value, position: usize) -> bool {
        let Some(choice) = choice.as_object_mut() else { return false };
        let key = choice.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let rewriter =
            self.choices.entry(key).or_insert_with(|| ChoiceRewriter::new(&self.reading));
        if rewriter.finished {
            return false;
        }
        let mut out = Pieces::default();
        let mut changed = false;
        let text_in = match choice.get_mut("delta").and_then(Value::as_object_mut) {
            Some(delta) => {
                let text_in = rewriter.read_text(delta, &mut out);
                if let Some(Value::Array(calls)) = delta.get_mut("tool_calls")
                    && rewriter.structured_list(calls)
                {
                    changed = true;
                    if calls.is_empty() {
                        delta.remove("tool_calls");
                    }
                }
                text_in
            }
            None => Default::default(),
        };
        let finish = choice.get("finish_reason").and_then(Value::as_str).filter(|r| !r.is_empty());
        let finishing = finish.is_some();
        if finishing {
            rewriter.finish(&mut out);
            rewriter.drop_nameless(&mut out);
            if let Some(reason) = rewriter.finish_reason(finish) {
                choice.insert("finish_reason".into(), json!(reason));
                changed = true;
            }
        }
        if !text_in.same_as(&out) {
            changed = true;
            let delta =
                choice.entry("delta").or_insert_with(|| Value::Object(Map::new())).as_object_mut();
            if let Some(delta) = delta {
                write_text(delta, &text_in, &out, rewriter.reasoning_keys, false);
                append_calls(delta, &out);
            }
        }
        if finishing {
            self.settle(key);
        }
        changed
    }

    /// Moves what a finished choice's reader learned into the report.
    fn settle(&mut self, key: u64) {
        if let Some(rewriter) = self.choices.get_mut(&key) {
            self.report.format = self.report.format.or(rewriter.format());
            self.report.calls_fixed += std::mem::take(&mut rewriter.calls.tagged);
            self.report.notes.append(&mut rewriter.calls.notes);
        }
    }

    /// Ends every choice still open and sends what their parsers held, in one chunk.
    fn flush(&mut self, out: &mut Vec<u8>) {
        let mut choices = Vec::new();
        let keys: Vec<u64> = self.choices.keys().copied().collect();
        for key in keys {
            let Some(rewriter) = self.choices.get_mut(&key) else { continue };
            if rewriter.finished {
                continue;
            }
            let mut pieces = Pieces::default();
            rewriter.finish(&mut pieces);
            rewriter.drop_nameless(&mut pieces);
            let reasoning_keys = rewriter.reasoning_keys;
            self.settle(key);
            if pieces.is_empty() {
                continue;
            }
            let mut delta = Map::new();
            write_text(&mut delta, &Default::default(), &pieces, reasoning_keys, false);
            append_calls(&mut delta, &pieces);
            choices.push(json!({"index": key, "delta": delta, "finish_reason": null}));
        }
        self.write_choices(choices, out);
    }

    /// Writes a chunk of the proxy's own with `choices` and the text still held back for the
    /// key, unless it would say nothing.
    fn write_choices(&mut self, mut choices: Vec<Value>, out: &mut Vec<u8>) {
        if let Some(redactor) = &mut self.redactor {
            redactor.finish(&mut choices);
        }
        write_chunk(&self.template, choices, out);
    }

    fn write_notes(&mut self, out: &mut Vec<u8>) {
        for note in &self.report.notes[self.notes_sent..] {
            let text = format!("{}: {}", note.kind, note.message).replace(['\r', '\n'], " ");
            let _ = write!(out, ": taskflow-proxy {text}\n\n");
        }
        self.notes_sent = self.report.notes.len();
    }
}

fn append_calls(delta: &mut Map<String, Value>, out: &Pieces) {
    if out.calls.is_empty() {
        return;
    }
    let calls = delta.entry("tool_calls").or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(calls) = calls {
        calls.extend(out.call_deltas());
    }
}

/// A chunk that says nothing once its held-back text was taken out.
fn is_empty_chunk(chunk: &Map<String, Value>) -> bool {
    let quiet = |value: Option<&Value>| value.is_none_or(Value::is_null);
    quiet(chunk.get("usage"))
        && chunk.get("choices").and_then(Value::as_array).is_some_and(|choices| {
            choices.iter().all(|choice| {
                choice.get("delta").is_none_or(|d| d.as_object().is_some_and(Map::is_empty))
                    && quiet(choice.get("finish_reason"))
                    && quiet(choice.get("logprobs"))
            })
        })
}

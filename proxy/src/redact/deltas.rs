//! The key spelled across a stream's chunks. A client joins the text of a streamed choice
//! chunk after chunk: `content`, the reasoning, `refusal`, a call's `arguments`, a legacy
//! completion's `text`. An upstream that echoes the key a few characters per event gives the
//! client the whole key though no event holds it, and the bytes of the stream never do either
//! (each piece sits in its own event's JSON), so the byte-level [`Redactor`](super::Redactor)
//! cannot see it. Each such field is read here as the text it joins to: an end of it that may
//! still be the start of the key (shorter than the key) is held until the field's next piece
//! tells, the key is replaced where it completes, and what is held goes out in the choice's
//! finishing chunk (or, at the end of the stream, in a chunk of its own). Text that cannot
//! start the key goes on at once, and its chunk as it came.
//!
//! The texts are read decoded from the JSON, so the key is found however the JSON escaped its
//! characters. A call's `id` and `name` are not held: a client takes them from the call's
//! first delta, which must keep them whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use taskflow_providers::ApiKey;

/// The fields of a chat chunk's `delta` whose text a client joins.
const DELTA_TEXTS: [&str; 4] = ["content", "reasoning_content", "reasoning", "refusal"];

/// A text a client joins, in one choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    /// A field of [`DELTA_TEXTS`].
    Delta(&'static str),
    /// `delta.tool_calls[index].function.arguments`, by the call's index.
    Arguments(u64),
    /// `delta.function_call.arguments` (the older single call).
    FunctionCall,
    /// A legacy completion's `text`.
    Text,
}

/// Takes the key out of the texts a client joins across a stream's chunks.
pub(crate) struct DeltaRedactor {
    key: ApiKey,
    /// What the key becomes, as [`ApiKey::redact`] writes it.
    replacement: String,
    /// What each field holds back, by choice index and field; never empty.
    held: BTreeMap<(u64, Field), String>,
}

impl DeltaRedactor {
    pub(crate) fn new(key: ApiKey) -> Self {
        let replacement = key.redact(key.expose());
        Self { key, replacement, held: BTreeMap::new() }
    }

    /// Takes one chunk's texts in place: what may start the key is taken out (and held), the key
    /// replaced, a finishing choice given what it held. Says whether the chunk changed.
    pub(crate) fn chunk(&mut self, chunk: &mut Map<String, Value>) -> bool {
        let Some(Value::Array(choices)) = chunk.get_mut("choices") else { return false };
        let mut changed = false;
        for (position, choice) in choices.iter_mut().enumerate() {
            if let Value::Object(choice) = choice {
                let finish = choice.get("finish_reason").and_then(Value::as_str);
                let last = finish.is_some_and(|reason| !reason.is_empty());
                changed |= self.choice(choice, position, last);
            }
        }
        changed
    }

    /// The stream ends: `choices` (those of its last chunk, possibly none) get all that
    /// their fields hold, and every other choice that holds text gets an entry of its own.
    pub(crate) fn finish(&mut self, choices: &mut Vec<Value>) {
        for (position, choice) in choices.iter_mut().enumerate() {
            if let Value::Object(choice) = choice {
                self.choice(choice, position, true);
            }
        }
        while let Some(&(index, _)) = self.held.keys().next() {
            let mut choice = Map::new();
            choice.insert("index".into(), json!(index));
            self.release(index, &mut choice);
            choice.insert("finish_reason".into(), Value::Null);
            choices.push(Value::Object(choice));
        }
    }

    /// One choice of a chunk (`position` in its list); `last`: the choice ends with it.
    fn choice(&mut self, choice: &mut Map<String, Value>, position: usize, last: bool) -> bool {
        let index = choice.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
        let mut changed = false;
        if let Some(Value::String(text)) = choice.get_mut("text") {
            changed |= self.pass((index, Field::Text), text, last);
        }
        if let Some(Value::Object(delta)) = choice.get_mut("delta") {
            for name in DELTA_TEXTS {
                let Some(Value::String(text)) = delta.get_mut(name) else { continue };
                if self.pass((index, Field::Delta(name)), text, last) {
                    changed = true;
                    // A field left with nothing is taken out, as the rewriter does with the
                    // text its parsers hold (and a chunk left with nothing is not sent).
                    if text.is_empty() {
                        delta.remove(name);
                    }
                }
            }
            if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                for (position, call) in calls.iter_mut().enumerate() {
                    let call_index =
                        call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
                    let arguments = call.get_mut("function").and_then(|f| f.get_mut("arguments"));
                    if let Some(Value::String(text)) = arguments {
                        changed |= self.pass((index, Field::Arguments(call_index)), text, last);
                    }
                }
            }
            let arguments = delta.get_mut("function_call").and_then(|f| f.get_mut("arguments"));
            if let Some(Value::String(text)) = arguments {
                changed |= self.pass((index, Field::FunctionCall), text, last);
            }
        }
        if last {
            changed |= self.release(index, choice);
        }
        changed
    }

    /// The next piece of one field's text: `text` becomes what goes out now (`last`: all of
    /// it). Says whether it changed.
    fn pass(&mut self, slot: (u64, Field), text: &mut String, last: bool) -> bool {
        let key = self.key.expose();
        let held = self.held.remove(&slot);
        if held.is_none() && !text.contains(key) && (last || start_of_key(key, text) == text.len())
        {
            return false;
        }
        let mut joined = held.unwrap_or_default();
        joined.push_str(text);
        if joined.contains(key) {
            joined = joined.replace(key, &self.replacement);
        }
        if !last {
            let tail = joined.split_off(start_of_key(key, &joined));
            if !tail.is_empty() {
                self.held.insert(slot, tail);
            }
        }
        if joined == *text {
            return false;
        }
        *text = joined;
        true
    }

    /// Gives choice `index`'s held text to `choice`, its last; says whether it held any.
    fn release(&mut self, index: u64, choice: &mut Map<String, Value>) -> bool {
        let mut released = false;
        self.held.retain(|&(of, field), text| {
            if of != index {
                return true;
            }
            put(choice, field, std::mem::take(text));
            released = true;
            false
        });
        released
    }
}

/// Writes `text` into `choice` as `field`, which it does not hold as text.
fn put(choice: &mut Map<String, Value>, field: Field, text: String) {
    let text = Value::String(text);
    if field == Field::Text {
        choice.insert("text".into(), text);
        return;
    }
    let mut delta = take_object(choice, "delta");
    match field {
        Field::Delta(name) => {
            delta.insert(name.into(), text);
        }
        Field::Arguments(call) => {
            let mut calls = match delta.remove("tool_calls") {
                Some(Value::Array(calls)) => calls,
                _ => Vec::new(),
            };
            calls.push(json!({"index": call, "function": {"arguments": text}}));
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        Field::FunctionCall => {
            let mut call = take_object(&mut delta, "function_call");
            call.insert("arguments".into(), text);
            delta.insert("function_call".into(), Value::Object(call));
        }
        Field::Text => {}
    }
    choice.insert("delta".into(), Value::Object(delta));
}

/// The object `map` holds at `key`, taken out of it (an empty one where it holds none).
fn take_object(map: &mut Map<String, Value>, key: &str) -> Map<String, Value> {
    match map.remove(key) {
        Some(Value::Object(object)) => object,
        _ => Map::new(),
    }
}

/// Where the longest end of `text` that starts `key` (and is shorter than it) begins;
/// `text.len()` when none does. Such an end starts with the key's first byte, which starts a
/// character, so it starts one in `text` too.
fn start_of_key(key: &str, text: &str) -> usize {
    let (key, bytes) = (key.as_bytes(), text.as_bytes());
    let from = bytes.len().saturating_sub(key.len().saturating_sub(1));
    (from..bytes.len()).find(|&at| key.starts_with(&bytes[at..])).unwrap_or(bytes.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-supersecret-12345";

    /// Each kind of text a client joins, by where the test writes it.
    const FIELDS: [Field; 7] = [
        Field::Delta("content"),
        Field::Delta("reasoning_content"),
        Field::Delta("reasoning"),
        Field::Delta("refusal"),
        Field::Arguments(2),
        Field::FunctionCall,
        Field::Text,
    ];

    /// A chunk of choice `index` whose `field` holds `text`.
    fn chunk(index: u64, field: Field, text: &str, finish: Option<&str>) -> Map<String, Value> {
        let mut choice = Map::new();
        choice.insert("index".into(), json!(index));
        put(&mut choice, field, text.to_owned());
        choice.insert("finish_reason".into(), json!(finish));
        let chunk = json!({"id": "c1", "object": "chat.completion.chunk", "choices": [choice]});
        chunk.as_object().cloned().unwrap_or_default()
    }

    /// The text of `field` in the chunk's choice `index`, as a client appends it.
    fn text_of(chunk: &Map<String, Value>, index: u64, field: Field) -> String {
        let choices = chunk.get("choices").and_then(Value::as_array).into_iter().flatten();
        let choice = choices.filter(|choice| choice["index"] == json!(index));
        let texts = choice.flat_map(|choice| match field {
            Field::Delta(name) => vec![&choice["delta"][name]],
            Field::Arguments(call) => choice["delta"]["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|entry| entry["index"] == json!(call))
                .map(|entry| &entry["function"]["arguments"])
                .collect(),
            Field::FunctionCall => vec![&choice["delta"]["function_call"]["arguments"]],
            Field::Text => vec![&choice["text"]],
        });
        texts.filter_map(Value::as_str).collect()
    }

    /// `text` taken through a redactor as the pieces that `cuts` (byte offsets) make of it,
    /// each in a chunk of `field`; the choice finishes with the last piece, or with a chunk of
    /// its own, or the stream just ends. Returns what the client joins.
    fn joined(key: &ApiKey, field: Field, text: &str, cuts: &[usize], end: usize) -> String {
        let mut redactor = DeltaRedactor::new(key.clone());
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(text.len());
        let mut client = String::new();
        for (at, pair) in bounds.windows(2).enumerate() {
            let last = at == bounds.len() - 2;
            let finish = (last && end == 0).then_some("stop");
            let mut sent = chunk(0, field, &text[pair[0]..pair[1]], finish);
            redactor.chunk(&mut sent);
            client.push_str(&text_of(&sent, 0, field));
            if !last {
                // Held back: at most what may still start the key.
                let so_far = text[..pair[1]].replace(key.expose(), "[redacted]");
                assert!(so_far.starts_with(&client), "{so_far:?} / {client:?}");
                assert!(so_far.len() - client.len() < key.expose().len(), "{so_far:?}");
            }
        }
        if end == 1 {
            let mut sent = chunk(0, Field::Delta("content"), "", Some("stop"));
            redactor.chunk(&mut sent);
            client.push_str(&text_of(&sent, 0, field));
        }
        let mut choices = Vec::new();
        redactor.finish(&mut choices);
        let last = json!({"choices": choices});
        client.push_str(&text_of(last.as_object().unwrap_or(&Map::new()), 0, field));
        client
    }

    /// The char boundaries of `text`, past its start.
    fn boundaries(text: &str) -> Vec<usize> {
        text.char_indices().map(|(at, _)| at).skip(1).collect()
    }

    #[test]
    fn the_key_is_out_of_every_joined_text_wherever_the_chunks_cut_it() {
        let key = ApiKey::new(KEY).unwrap();
        let text = "I'll check. key=Bearer sk-supersecret-12345, not sk-supersecret-1234 é sk-su";
        let expected = "I'll check. key=Bearer [redacted], not sk-supersecret-1234 é sk-su";
        let cuts = boundaries(text);
        for field in FIELDS {
            for end in 0..3 {
                assert_eq!(joined(&key, field, text, &[], end), expected, "{field:?} whole");
                for (at, &one) in cuts.iter().enumerate() {
                    for &two in &cuts[at..] {
                        let out = joined(&key, field, text, &[one, two], end);
                        assert_eq!(out, expected, "{field:?} cut at {one} and {two}, end {end}");
                    }
                }
                // One character per chunk.
                assert_eq!(joined(&key, field, text, &cuts, end), expected, "{field:?} by one");
            }
        }
        // A key that is not ASCII, one character per chunk.
        let key = ApiKey::new("ключ-é😀").unwrap();
        let text = "a ключ-é😀 b ключ-é";
        assert_eq!(joined(&key, FIELDS[0], text, &boundaries(text), 2), "a [redacted] b ключ-é");
    }

    #[test]
    fn text_that_cannot_start_the_key_leaves_its_chunk_as_it_came() {
        let mut redactor = DeltaRedactor::new(ApiKey::new(KEY).unwrap());
        let field = Field::Delta("content");
        let mut plain = chunk(0, field, "Hello, world", None);
        assert!(!redactor.chunk(&mut plain));
        assert_eq!(plain, chunk(0, field, "Hello, world", None));
        // Only what may start the key waits, and a chunk with nothing else loses its field.
        let mut ends = chunk(0, field, "Yes", None);
        assert!(redactor.chunk(&mut ends));
        assert_eq!(text_of(&ends, 0, field), "Ye");
        let mut more = chunk(0, field, "k-", None);
        assert!(redactor.chunk(&mut more));
        assert_eq!(more["choices"][0]["delta"], json!({}));
        let mut not_the_key = chunk(0, field, "x", None);
        assert!(redactor.chunk(&mut not_the_key));
        assert_eq!(text_of(&not_the_key, 0, field), "sk-x");
    }

    #[test]
    fn what_a_choice_holds_goes_out_with_its_finish_or_at_the_end() {
        let mut redactor = DeltaRedactor::new(ApiKey::new(KEY).unwrap());
        let (content, arguments) = (Field::Delta("content"), Field::Arguments(1));
        for (index, field) in [(0, content), (1, content), (1, arguments)] {
            redactor.chunk(&mut chunk(index, field, "a sk-su", None));
        }
        // Choice 0 finishes in a chunk without text: it gets its held text.
        let mut finish = chunk(0, Field::Delta("refusal"), "", Some("stop"));
        assert!(redactor.chunk(&mut finish));
        assert_eq!(text_of(&finish, 0, content), "sk-su");
        // Choice 1 never finishes: the end of the stream gives it an entry of its own.
        let mut choices = Vec::new();
        redactor.finish(&mut choices);
        let last = json!({"choices": choices});
        let last = last.as_object().unwrap();
        assert_eq!(
            (text_of(last, 1, content), text_of(last, 1, arguments)),
            ("sk-su".into(), "sk-su".into())
        );
        assert_eq!(choices.len(), 1);
        assert!(redactor.held.is_empty());
    }

    #[test]
    fn chunks_of_any_shape_are_taken_without_a_panic() {
        let mut redactor = DeltaRedactor::new(ApiKey::new(KEY).unwrap());
        let odd = [
            json!({}),
            json!({"choices": 3}),
            json!({"choices": [null, 1, "s", []]}),
            json!({"choices": [{"index": -1, "delta": null, "text": 5}]}),
            json!({"choices": [{"index": 1.5, "delta": {"content": 5, "tool_calls": {}}}]}),
            json!({"choices": [{"delta": {"tool_calls": [null, {"index": "x", "function": 1}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "sk-"}}]}}]}),
            json!({"choices": [{"delta": {"function_call": "sk", "content": "sk"}, "text": "sk"}]}),
            json!({"choices": [{"index": u64::MAX, "delta": {"content": "sk"}, "finish_reason": 1}]}),
            json!({"choices": [{"delta": [], "finish_reason": "stop", "text": "sk"}]}),
        ];
        for chunk in odd {
            let mut chunk = chunk.as_object().cloned().unwrap_or_default();
            redactor.chunk(&mut chunk);
        }
        let mut choices = vec![json!(null), json!({"index": 0, "delta": "x"})];
        redactor.finish(&mut choices);
        assert!(redactor.held.is_empty());
        assert!(serde_json::to_string(&choices).unwrap().contains("sk"), "{choices:?}");
    }
}

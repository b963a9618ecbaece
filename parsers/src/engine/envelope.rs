//! Calls written as one JSON object that holds the tool's name and its arguments (Hermes,
//! Mistral's array form, Llama 3): `{"name": "get_weather", "arguments": {...}}`, ended here
//! once the object is read.
//!
//! A call announced while its object was read ([`call_object`](crate::engine::call_object))
//! streamed its arguments; its end reports what else the object held, and where its text
//! stopped being a JSON object if it did (the call stays a call, with the diagnostic). Any
//! other call is ended from its whole text: validated once with serde_json, then its members
//! located by a small scan, so that the arguments stay the model's text byte for byte; a text
//! that is no JSON object, or an object without a usable `name`, is not a call.
//!
//! `arguments` and `parameters` both name the arguments; `id` is the model's call id; `type`
//! may say `"function"`. Any other member, a second arguments member, or a `type` of another
//! kind is reported with its text rather than silently dropped.

use crate::arguments::ArgumentsCheck;
use crate::engine::call::{Calls, Ending, Note};
use crate::engine::diag::{diagnostic, with_text};
use crate::engine::tally::non_whitespace_len;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::message::DiagnosticKind;
use crate::tools::ToolSpec;

/// One member of the object: its key as written (inside the quotes), and its raw value at
/// byte `at` of the object text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Member<'a> {
    pub key: &'a str,
    pub value: &'a str,
    pub at: usize,
}

impl<'a> Member<'a> {
    /// The value when it is a JSON string that needs no unescaping: its text.
    pub(crate) fn plain_string(&self) -> Option<&'a str> {
        let inner = self.value.strip_prefix('"')?.strip_suffix('"')?;
        (!inner.contains('\\')).then_some(inner)
    }
}

/// The parts of a call object.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Envelope<'a> {
    pub name: Option<Member<'a>>,
    pub arguments: Option<Member<'a>>,
    pub id: Option<Member<'a>>,
    /// Members that are not part of a call object, in order.
    pub others: Vec<Member<'a>>,
}

/// Reads a call object; `Err` says why the text is not a JSON object (the caller reports the
/// object's arguments as invalid, with serde_json's reason).
pub(crate) fn read_envelope(text: &str) -> Result<Envelope<'_>, String> {
    if !text.starts_with('{') {
        return Err("the tool call is not a JSON object".to_owned());
    }
    if let Err(error) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
        return Err(format!("the tool call is not a valid JSON object: {error}"));
    }
    Ok(classify(members(text)))
}

/// The parts of a call object whose members are `members`, in order: the first of each part
/// counts, and the rest are others.
fn classify<'a>(members: impl IntoIterator<Item = Member<'a>>) -> Envelope<'a> {
    let mut envelope = Envelope::default();
    for member in members {
        let key = decoded_key(member.key);
        let slot = match key.as_str() {
            "name" => &mut envelope.name,
            "arguments" | "parameters" => &mut envelope.arguments,
            "id" => &mut envelope.id,
            "type" if member.value == "\"function\"" => continue,
            _ => {
                envelope.others.push(member);
                continue;
            }
        };
        match slot {
            None => *slot = Some(member),
            Some(_) => envelope.others.push(member),
        }
    }
    envelope
}

/// Ends the open call, written as one JSON object, whose text was read (see the module
/// documentation). The object's syntax (everything not carried into the message) counts toward
/// the calls' tally.
pub(crate) fn finish_envelope_call<S: EventSink>(
    calls: &mut Calls,
    tools: &[ToolSpec],
    ending: Ending,
    out: TextOut,
    sink: &mut S,
) {
    match calls.take_object() {
        (body, offset, true) => finish_announced(calls, tools, (&body, offset), ending, sink),
        (body, offset, false) => finish_whole(calls, tools, (&body, offset), ending, out, sink),
    }
}

/// Ends a call announced while its object was read (`body`, at absolute `offset`), whose
/// arguments streamed: what else the object held is reported, and so is the text from where
/// it stopped being a JSON object (or that it was not closed).
fn finish_announced<S: EventSink>(
    calls: &mut Calls,
    tools: &[ToolSpec],
    (body, offset): (&str, usize),
    ending: Ending,
    sink: &mut S,
) {
    let object = calls.object();
    let arguments = object.arguments(body.len()).unwrap_or(body.len()..body.len());
    let (name, id) = object.naming(body);
    let members = object.members().iter().map(|span| Member {
        key: &body[span.key.clone()],
        value: &body[span.value.clone()],
        at: span.value.start,
    });
    let envelope = classify(members);
    let (broken_at, unclosed) = (object.broken_at(), !object.closed() && ending == Ending::Closed);
    let index = calls.get().index;
    calls.streamed_arguments(&body[arguments.clone()], offset + arguments.start);
    let mut carried: Vec<&str> = vec![&body[arguments]];
    carried.extend(name);
    let mut strays = Vec::new();
    let mut late_id = None;
    match (envelope.id, id) {
        (Some(member), Some(id)) if member.plain_string() == Some(id) => carried.push(id),
        // An id the call could have had, read once it was announced with one of its own.
        (Some(member), _) if member.plain_string().is_some_and(|id| !id.is_empty()) => {
            late_id = Some(member);
        }
        (Some(member), _) => strays.push(member),
        (None, _) => {}
    }
    calls.end(ending, tools, sink);
    if let Some(member) = late_id {
        carried.push(member.value);
        let message = "the call's `id` came after its arguments, once the call was announced \
                       with an id of its own; dropped";
        let at = offset + member.at;
        sink.emit(with_text(DiagnosticKind::StrayText, Some(index), at, message, member.value));
    }
    report_strays(index, offset, strays.into_iter().chain(envelope.others), &mut carried, sink);
    if let Some(at) = broken_at {
        let text = body[at..].trim_end();
        let message = "the tool call object is not valid JSON from here on; this is no part of it";
        sink.emit(with_text(
            DiagnosticKind::MalformedCall,
            Some(index),
            offset + at,
            message,
            text,
        ));
        carried.push(text);
    } else if unclosed {
        let message = "the tool call object was not closed";
        let at = offset + body.len();
        sink.emit(diagnostic(DiagnosticKind::MalformedCall, Some(index), at, message));
    }
    calls.tally.count_syntax(syntax_bytes(body, &carried));
}

/// Announces, fills and ends the open call from its whole object text, `body` at absolute
/// `offset`. A call without an arguments member takes no arguments: `{}`. Text that is not a
/// JSON object, or an object without a usable `name`, is not a call: its text goes to `out`
/// (content, or reasoning in a think block), with the diagnostic.
fn finish_whole<S: EventSink>(
    calls: &mut Calls,
    tools: &[ToolSpec],
    (body, offset): (&str, usize),
    ending: Ending,
    out: TextOut,
    sink: &mut S,
) {
    let index = calls.get().index;
    let envelope = match read_envelope(body) {
        Ok(envelope) => envelope,
        Err(_) => {
            let message = "the tool call is not a JSON object with a `name` and `arguments`";
            let note =
                Note { kind: DiagnosticKind::MalformedCall, offset, message: message.to_owned() };
            return calls.drop_whole(body, note, ending, out, sink);
        }
    };
    let name = match envelope.name.map(|member| (member, member.plain_string())) {
        Some((member, Some(name))) => match Note::for_name(name, offset + member.at) {
            None => name,
            Some(note) => return calls.drop_whole(body, note, ending, out, sink),
        },
        Some((member, None)) => {
            let message = "the tool name is not a plain JSON string";
            let kind = DiagnosticKind::InvalidId;
            let note = Note { kind, offset: offset + member.at, message: message.to_owned() };
            return calls.drop_whole(body, note, ending, out, sink);
        }
        None => {
            let note = Note::no_name(offset, "the tool call has no `name`");
            return calls.drop_whole(body, note, ending, out, sink);
        }
    };
    let mut carried: Vec<&str> = vec![name];
    let mut notes = Vec::new();
    let id = match envelope.id.map(|id| (id, id.plain_string())) {
        Some((_, Some(id))) if !id.is_empty() => {
            carried.push(id);
            id.to_owned()
        }
        Some((member, _)) => {
            notes.push(member);
            calls.made_up_id()
        }
        None => calls.made_up_id(),
    };
    calls.announce(id, name.to_owned(), sink);
    match envelope.arguments {
        Some(member) => {
            carried.push(member.value);
            calls.push_arguments(member.value, offset + member.at, sink);
            if member.value.starts_with('{') {
                // A member of a valid object: valid JSON already, and an object.
                calls.get().checked = Some(ArgumentsCheck::Object);
            }
        }
        None => {
            calls.tally.count_generated("{}");
            calls.push_arguments("{}", offset, sink);
        }
    }
    calls.end(ending, tools, sink);
    report_strays(index, offset, notes.into_iter().chain(envelope.others), &mut carried, sink);
    calls.tally.count_syntax(syntax_bytes(body, &carried));
}

/// Reports the members of the call `index` (its object at absolute `offset`) that are no part
/// of it, with their text, which `carried` then holds.
fn report_strays<'a, S: EventSink>(
    index: usize,
    offset: usize,
    members: impl IntoIterator<Item = Member<'a>>,
    carried: &mut Vec<&'a str>,
    sink: &mut S,
) {
    for member in members {
        carried.push(member.value);
        sink.emit(with_text(
            DiagnosticKind::StrayText,
            Some(index),
            offset + member.at,
            format!("the member `{}` is not part of a tool call; dropped", member.key),
            member.value,
        ));
    }
}

/// The non-whitespace bytes of `text` outside the given member values: the object's syntax.
fn syntax_bytes(text: &str, carried: &[&str]) -> usize {
    non_whitespace_len(text) - carried.iter().map(|piece| non_whitespace_len(piece)).sum::<usize>()
}

fn decoded_key(raw: &str) -> String {
    if raw.contains('\\') {
        serde_json::from_str::<String>(&format!("\"{raw}\"")).unwrap_or_else(|_| raw.to_owned())
    } else {
        raw.to_owned()
    }
}

/// The members of a valid JSON object text.
fn members(text: &str) -> Vec<Member<'_>> {
    let bytes = text.as_bytes();
    let mut members = Vec::new();
    let mut i = skip_whitespace(bytes, 1);
    while i < bytes.len() && bytes[i] == b'"' {
        let key_end = string_end(bytes, i);
        let key = &text[i + 1..key_end - 1];
        i = skip_whitespace(bytes, key_end);
        i = skip_whitespace(bytes, i + 1); // the colon
        let value_end = value_end(bytes, i);
        members.push(Member { key, value: &text[i..value_end], at: i });
        i = skip_whitespace(bytes, value_end);
        if i < bytes.len() && bytes[i] == b',' {
            i = skip_whitespace(bytes, i + 1);
        }
    }
    members
}

fn skip_whitespace(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The position after the string starting at `start` (a `"`).
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The position after the value starting at `start`.
fn value_end(bytes: &[u8], start: usize) -> usize {
    match bytes.get(start) {
        Some(b'"') => string_end(bytes, start),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = start;
            while i < bytes.len() {
                match bytes[i] {
                    b'"' => {
                        i = string_end(bytes, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            bytes.len()
        }
        _ => {
            let mut i = start;
            while i < bytes.len() && !matches!(bytes[i], b',' | b'}' | b']') {
                i += 1;
            }
            while i > start && bytes[i - 1].is_ascii_whitespace() {
                i -= 1;
            }
            i
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member<'a>(text: &'a str, key: &'a str, value: &'a str) -> Member<'a> {
        Member { key, value, at: text.find(value).unwrap() }
    }

    #[test]
    fn members_are_located_byte_exact() {
        let text =
            r#"{"name": "get_weather", "arguments": {"city": "Pa}ris", "n": [1, {"x": "]"}]}}"#;
        let envelope = read_envelope(text).unwrap();
        assert_eq!(envelope.name, Some(member(text, "name", "\"get_weather\"")));
        assert_eq!(
            envelope.arguments.unwrap().value,
            r#"{"city": "Pa}ris", "n": [1, {"x": "]"}]}"#
        );
        assert!(envelope.others.is_empty());
        assert_eq!(envelope.name.unwrap().plain_string(), Some("get_weather"));
    }

    #[test]
    fn other_members_are_kept_apart() {
        let text = "{ \"type\" : \"function\" , \"parameters\":{},\"arguments\" : 1 , \"id\":\"abc\", \
                    \"why\": null , \"n\\u0061me\": \"f\"}";
        let envelope = read_envelope(text).unwrap();
        assert_eq!(envelope.arguments.unwrap().value, "{}");
        assert_eq!(envelope.id.unwrap().plain_string(), Some("abc"));
        assert_eq!(envelope.name.unwrap().value, "\"f\"");
        let others: Vec<_> = envelope.others.iter().map(|m| (m.key, m.value)).collect();
        assert_eq!(others, [("arguments", "1"), ("why", "null")]);
    }

    #[test]
    fn invalid_objects_are_refused() {
        assert!(read_envelope("[1]").unwrap_err().contains("not a JSON object"));
        assert!(read_envelope("{\"name\": }").unwrap_err().contains("not a valid JSON object"));
        assert!(read_envelope("{} x").is_err());
        assert_eq!(read_envelope("{}").unwrap(), Envelope::default());
    }

    #[test]
    fn escaped_strings_are_not_plain() {
        let text = r#"{"name": "a\"b"}"#;
        assert_eq!(read_envelope(text).unwrap().name.unwrap().plain_string(), None);
    }
}

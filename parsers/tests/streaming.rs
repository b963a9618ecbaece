//! When streaming says what: a call is announced only with its name, once that is known, and
//! its arguments stream as they arrive from then on. Each case is fed at every chunk size.

use serde_json::json;
use taskflow_parsers::{Format, ParseOptions, StreamEvent, StreamParser, ToolSpec};

/// The events of `input` fed in chunks of `size` bytes (the inputs are ASCII), each with the
/// number of input bytes fed when it came out.
fn events_in_chunks(
    format: Format,
    input: &str,
    size: usize,
    options: &ParseOptions,
) -> Vec<(usize, StreamEvent)> {
    let mut parser = StreamParser::new(format, options);
    let mut events = Vec::new();
    let mut fed = 0;
    for chunk in input.as_bytes().chunks(size) {
        fed += chunk.len();
        let chunk = std::str::from_utf8(chunk).expect("ASCII input");
        events.extend(parser.feed(chunk).into_iter().map(|event| (fed, event)));
    }
    events.extend(parser.finish().into_iter().map(|event| (fed, event)));
    events
}

/// A bare index is announced with the name the declared tools give it, once its arguments are
/// complete.
#[test]
fn a_bare_index_is_announced_with_its_resolved_name_once_its_arguments_are_complete() {
    let schema = |key: &str| json!({"type": "object", "required": [key]});
    let tools = vec![
        ToolSpec { name: "read_file".into(), parameters: Some(schema("path")) },
        ToolSpec { name: "get_weather".into(), parameters: Some(schema("city")) },
    ];
    let options = ParseOptions { tools };
    let input = "<|tool_call_begin|>3<|tool_call_argument_begin|>{\"city\": \"Lima\"}\
                 <|tool_call_end|>";
    let end_of_arguments = input.find('}').expect("arguments") + 1;
    for size in 1..=input.len() {
        let events = events_in_chunks(Format::Kimi, input, size, &options);
        let start = events.iter().find_map(|(fed, event)| match event {
            StreamEvent::CallStart { id, name, .. } => Some((*fed, id.as_str(), name.as_str())),
            _ => None,
        });
        let (fed, id, name) = start.expect("the call is announced");
        assert_eq!((id, name), ("3", "get_weather"), "in {size}-byte chunks");
        assert!(fed > end_of_arguments, "announced before its arguments were complete ({size})");
    }
}

/// A call named by its id is announced as soon as the id is read, and its arguments stream
/// before the call ends.
#[test]
fn a_named_call_streams_its_arguments_as_they_arrive() {
    let input = "<|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>\
                 {\"city\": \"Lima\", \"days\": 3}<|tool_call_end|>";
    let arguments_at = input.find('{').expect("arguments");
    let end_at = input.rfind("<|tool_call_end|>").expect("end marker");
    for size in 1..=input.len() {
        let events = events_in_chunks(Format::Kimi, input, size, &ParseOptions::default());
        let start = events.iter().find(|(_, event)| matches!(event, StreamEvent::CallStart { .. }));
        let (fed, _) = start.expect("the call is announced");
        assert!(*fed <= arguments_at + size, "announced late in {size}-byte chunks");
        let first_arguments =
            events.iter().find(|(_, event)| matches!(event, StreamEvent::ArgumentsDelta { .. }));
        let (fed, _) = first_arguments.expect("arguments stream");
        if size < end_at - arguments_at {
            assert!(*fed < end_at, "arguments held until the call's end in {size}-byte chunks");
        }
    }
}

/// The call announced in `events`, when it was, and the arguments streamed with how much of
/// the input had been fed when the first of them came out.
fn announced(events: &[(usize, StreamEvent)]) -> (usize, String, Option<usize>, String) {
    let (fed, name) = events
        .iter()
        .find_map(|(fed, event)| match event {
            StreamEvent::CallStart { name, .. } => Some((*fed, name.clone())),
            _ => None,
        })
        .expect("the call is announced");
    let mut first_arguments = None;
    let mut arguments = String::new();
    for (fed, event) in events {
        if let StreamEvent::ArgumentsDelta { text, .. } = event {
            first_arguments.get_or_insert(*fed);
            arguments.push_str(text);
        }
    }
    (fed, name, first_arguments, arguments)
}

/// A call written as one JSON object (Hermes, Llama 3 after `<|python_tag|>`, Mistral's array
/// when its id comes first) is announced once its name is read and its arguments begin, and
/// they stream from then on.
#[test]
fn a_call_written_as_an_object_streams_its_arguments_once_named() {
    let long = "x".repeat(300);
    let arguments = format!("{{\"a\": \"{long}\", \"n\": [1, {{\"b\": \"}}]\"}}]}}");
    let cases = [
        (
            Format::Hermes,
            format!("<tool_call>\n{{\"name\": \"f\", \"arguments\": {arguments}}}\n</tool_call>"),
        ),
        (Format::Llama3, format!("<|python_tag|>{{\"name\": \"f\", \"parameters\": {arguments}}}")),
        (
            Format::Mistral,
            format!(
                "[TOOL_CALLS][{{\"id\": \"a1B2c3D4e\", \"name\": \"f\", \"arguments\": {arguments}}}]"
            ),
        ),
    ];
    for (format, input) in cases {
        let arguments_at = input.find("{\"a\"").expect("arguments");
        let arguments_end = arguments_at + arguments.len();
        for size in [1, 2, 7, 16, 64, 100] {
            let events = events_in_chunks(format, &input, size, &ParseOptions::default());
            let (fed, name, first_arguments, streamed) = announced(&events);
            assert_eq!(name, "f", "{format}");
            assert!(fed <= arguments_at + size, "{format}: announced late in {size}-byte chunks");
            let first = first_arguments.expect("arguments stream");
            assert!(first < arguments_end, "{format}: arguments held in {size}-byte chunks");
            assert_eq!(streamed, arguments, "{format} in {size}-byte chunks");
        }
    }
}

/// Arguments written before the name wait for it; Mistral's array, whose template writes the
/// call's id after its arguments, waits for the id, which the call is announced with.
#[test]
fn a_call_object_waits_for_what_names_it() {
    let cases = [
        (
            Format::Hermes,
            "<tool_call>{\"arguments\": {\"a\": 1}, \"name\": \"f\"}</tool_call>",
            "\"f\"",
            "call_0",
        ),
        (
            Format::Mistral,
            "[TOOL_CALLS][{\"name\": \"f\", \"arguments\": {\"a\": 1}, \"id\": \"a1B2c3D4e\"}]",
            "\"a1B2c3D4e\"",
            "a1B2c3D4e",
        ),
    ];
    for (format, input, naming, id) in cases {
        let named_at = input.find(naming).expect("what names the call") + naming.len();
        for size in 1..=input.len() {
            let events = events_in_chunks(format, input, size, &ParseOptions::default());
            let (fed, name, _, streamed) = announced(&events);
            assert_eq!((name.as_str(), streamed.as_str()), ("f", "{\"a\": 1}"), "{format}");
            assert!(fed >= named_at, "{format}: announced before it was named ({size})");
            let start = events.iter().find_map(|(_, event)| match event {
                StreamEvent::CallStart { id, .. } => Some(id.as_str()),
                _ => None,
            });
            assert_eq!(start, Some(id), "{format}");
        }
    }
}

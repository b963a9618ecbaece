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

//! The fixture corpus: every `NAME.txt` under `fixtures/parsers/<format>/` (one folder per
//! format, and `auto/` for `--format auto`) is parsed with that format and compared with
//! `NAME.json`. A `NAME.tools.json` beside it declares tools (an array of
//! `{"name", "parameters"}`). Each case is checked one-shot and streamed at every chunk size,
//! from one character at a time to the whole input in one chunk: all must give the expected
//! message, and the streamed events must come in an order a consumer can follow
//! (`check_event_order`: no note about a call before its `CallStart`).
//!
//! `UPDATE_EXPECT=1 cargo test -p taskflow-parsers --test corpus` rewrites the `.json` files
//! from the parser's output, for review with `git diff`.
//!
//! Short cases that pin one rule each are written below as an input and its expected message,
//! and checked the same way.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use taskflow_parsers::{Format, Message, ParseOptions, StreamParser, ToolSpec, fold, parse};

mod common;
use common::check_event_order;

fn corpus_dir(format: Format) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/parsers").join(format.name())
}

fn cases(format: Format) -> Vec<PathBuf> {
    let mut cases: Vec<_> = fs::read_dir(corpus_dir(format))
        .expect("the fixture folder exists")
        .map(|entry| entry.expect("readable folder").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
        .collect();
    cases.sort();
    cases
}

fn options_for(input: &Path) -> ParseOptions {
    let tools_file = input.with_extension("tools.json");
    let tools: Vec<ToolSpec> = match fs::read_to_string(&tools_file) {
        Ok(text) => serde_json::from_str(&text).expect("a valid tools file"),
        Err(_) => Vec::new(),
    };
    ParseOptions { tools }
}

/// The message `input` streamed in chunks of `chunk_chars` characters gives, or what is wrong
/// with the order of its events.
fn stream_in_chunks(
    format: Format,
    input: &str,
    chunk_chars: usize,
    options: &ParseOptions,
) -> Result<Message, String> {
    let mut parser = StreamParser::new(format, options);
    let mut events = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    for chunk in chars.chunks(chunk_chars) {
        events.extend(parser.feed(&chunk.iter().collect::<String>()));
    }
    events.extend(parser.finish());
    check_event_order(&events)?;
    Ok(fold(events))
}

/// Checks one case of the folder; returns a description of the failure, if any.
fn check(format: Format, input_path: &Path) -> Option<String> {
    let input = fs::read_to_string(input_path).expect("UTF-8 fixture");
    let options = options_for(input_path);
    let expected_path = input_path.with_extension("json");
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        let actual = parse(format, &input, &options);
        let actual_json = serde_json::to_string_pretty(&actual).expect("serializable") + "\n";
        fs::write(&expected_path, &actual_json).expect("writable fixture folder");
    }
    let expected_json = fs::read_to_string(&expected_path).unwrap_or_default();
    let expected: Message = match serde_json::from_str(&expected_json) {
        Ok(expected) => expected,
        Err(error) => return Some(format!("{}: unreadable: {error}", expected_path.display())),
    };
    check_case(format, &input, &options, &expected)
        .map(|failure| format!("{}: {failure}", input_path.display()))
}

/// Checks that `input` gives `expected`, one-shot and streamed at every chunk size.
fn check_case(
    format: Format,
    input: &str,
    options: &ParseOptions,
    expected: &Message,
) -> Option<String> {
    let pretty = |message: &Message| serde_json::to_string_pretty(message).expect("serializable");
    let actual = parse(format, input, options);
    if actual != *expected {
        return Some(format!(
            "one-shot result differs\n--- expected\n{}\n--- actual\n{}",
            pretty(expected),
            pretty(&actual)
        ));
    }
    for chunk_chars in 1..=input.chars().count().max(1) {
        let streamed = match stream_in_chunks(format, input, chunk_chars, options) {
            Ok(streamed) => streamed,
            Err(problem) => return Some(format!("in {chunk_chars}-character chunks, {problem}")),
        };
        if streamed != *expected {
            return Some(format!(
                "streamed in {chunk_chars}-character chunks differs\n--- expected\n{}\n--- actual\n{}",
                pretty(expected),
                pretty(&streamed)
            ));
        }
    }
    None
}

/// Checks every case of `format`'s folder, which must hold at least `at_least` cases.
fn check_corpus(format: Format, at_least: usize) {
    let cases = cases(format);
    assert!(
        cases.len() >= at_least,
        "the {format} corpus has {} cases, fewer than {at_least}",
        cases.len()
    );
    let failures: Vec<String> = cases.iter().filter_map(|case| check(format, case)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} {format} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn kimi_corpus() {
    check_corpus(Format::Kimi, 30);
}

#[test]
fn hermes_corpus() {
    check_corpus(Format::Hermes, 10);
}

#[test]
fn qwen3_coder_corpus() {
    check_corpus(Format::Qwen3Coder, 10);
}

#[test]
fn glm45_corpus() {
    check_corpus(Format::Glm45, 10);
}

#[test]
fn deepseek_v3_corpus() {
    check_corpus(Format::DeepseekV3, 10);
}

#[test]
fn deepseek_v31_corpus() {
    check_corpus(Format::DeepseekV31, 10);
}

#[test]
fn mistral_corpus() {
    check_corpus(Format::Mistral, 10);
}

#[test]
fn llama3_corpus() {
    check_corpus(Format::Llama3, 10);
}

#[test]
fn harmony_corpus() {
    check_corpus(Format::Harmony, 10);
}

#[test]
fn minimax_m2_corpus() {
    check_corpus(Format::MinimaxM2, 10);
}

#[test]
fn auto_corpus() {
    check_corpus(Format::Auto, 10);
}

/// Checks cases written here, each an input and the message it must give, like the folder's.
fn check_cases(format: Format, cases: &[(&str, Value)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(input, expected)| {
            let expected: Message =
                serde_json::from_value(expected.clone()).expect("an expected message");
            let failure = check_case(format, input, &ParseOptions::default(), &expected)?;
            Some(format!("{input:?}: {failure}"))
        })
        .collect();
    assert!(failures.is_empty(), "{format}:\n\n{}", failures.join("\n\n"));
}

/// A message of content and diagnostics only.
fn content(text: &str, diagnostics: Value) -> Value {
    json!({"content": text, "reasoning": null, "tool_calls": [], "diagnostics": diagnostics})
}

/// A message of one call and diagnostics only.
fn one_call(name: &str, arguments: &str, diagnostics: Value) -> Value {
    json!({
        "content": null,
        "reasoning": null,
        "tool_calls": [{
            "id": "call_0",
            "type": "function",
            "function": {"name": name, "arguments": arguments}
        }],
        "diagnostics": diagnostics
    })
}

const INVALID_NAME: &str = "the tool name may hold only letters, digits, `_`, `-` and `.`: \
                            not a tool call, its text is kept as written";

/// Harmony: the recipient runs to the content type or the end of its part, so words after
/// the name are the name's, and a name with a space names no tool (not the tool its first
/// word names).
#[test]
fn harmony_recipient_words_are_never_dropped() {
    let invalid_name = json!([{
        "kind": "invalid_id", "call_index": null, "offset": 0, "message": INVALID_NAME
    }]);
    // In a header that names a recipient, the words are in the call's first part.
    let header_words = |call_index: Option<usize>, offset: usize, text: &str| {
        json!([{
            "kind": "stray_text",
            "call_index": call_index,
            "offset": offset,
            "message": "words in a message header that are no part of one",
            "text": text
        }])
    };
    let name_with_space =
        "<|channel|>commentary to=functions.get weather <|constrain|>json<|message|>{}<|call|>";
    let words_after_name =
        "<|channel|>commentary to=functions.get_weather junk words here<|message|>{}<|call|>";
    check_cases(
        Format::Harmony,
        &[
            (name_with_space, content(name_with_space, invalid_name.clone())),
            (words_after_name, content(words_after_name, invalid_name)),
            (
                "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json\
                 <|message|>{\"city\": \"Paris\"}<|call|>",
                one_call("get_weather", "{\"city\": \"Paris\"}", json!([])),
            ),
            (
                "<|channel|>commentary to=functions.get_weather json<|message|>{}<|call|>",
                one_call("get_weather", "{}", json!([])),
            ),
            (
                "<|channel|>commentary to=functions.get_weather<|constrain|>json<|message|>{}<|call|>",
                one_call("get_weather", "{}", json!([])),
            ),
            (
                "<|channel|>commentary please to=functions.get_weather <|constrain|>json more\
                 <|message|>{}<|call|>",
                one_call("get_weather", "{}", header_words(Some(0), 0, "please more")),
            ),
            (
                "<|start|>assistant<|channel|>final answer<|message|>Hi.<|return|>",
                content("Hi.", header_words(None, 0, "answer")),
            ),
        ],
    );
}

/// Harmony: `<|message|>` outside a header is an unexpected marker, like every other one.
#[test]
fn harmony_message_outside_a_header_is_reported() {
    let unexpected = json!([{
        "kind": "unexpected_marker",
        "call_index": null,
        "offset": 2,
        "message": "`<|message|>` outside any message; dropped"
    }]);
    check_cases(Format::Harmony, &[("a <|message|> b", content("a  b", unexpected))]);
}

/// DeepSeek V3: a word after the opening fence other than `json` is kept in a diagnostic.
#[test]
fn deepseek_v3_fence_language_is_kept() {
    let call = |language: &str| {
        format!(
            "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n\
             ```{language}\n{{\"city\": \"Paris\"}}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>"
        )
    };
    let other = call("jsonXYZ");
    let truncated = "<｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n```jsonX";
    let language = |input: &str, text: &str| {
        json!({
            "kind": "malformed_call",
            "call_index": 0,
            "offset": input.find(text).expect("the language"),
            "message": "the code fence around the arguments names a language other than `json`",
            "text": text
        })
    };
    let arguments = "{\"city\": \"Paris\"}";
    check_cases(
        Format::DeepseekV3,
        &[
            (&other, one_call("get_weather", arguments, json!([language(&other, "jsonXYZ")]))),
            (&call("JSON"), one_call("get_weather", arguments, json!([]))),
            (&call(""), one_call("get_weather", arguments, json!([]))),
            (
                truncated,
                one_call(
                    "f",
                    "",
                    json!([
                        language(truncated, "jsonX"),
                        {
                            "kind": "truncated",
                            "call_index": 0,
                            "offset": 0,
                            "message": "the input ended inside this tool call"
                        },
                        {
                            "kind": "invalid_arguments",
                            "call_index": 0,
                            "offset": 0,
                            "message": "the arguments are empty"
                        }
                    ]),
                ),
            ),
        ],
    );
}

/// Mistral: an element of the array that does not close by itself ends the array, and its
/// text is kept as written with the array's before it.
#[test]
fn mistral_broken_array_is_kept_as_written() {
    let not_a_call = |offset: usize| {
        json!({
            "kind": "malformed_call",
            "call_index": null,
            "offset": offset,
            "message": "the tool call is not a JSON object with a `name` and `arguments`: \
                        not a tool call, its text is kept as written"
        })
    };
    let truncated = |offset: usize| {
        json!({
            "kind": "truncated",
            "call_index": null,
            "offset": offset,
            "message": "the input ended inside this call"
        })
    };
    let closed_by_array = "[{\"name\":\"a\",\"arguments\": ],[{\"name\":\"b\",\"arguments\":{}}]";
    let after_a_call = "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {}}, {\"name\": \"g\"";
    check_cases(
        Format::Mistral,
        &[
            (
                "[TOOL_CALLS][{\"name\": \"g\", \"arguments\": ",
                content(
                    "[{\"name\": \"g\", \"arguments\":",
                    json!([not_a_call(13), truncated(13)]),
                ),
            ),
            (
                &format!("[TOOL_CALLS]{closed_by_array}"),
                content(closed_by_array, json!([not_a_call(13)])),
            ),
            (
                "[TOOL_CALLS] [ {\"name\": \"g\", [TOOL_CALLS]f[ARGS]{}",
                json!({
                    "content": "[ {\"name\": \"g\",",
                    "reasoning": null,
                    "tool_calls": [{
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "f", "arguments": "{}"}
                    }],
                    "diagnostics": [not_a_call(15)]
                }),
            ),
            (
                after_a_call,
                json!({
                    "content": ", {\"name\": \"g\"",
                    "reasoning": null,
                    "tool_calls": [{
                        "id": "call_0",
                        "type": "function",
                        "function": {"name": "a", "arguments": "{}"}
                    }],
                    "diagnostics": [not_a_call(45), truncated(45)]
                }),
            ),
        ],
    );
}

/// Qwen3-Coder: a value loses one line break at each end, `\r\n` as `\n`.
#[test]
fn qwen3_coder_value_loses_one_crlf_at_each_end() {
    let call = |value: &str| {
        format!(
            "<tool_call>\r\n<function=f>\r\n<parameter=a>{value}</parameter>\r\n</function>\r\n\
             </tool_call>"
        )
    };
    check_cases(
        Format::Qwen3Coder,
        &[
            (&call("\r\nx\r\n"), one_call("f", "{\"a\": \"x\"}", json!([]))),
            (&call("\r\n\r\nx\r\n\r\n"), one_call("f", "{\"a\": \"\\r\\nx\\r\\n\"}", json!([]))),
            (&call("\nx\r\n"), one_call("f", "{\"a\": \"x\"}", json!([]))),
        ],
    );
}

/// Qwen3-Coder: a parameter with an empty name is no member of the arguments; its value is
/// kept in the diagnostic.
#[test]
fn qwen3_coder_parameter_without_name_is_reported() {
    let input = "<tool_call>\n<function=f>\n<parameter=>\nx\n</parameter>\n<parameter=b>\n1\n\
                 </parameter>\n<parameter= >\n</parameter>\n</function>\n</tool_call>";
    let no_name = |offset: usize, text: Option<&str>| {
        let mut diagnostic = json!({
            "kind": "malformed_call",
            "call_index": 0,
            "offset": offset,
            "message": "the parameter has no name; its value is not in the arguments"
        });
        if let Some(text) = text {
            diagnostic["text"] = json!(text);
        }
        diagnostic
    };
    let first = input.find("x\n").expect("the first value");
    let last = input.rfind(" >\n").expect("the last parameter") + 3;
    check_cases(
        Format::Qwen3Coder,
        &[(
            input,
            one_call(
                "f",
                "{\"b\": \"1\"}",
                json!([no_name(first, Some("x")), no_name(last, None)]),
            ),
        )],
    );
}

/// Every format has a folder, and every folder is a format.
#[test]
fn every_format_has_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/parsers");
    let mut folders: Vec<String> = fs::read_dir(&root)
        .expect("the fixture root exists")
        .map(|entry| entry.expect("readable folder").file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut formats: Vec<String> =
        Format::ALL.iter().chain([&Format::Auto]).map(|format| format.name().to_owned()).collect();
    formats.sort();
    assert_eq!(folders, formats);
}

/// With `--format auto`, the parser names the format it found, streamed one character at a
/// time (and none when no marker told one).
#[test]
fn auto_names_the_format_it_found() {
    let cases = [
        ("kimi", Some(Format::Kimi)),
        ("hermes", Some(Format::Hermes)),
        ("qwen3_coder_function_without_tool_call", Some(Format::Qwen3Coder)),
        ("glm", Some(Format::Glm45)),
        ("deepseek_v31", Some(Format::DeepseekV31)),
        ("mistral", Some(Format::Mistral)),
        ("llama3_python_tag", Some(Format::Llama3)),
        ("harmony", Some(Format::Harmony)),
        ("minimax_m2", Some(Format::MinimaxM2)),
        ("first_marker_decides", Some(Format::Hermes)),
        ("plain_text", None),
        ("bare_json_is_content", None),
    ];
    for (case, expected) in cases {
        let path = corpus_dir(Format::Auto).join(format!("{case}.txt"));
        let input = fs::read_to_string(&path).expect("UTF-8 fixture");
        let mut parser = StreamParser::new(Format::Auto, &options_for(&path));
        for c in input.chars() {
            parser.feed(c.encode_utf8(&mut [0; 4]));
        }
        parser.finish_into(&mut Vec::new());
        assert_eq!(parser.format(), expected, "case {case}");
    }
    let deepseek_v3 =
        "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>f\n{}<｜tool▁call▁end｜>";
    let mut parser = StreamParser::new(Format::Auto, &ParseOptions::default());
    parser.feed(deepseek_v3);
    assert_eq!(parser.format(), Some(Format::DeepseekV3));
}

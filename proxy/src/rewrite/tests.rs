//! The rewriting of recorded upstream answers of every family, whole and streamed, against
//! what the client must get; the streamed events are assembled the way the OpenAI SDK does.

use std::path::PathBuf;

use serde_json::{Map, Value, json};
use taskflow_parsers::{DiagnosticKind, Format, ToolSpec};
use taskflow_providers::ApiKey;

use super::*;
use crate::config::IdMode;
use crate::fault::Fault;
use crate::sse::{Event, Item};

const CASES: [&str; 15] = [
    "kimi/content",
    "kimi/reasoning",
    "kimi/both_reasoning",
    "kimi/unnamed",
    "kimi/invalid_arguments",
    "kimi/double_encoded",
    "qwen3-coder/xml",
    "glm/arg_keys",
    "deepseek-v31/calls",
    "harmony/commentary",
    "structured/tool_calls",
    "structured/plain",
    "structured-unnamed/mixed",
    "structured-unnamed/all",
    "structured-unnamed/named_later",
];

/// The cases whose whole answer the client gets as the upstream's bytes; the streamed ones
/// pass byte for byte only when they are also in [`STREAMS_UNTOUCHED`] (a call named only in
/// a later delta is held until then).
const WHOLE_UNTOUCHED: [&str; 3] =
    ["structured/tool_calls", "structured/plain", "structured-unnamed/named_later"];
const STREAMS_UNTOUCHED: [&str; 2] = ["structured/tool_calls", "structured/plain"];

/// A recording, under the workspace's `fixtures/proxy/` (the end to end tests replay them too).
fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/proxy").join(name)
}

fn read(case: &str, ext: &str) -> String {
    std::fs::read_to_string(fixture(&format!("{case}.{ext}"))).unwrap()
}

fn reading(case: &str, ids: IdMode) -> Reading {
    let answer: Value = serde_json::from_str(&read(case, "json")).unwrap();
    let model = answer["model"].as_str().unwrap();
    let tools = if case == "kimi/unnamed" {
        Vec::new()
    } else {
        vec![ToolSpec {
            name: "get_weather".into(),
            parameters: Some(json!({"type": "object", "properties": {
                "city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"}}})),
        }]
    };
    Reading { format: Format::for_model(model).unwrap_or(Format::Auto), tools, ids }
}

/// The message a client holds in the end, as the expected files spell it.
fn normalized(message: &Value, finish_reason: &Value) -> Value {
    let calls: Vec<Value> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|call| {
            json!({"id": call["id"], "name": call["function"]["name"],
                   "arguments": call["function"]["arguments"]})
        })
        .collect();
    let text = |key: &str| match message.get(key) {
        Some(Value::String(text)) if !text.is_empty() => json!(text),
        _ => Value::Null,
    };
    // The reasoning under either name; under both (as some servers send it), both must say
    // the same, or the two are shown side by side and match no expected file.
    let reasoning = match (text("reasoning_content"), text("reasoning")) {
        (Value::Null, one) | (one, Value::Null) => one,
        (one, other) if one == other => one,
        (one, other) => json!({"reasoning_content": one, "reasoning": other}),
    };
    json!({"content": text("content"), "reasoning": reasoning,
           "finish_reason": finish_reason, "tool_calls": calls})
}

/// Arguments compared as JSON where they are JSON (typed parameters are written by the parser).
fn same(actual: &Value, expected: &Value) -> bool {
    let mut actual = actual.clone();
    let mut expected = expected.clone();
    for value in [&mut actual, &mut expected] {
        for call in value["tool_calls"].as_array_mut().unwrap() {
            if let Ok(parsed) = serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()) {
                call["arguments"] = parsed;
            }
        }
    }
    actual == expected
}

fn complete(case: &str, ids: IdMode) -> (Value, Report, bool) {
    let body = read(case, "json");
    let mut report = Report::default();
    let (answer, unchanged): (Value, bool) =
        match rewrite_completion(body.as_bytes(), &reading(case, ids), &mut report) {
            Completion::Unchanged => (serde_json::from_str(&body).unwrap(), true),
            Completion::Rewritten(bytes) => (serde_json::from_slice(&bytes).unwrap(), false),
        };
    let choice = &answer["choices"][0];
    (normalized(&choice["message"], &choice["finish_reason"]), report, unchanged)
}

/// One upstream event of `data` through `rewriter`; what the client gets, as text.
fn send(rewriter: &mut StreamRewriter, data: &str) -> String {
    let mut out = Vec::new();
    let event = Event { data: Some(data.as_bytes().to_vec()), fields: Vec::new() };
    rewriter.item(&Item::Event(event), &mut out);
    String::from_utf8(out).unwrap()
}

/// The end of the upstream's stream, after `fault` if it broke; what the client gets.
fn end(rewriter: &mut StreamRewriter, fault: Option<&Fault>) -> String {
    let mut out = Vec::new();
    rewriter.end(fault, &mut out);
    String::from_utf8(out).unwrap()
}

/// Streams `events` through the rewriter; returns the SSE text the client gets.
fn stream_text(case: &str, events: &[String], ids: IdMode) -> (String, StreamRewriter) {
    let mut rewriter = StreamRewriter::new(reading(case, ids), None);
    let mut out: String = events.iter().map(|data| send(&mut rewriter, data)).collect();
    out.push_str(&end(&mut rewriter, None));
    (out, rewriter)
}

fn events_of(sse: &str) -> Vec<String> {
    sse.split("\n\n").filter_map(|event| event.strip_prefix("data: ")).map(str::to_owned).collect()
}

/// Accumulates streamed deltas the way the OpenAI SDK's stream state does: strings are
/// concatenated, list entries merged by their `index`.
fn accumulate(into: &mut Map<String, Value>, delta: &Map<String, Value>) {
    for (key, value) in delta {
        match (into.get_mut(key), value) {
            (None | Some(Value::Null), _) => {
                into.insert(key.clone(), value.clone());
            }
            (Some(_), _) if key == "index" || key == "type" => {
                into.insert(key.clone(), value.clone());
            }
            (Some(Value::String(acc)), Value::String(more)) => acc.push_str(more),
            (Some(Value::Object(acc)), Value::Object(more)) => accumulate(acc, more),
            (Some(Value::Array(acc)), Value::Array(more)) => {
                for entry in more {
                    let index = entry["index"].as_u64().unwrap() as usize;
                    match acc.iter_mut().find(|e| e["index"].as_u64() == Some(index as u64)) {
                        Some(Value::Object(existing)) => {
                            accumulate(existing, entry.as_object().unwrap())
                        }
                        _ => acc.push(entry.clone()),
                    }
                }
            }
            (Some(slot), _) => *slot = value.clone(),
        }
    }
}

fn assemble(sse: &str) -> Value {
    let mut message = Map::new();
    let mut finish = Value::Null;
    for data in events_of(sse) {
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(&data).unwrap();
        assert!(chunk.get("error").is_none(), "an error event: {data}");
        for choice in chunk["choices"].as_array().unwrap() {
            accumulate(&mut message, choice["delta"].as_object().unwrap());
            if !choice["finish_reason"].is_null() {
                finish = choice["finish_reason"].clone();
            }
        }
    }
    for call in message.get_mut("tool_calls").and_then(Value::as_array_mut).into_iter().flatten() {
        assert!(!call["function"]["name"].as_str().unwrap().is_empty(), "a call without a name");
    }
    normalized(&Value::Object(message), &finish)
}

#[test]
fn whole_answers_give_the_expected_messages() {
    for case in CASES {
        let expected: Value = serde_json::from_str(&read(case, "expected.json")).unwrap();
        let (actual, _, unchanged) = complete(case, IdMode::Keep);
        assert!(same(&actual, &expected), "{case}:\n{actual:#}\nexpected\n{expected:#}");
        assert_eq!(unchanged, WHOLE_UNTOUCHED.contains(&case), "{case}");
    }
}

#[test]
fn streamed_answers_give_the_expected_messages_in_any_chunking() {
    for case in CASES {
        let expected: Value = serde_json::from_str(&read(case, "expected.json")).unwrap();
        let recorded = events_of(&read(case, "sse"));
        let (out, _) = stream_text(case, &recorded, IdMode::Keep);
        let actual = assemble(&out);
        assert!(same(&actual, &expected), "{case}:\n{actual:#}\nexpected\n{expected:#}\n{out}");
        if STREAMS_UNTOUCHED.contains(&case) {
            assert_eq!(out, read(case, "sse"), "{case} passes byte for byte");
        }
        // The same answer, its text one character per chunk.
        let one_by_one: Vec<String> = recorded.iter().flat_map(|data| split_text(data)).collect();
        let (out, _) = stream_text(case, &one_by_one, IdMode::Keep);
        assert!(same(&assemble(&out), &expected), "{case}, one character per chunk:\n{out}");
    }
}

/// A chunk whose delta carries text, as one chunk per character of that text.
fn split_text(data: &str) -> Vec<String> {
    let Ok(chunk) = serde_json::from_str::<Value>(data) else { return vec![data.to_owned()] };
    let Some(delta) = chunk["choices"][0]["delta"].as_object() else {
        return vec![data.to_owned()];
    };
    for key in ["content", "reasoning_content", "reasoning"] {
        if let Some(text) = delta.get(key).and_then(Value::as_str).filter(|t| t.chars().count() > 1)
        {
            // Fields that repeat the text (the reasoning under both names) are split alike.
            let twins: Vec<&String> =
                delta.iter().filter(|(_, v)| v.as_str() == Some(text)).map(|(k, _)| k).collect();
            return text
                .chars()
                .map(|c| {
                    let mut piece = chunk.clone();
                    piece["choices"][0]["delta"] =
                        twins.iter().map(|key| ((*key).clone(), json!(c.to_string()))).collect();
                    piece.to_string()
                })
                .collect();
        }
    }
    vec![data.to_owned()]
}

#[test]
fn text_is_held_back_only_while_it_may_start_a_marker() {
    let case = "kimi/content";
    let mut rewriter = StreamRewriter::new(reading(case, IdMode::Keep), None);
    let chunk = |text: &str| {
        json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "kimi-k2",
               "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
        .to_string()
    };
    assert_eq!(
        send(&mut rewriter, &chunk("Hello")),
        format!("data: {}\n\n", chunk("Hello")),
        "plain text passes at once, as it came"
    );
    let out = send(&mut rewriter, &chunk(" world <|tool_ca"));
    assert_eq!(assemble(&out)["content"], " world ", "{out}");
    let out = send(&mut rewriter, &chunk("lls_section_begin|>"));
    assert_eq!(out, "", "a chunk that only completed a marker sends nothing");
}

#[test]
fn unnamed_calls_are_text_with_a_note() {
    let (actual, report, _) = complete("kimi/unnamed", IdMode::Keep);
    assert_eq!(actual["tool_calls"], json!([]));
    assert!(
        report.notes.iter().any(|note| note.kind.as_str() == "unresolved_name"
            && note.call_index.is_none()
            && note.message.contains("not a tool call, its text is kept as written")),
        "{report:?}"
    );
    let (out, _) =
        stream_text("kimi/unnamed", &events_of(&read("kimi/unnamed", "sse")), IdMode::Keep);
    assert!(out.contains(": taskflow-proxy unresolved_name: "), "{out}");
}

#[test]
fn safe_ids_are_escaped_reversibly() {
    let (actual, _, _) = complete("kimi/content", IdMode::Safe);
    assert_eq!(actual["tool_calls"][0]["id"], "tf_functions_2eget__weather_3a0");
    let (out, _) =
        stream_text("kimi/content", &events_of(&read("kimi/content", "sse")), IdMode::Safe);
    assert_eq!(assemble(&out)["tool_calls"][1]["id"], "tf_functions_2eget__weather_3a1");
    // Ids already in the alphabet stay as they are, so the structured answer is untouched.
    let (_, _, unchanged) = complete("structured/tool_calls", IdMode::Safe);
    assert!(unchanged);
}

#[test]
fn a_stream_that_stops_early_ends_with_an_error_event() {
    let case = "kimi/content";
    let events = events_of(&read(case, "sse"));
    let (out, _) = stream_text(case, &events[..8], IdMode::Keep);
    let last = events_of(&out).pop().unwrap();
    let error: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(error["error"]["type"], "upstream_interrupted", "{out}");

    let mut rewriter = StreamRewriter::new(reading(case, IdMode::Keep), None);
    let out = end(&mut rewriter, Some(&Fault::interrupted("connection reset".to_owned())));
    assert!(out.contains("connection reset"), "{out}");
}

#[test]
fn the_report_counts_calls_and_usage() {
    let (_, report, _) = complete("kimi/content", IdMode::Keep);
    assert_eq!(report.calls_fixed, 2);
    assert_eq!(report.format, Some(Format::Kimi));
    assert_eq!((report.prompt_tokens, report.completion_tokens), (Some(120), Some(48)));
    let (_, rewriter) =
        stream_text("kimi/content", &events_of(&read("kimi/content", "sse")), IdMode::Keep);
    assert_eq!(rewriter.report.calls_fixed, 2);
    assert_eq!(rewriter.report.completion_tokens, Some(48));
}

#[test]
fn any_bytes_are_answered_without_a_panic() {
    let reading = reading("kimi/content", IdMode::Keep);
    for body in [
        "",
        "null",
        "[]",
        "{\"choices\": 3}",
        "{\"choices\": [{\"message\": 1}]}",
        "\u{0}\u{ffff}<|tool",
    ] {
        let mut report = Report::default();
        assert!(matches!(
            rewrite_completion(body.as_bytes(), &reading, &mut report),
            Completion::Unchanged
        ));
        let json = serde_json::from_str::<Value>(body).is_ok();
        assert_eq!(report.unreadable.is_none(), json, "{body:?}: {:?}", report.unreadable);
        let mut rewriter = StreamRewriter::new(reading.clone(), None);
        let out = send(&mut rewriter, body) + &send(&mut rewriter, body);
        let said = out.matches(": taskflow-proxy upstream_not_json: ").count();
        assert_eq!(said, usize::from(!json), "said once, for the first event: {out}");
        send(&mut rewriter, "{\"choices\": [{\"delta\": {\"content\": 5}}, 7]}");
        end(&mut rewriter, None);
    }
}

#[test]
fn the_notes_say_what_was_decoded_and_what_was_not_a_call() {
    // (case, kind, call index as the client sees it)
    let expected = [
        ("kimi/double_encoded", "double_encoded_arguments", Some(0)),
        ("kimi/double_encoded", "invalid_arguments", Some(1)),
        ("structured-unnamed/mixed", "malformed_call", None),
        ("structured-unnamed/all", "malformed_call", None),
    ];
    for (case, kind, call_index) in expected {
        let (_, whole, _) = complete(case, IdMode::Keep);
        let (out, streamed) = stream_text(case, &events_of(&read(case, "sse")), IdMode::Keep);
        for (mode, report) in [("whole", &whole), ("streamed", &streamed.report)] {
            assert!(
                report.notes.iter().any(|n| n.kind.as_str() == kind && n.call_index == call_index),
                "{case} {mode}: {kind} {call_index:?} in {:?}",
                report.notes
            );
        }
        assert!(out.contains(&format!(": taskflow-proxy {kind}: ")), "{case}: {out}");
    }
    let (_, report, _) = complete("structured-unnamed/mixed", IdMode::Keep);
    let note = report.notes.iter().find(|n| n.kind == DiagnosticKind::MalformedCall).unwrap();
    assert!(note.message.contains("`functions.:0` has no tool name"), "{}", note.message);
}

/// Feeds `text` to a Kimi stream as one content chunk; returns the tool-call deltas sent.
fn call_deltas(rewriter: &mut StreamRewriter, text: &str) -> Vec<Value> {
    let chunk = json!({"id": "c", "object": "chat.completion.chunk", "created": 1,
        "model": "kimi-k2",
        "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]});
    let out = send(rewriter, &chunk.to_string());
    let mut deltas = Vec::new();
    for data in events_of(&out) {
        let chunk: Value = serde_json::from_str(&data).unwrap();
        if let Some(calls) = chunk["choices"][0]["delta"]["tool_calls"].as_array() {
            deltas.extend(calls.iter().cloned());
        }
    }
    deltas
}

#[test]
fn arguments_in_a_json_string_wait_for_the_call_end_and_objects_stream_at_once() {
    let mut rewriter = StreamRewriter::new(reading("kimi/content", IdMode::Keep), None);
    let begin = "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0\
                 <|tool_call_argument_begin|>";
    // A JSON string may turn out double-encoded: nothing of it goes before the call ends.
    let sent = call_deltas(&mut rewriter, &format!("{begin}\"{{\\\"city"));
    assert_eq!(
        sent,
        [json!({"index": 0, "id": "functions.get_weather:0", "type": "function",
                             "function": {"name": "get_weather", "arguments": ""}})]
    );
    assert_eq!(call_deltas(&mut rewriter, "\\\": \\\"Paris"), Vec::<Value>::new());
    // At its end it goes once, decoded.
    let sent = call_deltas(&mut rewriter, "\\\"}\"<|tool_call_end|>");
    assert_eq!(sent, [json!({"index": 0, "function": {"arguments": "{\"city\": \"Paris\"}"}})]);
    // An object streams as it comes.
    let sent = call_deltas(
        &mut rewriter,
        "<|tool_call_begin|>functions.get_weather:1<|tool_call_argument_begin|>{\"city\": \"Os",
    );
    let arguments: String =
        sent.iter().filter_map(|d| d["function"]["arguments"].as_str()).collect();
    assert!(arguments.starts_with("{\"city\""), "{sent:?}");
}

#[test]
fn reasoning_under_both_names_is_read_once() {
    let tagged = "Tokyo, then.<|tool_calls_section_begin|>\
                  <|tool_call_begin|>functions.get_weather:0<|tool_call_argument_begin|>\
                  {\"city\": \"Tokyo\"}<|tool_call_end|><|tool_calls_section_end|>";
    // (reasoning_content, reasoning) sent → what each holds after, and the calls made
    let cases = [
        ((tagged, tagged), ("Tokyo, then.", "Tokyo, then."), 1),
        (("", tagged), ("", "Tokyo, then."), 1),
        ((tagged, "something else"), ("Tokyo, then.", "something else"), 1),
    ];
    for ((sent_content, sent_reasoning), (reasoning_content, reasoning), calls) in cases {
        let body = json!({"model": "kimi-k2", "choices": [{"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": null,
                        "reasoning_content": sent_content, "reasoning": sent_reasoning}}]});
        let mut report = Report::default();
        let reading = reading("kimi/reasoning", IdMode::Keep);
        let Completion::Rewritten(bytes) =
            rewrite_completion(body.to_string().as_bytes(), &reading, &mut report)
        else {
            panic!("{body}: unchanged")
        };
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        let message = &answer["choices"][0]["message"];
        let text = |key: &str| message[key].as_str().unwrap_or("").to_owned();
        assert_eq!(
            (text("reasoning_content"), text("reasoning")),
            (reasoning_content.to_owned(), reasoning.to_owned()),
            "{body}"
        );
        assert_eq!(message["tool_calls"].as_array().unwrap().len(), calls, "{body}");
    }
}

#[test]
fn no_message_is_left_with_an_empty_tool_calls_list() {
    // Some servers refuse `"tool_calls": []` in the history a client sends back.
    for case in CASES {
        let mut report = Report::default();
        let reading = reading(case, IdMode::Keep);
        let rewritten = rewrite_completion(read(case, "json").as_bytes(), &reading, &mut report);
        let Completion::Rewritten(bytes) = rewritten else { continue };
        let answer: Value = serde_json::from_slice(&bytes).unwrap();
        for choice in answer["choices"].as_array().unwrap() {
            assert_ne!(choice["message"].get("tool_calls"), Some(&json!([])), "{case}");
        }
    }
}

#[test]
fn a_choice_that_made_calls_finishes_with_tool_calls_whole_or_streamed() {
    let call = |name: &str| {
        json!([{"id": "call_1", "type": "function",
                "function": {"name": name, "arguments": "{\"city\": \"Lima\"}"}}])
    };
    let tagged = "<|tool_calls_section_begin|><|tool_call_begin|>functions.get_weather:0\
                  <|tool_call_argument_begin|>{\"city\": \"Lima\"}<|tool_call_end|>\
                  <|tool_calls_section_end|>";
    // (content, structured calls, the upstream's finish reason) → the client's
    let cases = [
        (json!(null), call("get_weather"), "stop", "tool_calls"),
        (json!(null), call("get_weather"), "tool_calls", "tool_calls"),
        (json!(null), call("get_weather"), "length", "length"),
        (json!(tagged), json!(null), "stop", "tool_calls"),
        (json!(tagged), json!(null), "length", "length"),
        (json!("Hello"), json!(null), "stop", "stop"),
        (json!(null), call(""), "tool_calls", "stop"),
    ];
    let reading = reading("kimi/content", IdMode::Keep);
    for (content, calls, sent, expected) in cases {
        let case = format!("content {content}, calls {calls}, finished {sent}");
        let mut message = json!({"role": "assistant", "content": content});
        if !calls.is_null() {
            message["tool_calls"] = calls.clone();
        }
        let chunk = |field: &str, body: Value, finish: Value| {
            json!({"id": "c", "object": "chat.completion", "created": 1, "model": "kimi-k2",
                   "choices": [{"index": 0, field: body, "finish_reason": finish}]})
        };
        let whole = chunk("message", message.clone(), json!(sent));
        let mut report = Report::default();
        let answer = match rewrite_completion(whole.to_string().as_bytes(), &reading, &mut report) {
            Completion::Unchanged => whole,
            Completion::Rewritten(bytes) => serde_json::from_slice(&bytes).unwrap(),
        };
        assert_eq!(answer["choices"][0]["finish_reason"], expected, "whole: {case}");

        // Streamed: the message as one delta, its calls keyed by index, then the finish.
        if let Some(Value::Array(calls)) = message.get_mut("tool_calls") {
            calls[0]["index"] = json!(0);
        }
        let events = [
            chunk("delta", message, json!(null)).to_string(),
            chunk("delta", json!({}), json!(sent)).to_string(),
            "[DONE]".to_owned(),
        ];
        let (out, _) = stream_text("kimi/content", &events, IdMode::Keep);
        assert_eq!(assemble(&out)["finish_reason"], expected, "streamed: {case}\n{out}");
    }
}

/// The upstream key of the tests below, and a Kimi call whose arguments hold it.
const KEY: &str = "sk-supersecret-12345";
const CALL_WITH_KEY: &str = "<|tool_calls_section_begin|><|tool_call_begin|>\
    functions.get_weather:0<|tool_call_argument_begin|>{\"city\": \"sk-supersecret-12345\"}\
    <|tool_call_end|><|tool_calls_section_end|>";

/// A Kimi chunk whose content is `text`, finishing with `finish`.
fn content_chunk(text: &str, finish: Option<&str>) -> String {
    json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "kimi-k2",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]})
    .to_string()
}

/// `content` streamed by a Kimi upstream in the pieces `cuts` (byte offsets) make of it, then
/// a chunk that finishes it (`finished`) and `[DONE]`, through a proxy with the upstream key;
/// what the client gets.
fn streamed_with_key(content: &str, cuts: &[usize], finished: bool) -> String {
    let key = ApiKey::new(KEY).unwrap();
    let mut rewriter = StreamRewriter::new(reading("kimi/content", IdMode::Keep), Some(&key));
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(content.len());
    let mut out: String = bounds
        .windows(2)
        .map(|pair| send(&mut rewriter, &content_chunk(&content[pair[0]..pair[1]], None)))
        .collect();
    if finished {
        out.push_str(&send(&mut rewriter, &content_chunk("", Some("stop"))));
    }
    out.push_str(&send(&mut rewriter, "[DONE]"));
    out.push_str(&end(&mut rewriter, None));
    out
}

#[test]
fn a_key_cut_across_events_never_reaches_the_client_with_or_without_tagged_calls() {
    // (content as the upstream streams it, the message the client assembles)
    let cases = [
        // No tagged text: the parser changes nothing.
        (
            "I'll check. key=Bearer sk-supersecret-12345, é sk-su".to_owned(),
            json!({"content": "I'll check. key=Bearer [redacted], é sk-su", "reasoning": null,
                   "finish_reason": "stop", "tool_calls": []}),
        ),
        // A tagged call with the key in its arguments, between two halves of the key that the
        // client joins once the call is out of the content.
        (
            format!("I'll check. sk-super{CALL_WITH_KEY}secret-12345 done"),
            json!({"content": "I'll check. [redacted] done", "reasoning": null,
                   "finish_reason": "tool_calls", "tool_calls": [{"id": "functions.get_weather:0",
                   "name": "get_weather", "arguments": "{\"city\": \"[redacted]\"}"}]}),
        ),
    ];
    for (content, expected) in cases {
        let cuts: Vec<usize> = content.char_indices().map(|(at, _)| at).skip(1).collect();
        let check = |cuts: &[usize], finished: bool| {
            let out = streamed_with_key(&content, cuts, finished);
            assert!(!out.contains(KEY), "cut at {cuts:?}: {out}");
            let mut expected = expected.clone();
            if !finished {
                expected["finish_reason"] = Value::Null;
            }
            assert_eq!(assemble(&out), expected, "cut at {cuts:?}, finished {finished}:\n{out}");
        };
        for (at, &one) in cuts.iter().enumerate() {
            // Every cut in two, and in three with the cuts no further apart than the key is
            // long: every key is cut at every place, in two and in three.
            for &two in cuts[at..].iter().take_while(|&&two| two - one <= KEY.len()) {
                check(&[one, two], true);
            }
            // The upstream finishes nothing: what was held goes out before `[DONE]`.
            check(&[one], false);
        }
        // In pieces of every size (the upstream of the report sent 5 characters an event).
        for size in 1..content.len() {
            let cuts: Vec<usize> = cuts.iter().copied().filter(|at| at % size == 0).collect();
            check(&cuts, true);
        }
    }
}

#[test]
fn a_stream_cut_while_text_waits_for_the_key_gives_that_text_before_its_error() {
    let key = ApiKey::new(KEY).unwrap();
    let mut rewriter = StreamRewriter::new(reading("kimi/content", IdMode::Keep), Some(&key));
    let first = send(&mut rewriter, &content_chunk("I'll check sk-su", None));
    assert_eq!(assemble(&first)["content"], "I'll check ");
    let out = end(&mut rewriter, Some(&Fault::interrupted("connection reset".to_owned())));
    let events = events_of(&out);
    assert_eq!(events.len(), 2, "{out}");
    let held: Value = serde_json::from_str(&events[0]).unwrap();
    assert_eq!(held["choices"][0]["delta"]["content"], "sk-su", "{out}");
    assert!(events[1].contains("connection reset"), "{out}");
}

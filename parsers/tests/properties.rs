//! Properties of every format's parser over generated input: it never panics, chunking never
//! changes the result (and the events come in an order a consumer can follow), nothing is
//! lost, and the streaming parser keeps only what the format forces it to keep, with work
//! linear in the input.
//!
//! Inputs are built from each format's markers, pieces of its markers, its typical tokens,
//! JSON punctuation, whitespace, multi-byte characters and arbitrary text.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::json;
use taskflow_parsers::{
    Format, Message, MessageBuilder, ParseOptions, StreamEvent, StreamParser, ToolSpec, fold, parse,
};

mod common;
use common::check_event_order;

/// What inputs for a format are made of, and a realistic turn for the long-stream tests.
struct Grammar {
    format: Format,
    markers: &'static [&'static str],
    tokens: &'static [&'static str],
    /// One turn: text, then calls (one with a marker inside a JSON string where the format
    /// writes JSON); `n` varies the ids, `filler` the size. Returns the turn and its largest
    /// call.
    turn: fn(n: usize, filler: &str) -> (String, usize),
}

const THINK: [&str; 2] = ["<think>", "</think>"];

const KIMI: &[&str] = &[
    "<|tool_calls_section_begin|>",
    "<|tool_call_section_begin|>",
    "<|tool_calls_section_end|>",
    "<|tool_call_section_end|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    THINK[0],
    THINK[1],
];
const TOOL_CALL: &[&str] = &[
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "</function>",
    "<parameter=",
    "</parameter>",
    "<arg_key>",
    "</arg_key>",
    "<arg_value>",
    "</arg_value>",
    THINK[0],
    THINK[1],
];
const DEEPSEEK: &[&str] = &[
    "<｜tool▁calls▁begin｜>",
    "<｜tool▁calls▁end｜>",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>",
    "<｜end▁of▁sentence｜>",
    "```json\n",
    "```",
    THINK[0],
    THINK[1],
];
const MISTRAL: &[&str] = &["[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[THINK]", "[/THINK]"];
const LLAMA3: &[&str] = &["<|python_tag|>", "<|eom_id|>", "<|eot_id|>", THINK[0], THINK[1]];
const HARMONY: &[&str] = &[
    "<|start|>",
    "<|channel|>",
    "<|constrain|>",
    "<|message|>",
    "<|end|>",
    "<|call|>",
    "<|return|>",
];
const MINIMAX: &[&str] = &[
    "<minimax:tool_call>",
    "</minimax:tool_call>",
    "<invoke name=",
    "</invoke>",
    "<parameter name=",
    "</parameter>",
    THINK[0],
    THINK[1],
];
const AUTO: &[&str] = &[
    "<|tool_calls_section_begin|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    "<tool_call>",
    "</tool_call>",
    "<function=",
    "<｜tool▁call▁begin｜>",
    "<｜tool▁sep｜>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "<|python_tag|>",
    "<|channel|>",
    "<|message|>",
    "<|call|>",
    "<minimax:tool_call>",
    "<invoke name=",
    THINK[0],
    THINK[1],
];

const JSON_CALL_TOKENS: &[&str] = &[
    "{\"name\": \"get_weather\", \"arguments\": ",
    "{\"name\": \"get_weather\", \"parameters\": ",
    "{\"city\": \"Paris\"}",
    "get_weather",
    "\"id\": \"a1B2c3D4e\", ",
    ";",
    "[",
    "]",
];
const XML_TOKENS: &[&str] = &[
    "get_weather>",
    "get_weather",
    "city>",
    "\"get_weather\">",
    "\"days\">",
    "city",
    "3",
    "True",
    "filters>",
    "\"filters\">",
    "note>",
    "{'a': None, 'b': (1, 'x')}",
    "\"{\\\"a\\\": 1}\"",
    "None",
    "\r\n",
];
const KIMI_TOKENS: &[&str] = &["functions.get_weather:0", "my.ns.tool:1", "3"];
const DEEPSEEK_TOKENS: &[&str] = &["function", "get_weather", "\n", "jsonXYZ"];
const HARMONY_TOKENS: &[&str] = &[
    "assistant",
    "analysis",
    "commentary",
    "final",
    " to=functions.get_weather ",
    " to=functions.get weather ",
    "to=browser.search",
    "json",
    " junk words ",
];

/// Tokens every format gets: JSON punctuation, escapes, whitespace, multi-byte characters.
const COMMON: &[&str] = &[
    "{",
    "}",
    "\"",
    "\\",
    "\\\"",
    ":",
    ",",
    "{\"a\": 1}",
    "{\"text\": \"",
    "\"}",
    " ",
    "\n",
    "\t",
    "<",
    ">",
    "|>",
    "é",
    "日本",
    "🚀",
];

fn kimi_turn(n: usize, filler: &str) -> (String, usize) {
    let mut text =
        String::from("Some text before the calls, with a <b>tag</b>. <think>why</think>");
    text.push_str("<|tool_calls_section_begin|>");
    let mut largest = 0;
    for k in 0..3 {
        let call = format!(
            "<|tool_call_begin|>functions.tool_{k}:{n}<|tool_call_argument_begin|>\
             {{\"n\": {n}, \"text\": \"{filler}<|tool_call_end|> inside\"}}<|tool_call_end|>"
        );
        largest = largest.max(call.len());
        text.push_str(&call);
    }
    text.push_str("<|tool_calls_section_end|> and after.\n");
    (text, largest)
}

fn hermes_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<tool_call>\n{{\"name\": \"get_weather\", \"arguments\": {{\"n\": {n}, \
         \"text\": \"{filler}</tool_call> inside\"}}}}\n</tool_call>"
    );
    (format!("Let me check <b>this</b>.\n{call}\n{call}\nDone.\n"), call.len())
}

fn qwen3_coder_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis {n}\n</parameter>\n\
         <parameter=days>\n3\n</parameter>\n<parameter=note>\nif a < b: {filler}\n</parameter>\n\
         </function>\n</tool_call>"
    );
    (format!("<think>plan</think>Checking.\n{call}\n"), call.len())
}

fn glm_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris {n}</arg_value>\n\
         <arg_key>note</arg_key>\n<arg_value>{filler}</arg_value>\n</tool_call>"
    );
    (format!("Checking <i>now</i>.\n{call}{call}\n"), call.len())
}

fn deepseek_v3_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{{\"n\": {n}, \
         \"text\": \"{filler}<｜tool▁call▁end｜> and ```code```\"}}\n```<｜tool▁call▁end｜>"
    );
    let turn = format!("Checking.<｜tool▁calls▁begin｜>{call}\n{call}<｜tool▁calls▁end｜>\n");
    (turn, call.len())
}

fn deepseek_v31_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<｜tool▁call▁begin｜>get_weather<｜tool▁sep｜>{{\"n\": {n}, \
         \"text\": \"{filler}<｜tool▁calls▁end｜>\"}}<｜tool▁call▁end｜>"
    );
    let turn =
        format!("<think>x</think>OK.<｜tool▁calls▁begin｜>{call}{call}<｜tool▁calls▁end｜>\n");
    (turn, call.len())
}

fn mistral_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "[TOOL_CALLS]get_weather[CALL_ID]a1B2c3D4e[ARGS]{{\"n\": {n}, \"points\": [[1, 2]], \
         \"text\": \"{filler}[TOOL_CALLS] inside\"}}"
    );
    let element = format!(
        "{{\"name\": \"get_weather\", \"arguments\": {{\"n\": {n}, \"t\": \"{filler}\"}}}}"
    );
    let turn = format!("See [1]. {call}{call} and [TOOL_CALLS][{element}, {element}]\n");
    (turn, call.len().max(element.len()))
}

fn llama3_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "{{\"name\": \"get_weather\", \"parameters\": {{\"n\": {n}, \
         \"text\": \"{filler}<|eom_id|> inside\"}}}}"
    );
    (format!("<|python_tag|>{call}; {call}<|eom_id|> then text.\n"), call.len())
}

fn harmony_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json\
         <|message|>{{\"n\": {n}, \"text\": \"{filler}<|call|> inside\"}}<|call|>"
    );
    let turn = format!(
        "<|channel|>analysis<|message|>Thinking {n}.<|end|>{call}<|start|>assistant\
         <|channel|>final<|message|>Done <b>now</b>.<|return|>"
    );
    (turn, call.len())
}

fn minimax_turn(n: usize, filler: &str) -> (String, usize) {
    let call = format!(
        "<invoke name=\"get_weather\">\n<parameter name=\"city\">Paris {n}</parameter>\n\
         <parameter name=\"note\">{filler} <b></parameter>\n</invoke>\n"
    );
    let turn =
        format!("<think>x</think>OK.\n<minimax:tool_call>\n{call}{call}</minimax:tool_call>\n");
    (turn, call.len())
}

fn auto_turn(n: usize, filler: &str) -> (String, usize) {
    hermes_turn(n, filler)
}

const GRAMMARS: &[Grammar] = &[
    Grammar { format: Format::Kimi, markers: KIMI, tokens: KIMI_TOKENS, turn: kimi_turn },
    Grammar {
        format: Format::Hermes,
        markers: TOOL_CALL,
        tokens: JSON_CALL_TOKENS,
        turn: hermes_turn,
    },
    Grammar {
        format: Format::Qwen3Coder,
        markers: TOOL_CALL,
        tokens: XML_TOKENS,
        turn: qwen3_coder_turn,
    },
    Grammar { format: Format::Glm45, markers: TOOL_CALL, tokens: XML_TOKENS, turn: glm_turn },
    Grammar {
        format: Format::DeepseekV3,
        markers: DEEPSEEK,
        tokens: DEEPSEEK_TOKENS,
        turn: deepseek_v3_turn,
    },
    Grammar {
        format: Format::DeepseekV31,
        markers: DEEPSEEK,
        tokens: DEEPSEEK_TOKENS,
        turn: deepseek_v31_turn,
    },
    Grammar {
        format: Format::Mistral,
        markers: MISTRAL,
        tokens: JSON_CALL_TOKENS,
        turn: mistral_turn,
    },
    Grammar {
        format: Format::Llama3,
        markers: LLAMA3,
        tokens: JSON_CALL_TOKENS,
        turn: llama3_turn,
    },
    Grammar {
        format: Format::Harmony,
        markers: HARMONY,
        tokens: HARMONY_TOKENS,
        turn: harmony_turn,
    },
    Grammar { format: Format::MinimaxM2, markers: MINIMAX, tokens: XML_TOKENS, turn: minimax_turn },
    Grammar { format: Format::Auto, markers: AUTO, tokens: JSON_CALL_TOKENS, turn: auto_turn },
];

/// Generated cases per format and property.
const CASES: u32 = 128;

/// Pieces that make the parser's decisions interesting: whole markers, marker fragments, the
/// format's tokens, common tokens and arbitrary text.
fn piece(grammar: &'static Grammar) -> impl Strategy<Value = String> {
    let markers = grammar.markers;
    let marker = proptest::sample::select(markers).prop_map(str::to_owned);
    let fragment = (proptest::sample::select(markers), any::<Index>()).prop_map(|(marker, cut)| {
        let cuts: Vec<usize> =
            (1..marker.len()).filter(|at| marker.is_char_boundary(*at)).collect();
        match cuts.is_empty() {
            true => marker.to_owned(),
            false => {
                let at = cuts[cut.index(cuts.len())];
                if at.is_multiple_of(2) { marker[..at].to_owned() } else { marker[at..].to_owned() }
            }
        }
    });
    let token = proptest::sample::select(grammar.tokens).prop_map(str::to_owned);
    let common = proptest::sample::select(COMMON).prop_map(str::to_owned);
    prop_oneof![3 => marker, 2 => fragment, 2 => token, 3 => common, 1 => any::<String>()]
}

fn tagged_text(grammar: &'static Grammar) -> impl Strategy<Value = String> {
    prop::collection::vec(piece(grammar), 0..40).prop_map(|pieces| pieces.concat())
}

/// One declared tool with a schema, so that typed values (Python literals, values encoded
/// twice, nulls) and bare-index ids are exercised.
fn options() -> ParseOptions {
    ParseOptions {
        tools: vec![ToolSpec {
            name: "get_weather".to_owned(),
            parameters: Some(json!({
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer"},
                    "metric": {"type": "boolean"},
                    "filters": {"type": "object"},
                    "note": {"type": ["string", "null"]}
                }
            })),
        }],
    }
}

/// Runs `property` on generated inputs of every format.
fn for_every_format<S: Strategy>(
    strategy: impl Fn(&'static Grammar) -> S,
    property: impl Fn(&'static Grammar, S::Value) -> Result<(), TestCaseError>,
) {
    for grammar in GRAMMARS {
        let mut runner = TestRunner::new(Config { cases: CASES, ..Config::default() });
        if let Err(error) = runner.run(&strategy(grammar), |value| property(grammar, value)) {
            panic!("{}: {error}", grammar.format);
        }
    }
}

/// Cuts `input` at the given (arbitrary) points, moved to character boundaries.
fn chunks<'a>(input: &'a str, cuts: &[Index]) -> Vec<&'a str> {
    let mut points: Vec<usize> = cuts
        .iter()
        .map(|cut| {
            let mut at = cut.index(input.len() + 1);
            while !input.is_char_boundary(at) {
                at -= 1;
            }
            at
        })
        .collect();
    points.sort_unstable();
    let mut pieces = Vec::new();
    let mut last = 0;
    for point in points.into_iter().chain([input.len()]) {
        pieces.push(&input[last..point]);
        last = point;
    }
    pieces
}

fn non_whitespace_bytes(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).map(char::len_utf8).sum()
}

fn non_whitespace_chars(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|c| !c.is_whitespace())
}

/// The texts of the message that come straight from the input: content, reasoning and the
/// text of diagnostics (the raw form of decoded arguments stands for their call instead).
fn input_texts(message: &Message) -> Vec<&str> {
    let mut texts: Vec<&str> = Vec::new();
    texts.extend(message.content.as_deref());
    texts.extend(message.reasoning.as_deref());
    for diagnostic in &message.diagnostics {
        if diagnostic.kind.as_str() != "double_encoded_arguments" {
            texts.extend(diagnostic.text.as_deref());
        }
    }
    texts
}

/// Every text of the message: the above, and each call's id, name and arguments (for decoded
/// arguments, the raw text recorded in their diagnostic; a decoded parameter value keeps none,
/// its text counting as syntax).
fn all_texts(message: &Message) -> Vec<&str> {
    let mut texts = input_texts(message);
    for (index, call) in message.tool_calls.iter().enumerate() {
        texts.push(&call.id);
        texts.push(&call.function.name);
        let raw = message.diagnostics.iter().find(|d| {
            d.call_index == Some(index)
                && d.kind.as_str() == "double_encoded_arguments"
                && d.text.is_some()
        });
        match raw {
            Some(diagnostic) => texts.push(diagnostic.text.as_deref().unwrap_or_default()),
            None => texts.push(&call.function.arguments),
        }
    }
    texts
}

#[test]
fn arbitrary_text_never_panics() {
    for_every_format(
        |_| any::<String>(),
        |grammar, input| {
            let _ = parse(grammar.format, &input, &options());
            Ok(())
        },
    );
}

#[test]
fn chunking_never_changes_the_result() {
    for_every_format(
        |grammar| (tagged_text(grammar), prop::collection::vec(any::<Index>(), 0..12)),
        |grammar, (input, cuts)| {
            let one_shot = parse(grammar.format, &input, &options());
            let mut parser = StreamParser::new(grammar.format, &options());
            let mut events = Vec::new();
            for chunk in chunks(&input, &cuts) {
                events.extend(parser.feed(chunk));
                prop_assert!(parser.buffered_len() < grammar.format.longest_marker());
            }
            events.extend(parser.finish());
            if let Err(problem) = check_event_order(&events) {
                return Err(TestCaseError::fail(format!("input {input:?}: {problem}")));
            }
            prop_assert_eq!(fold(events), one_shot, "input {:?}", input);
            Ok(())
        },
    );
}

#[test]
fn nothing_is_lost() {
    for_every_format(tagged_text, |grammar, input| {
        let mut parser = StreamParser::new(grammar.format, &options());
        let mut builder = MessageBuilder::new();
        parser.feed_into(&input, &mut builder);
        parser.finish_into(&mut builder);
        let message = builder.finish();

        // Content, reasoning and diagnostic texts are input text, each character used once …
        let mut rest: Vec<char> = non_whitespace_chars(&input).collect();
        rest.sort_unstable();
        for c in input_texts(&message).into_iter().flat_map(non_whitespace_chars) {
            let at = rest.binary_search(&c);
            prop_assert!(at.is_ok(), "{:?} is in the output but not the input {:?}", c, input);
            rest.remove(at.unwrap());
        }
        // … and every input byte is in the message or is format syntax, while every byte of
        // the message is from the input or written by the parser.
        let output: usize = all_texts(&message).into_iter().map(non_whitespace_bytes).sum();
        prop_assert_eq!(
            non_whitespace_bytes(&input) + parser.generated_bytes(),
            output + parser.marker_bytes(),
            "input {:?} gave {:?}",
            input,
            message
        );
        Ok(())
    });
}

/// A long stream of realistic turns, and its largest call.
fn long_stream(grammar: &Grammar, turns: usize) -> (String, usize) {
    let mut text = String::new();
    let mut largest_call = 0;
    for n in 0..turns {
        let filler = "x".repeat((n * 7) % 300);
        let (turn, largest) = (grammar.turn)(n, &filler);
        largest_call = largest_call.max(largest);
        text.push_str(&turn);
    }
    (text, largest_call)
}

#[test]
fn long_streams_parse_without_diagnostics() {
    for grammar in GRAMMARS {
        let (input, _) = long_stream(grammar, 50);
        let message = parse(grammar.format, &input, &options());
        assert!(message.diagnostics.is_empty(), "{}: {:?}", grammar.format, message.diagnostics);
        assert!(
            message.tool_calls.len() >= 50,
            "{}: {} calls",
            grammar.format,
            message.tool_calls.len()
        );
    }
}

#[test]
fn memory_is_bounded_by_the_largest_call() {
    for grammar in GRAMMARS {
        let (input, largest_call) = long_stream(grammar, 300);
        let mut parser = StreamParser::new(grammar.format, &options());
        let mut most_retained = 0;
        let mut rest = input.as_str();
        while !rest.is_empty() {
            let mut cut = rest.len().min(7);
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            let (chunk, tail) = rest.split_at(cut);
            parser.feed(chunk);
            most_retained = most_retained.max(parser.retained_bytes());
            rest = tail;
        }
        let diagnostics =
            parser.finish().into_iter().filter(|e| matches!(e, StreamEvent::Diagnostic(_)));
        assert_eq!(diagnostics.count(), 0, "{}", grammar.format);
        assert!(
            most_retained <= largest_call + grammar.format.longest_marker(),
            "{}: kept {most_retained} bytes of a {} byte stream whose largest call is {largest_call} bytes",
            grammar.format,
            input.len()
        );
    }
}

#[test]
fn work_is_linear_in_the_input() {
    for grammar in GRAMMARS {
        let (input, _) = long_stream(grammar, 300);
        for chunk_len in [1, 16, 4096] {
            let mut parser = StreamParser::new(grammar.format, &options());
            let mut chunks = 0;
            let mut rest = input.as_str();
            while !rest.is_empty() {
                let mut cut = rest.len().min(chunk_len);
                while !rest.is_char_boundary(cut) {
                    cut += 1;
                }
                let (chunk, tail) = rest.split_at(cut);
                parser.feed(chunk);
                chunks += 1;
                rest = tail;
            }
            parser.finish_into(&mut Vec::new());
            // Each chunk may scan again the few bytes held back from the one before, no more
            // (and auto scans the marker that told the format once more).
            let longest = grammar.format.longest_marker();
            let bound = input.len() + chunks * (longest - 1) + longest;
            assert!(
                parser.scanned_bytes() <= bound,
                "{} in {chunk_len}-byte chunks: scanned {} bytes of a {} byte input (bound {bound})",
                grammar.format,
                parser.scanned_bytes(),
                input.len()
            );
        }
    }
}

/// Text after a place of calls that is no call is not held beyond a fixed limit (64 KiB),
/// however long it runs: stray text is reported in pieces that fold into one diagnostic, a
/// call known to have no name streams its text out as content, and a harmony header that
/// runs past the limit is none. Folded, the stream gives the one-shot message.
#[test]
fn text_that_is_no_call_is_not_held() {
    const LIMIT: usize = 64 * 1024;
    const CHUNK: usize = 1000;
    let prose = "lorem ipsum dolor sit amet ".repeat(12_000);
    let cases = [
        (Format::Kimi, "<|tool_calls_section_begin|>"),
        (Format::Kimi, "<|tool_call_begin|>"),
        (Format::Hermes, "<tool_call>"),
        (Format::Qwen3Coder, "<function="),
        (Format::Glm45, "<tool_call>get_weather\n"),
        (Format::MinimaxM2, "<minimax:tool_call>"),
        (Format::MinimaxM2, "<minimax:tool_call><invoke name="),
        (Format::DeepseekV3, "<｜tool▁calls▁begin｜>"),
        (Format::DeepseekV3, "<｜tool▁call▁begin｜>function<｜tool▁sep｜>"),
        (Format::Mistral, "[TOOL_CALLS]"),
        (Format::Mistral, "[TOOL_CALLS]["),
        (Format::Harmony, "<|channel|>"),
        (Format::Auto, "<|start|>"),
    ];
    for (format, opener) in cases {
        let input = format!("{opener}{prose}");
        let mut parser = StreamParser::new(format, &options());
        let mut events = Vec::new();
        let mut most_retained = 0;
        for chunk in input.as_bytes().chunks(CHUNK) {
            events.extend(parser.feed(std::str::from_utf8(chunk).expect("ASCII chunks")));
            most_retained = most_retained.max(parser.retained_bytes());
        }
        events.extend(parser.finish());
        // A harmony header is held twice (its parts, and the text of the call it may begin).
        let bound = 2 * LIMIT + CHUNK + format.longest_marker();
        assert!(
            most_retained <= bound,
            "{format} after {opener:?}: kept {most_retained} bytes of {}",
            input.len()
        );
        assert_eq!(fold(events), parse(format, &input, &options()), "{format} after {opener:?}");
    }
    // Stray text in pieces is one diagnostic, as if it had been held whole.
    let input = format!("<|tool_calls_section_begin|>{prose}");
    let message = parse(Format::Kimi, &input, &options());
    let stray: Vec<_> =
        message.diagnostics.iter().filter(|d| d.kind.as_str() == "stray_text").collect();
    assert_eq!(stray.len(), 1);
    assert_eq!(stray[0].text.as_deref(), Some(prose.trim_end()));
}

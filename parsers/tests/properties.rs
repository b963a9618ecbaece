//! Properties of the Kimi parser over generated input: it never panics, chunking never
//! changes the result, nothing is lost, and the streaming parser keeps only what the format
//! forces it to keep.

use proptest::prelude::*;
use taskflow_parsers::{
    Format, KIMI_LONGEST_MARKER, Message, MessageBuilder, ParseOptions, StreamParser, ToolSpec,
    fold, parse,
};

const MARKERS: &[&str] = &[
    "<|tool_calls_section_begin|>",
    "<|tool_call_section_begin|>",
    "<|tool_calls_section_end|>",
    "<|tool_call_section_end|>",
    "<|tool_call_begin|>",
    "<|tool_call_argument_begin|>",
    "<|tool_call_end|>",
    "<think>",
    "</think>",
];

/// Pieces that make the parser's decisions interesting: whole markers, marker fragments, ids,
/// JSON punctuation, escapes, whitespace, multi-byte characters and arbitrary text.
fn piece() -> impl Strategy<Value = String> {
    let marker = proptest::sample::select(MARKERS).prop_map(str::to_owned);
    let fragment = (proptest::sample::select(MARKERS), any::<proptest::sample::Index>()).prop_map(
        |(marker, cut)| {
            let cut = cut.index(marker.len() - 1) + 1;
            if cut % 2 == 0 { marker[..cut].to_owned() } else { marker[cut..].to_owned() }
        },
    );
    let token = proptest::sample::select(
        &[
            "functions.get_weather:0",
            "my.ns.tool:1",
            "3",
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
            "|>",
            "é",
            "日本",
            "🚀",
        ][..],
    )
    .prop_map(str::to_owned);
    prop_oneof![3 => marker, 2 => fragment, 4 => token, 1 => any::<String>()]
}

fn tagged_text() -> impl Strategy<Value = String> {
    prop::collection::vec(piece(), 0..40).prop_map(|pieces| pieces.concat())
}

fn options() -> ParseOptions {
    ParseOptions { tools: vec![ToolSpec::named("get_weather")] }
}

/// Cuts `input` at the given (arbitrary) points, moved to character boundaries.
fn chunks<'a>(input: &'a str, cuts: &[proptest::sample::Index]) -> Vec<&'a str> {
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

fn non_whitespace(text: &str) -> impl Iterator<Item = char> + '_ {
    text.chars().filter(|c| !c.is_whitespace())
}

/// Every non-whitespace character of the output, where it came from: for decoded arguments,
/// the raw text recorded in their diagnostic.
fn output_characters(message: &Message) -> Vec<char> {
    let mut texts: Vec<&str> = Vec::new();
    texts.extend(message.content.as_deref());
    texts.extend(message.reasoning.as_deref());
    for (index, call) in message.tool_calls.iter().enumerate() {
        texts.push(&call.id);
        let raw = message
            .diagnostics
            .iter()
            .find(|d| d.call_index == Some(index) && d.kind.as_str() == "double_encoded_arguments");
        match raw {
            Some(diagnostic) => texts.push(diagnostic.text.as_deref().unwrap_or_default()),
            None => texts.push(&call.function.arguments),
        }
    }
    for diagnostic in &message.diagnostics {
        if diagnostic.kind.as_str() != "double_encoded_arguments" {
            texts.extend(diagnostic.text.as_deref());
        }
    }
    let mut characters: Vec<char> = texts.into_iter().flat_map(non_whitespace).collect();
    characters.sort_unstable();
    characters
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(input in any::<String>()) {
        let _ = parse(Format::Kimi, &input, &options());
    }

    #[test]
    fn chunking_never_changes_the_result(
        input in tagged_text(),
        cuts in prop::collection::vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let one_shot = parse(Format::Kimi, &input, &options());
        let mut parser = StreamParser::new(Format::Kimi, &options());
        let mut events = Vec::new();
        for chunk in chunks(&input, &cuts) {
            events.extend(parser.feed(chunk));
            prop_assert!(parser.buffered_len() < KIMI_LONGEST_MARKER);
        }
        events.extend(parser.finish());
        prop_assert_eq!(fold(events), one_shot);
    }

    #[test]
    fn nothing_is_lost(input in tagged_text()) {
        let mut parser = StreamParser::new(Format::Kimi, &options());
        let mut builder = MessageBuilder::new();
        parser.feed_into(&input, &mut builder);
        parser.finish_into(&mut builder);
        let message = builder.finish();

        let mut input_characters: Vec<char> = non_whitespace(&input).collect();
        input_characters.sort_unstable();
        let output = output_characters(&message);
        // Every output character comes from the input …
        let mut rest = input_characters.clone();
        for c in &output {
            let at = rest.binary_search(c);
            prop_assert!(at.is_ok(), "{:?} is in the output but not the input", c);
            rest.remove(at.unwrap());
        }
        // … and the input characters left over are exactly the markers' characters.
        prop_assert_eq!(
            input_characters.len(),
            output.len() + parser.marker_bytes(),
            "input {:?} gave {:?}", input, message
        );
    }
}

/// A long stream of realistic turns: text, sections of calls, a marker inside a string.
fn long_stream(turns: usize) -> (String, usize) {
    let mut text = String::new();
    let mut largest_call = 0;
    for n in 0..turns {
        text.push_str("Some text before the calls, with a <b>tag</b>. <think>why</think>");
        text.push_str("<|tool_calls_section_begin|>");
        for k in 0..3 {
            let call = format!(
                "<|tool_call_begin|>functions.tool_{k}:{n}<|tool_call_argument_begin|>\
                 {{\"n\": {n}, \"text\": \"{}<|tool_call_end|> inside\"}}<|tool_call_end|>",
                "x".repeat((n * 7 + k) % 300)
            );
            largest_call = largest_call.max(call.len());
            text.push_str(&call);
        }
        text.push_str("<|tool_calls_section_end|> and after.\n");
    }
    (text, largest_call)
}

#[test]
fn memory_is_bounded_by_the_largest_call() {
    let (input, largest_call) = long_stream(2_000);
    let mut parser = StreamParser::new(Format::Kimi, &ParseOptions::default());
    let mut most_retained = 0;
    let mut rest = input.as_str();
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(7));
        parser.feed(chunk);
        most_retained = most_retained.max(parser.retained_bytes());
        rest = tail;
    }
    assert!(
        parser
            .finish()
            .iter()
            .all(|event| !matches!(event, taskflow_parsers::StreamEvent::Diagnostic(_)))
    );
    assert!(
        most_retained <= largest_call + KIMI_LONGEST_MARKER,
        "kept {most_retained} bytes of a {} byte stream whose largest call is {largest_call} bytes",
        input.len()
    );
}

#[test]
fn work_is_linear_in_the_input() {
    let (input, _) = long_stream(2_000);
    for chunk_len in [1, 16, 4096] {
        let mut parser = StreamParser::new(Format::Kimi, &ParseOptions::default());
        let mut chunks = 0;
        let mut rest = input.as_str();
        while !rest.is_empty() {
            let (chunk, tail) = rest.split_at(rest.len().min(chunk_len));
            parser.feed(chunk);
            chunks += 1;
            rest = tail;
        }
        parser.finish_into(&mut Vec::new());
        // Each chunk may scan again the few bytes held back from the one before, no more.
        let bound = input.len() + chunks * (KIMI_LONGEST_MARKER - 1);
        assert!(
            parser.scanned_bytes() <= bound,
            "{chunk_len}-byte chunks: scanned {} bytes of a {} byte input (bound {bound})",
            parser.scanned_bytes(),
            input.len()
        );
    }
}

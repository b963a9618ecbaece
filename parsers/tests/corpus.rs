//! The fixture corpus: every `NAME.txt` under `fixtures/parsers/<format>/` is parsed and
//! compared with `NAME.json`. A `NAME.tools.json` beside it declares tools (an array of
//! `{"name", "parameters"}`). Each case is checked one-shot and streamed one character at a
//! time and in a few other chunk sizes: all must give the expected message.
//!
//! `UPDATE_EXPECT=1 cargo test -p taskflow-parsers --test corpus` rewrites the `.json` files
//! from the parser's output, for review with `git diff`.

use std::fs;
use std::path::{Path, PathBuf};

use taskflow_parsers::{Format, Message, ParseOptions, StreamParser, ToolSpec, fold, parse};

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

fn stream_in_chunks(
    format: Format,
    input: &str,
    chunk_chars: usize,
    options: &ParseOptions,
) -> Message {
    let mut parser = StreamParser::new(format, options);
    let mut events = Vec::new();
    let chars: Vec<char> = input.chars().collect();
    for chunk in chars.chunks(chunk_chars) {
        events.extend(parser.feed(&chunk.iter().collect::<String>()));
    }
    events.extend(parser.finish());
    fold(events)
}

/// Checks one case; returns a description of the failure, if any.
fn check(format: Format, input_path: &Path) -> Option<String> {
    let input = fs::read_to_string(input_path).expect("UTF-8 fixture");
    let options = options_for(input_path);
    let expected_path = input_path.with_extension("json");
    let actual = parse(format, &input, &options);
    let actual_json = serde_json::to_string_pretty(&actual).expect("serializable") + "\n";
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        fs::write(&expected_path, &actual_json).expect("writable fixture folder");
    }
    let expected_json = fs::read_to_string(&expected_path).unwrap_or_default();
    let expected: Message = match serde_json::from_str(&expected_json) {
        Ok(expected) => expected,
        Err(error) => return Some(format!("{}: unreadable: {error}", expected_path.display())),
    };
    if actual != expected {
        return Some(format!(
            "{}: one-shot result differs\n--- expected\n{expected_json}--- actual\n{actual_json}",
            input_path.display()
        ));
    }
    for chunk_chars in [1, 2, 3, 5, 8, 13, 64] {
        let streamed = stream_in_chunks(format, &input, chunk_chars, &options);
        if streamed != expected {
            return Some(format!(
                "{}: streamed in {chunk_chars}-character chunks differs\n--- expected\n{expected_json}--- actual\n{}",
                input_path.display(),
                serde_json::to_string_pretty(&streamed).expect("serializable")
            ));
        }
    }
    None
}

#[test]
fn kimi_corpus() {
    let cases = cases(Format::Kimi);
    assert!(cases.len() >= 30, "the Kimi corpus has {} cases, fewer than 30", cases.len());
    let failures: Vec<String> = cases.iter().filter_map(|case| check(Format::Kimi, case)).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

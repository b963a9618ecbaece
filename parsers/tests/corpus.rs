//! The fixture corpus: every `NAME.txt` under `fixtures/parsers/<format>/` (one folder per
//! format, and `auto/` for `--format auto`) is parsed with that format and compared with
//! `NAME.json`. A `NAME.tools.json` beside it declares tools (an array of
//! `{"name", "parameters"}`). Each case is checked one-shot and streamed at every chunk size,
//! from one character at a time to the whole input in one chunk: all must give the expected
//! message.
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
    for chunk_chars in 1..=input.chars().count().max(1) {
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

//! The contract of `taskflow parse` (DESIGN §6): tagged text from a file or stdin to the
//! normalized message as one JSON document, or events as JSON Lines with `--stream`, in any
//! format (`--format`, `--model`, or auto by default).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

fn taskflow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_taskflow"))
}

fn fixtures(format: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/parsers").join(format)
}

fn fixture(name: &str) -> PathBuf {
    fixtures("kimi").join(name)
}

fn json_of(stdout: &[u8]) -> Value {
    serde_json::from_slice(stdout).expect("stdout is one JSON document")
}

/// Runs `taskflow parse ARGS` on `stdin` and returns the parsed stdout.
fn parse_stdin(args: &[&str], stdin: &str) -> Value {
    let output = taskflow().arg("parse").args(args).write_stdin(stdin).assert().success();
    json_of(&output.get_output().stdout)
}

/// Every case of every format's corpus, run through the binary with `--format` (and the
/// case's declared tools with `--tools-file`), gives the expected message.
#[test]
fn every_corpus_case_gives_the_expected_message() {
    let formats = ["kimi", "hermes", "qwen3-coder", "glm45", "deepseek-v3", "deepseek-v31"]
        .into_iter()
        .chain(["mistral", "llama3", "harmony", "minimax-m2", "auto"]);
    let mut checked = 0;
    for format in formats {
        let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures(format))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "txt"))
            .collect();
        cases.sort();
        for case in cases {
            let mut command = taskflow();
            command.args(["parse", "--format", format]).arg(&case);
            let tools = case.with_extension("tools.json");
            if tools.exists() {
                command.arg("--tools-file").arg(&tools);
            }
            let output = command.assert().success();
            let expected: Value = serde_json::from_str(
                &std::fs::read_to_string(case.with_extension("json")).unwrap(),
            )
            .unwrap();
            assert_eq!(json_of(&output.get_output().stdout), expected, "{}", case.display());
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {checked} cases");
}

#[test]
fn the_format_is_auto_by_default() {
    for (format, case) in
        [("hermes", "single_call"), ("mistral", "call_id"), ("harmony", "two_calls")]
    {
        let path = fixtures(format).join(format!("{case}.txt"));
        let expected = taskflow().args(["parse", "--format", format]).arg(&path).assert().success();
        let by_default = taskflow().arg("parse").arg(&path).assert().success();
        let auto = taskflow().args(["parse", "--format", "auto"]).arg(&path).assert().success();
        let expected = json_of(&expected.get_output().stdout);
        assert_eq!(json_of(&by_default.get_output().stdout), expected, "{format} {case}");
        assert_eq!(json_of(&auto.get_output().stdout), expected, "{format} {case}");
    }
}

#[test]
fn the_model_names_the_format() {
    let input = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
    let llama = parse_stdin(
        &["--model", "meta-llama/Llama-3.1-8B-Instruct", "--tools", "get_weather"],
        input,
    );
    assert_eq!(llama["tool_calls"][0]["function"]["name"], "get_weather");
    // Auto never reads bare JSON as a call.
    let auto = parse_stdin(&["--tools", "get_weather"], input);
    assert_eq!(auto["tool_calls"], Value::Array(vec![]));
    assert_eq!(auto["content"], input);

    let output = taskflow().args(["parse", "--model", "gpt-4o"]).write_stdin("x").assert().code(2);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(
        stderr.starts_with("error: no known tool-call format for the model `gpt-4o`"),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
}

#[test]
fn a_tools_file_types_parameter_values() {
    let dir = tempfile::tempdir().unwrap();
    let input = "<tool_call>get_weather<arg_key>days</arg_key><arg_value>3</arg_value></tool_call>";
    let untyped = parse_stdin(&[], input);
    assert_eq!(untyped["tool_calls"][0]["function"]["arguments"], "{\"days\": \"3\"}");
    let schema = serde_json::json!({"type": "object", "properties": {"days": {"type": "integer"}}});
    let plain = dir.path().join("tools.json");
    std::fs::write(
        &plain,
        serde_json::json!([{"name": "get_weather", "parameters": schema}]).to_string(),
    )
    .unwrap();
    let openai = dir.path().join("openai.json");
    let function = serde_json::json!({"name": "get_weather", "parameters": schema});
    std::fs::write(
        &openai,
        serde_json::json!([{"type": "function", "function": function}]).to_string(),
    )
    .unwrap();
    for file in [&plain, &openai] {
        let typed = parse_stdin(&["--tools-file", file.to_str().unwrap()], input);
        assert_eq!(typed["tool_calls"][0]["function"]["arguments"], "{\"days\": 3}");
    }
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"name\": \"x\"}").unwrap();
    let output = taskflow()
        .args(["parse", "--tools-file", broken.to_str().unwrap()])
        .write_stdin("x")
        .assert()
        .code(1);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(stderr.starts_with("error: ") && stderr.contains("is not a tools file"), "{stderr}");
}

#[test]
fn stream_prints_events_of_any_format() {
    let input = "Hi\n<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>";
    let output = taskflow()
        .args(["parse", "--stream", "--chunk-size", "3"])
        .write_stdin(input)
        .assert()
        .success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    let events: Vec<Value> =
        stdout.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let types: Vec<&str> = events.iter().map(|event| event["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"text_delta"));
    let calls: Vec<&Value> = events.iter().filter(|event| event["type"] == "call_start").collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "call_0");
    assert_eq!(calls[0]["name"], "f");
    assert_eq!(types.last(), Some(&"call_end"));
}

#[test]
fn a_file_gives_the_expected_message() {
    for case in ["two_calls_in_section", "unicode", "marker_inside_json_string", "think_block"] {
        let output =
            taskflow().arg("parse").arg(fixture(&format!("{case}.txt"))).assert().success();
        let expected: Value = serde_json::from_str(
            &std::fs::read_to_string(fixture(&format!("{case}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(json_of(&output.get_output().stdout), expected, "case {case}");
    }
}

#[test]
fn stdin_is_read_when_no_file_is_given() {
    let input = std::fs::read_to_string(fixture("three_parallel_calls.txt")).unwrap();
    let message = parse_stdin(&[], &input);
    assert_eq!(message["tool_calls"].as_array().unwrap().len(), 4);
    assert_eq!(parse_stdin(&["-"], &input), message);
    assert_eq!(parse_stdin(&["--format", "kimi"], &input), message);
}

#[test]
fn chunk_size_does_not_change_the_message() {
    for case in ["kimi_k2_realistic_turn", "unclosed_string_first_marker_wins", "unicode"] {
        let input = std::fs::read_to_string(fixture(&format!("{case}.txt"))).unwrap();
        let one_shot = parse_stdin(&[], &input);
        for size in ["1", "2", "7", "4096"] {
            assert_eq!(parse_stdin(&["--chunk-size", size], &input), one_shot, "{case} in {size}s");
        }
    }
}

/// `taskflow parse --stream FILE | head -1`: once the reader has gone, parsing ends quietly.
#[test]
fn events_nobody_reads_end_the_parse_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("calls.txt");
    let call = "<tool_call>{\"name\": \"a\", \"arguments\": {}}</tool_call>\n";
    std::fs::write(&file, call.repeat(20_000)).unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_taskflow"))
        .args(["parse", "--stream"])
        .arg(&file)
        .stdout(writer)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
}

#[test]
fn stream_prints_events_as_json_lines() {
    let input = "Hi <|tool_calls_section_begin|><|tool_call_begin|>functions.f:0\
                 <|tool_call_argument_begin|>{\"a\": 1}<|tool_call_end|><|tool_calls_section_end|>";
    let output = taskflow().args(["parse", "--stream"]).write_stdin(input).assert().success();
    let stdout = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    let types: Vec<String> = stdout
        .lines()
        .map(|line| {
            let event: Value = serde_json::from_str(line).expect("each line is one JSON event");
            event["type"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(types, ["text_delta", "call_start", "arguments_delta", "call_end"]);
    let start: Value = serde_json::from_str(stdout.lines().nth(1).unwrap()).unwrap();
    assert_eq!(start["id"], "functions.f:0");
    assert_eq!(start["name"], "f");
}

#[test]
fn declared_tools_name_bare_index_calls() {
    let input = "<|tool_call_begin|>0<|tool_call_argument_begin|>{}<|tool_call_end|>";
    let unnamed = parse_stdin(&[], input);
    assert_eq!(unnamed["tool_calls"], Value::Array(vec![]));
    assert_eq!(unnamed["content"], input);
    assert_eq!(unnamed["diagnostics"][0]["kind"], "unresolved_name");
    let named = parse_stdin(&["--tools", "get_weather"], input);
    assert_eq!(named["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(named["tool_calls"][0]["id"], "0");
    assert_eq!(named["diagnostics"], Value::Array(vec![]));
    let ambiguous = parse_stdin(&["--tools", "a,b"], input);
    assert_eq!(ambiguous["tool_calls"], Value::Array(vec![]));
    assert_eq!(ambiguous["diagnostics"][0]["kind"], "unresolved_name");
}

#[test]
fn invalid_utf8_is_a_clear_error() {
    let output = taskflow().arg("parse").write_stdin(b"abc\xff\xfedef".to_vec()).assert().code(1);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(stderr.starts_with("error: standard input is not valid UTF-8"), "{stderr}");
    assert!(stderr.contains("offset 3"), "{stderr}");
    assert!(output.get_output().stdout.is_empty());
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = taskflow().arg("parse").arg(dir.path().join("missing.txt")).assert().code(1);
    let stderr = String::from_utf8(output.get_output().stderr.clone()).unwrap();
    assert!(stderr.starts_with("error: cannot open "), "{stderr}");
    assert_eq!(stderr.lines().filter(|line| line.starts_with("error:")).count(), 1);
}

#[test]
fn usage_errors_exit_with_2() {
    taskflow().args(["parse", "--format", "nonsense"]).write_stdin("x").assert().code(2);
    taskflow()
        .args(["parse", "--format", "kimi", "--model", "kimi-k2"])
        .write_stdin("x")
        .assert()
        .code(2);
    taskflow().args(["parse", "--chunk-size", "0"]).write_stdin("x").assert().code(2);
}

#[test]
fn help_explains_the_options() {
    let output = taskflow().args(["parse", "--help"]).assert().success();
    let help = String::from_utf8(output.get_output().stdout.clone()).unwrap();
    for option in
        ["--format", "--model", "--stream", "--chunk-size", "--tools", "--tools-file", "[FILE]"]
    {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
    for format in ["auto", "kimi", "hermes", "qwen3-coder", "glm45", "deepseek-v31", "harmony"] {
        assert!(help.contains(format), "--help lacks the format {format}:\n{help}");
    }
}

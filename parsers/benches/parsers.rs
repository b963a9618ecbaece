//! Throughput of the parsers on generated corpora: for every format, one-shot on a tool-dense
//! corpus (short prose, then calls, over and over; one call in three has a marker inside a
//! JSON string where the format writes JSON) and streaming in 16-character chunks; for Kimi
//! also plain text and 1- and 4096-character chunks. One-shot and streaming fold into the same
//! sink (a `MessageBuilder`), so the ratios compare the parsing alone; `stream_16_events` also
//! allocates every event, as `StreamParser::feed` does. After the criterion groups, one
//! `name: value` line per case gives MB/s and the ratio to one-shot time, measured in the
//! same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use taskflow_parsers::{Format, MessageBuilder, ParseOptions, StreamParser, ToolSpec, parse};

const KIMI_BYTES: usize = 10 * 1024 * 1024;
const FORMAT_BYTES: usize = 4 * 1024 * 1024;

/// Prose with the odd angle bracket, no markers.
fn plain_corpus() -> String {
    let words = [
        "the",
        "model",
        "answered",
        "with",
        "a",
        "long",
        "explanation",
        "of",
        "durable",
        "runs,",
        "checkpoints",
        "and",
        "resumes;",
        "a <b> tag",
        "appears",
        "now",
        "and",
        "then.\n",
    ];
    let mut text = String::with_capacity(KIMI_BYTES + 64);
    let mut i = 0usize;
    while text.len() < KIMI_BYTES {
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    text
}

/// The note of call `k`: one call in three carries `marker` inside a JSON string.
fn note(k: usize, marker: &str) -> String {
    if k == 2 { format!("a {marker} inside a string") } else { "plain".to_owned() }
}

/// The JSON arguments of call `k` of turn `n`.
fn arguments(n: usize, k: usize, marker: &str) -> String {
    format!(
        "{{\"query\": \"durable agent run {n}\", \"limit\": {k}, \"filters\": {{\"lang\": \"en\", \
         \"note\": \"{}\"}}}}",
        note(k, marker)
    )
}

/// One turn of a format: prose, then three calls.
fn turn(format: Format, n: usize) -> String {
    let calls = |call: &dyn Fn(usize) -> String| (0..3).map(call).collect::<String>();
    match format {
        Format::Kimi => format!(
            "Let me look that up. <|tool_calls_section_begin|>{}<|tool_calls_section_end|>\n",
            calls(&|k| format!(
                "<|tool_call_begin|>functions.search_{k}:{n}<|tool_call_argument_begin|>{}\
                 <|tool_call_end|>",
                arguments(n, k, "<|tool_call_end|>")
            ))
        ),
        Format::Hermes | Format::Auto => format!(
            "Let me look that up.\n{}",
            calls(&|k| format!(
                "<tool_call>\n{{\"name\": \"search_{k}\", \"arguments\": {}}}\n</tool_call>\n",
                arguments(n, k, "</tool_call>")
            ))
        ),
        Format::Qwen3Coder => format!(
            "Let me look that up.\n{}",
            calls(&|k| format!(
                "<tool_call>\n<function=search_{k}>\n<parameter=query>\ndurable agent run {n}\n\
                 </parameter>\n<parameter=limit>\n{k}\n</parameter>\n<parameter=note>\n{}\n\
                 </parameter>\n</function>\n</tool_call>\n",
                note(k, "<b>")
            ))
        ),
        Format::Glm45 => format!(
            "Let me look that up.\n{}",
            calls(&|k| format!(
                "<tool_call>search_{k}\n<arg_key>query</arg_key>\n<arg_value>durable agent run \
                 {n}</arg_value>\n<arg_key>limit</arg_key>\n<arg_value>{k}</arg_value>\n\
                 <arg_key>note</arg_key>\n<arg_value>{}</arg_value>\n</tool_call>\n",
                note(k, "<b>")
            ))
        ),
        Format::DeepseekV3 => format!(
            "Let me look that up.<｜tool▁calls▁begin｜>{}<｜tool▁calls▁end｜>\n",
            calls(&|k| format!(
                "<｜tool▁call▁begin｜>function<｜tool▁sep｜>search_{k}\n```json\n{}\n```\
                 <｜tool▁call▁end｜>\n",
                arguments(n, k, "<｜tool▁call▁end｜>")
            ))
        ),
        Format::DeepseekV31 => format!(
            "Let me look that up.<｜tool▁calls▁begin｜>{}<｜tool▁calls▁end｜>\n",
            calls(&|k| format!(
                "<｜tool▁call▁begin｜>search_{k}<｜tool▁sep｜>{}<｜tool▁call▁end｜>",
                arguments(n, k, "<｜tool▁call▁end｜>")
            ))
        ),
        Format::Mistral => format!(
            "Let me look that up. {}\n",
            calls(&|k| format!("[TOOL_CALLS]search_{k}[ARGS]{}", arguments(n, k, "[TOOL_CALLS]")))
        ),
        Format::Llama3 => format!(
            "<|python_tag|>{}<|eom_id|>\n",
            (0..3)
                .map(|k| format!(
                    "{{\"name\": \"search_{k}\", \"parameters\": {}}}",
                    arguments(n, k, "<|eom_id|>")
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Format::Harmony => format!(
            "<|channel|>analysis<|message|>Let me look that up.<|end|>{}",
            calls(&|k| format!(
                "<|start|>assistant<|channel|>commentary to=functions.search_{k} \
                 <|constrain|>json<|message|>{}<|call|>",
                arguments(n, k, "<|call|>")
            ))
        ),
        Format::MinimaxM2 => format!(
            "Let me look that up.\n<minimax:tool_call>\n{}</minimax:tool_call>\n",
            calls(&|k| format!(
                "<invoke name=\"search_{k}\">\n<parameter name=\"query\">durable agent run {n}\
                 </parameter>\n<parameter name=\"limit\">{k}</parameter>\n\
                 <parameter name=\"note\">{}</parameter>\n</invoke>\n",
                note(k, "<b>")
            ))
        ),
    }
}

fn tool_dense_corpus(format: Format, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 1024);
    let mut n = 0;
    while text.len() < bytes {
        text.push_str(&turn(format, n));
        n += 1;
    }
    text
}

/// The tools the calls are for, with a schema, so that typed formats type their values.
fn options() -> ParseOptions {
    let schema = json!({
        "type": "object",
        "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}
    });
    let tools = (0..3)
        .map(|k| ToolSpec { name: format!("search_{k}"), parameters: Some(schema.clone()) })
        .collect();
    ParseOptions { tools }
}

/// The input cut into chunks of `chunk_chars` characters (cut once, outside the timing).
fn cut(input: &str, chunk_chars: usize) -> Vec<&str> {
    let mut chunks = Vec::with_capacity(input.len() / chunk_chars + 1);
    let mut rest = input;
    while !rest.is_empty() {
        let at = rest.char_indices().nth(chunk_chars).map_or(rest.len(), |(at, _)| at);
        chunks.push(&rest[..at]);
        rest = &rest[at..];
    }
    chunks
}

fn stream(format: Format, chunks: &[&str], options: &ParseOptions) -> MessageBuilder {
    let mut parser = StreamParser::new(format, options);
    let mut message = MessageBuilder::new();
    for chunk in chunks {
        parser.feed_into(chunk, &mut message);
    }
    parser.finish_into(&mut message);
    message
}

fn stream_events(format: Format, chunks: &[&str], options: &ParseOptions) -> usize {
    let mut parser = StreamParser::new(format, options);
    let mut events = 0;
    for chunk in chunks {
        events += black_box(parser.feed(chunk)).len();
    }
    events + parser.finish().len()
}

/// The fastest of `rounds` timings: the least disturbed by whatever else the machine runs.
fn best_time(run: &mut dyn FnMut(), rounds: u32) -> Duration {
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .expect("at least one round")
}

/// A corpus to measure: its name, format, text, and the chunk sizes to stream it in.
struct Case {
    name: String,
    format: Format,
    corpus: String,
    chunk_sizes: &'static [usize],
    events: bool,
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "kimi/plain".into(),
            format: Format::Kimi,
            corpus: plain_corpus(),
            chunk_sizes: &[1, 16, 4096],
            events: true,
        },
        Case {
            name: "kimi/tool_dense".into(),
            format: Format::Kimi,
            corpus: tool_dense_corpus(Format::Kimi, KIMI_BYTES),
            chunk_sizes: &[1, 16, 4096],
            events: true,
        },
    ];
    for &format in Format::ALL.iter().skip(1).chain([&Format::Auto]) {
        cases.push(Case {
            name: format!("{format}/tool_dense"),
            format,
            corpus: tool_dense_corpus(format, FORMAT_BYTES),
            chunk_sizes: &[16],
            events: false,
        });
    }
    cases
}

fn throughput(c: &mut Criterion) {
    let options = options();
    let cases = cases();
    for case in &cases {
        // The corpora are well formed: a slow path taken by mistake would not be measured.
        let message = parse(case.format, &case.corpus, &options);
        assert!(message.diagnostics.is_empty(), "{}: {:?}", case.name, &message.diagnostics[..1]);
    }
    for case in &cases {
        let mut group = c.benchmark_group(&case.name);
        group.throughput(Throughput::Bytes(case.corpus.len() as u64));
        group.sample_size(10);
        group.bench_function("one_shot", |b| {
            b.iter(|| parse(case.format, black_box(&case.corpus), &options))
        });
        for &chunk_chars in case.chunk_sizes {
            let chunks = cut(&case.corpus, chunk_chars);
            group.bench_function(format!("stream_{chunk_chars}"), |b| {
                b.iter(|| stream(case.format, black_box(&chunks), &options))
            });
        }
        group.finish();
    }

    println!("\nfigures (MB/s, and time as a multiple of one-shot time in the same run):");
    for case in &cases {
        figures(case, &options);
    }
}

/// Prints the `name: value` lines of one case.
fn figures(case: &Case, options: &ParseOptions) {
    let (format, corpus) = (case.format, &case.corpus);
    let chunked: Vec<(usize, Vec<&str>)> =
        case.chunk_sizes.iter().map(|&n| (n, cut(corpus, n))).collect();
    let mut one_shot = || drop(black_box(parse(format, corpus, options)));
    let mut runs: Vec<(String, Box<dyn FnMut() + '_>)> = Vec::new();
    for (n, chunks) in &chunked {
        runs.push((
            format!("stream_{n}"),
            Box::new(move || drop(black_box(stream(format, chunks, options)))),
        ));
    }
    if case.events {
        let chunks_16 = &chunked.iter().find(|(n, _)| *n == 16).expect("16-char chunks").1;
        runs.push((
            "stream_16_events".into(),
            Box::new(move || {
                black_box(stream_events(format, chunks_16, options));
            }),
        ));
    }
    let mb_per_s = |time: Duration| corpus.len() as f64 / time.as_secs_f64() / 1e6;
    let one_shot_time = best_time(&mut one_shot, 7);
    println!("{}/one_shot: {:.0} MB/s", case.name, mb_per_s(one_shot_time));
    for (run_name, run) in &mut runs {
        // One-shot is timed again beside each case, so both see the same machine.
        let one_shot_time = best_time(&mut one_shot, 3).min(one_shot_time);
        let time = best_time(run.as_mut(), 3);
        let ratio = time.as_secs_f64() / one_shot_time.as_secs_f64();
        println!("{}/{run_name}: {:.0} MB/s, {ratio:.2}x one-shot time", case.name, mb_per_s(time));
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);

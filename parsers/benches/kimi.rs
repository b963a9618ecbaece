//! Throughput of the Kimi parser on a generated ~10 MB corpus: one-shot on plain text and on
//! tool-dense text, and streaming in 1-, 16- and 4096-character chunks. One-shot and streaming
//! fold into the same sink (a `MessageBuilder`), so the ratios compare the parsing alone;
//! `stream_16_events` also allocates every event, as `StreamParser::feed` does. After the
//! criterion groups, one `name: value` line per case gives MB/s and the ratio to one-shot time,
//! measured in the same run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use taskflow_parsers::{Format, MessageBuilder, ParseOptions, StreamParser, parse};

const CORPUS_BYTES: usize = 10 * 1024 * 1024;

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
    let mut text = String::with_capacity(CORPUS_BYTES + 64);
    let mut i = 0usize;
    while text.len() < CORPUS_BYTES {
        text.push_str(words[i % words.len()]);
        text.push(' ');
        i = i.wrapping_mul(31).wrapping_add(7) % 1009;
    }
    text
}

/// Short prose, then a section of three calls, over and over; one call in three has a
/// marker inside a JSON string (held until the call ends, then validated).
fn tool_dense_corpus() -> String {
    let mut text = String::with_capacity(CORPUS_BYTES + 1024);
    let mut n = 0usize;
    while text.len() < CORPUS_BYTES {
        text.push_str("Let me look that up. <|tool_calls_section_begin|>");
        for k in 0..3 {
            let note = if k == 2 { "a <|tool_call_end|> inside a string" } else { "plain" };
            text.push_str(&format!(
                "<|tool_call_begin|>functions.search_{k}:{n}<|tool_call_argument_begin|>\
                 {{\"query\": \"durable agent run {n}\", \"limit\": {k}, \"filters\": \
                 {{\"lang\": \"en\", \"note\": \"{note}\"}}}}<|tool_call_end|>"
            ));
            n += 1;
        }
        text.push_str("<|tool_calls_section_end|>\n");
    }
    text
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

fn stream(chunks: &[&str], options: &ParseOptions) -> MessageBuilder {
    let mut parser = StreamParser::new(Format::Kimi, options);
    let mut message = MessageBuilder::new();
    for chunk in chunks {
        parser.feed_into(chunk, &mut message);
    }
    parser.finish_into(&mut message);
    message
}

fn stream_events(chunks: &[&str], options: &ParseOptions) -> usize {
    let mut parser = StreamParser::new(Format::Kimi, options);
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

fn throughput(c: &mut Criterion) {
    let options = ParseOptions::default();
    let corpora = [("plain", plain_corpus()), ("tool_dense", tool_dense_corpus())];
    for (name, corpus) in &corpora {
        let mut group = c.benchmark_group(format!("kimi/{name}"));
        group.throughput(Throughput::Bytes(corpus.len() as u64));
        group.sample_size(10);
        group.bench_function("one_shot", |b| {
            b.iter(|| parse(Format::Kimi, black_box(corpus), &options))
        });
        for chunk_chars in [1usize, 16, 4096] {
            let chunks = cut(corpus, chunk_chars);
            group.bench_function(format!("stream_{chunk_chars}"), |b| {
                b.iter(|| stream(black_box(&chunks), &options))
            });
        }
        group.finish();
    }

    println!("\nfigures (MB/s, and time as a multiple of one-shot time in the same run):");
    for (name, corpus) in &corpora {
        let chunked: Vec<(usize, Vec<&str>)> =
            [1, 16, 4096].into_iter().map(|n| (n, cut(corpus, n))).collect();
        let options = &options;
        let mut one_shot = || drop(black_box(parse(Format::Kimi, corpus, options)));
        let mut cases: Vec<(String, Box<dyn FnMut() + '_>)> = Vec::new();
        for (n, chunks) in &chunked {
            cases.push((
                format!("stream_{n}"),
                Box::new(move || drop(black_box(stream(chunks, options)))),
            ));
        }
        let chunks_16 = &chunked[1].1;
        cases.push((
            "stream_16_events".into(),
            Box::new(move || {
                black_box(stream_events(chunks_16, options));
            }),
        ));
        let mb_per_s = |time: Duration| corpus.len() as f64 / time.as_secs_f64() / 1e6;
        let one_shot_time = best_time(&mut one_shot, 7);
        println!("kimi/{name}/one_shot: {:.0} MB/s", mb_per_s(one_shot_time));
        for (case, run) in &mut cases {
            // One-shot is timed again beside each case, so both see the same machine.
            let one_shot_time = best_time(&mut one_shot, 3).min(one_shot_time);
            let time = best_time(run.as_mut(), 3);
            let ratio = time.as_secs_f64() / one_shot_time.as_secs_f64();
            println!("kimi/{name}/{case}: {:.0} MB/s, {ratio:.2}x one-shot time", mb_per_s(time));
        }
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);

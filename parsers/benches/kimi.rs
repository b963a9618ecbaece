//! Throughput of the Kimi parser on a generated ~10 MB corpus: one-shot on plain text and on
//! tool-dense text, and streaming in 1-, 16- and 4096-character chunks. After the criterion
//! groups, one line per streaming case gives its speed as a ratio to one-shot, measured in
//! the same run.

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

/// Short prose, then a section of three calls, over and over.
fn tool_dense_corpus() -> String {
    let mut text = String::with_capacity(CORPUS_BYTES + 1024);
    let mut n = 0usize;
    while text.len() < CORPUS_BYTES {
        text.push_str("Let me look that up. <|tool_calls_section_begin|>");
        for k in 0..3 {
            text.push_str(&format!(
                "<|tool_call_begin|>functions.search_{k}:{n}<|tool_call_argument_begin|>\
                 {{\"query\": \"durable agent run {n}\", \"limit\": {k}, \"filters\": \
                 {{\"lang\": \"en\", \"note\": \"a <|tool_call_end|> inside a string\"}}}}\
                 <|tool_call_end|>"
            ));
            n += 1;
        }
        text.push_str("<|tool_calls_section_end|>\n");
    }
    text
}

fn stream(input: &str, chunk_chars: usize, options: &ParseOptions) -> MessageBuilder {
    let mut parser = StreamParser::new(Format::Kimi, options);
    let mut message = MessageBuilder::new();
    let mut rest = input;
    while !rest.is_empty() {
        let cut = rest.char_indices().nth(chunk_chars).map_or(rest.len(), |(at, _)| at);
        parser.feed_into(&rest[..cut], &mut message);
        rest = &rest[cut..];
    }
    parser.finish_into(&mut message);
    message
}

fn mean_time(mut run: impl FnMut(), rounds: u32) -> Duration {
    run();
    let start = Instant::now();
    for _ in 0..rounds {
        run();
    }
    start.elapsed() / rounds
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
        for chunk in [1usize, 16, 4096] {
            group.bench_function(format!("stream_{chunk}"), |b| {
                b.iter(|| stream(black_box(corpus), chunk, &options))
            });
        }
        group.finish();
    }

    println!("\nratios (streaming time / one-shot time, same run; 1.0 = as fast as one-shot):");
    for (name, corpus) in &corpora {
        let one_shot = mean_time(|| drop(black_box(parse(Format::Kimi, corpus, &options))), 5);
        let mb_per_s = corpus.len() as f64 / one_shot.as_secs_f64() / 1e6;
        println!("kimi/{name}/one_shot: {mb_per_s:.0} MB/s");
        for chunk in [1usize, 16, 4096] {
            let streamed = mean_time(|| drop(black_box(stream(corpus, chunk, &options))), 3);
            let ratio = streamed.as_secs_f64() / one_shot.as_secs_f64();
            println!("kimi/{name}/stream_{chunk}: {ratio:.2}x one-shot time");
        }
    }
}

criterion_group!(benches, throughput);
criterion_main!(benches);

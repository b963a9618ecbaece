//! `taskflow parse`: tagged tool-call text to the normalized message (DESIGN §3, §6).
//!
//! The input is read and fed to the streaming parser block by block, so `--stream` prints
//! events while a pipe is still writing. Without `--stream`, the folded message is printed as
//! one JSON document. The format is `auto` unless `--format` names one or `--model` names the
//! model that wrote the text; declared tools come from `--tools` (names) and `--tools-file`
//! (with their JSON schemas, which type the values of XML-style parameters).

use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::num::NonZeroUsize;
use std::path::PathBuf;

use taskflow_parsers::{
    EventSink, Format, MessageBuilder, ParseOptions, StreamEvent, StreamParser, ToolSpec,
};

use crate::error::{CliError, CliResult};
use crate::global::GlobalArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Formats: auto (the default: told by the first marker only one format \
    writes), kimi, hermes (Qwen2.5 / Qwen3), qwen3-coder, glm45 (GLM-4.5 to 4.7), deepseek-v3, \
    deepseek-v31, mistral, llama3, harmony (gpt-oss), minimax-m2.\n\n\
    Examples:\n  \
    taskflow parse fixtures/parsers/kimi/two_calls_in_section.txt\n  \
    some-model-client | taskflow parse --stream\n  \
    taskflow parse --model Qwen/Qwen3-Coder-30B-A3B-Instruct --tools-file tools.json reply.txt\n  \
    taskflow parse --format llama3 --tools get_weather,search reply.txt")]
pub struct ParseArgs {
    /// The tagged-text format of the input (see the list below)
    #[arg(long, default_value = "auto", value_name = "FORMAT")]
    pub format: Format,

    /// The model that wrote the text; its format is used instead of --format
    #[arg(long, value_name = "NAME", conflicts_with = "format")]
    pub model: Option<String>,

    /// Print the parser's events as JSON Lines, as they happen, instead of the final message
    #[arg(long)]
    pub stream: bool,

    /// Feed the streaming parser N characters at a time (the printed message is the same as
    /// without it; this shows that chunking does not change the result)
    #[arg(long, value_name = "N")]
    pub chunk_size: Option<NonZeroUsize>,

    /// Declared tool names (Kimi's bare-index ids and Llama 3's bare JSON calls need them)
    #[arg(long, value_delimiter = ',', value_name = "NAME,…")]
    pub tools: Vec<String>,

    /// A JSON file of declared tools with their parameter schemas: an array of
    /// `{"name", "parameters"}`, or the OpenAI `tools` array
    #[arg(long, value_name = "PATH")]
    pub tools_file: Option<PathBuf>,

    /// The text to parse; `-` or nothing reads standard input
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// Bytes read from the input at a time.
const READ_BLOCK: usize = 64 * 1024;

pub fn run(_global: &GlobalArgs, args: &ParseArgs) -> CliResult {
    let format = match &args.model {
        Some(model) => Format::for_model(model).ok_or_else(|| {
            CliError::usage(format!("no known tool-call format for the model `{model}`"))
                .with_hint("name the format with --format, or leave both out for auto")
        })?,
        None => args.format,
    };
    let mut tools: Vec<ToolSpec> = args.tools.iter().map(ToolSpec::named).collect();
    if let Some(path) = &args.tools_file {
        tools.extend(crate::tools_file::read(path)?);
    }
    let options = ParseOptions { tools };
    let (mut input, source) = open_input(args.file.as_ref())?;
    let mut parser = StreamParser::new(format, &options);
    let stdout = io::stdout();
    let mut sink =
        if args.stream { Sink::Lines(stdout.lock()) } else { Sink::Message(MessageBuilder::new()) };
    let mut decoder = Utf8Decoder::default();
    let mut block = vec![0u8; READ_BLOCK];
    loop {
        let read = match input.read(&mut block) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(CliError::failure(format!("cannot read {source}: {error}"))),
        };
        let text =
            decoder.decode(&block[..read]).map_err(|offset| invalid_utf8(&source, offset))?;
        feed(&mut parser, text, args.chunk_size, &mut sink);
        sink.flush()?;
    }
    decoder.finish().map_err(|offset| invalid_utf8(&source, offset))?;
    parser.finish_into(&mut sink);
    match sink {
        Sink::Lines(mut out) => out.flush().map_err(write_error),
        Sink::Message(message) => {
            let json = serde_json::to_string_pretty(&message.finish()).map_err(|error| {
                CliError::failure(format!("cannot encode the message: {error}"))
            })?;
            writeln!(io::stdout().lock(), "{json}").map_err(write_error)
        }
    }
}

fn open_input(file: Option<&PathBuf>) -> CliResult<(Box<dyn Read>, String)> {
    match file {
        Some(path) if path.as_os_str() != "-" => {
            let file = File::open(path).map_err(|error| {
                CliError::failure(format!("cannot open {}: {error}", path.display()))
            })?;
            Ok((Box::new(file), path.display().to_string()))
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::usage("no input: standard input is a terminal")
                    .with_hint("give a FILE, or pipe the text in: `taskflow parse < reply.txt`"));
            }
            Ok((Box::new(stdin), "standard input".to_owned()))
        }
    }
}

fn feed(parser: &mut StreamParser, text: &str, chunk_chars: Option<NonZeroUsize>, sink: &mut Sink) {
    let Some(chunk_chars) = chunk_chars else {
        parser.feed_into(text, sink);
        return;
    };
    let mut rest = text;
    while !rest.is_empty() {
        let cut = rest.char_indices().nth(chunk_chars.get()).map_or(rest.len(), |(at, _)| at);
        parser.feed_into(&rest[..cut], sink);
        rest = &rest[cut..];
    }
}

fn invalid_utf8(source: &str, offset: usize) -> CliError {
    CliError::failure(format!("{source} is not valid UTF-8 (invalid byte at offset {offset})"))
        .with_hint("taskflow parse reads UTF-8 text; convert the input first (e.g. with iconv)")
}

fn write_error(error: io::Error) -> CliError {
    CliError::writing_output("to standard output", error)
}

/// Where parser events go: straight out as JSON Lines, or folded into one message.
enum Sink {
    Lines(io::StdoutLock<'static>),
    Message(MessageBuilder),
}

impl Sink {
    fn flush(&mut self) -> CliResult {
        match self {
            Sink::Lines(out) => out.flush().map_err(write_error),
            Sink::Message(_) => Ok(()),
        }
    }
}

impl EventSink for Sink {
    fn emit(&mut self, event: StreamEvent) {
        match self {
            Sink::Lines(out) => {
                // A closed pipe ends the output; the final flush reports it.
                if let Ok(line) = serde_json::to_string(&event) {
                    let _ = writeln!(out, "{line}");
                }
            }
            Sink::Message(message) => message.apply(event),
        }
    }
}

/// Turns blocks of bytes into text, carrying a character split across blocks to the next one.
#[derive(Default)]
struct Utf8Decoder {
    carry: Vec<u8>,
    text: String,
    /// Bytes decoded so far, for the offset of an invalid byte.
    decoded: usize,
}

impl Utf8Decoder {
    /// The text of `block` (plus what was carried); `Err` holds the offset of an invalid byte.
    fn decode(&mut self, block: &[u8]) -> Result<&str, usize> {
        self.carry.extend_from_slice(block);
        let valid = match std::str::from_utf8(&self.carry) {
            Ok(_) => self.carry.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(error) => return Err(self.decoded + error.valid_up_to()),
        };
        self.text.clear();
        self.text.push_str(std::str::from_utf8(&self.carry[..valid]).expect("validated"));
        self.carry.drain(..valid);
        self.decoded += valid;
        Ok(&self.text)
    }

    /// Ends the input; a character cut off at the end is an error.
    fn finish(&self) -> Result<(), usize> {
        if self.carry.is_empty() { Ok(()) } else { Err(self.decoded) }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Decoder;

    #[test]
    fn decoder_joins_characters_split_across_blocks() {
        let text = "a€b日本";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let mut decoder = Utf8Decoder::default();
            let mut out = decoder.decode(&bytes[..cut]).unwrap().to_owned();
            out.push_str(decoder.decode(&bytes[cut..]).unwrap());
            decoder.finish().unwrap();
            assert_eq!(out, text, "cut at {cut}");
        }
    }

    #[test]
    fn decoder_reports_the_offset_of_an_invalid_byte() {
        let mut decoder = Utf8Decoder::default();
        decoder.decode(b"abc").unwrap();
        assert_eq!(decoder.decode(b"de\xffgh"), Err(5));
        let mut decoder = Utf8Decoder::default();
        decoder.decode(b"ab\xe2\x82").unwrap();
        assert_eq!(decoder.finish(), Err(2));
    }
}

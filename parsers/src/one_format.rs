//! The machine of one format named in advance, driven: what a [`crate::StreamParser`] runs for
//! that format, and what the auto-detector hands over to once a marker names the format.

use crate::ParseOptions;
use crate::deepseek::Deepseek;
use crate::engine::driver::Driver;
use crate::engine::tally::Tally;
use crate::engine::text::TextOut;
use crate::event::EventSink;
use crate::format::Format;
use crate::harmony::Harmony;
use crate::kimi::Kimi;
use crate::llama3::Llama3;
use crate::mistral::Mistral;
use crate::tagged::{MinimaxTags, Tagged, ToolCallTags};

/// The driven machine of one format.
#[derive(Debug)]
pub(crate) enum Inner {
    Kimi(Driver<Kimi>),
    ToolCall(Format, Driver<Tagged<ToolCallTags>>),
    Minimax(Driver<Tagged<MinimaxTags>>),
    Deepseek(Format, Driver<Deepseek>),
    Mistral(Driver<Mistral>),
    Llama3(Driver<Llama3>),
    Harmony(Driver<Harmony>),
}

/// Runs `$body` with `$driver` bound to whichever driver `$inner` holds.
macro_rules! each_driver {
    ($inner:expr, $driver:ident => $body:expr) => {
        match $inner {
            Inner::Kimi($driver) => $body,
            Inner::ToolCall(_, $driver) => $body,
            Inner::Minimax($driver) => $body,
            Inner::Deepseek(_, $driver) => $body,
            Inner::Mistral($driver) => $body,
            Inner::Llama3($driver) => $body,
            Inner::Harmony($driver) => $body,
        }
    };
}

impl Inner {
    /// The parser of `format` (not `Auto`) for input starting at absolute `offset`, with
    /// `text` saying whether a think block is open.
    pub(crate) fn new(
        format: Format,
        options: &ParseOptions,
        text: TextOut,
        offset: usize,
    ) -> Self {
        match format {
            Format::Kimi => Inner::Kimi(Driver::starting_at(Kimi::new(options, text), offset)),
            Format::Hermes | Format::Glm45 | Format::Qwen3Coder => {
                let bare = format == Format::Qwen3Coder;
                let machine = Tagged::new(options, text, bare);
                Inner::ToolCall(format, Driver::starting_at(machine, offset))
            }
            Format::MinimaxM2 => {
                Inner::Minimax(Driver::starting_at(Tagged::new(options, text, false), offset))
            }
            Format::DeepseekV3 | Format::DeepseekV31 => {
                Inner::Deepseek(format, Driver::starting_at(Deepseek::new(options, text), offset))
            }
            Format::Mistral => {
                Inner::Mistral(Driver::starting_at(Mistral::new(options, text), offset))
            }
            Format::Llama3 => {
                Inner::Llama3(Driver::starting_at(Llama3::new(options, text), offset))
            }
            Format::Harmony => Inner::Harmony(Driver::starting_at(Harmony::new(options), offset)),
            Format::Auto => unreachable!("auto is not a machine of its own"),
        }
    }

    /// Qwen3-Coder found by a `<function=` outside `<tool_call>`.
    pub(crate) fn bare_function(options: &ParseOptions, text: TextOut, offset: usize) -> Self {
        Inner::new(Format::Qwen3Coder, options, text, offset)
    }

    /// The format this parser reads; for a family that reads several, the one the first
    /// call's shape belongs to.
    pub(crate) fn detected(&self) -> Format {
        match self {
            Inner::Kimi(_) => Format::Kimi,
            Inner::ToolCall(format, driver) => driver.machine.detected().unwrap_or(*format),
            Inner::Minimax(_) => Format::MinimaxM2,
            Inner::Deepseek(format, driver) => driver.machine.detected().unwrap_or(*format),
            Inner::Mistral(_) => Format::Mistral,
            Inner::Llama3(_) => Format::Llama3,
            Inner::Harmony(_) => Format::Harmony,
        }
    }

    pub(crate) fn feed<S: EventSink>(&mut self, chunk: &str, sink: &mut S) {
        each_driver!(self, driver => driver.feed(chunk, sink))
    }

    pub(crate) fn finish<S: EventSink>(&mut self, sink: &mut S) {
        each_driver!(self, driver => driver.finish(sink))
    }

    pub(crate) fn buffered_len(&self) -> usize {
        each_driver!(self, driver => driver.buffered_len())
    }

    pub(crate) fn retained_bytes(&self) -> usize {
        each_driver!(self, driver => driver.retained_bytes())
    }

    pub(crate) fn tally(&self) -> Tally {
        each_driver!(self, driver => driver.tally())
    }

    pub(crate) fn scanned_bytes(&self) -> usize {
        each_driver!(self, driver => driver.scanned_bytes())
    }
}

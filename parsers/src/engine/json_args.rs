//! Reading JSON argument text while tracking strings and escapes, for every format whose
//! arguments (or whole call) are written as JSON.
//!
//! A marker outside a string ends the arguments. A marker met inside an open string is in
//! doubt: from there on the text is held, and when the arguments end it is literal if they are
//! then valid JSON; otherwise the first such marker ended the arguments after all, and the text
//! held since then is handed back to be parsed again from it. Only this held text waits; all
//! other argument text streams as it arrives. Formats whose arguments end where their JSON
//! value closes (no end marker) also count brackets.

use crate::arguments::{ArgumentsCheck, JsonStringState, check_arguments};
use crate::engine::call::{Calls, HeldText};
use crate::engine::driver::{Replay, Step};
use crate::engine::scan::{MarkerSet, Scan};
use crate::event::EventSink;

/// How a format's arguments are delimited: which of its markers end them.
pub(crate) trait ArgsGrammar: MarkerSet {
    /// The bytes a marker can start with outside a JSON string, besides `"` (and the brackets
    /// when `BALANCED`).
    const OUTSIDE: &'static [u8];
    /// The bytes a marker can start with inside a JSON string, besides `"` and `\`.
    const INSIDE: &'static [u8];
    /// The arguments end where their top-level JSON object or array closes.
    const BALANCED: bool;
    /// Whether a marker ends the arguments (outside a string) or is in doubt (inside one);
    /// other markers are argument text.
    fn ends_arguments(marker: Self::Marker) -> bool;
}

/// Why reading arguments stopped.
#[derive(Debug)]
pub(crate) enum ArgsStop<M> {
    /// The arguments end at the marker at `at` (not consumed).
    Marker(M, usize),
    /// The top-level JSON value closed; the arguments end before `at`.
    Closed(usize),
    /// The text from `at` may start a marker.
    NeedInput(usize),
    /// All the input was argument text.
    Exhausted,
    /// Parse `replay` again (the first doubtful marker ended the arguments), then go on from
    /// `resume`.
    Replay { resume: usize, replay: Replay },
}

impl<M> ArgsStop<M> {
    /// The end of the step, for the stops a machine has nothing of its own to do at: more
    /// input is needed, all of it was argument text, or text is parsed again first. A marker
    /// or a closed value end the step where they stand.
    pub(crate) fn step(self, input_len: usize) -> Step {
        match self {
            ArgsStop::Marker(_, at) | ArgsStop::Closed(at) => Step::Continue(at),
            ArgsStop::NeedInput(at) => Step::NeedInput(at),
            ArgsStop::Exhausted => Step::Continue(input_len),
            ArgsStop::Replay { resume, replay } => Step::Replay { resume, replay },
        }
    }
}

/// Reads argument text of the open call from `input[start..]` (absolute offset `base` for
/// `input[0]`).
pub(crate) fn read_arguments<G: ArgsGrammar, S: EventSink>(
    calls: &mut Calls,
    input: &str,
    start: usize,
    base: usize,
    eof: bool,
    sink: &mut S,
) -> ArgsStop<G::Marker> {
    let bytes = input.as_bytes();
    let mut run_start = start;
    let mut i = start;
    loop {
        let call = calls.get();
        if call.json.escaped {
            if i >= bytes.len() {
                break;
            }
            call.json.escaped = false;
            i += 1;
            continue;
        }
        let found = if call.json.in_string {
            find_inside::<G>(&bytes[i..])
        } else {
            find_outside::<G>(&bytes[i..])
        };
        let Some(found) = found else { break };
        let at = i + found;
        i = at + 1;
        let byte = bytes[at];
        if call.json.in_string && byte == b'\\' {
            call.json.escaped = true;
            continue;
        }
        if byte == b'"' {
            call.json.in_string = !call.json.in_string;
            continue;
        }
        let in_string = call.json.in_string;
        let starts = if in_string { G::INSIDE } else { G::OUTSIDE };
        if starts.contains(&byte) {
            match G::scan(&input[at..]) {
                Scan::Incomplete if !eof => {
                    add_argument_text(calls, &input[run_start..at], base + run_start, sink);
                    return ArgsStop::NeedInput(at);
                }
                Scan::Marker(marker, _) if G::ends_arguments(marker) && in_string => {
                    let call = calls.get();
                    if call.held.is_some() {
                        continue;
                    }
                    add_argument_text(calls, &input[run_start..at], base + run_start, sink);
                    run_start = at;
                    let call = calls.get();
                    if std::mem::take(&mut call.marker_ends_string) {
                        return ArgsStop::Marker(marker, at);
                    }
                    call.held = Some(HeldText { offset: base + at, text: String::new() });
                    continue;
                }
                Scan::Marker(marker, len) if G::ends_arguments(marker) => {
                    return end_at(calls, &input[run_start..at], base + run_start, sink, || {
                        (ArgsStop::Marker(marker, at), at + len)
                    })
                    .unwrap_or_else(|mut held| {
                        held.text.push_str(&input[at..at + len]);
                        replay_held(calls, held, at + len)
                    });
                }
                Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
            }
        }
        if G::BALANCED && !in_string {
            match byte {
                b'{' | b'[' => calls.get().depth += 1,
                b'}' | b']' if calls.get().depth > 0 => {
                    let call = calls.get();
                    call.depth -= 1;
                    if call.depth == 0 {
                        let end = at + 1;
                        return end_at(
                            calls,
                            &input[run_start..end],
                            base + run_start,
                            sink,
                            || (ArgsStop::Closed(end), end),
                        )
                        .unwrap_or_else(|held| replay_held(calls, held, end));
                    }
                }
                _ => {}
            }
        }
    }
    add_argument_text(calls, &input[run_start..], base + run_start, sink);
    ArgsStop::Exhausted
}

/// The arguments end after `text`: with nothing in doubt, or when the held text proves
/// literal, `stop` says where; otherwise the held text (with `text` added) comes back.
fn end_at<M, S: EventSink>(
    calls: &mut Calls,
    text: &str,
    offset: usize,
    sink: &mut S,
    stop: impl FnOnce() -> (ArgsStop<M>, usize),
) -> Result<ArgsStop<M>, HeldText> {
    let Some(mut held) = calls.get().held.take() else {
        calls.push_arguments(text, offset, sink);
        return Ok(stop().0);
    };
    held.text.push_str(text);
    if settle_held_text(calls, &held, sink) { Ok(stop().0) } else { Err(held) }
}

/// The held marker ended the arguments: the held text is parsed again from it, resuming
/// inside the string where that marker was met.
fn replay_held<M>(calls: &mut Calls, held: HeldText, resume: usize) -> ArgsStop<M> {
    replay_from_held_marker(calls);
    ArgsStop::Replay { resume, replay: Replay { text: held.text, offset: held.offset, pos: 0 } }
}

/// Argument text: held while a marker inside a string is in doubt, streamed otherwise.
fn add_argument_text<S: EventSink>(calls: &mut Calls, text: &str, offset: usize, sink: &mut S) {
    match &mut calls.get().held {
        Some(held) => held.text.push_str(text),
        None => calls.push_arguments(text, offset, sink),
    }
}

/// The call ends after `held`: if the arguments are valid with the held text read as
/// literal, it becomes argument text and `true` is returned; otherwise nothing changes.
fn settle_held_text<S: EventSink>(calls: &mut Calls, held: &HeldText, sink: &mut S) -> bool {
    let arguments = calls.arguments_with(&held.text);
    let check = check_arguments(arguments.trim());
    if matches!(check, ArgumentsCheck::Invalid(_)) {
        return false;
    }
    calls.push_arguments(&held.text, held.offset, sink);
    calls.get().checked = Some(check);
    true
}

/// Makes the held marker end the arguments when the held text is parsed again.
fn replay_from_held_marker(calls: &mut Calls) {
    let call = calls.get();
    call.held = None;
    call.json = JsonStringState { in_string: true, escaped: false };
    call.marker_ends_string = true;
}

/// At the end of the input: arguments with a marker inside a string still in doubt. The
/// marker is literal if that makes them valid; otherwise it ended them, and the held text
/// comes back to be parsed again.
pub(crate) fn unsettled<S: EventSink>(calls: &mut Calls, sink: &mut S) -> Option<Replay> {
    let held = calls.open_mut()?.held.take()?;
    if settle_held_text(calls, &held, sink) {
        return None;
    }
    replay_from_held_marker(calls);
    Some(Replay { text: held.text, offset: held.offset, pos: 0 })
}

fn find_inside<G: ArgsGrammar>(haystack: &[u8]) -> Option<usize> {
    match *G::INSIDE {
        [] => memchr::memchr2(b'"', b'\\', haystack),
        [a] => memchr::memchr3(b'"', b'\\', a, haystack),
        _ => haystack
            .iter()
            .position(|byte| matches!(byte, b'"' | b'\\') || G::INSIDE.contains(byte)),
    }
}

fn find_outside<G: ArgsGrammar>(haystack: &[u8]) -> Option<usize> {
    if G::BALANCED {
        return haystack.iter().position(|byte| {
            matches!(byte, b'"' | b'{' | b'}' | b'[' | b']') || G::OUTSIDE.contains(byte)
        });
    }
    match *G::OUTSIDE {
        [a] => memchr::memchr2(b'"', a, haystack),
        [a, b] => memchr::memchr3(b'"', a, b, haystack),
        _ => haystack.iter().position(|byte| *byte == b'"' || G::OUTSIDE.contains(byte)),
    }
}

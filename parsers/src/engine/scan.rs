//! Finding markers. A format lists the bytes its markers can start with and recognizes a
//! marker at such a byte with nom's *streaming* combinators: at the end of the text fed so far,
//! a proper prefix of a marker is `Incomplete`, which is what tells the driver to hold those
//! few bytes back until the next chunk.

use memchr::{memchr, memchr2, memchr3};
use nom::IResult;

/// What the text at a possible marker start is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<M> {
    /// A whole marker of `len` bytes.
    Marker(M, usize),
    /// The text ends with a proper prefix of a marker: more input decides.
    Incomplete,
    /// Not a marker.
    NoMatch,
}

impl<M> Scan<M> {
    /// The answer of a nom streaming parser run at the start of `input`.
    pub(crate) fn from_result(input: &str, result: IResult<&str, M>) -> Self {
        match result {
            Ok((rest, marker)) => Scan::Marker(marker, input.len() - rest.len()),
            Err(nom::Err::Incomplete(_)) => Scan::Incomplete,
            Err(_) => Scan::NoMatch,
        }
    }
}

/// A set of markers: the (ASCII) bytes they start with, and the recognizer.
pub(crate) trait MarkerSet {
    type Marker: Copy + PartialEq + std::fmt::Debug;
    /// The bytes a marker of the set can start with (one to three for a fast search).
    const STARTS: &'static [u8];
    /// Recognizes a marker at the start of `input`, which starts with one of `STARTS`.
    fn scan(input: &str) -> Scan<Self::Marker>;
}

/// The position of the first byte of `haystack` that is one of `needles`.
pub(crate) fn find_byte(needles: &[u8], haystack: &[u8]) -> Option<usize> {
    match *needles {
        [a] => memchr(a, haystack),
        [a, b] => memchr2(a, b, haystack),
        [a, b, c] => memchr3(a, b, c, haystack),
        _ => haystack.iter().position(|byte| needles.contains(byte)),
    }
}

/// The next marker in `input[start..]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<M> {
    /// A marker the caller accepts, at `at`, `len` bytes long.
    Marker { at: usize, marker: M, len: usize },
    /// The text from `at` may start a marker: more input decides.
    NeedInput(usize),
    /// No marker up to the end of the input.
    End,
}

/// Finds the next marker of `G` at or after `start` that `accept` takes; markers it refuses
/// are text. At the end of the input (`eof`) a marker prefix is text too.
pub(crate) fn next_marker<G: MarkerSet>(
    input: &str,
    start: usize,
    eof: bool,
    mut accept: impl FnMut(G::Marker) -> bool,
) -> Next<G::Marker> {
    let bytes = input.as_bytes();
    let mut search = start;
    while let Some(found) = find_byte(G::STARTS, &bytes[search..]) {
        let at = search + found;
        match G::scan(&input[at..]) {
            Scan::Incomplete if !eof => return Next::NeedInput(at),
            Scan::Marker(marker, len) if accept(marker) => return Next::Marker { at, marker, len },
            Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
        }
        search = at + 1;
    }
    Next::End
}

/// The length of the marker of `G` known to be at `input[at..]`.
pub(crate) fn marker_len<G: MarkerSet>(input: &str, at: usize) -> usize {
    match G::scan(&input[at..]) {
        Scan::Marker(_, len) => len,
        Scan::Incomplete | Scan::NoMatch => unreachable!("a marker was found at this position"),
    }
}

/// What [`next_marker_or`] found first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NextOr<M> {
    /// The stop byte, at `at`.
    Stop(usize),
    Next(Next<M>),
}

/// Like [`next_marker`], but also stops at the first `stop` byte (a `>` closing a name).
pub(crate) fn next_marker_or<G: MarkerSet>(
    input: &str,
    start: usize,
    eof: bool,
    stop: u8,
    mut accept: impl FnMut(G::Marker) -> bool,
) -> NextOr<G::Marker> {
    let mut needles = [stop; 4];
    needles[1..=G::STARTS.len()].copy_from_slice(G::STARTS);
    let needles = &needles[..=G::STARTS.len()];
    let bytes = input.as_bytes();
    let mut search = start;
    while let Some(found) = find_byte(needles, &bytes[search..]) {
        let at = search + found;
        if bytes[at] == stop {
            return NextOr::Stop(at);
        }
        match G::scan(&input[at..]) {
            Scan::Incomplete if !eof => return NextOr::Next(Next::NeedInput(at)),
            Scan::Marker(marker, len) if accept(marker) => {
                return NextOr::Next(Next::Marker { at, marker, len });
            }
            Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => {}
        }
        search = at + 1;
    }
    NextOr::Next(Next::End)
}

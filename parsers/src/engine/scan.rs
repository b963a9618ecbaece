//! Finding markers. A format lists the bytes its markers can start with and recognizes a
//! marker at such a byte with nom's *streaming* combinators: at the end of the text fed so far,
//! a proper prefix of a marker is `Incomplete`, which is what tells the driver to hold those
//! few bytes back until the next chunk.

use memchr::{memchr, memchr2, memchr3};
use nom::IResult;

use crate::engine::driver::{Chunk, Step};

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
    #[inline]
    pub(crate) fn from_result(input: &str, result: IResult<&str, M>) -> Self {
        match result {
            Ok((rest, marker)) => Scan::Marker(marker, input.len() - rest.len()),
            Err(nom::Err::Incomplete(_)) => Scan::Incomplete,
            Err(_) => Scan::NoMatch,
        }
    }
}

/// A set of markers: the (ASCII) bytes they start with, their spellings, and the recognizer.
pub(crate) trait MarkerSet {
    type Marker: Copy + PartialEq + std::fmt::Debug;
    /// The bytes a marker of the set can start with (one to three for a fast search).
    const STARTS: &'static [u8];
    /// Every spelling the recognizer accepts (each starts with one of `STARTS`).
    const SPELLINGS: &'static [&'static str];
    /// The second bytes of the spellings: text whose second byte is none of them is no
    /// marker, which spares running the recognizer at every `<` of ordinary text.
    const SECOND_BYTES: [bool; 256] = second_bytes(Self::SPELLINGS);

    /// Recognizes a marker at the start of `input` with the set's nom grammar.
    fn recognize(input: &str) -> Scan<Self::Marker>;

    /// Recognizes a marker at the start of `input`, which starts with one of `STARTS`.
    #[inline]
    fn scan(input: &str) -> Scan<Self::Marker> {
        match input.as_bytes().get(1) {
            Some(&byte) if !Self::SECOND_BYTES[byte as usize] => Scan::NoMatch,
            _ => Self::recognize(input),
        }
    }
}

const fn second_bytes(spellings: &[&str]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut i = 0;
    while i < spellings.len() {
        let bytes = spellings[i].as_bytes();
        if bytes.len() > 1 {
            table[bytes[1] as usize] = true;
        }
        i += 1;
    }
    table
}

/// Checks, for a marker set's tests, that every spelling is recognized whole, that every
/// proper prefix of one is incomplete, and that no spelling begins another: text handed back
/// to be parsed again ends in a whole marker, which must not wait for more input.
#[cfg(test)]
pub(crate) fn check_spellings<G: MarkerSet>() {
    for spelling in G::SPELLINGS {
        let longer = G::SPELLINGS
            .iter()
            .find(|other| other.len() > spelling.len() && other.starts_with(spelling));
        assert_eq!(longer, None, "{spelling:?} begins another spelling");
        assert!(
            matches!(G::scan(spelling), Scan::Marker(_, len) if len == spelling.len()),
            "{spelling:?} is not recognized whole"
        );
        for (cut, _) in spelling.char_indices().skip(1) {
            assert_eq!(G::scan(&spelling[..cut]), Scan::Incomplete, "{:?}", &spelling[..cut]);
        }
    }
}

/// The position of the first byte of `haystack` that is one of `needles`.
#[inline]
pub(crate) fn find_byte(needles: &[u8], haystack: &[u8]) -> Option<usize> {
    match *needles {
        [a] => memchr(a, haystack),
        [a, b] => memchr2(a, b, haystack),
        [a, b, c] => memchr3(a, b, c, haystack),
        _ => haystack.iter().position(|byte| needles.contains(byte)),
    }
}

/// The length of the marker of `G` known to be at `input[at..]`.
pub(crate) fn marker_len<G: MarkerSet>(input: &str, at: usize) -> usize {
    match G::scan(&input[at..]) {
        Scan::Marker(_, len) => len,
        Scan::Incomplete | Scan::NoMatch => unreachable!("a marker was found at this position"),
    }
}

/// What [`read_to_marker`] found.
#[derive(Debug)]
pub(crate) enum Found<M> {
    /// A marker the caller accepts, at `at`, `len` bytes long; the text before it was taken.
    Marker { at: usize, marker: M, len: usize },
    /// The stop byte asked for (see [`read_to_marker_or`]), at `at`; the text before it was
    /// taken.
    Stop(usize),
    /// No such marker: the text up to where more input is needed, or to the end, was taken,
    /// and the step ends so.
    Done(Step),
}

impl<M> Found<M> {
    /// Where the text taken ends.
    pub(crate) fn taken_to(&self) -> usize {
        match self {
            Found::Marker { at, .. } | Found::Stop(at) => *at,
            Found::Done(step) => step.position(),
        }
    }

    /// The end of the step, when no marker was found.
    pub(crate) fn step(self) -> Step {
        match self {
            Found::Done(step) => step,
            Found::Marker { at, .. } | Found::Stop(at) => Step::Continue(at),
        }
    }
}

/// Hands the text of `chunk` from `start` up to the next marker of `G` that `accept` takes
/// to `take` (with the text's absolute offset): the common step of every state that reads
/// text until a marker.
pub(crate) fn read_to_marker<G: MarkerSet>(
    chunk: &Chunk<'_>,
    start: usize,
    accept: impl FnMut(G::Marker) -> bool,
    take: impl FnMut(&str, usize),
) -> Found<G::Marker> {
    read_to::<G>(chunk, start, None, accept, take)
}

/// Like [`read_to_marker`], but also stops at the first `stop` byte (a `>` closing a name).
pub(crate) fn read_to_marker_or<G: MarkerSet>(
    chunk: &Chunk<'_>,
    start: usize,
    stop: u8,
    accept: impl FnMut(G::Marker) -> bool,
    take: impl FnMut(&str, usize),
) -> Found<G::Marker> {
    read_to::<G>(chunk, start, Some(stop), accept, take)
}

fn read_to<G: MarkerSet>(
    chunk: &Chunk<'_>,
    start: usize,
    stop: Option<u8>,
    mut accept: impl FnMut(G::Marker) -> bool,
    mut take: impl FnMut(&str, usize),
) -> Found<G::Marker> {
    let input = chunk.text;
    let bytes = input.as_bytes();
    let mut needles = [0; 4];
    needles[..G::STARTS.len()].copy_from_slice(G::STARTS);
    let count = match stop {
        Some(stop) => {
            needles[G::STARTS.len()] = stop;
            G::STARTS.len() + 1
        }
        None => G::STARTS.len(),
    };
    let mut search = start;
    let found = loop {
        let Some(found) = find_byte(&needles[..count], &bytes[search..]) else {
            take(&input[start..], chunk.base + start);
            return Found::Done(Step::Continue(input.len()));
        };
        let at = search + found;
        if Some(bytes[at]) == stop {
            break Found::Stop(at);
        }
        match G::scan(&input[at..]) {
            Scan::Incomplete if !chunk.eof => break Found::Done(Step::NeedInput(at)),
            Scan::Marker(marker, len) if accept(marker) => break Found::Marker { at, marker, len },
            Scan::Incomplete | Scan::Marker(..) | Scan::NoMatch => search = at + 1,
        }
    };
    let end = match found {
        Found::Marker { at, .. } | Found::Stop(at) | Found::Done(Step::NeedInput(at)) => at,
        Found::Done(_) => input.len(),
    };
    take(&input[start..end], chunk.base + start);
    found
}

//! The framing shared by every connection kind: find the line end with
//! memchr, check limits, split the line (nom for the verb and free text, one pass for the arguments), locate bodies and blocks.

use std::ops::Range;

use bytes::Bytes;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::all_consuming;
use nom::sequence::preceded;
use nom::IResult;

use crate::error::{DecodeError, Error};
use crate::limits::{Limits, MAX_ARGS};
pub(crate) use crate::verbs::Shape;
use crate::words::{self, Spaces};

/// Where one part of a frame lies, relative to the frame start. Offsets
/// are `u32` (a frame is at most a block of `MAX_FARM_SERVERS` lines of
/// `MAX_LINE` bytes, or one line and `MAX_BODY`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    fn new(r: Range<usize>) -> Span {
        Span { start: r.start as u32, end: r.end as u32 }
    }

    /// The span as a range to index with.
    pub(crate) fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One decoded line: where its verb and its arguments lie, relative to the
/// frame start. A few words however many arguments a line has, so that
/// scanning fills in and moves nothing large.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Line {
    pub(crate) verb: Span,
    /// The arguments, each with its leading space (` a b c`; empty: none).
    pub(crate) args: Span,
    /// Where the first arguments start.
    spaces: Spaces,
    /// How many arguments.
    pub(crate) nargs: usize,
    /// The free text of a `Trailing` verb (empty for other shapes).
    pub(crate) trailing: Span,
}

impl Line {
    /// The arguments of this line in `frame`, in order, all of them.
    pub(crate) fn words<'a>(&self, frame: &'a [u8]) -> impl Iterator<Item = &'a [u8]> {
        frame[self.args.range()].split(|&b| b == b' ').skip(1)
    }

    /// Argument `i` (the first `MAX_ARGS` are addressable).
    #[inline]
    pub(crate) fn arg<'a>(&self, frame: &'a [u8], i: usize) -> Option<&'a [u8]> {
        self.arg_range(frame, i).map(|r| &frame[r])
    }

    /// Where argument `i` lies, if it is addressable.
    #[inline]
    pub(crate) fn arg_range(&self, frame: &[u8], i: usize) -> Option<Range<usize>> {
        if i >= self.nargs.min(MAX_ARGS) {
            return None;
        }
        let args = &frame[self.args.range()];
        let r = self.spaces.arg(args, i).or_else(|| {
            // Past the masked bytes: walk the line.
            let mut at = 0;
            for w in args.split(|&b| b == b' ').skip(1).take(i) {
                at += w.len() + 1;
            }
            let len = memchr::memchr(b' ', &args[at + 1..]).unwrap_or(args.len() - at - 1);
            Some(at + 1..at + 1 + len)
        })?;
        let base = self.args.start as usize;
        Some(base + r.start..base + r.end)
    }

    /// The last argument (a body frame's length).
    fn last<'a>(&self, frame: &'a [u8]) -> Option<&'a [u8]> {
        let args = &frame[self.args.range()];
        let at = self.spaces.last(args).or_else(|| memchr::memrchr(b' ', args).map(|i| i + 1))?;
        Some(&args[at..])
    }
}

/// Where everything of one frame lies, relative to its start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) head: Line,
    pub(crate) body: Option<Span>,
    /// The lines of a block (`FARM_INFO`'s `SERVER` lines).
    pub(crate) block: Vec<Line>,
    /// Bytes the whole frame occupies.
    pub(crate) total: usize,
}

/// A frame type of one direction of one connection kind.
pub(crate) trait FrameKind {
    /// Which kind of connection receives these frames, for errors.
    const LINK: &'static str;
    /// The shape of a verb, or `None` if this kind does not have it.
    fn shape(verb: &[u8]) -> Option<Shape>;
}

fn is_verb_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'_'
}

fn is_text_byte(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

fn verb(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take_while1(is_verb_byte)(i)
}

fn trailing(i: &[u8]) -> IResult<&[u8], &[u8]> {
    all_consuming(preceded(tag(" "), take_while(is_text_byte)))(i)
}

/// The arguments of a line, checked and located (`words::split`).
fn check_args(args: &[u8], base: usize, lay: &mut Line) -> Result<(), Error> {
    lay.nargs = words::split(args, &mut lay.spaces)
        .ok_or(Error::BadFrame("arguments are separated by one space and are printable ASCII"))?;
    lay.args = Span::new(base..base + args.len());
    Ok(())
}

/// Splits one line (without its line end) into verb and arguments, into
/// `lay` (filled in place: a layout returned by value was copied on every
/// return, a measurable share of decoding). `at` is the line's offset in
/// the frame.
#[inline]
pub(crate) fn split_line<K: FrameKind>(line: &[u8], at: usize, lay: &mut Line) -> Result<Shape, Error> {
    let (rest, v) = verb(line).map_err(|_| Error::BadFrame("a line must start with an upper-case verb"))?;
    if !rest.is_empty() && rest[0] != b' ' {
        return Err(Error::BadFrame("a verb is upper-case letters and _ only"));
    }
    let shape = match K::shape(v) {
        Some(s) => s,
        None if crate::verbs::is_known(v) => {
            return Err(Error::WrongLink { verb: String::from_utf8_lossy(v).into_owned(), link: K::LINK })
        }
        None => return Err(Error::UnknownVerb(String::from_utf8_lossy(v).into_owned())),
    };
    let vend = at + v.len();
    lay.verb = Span::new(at..vend);
    let Shape::Trailing(fixed) = shape else {
        check_args(rest, vend, lay)?;
        return Ok(shape);
    };
    // `fixed` arguments, then one space and the free text (an `ERR` line).
    let text_at = memchr::memchr_iter(b' ', rest).nth(fixed);
    let args = &rest[..text_at.unwrap_or(rest.len())];
    check_args(args, vend, lay)?;
    let Some(text_at) = text_at.filter(|_| lay.nargs == fixed) else {
        return Err(Error::BadArgument("missing argument".into()));
    };
    let (_, t) = trailing(&rest[text_at..]).map_err(|_| Error::BadFrame("text must be printable ASCII"))?;
    if t.is_empty() {
        return Err(Error::BadArgument("missing text".into()));
    }
    lay.trailing = Span::new(at + line.len() - t.len()..at + line.len());
    Ok(shape)
}

/// Finds the next line end within the limit. `Ok(None)`: need more bytes.
/// Returns (content end, line length including its line end).
#[inline]
fn line_end(buf: &[u8], from: usize, limits: &Limits) -> Result<Option<(usize, usize)>, DecodeError> {
    let window = &buf[from..buf.len().min(from + limits.max_line)];
    match memchr::memchr(b'\n', window) {
        Some(i) => {
            let end = if i > 0 && window[i - 1] == b'\r' { i - 1 } else { i };
            Ok(Some((from + end, i + 1)))
        }
        None if window.len() >= limits.max_line => {
            Err(DecodeError::fatal(Error::LineTooLong { limit: limits.max_line }))
        }
        None => Ok(None),
    }
}

/// Parses a decimal argument: digits only, at most 20, in range of `T`.
pub(crate) fn number<T: TryFrom<u64>>(b: &[u8], what: &str) -> Result<T, Error> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadArgument(format!("{what} must be a decimal number")));
    }
    b.iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(|| Error::BadArgument(format!("{what} is out of range")))
}

/// Locates one complete frame at the start of `buf`, into `lay` (which
/// must be fresh): the body as text (empty when the frame has none), or
/// `Ok(None)` when more bytes are needed. The body is checked UTF-8 in one
/// SIMD pass (`simdutf8`; the standard library's check cost a quarter of
/// decoding a `MSG`).
#[inline]
pub(crate) fn scan<'a, K: FrameKind>(
    buf: &'a [u8],
    limits: &Limits,
    lay: &mut Layout,
) -> Result<Option<&'a str>, DecodeError> {
    let Some((end, len)) = line_end(buf, 0, limits)? else {
        return Ok(None);
    };
    let shape = split_line::<K>(&buf[..end], 0, &mut lay.head).map_err(|e| DecodeError::skip(e, len))?;
    lay.total = len;
    match shape {
        Shape::Line | Shape::Trailing(_) => {}
        Shape::Body => {
            let Some(digits) = lay.head.last(buf) else {
                return Err(DecodeError::skip(Error::BadArgument("missing body length".into()), len));
            };
            let n: usize = match number(digits, "body length") {
                Ok(n) => n,
                // All digits but beyond usize: far over any body limit.
                Err(_) if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => usize::MAX,
                Err(e) => return Err(DecodeError::skip(e, len)),
            };
            if n > limits.max_body {
                return Err(DecodeError::fatal(Error::BodyTooLarge { len: n, limit: limits.max_body }));
            }
            let body_end = len + n;
            let term = match buf.get(body_end..) {
                None | Some([]) => return Ok(None),
                Some([b'\n', ..]) => 1,
                Some([b'\r']) => return Ok(None),
                Some([b'\r', b'\n', ..]) => 2,
                Some(_) => return Err(DecodeError::fatal(Error::FramingLost)),
            };
            lay.body = Some(Span::new(len..body_end));
            lay.total = body_end + term;
            return match simdutf8::basic::from_utf8(&buf[len..body_end]) {
                Ok(text) => Ok(Some(text)),
                Err(_) => Err(DecodeError::skip(Error::BadUtf8, lay.total)),
            };
        }
        Shape::Block { count_arg, item_verb } => {
            let count: usize = lay
                .head
                .arg(buf, count_arg)
                .ok_or_else(|| Error::BadArgument("missing count".into()))
                .and_then(|c| number(c, "count"))
                .map_err(|e| DecodeError::skip(e, len))?;
            if count > limits.max_farm_servers {
                return Err(DecodeError::fatal(Error::BlockTooLarge { count, limit: limits.max_farm_servers }));
            }
            let mut at = len;
            for _ in 0..count {
                let Some((end, llen)) = line_end(buf, at, limits)? else {
                    return Ok(None);
                };
                let mut l = Line::default();
                match split_line::<K>(&buf[at..end], at, &mut l) {
                    Ok(Shape::Line) if &buf[l.verb.range()] == item_verb => lay.block.push(l),
                    _ => return Err(DecodeError::skip(Error::BadFrame("block shorter than its count"), at)),
                }
                at += llen;
            }
            lay.total = at;
        }
    }
    Ok(Some(""))
}

/// The pieces a typed frame is built from, borrowed from one frame's bytes.
pub(crate) struct Parts<'a> {
    pub(crate) bytes: &'a Bytes,
    pub(crate) lay: &'a Layout,
}

impl<'a> Parts<'a> {
    pub(crate) fn verb(&self) -> &'a [u8] {
        &self.bytes[self.lay.head.verb.range()]
    }

    /// Argument `i` of the head line, or a missing-argument error.
    pub(crate) fn arg(&self, i: usize) -> Result<&'a [u8], Error> {
        line_arg(self.bytes, &self.lay.head, i)
    }

    /// Argument `i` if present.
    pub(crate) fn opt_arg(&self, i: usize) -> Option<&'a [u8]> {
        line_arg(self.bytes, &self.lay.head, i).ok()
    }

    /// Requires at least `n` arguments (a body length counts as one).
    pub(crate) fn need(&self, n: usize) -> Result<(), Error> {
        if self.lay.head.nargs < n {
            return Err(Error::BadArgument(format!("{} needs {n} argument(s)", String::from_utf8_lossy(self.verb()))));
        }
        Ok(())
    }

    pub(crate) fn trailing(&self) -> &'a [u8] {
        &self.bytes[self.lay.head.trailing.range()]
    }

    /// The body, as a zero-copy slice of the frame.
    pub(crate) fn body(&self) -> Bytes {
        self.lay.body.map_or_else(Bytes::new, |r| self.bytes.slice(r.range()))
    }
}

/// Argument `i` of a line, or a missing-argument error.
pub(crate) fn line_arg<'a>(bytes: &'a [u8], l: &Line, i: usize) -> Result<&'a [u8], Error> {
    l.arg(bytes, i).ok_or_else(|| Error::BadArgument(format!("missing argument {}", i + 1)))
}

/// Decodes one frame from the start of `buf`: `Ok(Some((frame, used)))`,
/// `Ok(None)` when more bytes are needed, or an error saying how to go on.
pub(crate) fn decode<F, K: FrameKind>(
    buf: &Bytes,
    limits: &Limits,
    build: impl FnOnce(&Parts<'_>) -> Result<F, Error>,
) -> Result<Option<(F, usize)>, DecodeError> {
    let mut lay = Layout::default();
    if scan::<K>(buf, limits, &mut lay)?.is_none() {
        return Ok(None);
    }
    let parts = Parts { bytes: buf, lay: &lay };
    let frame = build(&parts).map_err(|e| DecodeError::skip(e, lay.total))?;
    Ok(Some((frame, lay.total)))
}

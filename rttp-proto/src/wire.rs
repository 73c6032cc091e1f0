//! The framing shared by every connection kind: find the line end with
//! memchr, check limits, split the line with nom, locate bodies and blocks.

use std::ops::Range;

use bytes::Bytes;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::combinator::all_consuming;
use nom::sequence::preceded;
use nom::IResult;

use crate::error::{DecodeError, Error};
use crate::limits::{Limits, MAX_ARGS};
use crate::names::is_arg_byte;
pub(crate) use crate::verbs::Shape;

/// The byte ranges of one decoded line, relative to the frame start.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineLayout {
    pub(crate) verb: Range<usize>,
    pub(crate) args: [Range<usize>; MAX_ARGS],
    pub(crate) nargs: usize,
    /// The last argument, even when more than `MAX_ARGS` were sent.
    pub(crate) last: Option<Range<usize>>,
    pub(crate) trailing: Option<Range<usize>>,
}

/// Where everything of one frame lies, relative to its start.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub(crate) head: LineLayout,
    pub(crate) body: Option<Range<usize>>,
    pub(crate) block: Vec<LineLayout>,
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

fn arg(i: &[u8]) -> IResult<&[u8], &[u8]> {
    preceded(tag(" "), take_while1(is_arg_byte))(i)
}

fn trailing(i: &[u8]) -> IResult<&[u8], &[u8]> {
    all_consuming(preceded(tag(" "), take_while(is_text_byte)))(i)
}

fn offset(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

/// Splits one line (without its line end) into verb and arguments.
/// `at` is the line's offset in the frame.
pub(crate) fn split_line<K: FrameKind>(line: &[u8], at: usize) -> Result<(LineLayout, Shape), Error> {
    let (mut rest, v) = verb(line).map_err(|_| Error::BadFrame("a line must start with an upper-case verb"))?;
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
    let shift = |r: Range<usize>| r.start + at..r.end + at;
    let mut lay = LineLayout { verb: shift(offset(line, v)), ..LineLayout::default() };
    let fixed = match shape {
        Shape::Trailing(n) => n,
        _ => usize::MAX,
    };
    while !rest.is_empty() && lay.nargs < fixed {
        let (r, a) =
            arg(rest).map_err(|_| Error::BadFrame("arguments are separated by one space and are printable ASCII"))?;
        let range = shift(offset(line, a));
        if lay.nargs < MAX_ARGS {
            lay.args[lay.nargs] = range.clone();
        }
        lay.nargs += 1;
        lay.last = Some(range);
        rest = r;
    }
    if fixed != usize::MAX {
        if lay.nargs < fixed || rest.is_empty() {
            return Err(Error::BadArgument("missing argument".into()));
        }
        let (_, t) = trailing(rest).map_err(|_| Error::BadFrame("text must be printable ASCII"))?;
        if t.is_empty() {
            return Err(Error::BadArgument("missing text".into()));
        }
        lay.trailing = Some(shift(offset(line, t)));
    }
    Ok((lay, shape))
}

/// Finds the next line end within the limit. `Ok(None)`: need more bytes.
/// Returns (content end, line length including its line end).
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

/// Parses a decimal argument.
pub(crate) fn number<T: std::str::FromStr>(b: &[u8], what: &str) -> Result<T, Error> {
    if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
        return Err(Error::BadArgument(format!("{what} must be a decimal number")));
    }
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::BadArgument(format!("{what} is out of range")))
}

/// Locates one complete frame at the start of `buf`.
pub(crate) fn scan<K: FrameKind>(buf: &[u8], limits: &Limits) -> Result<Option<Layout>, DecodeError> {
    let Some((end, len)) = line_end(buf, 0, limits)? else {
        return Ok(None);
    };
    let (head, shape) = split_line::<K>(&buf[..end], 0).map_err(|e| DecodeError::skip(e, len))?;
    let mut lay = Layout { head, total: len, ..Layout::default() };
    match shape {
        Shape::Line | Shape::Trailing(_) => {}
        Shape::Body => {
            let n_range = lay
                .head
                .last
                .clone()
                .ok_or_else(|| DecodeError::skip(Error::BadArgument("missing body length".into()), len))?;
            let digits = &buf[n_range];
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
            lay.body = Some(len..body_end);
            lay.total = body_end + term;
            if std::str::from_utf8(&buf[len..body_end]).is_err() {
                return Err(DecodeError::skip(Error::BadUtf8, lay.total));
            }
        }
        Shape::Block { count_arg, item_verb } => {
            let count_range = lay.head.args.get(count_arg).filter(|_| lay.head.nargs > count_arg);
            let count: usize = count_range
                .ok_or_else(|| Error::BadArgument("missing count".into()))
                .and_then(|r| number(&buf[r.clone()], "count"))
                .map_err(|e| DecodeError::skip(e, len))?;
            if count > limits.max_farm_servers {
                return Err(DecodeError::fatal(Error::BlockTooLarge { count, limit: limits.max_farm_servers }));
            }
            let mut at = len;
            for _ in 0..count {
                let Some((end, llen)) = line_end(buf, at, limits)? else {
                    return Ok(None);
                };
                let item = split_line::<K>(&buf[at..end], at);
                match item {
                    Ok((l, Shape::Line)) if &buf[l.verb.clone()] == item_verb => lay.block.push(l),
                    _ => return Err(DecodeError::skip(Error::BadFrame("block shorter than its count"), at)),
                }
                at += llen;
            }
            lay.total = at;
        }
    }
    Ok(Some(lay))
}

/// The pieces a typed frame is built from, borrowed from one frame's bytes.
pub(crate) struct Parts<'a> {
    pub(crate) bytes: &'a Bytes,
    pub(crate) lay: &'a Layout,
}

impl<'a> Parts<'a> {
    pub(crate) fn verb(&self) -> &'a [u8] {
        &self.bytes[self.lay.head.verb.clone()]
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
        self.lay.head.trailing.clone().map_or(&[][..], |r| &self.bytes[r])
    }

    /// The body, as a zero-copy slice of the frame.
    pub(crate) fn body(&self) -> Bytes {
        self.lay.body.clone().map_or_else(Bytes::new, |r| self.bytes.slice(r))
    }
}

pub(crate) fn line_arg<'a>(bytes: &'a [u8], l: &LineLayout, i: usize) -> Result<&'a [u8], Error> {
    if i < l.nargs.min(MAX_ARGS) {
        Ok(&bytes[l.args[i].clone()])
    } else {
        Err(Error::BadArgument(format!("missing argument {}", i + 1)))
    }
}

/// Decodes one frame from the start of `buf`: `Ok(Some((frame, used)))`,
/// `Ok(None)` when more bytes are needed, or an error saying how to go on.
pub(crate) fn decode<F, K: FrameKind>(
    buf: &Bytes,
    limits: &Limits,
    build: impl FnOnce(&Parts<'_>) -> Result<F, Error>,
) -> Result<Option<(F, usize)>, DecodeError> {
    let Some(lay) = scan::<K>(buf, limits)? else {
        return Ok(None);
    };
    let parts = Parts { bytes: buf, lay: &lay };
    let frame = build(&parts).map_err(|e| DecodeError::skip(e, lay.total))?;
    Ok(Some((frame, lay.total)))
}

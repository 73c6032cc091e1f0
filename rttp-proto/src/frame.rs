//! The [`Frame`] trait every frame type implements, and encoding helpers.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use crate::limits::Limits;
use crate::wire::{self, FrameKind, Parts};

/// A frame of one direction of one connection kind.
pub trait Frame: Sized {
    /// Decodes one frame from the start of `buf`: the frame and the bytes
    /// it used, `Ok(None)` when more bytes are needed, or an error that
    /// says whether decoding can continue ([`DecodeError::skip`]).
    /// Bodies are zero-copy slices of `buf`.
    fn decode(buf: &Bytes, limits: &Limits) -> Result<Option<(Self, usize)>, DecodeError>;

    /// Decodes one frame and removes its bytes from `buf`. On a
    /// recoverable error the bad frame's bytes are removed too.
    fn decode_buf(buf: &mut BytesMut, limits: &Limits) -> Result<Option<Self>, DecodeError>;

    /// Appends the frame's exact wire bytes to `dst`.
    fn encode(&self, dst: &mut BytesMut);

    /// The frame's verb.
    fn verb(&self) -> &'static str;

    /// The frame encoded on its own, ready to share between many writers.
    fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

/// Implements [`Frame`] for a type that has `FrameKind` and a `build`.
macro_rules! impl_frame {
    ($t:ty) => {
        impl $crate::frame::Frame for $t {
            fn decode(
                buf: &bytes::Bytes,
                limits: &$crate::limits::Limits,
            ) -> Result<Option<(Self, usize)>, $crate::error::DecodeError> {
                $crate::frame::decode_with::<$t>(buf, limits)
            }

            fn decode_buf(
                buf: &mut bytes::BytesMut,
                limits: &$crate::limits::Limits,
            ) -> Result<Option<Self>, $crate::error::DecodeError> {
                $crate::frame::decode_buf_with::<$t>(buf, limits)
            }

            fn encode(&self, dst: &mut bytes::BytesMut) {
                <$t>::encode_into(self, dst)
            }

            fn verb(&self) -> &'static str {
                <$t>::verb_name(self)
            }
        }
    };
}
pub(crate) use impl_frame;

/// Builds a typed frame from its located parts.
pub(crate) trait Build: FrameKind + Sized {
    fn build(parts: &Parts<'_>) -> Result<Self, crate::error::Error>;
}

pub(crate) fn decode_with<F: Build>(buf: &Bytes, limits: &Limits) -> Result<Option<(F, usize)>, DecodeError> {
    wire::decode::<F, F>(buf, limits, F::build)
}

pub(crate) fn decode_buf_with<F: Build>(buf: &mut BytesMut, limits: &Limits) -> Result<Option<F>, DecodeError> {
    let mut lay = wire::Layout::default();
    match wire::scan::<F>(buf, limits, &mut lay) {
        Ok(None) => Ok(None),
        Ok(Some(_)) => {
            let bytes = buf.split_to(lay.total).freeze();
            let parts = Parts { bytes: &bytes, lay: &lay };
            F::build(&parts).map(Some).map_err(|e| DecodeError { error: e, skip: Some(0) })
        }
        Err(e) => {
            if let Some(n) = e.skip {
                let _ = buf.split_to(n);
            }
            // The bytes are gone from the buffer: nothing more to skip.
            Err(DecodeError { skip: e.skip.map(|_| 0), ..e })
        }
    }
}

/// Writes `VERB arg arg ...` without the line end.
pub(crate) fn put_words(dst: &mut BytesMut, verb: &str, args: &[&str]) {
    let len = verb.len() + args.iter().map(|a| a.len() + 1).sum::<usize>() + 2;
    dst.reserve(len);
    dst.put_slice(verb.as_bytes());
    for a in args {
        dst.put_u8(b' ');
        dst.put_slice(a.as_bytes());
    }
}

/// Writes a whole line: `VERB arg ...\r\n`.
pub(crate) fn put_line(dst: &mut BytesMut, verb: &str, args: &[&str]) {
    put_words(dst, verb, args);
    dst.put_slice(b"\r\n");
}

/// A decimal number formatted without allocating.
pub(crate) struct Num([u8; 20], usize);

impl Num {
    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII digits were written.
        std::str::from_utf8(&self.0[20 - self.1..]).unwrap_or("0")
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0[20 - self.1..]
    }
}

pub(crate) fn itoa_buf(mut v: u64) -> Num {
    let mut b = [0u8; 20];
    let mut i = 20;
    loop {
        i -= 1;
        b[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    Num(b, 20 - i)
}

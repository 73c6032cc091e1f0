//! A borrowed frame view: a frame located in a read buffer, with accessors
//! instead of owned fields. Decoding a view finds the line end, checks the
//! limits, the verb, every argument's characters and the body's UTF-8 (all
//! that typed decoding checks about framing) and records where each part
//! lies; it copies nothing, allocates nothing and touches no reference
//! count. A reader that only needs a few fields (a load generator counting
//! `MSG`s, a relay looking at a room) reads them from the view; one that
//! needs the typed frame asks the view for it.
//!
//! The view does not check what the arguments mean (that a room name is a
//! valid [`Room`](crate::Room), that a number is in range): [`FrameView::frame`]
//! does, as [`Frame::decode`] does.

use std::marker::PhantomData;

use bytes::Bytes;

use crate::error::{DecodeError, Error};
use crate::frame::Build;
use crate::limits::Limits;
use crate::wire::{self, Layout, Parts};
use crate::{ClientFrame, PeerFrame, ServerFrame};

/// One complete frame of kind `F` at the start of a borrowed buffer.
///
/// ```
/// use rttp_proto::{FrameView, Limits, ServerFrame};
///
/// let wire = b"MSG #rust s1:1:7 alice 2\r\nhi\r\nMSG #ru";
/// let v = FrameView::<ServerFrame>::decode(wire, &Limits::default())?.unwrap();
/// assert_eq!((v.verb(), v.arg(0), v.arg(2), v.text()), (&b"MSG"[..], Some(&b"#rust"[..]), Some(&b"alice"[..]), Some("hi")));
/// assert_eq!(v.len(), 30);
/// assert!(FrameView::<ServerFrame>::decode(&wire[v.len()..], &Limits::default())?.is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct FrameView<'a, F> {
    bytes: &'a [u8],
    /// The body, checked UTF-8 (empty when the frame has none).
    body: &'a str,
    lay: Layout,
    kind: PhantomData<fn() -> F>,
}

impl<'a, F> FrameView<'a, F> {
    /// The bytes the frame occupies, line ends included.
    #[inline]
    pub fn len(&self) -> usize {
        self.lay.total
    }

    /// Always false: a frame has at least a verb and a line end.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The frame's bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The verb (upper-case ASCII letters and `_`).
    #[inline]
    pub fn verb(&self) -> &'a [u8] {
        &self.bytes[self.lay.head.verb.range()]
    }

    /// How many arguments the first line has (a body's length counts as
    /// one; so do arguments past [`MAX_ARGS`](crate::MAX_ARGS), which are checked but not
    /// addressable).
    pub fn nargs(&self) -> usize {
        self.lay.head.nargs
    }

    /// Argument `i` of the first line (printable ASCII, no space), if it
    /// was sent and is among the first [`MAX_ARGS`](crate::MAX_ARGS).
    /// Bytes, not text: a reader that wants a `&str` converts the few
    /// arguments it reads (checking them all as UTF-8 up front cost more
    /// than the rest of a view's decoding).
    #[inline]
    pub fn arg(&self, i: usize) -> Option<&'a [u8]> {
        self.lay.head.arg(self.bytes, i)
    }

    /// The body of a body frame (`MSG`, `SAY`, `RELAY`, ...), checked UTF-8.
    #[inline]
    pub fn text(&self) -> Option<&'a str> {
        self.lay.body.map(|_| self.body)
    }

    /// The free text at the end of an `ERR` line (printable ASCII).
    pub fn trailing(&self) -> Option<&'a [u8]> {
        let t = &self.bytes[self.lay.head.trailing.range()];
        (!t.is_empty()).then_some(t)
    }
}

/// Decoding and the typed frame, for each frame kind (the kinds' decoding
/// traits are the crate's own, so each kind gets its own `impl`).
macro_rules! view_of {
    ($($t:ty),*) => {$(
        impl<'a> FrameView<'a, $t> {
            /// Locates one frame at the start of `buf`: the view, `Ok(None)` when
            /// more bytes are needed, or an error that says whether decoding can
            /// go on ([`DecodeError::skip`]), exactly as [`Frame::decode`] would.
            #[inline]
            pub fn decode(buf: &'a [u8], limits: &Limits) -> Result<Option<FrameView<'a, $t>>, DecodeError> {
                let mut lay = Layout::default();
                Ok(wire::scan::<$t>(buf, limits, &mut lay)?
                    .map(|body| FrameView { bytes: &buf[..lay.total], body, lay, kind: PhantomData }))
            }

            /// The typed frame; its body is copied once into a buffer of its own.
            pub fn frame(&self) -> Result<$t, Error> {
                <$t as Build>::build(&Parts { bytes: &Bytes::copy_from_slice(self.bytes), lay: &self.lay })
            }

            /// The typed frame, its body a zero-copy slice of `shared`: the same
            /// bytes as [`as_bytes`](Self::as_bytes), held by a shared buffer (for
            /// example `read_buf.split_to(view.len()).freeze()`).
            ///
            /// # Errors
            /// [`Error::BadFrame`] when `shared` is not this frame's bytes.
            pub fn frame_in(&self, shared: &Bytes) -> Result<$t, Error> {
                let same = shared.as_ptr() == self.bytes.as_ptr() && shared.len() == self.bytes.len();
                if !same && shared[..] != *self.bytes {
                    return Err(Error::BadFrame("frame_in needs the view's own bytes"));
                }
                <$t as Build>::build(&Parts { bytes: shared, lay: &self.lay })
            }
        }
    )*};
}
view_of!(ClientFrame, ServerFrame, PeerFrame);

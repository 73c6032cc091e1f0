//! The declarative frame tables: each frame kind declares its verbs once, in
//! a [`frames!`] table (the variant, its verb, its shape, its fields in wire
//! order), and the macro writes the enum, the verb names, the verb table the
//! decoder scans with, the encoder and the decoder. Adding a regular verb is
//! one line in one table. Each field's type says how it is written and read
//! ([`Field`]): a name or a number is one argument, an `Option` of one is an
//! optional last argument, a `bool` is a flag word (the field's name), a
//! [`Text`] is the body. The few irregular frames (a block, a free-text
//! reason, a list, a boxed state) are `custom` entries of the same table,
//! with their encoding and decoding written by hand beside it.

use bytes::{BufMut, BytesMut};

use crate::error::Error;
use crate::frame::itoa_buf;
use crate::names::{Credential, Group, HostPort, Nick, Room, ServerId, Status, Text, Token};
use crate::wire::{number, Parts};

/// Writes one frame: the verb, then each field's words, then the line end
/// (a body field writes its length, the line end and the body itself).
pub(crate) struct Words<'a> {
    dst: &'a mut BytesMut,
    ended: bool,
}

impl<'a> Words<'a> {
    pub(crate) fn start(dst: &'a mut BytesMut, verb: &str) -> Words<'a> {
        dst.put_slice(verb.as_bytes());
        Words { dst, ended: false }
    }

    /// One argument.
    pub(crate) fn word(&mut self, w: &str) {
        self.dst.put_u8(b' ');
        self.dst.put_slice(w.as_bytes());
    }

    /// The body's length, the line end and the body: the frame is complete.
    fn body(&mut self, body: &[u8]) {
        let n = itoa_buf(body.len() as u64);
        let n = n.as_bytes();
        self.dst.reserve(n.len() + body.len() + 5);
        self.dst.put_u8(b' ');
        self.dst.put_slice(n);
        self.dst.put_slice(b"\r\n");
        self.dst.put_slice(body);
        self.dst.put_slice(b"\r\n");
        self.ended = true;
    }

    pub(crate) fn finish(self) {
        if !self.ended {
            self.dst.put_slice(b"\r\n");
        }
    }
}

/// Reads a frame's fields in order from its located parts.
pub(crate) struct Args<'p, 'a> {
    parts: &'p Parts<'a>,
    next: usize,
}

impl<'p, 'a> Args<'p, 'a> {
    pub(crate) fn new(parts: &'p Parts<'a>) -> Args<'p, 'a> {
        Args { parts, next: 0 }
    }

    fn word(&mut self) -> Result<&'a [u8], Error> {
        let w = self.parts.arg(self.next)?;
        self.next += 1;
        Ok(w)
    }

    /// An optional argument; in a body frame, never the body's length
    /// (the last argument), so an optional field may precede the body.
    fn opt_word(&mut self) -> Option<&'a [u8]> {
        let words = self.parts.lay.head.nargs - usize::from(self.parts.lay.body.is_some());
        let w = if self.next < words { self.parts.opt_arg(self.next) } else { None };
        // Only a word taken moves on: the body's count of words stays right.
        self.next += usize::from(w.is_some());
        w
    }
}

/// How one field is written and read.
pub(crate) trait Field: Sized {
    /// Writes it; `name` is the field's name.
    fn put(&self, name: &'static str, w: &mut Words<'_>);
    /// Reads it; `name` is the field's name, for errors.
    fn take(r: &mut Args<'_, '_>, name: &'static str) -> Result<Self, Error>;
}

/// A field that is exactly one argument.
pub(crate) trait Word: Sized {
    fn put_word(&self, w: &mut Words<'_>);
    fn from_word(b: &[u8], name: &'static str) -> Result<Self, Error>;
}

impl<T: Word> Field for T {
    fn put(&self, _: &'static str, w: &mut Words<'_>) {
        self.put_word(w)
    }
    fn take(r: &mut Args<'_, '_>, name: &'static str) -> Result<T, Error> {
        T::from_word(r.word()?, name)
    }
}

/// An optional last argument.
impl<T: Word> Field for Option<T> {
    fn put(&self, _: &'static str, w: &mut Words<'_>) {
        if let Some(v) = self {
            v.put_word(w)
        }
    }
    fn take(r: &mut Args<'_, '_>, name: &'static str) -> Result<Option<T>, Error> {
        r.opt_word().map(|b| T::from_word(b, name)).transpose()
    }
}

/// A flag: the field's name as a word when true (`FARM watch`); any other
/// word, or none, is false.
impl Field for bool {
    fn put(&self, name: &'static str, w: &mut Words<'_>) {
        if *self {
            w.word(name)
        }
    }
    fn take(r: &mut Args<'_, '_>, name: &'static str) -> Result<bool, Error> {
        Ok(r.opt_word() == Some(name.as_bytes()))
    }
}

/// The body: its length is the last argument (counted by the decoder).
impl Field for Text {
    fn put(&self, _: &'static str, w: &mut Words<'_>) {
        w.body(self.bytes())
    }
    fn take(r: &mut Args<'_, '_>, _: &'static str) -> Result<Text, Error> {
        // The words before it, and the length.
        r.parts.need(r.next + 1)?;
        Text::from_bytes(r.parts.body())
    }
}

macro_rules! name_words {
    ($($t:ty),*) => {$(
        impl Word for $t {
            fn put_word(&self, w: &mut Words<'_>) {
                w.word(self.as_str())
            }
            fn from_word(b: &[u8], _: &'static str) -> Result<$t, Error> {
                <$t>::from_bytes(b)
            }
        }
    )*};
}
name_words!(Room, Nick, Token, ServerId, HostPort, Group, Status, Credential);

macro_rules! number_words {
    ($($t:ty),*) => {$(
        impl Word for $t {
            fn put_word(&self, w: &mut Words<'_>) {
                w.word(itoa_buf(u64::from(*self)).as_str())
            }
            fn from_word(b: &[u8], name: &'static str) -> Result<$t, Error> {
                number(b, name)
            }
        }
    )*};
}
number_words!(u16, u32, u64);

/// Declares a frame kind: its enum, verb table, encoder and decoder.
///
/// ```text
/// frames! {
///     /// docs
///     pub enum ClientFrame: CLIENT, "client-to-server" {
///         /// docs
///         Say = "SAY" Body { room: Room, text: Text },
///         ...
///     }
///     custom {                      // encoded and built by hand
///         FarmInfo(FarmInfo) = "FARM_INFO" Shape::Block { .. },
///     }
///     lines { "SERVER" Shape::Line }   // verbs with no frame of their own
///     by encode_custom, build_custom;
/// }
/// ```
macro_rules! frames {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident: $table:ident, $link:literal {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = $verb:literal $shape:ident $({
                    $( $(#[$fmeta:meta])* $f:ident: $ft:ty ),* $(,)?
                })?
            ),* $(,)?
        }
        custom {
            $( $(#[$cmeta:meta])* $cvariant:ident $cdef:tt = $cverb:literal $cshape:expr ),* $(,)?
        }
        lines { $( $lverb:literal $lshape:expr ),* $(,)? }
        by $encode:ident, $build:ident;
    ) => {
        $(#[$meta])*
        pub enum $ty {
            $(
                $(#[$vmeta])*
                $variant $({ $( $(#[$fmeta])* $f: $ft ),* })?,
            )*
            $( $(#[$cmeta])* $cvariant $cdef, )*
        }

        /// The verbs of this kind and their shapes, regular verbs first (the
        /// hot ones lead each table).
        pub(crate) const $table: &[crate::verbs::Verb] = &[
            $( ($verb.as_bytes(), crate::verbs::Shape::$shape), )*
            $( ($cverb.as_bytes(), $cshape), )*
            $( ($lverb.as_bytes(), $lshape), )*
        ];

        impl $ty {
            fn verb_name(&self) -> &'static str {
                match self {
                    $( $ty::$variant { .. } => $verb, )*
                    $( $ty::$cvariant { .. } => $cverb, )*
                }
            }

            fn encode_into(&self, dst: &mut bytes::BytesMut) {
                match self {
                    $(
                        $ty::$variant $({ $($f),* })? => {
                            #[allow(unused_mut)]
                            let mut w = crate::table::Words::start(dst, $verb);
                            $( $( crate::table::Field::put($f, stringify!($f), &mut w); )* )?
                            w.finish();
                        }
                    )*
                    $( $ty::$cvariant { .. } => $encode(self, dst), )*
                }
            }
        }

        impl crate::wire::FrameKind for $ty {
            const LINK: &'static str = $link;
            fn shape(verb: &[u8]) -> Option<crate::verbs::Shape> {
                crate::verbs::shape($table, verb)
            }
        }

        impl crate::frame::Build for $ty {
            fn build(p: &crate::wire::Parts<'_>) -> Result<$ty, crate::error::Error> {
                let verb = p.verb();
                $(
                    if verb == $verb.as_bytes() {
                        #[allow(unused_mut, unused_variables)]
                        let mut r = crate::table::Args::new(p);
                        return Ok($ty::$variant $({
                            $( $f: <$ft as crate::table::Field>::take(&mut r, stringify!($f))? ),*
                        })?);
                    }
                )*
                $build(p)
            }
        }

        crate::frame::impl_frame!($ty);
    };
}
pub(crate) use frames;

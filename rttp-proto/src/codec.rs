//! `tokio_util::codec` adapters over the same decode and encode functions,
//! with the same limits (feature `codec`).

use std::marker::PhantomData;

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use crate::error::DecodeError;
use crate::frame::Frame;
use crate::limits::Limits;

/// Decodes frames of type `In`, encodes frames of type `Out`.
///
/// A recoverable decode error has already removed the bad frame from the
/// buffer; the caller may answer it and keep decoding.
#[derive(Debug)]
pub struct RttpCodec<In, Out> {
    limits: Limits,
    _kinds: PhantomData<fn(Out) -> In>,
}

impl<In, Out> RttpCodec<In, Out> {
    /// A codec with the given limits.
    pub fn new(limits: Limits) -> Self {
        RttpCodec { limits, _kinds: PhantomData }
    }
}

impl<In, Out> Default for RttpCodec<In, Out> {
    fn default() -> Self {
        RttpCodec::new(Limits::default())
    }
}

/// An I/O error or a protocol error, for the codec traits.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The stream failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The bytes were not a valid frame.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl<In: Frame, Out> Decoder for RttpCodec<In, Out> {
    type Item = In;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        Ok(In::decode_buf(src, &self.limits)?)
    }
}

impl<In, Out: Frame> Encoder<Out> for RttpCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        item.encode(dst);
        Ok(())
    }
}

/// The codec a server uses on a client connection.
pub type ServerCodec = RttpCodec<crate::ClientFrame, crate::ServerFrame>;
/// The codec a client uses.
pub type ClientCodec = RttpCodec<crate::ServerFrame, crate::ClientFrame>;
/// The codec on both ends of a peer link.
pub type PeerCodec = RttpCodec<crate::PeerFrame, crate::PeerFrame>;

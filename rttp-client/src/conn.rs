//! One client connection to one server: frames in and out, every wait bounded.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use rttp_proto::{ClientFrame, Frame, Limits, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// A connection to one server.
#[derive(Debug)]
pub struct Conn {
    /// The server's address.
    pub addr: SocketAddr,
    rd: Reader,
    wr: Writer,
}

/// The receiving half.
#[derive(Debug)]
pub struct Reader {
    addr: SocketAddr,
    rd: OwnedReadHalf,
    buf: BytesMut,
    limits: Limits,
}

/// The sending half.
#[derive(Debug)]
pub struct Writer {
    addr: SocketAddr,
    wr: OwnedWriteHalf,
    out: BytesMut,
}

impl Conn {
    /// Connects within `timeout`.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| Error::Timeout { addr })?
            .map_err(|source| Error::Io { addr, source })?;
        let _ = stream.set_nodelay(true);
        let (rd, wr) = stream.into_split();
        Ok(Conn {
            addr,
            rd: Reader { addr, rd, buf: BytesMut::new(), limits: Limits::default() },
            wr: Writer { addr, wr, out: BytesMut::new() },
        })
    }

    /// Sends one frame.
    pub async fn send(&mut self, f: &ClientFrame) -> Result<()> {
        self.wr.send(f).await
    }

    /// The next frame; `Err(Closed)` at end of stream.
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        self.rd.recv().await
    }

    /// The next frame within `d`.
    pub async fn recv_within(&mut self, d: Duration) -> Result<ServerFrame> {
        let addr = self.addr;
        tokio::time::timeout(d, self.recv()).await.map_err(|_| Error::Timeout { addr })?
    }

    /// Splits into halves, so that one task can read while another writes.
    pub fn split(self) -> (Reader, Writer) {
        (self.rd, self.wr)
    }
}

impl Reader {
    /// The next frame; `Err(Closed)` at end of stream.
    pub async fn recv(&mut self) -> Result<ServerFrame> {
        let addr = self.addr;
        loop {
            match ServerFrame::decode_buf(&mut self.buf, &self.limits) {
                Ok(Some(f)) => return Ok(f),
                Ok(None) => {}
                Err(e) => return Err(Error::Protocol { addr, reason: e.to_string() }),
            }
            match self.rd.read_buf(&mut self.buf).await {
                Ok(0) => return Err(Error::Closed { addr }),
                Ok(_) => {}
                Err(source) => return Err(Error::Io { addr, source }),
            }
        }
    }
}

impl Writer {
    /// Sends one frame.
    pub async fn send(&mut self, f: &ClientFrame) -> Result<()> {
        self.out.clear();
        f.encode(&mut self.out);
        let addr = self.addr;
        self.wr.write_all(&self.out).await.map_err(|source| Error::Io { addr, source })
    }
}

//! TLS on the client port, on rustls' unbuffered API: the session owns no
//! buffer between reads and writes. rustls' buffered connection keeps a
//! 4 KiB record buffer and its queues with every session for its whole
//! life; here the bytes live in buffers of the connection's own that are
//! empty (no allocation) while the session is idle: TLS input cut in the
//! middle of a record, encrypted output the socket did not take, and
//! plaintext a slice reader did not take. Writes are encrypted in a
//! per-thread scratch and go straight to the socket.
//!
//! The handshake runs on the same state machine ([`accept`]), so one
//! session's state is rustls' `UnbufferedServerConnection` from the first
//! byte to the last.

use std::future::Future;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, EncodeError};
use rustls::ServerConfig;
use tokio::net::TcpStream;

use super::transport::{ready_unless_buffered, Raw, Transport};

mod http;
#[cfg(test)]
mod tests;
mod write;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 4096;

/// Most TLS input held unprocessed: a handshake message may span records
/// (rustls accepts up to 64 KiB), a record is at most about 16.6 KiB. A
/// backstop: rustls refuses a larger handshake message and every complete
/// record is processed at once, so no client rustls accepts comes near it;
/// it bounds a session's input whatever a later rustls does.
const MAX_INCOMING: usize = 96 * 1024;

fn invalid(e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

/// Where rustls' state machine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drive {
    /// Every complete record is processed; application data may be written.
    Open,
    /// The handshake needs more input.
    Handshaking,
    /// The peer sent close_notify (or both did).
    Closed,
}

/// TLS over a TCP socket.
pub(crate) struct Tls {
    tcp: TcpStream,
    /// Boxed: the session state is large, and the connection's future holds this.
    tls: Box<UnbufferedServerConnection>,
    /// TLS bytes read and not processed yet (a record the socket cut).
    incoming: BytesMut,
    /// Encrypted bytes the socket did not take yet: they go first.
    outgoing: Vec<u8>,
    /// Decrypted bytes not handed out yet (the handshake's last read, a
    /// slice reader's rest).
    plain: BytesMut,
    /// Bytes may be ready without the socket being readable.
    buffered: bool,
    /// The client sent close_notify: reads end here (rustls says so once).
    ended: bool,
    /// Our close_notify is queued.
    notified: bool,
}

/// Shakes hands with a client over `tcp`; the caller bounds the time.
pub(crate) async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<Tls> {
    let tls = UnbufferedServerConnection::new(config).map_err(invalid)?;
    let mut t = Tls {
        tcp,
        tls: Box::new(tls),
        incoming: BytesMut::new(),
        outgoing: Vec::new(),
        plain: BytesMut::new(),
        buffered: true,
        ended: false,
        notified: false,
    };
    loop {
        let mut plain = std::mem::take(&mut t.plain);
        let step = t.drive(&mut plain);
        t.plain = plain;
        let step = step?;
        // Our flight goes out before we wait for the client's.
        t.send_all().await?;
        match step {
            // The client's first frames may have come with its last
            // handshake message: `buffered` makes the session read them.
            Drive::Open => return Ok(t),
            Drive::Closed => return Err(io::ErrorKind::UnexpectedEof.into()),
            Drive::Handshaking => {}
        }
        t.tcp.readable().await?;
        match t.fill() {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

impl Tls {
    /// Runs rustls over the input held until it needs more or the peer
    /// closed: decrypted bytes go to `plain`, handshake records to the
    /// output queue.
    fn drive(&mut self, plain: &mut BytesMut) -> io::Result<Drive> {
        loop {
            let status = self.tls.process_tls_records(&mut self.incoming);
            let mut discard = status.discard;
            let step = match status.state {
                Err(e) => Err(e.to_string()),
                Ok(ConnectionState::ReadTraffic(mut r)) => loop {
                    match r.next_record() {
                        Some(Ok(rec)) => {
                            plain.extend_from_slice(rec.payload);
                            discard += rec.discard;
                        }
                        Some(Err(e)) => break Err(e.to_string()),
                        None => break Ok(None),
                    }
                },
                Ok(ConnectionState::EncodeTlsData(mut e)) => append(&mut self.outgoing, |b| match e.encode(b) {
                    Ok(n) => Ok(n),
                    Err(EncodeError::InsufficientSize(s)) => Err(Some(s.required_size)),
                    Err(_) => Err(None),
                })
                .map(|()| None),
                // The records stay queued in `outgoing`, ahead of anything
                // written later: as good as sent.
                Ok(ConnectionState::TransmitTlsData(t)) => {
                    t.done();
                    Ok(None)
                }
                Ok(ConnectionState::WriteTraffic(_)) => Ok(Some(Drive::Open)),
                Ok(ConnectionState::BlockedHandshake) => Ok(Some(Drive::Handshaking)),
                Ok(ConnectionState::PeerClosed | ConnectionState::Closed) => Ok(Some(Drive::Closed)),
                // Early data is not enabled in the configuration.
                Ok(_) => Err("unexpected TLS state".to_string()),
            };
            self.incoming.advance(discard);
            match step {
                Ok(Some(Drive::Closed)) => {
                    self.ended = true;
                    return Ok(Drive::Closed);
                }
                Ok(Some(d)) => return Ok(d),
                Ok(None) => {}
                Err(why) => {
                    self.alert();
                    return Err(invalid(why));
                }
            }
        }
    }

    /// After an error rustls may have queued an alert: one try to send it.
    fn alert(&mut self) {
        let status = self.tls.process_tls_records(&mut self.incoming);
        if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
            let _ = append(&mut self.outgoing, |b| e.encode(b).map_err(|_| None));
        }
        let _ = self.flush();
    }

    /// Reads what the socket has into `incoming`; 0 at its end.
    fn fill(&mut self) -> io::Result<usize> {
        if self.incoming.len() >= MAX_INCOMING {
            return Err(invalid("TLS input larger than any record or handshake message"));
        }
        self.incoming.reserve(READ_CHUNK);
        self.tcp.try_read_buf(&mut self.incoming)
    }

    /// Writes queued records until the socket is full (`WouldBlock`).
    fn flush(&mut self) -> io::Result<()> {
        while !self.outgoing.is_empty() {
            match self.tcp.try_write(&self.outgoing)? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => drop(self.outgoing.drain(..n)),
            }
        }
        self.outgoing = Vec::new();
        Ok(())
    }

    /// Writes every queued record, waiting for the socket as needed.
    async fn send_all(&mut self) -> io::Result<()> {
        loop {
            match self.flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.tcp.writable().await?,
                r => return r,
            }
        }
    }

    /// Runs rustls on what is held, then on what the socket has, until
    /// some plaintext came, the input ended, or the socket is empty.
    fn read_plain(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        let start = buf.len();
        loop {
            let step = self.drive(buf);
            // Handshake messages, alerts and key updates may need sending;
            // a full socket only delays them.
            match self.flush() {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
            let got = buf.len() - start;
            if got > 0 {
                return step.map(|_| got);
            }
            step?;
            if self.ended {
                // 0 here is the peer's close_notify: the end.
                return Ok(0);
            }
            match self.fill() {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) => {
                    if e.kind() == io::ErrorKind::WouldBlock && self.incoming.is_empty() {
                        // Idle sessions hold no input buffer.
                        self.incoming = BytesMut::new();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Runs the state machine with plaintext kept aside (read later: the
    /// session is marked buffered); fails unless the session is writable.
    fn drive_aside(&mut self) -> io::Result<()> {
        let mut plain = std::mem::take(&mut self.plain);
        let step = self.drive(&mut plain);
        self.buffered |= !plain.is_empty();
        self.plain = plain;
        match step? {
            Drive::Open => Ok(()),
            _ => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }
}

/// Appends what `f` writes into a slice to `out`, giving it the room it
/// asks for (`Err(Some(size))`).
fn append(out: &mut Vec<u8>, mut f: impl FnMut(&mut [u8]) -> Result<usize, Option<usize>>) -> Result<(), String> {
    let at = out.len();
    let mut room = READ_CHUNK;
    loop {
        out.resize(at + room, 0);
        match f(&mut out[at..]) {
            Ok(n) => {
                out.truncate(at + n);
                return Ok(());
            }
            Err(Some(need)) if need > room => room = need,
            Err(_) => {
                out.truncate(at);
                return Err("TLS record encoding failed".to_string());
            }
        }
    }
}

impl Transport for Tls {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready_unless_buffered(self.buffered, &self.tcp, cx)
    }

    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_write_ready(cx)
    }

    fn try_read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        self.buffered = false;
        if !self.plain.is_empty() {
            let n = self.plain.len();
            buf.extend_from_slice(&self.plain);
            self.plain = BytesMut::new();
            return Ok(n);
        }
        self.read_plain(buf)
    }

    fn try_write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_some(bufs)
    }

    fn pending(&self) -> bool {
        !self.outgoing.is_empty()
    }

    fn discard(&mut self, scratch: &mut [u8]) -> io::Result<usize> {
        // From now on only the socket is read: readiness is the socket's
        // (else a session closed before its first read would spin here).
        self.buffered = false;
        self.tcp.try_read(scratch)
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> + Send {
        self.close_notify();
        let _ = self.flush();
        tokio::io::AsyncWriteExt::shutdown(&mut self.tcp)
    }
}

impl Raw for Tls {
    fn try_read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Set again below while a rest remains: a `WouldBlock` from here
        // must leave the session waiting on the socket (else a reader that
        // polls readiness in a loop would spin).
        self.buffered = false;
        if self.plain.is_empty() {
            let mut plain = std::mem::take(&mut self.plain);
            let r = self.read_plain(&mut plain);
            self.plain = plain;
            if r? == 0 {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.plain.len());
        buf[..n].copy_from_slice(&self.plain[..n]);
        self.plain.advance(n);
        // A rest is read before the socket is waited for.
        self.buffered = !self.plain.is_empty();
        if self.plain.is_empty() {
            self.plain = BytesMut::new();
        }
        Ok(n)
    }
}

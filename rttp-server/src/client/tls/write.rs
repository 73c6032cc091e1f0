//! The write path of a TLS session: the queue's slices are gathered into
//! a per-thread scratch, encrypted there and written to the socket at
//! once; only what the socket did not take stays with the session. And
//! the close_notify that ends a session.

use std::cell::RefCell;
use std::io::{self, IoSlice};

use bytes::Buf;
use rustls::unbuffered::{ConnectionState, EncryptError};

use super::{append, invalid, Tls};

/// Most plaintext taken by one write: the session's outbound queue stays
/// the place where a slow reader shows, so at most this much (encrypted)
/// waits here for the socket.
const WRITE_MAX: usize = crate::tls::TLS_SEND_BUFFER;

/// Room for the record headers and tags of one write (up to four records
/// plus a key update).
const RECORD_OVERHEAD: usize = 1024;

/// The per-thread buffers of the write path: plaintext gathered from the
/// queue's slices, and its encryption.
struct Scratch {
    plain: Vec<u8>,
    cipher: Vec<u8>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch {
        plain: Vec::new(),
        cipher: vec![0; WRITE_MAX + RECORD_OVERHEAD],
    });
}

impl Tls {
    /// Takes up to [`WRITE_MAX`] bytes of `bufs`: `WouldBlock` while
    /// earlier records still wait for the socket.
    pub(super) fn write_some(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        // What was encrypted before goes first: the socket keeps the order.
        self.flush()?;
        let want = bufs.iter().map(|b| b.len()).sum::<usize>().min(WRITE_MAX);
        if want == 0 {
            return Ok(0);
        }
        self.encrypt(bufs, want)
    }

    /// Encrypts up to [`WRITE_MAX`] bytes of `bufs` and writes them; what
    /// the socket does not take waits in `outgoing`.
    fn encrypt(&mut self, bufs: &[IoSlice<'_>], want: usize) -> io::Result<usize> {
        // Records may wait (a key update to answer, plaintext that came
        // meanwhile): rustls gives the write state only once they are
        // handled, and each state must be handled (dropping one can drop
        // a record), so the state machine runs first.
        self.drive_aside()?;
        let status = self.tls.process_tls_records(&mut self.incoming);
        let discard = status.discard;
        let w = match status.state {
            Ok(ConnectionState::WriteTraffic(w)) => Some(w),
            _ => None,
        };
        // Nothing changed since the state machine stopped at the write
        // state: it is there again (anything else is a broken session).
        let Some(mut w) = w else { return Err(invalid("TLS session not writable")) };
        let (tcp, outgoing) = (&self.tcp, &mut self.outgoing);
        let r = SCRATCH.with_borrow_mut(|s| {
            let Scratch { plain, cipher } = s;
            let data: &[u8] = match bufs.first() {
                Some(b) if b.len() >= want => &b[..want],
                _ => {
                    plain.clear();
                    for b in bufs {
                        let n = b.len().min(want - plain.len());
                        plain.extend_from_slice(&b[..n]);
                        if plain.len() == want {
                            break;
                        }
                    }
                    plain
                }
            };
            let used = loop {
                match w.encrypt(data, cipher) {
                    Ok(n) => break n,
                    Err(EncryptError::InsufficientSize(s)) => cipher.resize(s.required_size, 0),
                    Err(e) => return Err(invalid(e)),
                }
            };
            let sent = match tcp.try_write(&cipher[..used]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(e) => return Err(e),
            };
            outgoing.extend_from_slice(&cipher[sent..used]);
            Ok(want)
        });
        self.incoming.advance(discard);
        r
    }

    /// Queues a close_notify alert after what is queued, once.
    pub(super) fn close_notify(&mut self) {
        if std::mem::replace(&mut self.notified, true) || self.drive_aside().is_err() {
            return;
        }
        let status = self.tls.process_tls_records(&mut self.incoming);
        let discard = status.discard;
        if let Ok(ConnectionState::WriteTraffic(mut w)) = status.state {
            let _ = append(&mut self.outgoing, |b| match w.queue_close_notify(b) {
                Ok(n) => Ok(n),
                Err(EncryptError::InsufficientSize(s)) => Err(Some(s.required_size)),
                Err(_) => Err(None),
            });
        }
        self.incoming.advance(discard);
    }
}

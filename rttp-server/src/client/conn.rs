//! The connection layer: owns one client socket, turns bytes into frames
//! for the session and drains the session's outbound queue to the socket,
//! in batches. One task per connection, with no buffer held while idle.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rttp_proto::{ClientFrame, ErrCode, Frame, ServerFrame, Token};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;

use super::session::{Flow, Session};
use super::transport::Transport;
use crate::outbound::{Batch, Direct, Outbound};
use crate::state::Shared;

/// How long a closing connection may take to flush its last frames.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(2);
/// How long a closed connection keeps draining input, so that the client
/// reads our last `ERR` instead of a reset.
pub const CLOSE_LINGER: Duration = Duration::from_millis(500);
/// Most frames gathered into one vectored write.
const WRITE_BATCH: usize = 64;
/// Read buffer growth step: small, because most reads are a line or two;
/// a bigger frame grows the buffer as needed.
const READ_CHUNK: usize = 1024;

/// The session's deadline passed: no HELLO in time, or silence (a PING
/// first, then the close).
fn silence(session: &mut Session, pinged: &mut bool, config: &crate::Config) -> Flow {
    match session.settled() {
        false => session.error(ErrCode::Timeout, format!("no HELLO within {:?}", config.hello_timeout)),
        true if !*pinged => {
            *pinged = true;
            session.send(&ServerFrame::Ping { token: Token::new("idle").expect("valid token") });
            Flow::Continue
        }
        true => session.error(ErrCode::Timeout, format!("silent for {:?}", config.idle_timeout)),
    }
}

/// A client connection: the socket (plain or TLS), its buffers, and its session.
pub(crate) struct ClientConn<T> {
    stream: T,
    shared: Arc<Shared>,
    out: Arc<Outbound>,
    rbuf: BytesMut,
    wq: VecDeque<Bytes>,
    /// The front of `wq` is partly written.
    mid_frame: bool,
}

impl ClientConn<Arc<TcpStream>> {
    /// The size of the task a connection runs, for the memory budget.
    #[cfg(test)]
    pub(crate) fn task_size(stream: TcpStream, shared: Arc<Shared>) -> usize {
        std::mem::size_of_val(&ClientConn::new(Arc::new(stream), shared).run(CancellationToken::new()))
    }
}

impl<T> Drop for ClientConn<T> {
    fn drop(&mut self) {
        self.shared.queues.remove(&(Arc::as_ptr(&self.out) as usize));
    }
}

impl<T: Transport> ClientConn<T> {
    pub(crate) fn new(stream: T, shared: Arc<Shared>) -> ClientConn<T> {
        let out = Outbound::with_soft_limit(shared.config.outbound_limit, shared.config.outbound_max);
        if let Some(sock) = stream.direct() {
            out.set_direct(Direct::new(sock, shared.metrics.bytes_out.clone()));
        }
        // Registered before the loop first checks for shutdown: a shutdown
        // either finds this queue or is seen by that check.
        shared.queues.insert(Arc::as_ptr(&out) as usize, out.clone());
        ClientConn { stream, shared, out, rbuf: BytesMut::new(), wq: VecDeque::new(), mid_frame: false }
    }

    /// Serves the connection until it closes; returns why, for the log.
    pub(crate) async fn run(mut self, token: CancellationToken) -> (Option<rttp_proto::Nick>, &'static str) {
        let mut session = Session::new(self.shared.clone(), self.out.clone());
        // The timers are read from the config when used, not copied into
        // locals: this future lives as long as the session, and every local
        // here is part of every idle session's task.
        let hello_deadline = Instant::now() + self.shared.config.hello_timeout;
        let mut last_heard = Instant::now();
        let mut pinged = false;
        // Set while the session is over its frame, byte or JOIN budget: no
        // reads (frames already buffered wait too) until then.
        let mut paused: Option<Instant> = None;
        // A HELLO waiting for its nick's owner, and until when: no reads meanwhile.
        let mut claim: Option<(tokio::sync::oneshot::Receiver<bool>, Instant)> = None;
        let reason = loop {
            let deadline = match (session.settled(), pinged) {
                (false, _) => hello_deadline,
                (true, false) => last_heard + self.shared.config.ping_after,
                (true, true) => last_heard + self.shared.config.idle_timeout,
            };
            // TLS records may wait for the socket with nothing queued.
            let writing = !self.wq.is_empty() || self.stream.pending();
            // Behind (over --outbound-limit): cut when that has lasted --slow-consumer-after.
            let cut_at = self.out.behind_since().map(|t| Instant::from_std(t) + self.shared.config.slow_consumer_after);
            // One timer for the three deadlines: each Sleep in a select! would
            // sit in every idle connection's future.
            let claim_until = claim.as_ref().map(|c| c.1);
            let wake = [Some(deadline), cut_at, paused, claim_until].into_iter().flatten().min().unwrap_or(deadline);
            let mut answered: Option<Option<bool>> = None;
            // Shutdown wakes the connection through its queue (see
            // `Outbound::shut_down`), not a cancellation future per task.
            let down = token.is_cancelled() || self.out.shutting_down();
            let flow = if down {
                session.error(ErrCode::ShuttingDown, "server shutting down")
            } else {
                tokio::select! {
                    a = async { (&mut claim.as_mut().expect("armed").0).await }, if claim.is_some() => {
                        answered = Some(a.ok());
                        Flow::Continue
                    }
                    r = self.stream.readable(), if paused.is_none() && claim.is_none() => match r.and_then(|_| self.read()) {
                        Ok(0) => break "eof",
                        Ok(_) => {
                            last_heard = Instant::now();
                            pinged = false;
                            self.process(&mut session, &mut paused)
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Flow::Continue,
                        Err(_) => break "read error",
                    },
                    // Always armed: an overflow must be seen even mid-write.
                    _ = self.out.notified() => {
                        if !writing {
                            self.drain();
                        }
                        Flow::Continue
                    }
                    r = self.stream.writable(), if writing => match r.and_then(|_| self.write_some()) {
                        Ok(()) => {
                            if self.wq.is_empty() {
                                // Pushes made while we wrote did not notify: pick them up now.
                                self.drain();
                            }
                            Flow::Continue
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Flow::Continue,
                        Err(_) => break "write error",
                    },
                    _ = sleep_until(wake) => {
                        let now = Instant::now();
                        if claim_until.is_some_and(|t| now >= t) {
                            answered = Some(None);
                            Flow::Continue
                        } else if paused.is_some_and(|p| now >= p) {
                            paused = None;
                            self.process(&mut session, &mut paused)
                        } else if now < deadline {
                            // The slow-consumer deadline: checked below.
                            Flow::Continue
                        } else {
                            silence(&mut session, &mut pinged, &self.shared.config)
                        }
                    }
                }
            };
            let flow = match answered {
                Some(a) => {
                    claim = None;
                    match session.claimed(a) {
                        // The frames that came after HELLO, in the buffer.
                        Flow::Continue => self.process(&mut session, &mut paused),
                        other => other,
                    }
                }
                None => flow,
            };
            if let Some(rx) = session.take_claim_rx() {
                claim = Some((rx, Instant::now() + crate::leases::CLAIM_TIMEOUT));
            }
            if self.slow_consumer() {
                break "slow consumer";
            }
            let flow =
                if flow == Flow::Continue && self.out.close_requested() { Flow::Close("redirected") } else { flow };
            if let Flow::Close(why) = flow {
                // Boxed: its state would otherwise sit in every connection's future.
                Box::pin(self.closing(&mut session, why)).await;
                break why;
            }
        };
        // Only this task writes from here on.
        self.out.take_direct();
        let nick = session.nick();
        drop(session);
        Box::pin(self.close()).await;
        (nick, reason)
    }

    /// Whether the session is a slow consumer: its queue overflowed, or it
    /// has been behind since before `cut_at`. Then its queue is dropped and
    /// it is told `ERR 507` if the socket can still take it.
    fn slow_consumer(&mut self) -> bool {
        // The queue's clock now, not the one the loop armed its timer with:
        // a joiner reading a replay moves it on as it reads (see
        // `Outbound::push_replay`).
        let cut_at = self.out.behind_since().map(|t| Instant::from_std(t) + self.shared.config.slow_consumer_after);
        if cut_at.is_some_and(|t| Instant::now() >= t) {
            self.out.overflow();
        }
        if !self.out.overflowed() {
            return false;
        }
        self.shared.metrics.slow_consumers.inc();
        self.wq.clear();
        if !self.mid_frame && !self.out.partly_written() {
            let err = self.shared.metrics.err(ErrCode::SlowConsumer, "outbound queue overflowed: read faster");
            // Best effort: a stalled reader's socket buffer is likely full.
            let _ = self.stream.try_write_vectored(&[IoSlice::new(&err)]);
        }
        true
    }

    /// The session closes for `why`: what is queued is flushed and, after a
    /// REDIRECT or `ERR 508`, late SAYs are still delivered.
    async fn closing(&mut self, session: &mut Session, why: &str) {
        self.flush().await;
        if why == "redirected" || why == ErrCode::ShuttingDown.label() {
            self.deliver_late(session).await;
        }
    }

    /// After a REDIRECT (or `ERR 508`) the client may have sent SAYs before
    /// it read ours: they are delivered, the session still being in its
    /// rooms, never dropped in silence. Reads for at most [`CLOSE_LINGER`] or
    /// until the client closes; frames other than SAY are ignored.
    async fn deliver_late(&mut self, session: &mut Session) {
        let deadline = Instant::now() + CLOSE_LINGER;
        let limits = self.shared.config.limits;
        loop {
            {
                let _batch = Batch::start();
                loop {
                    match ClientFrame::decode_buf(&mut self.rbuf, &limits) {
                        Ok(Some(f @ ClientFrame::Say { .. })) => {
                            session.handle(f);
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) if e.is_fatal() => return,
                        Err(_) => {}
                    }
                }
            }
            self.flush().await;
            match timeout_at(deadline, self.stream.readable()).await {
                Ok(Ok(())) => match self.read() {
                    Ok(0) => return,
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                },
                _ => return,
            }
        }
    }

    /// Reads what the socket has, into a buffer allocated only now.
    fn read(&mut self) -> io::Result<usize> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
            self.rbuf.reserve(READ_CHUNK);
        }
        let n = self.stream.try_read_buf(&mut self.rbuf);
        if self.rbuf.is_empty() && !matches!(n, Ok(1..)) {
            // A readiness with nothing to read (tokio reports one after
            // every read that did not end in WouldBlock): the buffer just
            // reserved would otherwise stay with the idle session.
            self.rbuf = BytesMut::new();
        }
        let n = n?;
        self.shared.metrics.bytes_in.inc_by(n as u64);
        Ok(n)
    }

    /// Decodes and applies the complete frames in the buffer, each charged
    /// to the session's budget; stops early, setting `paused`, when the
    /// session is over it.
    fn process(&mut self, session: &mut Session, paused: &mut Option<Instant>) -> Flow {
        // What the frames push is written when they are all handled.
        let _batch = Batch::start();
        let limits = self.shared.config.limits;
        let flow = loop {
            let before = self.rbuf.len();
            let flow = match ClientFrame::decode_buf(&mut self.rbuf, &limits) {
                Ok(Some(frame)) => {
                    session.charge(before - self.rbuf.len());
                    session.handle(frame)
                }
                Ok(None) => break Flow::Continue,
                Err(e) => session.on_decode_error(&e),
            };
            if flow != Flow::Continue || session.claim_pending() {
                break flow;
            }
            if let Some(until) = session.paused_until() {
                self.shared.metrics.throttled.inc();
                *paused = Some(Instant::from_std(until));
                break Flow::Continue;
            }
        };
        if self.rbuf.is_empty() {
            // Idle sessions hold no read buffer.
            self.rbuf = BytesMut::new();
        }
        flow
    }

    /// Takes what is queued into the write queue.
    fn drain(&mut self) {
        let was_empty = self.wq.is_empty();
        if self.out.drain_into(&mut self.wq) && was_empty {
            self.mid_frame = true;
        }
    }

    /// One vectored write of up to `WRITE_BATCH` queued frames.
    fn write_some(&mut self) -> io::Result<()> {
        let slices: Vec<IoSlice<'_>> = self.wq.iter().take(WRITE_BATCH).map(|b| IoSlice::new(b)).collect();
        let n = self.stream.try_write_vectored(&slices)?;
        self.shared.metrics.bytes_out.inc_by(n as u64);
        self.out.written(n);
        if n > 0 {
            self.mid_frame = crate::outbound::consume(&mut self.wq, n);
        }
        if self.wq.is_empty() {
            self.wq = VecDeque::new();
        }
        Ok(())
    }

    /// Writes what is queued, for at most `CLOSE_FLUSH`.
    async fn flush(&mut self) {
        let deadline = Instant::now() + CLOSE_FLUSH;
        loop {
            self.drain();
            if self.wq.is_empty() && !self.stream.pending() {
                return;
            }
            match timeout_at(deadline, self.stream.writable()).await {
                Ok(Ok(())) => match self.write_some() {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(_) => return,
                },
                _ => return,
            }
        }
    }

    /// Half-closes, then drains input briefly so the peer sees a clean end.
    async fn close(mut self) {
        let _ = self.stream.shutdown().await;
        let deadline = Instant::now() + CLOSE_LINGER;
        // On the heap, only now: an array here would sit in every idle
        // connection's future for its whole life.
        let mut scratch = vec![0u8; 1024];
        while let Ok(Ok(())) = timeout_at(deadline, self.stream.readable()).await {
            match self.stream.discard(&mut scratch) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => break,
            }
        }
    }
}

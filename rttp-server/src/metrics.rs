//! Prometheus metrics, served as text at `/metrics` by hyper on an
//! already bound listener.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rttp_proto::{ErrCode, Frame, ServerFrame};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A verb label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VerbLabel {
    verb: &'static str,
}

/// An `ERR` code label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    code: u16,
}

/// The server's metrics; see docs/OPERATIONS-style table in the README.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    sessions: Gauge,
    connections: Gauge,
    rooms: Gauge,
    frames_in: Family<VerbLabel, Counter>,
    frames_out: Family<VerbLabel, Counter>,
    /// Bytes read from client sockets.
    pub bytes_in: Counter,
    /// Bytes written to client sockets.
    pub bytes_out: Counter,
    err_replies: Family<CodeLabel, Counter>,
    /// Sessions cut off because their outbound queue overflowed.
    pub slow_consumers: Counter,
    /// Times a session's reading paused because it was over its frame, byte or JOIN budget.
    pub throttled: Counter,
    /// SAY frames dropped by the rate limit.
    pub rate_limited: Counter,
    /// Rooms this server took over as their new owner.
    pub room_takeovers: Counter,
    /// Times this server found it had not run for longer than the peer timeout.
    pub freezes: Counter,
    /// `SUBMIT`s refused: this server does not own the room (the sender submits again).
    pub submits_refused: Counter,
    /// `RELAY`s dropped: not from the room's owner as this server knows it.
    pub relays_fenced: Counter,
    /// Messages a room's owner showed its members before a peer confirmed
    /// them: the room's wait was full ([`crate::rooms::MAX_UNSHOWN`]).
    pub shown_unconfirmed: Counter,
    /// Connections refused by the hard connection cap.
    pub refused_connections: Counter,
    /// Client TLS handshakes that failed or timed out (plaintext on a TLS port included).
    pub tls_failures: Counter,
    /// Sessions opened over WebSocket.
    pub ws_sessions: Counter,
    /// WebSocket upgrades refused for their `Origin`.
    pub ws_refused: Counter,
    peer_frames_in: Family<VerbLabel, Counter>,
    peer_frames_out: Family<VerbLabel, Counter>,
    /// Bytes written to peer links.
    pub peer_bytes_out: Counter,
    peers_up: Gauge,
    history_bytes: Gauge,
    replay_queued_bytes: Gauge,
    history_evicted: Counter,
    /// One render at a time: the gauges are set, then encoded.
    render_lock: std::sync::Mutex<()>,
    /// Peer links refused by the handshake.
    pub peer_auth_failures: Counter,
    /// REDIRECTs sent to clients.
    pub redirects: Counter,
    /// Sessions moved by rebalancing (`REDIRECT ... rebalance`).
    pub rebalanced: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Metrics {
        let mut m = Metrics {
            registry: Registry::with_prefix("rttp"),
            sessions: Gauge::default(),
            connections: Gauge::default(),
            rooms: Gauge::default(),
            frames_in: Family::default(),
            frames_out: Family::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            err_replies: Family::default(),
            slow_consumers: Counter::default(),
            throttled: Counter::default(),
            rate_limited: Counter::default(),
            room_takeovers: Counter::default(),
            freezes: Counter::default(),
            submits_refused: Counter::default(),
            relays_fenced: Counter::default(),
            shown_unconfirmed: Counter::default(),
            refused_connections: Counter::default(),
            tls_failures: Counter::default(),
            ws_sessions: Counter::default(),
            ws_refused: Counter::default(),
            peer_frames_in: Family::default(),
            peer_frames_out: Family::default(),
            peer_bytes_out: Counter::default(),
            peers_up: Gauge::default(),
            history_bytes: Gauge::default(),
            replay_queued_bytes: Gauge::default(),
            history_evicted: Counter::default(),
            render_lock: std::sync::Mutex::new(()),
            peer_auth_failures: Counter::default(),
            redirects: Counter::default(),
            rebalanced: Counter::default(),
        };
        let r = &mut m.registry;
        r.register("sessions", "Sessions past HELLO", m.sessions.clone());
        r.register("connections", "Open client connections", m.connections.clone());
        r.register("rooms", "Rooms with a member on this server", m.rooms.clone());
        r.register("frames_in", "Frames received from clients, by verb", m.frames_in.clone());
        r.register(
            "frames_out",
            "Frames queued to clients, by verb (a fan-out counts once per member)",
            m.frames_out.clone(),
        );
        r.register("bytes_in", "Bytes read from client sockets", m.bytes_in.clone());
        r.register("bytes_out", "Bytes written to client sockets", m.bytes_out.clone());
        r.register("err_replies", "ERR frames sent, by code", m.err_replies.clone());
        r.register("slow_consumer_disconnects", "Sessions cut off as slow consumers", m.slow_consumers.clone());
        r.register("rate_limited_frames", "SAY frames dropped by the rate limit", m.rate_limited.clone());
        r.register("room_takeovers", "Rooms this server took over as their new owner", m.room_takeovers.clone());
        r.register(
            "freezes",
            "Times this server found it had not run for longer than the peer timeout (its rooms then wait for their peers)",
            m.freezes.clone(),
        );
        r.register("submits_refused", "SUBMITs for rooms this server does not own", m.submits_refused.clone());
        r.register("relays_fenced", "RELAYs not from the room's owner, dropped", m.relays_fenced.clone());
        r.register(
            "shown_unconfirmed",
            "messages a room's owner showed its members before a peer confirmed them (the room's wait was full)",
            m.shown_unconfirmed.clone(),
        );
        r.register(
            "throttled_reads",
            "Times a session's reading paused: over its frame, byte or JOIN budget",
            m.throttled.clone(),
        );
        r.register("refused_connections", "Connections refused by the connection cap", m.refused_connections.clone());
        r.register("tls_handshake_failures", "Client TLS handshakes that failed or timed out", m.tls_failures.clone());
        r.register("ws_sessions", "Connections upgraded to RTTP over WebSocket", m.ws_sessions.clone());
        r.register("ws_origin_refused", "WebSocket upgrades refused for their Origin", m.ws_refused.clone());
        r.register("peer_frames_in", "Frames received from peers, by verb", m.peer_frames_in.clone());
        r.register("peer_frames_out", "Frames queued to peers, by verb (once per peer)", m.peer_frames_out.clone());
        r.register("peer_bytes_out", "Bytes written to peer links", m.peer_bytes_out.clone());
        r.register("history_bytes", "Bytes of room history kept, all rooms together", m.history_bytes.clone());
        r.register(
            "replay_queued_bytes",
            "Bytes of rejoin replays queued to sessions and not yet written, with 48 per frame (all sessions)",
            m.replay_queued_bytes.clone(),
        );
        r.register(
            "history_evicted",
            "Messages evicted from room history by the server-wide --history-budget",
            m.history_evicted.clone(),
        );
        r.register("peers_up", "Peers with a live link", m.peers_up.clone());
        r.register("peer_auth_failures", "Peer links refused by the handshake", m.peer_auth_failures.clone());
        r.register("redirects", "REDIRECT frames sent to clients", m.redirects.clone());
        r.register("rebalanced", "Sessions moved by rebalancing (REDIRECT rebalance)", m.rebalanced.clone());
        m
    }

    /// Counts a frame received.
    pub fn frame_in(&self, verb: &'static str) {
        self.frames_in.get_or_create(&VerbLabel { verb }).inc();
    }

    /// Counts `n` frames queued out.
    pub fn frames_out(&self, verb: &'static str, n: u64) {
        self.frames_out.get_or_create(&VerbLabel { verb }).inc_by(n);
    }

    /// Counts a frame from a peer.
    pub fn peer_frame_in(&self, verb: &'static str) {
        self.peer_frames_in.get_or_create(&VerbLabel { verb }).inc();
    }

    /// Counts `n` frames queued to peers.
    pub fn peer_frames_out(&self, verb: &'static str, n: u64) {
        if n > 0 {
            self.peer_frames_out.get_or_create(&VerbLabel { verb }).inc_by(n);
        }
    }

    /// An `ERR` for a client, encoded and counted: the one place such a
    /// frame is made, so `rttp_err_replies_total` sees every one, whichever
    /// path (session, accept loop, slow consumer, drain, rooms) sends it.
    pub fn err(&self, code: ErrCode, reason: impl AsRef<str>) -> Bytes {
        self.err_replies.get_or_create(&CodeLabel { code: code.as_u16() }).inc();
        ServerFrame::err(code, reason).to_bytes()
    }

    /// The Prometheus text exposition, with the gauges as given.
    pub fn render(&self, g: Gauges) -> String {
        let _one = self.render_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.sessions.set(i64::from(g.sessions));
        self.connections.set(i64::from(g.connections));
        self.rooms.set(g.rooms as i64);
        self.peers_up.set(i64::from(g.peers_up));
        self.history_bytes.set(g.history_bytes as i64);
        self.replay_queued_bytes.set(g.replay_queued_bytes as i64);
        // A counter read from its source at scrape time: add what is new.
        let seen = self.history_evicted.get();
        self.history_evicted.inc_by(g.history_evicted.saturating_sub(seen));
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Values read at scrape time rather than counted as they change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Sessions past HELLO.
    pub sessions: u32,
    /// Open client connections.
    pub connections: u32,
    /// Rooms with a member here.
    pub rooms: usize,
    /// Peers with a live link.
    pub peers_up: u32,
    /// Bytes of room history kept.
    pub history_bytes: usize,
    /// Bytes of replays queued to sessions (`ReplayBudget::queued`).
    pub replay_queued_bytes: usize,
    /// Messages evicted by the history budget so far.
    pub history_evicted: u64,
}

/// Most metrics connections at once; more are closed at accept.
pub const METRICS_MAX_CONNECTIONS: usize = 16;
/// Time to send a request's headers.
pub const METRICS_HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// The longest a metrics connection lives, keep-alive included (scrapers reconnect).
pub const METRICS_CONNECTION_LIFETIME: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves `/metrics` until `token` is cancelled; `gauges` is read at each
/// scrape. Bounded: [`METRICS_MAX_CONNECTIONS`] at once, headers within
/// [`METRICS_HEADER_TIMEOUT`], each connection at most
/// [`METRICS_CONNECTION_LIFETIME`].
pub async fn serve<G>(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    gauges: G,
    token: CancellationToken,
    tracker: TaskTracker,
) where
    G: Fn() -> Gauges + Clone + Send + Sync + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(METRICS_MAX_CONNECTIONS));
    loop {
        let Some((stream, _)) = crate::net::accept(&listener, &token, "metrics").await else { break };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let (metrics, gauges) = (metrics.clone(), gauges.clone());
        let token = token.clone();
        tracker.spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let (metrics, gauges) = (metrics.clone(), gauges.clone());
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
                            .body(Full::new(Bytes::from(metrics.render(gauges()))))
                    } else {
                        Response::builder()
                            .status(StatusCode::NOT_FOUND)
                            .body(Full::new(Bytes::from_static(b"not found: try /metrics\n")))
                    };
                    Ok::<_, Infallible>(resp.unwrap_or_default())
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(METRICS_HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = tokio::time::sleep(METRICS_CONNECTION_LIFETIME) => {}
                _ = token.cancelled() => {}
            }
            drop(permit);
        });
    }
}

//! The farm driver: accepts and dials peer links, runs each through the
//! handshake, feeds membership its events and does what it returns.
//! [`spawn`] gives a [`FarmHandle`] to stop it and wait for every task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rttp_conn::tls::Stream;
use rttp_conn::PeerConn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::handshake::{self, HandshakeError, Me, Peer, HANDSHAKE_TIMEOUT};
use super::membership::{Action, Event, LinkId, Membership};
use super::peer::{run_link, LinkCtx, LinkHandle};
use super::publish::Publisher;
use super::{FarmEvent, DIAL_TIMEOUT, EVENT_QUEUE, TICK};
use crate::config::FarmConfig;
use crate::state::Shared;

/// A running farm driver.
#[derive(Debug)]
pub struct FarmHandle {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl FarmHandle {
    /// Closes every link and stops every task of the farm.
    pub fn shutdown(&self) {
        self.token.cancel();
    }

    /// Waits until every task has ended (after [`Self::shutdown`] or the
    /// parent token's cancellation).
    pub async fn join(&self) {
        self.token.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// What every task of the driver shares.
#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    farm: Arc<FarmConfig>,
    events: mpsc::Sender<FarmEvent>,
    token: CancellationToken,
    tracker: TaskTracker,
    next_link: Arc<AtomicU64>,
}

impl Ctx {
    /// This server in the handshake of a link whose TLS exporter value is `binding`.
    fn me<'a>(&'a self, binding: &'a [u8]) -> Me<'a> {
        Me { id: self.shared.config.id, generation: self.shared.generation, secret: &self.farm.secret, binding }
    }

    /// Numbers a link that passed its handshake and hands it to the loop.
    async fn ready(&self, conn: PeerConn<Stream>, peer: Peer, addr: SocketAddr, dialed: bool) {
        let link = self.next_link.fetch_add(1, Ordering::Relaxed) + 1;
        info!(peer = %peer.id, %addr, link, dialed, "peer link up");
        let dialed = dialed.then_some(addr);
        let _ = self.events.send(FarmEvent::LinkReady { link, peer, conn, dialed }).await;
    }

    /// Counts and logs a failed handshake: a refusal or a stall is counted
    /// and logged; a bare connect-and-close (a port scan, a health check) or
    /// a broken stream only at debug level.
    fn refused(&self, addr: SocketAddr, e: &HandshakeError) {
        match e {
            HandshakeError::Refused(why) => {
                self.shared.metrics.peer_auth_failures.inc();
                warn!(%addr, reason = %why, "peer link refused");
            }
            HandshakeError::Tls(why) => {
                self.shared.metrics.peer_auth_failures.inc();
                warn!(%addr, reason = %why, "peer link refused by TLS");
            }
            HandshakeError::Timeout => {
                self.shared.metrics.peer_auth_failures.inc();
                info!(%addr, "peer handshake timed out: ERR 511");
            }
            HandshakeError::Closed | HandshakeError::Conn(_) => {
                tracing::debug!(%addr, error = %e, "peer handshake failed")
            }
        }
    }
}

/// Starts the farm on `listener`, stopped by `parent` or the handle.
pub fn spawn(shared: Arc<Shared>, listener: TcpListener, parent: &CancellationToken) -> FarmHandle {
    let farm = Arc::new(shared.config.farm.clone().expect("a farm member has a farm config"));
    let (events, rx) = mpsc::channel(EVENT_QUEUE);
    let cx = Ctx {
        shared,
        farm,
        events,
        token: parent.child_token(),
        tracker: TaskTracker::new(),
        next_link: Arc::new(AtomicU64::new(0)),
    };
    cx.tracker.spawn(accept_peers(listener, cx.clone()));
    cx.tracker.spawn(run(cx.clone(), rx));
    FarmHandle { token: cx.token, tracker: cx.tracker }
}

/// Peer connections not yet authenticated, at most: more are closed at
/// accept, so that strangers cannot hold many handshakes open at once.
pub const PEER_PENDING_MAX: usize = 32;
/// The same, from one IP address: one stranger cannot take every pending
/// slot and keep the real peers out.
pub const PEER_PENDING_PER_IP: usize = 4;

async fn accept_peers(listener: TcpListener, cx: Ctx) {
    let pending = Arc::new(tokio::sync::Semaphore::new(PEER_PENDING_MAX));
    let per_ip: Arc<dashmap::DashMap<std::net::IpAddr, usize>> = Arc::default();
    while let Some((stream, addr)) = crate::net::accept(&listener, &cx.token, "peers").await {
        let ip = addr.ip();
        let crowded = {
            let mut n = per_ip.entry(ip).or_insert(0);
            *n += 1;
            *n > PEER_PENDING_PER_IP
        };
        let permit = if crowded { None } else { pending.clone().try_acquire_owned().ok() };
        let release = {
            let per_ip = per_ip.clone();
            move || {
                per_ip.remove_if_mut(&ip, |_, n| {
                    *n -= 1;
                    *n == 0
                });
            }
        };
        let Some(permit) = permit else {
            release();
            cx.shared.metrics.peer_auth_failures.inc();
            tracing::debug!(%addr, "peer connection closed: too many handshakes under way");
            continue;
        };
        let cx = cx.clone();
        cx.tracker.clone().spawn(async move {
            let r = tokio::select! {
                r = async {
                    let stream = match &cx.farm.tls {
                        None => Stream::Plain(stream),
                        // Plaintext on a TLS peer port fails here: it gets no frame back.
                        Some(tls) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream))
                            .await
                            .map_err(|_| HandshakeError::Timeout)?
                            .map_err(|e| HandshakeError::Tls(e.to_string()))?,
                    };
                    let mut conn = PeerConn::new(stream);
                    let binding = binding(&conn);
                    let peer = handshake::accept(&mut conn, cx.me(&binding)).await?;
                    Ok::<_, HandshakeError>((conn, peer))
                } => r,
                _ = cx.token.cancelled() => { release(); return }
            };
            drop(permit);
            release();
            match r {
                Ok((conn, peer)) => cx.ready(conn, peer, addr, false).await,
                Err(e) => cx.refused(addr, &e),
            }
        });
    }
}

fn dial(cx: &Ctx, addr: SocketAddr) {
    let cx = cx.clone();
    cx.tracker.clone().spawn(async move {
        let attempt = async {
            let stream = tokio::time::timeout(DIAL_TIMEOUT, connect_from(cx.farm.peer_listen.ip(), addr))
                .await
                .map_err(|_| HandshakeError::Timeout)?
                .map_err(|e| HandshakeError::Conn(e.into()))?;
            let _ = stream.set_nodelay(true);
            let stream = match &cx.farm.tls {
                None => Stream::Plain(stream),
                Some(tls) => tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.dial(stream, addr))
                    .await
                    .map_err(|_| HandshakeError::Timeout)?
                    .map_err(HandshakeError::Tls)?,
            };
            let mut conn = PeerConn::new(stream);
            let binding = binding(&conn);
            let peer = handshake::dial(&mut conn, cx.me(&binding)).await?;
            Ok::<_, HandshakeError>((conn, peer))
        };
        tokio::select! {
            r = attempt => match r {
                Ok((conn, peer)) => cx.ready(conn, peer, addr, true).await,
                Err(e) => {
                    cx.refused(addr, &e);
                    let _ = cx.events.send(FarmEvent::Membership(Event::DialFailed { addr })).await;
                }
            },
            _ = cx.token.cancelled() => {}
        }
    });
}

/// The link's TLS exporter value (empty in the clear), for the handshake's proofs.
fn binding(conn: &PeerConn<Stream>) -> Vec<u8> {
    conn.stream_ref().exporter(super::auth::EXPORTER_LABEL, super::auth::EXPORTER_LEN).unwrap_or_default()
}

/// Connects from our own peer IP (unless unspecified), as a separate host would.
async fn connect_from(ip: std::net::IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    if ip.is_unspecified() {
        return TcpStream::connect(addr).await;
    }
    let sock = if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.bind(SocketAddr::new(ip, 0))?;
    sock.connect(addr).await
}

/// How long after its last new link (or news of a server) a just-started
/// server that reached every server it knows of ends its rooms' start hold.
const SETTLE_QUIET: std::time::Duration = std::time::Duration::from_millis(200);

/// The driver's loop: one input at a time into membership, then its actions.
async fn run(cx: Ctx, mut rx: mpsc::Receiver<FarmEvent>) {
    let shared = cx.shared.clone();
    let mut m = Membership::new(shared.own_state(), &cx.farm.seeds, cx.farm.timers, Instant::now(), shared.generation);
    let mut links: HashMap<LinkId, LinkHandle> = HashMap::new();
    let mut publisher = Publisher::new(Instant::now());
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    publisher.publish(&shared, m.farm_info(), false);
    let mut last_heard_of = Instant::now();
    loop {
        let state_due = m.state_due();
        let event = tokio::select! {
            _ = cx.token.cancelled() => break,
            ev = rx.recv() => match ev {
                None => break,
                Some(FarmEvent::Membership(e)) => e,
                Some(FarmEvent::LinkReady { link, peer, conn, dialed }) => {
                    let handle = LinkHandle::new(&cx.token, &peer);
                    links.insert(link, handle.clone());
                    let lcx = LinkCtx { peer, link, handle, shared: shared.clone(), events: cx.events.clone() };
                    cx.tracker.spawn(run_link(conn, lcx));
                    match dialed {
                        Some(addr) => Event::Dialed { addr, link, peer: peer.id, generation: peer.generation },
                        None => Event::Accepted { link, peer: peer.id, generation: peer.generation },
                    }
                }
            },
            _ = shared.local_changed.notified() => Event::Local { state: shared.own_state() },
            // Coalesced user counts leave on their own deadline, not a tick later.
            _ = tokio::time::sleep_until(state_due.unwrap_or_else(Instant::now)), if state_due.is_some() => Event::Tick,
            _ = tick.tick() => {
                publisher.tick(&shared, Instant::now());
                shared.rooms.tick(std::time::Instant::now());
                shared.rooms.flush_shown();
                // Reached every server it knows of, and heard of none for a
                // while (a new link's peer sends its interests, then names the
                // servers it knows): rooms need not wait for more.
                if m.settled() && last_heard_of.elapsed() >= SETTLE_QUIET {
                    shared.rooms.end_start_hold();
                }
                Event::Tick
            }
        };
        if matches!(event, Event::Dialed { .. } | Event::Accepted { .. } | Event::Member { .. }) {
            last_heard_of = Instant::now();
        }
        if let Event::LinkClosed { link } = &event {
            links.remove(link);
        }
        for a in m.handle(event, Instant::now()) {
            act(&cx, &mut links, &mut publisher, a);
        }
        shared.set_peers_up(m.linked_count() as u32);
    }
}

fn act(cx: &Ctx, links: &mut HashMap<LinkId, LinkHandle>, publisher: &mut Publisher, a: Action) {
    let shared = &cx.shared;
    match a {
        Action::Dial { addr } => dial(cx, addr),
        Action::Close { link, reason } => {
            if let Some(h) = links.remove(&link) {
                info!(link, reason, "closing peer link");
                h.token.cancel();
            }
        }
        Action::Send { link, frame } => {
            if let Some(h) = links.get(&link) {
                shared.metrics.peer_frames_out(rttp_proto::Frame::verb(&frame), 1);
                h.out.push(rttp_proto::Frame::to_bytes(&frame));
            }
        }
        Action::LinkUp { link, peer } => {
            if let Some(h) = links.get(&link) {
                info!(%peer, link, "peer up");
                shared.rooms.link_up(peer, h.out.clone());
            }
        }
        Action::PeerDown { peer } => {
            warn!(%peer, "peer down");
            shared.rooms.peer_down(peer);
            shared.leases.peer_down(peer);
        }
        Action::Publish { table, push } => {
            publisher.publish(shared, table, push);
            // Who owns which nick, and which room, follows the live set.
            shared.leases.rehome(shared);
            shared.rooms.rehome(shared.room_owners());
        }
    }
}

//! The farm: peer links, the membership loop that drives the state
//! machine, and pushing `FARM_INFO` to this server's clients.

pub mod auth;
pub mod link;
pub mod membership;
#[cfg(test)]
mod membership_tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use rttp_proto::{Frame, ServerFrame, ServerId};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::link::{HandshakeError, LinkHandle, Peer};
use self::membership::{Action, Event, LinkId, Membership};
use crate::state::Shared;

/// How often the loop ticks: heartbeats, timeouts and redials are checked
/// at this granularity.
pub const TICK: Duration = Duration::from_millis(50);
/// How often user counts alone may cause a `FARM_INFO` push to clients.
pub const USERS_PUSH_EVERY: Duration = Duration::from_secs(1);
/// Time allowed to connect to a peer.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// Bound of the queue of events into the farm loop.
pub const EVENT_QUEUE: usize = 4096;

/// Input of the farm loop.
// Control-plane values, short-lived and few: size does not matter here.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum FarmEvent {
    /// An event for the membership state machine.
    Membership(Event),
    /// A link passed its handshake.
    LinkReady {
        /// Its number.
        link: LinkId,
        /// Who is on the other end.
        peer: Peer,
        /// The socket.
        stream: TcpStream,
        /// Bytes read past the handshake.
        leftover: BytesMut,
        /// The address we dialed, or `None` if the peer dialed us.
        dialed: Option<SocketAddr>,
    },
}

/// Starts the farm: the peer accept loop and the membership loop.
pub fn spawn(shared: Arc<Shared>, listener: TcpListener, token: CancellationToken, tracker: TaskTracker) {
    let (tx, rx) = mpsc::channel(EVENT_QUEUE);
    let ids = Arc::new(AtomicU64::new(0));
    tracker.spawn(accept_peers(listener, shared.clone(), tx.clone(), ids.clone(), token.clone(), tracker.clone()));
    tracker.spawn(run(shared, tx, rx, ids, token, tracker.clone()));
}

async fn accept_peers(
    listener: TcpListener,
    shared: Arc<Shared>,
    tx: mpsc::Sender<FarmEvent>,
    ids: Arc<AtomicU64>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let secret = shared.config.farm.as_ref().map(|f| f.secret.clone()).expect("farm config");
    loop {
        let Some((mut stream, addr)) = crate::net::accept(&listener, &token, "peers").await else { break };
        let (shared, tx, ids, secret, token) = (shared.clone(), tx.clone(), ids.clone(), secret.clone(), token.clone());
        tracker.spawn(async move {
            let hs = tokio::select! {
                r = link::accept_handshake(&mut stream, shared.config.id, shared.generation, &secret) => r,
                _ = token.cancelled() => return,
            };
            match hs {
                Ok((peer, leftover)) => {
                    let link = ids.fetch_add(1, Ordering::Relaxed) + 1;
                    info!(peer = %peer.id, %addr, link, "peer link accepted");
                    let _ = tx.send(FarmEvent::LinkReady { link, peer, stream, leftover, dialed: None }).await;
                }
                Err(e) => refused(&shared, addr, &e),
            }
        });
    }
}

fn refused(shared: &Shared, addr: SocketAddr, e: &HandshakeError) {
    if let HandshakeError::Refused(why) = e {
        shared.metrics.peer_auth_failures.inc();
        warn!(%addr, reason = %why, "peer link refused");
    } else {
        tracing::debug!(%addr, error = %e, "peer handshake failed");
    }
}

fn dial(
    addr: SocketAddr,
    shared: Arc<Shared>,
    tx: mpsc::Sender<FarmEvent>,
    ids: Arc<AtomicU64>,
    token: CancellationToken,
    tracker: &TaskTracker,
) {
    let secret = shared.config.farm.as_ref().map(|f| f.secret.clone()).expect("farm config");
    let source = shared.config.farm.as_ref().map(|f| f.peer_listen.ip()).filter(|ip| !ip.is_unspecified());
    tracker.spawn(async move {
        let attempt = async {
            let mut stream = tokio::time::timeout(DIAL_TIMEOUT, connect_from(source, addr))
                .await
                .map_err(|_| HandshakeError::Timeout)??;
            let _ = stream.set_nodelay(true);
            let (peer, leftover) =
                link::dial_handshake(&mut stream, shared.config.id, shared.generation, &secret).await?;
            Ok::<_, HandshakeError>((stream, peer, leftover))
        };
        let ev = tokio::select! {
            r = attempt => match r {
                Ok((stream, peer, leftover)) => {
                    let link = ids.fetch_add(1, Ordering::Relaxed) + 1;
                    info!(peer = %peer.id, %addr, link, "peer link dialed");
                    FarmEvent::LinkReady { link, peer, stream, leftover, dialed: Some(addr) }
                }
                Err(e) => {
                    refused(&shared, addr, &e);
                    FarmEvent::Membership(Event::DialFailed { addr })
                }
            },
            _ = token.cancelled() => return,
        };
        let _ = tx.send(ev).await;
    });
}

/// Connects from our own peer IP, as a separate host would.
async fn connect_from(source: Option<std::net::IpAddr>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let Some(ip) = source else { return TcpStream::connect(addr).await };
    let sock = if ip.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    sock.bind(SocketAddr::new(ip, 0))?;
    sock.connect(addr).await
}

/// Pushes `FARM_INFO` to every session, encoded once.
pub fn push_farm_info(shared: &Shared) {
    shared.table_changed();
    let frame = ServerFrame::FarmInfo(shared.farm_info()).to_bytes();
    let mut n = 0;
    for s in shared.sessions.iter() {
        s.value().push(frame.clone());
        n += 1;
    }
    shared.metrics.frames_out("FARM_INFO", n);
}

/// Whether some server's user count moved by more than 5 % since `last`.
fn users_moved(shared: &Shared, last: &HashMap<ServerId, u32>) -> bool {
    shared.farm_info().servers.iter().any(|e| {
        let old = last.get(&e.id).copied().unwrap_or(0);
        u64::from(e.users.abs_diff(old)) * 20 > u64::from(old.max(1))
    })
}

fn snapshot_users(shared: &Shared) -> HashMap<ServerId, u32> {
    shared.farm_info().servers.iter().map(|e| (e.id, e.users)).collect()
}

async fn run(
    shared: Arc<Shared>,
    tx: mpsc::Sender<FarmEvent>,
    mut rx: mpsc::Receiver<FarmEvent>,
    ids: Arc<AtomicU64>,
    token: CancellationToken,
    tracker: TaskTracker,
) {
    let farm = shared.config.farm.clone().expect("farm config");
    let started = Instant::now();
    let mut m =
        Membership::new(shared.own_state(), &farm.seeds, farm.timers, shared.table.clone(), started, shared.generation);
    let mut links: HashMap<LinkId, LinkHandle> = HashMap::new();
    let mut heard: HashMap<LinkId, u64> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pushed_users = snapshot_users(&shared);
    let mut last_users_check = started;
    loop {
        let now = Instant::now();
        let actions = tokio::select! {
                    _ = token.cancelled() => break,
                    ev = rx.recv() => match ev {
                        None => break,
                        Some(FarmEvent::Membership(e)) => {
                            if let Event::LinkClosed { link } = e {
                                links.remove(&link);
                                heard.remove(&link);
                            }
                            m.handle(e, now)
                        }
                        Some(FarmEvent::LinkReady { link, peer, stream, leftover, dialed }) => {
                            let handle = LinkHandle::new(&token);
                            links.insert(link, handle.clone());
        tracker.spawn(link::run_link(
                                stream,
                                leftover,
                                link::LinkCtx { peer, link, handle, shared: shared.clone(), events: tx.clone(), epoch: started },
                            ));
                            let ev = match dialed {
                                Some(addr) => Event::Dialed { addr, link, peer: peer.id, generation: peer.generation },
                                None => Event::Accepted { link, peer: peer.id, generation: peer.generation },
                            };
                            m.handle(ev, now)
                        }
                    },
                    _ = shared.local_changed.notified() => m.handle(Event::Local { state: shared.own_state() }, now),
            // Coalesced user counts leave on their own deadline, not a tick later.
            _ = tokio::time::sleep_until(m.state_due().unwrap_or(now)), if m.state_due().is_some() => m.handle(Event::Tick, Instant::now()),
                    _ = tick.tick() => {
                        let mut acts = Vec::new();
                        for (link, h) in &links {
                            let at = h.heard.load(Ordering::Relaxed);
                            if heard.insert(*link, at) != Some(at) {
                                acts.extend(m.handle(Event::Heard { link: *link }, now));
                            }
                        }
                        acts.extend(m.handle(Event::Tick, now));
                        if now >= last_users_check + USERS_PUSH_EVERY {
                            last_users_check = now;
                            if users_moved(&shared, &pushed_users) {
                                push_farm_info(&shared);
                                pushed_users = snapshot_users(&shared);
                            }
                        }
                        acts
                    }
                };
        for a in actions {
            match a {
                Action::Dial { addr } => dial(addr, shared.clone(), tx.clone(), ids.clone(), token.clone(), &tracker),
                Action::Close { link, reason } => {
                    if let Some(h) = links.remove(&link) {
                        info!(link, reason, "closing peer link");
                        h.token.cancel();
                    }
                }
                Action::Send { link, frame } => {
                    if let Some(h) = links.get(&link) {
                        shared.metrics.peer_frames_out(frame.verb(), 1);
                        h.out.push(frame.to_bytes());
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
                }
                Action::TableChanged => {
                    push_farm_info(&shared);
                    pushed_users = snapshot_users(&shared);
                }
            }
        }
        shared.set_peers_up(m.linked().len() as u32);
    }
}

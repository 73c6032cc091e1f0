//! The state every task of one server shares, behind one `Arc`.

mod slots;

pub use slots::full_after;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use rttp_proto::select::{select, Strategy};
use rttp_proto::{FarmInfo, HostPort, Nick, PeerStateMsg, ServerEntry, ServerId, Status};
use tokio::sync::{watch, Notify};

use crate::config::Config;
use crate::metrics::{Gauges, Metrics};
use crate::outbound::Outbound;
use crate::rooms::{HistoryLimits, Rooms, SessionId};

/// What the shared state holds of one session: its outbound queue, and
/// what rebalancing weighs before moving it.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// The session's outbound queue.
    pub out: Arc<Outbound>,
    /// When it started here.
    pub since: Instant,
    /// A user session (past HELLO), not a `FARM watch` connection.
    pub user: bool,
    /// The random part of its WELCOME token (0 for a watcher).
    pub secret: u64,
}

impl SessionHandle {
    /// The handle of a session starting now.
    pub fn new(out: Arc<Outbound>, user: bool, secret: u64) -> SessionHandle {
        SessionHandle { out, since: Instant::now(), user, secret }
    }
}

/// Shared server state.
#[derive(Debug)]
pub struct Shared {
    /// The settings.
    pub config: Config,
    /// This run's generation: its start time in milliseconds.
    pub generation: u64,
    /// Rooms and their members here.
    pub rooms: Rooms,
    /// Live nicks and the session that holds each.
    pub nicks: DashMap<Nick, SessionId>,
    /// Every session past HELLO (and every `FARM watch` connection), for
    /// pushing `FARM_INFO`, for drains and for rebalancing.
    pub sessions: DashMap<SessionId, SessionHandle>,
    /// Every client connection's queue, from its start (before HELLO too),
    /// keyed by the queue's address: how shutdown reaches each connection
    /// (`Outbound::shut_down`).
    pub queues: DashMap<usize, Arc<crate::outbound::Outbound>>,
    /// When this server started: the origin of [`Shared::uptime_secs`].
    pub started: Instant,
    /// This server's part of the farm-wide nick leases.
    pub leases: crate::leases::Leases,
    /// The farm table as membership last published it (empty for a server
    /// on its own); [`Shared::farm_info`] adds this server's live row.
    pub table: watch::Sender<Arc<FarmInfo>>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Wakes the farm loop when users or status change.
    pub local_changed: Notify,
    /// Open client connections per source IP (entries removed at zero).
    per_ip: DashMap<std::net::IpAddr, u32>,
    /// `FARM watch` connections.
    watchers: AtomicU32,
    draining: AtomicBool,
    /// Bumped by every start and end of a drain: a drain pass goes on only
    /// while the pass number is still its own.
    drain_pass: AtomicU64,
    /// Last reported FULL (for the hysteresis of [`full_after`]).
    full: AtomicBool,
    users: AtomicU32,
    connections: AtomicU32,
    peers_up: AtomicU32,
    next_session: AtomicU64,
    /// Changes of this server's own row (users, status); with the published
    /// table's epoch it makes the epoch clients see, which only grows.
    own_changes: AtomicU64,
}

impl Shared {
    /// Fresh state for a server starting now.
    pub fn new(config: Config) -> Shared {
        let generation = SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_millis() as u64);
        let prefix = format!("{}:{}", config.id, radix36(generation));
        let limits = HistoryLimits { messages: config.history, bytes: config.history_bytes };
        let metrics = Arc::new(Metrics::new());
        let mut rooms = Rooms::new(prefix, limits, config.history_budget, metrics.clone());
        if let Some(farm) = &config.farm {
            // A new owner waits for servers that notice the old one's loss
            // up to one peer timeout later than it did.
            rooms.set_takeover_wait(farm.timers.down_after + farm.timers.heartbeat);
            rooms.hold_at_start(farm.timers.down_after + farm.timers.heartbeat);
            rooms.set_freeze_after(farm.timers.down_after);
        }
        rooms.set_replay_bounds(replay_budget(&config));
        // Away members are announced by the farm's tick: a lone server has
        // none, and announces at once.
        rooms.set_presence_grace(if config.farm.is_some() { config.presence_grace } else { std::time::Duration::ZERO });
        Shared {
            rooms,
            config,
            generation,
            nicks: DashMap::new(),
            sessions: DashMap::new(),
            queues: DashMap::new(),
            started: Instant::now(),
            leases: Default::default(),
            table: watch::Sender::new(Arc::new(FarmInfo { epoch: 1, servers: Vec::new() })),
            metrics,
            local_changed: Notify::new(),
            per_ip: DashMap::new(),
            watchers: AtomicU32::new(0),
            draining: AtomicBool::new(false),
            drain_pass: AtomicU64::new(0),
            full: AtomicBool::new(false),
            users: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            peers_up: AtomicU32::new(0),
            next_session: AtomicU64::new(0),
            own_changes: AtomicU64::new(0),
        }
    }

    /// Whole seconds since the server started (a coarse clock for stamps).
    pub fn uptime_secs(&self) -> u32 {
        self.started.elapsed().as_secs() as u32
    }

    /// The WELCOME token of session `id` with `secret`: `<run>-<id>-<secret>`,
    /// the secret random, so that only its client can present it as resume proof.
    pub fn welcome_token(&self, id: SessionId, secret: u64) -> rttp_proto::Token {
        rttp_proto::Token::new(&format!("{}-{id}-{secret:016x}", radix36(self.generation)))
            .unwrap_or_else(|_| rttp_proto::Token::new("session").expect("valid token"))
    }

    /// The WELCOME token of local session `id`.
    pub fn session_token(&self, id: SessionId) -> Option<rttp_proto::Token> {
        let secret = self.sessions.get(&id)?.secret;
        Some(self.welcome_token(id, secret))
    }

    /// The outbound queue of the local session whose WELCOME token is `token`.
    pub fn session_by_token(&self, token: rttp_proto::Token) -> Option<Arc<Outbound>> {
        let id = token.as_str().split('-').nth(1)?.parse::<SessionId>().ok()?;
        let h = self.sessions.get(&id)?;
        (self.welcome_token(id, h.secret) == token).then(|| h.out.clone())
    }

    /// Sessions past HELLO.
    pub fn users(&self) -> u32 {
        self.users.load(Ordering::Relaxed)
    }

    /// Open client connections.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Peers with a live link.
    pub fn peers_up(&self) -> u32 {
        self.peers_up.load(Ordering::Relaxed)
    }

    /// Records the number of live peer links.
    pub fn set_peers_up(&self, n: u32) {
        if self.peers_up.swap(n, Ordering::Relaxed) != n {
            // Linked to every peer may end the warm-up: status can change.
            self.changed();
        }
    }

    /// Still warming up: a farm member joining through seeds, started less
    /// than [`WARMUP_MIN`] ago (time for its seed to tell it every member),
    /// or not yet linked to every server its table lists (not DOWN), within
    /// [`WARMUP_MAX`]. Until then it reports FULL, so that nobody is sent
    /// here (DNS, selection, REDIRECT and rebalancing take UP servers only)
    /// while a room here would miss the traffic of a peer not yet linked.
    pub fn warming_up(&self) -> bool {
        let Some(farm) = &self.config.farm else { return false };
        let age = self.started.elapsed();
        if farm.seeds.is_empty() || age >= WARMUP_MAX {
            return false;
        }
        let known =
            self.table.borrow().servers.iter().filter(|e| e.id != self.config.id && e.status != Status::Down).count();
        age < WARMUP_MIN || (self.peers_up() as usize) < known.max(1)
    }

    /// Whether the server is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Starts or ends a drain (status DRAINING). Either way, a drain pass
    /// under way stops: a new drain starts a pass of its own.
    pub fn set_draining(&self, on: bool) {
        if self.draining.swap(on, Ordering::AcqRel) != on {
            self.drain_pass.fetch_add(1, Ordering::AcqRel);
            self.changed();
        }
    }

    /// Starts a drain; `Some(pass)` when this call started it, `None` when
    /// the server was already draining (a second SIGUSR1 or a SIGTERM during
    /// a drain must not redirect anyone twice).
    pub fn start_drain(&self) -> Option<u64> {
        if self.draining.swap(true, Ordering::AcqRel) {
            return None;
        }
        let pass = self.drain_pass.fetch_add(1, Ordering::AcqRel) + 1;
        self.changed();
        Some(pass)
    }

    /// Whether drain pass `pass` is still the current one.
    pub fn drain_pass_is(&self, pass: u64) -> bool {
        self.draining() && self.drain_pass.load(Ordering::Acquire) == pass
    }

    /// This server's status. FULL when it cannot take a user: its sessions at
    /// capacity, or its connection slots all taken (pre-HELLO and watchers
    /// included); with hysteresis, so that one user coming and going at the
    /// edge does not flap the status farm-wide.
    pub fn status(&self) -> Status {
        if self.draining() {
            return Status::Draining;
        }
        if self.warming_up() {
            return Status::Full;
        }
        let c = &self.config;
        let was = self.full.load(Ordering::Relaxed);
        let full = full_after(was, self.users(), c.capacity, self.connections(), c.max_connections);
        if full != was {
            self.full.store(full, Ordering::Relaxed);
        }
        if full {
            Status::Full
        } else {
            Status::Up
        }
    }

    /// Wakes the farm driver: users or status changed.
    fn changed(&self) {
        self.own_changes.fetch_add(1, Ordering::Relaxed);
        self.local_changed.notify_one();
    }

    /// The gauges a metrics scrape reads.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            sessions: self.users(),
            connections: self.connections(),
            rooms: self.rooms.len(),
            peers_up: self.peers_up(),
            history_bytes: self.rooms.budget().kept(),
            history_evicted: self.rooms.budget().evicted(),
            replay_queued_bytes: self.rooms.replays().queued(),
        }
    }

    /// A new session number.
    pub fn next_session(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This server's own state, as peers are told it.
    pub fn own_state(&self) -> PeerStateMsg {
        let peer_addr = self.config.farm.as_ref().map_or(self.config.advertise, |f| f.peer_advertise);
        PeerStateMsg {
            id: self.config.id,
            generation: self.generation,
            client_addr: self.config.advertise,
            peer_addr,
            status: self.status(),
            users: self.users(),
            capacity: self.config.capacity,
            group: self.config.group,
            transport: self.transport(),
            ws: self.config.ws_url,
        }
    }

    /// How this server's client port is spoken.
    pub fn transport(&self) -> rttp_proto::Transport {
        match self.config.tls {
            Some(_) => rttp_proto::Transport::Tls,
            None => rttp_proto::Transport::Tcp,
        }
    }

    /// This server's row of the farm table, live.
    pub fn own_entry(&self) -> ServerEntry {
        ServerEntry {
            id: self.config.id,
            addr: self.config.advertise,
            status: self.status(),
            users: self.users(),
            capacity: self.config.capacity,
            group: self.config.group,
            transport: self.transport(),
            ws: self.config.ws_url,
        }
    }

    /// The farm table as this server knows it: every server, DOWN ones
    /// included (marked DOWN), sorted by id; its own row is live. The epoch
    /// is membership's (the one owner of the rest of the table) plus the
    /// changes of the own row, so it grows with every change either makes.
    pub fn farm_info(&self) -> FarmInfo {
        let table = self.table.borrow().clone();
        let mut servers: Vec<ServerEntry> = table.servers.iter().filter(|e| e.id != self.config.id).cloned().collect();
        servers.push(self.own_entry());
        servers.sort_by_key(|e| e.id);
        FarmInfo { epoch: table.epoch + self.own_changes.load(Ordering::Relaxed), servers }
    }

    /// The servers rooms are owned among: UP or FULL (a full server still
    /// serves its sessions; reaching its capacity must not move its rooms),
    /// not draining or down.
    pub fn room_owners(&self) -> Vec<ServerId> {
        use rttp_proto::Status;
        let servers = self.farm_info().servers;
        servers.iter().filter(|e| matches!(e.status, Status::Up | Status::Full)).map(|e| e.id).collect()
    }

    /// The farm table cut to the servers whose client port speaks what this
    /// one's does: a client is never sent from TLS to plaintext (nor the
    /// reverse, which it could not speak).
    pub fn same_transport(&self) -> FarmInfo {
        let mut info = self.farm_info();
        let own = self.transport();
        info.servers.retain(|e| e.transport == own);
        info
    }

    /// A server to send a client to instead of this one: power of two
    /// choices over UP servers of the same transport, this server's group first.
    pub fn redirect_target(&self) -> Option<(ServerId, HostPort)> {
        let info = self.same_transport();
        let mut rng = rand::rng();
        select(&info.servers, Some(&self.config.group), Strategy::P2c, &[self.config.id], &mut rng)
            .map(|e| (e.id, e.addr))
    }
}

/// Shortest warm-up of a server joining through seeds (see
/// [`Shared::warming_up`]): its seed's MEMBER frames arrive and its dials to
/// the others complete in milliseconds on a LAN.
pub const WARMUP_MIN: std::time::Duration = std::time::Duration::from_secs(1);
/// Longest warm-up: a peer that cannot be reached does not keep a server
/// out of the farm for longer.
pub const WARMUP_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// `n` in base 36, lower case: short ids.
pub fn radix36(mut n: u64) -> String {
    let digits = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(digits[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

/// The bounds of rejoin replays queued to sessions: all sessions together
/// twice `--history-budget` (a replay shares the history's frames, so the
/// history and the messages replays still hold after it dropped them stay
/// within three times the budget), one session a quarter of that, or less
/// when every room it may join, replayed whole twice (this server's history
/// and a peer's gap fill), needs less.
fn replay_budget(config: &Config) -> crate::outbound::ReplayBudget {
    let room = config.history_bytes.saturating_add(config.history.saturating_mul(crate::outbound::REF_COST));
    let total = config.history_budget.saturating_mul(2);
    let every_room = config.max_rooms.saturating_mul(room).saturating_mul(2);
    crate::outbound::ReplayBudget::new(every_room.min(total / 4), total)
}

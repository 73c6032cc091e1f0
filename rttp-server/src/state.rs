//! The state every task of one server shares, behind one `Arc`.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use rttp_proto::{FarmInfo, Nick, ServerEntry, Status};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::rooms::{HistoryLimits, Rooms, SessionId};

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
    /// Metrics.
    pub metrics: Metrics,
    users: AtomicU32,
    connections: AtomicU32,
    next_session: AtomicU64,
    epoch: AtomicU64,
}

impl Shared {
    /// Fresh state for a server starting now.
    pub fn new(config: Config) -> Shared {
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as u64);
        let prefix = format!("{}:{}", config.id, radix36(generation));
        let limits = HistoryLimits {
            messages: config.history,
            bytes: config.history_bytes,
        };
        Shared {
            rooms: Rooms::new(prefix, limits),
            config,
            generation,
            nicks: DashMap::new(),
            metrics: Metrics::new(),
            users: AtomicU32::new(0),
            connections: AtomicU32::new(0),
            next_session: AtomicU64::new(0),
            epoch: AtomicU64::new(1),
        }
    }

    /// Sessions past HELLO.
    pub fn users(&self) -> u32 {
        self.users.load(Ordering::Relaxed)
    }

    /// Open client connections.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// This server's status.
    pub fn status(&self) -> Status {
        if self.users() >= self.config.capacity {
            Status::Full
        } else {
            Status::Up
        }
    }

    /// Takes a user slot unless the server is full.
    pub fn try_add_user(&self) -> bool {
        let cap = self.config.capacity;
        let ok = self
            .users
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u < cap).then_some(u + 1)
            })
            .is_ok();
        if ok {
            self.epoch.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Gives a user slot back.
    pub fn remove_user(&self) {
        self.users.fetch_sub(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes a connection slot unless the hard cap is reached.
    pub fn try_add_connection(&self) -> bool {
        let max = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| {
                (c < max).then_some(c + 1)
            })
            .is_ok()
    }

    /// Gives a connection slot back.
    pub fn remove_connection(&self) {
        self.connections.fetch_sub(1, Ordering::AcqRel);
    }

    /// A new session number.
    pub fn next_session(&self) -> SessionId {
        self.next_session.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// This server's row of the farm table.
    pub fn own_entry(&self) -> ServerEntry {
        ServerEntry {
            id: self.config.id,
            addr: self.config.advertise,
            status: self.status(),
            users: self.users(),
            capacity: self.config.capacity,
            group: self.config.group,
        }
    }

    /// The farm table as this server knows it.
    pub fn farm_info(&self) -> FarmInfo {
        FarmInfo {
            epoch: self.epoch.load(Ordering::Relaxed),
            servers: vec![self.own_entry()],
        }
    }
}

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

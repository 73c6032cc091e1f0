//! Publishing the farm table membership emits: the snapshot every session,
//! farm-dns watcher and metrics scrape reads, and the `FARM_INFO` pushes to
//! clients (at once on a status change, at most once a second when only
//! user counts moved by more than 5 %).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rttp_proto::{FarmInfo, Frame, ServerFrame, ServerId};
use tokio::time::Instant;

use crate::state::Shared;

/// How often user counts alone may cause a `FARM_INFO` push to clients.
pub const USERS_PUSH_EVERY: Duration = Duration::from_secs(1);

/// The push policy's memory: what clients were last told.
#[derive(Debug)]
pub struct Publisher {
    pushed_users: HashMap<ServerId, u32>,
    last_check: Instant,
}

impl Publisher {
    /// Nothing pushed yet.
    pub fn new(now: Instant) -> Publisher {
        Publisher { pushed_users: HashMap::new(), last_check: now }
    }

    /// Publishes a new table; pushes it to every client when `push`.
    pub fn publish(&mut self, shared: &Shared, table: FarmInfo, push: bool) {
        shared.table.send_replace(Arc::new(table));
        if push {
            self.push(shared);
        }
    }

    /// Pushes the current table if user counts moved enough since the last push.
    pub fn tick(&mut self, shared: &Shared, now: Instant) {
        if now < self.last_check + USERS_PUSH_EVERY {
            return;
        }
        self.last_check = now;
        if users_moved(&shared.farm_info(), &self.pushed_users) {
            self.push(shared);
        }
    }

    /// Pushes `FARM_INFO` to every session, encoded once.
    fn push(&mut self, shared: &Shared) {
        let info = shared.farm_info();
        self.pushed_users = info.servers.iter().map(|e| (e.id, e.users)).collect();
        let frame = ServerFrame::FarmInfo(info).to_bytes();
        let mut n = 0;
        for s in shared.sessions.iter() {
            s.value().out.push(frame.clone());
            n += 1;
        }
        shared.metrics.frames_out("FARM_INFO", n);
    }
}

/// Whether some server's user count moved by more than 5 % since `last`.
pub fn users_moved(info: &FarmInfo, last: &HashMap<ServerId, u32>) -> bool {
    info.servers.iter().any(|e| {
        let old = last.get(&e.id).copied().unwrap_or(0);
        u64::from(e.users.abs_diff(old)) * 20 > u64::from(old.max(1))
    })
}

#[cfg(test)]
mod tests {
    use rttp_proto::{ServerEntry, Status};

    use super::*;

    fn info(users: &[u32]) -> FarmInfo {
        let servers = users
            .iter()
            .enumerate()
            .map(|(i, &u)| ServerEntry {
                id: ServerId::new(&format!("s{}", i + 1)).unwrap(),
                addr: format!("127.0.0.{}:7000", i + 1).parse().unwrap(),
                status: Status::Up,
                users: u,
                capacity: 1000,
                group: "g".parse().unwrap(),
                transport: Default::default(),
                ws: None,
            })
            .collect();
        FarmInfo { epoch: 1, servers }
    }

    #[test]
    fn user_counts_push_only_past_five_percent() {
        let last: HashMap<ServerId, u32> = info(&[100, 0]).servers.iter().map(|e| (e.id, e.users)).collect();
        assert!(!users_moved(&info(&[100, 0]), &last), "nothing moved");
        assert!(!users_moved(&info(&[105, 0]), &last), "5 % is not past 5 %");
        assert!(users_moved(&info(&[106, 0]), &last), "6 % is");
        assert!(users_moved(&info(&[94, 0]), &last), "down counts too");
        assert!(users_moved(&info(&[100, 1]), &last), "from zero, one user is a move");
        assert!(!users_moved(&info(&[100, 0, 0]), &last), "a new empty server is no user move");
    }
}

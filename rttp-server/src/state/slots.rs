//! The server's admission counters: user slots (capacity), connection
//! slots (the hard cap), each address's connections and the `FARM watch`
//! slots. Each is taken before what it counts starts and given back when it
//! ends; the FULL status follows the first two.

use std::sync::atomic::Ordering;

use super::Shared;

impl Shared {
    /// Takes a user slot unless the server is full.
    pub fn try_add_user(&self) -> bool {
        let cap = self.config.capacity;
        let ok = self.users.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| (u < cap).then_some(u + 1)).is_ok();
        if ok {
            self.changed();
        }
        ok
    }

    /// Gives a user slot back.
    pub fn remove_user(&self) {
        self.users.fetch_sub(1, Ordering::AcqRel);
        self.changed();
    }

    /// Takes a connection slot unless the hard cap is reached.
    pub fn try_add_connection(&self) -> bool {
        let max = self.config.max_connections;
        let r = self.connections.fetch_update(Ordering::AcqRel, Ordering::Acquire, |c| (c < max).then_some(c + 1));
        if r == Ok(max - 1) {
            // The last slot: the server can take no one, so it reports FULL.
            self.changed();
        }
        r.is_ok()
    }

    /// Gives a connection slot back.
    pub fn remove_connection(&self) {
        if self.connections.fetch_sub(1, Ordering::AcqRel) == self.config.max_connections {
            self.changed();
        }
    }

    /// Takes one of `ip`'s connection slots unless it has `--max-per-ip`.
    pub fn try_add_ip(&self, ip: std::net::IpAddr) -> bool {
        let mut n = self.per_ip.entry(ip).or_insert(0);
        if *n >= self.config.max_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    /// Gives one of `ip`'s connection slots back.
    pub fn remove_ip(&self, ip: std::net::IpAddr) {
        if let dashmap::Entry::Occupied(mut e) = self.per_ip.entry(ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }

    /// Takes a watcher slot unless `--max-watchers` are watching.
    pub fn try_add_watcher(&self) -> bool {
        let max = self.config.max_watchers;
        self.watchers.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| (w < max).then_some(w + 1)).is_ok()
    }

    /// Gives a watcher slot back.
    pub fn remove_watcher(&self) {
        self.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Whether a server is FULL, given whether it was: FULL at `capacity`
/// sessions (or with every connection slot taken), UP again only once 1% of
/// the capacity is free (for capacities of 200 and more; smaller ones switch
/// at the edge).
pub fn full_after(was: bool, users: u32, capacity: u32, connections: u32, max_connections: u32) -> bool {
    if connections >= max_connections {
        return true;
    }
    let margin = (capacity / 100).max(1);
    if was {
        users.saturating_add(margin) > capacity
    } else {
        users >= capacity
    }
}

#[cfg(test)]
mod tests {
    use super::full_after;

    #[test]
    fn full_has_hysteresis_and_counts_connection_slots() {
        // Capacity 1,000: FULL at 1,000, UP again at 990.
        assert!(!full_after(false, 999, 1000, 0, 2000));
        assert!(full_after(false, 1000, 1000, 0, 2000));
        assert!(full_after(true, 999, 1000, 0, 2000), "one user leaving does not flap to UP");
        assert!(full_after(true, 991, 1000, 0, 2000));
        assert!(!full_after(true, 990, 1000, 0, 2000), "1% free: UP again");
        // Every connection slot taken: FULL, whatever the sessions.
        assert!(full_after(false, 3, 1000, 2000, 2000));
        // A small capacity switches at the edge.
        assert!(full_after(false, 2, 2, 0, 100) && !full_after(true, 1, 2, 0, 100));
    }
}

//! What each client of `rttp-load failover` saw, and how it is tallied:
//! messages lost or read twice, the time back in its room and its phases,
//! and the reconnect burst at each survivor.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one failover client saw.
#[derive(Debug, Default, Clone)]
pub(crate) struct ClientLog {
    pub(crate) msgs: Vec<String>,
    /// When it lost the killed server (its first loss).
    pub(crate) down: Option<Instant>,
    /// When it first opened a session on a survivor after that.
    pub(crate) opened: Option<Instant>,
    /// When it was first back in its room after that.
    pub(crate) back: Option<Instant>,
    /// Between a loss (any, a survivor's too) and the rejoin after it.
    pub(crate) moving: bool,
}

/// Sessions the moved clients opened: at which server, when.
pub(crate) type Opened = Arc<Mutex<Vec<(rttp_proto::ServerId, Instant)>>>;

/// The most sessions one server opened for the moved clients in any
/// [`BURST_WINDOW`] (per second), for each server: the reconnect burst.
pub(crate) fn burst_rates(opened: &[(rttp_proto::ServerId, Instant)]) -> Vec<(rttp_proto::ServerId, f64)> {
    let mut by: std::collections::BTreeMap<rttp_proto::ServerId, Vec<Instant>> = Default::default();
    for (s, t) in opened {
        by.entry(*s).or_default().push(*t);
    }
    by.into_iter()
        .map(|(s, mut ts)| {
            ts.sort();
            let (mut most, mut lo) = (0, 0);
            for hi in 0..ts.len() {
                while ts[hi].duration_since(ts[lo]) >= BURST_WINDOW {
                    lo += 1;
                }
                most = most.max(hi - lo + 1);
            }
            (s, most as f64 / BURST_WINDOW.as_secs_f64())
        })
        .collect()
}

/// The window the reconnect burst is counted in.
const BURST_WINDOW: Duration = Duration::from_millis(250);

/// Messages lost and duplicated over every client's log, and the times
/// each took to be back in its room after losing its server (ms).
pub(crate) fn tally_failover(
    s: &HashMap<usize, ClientLog>,
    clients: usize,
    rooms: usize,
    per_room: usize,
) -> (usize, usize, Vec<f64>) {
    let (mut lost, mut dup, mut times) = (0usize, 0usize, Vec::new());
    for i in 0..clients {
        let Some(ClientLog { msgs, down, back, .. }) = s.get(&i) else {
            lost += per_room;
            continue;
        };
        let r = i % rooms;
        for k in 0..per_room {
            let n = msgs.iter().filter(|m| **m == format!("f{r}-{k}")).count();
            if n == 0 {
                lost += 1;
            } else {
                dup += n - 1;
            }
        }
        if let (Some(d), Some(b)) = (down, back) {
            times.push(b.duration_since(*d).as_secs_f64() * 1000.0);
        }
    }
    (lost, dup, times)
}

/// Where a failover's time goes, each as "p50/p99" in ms: from the kill
/// to the client seeing the loss, from there to a session open on a
/// survivor (the client's jittered pause, the connect and HELLO), and from
/// there to back in its room (JOIN and the replay).
pub(crate) struct Phases {
    pub(crate) seen: String,
    pub(crate) open: String,
    pub(crate) rejoin: String,
}

impl Phases {
    pub(crate) fn of(s: &HashMap<usize, ClientLog>, killed_at: Instant) -> Phases {
        let (mut seen, mut open, mut rejoin) = (Vec::new(), Vec::new(), Vec::new());
        let ms = |a: Instant, b: Instant| b.saturating_duration_since(a).as_secs_f64() * 1000.0;
        for e in s.values() {
            if let (Some(d), Some(o), Some(b)) = (e.down, e.opened, e.back) {
                seen.push(ms(killed_at, d));
                open.push(ms(d, o));
                rejoin.push(ms(o, b));
            }
        }
        let show = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            let at = |q: f64| v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied();
            match (at(0.5), at(0.99)) {
                (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
                _ => String::from("n/a"),
            }
        };
        Phases { seen: show(seen), open: show(open), rejoin: show(rejoin) }
    }
}

//! What a farm holds of the machine while it runs: its own loopback range
//! `127.A.B.0/24` (claimed with a lock file, so two test processes never
//! share one), and one of a few slots, so that a many-core runner does not
//! start every farm of the suite at once under the same time bounds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};

use nix::sys::signal::kill;
use nix::unistd::Pid;

/// Farms that may run at once in one test process (`RTTP_TEST_FARMS` overrides).
pub const MAX_FARMS: usize = 4;

static RUNNING: Mutex<usize> = Mutex::new(0);
static FREED: Condvar = Condvar::new();

/// A slot among the farms that run at once; freed on drop.
#[derive(Debug)]
pub struct Slot(());

impl Slot {
    /// Waits for a free slot. Blocking is fine here: a test takes its slot
    /// before anything else runs on its runtime.
    pub fn take() -> Slot {
        let max = std::env::var("RTTP_TEST_FARMS").ok().and_then(|v| v.parse().ok()).unwrap_or(MAX_FARMS).max(1);
        let mut n = RUNNING.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max {
            n = FREED.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
        Slot(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        FREED.notify_one();
    }
}

/// A claimed loopback range; its lock file is removed on drop.
#[derive(Debug)]
pub struct Range {
    /// The second and third octets: the range is `127.A.B.0/24`.
    pub octets: (u8, u8),
    lock: PathBuf,
}

fn alive(pid: i32) -> bool {
    pid > 0 && kill(Pid::from_raw(pid), None).is_ok()
}

impl Range {
    /// Claims a free range. `127.0.0.x` is left to `make farm`; candidates
    /// start from the process id, and a lock left by a dead process is taken over.
    pub fn claim() -> Range {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let me = std::process::id();
        for _ in 0..200 * 250 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let a = 10 + ((me + n / 250) % 200) as u8;
            let b = 1 + (n % 250) as u8;
            let lock = std::env::temp_dir().join(format!("rttp-range-127.{a}.{b}.lock"));
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => {
                    let _ = std::fs::write(&lock, me.to_string());
                    return Range { octets: (a, b), lock };
                }
                Err(_) => {
                    let owner = std::fs::read_to_string(&lock).ok().and_then(|t| t.trim().parse::<i32>().ok());
                    if owner.is_some_and(|p| !alive(p)) {
                        let _ = std::fs::remove_file(&lock);
                    }
                }
            }
        }
        panic!("no free loopback range 127.A.B.0/24 for a test farm");
    }
}

impl Drop for Range {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.lock);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_claims_never_share_a_range_and_a_dropped_one_is_free_again() {
        let (r1, r2) = (Range::claim(), Range::claim());
        assert_ne!(r1.octets, r2.octets);
        let path = r1.lock.clone();
        assert!(path.exists());
        drop(r1);
        assert!(!path.exists(), "the lock goes with the claim");
    }
}

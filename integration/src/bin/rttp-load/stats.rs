//! Latency histograms and per-process CPU and memory, read from /proc.

use hdrhistogram::Histogram;

/// A latency histogram in microseconds, 1 µs to 60 s.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// p50 and p99 in milliseconds.
pub(crate) fn p50_p99(h: &Histogram<u64>) -> (f64, f64) {
    if h.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0)
}

/// CPU seconds (user + system) a process has used.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    // CLK_TCK is 100 on Linux.
    ticks / 100.0
}

/// Resident memory of a process, in KiB.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Idle CPU seconds of the whole machine (idle + iowait of all cores).
fn machine_idle_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return 0.0 };
    let f: Vec<f64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    (f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0)) / 100.0
}

/// What this process, named other processes and the machine's idle time
/// used of the cores over a window: shows whether a figure was bound by the
/// servers or by the load generator that shares their cores.
pub(crate) struct CpuWindow {
    own: f64,
    others: Vec<(String, u32, f64)>,
    idle: f64,
    at: std::time::Instant,
}

/// Cores used over a [`CpuWindow`] (CPU seconds per second).
#[derive(Default)]
pub(crate) struct CoresUsed {
    /// How long the window was.
    pub(crate) secs: f64,
    /// This process: the load generator.
    pub(crate) own: f64,
    /// Each named process.
    pub(crate) others: Vec<(String, f64)>,
    /// The whole machine's idle cores.
    pub(crate) idle: f64,
}

impl CpuWindow {
    /// Starts the window now for this process and `others` (name, pid).
    pub(crate) fn start(others: Vec<(String, u32)>) -> CpuWindow {
        let others = others.into_iter().map(|(n, p)| (n, p, cpu_seconds(p))).collect();
        let own = cpu_seconds(std::process::id());
        CpuWindow { own, others, idle: machine_idle_seconds(), at: std::time::Instant::now() }
    }

    /// What each used since the start.
    pub(crate) fn cores(&self) -> CoresUsed {
        let secs = self.at.elapsed().as_secs_f64().max(1e-3);
        CoresUsed {
            secs,
            own: (cpu_seconds(std::process::id()) - self.own) / secs,
            others: self.others.iter().map(|(n, p, c0)| (n.clone(), (cpu_seconds(*p) - c0) / secs)).collect(),
            idle: (machine_idle_seconds() - self.idle) / secs,
        }
    }
}

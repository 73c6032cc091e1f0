//! Open files: every connection is a file descriptor, so a server whose
//! soft `RLIMIT_NOFILE` is the usual 1,024 fails `accept` long before its own
//! connection cap, and its clients hang in the backlog. At start a server
//! raises the soft limit to the hard one, and refuses to start when even the
//! hard limit cannot hold what it is configured to serve.

use nix::sys::resource::{getrlimit, setrlimit, Resource};

/// Descriptors a process needs besides its connections: listeners, logs,
/// the resolver, a metrics scrape or two.
pub const RESERVED: u64 = 64;

/// Raises the soft limit to the hard limit; `Ok(soft)` when `needed`
/// descriptors fit, else the reason, for the operator.
pub fn raise_for(needed: u64) -> Result<u64, String> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("cannot read RLIMIT_NOFILE: {e}"))?;
    let soft = if soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        }
    } else {
        soft
    };
    if soft < needed {
        return Err(format!(
            "needs {needed} open files, and the limit is {soft} (hard {hard}): raise it (ulimit -n, \
             LimitNOFILE= in the systemd unit) or configure fewer connections"
        ));
    }
    Ok(soft)
}

/// Which descriptors a `needed` count is made of, for the message.
pub fn needed(connections: u64, others: u64) -> u64 {
    connections.saturating_add(others).saturating_add(RESERVED)
}

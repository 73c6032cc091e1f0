//! Configuration: command-line flags, then `RTTP_*` environment variables,
//! then the TOML file, then defaults (first one set wins).

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use rttp_proto::{Group, HostPort, Limits, ServerId};

use crate::error::{Error, Result};

mod args;
pub use args::Args;

/// The farm settings of a server that is a farm member.
#[derive(Debug, Clone)]
pub struct FarmConfig {
    /// Where to accept peer links.
    pub peer_listen: SocketAddr,
    /// The peer address published to others.
    pub peer_advertise: HostPort,
    /// Where to join the farm.
    pub seeds: Vec<SocketAddr>,
    /// The cluster secret.
    pub secret: crate::farm::auth::Secret,
    /// Heartbeats, failure detection, redials.
    pub timers: crate::farm::membership::Timers,
    /// Mutual TLS on peer links; `None`: plaintext links.
    pub tls: Option<crate::tls::PeerTls>,
}

/// The error for a bad value of `--what`.
fn bad(what: &str, why: String) -> Error {
    Error::Config(format!("invalid --{what}: {why}"))
}

/// A positive number of seconds.
fn secs(what: &str, v: f64) -> Result<Duration> {
    if v.is_finite() && v > 0.0 && v < 1e9 {
        Ok(Duration::from_secs_f64(v))
    } else {
        Err(bad(what, format!("{v} is not a positive number of seconds")))
    }
}

/// Seconds, where 0 turns the thing off.
fn secs_or_zero(what: &str, v: f64) -> Result<Duration> {
    if v == 0.0 {
        Ok(Duration::ZERO)
    } else {
        secs(what, v).map_err(|_| bad(what, format!("{v} is not 0 or a positive number of seconds")))
    }
}

/// At least `min`, so that HELLO and ERR fit on a line.
fn at_least(what: &str, v: usize, min: usize) -> Result<usize> {
    if v < min {
        Err(bad(what, format!("must be at least {min}, so that HELLO and ERR fit on a line")))
    } else {
        Ok(v)
    }
}

/// At least 1.
fn positive(what: &str, v: usize) -> Result<usize> {
    if v == 0 {
        Err(bad(what, "must be at least 1".into()))
    } else {
        Ok(v)
    }
}

/// A positive, finite rate.
fn rate(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(bad(what, format!("{v} is not a positive rate")))
    }
}

/// Reads the cluster secret file, refusing one that group or others may
/// read (as ssh refuses such a private key): the secret is the farm's only
/// peer authentication.
fn read_secret(path: &std::path::Path, what: &str) -> Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let bad = |reason: String| Error::ConfigFile { path: path.to_path_buf(), reason };
    let meta = std::fs::metadata(path).map_err(|e| bad(format!("cannot read the {what}: {e}")))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "the {what} is readable by group or others (mode {mode:04o}): chmod 600 it, owned by the server's user"
        )));
    }
    std::fs::read_to_string(path).map_err(|e| bad(format!("cannot read the {what}: {e}")))
}

/// `--max-body` may lower the protocol's body limit, never raise it: peer
/// links and the client library decode with the protocol's limit, so one
/// bigger SAY would cut every interested peer link and make clients loop.
fn at_most_protocol_body(v: usize) -> Result<usize> {
    if v > rttp_proto::MAX_BODY {
        return Err(Error::Config(format!(
            "invalid --max-body: {v} is over the protocol's {} bytes, which peers and clients decode with; \
             it may only be lowered",
            rttp_proto::MAX_BODY
        )));
    }
    Ok(v)
}

/// A fraction in (0, 1].
fn fraction(what: &str, v: f64) -> Result<f64> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(bad(what, format!("{v} is not a fraction in (0, 1]")))
    }
}

/// The rebalancing policy; `None` when `--rebalance off`.
fn rebalance(cli: &Args, file: &Args) -> Result<Option<rttp_proto::rebalance::Policy>> {
    if !cli.rebalance.or(file.rebalance).unwrap_or(true) {
        return Ok(None);
    }
    let d = rttp_proto::rebalance::Policy::default();
    Ok(Some(rttp_proto::rebalance::Policy {
        margin: fraction("rebalance-margin", cli.rebalance_margin.or(file.rebalance_margin).unwrap_or(d.margin))?,
        rate: fraction("rebalance-rate", cli.rebalance_rate.or(file.rebalance_rate).unwrap_or(d.rate))?,
        min_stay: match cli.rebalance_min_stay.or(file.rebalance_min_stay) {
            Some(s) => secs("rebalance-min-stay", s)?,
            None => d.min_stay,
        },
    }))
}

/// Token mode's keys, from every `--auth-key-file` (the command line's, or
/// else the file's); `None` without one: an open farm.
fn token_keys(cli: &Args, file: &Args) -> Result<Option<crate::token::TokenKey>> {
    let paths = if cli.auth_key_file.is_empty() { &file.auth_key_file } else { &cli.auth_key_file };
    let mut texts = Vec::new();
    for path in paths {
        texts.push(read_secret(path, "token key")?);
    }
    if texts.is_empty() {
        return Ok(None);
    }
    crate::token::TokenKey::with_keys(&texts).map(Some)
}

/// The WebSocket URL to publish: `--ws-advertise`, or made from `--ws-listen`.
fn ws_url(cli: &Args, file: &Args, tls: bool) -> Result<Option<rttp_proto::Token>> {
    let url = match (cli.ws_advertise.clone().or(file.ws_advertise.clone()), cli.ws_listen.or(file.ws_listen)) {
        (Some(u), _) => u,
        // With the client port's certificate the web listener speaks TLS too.
        (None, Some(listen)) => format!("{}://{listen}{}", if tls { "wss" } else { "ws" }, crate::web::WS_PATH),
        (None, None) => return Ok(None),
    };
    if !(url.starts_with("ws://") || url.starts_with("wss://")) {
        return Err(bad("ws-advertise", format!("{url:?} is not a ws:// or wss:// URL")));
    }
    rttp_proto::Token::new(&url).map(Some).map_err(|e| bad("ws-advertise", e.to_string()))
}

/// The client port's TLS, from `--tls-cert` and `--tls-key` (both or neither).
fn client_tls(cli: &Args, file: &Args) -> Result<Option<crate::tls::ServerTls>> {
    match (cli.tls_cert.as_ref().or(file.tls_cert.as_ref()), cli.tls_key.as_ref().or(file.tls_key.as_ref())) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => crate::tls::ServerTls::load(cert, key).map(Some),
        _ => Err(Error::Config("--tls-cert and --tls-key go together".into())),
    }
}

/// The peer links' mutual TLS, from `--peer-ca`, `--peer-cert` and `--peer-key` (all or none).
fn peer_tls(cli: &Args, file: &Args) -> Result<Option<crate::tls::PeerTls>> {
    let ca = cli.peer_ca.as_ref().or(file.peer_ca.as_ref());
    let cert = cli.peer_cert.as_ref().or(file.peer_cert.as_ref());
    let key = cli.peer_key.as_ref().or(file.peer_key.as_ref());
    match (ca, cert, key) {
        (None, None, None) => Ok(None),
        (Some(ca), Some(cert), Some(key)) => crate::tls::PeerTls::load(ca, cert, key).map(Some),
        _ => Err(Error::Config("--peer-ca, --peer-cert and --peer-key go together".into())),
    }
}

/// The shortest `--max-line` accepted: every fixed-size frame of the
/// protocol (HELLO with a 32-byte nick, WELCOME, an ERR with its code) fits.
pub const MIN_LINE: usize = 64;

/// The server's settings, complete and validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// This server's id.
    pub id: ServerId,
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The client address published in the farm table.
    pub advertise: HostPort,
    /// Zone or region.
    pub group: Group,
    /// Sessions before FULL.
    pub capacity: u32,
    /// Hard cap on connections.
    pub max_connections: u32,
    /// Worker threads; `None`: one per core.
    pub threads: Option<usize>,
    /// Connections from one IP address.
    pub max_per_ip: u32,
    /// `FARM watch` connections.
    pub max_watchers: u32,
    /// Metrics address.
    pub metrics: Option<SocketAddr>,
    /// Time allowed before HELLO.
    pub hello_timeout: Duration,
    /// Silence before PING.
    pub ping_after: Duration,
    /// Silence before close.
    pub idle_timeout: Duration,
    /// How long members of a lost server are away before `PARTED`.
    pub presence_grace: Duration,
    /// Malformed frames in a row before close.
    pub max_bad_frames: u32,
    /// Sustained SAY rate per session.
    pub say_rate: f64,
    /// SAY burst per session.
    pub say_burst: u32,
    /// Frames per second per session, every verb (reading pauses past it).
    pub frame_rate: f64,
    /// Frame burst per session.
    pub frame_burst: u32,
    /// Bytes per second per session, in and WHO out (reading pauses past it).
    pub byte_rate: f64,
    /// Byte burst per session.
    pub byte_burst: u32,
    /// JOIN and PART per second per session (reading pauses past it).
    pub join_rate: f64,
    /// JOIN and PART burst per session.
    pub join_burst: u32,
    /// Outbound bytes per session past which it is behind.
    pub outbound_limit: usize,
    /// Outbound bytes per session past which it is cut at once.
    pub outbound_max: usize,
    /// How long a session may stay behind before it is cut.
    pub slow_consumer_after: Duration,
    /// Messages kept per room.
    pub history: usize,
    /// Bytes of history kept per room.
    pub history_bytes: usize,
    /// Bytes of history kept by all rooms together.
    pub history_budget: usize,
    /// Rooms per session.
    pub max_rooms: usize,
    /// Fault injection for tests: a HELLO with this nick panics its task.
    #[doc(hidden)]
    pub panic_nick: Option<rttp_proto::Nick>,
    /// Wire limits.
    pub limits: Limits,
    /// How long a drain spreads its REDIRECTs over.
    pub drain_window: std::time::Duration,
    /// Token mode's key; `None` for an open farm.
    pub token_key: Option<crate::token::TokenKey>,
    /// The client port's TLS; `None`: plaintext.
    pub tls: Option<crate::tls::ServerTls>,
    /// Where to serve RTTP over WebSocket; `None`: no web listener.
    pub ws_listen: Option<SocketAddr>,
    /// The WebSocket URL published in the farm table.
    pub ws_url: Option<rttp_proto::Token>,
    /// Page origins allowed besides the farm's own (`--ws-origin`).
    pub ws_origins: Vec<String>,
    /// Rebalancing; `None` when off (a standalone server never rebalances).
    pub rebalance: Option<rttp_proto::rebalance::Policy>,
    /// The farm settings; `None` for a standalone server.
    pub farm: Option<FarmConfig>,
}

impl Config {
    /// The farm part: present when a peer address, a seed or a secret is given.
    fn farm(cli: &Args, file: &Args, listen: SocketAddr) -> Result<Option<FarmConfig>> {
        let seeds = if cli.seed.is_empty() { file.seed.clone() } else { cli.seed.clone() };
        let peer_listen = cli.peer_listen.or(file.peer_listen);
        let secret_file = cli.secret_file.clone().or(file.secret_file.clone());
        let secret_env = std::env::var("RTTP_CLUSTER_SECRET").ok().filter(|s| !s.is_empty());
        if peer_listen.is_none() && seeds.is_empty() && secret_file.is_none() && secret_env.is_none() {
            if [&cli.peer_ca, &cli.peer_cert, &cli.peer_key, &file.peer_ca, &file.peer_cert, &file.peer_key]
                .iter()
                .any(|p| p.is_some())
            {
                return Err(Error::Config("--peer-ca, --peer-cert and --peer-key are for a farm member".into()));
            }
            return Ok(None);
        }
        let text = match (secret_file, secret_env) {
            (Some(path), _) => read_secret(&path, "cluster secret")?,
            (None, Some(s)) => s,
            (None, None) => {
                return Err(Error::Config(
                    "a farm member needs the cluster secret: --secret-file <PATH> or RTTP_CLUSTER_SECRET \
                     (there is no insecure default)"
                        .into(),
                ))
            }
        };
        let secret = crate::farm::auth::Secret::new(&text).map_err(Error::Config)?;
        let peer_listen = peer_listen.unwrap_or(SocketAddr::new(listen.ip(), 7100));
        let peer_advertise = match cli.peer_advertise.clone().or(file.peer_advertise.clone()) {
            Some(a) => HostPort::new(&a).map_err(|e| Error::Config(format!("invalid --peer-advertise: {e}")))?,
            None => HostPort::from(peer_listen),
        };
        let heartbeat = secs("heartbeat", cli.heartbeat.or(file.heartbeat).unwrap_or(0.5))?;
        let down_after = secs("peer-timeout", cli.peer_timeout.or(file.peer_timeout).unwrap_or(2.0))?;
        if down_after <= heartbeat {
            return Err(Error::Config("invalid --peer-timeout: must be longer than --heartbeat".into()));
        }
        let timers = crate::farm::membership::Timers { heartbeat, down_after, ..Default::default() };
        let tls = peer_tls(cli, file)?;
        Ok(Some(FarmConfig { peer_listen, peer_advertise, seeds, secret, timers, tls }))
    }

    /// A configuration with defaults, for tests and embedding.
    pub fn new(id: &str) -> Result<Config> {
        Config::resolve(Args { id: Some(id.to_string()), ..Args::default() })
    }

    /// Parses the process's flags, environment and file. Exits with code 2
    /// and a message on a bad flag value (clap's own behaviour).
    pub fn from_env() -> Result<Config> {
        Config::resolve(Args::parse())
    }

    /// Merges flags over the file over defaults, and validates.
    pub fn resolve(cli: Args) -> Result<Config> {
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::ConfigFile { path: path.clone(), reason: e.to_string() })?;
                toml::from_str::<Args>(&text)
                    .map_err(|e| Error::ConfigFile { path: path.clone(), reason: e.to_string() })?
            }
            None => Args::default(),
        };
        macro_rules! pick {
            ($f:ident, $default:expr) => {
                cli.$f.clone().or(file.$f.clone()).unwrap_or_else(|| $default)
            };
        }
        let id = cli
            .id
            .clone()
            .or(file.id.clone())
            .ok_or_else(|| Error::Config("--id is required (or RTTP_ID, or id in the config file)".into()))?;
        let id = ServerId::new(&id).map_err(|e| bad("id", e.to_string()))?;
        let listen = pick!(listen, SocketAddr::from(([127, 0, 0, 1], 7000)));
        let advertise = match cli.advertise.clone().or(file.advertise.clone()) {
            Some(a) => HostPort::new(&a).map_err(|e| bad("advertise", e.to_string()))?,
            None => HostPort::from(listen),
        };
        let group = Group::new(&pick!(group, "default".into())).map_err(|e| bad("group", e.to_string()))?;
        let capacity = pick!(capacity, 10_000);
        let max_connections = pick!(max_connections, capacity.saturating_add(capacity / 10).saturating_add(64));
        let say_rate = rate("say-rate", pick!(say_rate, 20.0))?;
        let max_rooms = positive("max-rooms", pick!(max_rooms, 100))?;
        let outbound_limit = positive("outbound-limit", pick!(outbound_limit, 1 << 20))?;
        let tls = client_tls(&cli, &file)?;
        let with_tls = tls.is_some();
        let outbound_max = pick!(outbound_max, 16 << 20).max(outbound_limit);
        let history_bytes = pick!(history_bytes, 4 << 20);
        let limits = Limits {
            max_line: at_least("max-line", pick!(max_line, rttp_proto::MAX_LINE), MIN_LINE)?,
            max_body: at_most_protocol_body(pick!(max_body, rttp_proto::MAX_BODY))?,
            ..Limits::default()
        };
        Ok(Config {
            id,
            listen,
            advertise,
            group,
            capacity,
            max_connections,
            threads: cli.threads.or(file.threads).map(|n| positive("threads", n)).transpose()?,
            max_per_ip: positive("max-per-ip", pick!(max_per_ip, 256) as usize)? as u32,
            max_watchers: positive("max-watchers", pick!(max_watchers, 64) as usize)? as u32,
            metrics: cli.metrics.or(file.metrics),
            hello_timeout: secs("hello-timeout", pick!(hello_timeout, 10.0))?,
            ping_after: secs("ping-after", pick!(ping_after, 15.0))?,
            idle_timeout: secs("idle-timeout", pick!(idle_timeout, 45.0))?,
            presence_grace: secs_or_zero("presence-grace", pick!(presence_grace, 10.0))?,
            max_bad_frames: positive("max-bad-frames", pick!(max_bad_frames, 10) as usize)? as u32,
            say_rate,
            say_burst: positive("say-burst", pick!(say_burst, 40) as usize)? as u32,
            frame_rate: rate("frame-rate", pick!(frame_rate, 100.0))?,
            frame_burst: positive("frame-burst", pick!(frame_burst, 200) as usize)? as u32,
            byte_rate: rate("byte-rate", pick!(byte_rate, 256.0 * 1024.0))?,
            byte_burst: positive("byte-burst", pick!(byte_burst, 1 << 20) as usize)? as u32,
            join_rate: rate("join-rate", pick!(join_rate, 10.0))?,
            join_burst: positive("join-burst", pick!(join_burst, max_rooms as u32) as usize)? as u32,
            outbound_limit,
            outbound_max,
            slow_consumer_after: secs("slow-consumer-after", pick!(slow_consumer_after, 10.0))?,
            history: pick!(history, 1000),
            history_bytes,
            history_budget: positive("history-budget", pick!(history_budget, 256 << 20))?,
            max_rooms,
            panic_nick: None,
            limits,
            drain_window: secs("drain-window", pick!(drain_window, 10.0))?,
            token_key: token_keys(&cli, &file)?,
            tls,
            ws_listen: cli.ws_listen.or(file.ws_listen),
            ws_url: ws_url(&cli, &file, with_tls)?,
            ws_origins: if cli.ws_origin.is_empty() { file.ws_origin.clone() } else { cli.ws_origin.clone() },
            rebalance: rebalance(&cli, &file)?,
            farm: Config::farm(&cli, &file, listen)?,
        })
    }
}

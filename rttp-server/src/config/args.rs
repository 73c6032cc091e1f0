//! The flags of `rttp-server`: each also an `RTTP_*` environment variable
//! and a key of the same name in the `--config` file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Command-line flags. Each also reads an environment variable and a key of
/// the same name in the `--config` file.
#[derive(Debug, Default, Clone, Parser, Deserialize)]
#[command(name = "rttp-server", version, about = "An RTTP chat server: one per host, linked into a farm.")]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Args {
    /// This server's id, unique in the farm: 1-64 of [A-Za-z0-9._-]. Required.
    #[arg(long, env = "RTTP_ID")]
    pub id: Option<String>,
    /// Address to accept client connections on [default: 127.0.0.1:7000].
    #[arg(long, env = "RTTP_LISTEN", value_name = "IP:PORT")]
    pub listen: Option<SocketAddr>,
    /// Client address published in the farm table [default: the listen address].
    #[arg(long, env = "RTTP_ADVERTISE", value_name = "HOST:PORT")]
    pub advertise: Option<String>,
    /// The group (zone or region) this server is in [default: default].
    #[arg(long, env = "RTTP_GROUP", value_name = "NAME")]
    pub group: Option<String>,
    /// Sessions accepted before the server reports FULL [default: 10000].
    #[arg(long, env = "RTTP_CAPACITY", value_name = "N")]
    pub capacity: Option<u32>,
    /// Hard cap on open connections, sessions and not-yet-HELLO ones together
    /// [default: capacity + 10% + 64].
    #[arg(long, env = "RTTP_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<u32>,
    /// Worker threads [default: one per core]. A host that runs other busy
    /// processes (several servers on one machine, a load generator) serves
    /// faster with its share of the cores: a thread per core it may use.
    #[arg(long, env = "RTTP_THREADS", value_name = "N")]
    pub threads: Option<usize>,
    /// Connections from one IP address at once [default: 256].
    #[arg(long, env = "RTTP_MAX_PER_IP", value_name = "N")]
    pub max_per_ip: Option<u32>,
    /// `FARM watch` connections at once (farm-dns, dashboards) [default: 64].
    #[arg(long, env = "RTTP_MAX_WATCHERS", value_name = "N")]
    pub max_watchers: Option<u32>,
    /// Serve Prometheus metrics at http://IP:PORT/metrics [default: off].
    #[arg(long, env = "RTTP_METRICS", value_name = "IP:PORT")]
    pub metrics: Option<SocketAddr>,
    /// A TOML file with any of these settings (keys as the flag names).
    #[arg(long, env = "RTTP_CONFIG", value_name = "FILE.toml")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Seconds a new connection has to send HELLO [default: 10].
    #[arg(long, env = "RTTP_HELLO_TIMEOUT", value_name = "SECONDS")]
    pub hello_timeout: Option<f64>,
    /// Seconds of client silence before the server sends PING [default: 15].
    #[arg(long, env = "RTTP_PING_AFTER", value_name = "SECONDS")]
    pub ping_after: Option<f64>,
    /// Seconds of client silence before the server closes it [default: 45].
    #[arg(long, env = "RTTP_IDLE_TIMEOUT", value_name = "SECONDS")]
    pub idle_timeout: Option<f64>,
    /// Seconds the members of a lost server, and sessions that end without
    /// QUIT (a lost connection, a move), may take to come back into their
    /// rooms before the others are told they left (PARTED); back within
    /// it, nobody is told they left or joined. 0 tells at once
    /// [default: 10].
    #[arg(long, env = "RTTP_PRESENCE_GRACE", value_name = "SECONDS")]
    pub presence_grace: Option<f64>,
    /// Malformed frames in a row before the server closes the connection [default: 10].
    #[arg(long, env = "RTTP_MAX_BAD_FRAMES", value_name = "N")]
    pub max_bad_frames: Option<u32>,
    /// SAY frames per second a session may send, sustained [default: 20].
    #[arg(long, env = "RTTP_SAY_RATE", value_name = "PER_SECOND")]
    pub say_rate: Option<f64>,
    /// SAY frames a session may send in one burst [default: 40].
    #[arg(long, env = "RTTP_SAY_BURST", value_name = "N")]
    pub say_burst: Option<u32>,
    /// Bytes queued for one session past which it is behind: it is cut off as
    /// a slow consumer if it stays behind for --slow-consumer-after [default: 1048576].
    #[arg(long, env = "RTTP_OUTBOUND_LIMIT", value_name = "BYTES")]
    pub outbound_limit: Option<usize>,
    /// Bytes queued for one session past which it is cut off at once (a
    /// rejoin's replay, shared with the history, is bounded apart: twice
    /// --history-budget for all sessions, a quarter of that for one)
    /// [default: 16777216, and at least --outbound-limit].
    #[arg(long, env = "RTTP_OUTBOUND_MAX", value_name = "BYTES")]
    pub outbound_max: Option<usize>,
    /// Seconds a session may stay behind (over --outbound-limit) before it is
    /// cut off as a slow consumer [default: 10].
    #[arg(long, env = "RTTP_SLOW_CONSUMER_AFTER", value_name = "SECONDS")]
    pub slow_consumer_after: Option<f64>,
    /// Messages each room keeps for replay [default: 1000].
    #[arg(long, env = "RTTP_HISTORY", value_name = "N")]
    pub history: Option<usize>,
    /// Bytes of messages each room keeps for replay [default: 4194304].
    #[arg(long, env = "RTTP_HISTORY_BYTES", value_name = "BYTES")]
    pub history_bytes: Option<usize>,
    /// Frames per second a session may send, every verb counted, sustained;
    /// past it the server stops reading the session until it is back under
    /// (nothing is dropped) [default: 100].
    #[arg(long, env = "RTTP_FRAME_RATE", value_name = "PER_SECOND")]
    pub frame_rate: Option<f64>,
    /// Frames a session may send in one burst [default: 200].
    #[arg(long, env = "RTTP_FRAME_BURST", value_name = "N")]
    pub frame_burst: Option<u32>,
    /// Bytes per second a session may send, sustained, and what its WHO
    /// answers cost; past it the server stops reading the session until it
    /// is back under [default: 262144].
    #[arg(long, env = "RTTP_BYTE_RATE", value_name = "BYTES_PER_SECOND")]
    pub byte_rate: Option<f64>,
    /// Bytes a session may send in one burst [default: 1048576].
    #[arg(long, env = "RTTP_BYTE_BURST", value_name = "BYTES")]
    pub byte_burst: Option<u32>,
    /// JOIN and PART frames per second a session may send, sustained; past
    /// it the server stops reading the session until it is back under [default: 10].
    #[arg(long, env = "RTTP_JOIN_RATE", value_name = "PER_SECOND")]
    pub join_rate: Option<f64>,
    /// JOIN and PART frames a session may send in one burst [default: --max-rooms,
    /// so that a client resuming all its rooms after a move is never slowed].
    #[arg(long, env = "RTTP_JOIN_BURST", value_name = "N")]
    pub join_burst: Option<u32>,
    /// Bytes of history all rooms together keep; past it the server's oldest
    /// messages are evicted first, whichever room holds them [default: 268435456].
    #[arg(long, env = "RTTP_HISTORY_BUDGET", value_name = "BYTES")]
    pub history_budget: Option<usize>,
    /// Rooms one session may be in [default: 100].
    #[arg(long, env = "RTTP_MAX_ROOMS", value_name = "N")]
    pub max_rooms: Option<usize>,
    /// Longest line accepted, including CRLF; at least 64 [default: 4096].
    #[arg(long, env = "RTTP_MAX_LINE", value_name = "BYTES")]
    pub max_line: Option<usize>,
    /// Largest SAY body accepted; at most 65536, the protocol's limit that
    /// peers and clients decode with [default: 65536].
    #[arg(long, env = "RTTP_MAX_BODY", value_name = "BYTES")]
    pub max_body: Option<usize>,
    /// Peer link address [default: the listen IP, port 7100]. Setting it,
    /// a seed, or a secret makes this server a farm member.
    #[arg(long, env = "RTTP_PEER_LISTEN", value_name = "IP:PORT")]
    pub peer_listen: Option<SocketAddr>,
    /// Peer address published to other servers [default: the peer listen address].
    #[arg(long, env = "RTTP_PEER_ADVERTISE", value_name = "HOST:PORT")]
    pub peer_advertise: Option<String>,
    /// Peer address of another server to join the farm through; repeatable
    /// (RTTP_SEEDS takes a comma-separated list). None: the first server of a new farm.
    #[arg(long = "seed", env = "RTTP_SEEDS", value_name = "IP:PORT", value_delimiter = ',')]
    #[serde(default)]
    pub seed: Vec<SocketAddr>,
    /// File holding the cluster secret (at least 16 bytes); or set
    /// RTTP_CLUSTER_SECRET to the secret itself. A farm member needs one.
    #[arg(long, env = "RTTP_SECRET_FILE", value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
    /// Token mode: a file holding an HS256 key (at least 32 bytes, mode
    /// 0600); every HELLO must then carry a JWT signed with it whose `sub` is
    /// the nick. Repeatable, for key rotation: a token signed with any of
    /// the keys is accepted (RTTP_AUTH_KEY_FILES takes a comma-separated
    /// list) [default: off, an open farm].
    #[arg(long = "auth-key-file", env = "RTTP_AUTH_KEY_FILES", value_name = "PATH", value_delimiter = ',')]
    #[serde(default)]
    pub auth_key_file: Vec<PathBuf>,
    /// Where to serve web clients: RTTP over WebSocket at `/rttp` (one frame
    /// per text message), the chat page at `/`; over TLS (`wss://`,
    /// `https://`) with the client port's `--tls-cert` [default: off].
    #[arg(long, env = "RTTP_WS_LISTEN", value_name = "IP:PORT")]
    pub ws_listen: Option<SocketAddr>,
    /// The WebSocket URL the farm table publishes for this server
    /// [default: ws://<ws-listen>/rttp, or wss:// with --tls-cert].
    #[arg(long, env = "RTTP_WS_ADVERTISE", value_name = "URL")]
    pub ws_advertise: Option<String>,
    /// A page origin (scheme://host:port) allowed to open sessions over
    /// WebSocket, besides this server's and the farm's own web origins;
    /// repeatable (RTTP_WS_ORIGINS takes a comma-separated list).
    #[arg(long = "ws-origin", env = "RTTP_WS_ORIGINS", value_name = "ORIGIN", value_delimiter = ',')]
    #[serde(default)]
    pub ws_origin: Vec<String>,
    /// PEM certificate chain for the client port; with --tls-key, clients
    /// speak TLS (1.3 or 1.2) on --listen and nothing in the clear. Both
    /// files are read again on SIGHUP; live sessions are kept [default: off].
    #[arg(long, env = "RTTP_TLS_CERT", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "RTTP_TLS_KEY", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
    /// The farm's own CA (PEM); with --peer-cert and --peer-key, peer links
    /// speak mutual TLS and accept only certificates it issued; the peer
    /// handshake then runs inside TLS, bound to it [default: off].
    #[arg(long, env = "RTTP_PEER_CA", value_name = "PEM")]
    pub peer_ca: Option<PathBuf>,
    /// PEM certificate chain this server presents on peer links, issued by --peer-ca.
    #[arg(long, env = "RTTP_PEER_CERT", value_name = "PEM")]
    pub peer_cert: Option<PathBuf>,
    /// PEM private key of --peer-cert.
    #[arg(long, env = "RTTP_PEER_KEY", value_name = "PEM")]
    pub peer_key: Option<PathBuf>,
    /// Seconds over which a drain spreads its REDIRECTs [default: 10].
    #[arg(long, env = "RTTP_DRAIN_WINDOW", value_name = "SECONDS")]
    pub drain_window: Option<f64>,
    /// Move sessions off a server holding more than its share of users
    /// (REDIRECT rebalance): on or off [default: on].
    #[arg(
        long,
        env = "RTTP_REBALANCE",
        value_name = "on|off",
        value_parser = clap::builder::BoolishValueParser::new(),
        hide_possible_values = true
    )]
    pub rebalance: Option<bool>,
    /// A server starts moving sessions above its share x (1 + MARGIN), its
    /// share being its capacity x its group's users / capacity; it stops at
    /// its share x (1 + MARGIN / 2) [default: 0.10].
    #[arg(long, env = "RTTP_REBALANCE_MARGIN", value_name = "FRACTION")]
    pub rebalance_margin: Option<f64>,
    /// The largest fraction of its users a server moves per second, at least
    /// one a second [default: 0.02].
    #[arg(long, env = "RTTP_REBALANCE_RATE", value_name = "FRACTION")]
    pub rebalance_rate: Option<f64>,
    /// Seconds a session stays on a server before rebalancing may move it
    /// [default: 30].
    #[arg(long, env = "RTTP_REBALANCE_MIN_STAY", value_name = "SECONDS")]
    pub rebalance_min_stay: Option<f64>,
    /// Seconds between heartbeats to each peer [default: 0.5].
    #[arg(long, env = "RTTP_HEARTBEAT", value_name = "SECONDS")]
    pub heartbeat: Option<f64>,
    /// Seconds of silence after which a peer is DOWN [default: 2].
    #[arg(long, env = "RTTP_PEER_TIMEOUT", value_name = "SECONDS")]
    pub peer_timeout: Option<f64>,
}

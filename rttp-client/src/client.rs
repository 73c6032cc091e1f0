//! The client's front: a builder that checks every setting at
//! [`ClientBuilder::connect`], and a handle to join, part and say, with a
//! stream of [`Event`]s. One task per client ([`crate::driver`]) drives the
//! connect sequence and then the session.

use std::net::SocketAddr;
use std::time::Duration;

use rand::Rng;
use rttp_proto::select::Strategy;
use rttp_proto::{Group, Nick, Room, Text};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::connect::{Limits, Sequence};
use crate::discover::Discovery;
use crate::driver::{Command, Driver};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::session::Session;

/// The client's timers.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    /// Time allowed to connect to a server.
    pub connect: Duration,
    /// Time allowed for WELCOME and FARM_INFO after HELLO.
    pub hello: Duration,
    /// How often a silent session sends PING.
    pub ping_every: Duration,
    /// Silence after which the server counts as lost.
    pub silence: Duration,
    /// Upper bound of the jittered pause before reconnecting after a loss,
    /// so that the clients of a dead server do not land in one burst.
    pub reconnect_jitter: Duration,
    /// How long a line said may wait for its `ACK` (across moves) before it
    /// is given up with [`Event::Unacked`]: longer than a failover (a hung
    /// server is noticed after `silence`, then the client moves).
    pub give_up_after: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            connect: Duration::from_secs(2),
            hello: Duration::from_secs(3),
            ping_every: Duration::from_secs(2),
            silence: Duration::from_secs(6),
            reconnect_jitter: Duration::from_millis(500),
            give_up_after: Duration::from_secs(30),
        }
    }
}

pub use crate::session::DEDUP_PER_ROOM;
/// Events buffered for the application before the session waits for it.
pub const EVENT_QUEUE: usize = 4096;

/// Builds a [`Client`]. Settings may come in any order; bad or conflicting
/// ones are refused by [`ClientBuilder::connect`] with [`Error::Invalid`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    service: Option<(String, u16)>,
    dns: Option<SocketAddr>,
    srv: bool,
    bootstrap: Option<Vec<SocketAddr>>,
    strategy: Strategy,
    group: Option<String>,
    nick: Option<String>,
    token: Option<String>,
    /// TLS: the CA to trust (`None`: the system's roots).
    tls: Option<Option<std::path::PathBuf>>,
    tls_name: Option<String>,
    limits: Limits,
    timers: Timers,
    seed: Option<u64>,
}

/// A connected client. Dropping it closes the session.
#[derive(Debug)]
pub struct Client {
    tx: mpsc::Sender<Command>,
    task: JoinHandle<()>,
    tags: crate::outbox::Tags,
}

fn parse<T: std::str::FromStr>(what: &str, s: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    s.parse().map_err(|e| Error::Invalid(format!("bad {what} {s:?}: {e}")))
}

impl Client {
    /// Starts building a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            service: None,
            dns: None,
            srv: false,
            bootstrap: None,
            strategy: Strategy::P2c,
            group: None,
            nick: None,
            token: None,
            tls: None,
            tls_name: None,
            limits: Limits::default(),
            timers: Timers::default(),
            seed: None,
        }
    }

    async fn cmd(&self, c: Command) -> Result<()> {
        self.tx.send(c).await.map_err(|_| Error::ClientClosed)
    }

    /// Joins a room (and rejoins it after every move).
    pub async fn join(&self, room: &str) -> Result<()> {
        self.cmd(Command::Join(parse::<Room>("room", room)?)).await
    }

    /// Leaves a room.
    pub async fn part(&self, room: &str) -> Result<()> {
        self.cmd(Command::Part(parse::<Room>("room", room)?)).await
    }

    /// Says text in a room; returns the line's tag. [`Event::Acked`] with
    /// this tag follows once the farm has it; until then the line is sent
    /// again after every move (and delivered once), and it is given up with
    /// [`Event::Unacked`] after [`Timers::give_up_after`].
    pub async fn say(&self, room: &str, text: &str) -> Result<rttp_proto::Token> {
        let tag = self.tags.next();
        self.cmd(Command::Say(parse::<Room>("room", room)?, Text::from(text), tag)).await?;
        Ok(tag)
    }

    /// Asks for a room's members; they arrive as [`Event::Members`].
    pub async fn who(&self, room: &str) -> Result<()> {
        self.cmd(Command::Who(parse::<Room>("room", room)?)).await
    }

    /// Changes nick: a new session under the new nick on the same server,
    /// back in every room; the old session then ends. A taken nick is an
    /// [`Event::ServerError`] 433 and the old session stays.
    pub async fn nick(&self, nick: &str) -> Result<()> {
        self.cmd(Command::Nick(parse::<Nick>("nick", nick)?)).await
    }

    /// Ends the session and waits for the client's task.
    pub async fn quit(self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Quit(tx)).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx).await;
        }
        let _ = self.task.await;
    }
}

impl ClientBuilder {
    /// Finds the farm by DNS: `name` (A/AAAA, or SRV with [`Self::srv`]) and `port`.
    pub fn service(mut self, name: &str, port: u16) -> Self {
        self.service = Some((name.to_string(), port));
        self
    }

    /// Asks this DNS server instead of the system's (with [`Self::service`]).
    pub fn dns(mut self, server: SocketAddr) -> Self {
        self.dns = Some(server);
        self
    }

    /// Tries SRV `_rttp._tcp.<zone>` before A/AAAA (with [`Self::service`]).
    pub fn srv(mut self, on: bool) -> Self {
        self.srv = on;
        self
    }

    /// Skips DNS: connects first to these addresses, in order.
    pub fn bootstrap(mut self, addrs: Vec<SocketAddr>) -> Self {
        self.bootstrap = Some(addrs);
        self
    }

    /// The selection strategy (default p2c).
    pub fn strategy(mut self, s: Strategy) -> Self {
        self.strategy = s;
        self
    }

    /// The client's own group (zone or region).
    pub fn group(mut self, g: &str) -> Self {
        self.group = Some(g.to_string());
        self
    }

    /// The nick.
    pub fn nick(mut self, n: &str) -> Self {
        self.nick = Some(n.to_string());
        self
    }

    /// The token sent with every HELLO, for a farm in token mode (a JWT
    /// whose `sub` is the nick).
    pub fn token(mut self, t: &str) -> Self {
        self.token = Some(t.trim().to_string());
        self
    }

    /// Bounds of the connect sequence.
    pub fn limits(mut self, l: Limits) -> Self {
        self.limits = l;
        self
    }

    /// Timers.
    pub fn timers(mut self, t: Timers) -> Self {
        self.timers = t;
        self
    }

    /// A fixed seed for the client's choices (tests).
    pub fn seed(mut self, s: u64) -> Self {
        self.seed = Some(s);
        self
    }

    /// How the farm is found, from the settings given in any order.
    fn discovery(&self) -> Result<Discovery> {
        match (&self.service, &self.bootstrap) {
            (Some(_), Some(_)) => Err(Error::Invalid("give service() or bootstrap(), not both".into())),
            (None, None) => Err(Error::Invalid("give service() or bootstrap()".into())),
            (None, Some(_)) if self.dns.is_some() || self.srv => {
                Err(Error::Invalid("dns() and srv() go with service(), not bootstrap()".into()))
            }
            (None, Some(addrs)) if addrs.is_empty() => Err(Error::Invalid("bootstrap() needs an address".into())),
            (None, Some(addrs)) => Ok(Discovery::Direct(addrs.clone())),
            (Some((name, _)), None) if name.is_empty() => Err(Error::Invalid("service() needs a name".into())),
            (Some((name, port)), None) => {
                Ok(Discovery::Dns { name: name.clone(), port: *port, server: self.dns, srv: self.srv })
            }
        }
    }

    /// Speaks TLS to every server, verifying certificates against `ca` (a
    /// PEM file) or, without one, the system's root certificates. Only
    /// servers whose table row says `tls` are selected or followed.
    pub fn tls(mut self, ca: Option<&std::path::Path>) -> Self {
        self.tls = Some(ca.map(std::path::Path::to_path_buf));
        self
    }

    /// The name every server's certificate must carry [default: the
    /// service name; with a bootstrap address and no service, each
    /// server's IP address].
    pub fn tls_name(mut self, name: &str) -> Self {
        self.tls_name = Some(name.to_string());
        self
    }

    /// The TLS settings, built.
    fn tls_client(&self) -> Result<Option<rttp_conn::tls::TlsClient>> {
        let Some(ca) = &self.tls else { return Ok(None) };
        let name = self.tls_name.as_deref().or(self.service.as_ref().map(|s| s.0.as_str()));
        rttp_conn::tls::TlsClient::new(ca.as_deref(), name).map(Some).map_err(|e| Error::Invalid(e.to_string()))
    }

    /// Checks the settings and runs the connect sequence; returns once a
    /// session is established, with the events of every step so far
    /// already in the stream.
    pub async fn connect(self) -> Result<(Client, mpsc::Receiver<Event>)> {
        let nick =
            parse::<Nick>("nick", self.nick.as_deref().ok_or_else(|| Error::Invalid("a nick is required".into()))?)?;
        let group = self.group.as_deref().map(|g| parse::<Group>("group", g)).transpose()?;
        let discovery = self.discovery()?;
        let token = self.token.as_deref().map(|t| parse::<rttp_proto::Credential>("token", t)).transpose()?;
        let seed = self.seed.unwrap_or_else(|| rand::rng().random());
        let tls = self.tls_client()?;
        let transport = if tls.is_some() { rttp_proto::Transport::Tls } else { rttp_proto::Transport::Tcp };
        let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
        let mut driver = Driver {
            discovery,
            seq: Sequence::new(self.strategy, group, self.limits, seed).speaking(transport),
            tls,
            timers: self.timers,
            events,
            session: Session::new(nick),
            token,
            resume: None,
        };
        let live = driver.connect().await?;
        let (tx, rx) = mpsc::channel(256);
        let task = tokio::spawn(driver.run(live, rx));
        Ok((Client { tx, task, tags: crate::outbox::Tags::new() }, events_rx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn refused(b: ClientBuilder) -> String {
        match b.connect().await {
            Err(Error::Invalid(why)) => why,
            Err(other) => panic!("expected Invalid, got {other}"),
            Ok(_) => panic!("expected Invalid, got a client"),
        }
    }

    #[tokio::test]
    async fn settings_are_checked_at_connect_in_any_order() {
        let dns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let a = Client::builder().srv(true).dns(dns).service("chat.farm.test", 7000).nick("u1");
        let b = Client::builder().nick("u1").service("chat.farm.test", 7000).dns(dns).srv(true);
        assert_eq!(format!("{:?}", a.discovery().unwrap()), format!("{:?}", b.discovery().unwrap()));
        assert!(matches!(a.discovery().unwrap(), Discovery::Dns { srv: true, server: Some(_), .. }), "srv kept");

        let bad_group = Client::builder().bootstrap(vec![dns]).nick("u1").group("bad group");
        assert!(refused(bad_group).await.contains("group"));
        assert!(refused(Client::builder().bootstrap(vec![dns])).await.contains("nick"));
        assert!(refused(Client::builder().nick("u1").dns(dns)).await.contains("service"));
        let both = Client::builder().nick("u1").bootstrap(vec![dns]).service("x.test", 7000);
        assert!(refused(both).await.contains("not both"));
        assert!(refused(Client::builder().nick("u1").bootstrap(vec![]).dns(dns)).await.contains("service"));
        assert!(refused(Client::builder().nick("bad nick").bootstrap(vec![dns])).await.contains("nick"));
    }
}

//! One nick, one person, farm-wide, decided purely. Every nick has an
//! *owner*: the server that wins rendezvous hashing of (nick, server id)
//! over the servers not DOWN. A server that gets `HELLO` for a nick asks its
//! owner for a *lease* (`NICK_CLAIM`); the owner grants it when nobody holds
//! the nick, when the holder's server is gone, or when the claim proves the
//! claimant is the holder (the old session's resume token, or a valid JWT in
//! token mode: then the old session is revoked). No farm-wide lock: each
//! nick has one owner, and a lease dies with its holder's server (the owner
//! drops the leases of a server that goes DOWN). When owners change, every
//! holder tells the new owner what it holds (`hold`); a hold that meets
//! another holder's lease loses, and its session ends.

use std::collections::HashMap;

use rttp_proto::{Nick, ServerId, Token};

/// The owner of `nick` among `servers` (those not DOWN): the highest
/// rendezvous hash. `None` for an empty set.
pub fn owner(nick: &Nick, servers: &[ServerId]) -> Option<ServerId> {
    rendezvous(nick.as_bytes(), servers)
}

pub use rttp_proto::rendezvous;

/// What a claim brings besides the nick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// Nothing: granted only if nobody holds the nick.
    None,
    /// The claimant checked a valid token for the nick (token mode): the
    /// person moved; the old session is revoked.
    Token,
    /// The resume token of the session that holds the nick: the same client
    /// moved (REDIRECT, a lost or hung server); the old session is revoked.
    Resume(Token),
    /// A holder re-announcing a lease to a new owner.
    Hold,
}

impl Proof {
    /// Its word on the wire (`NICK_CLAIM`'s third argument).
    pub fn to_token(self) -> Token {
        match self {
            Proof::None => Token::new("-"),
            Proof::Token => Token::new("token"),
            Proof::Hold => Token::new("hold"),
            Proof::Resume(t) => Ok(t),
        }
        .expect("valid token")
    }

    /// From its word.
    pub fn from_token(t: Token) -> Proof {
        match t.as_str() {
            "-" => Proof::None,
            "token" => Proof::Token,
            "hold" => Proof::Hold,
            _ => Proof::Resume(t),
        }
    }
}

/// A lease: which server's which session holds a nick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The holder's server.
    pub holder: ServerId,
    /// The session, by its token (WELCOME's).
    pub session: Token,
}

/// The owner's answer to a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the claimant got the lease.
    pub granted: bool,
    /// A lease the grant replaced: that session must end.
    pub revoke: Option<Lease>,
}

/// The leases of the nicks this server owns.
#[derive(Debug, Default)]
pub struct NickTable {
    leases: HashMap<Nick, Lease>,
}

impl NickTable {
    /// Decides a claim for `nick` by `claimant`; `alive` says whether a
    /// server is up (a lease of a server that is not is void).
    pub fn claim(&mut self, nick: Nick, claimant: Lease, proof: Proof, alive: impl Fn(ServerId) -> bool) -> Decision {
        let granted = Decision { granted: true, revoke: None };
        let Some(held) = self.leases.get(&nick).copied() else {
            self.leases.insert(nick, claimant);
            return granted;
        };
        if held == claimant {
            return granted;
        }
        let takes_over = match proof {
            _ if !alive(held.holder) => true,
            Proof::Token => true,
            Proof::Resume(t) => t == held.session,
            Proof::None | Proof::Hold => false,
        };
        if !takes_over {
            return Decision { granted: false, revoke: None };
        }
        self.leases.insert(nick, claimant);
        Decision { granted: true, revoke: alive(held.holder).then_some(held) }
    }

    /// `lease` ended (its session closed): the nick is free, if it was its.
    pub fn release(&mut self, nick: Nick, lease: Lease) {
        if self.leases.get(&nick) == Some(&lease) {
            self.leases.remove(&nick);
        }
    }

    /// `server` is DOWN: its leases die with it.
    pub fn holder_down(&mut self, server: ServerId) {
        self.leases.retain(|_, l| l.holder != server);
    }

    /// The lease of `nick`, if any.
    pub fn get(&self, nick: &Nick) -> Option<Lease> {
        self.leases.get(nick).copied()
    }

    /// Leases held.
    pub fn len(&self) -> usize {
        self.leases.len()
    }

    /// Whether no lease is held.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }

    /// Drops the leases of nicks this server no longer owns (`owns` says
    /// which it does): their new owners learn them from the holders.
    pub fn keep_owned(&mut self, owns: impl Fn(&Nick) -> bool) {
        self.leases.retain(|n, _| owns(n));
    }
}

#[cfg(test)]
#[path = "nicks_tests.rs"]
mod tests;

//! Nick leases on a farm member, around the pure [`NickTable`]: asks a
//! nick's owner for a lease (locally when it is this server), answers the
//! claims of peers for the nicks it owns, releases, revokes, and re-homes
//! leases when the set of live servers changes. See [`crate::nicks`].

use std::sync::Mutex;

use dashmap::DashMap;
use rttp_proto::{ErrCode, Nick, PeerFrame, ServerId, Status, Token};
use tokio::sync::oneshot;

use crate::nicks::{owner, Lease, NickTable, Proof};
use crate::state::Shared;

/// Longest wait for a nick's owner to answer a claim: past it the HELLO
/// gets `ERR 503` (the owner is hung; by the next try it is DOWN).
pub const CLAIM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// This server's part of the farm's nick leases.
#[derive(Debug, Default)]
pub struct Leases {
    /// The leases of the nicks this server owns.
    table: Mutex<NickTable>,
    /// Claims of local sessions waiting for an owner's answer, by session token.
    pending: DashMap<Token, Pending>,
    /// The live servers at the last re-homing.
    live: Mutex<Vec<ServerId>>,
    /// The resume token behind the claims of local sessions that took a
    /// nick over from an earlier session: re-announced with it, a lease that
    /// superseded another still wins after a partition heals, whichever
    /// side's announcement arrives first.
    proofs: DashMap<Token, Token>,
}

/// A local session's claim sent to a peer, waiting for its answer.
#[derive(Debug)]
struct Pending {
    nick: Nick,
    proof: Proof,
    /// The owner asked: if it goes DOWN, the nick's new owner is asked.
    asked: ServerId,
    tx: oneshot::Sender<bool>,
}

/// The servers not DOWN in the table, this one included.
fn live(shared: &Shared) -> Vec<ServerId> {
    let mut ids: Vec<ServerId> =
        shared.farm_info().servers.iter().filter(|e| e.status != Status::Down).map(|e| e.id).collect();
    ids.sort();
    ids
}

impl Leases {
    fn table(&self) -> std::sync::MutexGuard<'_, NickTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for `nick` for the local session `session`: the receiver gets
    /// whether it was granted (dropped without an answer if the owner's
    /// link goes; the caller times out).
    pub fn claim(&self, shared: &Shared, nick: Nick, session: Token, proof: Proof) -> oneshot::Receiver<bool> {
        let (tx, rx) = oneshot::channel();
        // Resume chains are ordered (the new session names the old one); a
        // token takeover is not, so it is re-announced as a plain hold.
        if let Proof::Resume(old) = proof {
            self.proofs.insert(session, old);
        }
        let me = shared.config.id;
        let ids = live(shared);
        match owner(&nick, &ids) {
            Some(o) if o != me => {
                self.pending.insert(session, Pending { nick, proof, asked: o, tx });
                let frame = PeerFrame::NickClaim { nick, session, proof: proof.to_token() };
                if !shared.rooms.send_to_peer(o, &frame) {
                    // No link to the owner (yet): the claim waits for the timeout.
                    tracing::warn!(%nick, owner = %o, "no link to the nick's owner");
                }
            }
            _ => {
                let granted = self.decide(shared, nick, Lease { holder: me, session }, proof, &ids);
                let _ = tx.send(granted);
            }
        }
        rx
    }

    /// The owner's decision on a claim, with its revocation sent.
    fn decide(&self, shared: &Shared, nick: Nick, claimant: Lease, proof: Proof, ids: &[ServerId]) -> bool {
        let d = self.table().claim(nick, claimant, proof, |s| ids.contains(&s));
        if let Some(old) = d.revoke {
            if old.holder == shared.config.id {
                revoke_local(shared, old.session);
            } else {
                shared.rooms.send_to_peer(old.holder, &PeerFrame::NickRevoke { nick, session: old.session });
            }
        }
        d.granted
    }

    /// A peer's claim for a nick this server owns: the answer to send back.
    pub fn on_claim(&self, shared: &Shared, from: ServerId, nick: Nick, session: Token, proof: Token) -> PeerFrame {
        let granted =
            self.decide(shared, nick, Lease { holder: from, session }, Proof::from_token(proof), &live(shared));
        PeerFrame::NickAnswer { nick, session, granted }
    }

    /// An owner's answer to a claim of ours (or to a re-homed hold: a hold
    /// refused means another session has the nick, and ours ends).
    pub fn on_answer(&self, shared: &Shared, session: Token, granted: bool) {
        match self.pending.remove(&session) {
            Some((_, p)) => {
                let _ = p.tx.send(granted);
            }
            None if !granted => revoke_local(shared, session),
            None => {}
        }
    }

    /// A local session that held `nick` ended.
    pub fn release(&self, shared: &Shared, nick: Nick, session: Token) {
        self.pending.remove(&session);
        self.proofs.remove(&session);
        let me = shared.config.id;
        match owner(&nick, &live(shared)) {
            Some(o) if o != me => {
                shared.rooms.send_to_peer(o, &PeerFrame::NickRelease { nick, session });
            }
            _ => self.table().release(nick, Lease { holder: me, session }),
        }
    }

    /// A peer's session ended: its lease, if we own the nick, goes.
    pub fn on_release(&self, from: ServerId, nick: Nick, session: Token) {
        self.table().release(nick, Lease { holder: from, session });
    }

    /// `peer` is DOWN: its leases die with it.
    pub fn peer_down(&self, peer: ServerId) {
        self.table().holder_down(peer);
    }

    /// The set of live servers may have changed: if it did, tell each
    /// nick's (new) owner what we hold, and forget leases we no longer own.
    pub fn rehome(&self, shared: &Shared) {
        let ids = live(shared);
        {
            let mut last = self.live.lock().unwrap_or_else(|e| e.into_inner());
            if *last == ids {
                return;
            }
            *last = ids.clone();
        }
        let me = shared.config.id;
        self.table().keep_owned(|n| owner(n, &ids) == Some(me));
        let held: Vec<(Nick, Token)> =
            shared.nicks.iter().filter_map(|e| shared.session_token(*e.value()).map(|t| (*e.key(), t))).collect();
        for (nick, session) in held {
            let proof = self.proofs.get(&session).map_or(Proof::Hold, |old| Proof::Resume(*old));
            match owner(&nick, &ids) {
                Some(o) if o != me => {
                    let frame = PeerFrame::NickClaim { nick, session, proof: proof.to_token() };
                    shared.rooms.send_to_peer(o, &frame);
                }
                _ => {
                    if !self.decide(shared, nick, Lease { holder: me, session }, proof, &ids) {
                        revoke_local(shared, session);
                    }
                }
            }
        }
        self.ask_again(shared, &ids);
    }

    /// Claims still waiting for an owner that is no longer live go to the
    /// nick's new owner now (decided here if that is us), instead of timing
    /// out into `ERR 503`: after a server dies, its nicks' `HELLO`s on the
    /// others complete as soon as it counts DOWN. (A live owner that is no
    /// longer the owner still answers: asking twice could meet two answers.)
    fn ask_again(&self, shared: &Shared, ids: &[ServerId]) {
        let me = shared.config.id;
        let orphaned: Vec<Token> = self.pending.iter().filter(|p| !ids.contains(&p.asked)).map(|p| *p.key()).collect();
        for session in orphaned {
            let Some((_, mut p)) = self.pending.remove(&session) else { continue };
            match owner(&p.nick, ids) {
                Some(o) if o != me => {
                    let frame = PeerFrame::NickClaim { nick: p.nick, session, proof: p.proof.to_token() };
                    shared.rooms.send_to_peer(o, &frame);
                    p.asked = o;
                    self.pending.insert(session, p);
                }
                _ => {
                    let granted = self.decide(shared, p.nick, Lease { holder: me, session }, p.proof, ids);
                    let _ = p.tx.send(granted);
                }
            }
        }
    }
}

/// Ends the local session whose WELCOME token is `session`: `ERR 512`.
pub fn revoke_local(shared: &Shared, session: Token) {
    if let Some(out) = shared.session_by_token(session) {
        tracing::info!(%session, "the nick went to another session: this one ends");
        out.push_final(shared.metrics.err(ErrCode::Replaced, "your nick opened a session elsewhere"));
    }
}

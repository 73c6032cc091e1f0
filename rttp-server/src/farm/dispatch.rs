//! The one dispatcher from a peer frame to what handles it: room traffic
//! goes straight to the rooms (never forwarded to another peer: the
//! one-hop rule, PROTOCOL.md §7), membership frames become events for the
//! farm driver, and the rest is answered or closes the link.

use rttp_proto::{ErrCode, PeerFrame, ServerId};

use super::membership::{Event, LinkId};
use crate::rooms::Rooms;
use crate::state::Shared;

/// What the link must do after a frame.
// Returned and consumed at once, never stored: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Routed {
    /// Handled here.
    Done,
    /// Hand this to membership.
    Membership(Event),
    /// Send this back on the same link.
    Reply(PeerFrame),
    /// The peer confirmed our stream up to here (`GOT`).
    Taken(u64),
    /// Close the link, for this reason.
    Close(String),
}

/// Routes one frame that arrived from `peer` on `link`.
pub fn route(frame: PeerFrame, peer: ServerId, link: LinkId, shared: &Shared) -> Routed {
    let rooms: &Rooms = &shared.rooms;
    match frame {
        PeerFrame::Beat => {}
        PeerFrame::Got { position } => return Routed::Taken(position),
        PeerFrame::State(state) => return Routed::Membership(Event::State { link, state: *state }),
        PeerFrame::Member { id, generation, peer_addr } => {
            return Routed::Membership(Event::Member { id, generation, peer_addr })
        }
        PeerFrame::Interest { room } => rooms.remote_interest(peer, room, true),
        PeerFrame::Uninterest { room } => rooms.remote_interest(peer, room, false),
        PeerFrame::Relay { room, id, nick, tag, text } => rooms.remote_say(peer, room, id, nick, tag, text),
        PeerFrame::Submit { room, nick, tag, text } => rooms.remote_submit(peer, room, nick, tag, text),
        PeerFrame::Tail { room, id, nick, key, text } => rooms.remote_tail(peer, room, id, nick, key, text),
        PeerFrame::Synced { room, last } => rooms.remote_synced(peer, room, last),
        PeerFrame::Joined { room, nick, rejoin } => rooms.remote_joined_as(peer, room, nick, true, rejoin),
        PeerFrame::RoomMember { room, nick } => rooms.remote_joined(peer, room, nick, false),
        PeerFrame::Parted { room, nick, away } => rooms.remote_parted(peer, room, nick, away),
        PeerFrame::History { room, after } => rooms.remote_history(peer, room, after),
        PeerFrame::Replay { room, id, nick, text } => rooms.remote_replay(peer, room, id, nick, text),
        PeerFrame::NickClaim { nick, session, proof } => {
            return Routed::Reply(shared.leases.on_claim(shared, peer, nick, session, proof))
        }
        PeerFrame::NickAnswer { session, granted, .. } => shared.leases.on_answer(shared, session, granted),
        PeerFrame::NickRelease { nick, session } => shared.leases.on_release(peer, nick, session),
        PeerFrame::NickRevoke { session, .. } => crate::leases::revoke_local(shared, session),
        PeerFrame::Err { code, reason } => {
            tracing::warn!(%peer, code, reason, "peer sent ERR");
            if code >= 500 {
                return Routed::Close(format!("peer sent ERR {code}"));
            }
        }
        PeerFrame::Hello { .. } | PeerFrame::Challenge { .. } | PeerFrame::Auth { .. } | PeerFrame::Ok => {
            return Routed::Reply(PeerFrame::err(ErrCode::BadFrame, "handshake frames are over"))
        }
    }
    Routed::Done
}

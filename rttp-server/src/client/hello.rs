//! `HELLO`: the version, token mode, the nick. On a farm member the nick is
//! leased from its owner ([`crate::leases`]) before the session opens: the
//! HELLO waits (its connection reads nothing more) for the owner's answer,
//! at most [`crate::leases::CLAIM_TIMEOUT`].

use rttp_proto::{Credential, ErrCode, Nick, ServerFrame, Token, PROTOCOL_VERSION};
use tokio::sync::oneshot;

use super::session::{Flow, Session};
use crate::nicks::Proof;
use crate::state::SessionHandle;

/// A HELLO waiting for the nick's owner.
pub(crate) struct Claim {
    pub(crate) nick: Nick,
    /// Taken by the connection, which waits on it.
    pub(crate) rx: Option<oneshot::Receiver<bool>>,
}

impl Session {
    /// This session's WELCOME token ([`crate::Shared::welcome_token`]).
    pub(crate) fn token(&self) -> Token {
        self.shared.welcome_token(self.id, self.secret)
    }

    /// Gives `nick` back: the reservation here, and on a farm member the
    /// lease (or the claim for it).
    pub(crate) fn give_back(&self, nick: Nick) {
        self.shared.nicks.remove_if(&nick, |_, id| *id == self.id);
        if self.shared.config.farm.is_some() {
            self.shared.leases.release(&self.shared, nick, self.token());
        }
    }

    pub(super) fn hello(
        &mut self,
        version: u32,
        nick: Nick,
        token: Option<&Credential>,
        resume: Option<Token>,
    ) -> Flow {
        if version != PROTOCOL_VERSION {
            return self.error(
                ErrCode::WrongVersion,
                format!("protocol version {version} is not supported; this server speaks {PROTOCOL_VERSION}"),
            );
        }
        if self.shared.config.panic_nick == Some(nick) {
            panic!("fault injection: HELLO as {nick}");
        }
        if self.shared.draining() {
            return self.redirect("drain");
        }
        // `-` holds the token's place when a resume token follows.
        let token = token.filter(|t| t.as_str() != "-");
        if let Some(key) = &self.shared.config.token_key {
            match key.check(token, nick, crate::token::unix_now()) {
                Ok(grant) => self.grant = Some(Box::new(grant)),
                Err(e) => {
                    tracing::info!(%nick, error = %e, "HELLO refused");
                    let why = match e {
                        crate::Error::Unauthorized(why) => why,
                        other => other.to_string(),
                    };
                    return self.error(ErrCode::AuthFailed, why);
                }
            }
        }
        let proof = match (&self.grant, resume) {
            (Some(_), _) => Proof::Token,
            (None, Some(t)) => Proof::Resume(t),
            (None, None) => Proof::None,
        };
        // The nick on this server first: a HELLO refused for its nick never
        // touches the user count (at capacity - 1 it would flap FULL/UP
        // farm-wide). A valid token, or the resume token of the session that
        // holds it here, takes it over: the person moved, the old session ends.
        let (taken, replaced) = match self.shared.nicks.entry(nick) {
            dashmap::Entry::Occupied(mut o) => {
                // Only the holder's own token: a HELLO its client gave up on
                // (a slow server) may be read after its retry, and must not
                // take the nick from the session the retry opened.
                let holder = *o.get();
                let resumes = matches!(proof, Proof::Resume(t) if self.shared.session_token(holder) == Some(t));
                if proof == Proof::Token || resumes {
                    (false, Some(o.insert(self.id)))
                } else {
                    (true, None)
                }
            }
            dashmap::Entry::Vacant(v) => {
                v.insert(self.id);
                (false, None)
            }
        };
        if taken {
            return self.error(ErrCode::NickInUse, format!("nick {nick} is in use"));
        }
        if let Some(old) = replaced.and_then(|id| self.shared.sessions.get(&id).map(|h| h.out.clone())) {
            tracing::info!(%nick, "the nick was taken over: the old session ends");
            old.push_final(self.shared.metrics.err(ErrCode::Replaced, format!("{nick} opened a session elsewhere")));
        }
        if self.shared.config.farm.is_none() {
            return self.open(nick);
        }
        let rx = self.shared.leases.claim(&self.shared, nick, self.token(), proof);
        self.claim = Some(Box::new(Claim { nick, rx: Some(rx) }));
        Flow::Continue
    }

    /// The receiver of a claim just made, for the connection to wait on.
    pub(crate) fn take_claim_rx(&mut self) -> Option<oneshot::Receiver<bool>> {
        self.claim.as_mut().and_then(|c| c.rx.take())
    }

    /// Whether a HELLO waits for its nick's owner.
    pub(crate) fn claim_pending(&self) -> bool {
        self.claim.is_some()
    }

    /// The owner answered (`Some`), or did not in time (`None`).
    pub(crate) fn claimed(&mut self, granted: Option<bool>) -> Flow {
        let Some(claim) = self.claim.take() else { return Flow::Continue };
        let nick = claim.nick;
        match granted {
            Some(true) => self.open(nick),
            other => {
                self.give_back(nick);
                match other {
                    Some(_) => self.error(ErrCode::NickInUse, format!("nick {nick} is in use on another server")),
                    None => self.error(
                        ErrCode::Busy,
                        format!("the server that decides on {nick} did not answer: try again in a few seconds"),
                    ),
                }
            }
        }
    }

    /// Opens the session: a user slot, `WELCOME`, the table.
    fn open(&mut self, nick: Nick) -> Flow {
        if !self.shared.try_add_user() {
            self.give_back(nick);
            return self.redirect("full");
        }
        self.nick = Some(nick);
        let session = self.token();
        tracing::info!(nick = %nick, session = %session, "session opened");
        self.send(&ServerFrame::Welcome { server: self.shared.config.id, session });
        // Registered before the table is sent: a push racing with this HELLO
        // arrives after WELCOME and is followed by a table at least as new.
        self.shared.sessions.insert(self.id, SessionHandle::new(self.out.clone(), true, self.secret));
        self.send(&ServerFrame::FarmInfo(self.shared.farm_info()));
        Flow::Continue
    }
}

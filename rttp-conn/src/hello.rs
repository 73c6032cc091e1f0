//! The one HELLO exchange: `HELLO` out, then `WELCOME` and `FARM_INFO`, or
//! the server's `REDIRECT` or `ERR` instead, as a typed [`Opened`].

use std::time::Duration;

use rttp_proto::{ClientFrame, FarmInfo, Frame, HostPort, Nick, ServerFrame, ServerId, Token, PROTOCOL_VERSION};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::{ClientConn, ConnError};

/// How a server answered `HELLO`.
// Made once per connection and consumed at once: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A session: the server's id, the session's id and the farm table.
    Session {
        /// The server's id.
        server: ServerId,
        /// The session's id.
        session: Token,
        /// The table sent right after `WELCOME`.
        table: FarmInfo,
    },
    /// The server sent the client elsewhere (full or draining) instead.
    Redirected {
        /// Where to go.
        server: ServerId,
        /// Its client address.
        addr: HostPort,
        /// `full`, `drain`, `rebalance`, ...
        reason: Token,
    },
    /// The server refused with an `ERR`.
    Refused {
        /// The numeric code (see `rttp_proto::ErrCode::from_u16`).
        code: u16,
        /// Its reason.
        reason: String,
    },
}

/// Why a HELLO exchange broke before the server answered it.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    /// The connection failed, closed or timed out.
    #[error(transparent)]
    Conn(#[from] ConnError),
    /// The server answered with a frame that has no place here.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What the exchange waited for.
        expected: &'static str,
        /// The verb that came.
        got: &'static str,
    },
}

impl<S: AsyncRead + AsyncWrite + Unpin> ClientConn<S> {
    /// Sends `HELLO` as `nick` and reads the answer, each read within `within`.
    pub async fn hello(&mut self, nick: Nick, within: Duration) -> Result<Opened, HelloError> {
        self.hello_with(nick, None, None, within).await
    }

    /// [`Self::hello`] with a token (a farm in token mode wants one) and the
    /// WELCOME token of the client's previous session (it proves the nick,
    /// still held by that session, is the client's own).
    pub async fn hello_with(
        &mut self,
        nick: Nick,
        token: Option<&rttp_proto::Credential>,
        resume: Option<rttp_proto::Token>,
        within: Duration,
    ) -> Result<Opened, HelloError> {
        // `-` holds the token's place when only the resume token is sent.
        let token = match (token, resume) {
            (Some(t), _) => Some(t.clone()),
            (None, Some(_)) => Some(rttp_proto::Credential::new("-").expect("valid credential")),
            (None, None) => None,
        };
        self.write_frame(&ClientFrame::Hello { version: PROTOCOL_VERSION, nick, token, resume }).await?;
        let (server, session) = match self.read_within(within).await? {
            ServerFrame::Welcome { server, session } => (server, session),
            ServerFrame::Redirect { server, addr, reason } => return Ok(Opened::Redirected { server, addr, reason }),
            ServerFrame::Err { code, reason } => return Ok(Opened::Refused { code, reason }),
            other => return Err(HelloError::Unexpected { expected: "WELCOME", got: other.verb() }),
        };
        match self.read_within(within).await? {
            ServerFrame::FarmInfo(table) => Ok(Opened::Session { server, session, table }),
            other => Err(HelloError::Unexpected { expected: "FARM_INFO", got: other.verb() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use rttp_proto::{ServerEntry, Status};

    use super::*;
    use crate::ServerConn;

    fn table() -> FarmInfo {
        let addr: HostPort = "127.0.0.1:7000".parse().unwrap();
        let e = ServerEntry {
            id: "s1".parse().unwrap(),
            addr,
            status: Status::Up,
            users: 1,
            capacity: 10,
            group: "g".parse().unwrap(),
            transport: Default::default(),
            ws: None,
        };
        FarmInfo { epoch: 3, servers: vec![e] }
    }

    /// Plays a server that answers HELLO with `answer`.
    async fn exchange(answer: Vec<ServerFrame>) -> Result<Opened, HelloError> {
        let (c, s) = tokio::io::duplex(4096);
        let mut server = ServerConn::new(s);
        tokio::spawn(async move {
            let hello = server.read_frame().await.unwrap();
            assert!(matches!(hello, Some(ClientFrame::Hello { version: PROTOCOL_VERSION, .. })), "{hello:?}");
            for f in answer {
                server.write_frame(&f).await.unwrap();
            }
            server
        });
        ClientConn::new(c).hello("alice".parse().unwrap(), Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn welcome_and_table_open_a_session() {
        let welcome = ServerFrame::Welcome { server: "s1".parse().unwrap(), session: "t".parse().unwrap() };
        let got = exchange(vec![welcome, ServerFrame::FarmInfo(table())]).await.unwrap();
        assert_eq!(
            got,
            Opened::Session { server: "s1".parse().unwrap(), session: "t".parse().unwrap(), table: table() }
        );
    }

    #[tokio::test]
    async fn redirect_and_err_are_answers_not_errors() {
        let r = ServerFrame::Redirect {
            server: "s2".parse().unwrap(),
            addr: "127.0.0.2:7000".parse().unwrap(),
            reason: "full".parse().unwrap(),
        };
        assert!(
            matches!(exchange(vec![r]).await.unwrap(), Opened::Redirected { reason, .. } if reason.as_str() == "full")
        );
        let e = ServerFrame::Err { code: 433, reason: "nick alice is in use".into() };
        assert_eq!(
            exchange(vec![e]).await.unwrap(),
            Opened::Refused { code: 433, reason: "nick alice is in use".into() }
        );
    }

    #[tokio::test]
    async fn a_wrong_frame_or_a_close_is_an_error() {
        let pong = ServerFrame::Pong { token: "x".parse().unwrap() };
        assert!(matches!(exchange(vec![pong]).await, Err(HelloError::Unexpected { expected: "WELCOME", got: "PONG" })));
        let welcome = ServerFrame::Welcome { server: "s1".parse().unwrap(), session: "t".parse().unwrap() };
        assert!(matches!(exchange(vec![welcome]).await, Err(HelloError::Conn(ConnError::Closed))));
    }
}

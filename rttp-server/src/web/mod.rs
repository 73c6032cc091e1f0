//! The web listener (`--ws-listen`): HTTP/1.1 by hyper (over TLS with the
//! client port's certificate: `https://` and `wss://`), serving the chat
//! page at `/`, its client library at `/rttp.js`, and `GET /rttp`, which
//! upgrades to a WebSocket that carries RTTP ([`ws`]); the session then
//! runs the same connection and session code as the TCP port. The upgrade
//! checks the `Origin` against the allow-list, so that another site's page
//! cannot open sessions with a visitor's browser.
//!
//! Limits: the client port's connection caps (total and per address) count
//! web connections too; the request head must arrive within
//! `--hello-timeout` and fit [`MAX_REQUEST_HEAD`]; a message carries at most
//! one frame within the frame limits.

pub(crate) mod ws;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CONNECTION, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::state::Shared;

/// Bytes of an HTTP request head, at most.
pub const MAX_REQUEST_HEAD: usize = 16 * 1024;
/// The JavaScript client library (`web/rttp.js`), built into the binary.
pub const RTTP_JS: &str = include_str!("../../../web/rttp.js");
/// The web chat page (`web/index.html`), built into the binary.
pub const INDEX_HTML: &str = include_str!("../../../web/index.html");
/// The path of the WebSocket endpoint.
pub const WS_PATH: &str = "/rttp";

/// Whether a browser page from `origin` may open sessions here: no
/// `Origin` (not a browser), our own web origin, a farm member's, or one of
/// `--ws-origin`.
pub fn origin_allowed(shared: &Shared, origin: Option<&str>) -> bool {
    let Some(origin) = origin else { return true };
    let origin = origin.trim_end_matches('/');
    if shared.config.ws_origins.iter().any(|o| o == origin) {
        return true;
    }
    let own = shared.config.ws_url.as_ref().map(|u| web_origins(u.as_str()));
    let farm = shared.farm_info().servers.into_iter().filter_map(|e| e.ws.map(|u| web_origins(u.as_str())));
    own.into_iter().chain(farm).any(|o| o.iter().any(|x| x == origin))
}

/// The page origins that go with a WebSocket URL: `ws://h:p/...` is served
/// to pages of `http://h:p`, `wss://` to `https://`.
fn web_origins(url: &str) -> Vec<String> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("ws", r)) => ("http", r),
        Some(("wss", r)) => ("https", r),
        _ => return Vec::new(),
    };
    let host = rest.split('/').next().unwrap_or(rest);
    vec![format!("{scheme}://{host}")]
}

/// A file built into the binary, with its type.
fn file(body: &'static str, kind: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r
}

/// Answers one request; for a good upgrade, leaves the pending upgrade in `upgrade`.
fn answer(
    req: Request<hyper::body::Incoming>,
    shared: &Shared,
    upgrade: &Mutex<Option<hyper::upgrade::OnUpgrade>>,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        WS_PATH => {}
        "/rttp.js" => return file(RTTP_JS, "text/javascript; charset=utf-8"),
        "/" | "/index.html" => return file(INDEX_HTML, "text/html; charset=utf-8"),
        _ => {
            return text(StatusCode::NOT_FOUND, "not found: RTTP over WebSocket is at /rttp, its client at /rttp.js\n")
        }
    }
    let is_upgrade =
        req.headers().get(UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| is_upgrade && req.method() == hyper::Method::GET)
    else {
        return text(StatusCode::BAD_REQUEST, "a WebSocket upgrade (GET, Upgrade: websocket) is expected here\n");
    };
    let origin = req.headers().get(ORIGIN).and_then(|v| v.to_str().ok());
    if !origin_allowed(shared, origin) {
        shared.metrics.ws_refused.inc();
        tracing::info!(?origin, "WebSocket upgrade refused: origin not allowed");
        return text(StatusCode::FORBIDDEN, "this page's origin may not open RTTP sessions here (--ws-origin)\n");
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut req = req;
    *upgrade.lock().unwrap_or_else(|p| p.into_inner()) = Some(hyper::upgrade::on(&mut req));
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// Serves one web connection (over TLS when the client port has a
/// certificate: `wss://` and `https://`): its request, then the RTTP
/// session of an upgrade.
async fn serve(
    stream: TcpStream,
    shared: Arc<Shared>,
    token: CancellationToken,
) -> (Option<rttp_proto::Nick>, &'static str) {
    // The HTTP and TLS steps are boxed: their futures (hyper's connection
    // state) would otherwise size the task of every session for its whole
    // life, idle or not.
    let Some(tls) = shared.config.tls.clone() else {
        return match Box::pin(http(stream, &shared, &token)).await {
            Ok((tcp, read)) => session(tcp, read, shared, token).await,
            Err(why) => (None, why),
        };
    };
    let accept = Box::pin(crate::client::tls::accept(stream, tls.config.clone()));
    let secured = tokio::select! {
        r = tokio::time::timeout(shared.config.hello_timeout, accept) => r,
        _ = token.cancelled() => return (None, "shutting down"),
    };
    let Ok(Ok(secured)) = secured else {
        shared.metrics.tls_failures.inc();
        return (None, "TLS handshake failed");
    };
    let (secured, read) = match Box::pin(http(secured, &shared, &token)).await {
        Ok(upgraded) => upgraded,
        Err(why) => return (None, why),
    };
    session(secured, read, shared, token).await
}

/// The RTTP session of an upgraded web connection, over TCP or TLS; `read`
/// holds the bytes read past the request.
async fn session<S: crate::client::Raw + Sync>(
    stream: S,
    read: Vec<u8>,
    shared: Arc<Shared>,
    token: CancellationToken,
) -> (Option<rttp_proto::Nick>, &'static str) {
    let limits = shared.config.limits;
    // One frame per message: a line and a body, with their line ends.
    let max_frame = limits.max_line + limits.max_body + 4;
    shared.metrics.ws_sessions.inc();
    crate::client::ClientConn::new(ws::Ws::new(stream, read, max_frame), shared).run(token).await
}

/// The HTTP side of a web connection: answers its request; for a good
/// upgrade, the stream back with the bytes read past the request.
async fn http<I>(io: I, shared: &Arc<Shared>, token: &CancellationToken) -> Result<(I, Vec<u8>), &'static str>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let upgrade = Arc::new(Mutex::new(None));
    let svc = {
        let (shared, upgrade) = (shared.clone(), upgrade.clone());
        hyper::service::service_fn(move |req| {
            let r = answer(req, &shared, &upgrade);
            async move { Ok::<_, Infallible>(r) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(shared.config.hello_timeout)
        .max_buf_size(MAX_REQUEST_HEAD)
        .serve_connection(TokioIo::new(io), svc)
        .with_upgrades();
    tokio::select! {
        r = conn => if r.is_err() { return Err("http error") },
        _ = token.cancelled() => return Err("shutting down"),
    }
    let pending = upgrade.lock().unwrap_or_else(|p| p.into_inner()).take();
    let Some(pending) = pending else { return Err("http request served") };
    let Ok(upgraded) = pending.await else { return Err("upgrade failed") };
    let Ok(parts) = upgraded.downcast::<TokioIo<I>>() else { return Err("upgrade lost its socket") };
    Ok((parts.io.into_inner(), parts.read_buf.to_vec()))
}

/// Accepts web connections until `token` is cancelled.
pub async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, token: CancellationToken, tracker: TaskTracker) {
    loop {
        let Some((stream, addr)) = crate::net::accept(&listener, &token, "web").await else { break };
        let Some(slot) = crate::client::SlotGuard::take(&shared, addr) else {
            shared.metrics.refused_connections.inc();
            drop(stream);
            continue;
        };
        let (shared, token) = (shared.clone(), token.clone());
        tracker.spawn(async move {
            let _slot = slot;
            let (nick, reason) = serve(stream, shared, token).await;
            match nick {
                Some(nick) => tracing::info!(%addr, %nick, reason, "web session closed"),
                None => tracing::debug!(%addr, reason, "web connection closed"),
            }
        });
    }
}

//! Serves health, Prometheus metrics and the web console over HTTP.
//!
//! Orchestrators and monitoring systems speak HTTP, not the PostgreSQL wire
//! protocol: a liveness probe should not need a database login, and a
//! Prometheus server scrapes a text page. This crate is that small side door
//! of the server process. It listens on its own address (`--http-listen`,
//! loopback by default), on a thread and runtime of its own, so it answers
//! even while queries keep every compute worker busy.
//!
//! What each endpoint promises (only GET and HEAD; anything else is 405, an
//! unknown path 404; one request per connection, answered with
//! `Connection: close`):
//!
//! * `/healthz`: `200 ok` whenever the process is up and its HTTP thread
//!   answers. It says nothing about the data; use it for liveness.
//! * `/readyz`: `200 ready` once recovery of the data directory finished and
//!   the wire listener accepts queries; `503` before that (and after
//!   shutdown began). Use it for readiness.
//! * `/metrics`: the server's counters in the OpenMetrics text format
//!   (which Prometheus scrapes; it is the Prometheus text format plus
//!   `# UNIT` lines and a final `# EOF`), read from the engine at scrape
//!   time; `503` until the engine is open. Every figure is the one the engine
//!   counts where the work happens (see [`metrics`] for the list); none is
//!   derived here. A scrape copies the figures under short locks and formats
//!   them afterwards, so it never holds up queries for long.
//!
//! * `/` (with `/console.css`, `/console.js` and the JSON API under
//!   `/api/`): the read-only web console, see [`console`]. Unlike the three
//!   endpoints above, it authenticates like the wire protocol: trust for
//!   the superuser on loopback when it has no password, HTTP Basic with a
//!   user's password otherwise (`401` with `WWW-Authenticate` without).
//!
//! When the server has a certificate (`--tls-cert`/`--tls-key`), this
//! listener speaks HTTPS only, with the same certificate; otherwise plain
//! HTTP. `/healthz`, `/readyz` and `/metrics` need no authentication, which
//! is why it binds to loopback unless told otherwise.

pub mod console;
pub mod metrics;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use freshet_engine::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// An error starting the HTTP endpoint.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The listen address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address as given.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Any other I/O failure (starting the thread or runtime).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A console API request named nothing that exists.
    #[error("not found")]
    NotFound,
    /// A console API request was malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A statement the console ran failed.
    #[error("{message}")]
    Query {
        /// Its SQLSTATE.
        sqlstate: String,
        /// The engine's message.
        message: String,
    },
    /// Too many console requests are running already.
    #[error("too many console requests at once")]
    Busy,
    /// Anything else that stopped a console request.
    #[error("{0}")]
    Internal(String),
}

impl From<freshet_engine::EngineError> for HttpError {
    fn from(e: freshet_engine::EngineError) -> Self {
        HttpError::Query {
            sqlstate: e.sqlstate().to_owned(),
            message: e.to_string(),
        }
    }
}

/// What the endpoints report about the server's state; shared between the
/// server's start-up code, which moves it forward, and the HTTP thread.
#[derive(Debug, Default)]
pub struct Status {
    engine: OnceLock<Arc<Engine>>,
    ready: AtomicBool,
}

impl Status {
    /// A status before recovery: live, not ready, no metrics yet.
    pub fn new() -> Arc<Status> {
        Arc::new(Status::default())
    }

    /// The engine is open (recovery finished): `/metrics` reads from it.
    pub fn set_engine(&self, engine: Arc<Engine>) {
        // Set once; a second engine would be a bug in the caller, and the
        // first stays.
        let _ = self.engine.set(engine);
    }

    /// Whether `/readyz` answers 200: set once the wire listener accepts
    /// queries, cleared when shutdown begins.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst) && self.engine.get().is_some()
    }
}

/// The HTTP listener, bound but not yet serving.
pub struct HttpServer {
    listener: std::net::TcpListener,
    status: Arc<Status>,
    tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpServer")
            .field("listener", &self.listener)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// How long a client may take to complete the TLS handshake and send its
/// request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest request head (request line and headers) read.
const MAX_REQUEST_HEAD: usize = 8 * 1024;

/// A running HTTP endpoint; [`HttpHandle::shutdown`] stops it.
#[derive(Debug)]
pub struct HttpHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `address` (`HOST:PORT`; port 0 picks a free port). With `tls`
    /// (the wire listener's certificate), it serves HTTPS only.
    pub fn bind(
        address: &str,
        status: Arc<Status>,
        tls: Option<rustls::ServerConfig>,
    ) -> Result<HttpServer, HttpError> {
        let bind_error = |source| HttpError::Bind {
            address: address.to_owned(),
            source,
        };
        let listener = std::net::TcpListener::bind(address).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let tls = tls.map(|mut config| {
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            TlsAcceptor::from(Arc::new(config))
        });
        Ok(HttpServer {
            listener,
            status,
            tls,
        })
    }

    /// Whether it serves HTTPS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// The address actually bound (with the chosen port).
    pub fn local_addr(&self) -> Result<SocketAddr, HttpError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves on a thread of its own until [`HttpHandle::shutdown`].
    pub fn spawn(self) -> Result<HttpHandle, HttpError> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("freshet-http".to_owned())
            .spawn(move || {
                runtime.block_on(self.serve_until(async {
                    // A dropped sender stops the server too.
                    let _ = stopped.await;
                }));
                // Connections still being answered are not waited for.
                runtime.shutdown_background();
            })?;
        Ok(HttpHandle {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    async fn serve_until<F: Future<Output = ()>>(self, shutdown: F) {
        let listener = match TcpListener::from_std(self.listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "the HTTP endpoint cannot serve");
                return;
            }
        };
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE; keep serving.
                    tracing::warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let status = self.status.clone();
            let tls = self.tls.clone();
            tokio::spawn(async move {
                match tls {
                    None => serve_connection(socket, status, peer.ip(), false).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(REQUEST_TIMEOUT, acceptor.accept(socket)).await {
                            Ok(Ok(stream)) => {
                                serve_connection(stream, status, peer.ip(), true).await
                            }
                            Ok(Err(e)) => tracing::debug!(error = %e, "HTTPS handshake failed"),
                            Err(_) => tracing::debug!("HTTPS handshake timed out"),
                        }
                    }
                }
            });
        }
    }
}

/// Answers one request on a connection, then closes it.
///
/// The endpoint's requests are a request line and a few headers without a
/// body, so this reads the request head (up to [`MAX_REQUEST_HEAD`] bytes,
/// within [`REQUEST_TIMEOUT`]), answers with `Connection: close`, and is
/// done: a complete HTTP/1.1 server (keep-alive, chunked bodies, pipelining)
/// would cost a dependency tree for nothing a scraper needs.
async fn serve_connection<S>(mut stream: S, status: Arc<Status>, peer: IpAddr, tls: bool)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => match parse_request_line(&head) {
            Some((method, path)) if console::is_console_path(path) => {
                respond_console(&status, &head, method, path, peer, tls).await
            }
            Some((method, path)) => respond(&status, method, path),
            None => Response::text(400, "bad request\n"),
        },
        Ok(Ok(None)) => Response::text(431, "request header fields too large\n"),
        // The client went away or sent nothing in time: nothing to answer.
        Ok(Err(_)) | Err(_) => return,
    };
    if let Err(e) = stream.write_all(&response.bytes()).await {
        tracing::debug!(error = %e, "HTTP response not sent");
        return;
    }
    let _ = stream.shutdown().await;
}

/// Reads until the blank line ending the request head: the head, `None` when
/// it exceeds [`MAX_REQUEST_HEAD`], an error when the client closes first.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Option<Vec<u8>>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(head));
        }
        if head.len() > MAX_REQUEST_HEAD {
            return Ok(None);
        }
    }
}

/// The query string (without `?`) of the request line's target.
fn request_query(head: &[u8]) -> &str {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let target = std::str::from_utf8(line)
        .ok()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or_default();
    let target = target.split('#').next().unwrap_or_default();
    target.split_once('?').map(|(_, q)| q).unwrap_or_default()
}

/// The value of the first header `name` (case-insensitive) in a request head.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a str> {
    head.split(|b| *b == b'\n').skip(1).find_map(|line| {
        let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The response to a request for the console or its API.
async fn respond_console(
    status: &Status,
    head: &[u8],
    method: &str,
    path: &str,
    peer: IpAddr,
    tls: bool,
) -> Response {
    // The console is read-only but for cancelling a statement, which is a
    // POST (never a GET a link or an image could trigger).
    let allowed = match path {
        console::CANCEL_PATH => method == "POST",
        _ => method == "GET" || method == "HEAD",
    };
    if !allowed {
        let mut response = Response::text(405, "method not allowed\n");
        response.allow = true;
        return response;
    }
    let Some(engine) = status.engine.get() else {
        return Response::text(503, "not ready: the data directory is being recovered\n");
    };
    let request = console::ConsoleRequest {
        path,
        query: request_query(head),
        authorization: header(head, "authorization"),
        console_header: header(head, console::CONSOLE_HEADER).is_some(),
        peer,
        tls,
    };
    let mut response = console::respond(engine, &request).await;
    response.head_only = method == "HEAD";
    response
}

/// The method and the path (without query string) of a request line
/// `METHOD SP TARGET SP HTTP/1.x`.
fn parse_request_line(head: &[u8]) -> Option<(&str, &str)> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !version.starts_with("HTTP/1.") || method.is_empty() {
        return None;
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Some((method, path))
}

impl HttpHandle {
    /// Stops accepting and waits for the thread to end.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the HTTP thread panicked");
            }
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// The `Content-Type` of `/metrics`.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
const JSON_CONTENT_TYPE: &str = "application/json";

/// A response to send.
#[derive(Debug, PartialEq)]
struct Response {
    status: u16,
    content_type: &'static str,
    body: String,
    /// HEAD: the headers of the GET response without its body.
    head_only: bool,
    allow: bool,
    /// Send `WWW-Authenticate: Basic realm="freshet"` (with a 401).
    www_authenticate: bool,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: TEXT_CONTENT_TYPE,
            body: body.to_owned(),
            head_only: false,
            allow: false,
            www_authenticate: false,
        }
    }

    fn with_type(status: u16, content_type: &'static str, body: &str) -> Response {
        Response {
            content_type,
            ..Response::text(status, body)
        }
    }

    fn json(status: u16, value: &serde_json::Value) -> Response {
        Response::with_type(status, JSON_CONTENT_TYPE, &value.to_string())
    }

    /// The response as sent, status line to body.
    fn bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            503 => "Service Unavailable",
            _ => "",
        };
        let mut out = format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\
             X-Content-Type-Options: nosniff\r\n\
             Content-Security-Policy: default-src 'self'; frame-ancestors 'none'\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if self.allow {
            out.push_str("Allow: GET, HEAD\r\n");
        }
        if self.www_authenticate {
            out.push_str("WWW-Authenticate: Basic realm=\"freshet\", charset=\"UTF-8\"\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(&self.body);
        }
        out.into_bytes()
    }
}

/// The response to one request; see the crate documentation.
fn respond(status: &Status, method: &str, path: &str) -> Response {
    if method != "GET" && method != "HEAD" {
        let mut response = Response::text(405, "method not allowed\n");
        response.allow = true;
        return response;
    }
    let mut response = match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" if status.is_ready() => Response::text(200, "ready\n"),
        "/readyz" => Response::text(503, "not ready\n"),
        "/metrics" => match status.engine.get() {
            None => Response::text(503, "not ready: the data directory is being recovered\n"),
            Some(engine) => match metrics::render(engine) {
                Ok(body) => Response {
                    status: 200,
                    content_type: METRICS_CONTENT_TYPE,
                    body,
                    head_only: false,
                    allow: false,
                    www_authenticate: false,
                },
                Err(e) => {
                    tracing::warn!(error = %e, "could not render metrics");
                    Response::text(500, "could not render metrics\n")
                }
            },
        },
        _ => Response::text(404, "not found\n"),
    };
    response.head_only = method == "HEAD";
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_parsed_or_refused() {
        assert_eq!(
            parse_request_line(b"GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
            Some(("GET", "/metrics"))
        );
        assert_eq!(
            parse_request_line(b"HEAD /healthz HTTP/1.0\n\n"),
            Some(("HEAD", "/healthz"))
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"GET / SPDY/3\r\n\r\n"), None);
        assert_eq!(parse_request_line(b"\xff\xfe / HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_request_line(b""), None);
    }

    #[test]
    fn paths_methods_and_readiness_decide_the_status() {
        let status = Status::new();
        assert_eq!(respond(&status, "GET", "/healthz").status, 200);
        assert_eq!(respond(&status, "GET", "/readyz").status, 503);
        assert_eq!(respond(&status, "GET", "/metrics").status, 503);
        assert_eq!(respond(&status, "GET", "/nope").status, 404);
        let post = respond(&status, "POST", "/healthz");
        assert_eq!(post.status, 405);
        assert!(String::from_utf8_lossy(&post.bytes()).contains("\r\nAllow: GET, HEAD\r\n"));
        let head = respond(&status, "HEAD", "/healthz").bytes();
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 3\r\n"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "no body for HEAD: {head}");
    }

    #[tokio::test]
    async fn a_connection_gets_one_answer() {
        let (mut client, server) = tokio::io::duplex(4096);
        let task = tokio::spawn(serve_connection(
            server,
            Status::new(),
            IpAddr::from([127, 0, 0, 1]),
            false,
        ));
        client
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        task.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nok\n"), "{answer}");
    }
}

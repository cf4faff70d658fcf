//! The TCP listener and the per-connection wiring of pgwire handlers.
//!
//! Connections run on an I/O runtime of their own (see [`Server::run_until`])
//! so that a server whose query workers are saturated still accepts
//! connections and, above all, the CancelRequests that stop the work
//! saturating them.
//!
//! # Shutdown
//!
//! When the shutdown future given to [`Server::run_until`] resolves, the
//! listener closes and every connection is asked to end: one waiting for its
//! next request gets PostgreSQL's FATAL 57P01 ("terminating connection due to
//! administrator command") at once, or 57P03 ("the database system is
//! shutting down") if it had not finished start-up; one in the middle of a
//! request (a Query, an extended-protocol batch up to its Sync, a COPY) is
//! left to finish it, its client gets the whole response, and then the
//! 57P01. A request that had already arrived when shutdown began is served
//! first. Connections still open when the deadline future resolves are
//! dropped, which aborts their statements (and rolls back what they had
//! not committed).

use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use freshet_engine::Engine;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use pgwire::messages::startup::SecretKey;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use crate::auth::FreshetStartupHandler;
use crate::copy::FreshetCopyHandler;
use crate::error::{WireError, WireResult};
use crate::query::FreshetQueryHandler;
use crate::utf8::Utf8Guard;

/// PEM files for TLS.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain (PEM).
    pub cert: PathBuf,
    /// Private key (PEM; PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Listener configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `HOST:PORT` to listen on; host names are resolved.
    pub listen: String,
    /// Enables TLS (`sslmode=require`) when set.
    pub tls: Option<TlsFiles>,
    /// Logs every Query or Execute that takes at least this long (a WARN
    /// line with its text, duration, user and outcome); `None` logs none.
    pub slow_statements: Option<Duration>,
}

/// How [`Server::run_until`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every connection had ended before the deadline.
    Drained,
    /// The deadline came first; this many connections were still open and
    /// were dropped (their running statements aborted).
    DeadlineReached {
        /// Connections dropped.
        connections: usize,
    },
}

/// Connections open now, and how many of them are in the middle of a
/// request; for the shutdown log.
#[derive(Debug, Default)]
struct ConnectionCounts {
    open: AtomicUsize,
    busy: AtomicUsize,
}

/// Keeps one connection counted, and whether it is busy.
struct Counted {
    counts: Arc<ConnectionCounts>,
    busy: bool,
}

impl Counted {
    fn new(counts: Arc<ConnectionCounts>) -> Counted {
        counts.open.fetch_add(1, Ordering::Relaxed);
        Counted {
            counts,
            busy: false,
        }
    }

    fn set_busy(&mut self, busy: bool) {
        if busy != self.busy {
            if busy {
                self.counts.busy.fetch_add(1, Ordering::Relaxed);
            } else {
                self.counts.busy.fetch_sub(1, Ordering::Relaxed);
            }
            self.busy = busy;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.set_busy(false);
        self.counts.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once the server is shutting down (or the signal's sender is gone,
/// which only happens when the server is going away anyway).
async fn stopping(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The handler set shared by every connection. Handlers are stateless; all
/// per-connection state lives in pgwire's session extensions.
struct Handlers {
    query: Arc<FreshetQueryHandler>,
    startup: Arc<FreshetStartupHandler>,
    copy: Arc<FreshetCopyHandler>,
    cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.query.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.query.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn copy_handler(&self) -> Arc<impl pgwire::api::copy::CopyHandler> {
        self.copy.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// A bound Postgres-protocol server.
pub struct Server {
    /// Kept as a std listener: it is registered with the I/O runtime in
    /// [`Server::run_until`], not with the runtime that bound it.
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
    connections: Arc<ConnectionManager>,
}

impl Server {
    /// Resolves and binds the listen address and loads TLS material.
    ///
    /// Refuses ([`WireError::InsecureListen`]) to listen on a non-loopback
    /// address when no user can authenticate with a password: every connection
    /// would then rely on trust, which is only acceptable from the same host.
    pub async fn bind(engine: Arc<Engine>, config: &ServerConfig) -> WireResult<Server> {
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&config.listen).await?.collect();
        if addrs.is_empty() {
            return Err(WireError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} did not resolve to any address", config.listen),
            )));
        }
        if !engine.has_password_auth() {
            if let Some(addr) = addrs.iter().find(|a| !a.ip().to_canonical().is_loopback()) {
                return Err(WireError::InsecureListen(*addr));
            }
        }
        let listener = TcpListener::bind(addrs.as_slice()).await?.into_std()?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let connections = Arc::new(ConnectionManager::new());
        let activities = Arc::new(crate::activity::Activities::default());
        engine.set_session_directory(activities.clone());
        let handlers = Arc::new(Handlers {
            query: Arc::new(FreshetQueryHandler::new(config.slow_statements)),
            startup: Arc::new(FreshetStartupHandler::new(
                engine,
                Handle::current(),
                connections.clone(),
                activities,
            )),
            copy: Arc::new(FreshetCopyHandler),
            cancel: Arc::new(DefaultCancelHandler::new(connections.clone())),
        });
        Ok(Server {
            listener,
            tls,
            handlers,
            connections,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> WireResult<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Whether TLS is enabled.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Accepts connections until `shutdown` resolves, then stops accepting
    /// and lets the open connections finish the requests they are running
    /// (see the module documentation) until they have all ended or
    /// `deadline` resolves, whichever comes first; connections still open
    /// then are dropped. `deadline` is polled only once `shutdown` has
    /// resolved. The caller shuts the engine down next.
    ///
    /// SQL runs on the runtime this is called on (the compute runtime). The
    /// listener, `shutdown` and the connections' protocol work run on an I/O
    /// runtime of their own, driven by a dedicated thread: query execution
    /// can keep every compute worker busy for minutes, and a server that then
    /// cannot even accept the CancelRequest meant to stop that work is stuck.
    pub async fn run_until<F, D>(self, shutdown: F, deadline: D) -> WireResult<Stopped>
    where
        F: Future<Output = ()> + Send + 'static,
        D: Future<Output = ()> + Send + 'static,
    {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("freshet-accept".to_owned())
            .spawn(move || {
                let result = match tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(IO_THREADS)
                    .thread_name("freshet-io")
                    // Lightweight statements are planned here.
                    .thread_stack_size(freshet_engine::WORKER_STACK_SIZE)
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        let result = runtime.block_on(self.accept_loop(shutdown, deadline));
                        // Connections past the deadline may sit in a read; do
                        // not wait for them.
                        runtime.shutdown_background();
                        result
                    }
                    Err(e) => Err(WireError::Io(e)),
                };
                // The receiver is gone only if run_until's caller stopped waiting.
                let _ = done_tx.send(result);
            })?;
        done_rx.await.unwrap_or_else(|_| {
            Err(WireError::Io(std::io::Error::other(
                "the accept thread ended without reporting",
            )))
        })
    }

    /// The accept loop: routes every new connection (see [`route`]); then
    /// the drain of the connections at shutdown.
    async fn accept_loop<F, D>(self, shutdown: F, deadline: D) -> WireResult<Stopped>
    where
        F: Future<Output = ()>,
        D: Future<Output = ()>,
    {
        let listener = TcpListener::from_std(self.listener)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let counts = Arc::new(ConnectionCounts::default());
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => break,
                // Reaps ended connections as they end.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE; keep serving existing connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = socket.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            connections.spawn(route(
                socket,
                peer,
                self.tls.clone(),
                self.handlers.clone(),
                self.connections.clone(),
                stop_rx.clone(),
                counts.clone(),
            ));
        }
        drop(listener);
        let _ = stop_tx.send(true);
        tracing::info!(
            open = counts.open.load(Ordering::Relaxed),
            running = counts.busy.load(Ordering::Relaxed),
            "no longer accepting connections; closing idle ones and waiting for running \
             statements to finish"
        );
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                ended = connections.join_next() => {
                    if ended.is_none() {
                        tracing::info!("all connections closed");
                        return Ok(Stopped::Drained);
                    }
                }
            }
        }
        let open = connections.len();
        tracing::warn!(
            connections = open,
            running = counts.busy.load(Ordering::Relaxed),
            "shutdown deadline reached: dropping the connections still open"
        );
        connections.abort_all();
        Ok(Stopped::DeadlineReached { connections: open })
    }
}

/// Worker threads of the I/O runtime. Protocol work is light (SQL runs on
/// the compute runtime); two keep one large result's encoding from delaying
/// every other connection.
const IO_THREADS: usize = 2;

/// `CancelRequest`'s request code (the "protocol version" of its start-up packet).
const CANCEL_REQUEST_CODE: i32 = 80_877_102;
/// Length prefix + code + pid + the longest secret key protocol 3.2 allows.
const MAX_CANCEL_REQUEST_LEN: usize = 12 + 256;
/// How long a new connection may take to send its first 8 bytes before it is
/// handed to pgwire as it is (pgwire then applies its own start-up timeout).
const FIRST_PACKET_TIMEOUT: Duration = Duration::from_secs(10);

/// What the first 8 bytes of a new connection say it is.
enum FirstPacket {
    /// A CancelRequest whose whole packet is `len` bytes long.
    Cancel { len: usize },
    /// A start-up, SSL or GSS request, a direct TLS handshake, or something
    /// that did not arrive in time: pgwire's business.
    Other,
    /// The client closed the connection before sending a packet.
    Closed,
}

/// Answers a CancelRequest at once, before anything else about the connection
/// is set up; hands every other connection to pgwire.
async fn route(
    socket: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
    connections: Arc<ConnectionManager>,
    mut stop: watch::Receiver<bool>,
    counts: Arc<ConnectionCounts>,
) {
    let counted = Counted::new(counts);
    let first = tokio::select! {
        first = first_packet(&socket) => first,
        // Nothing was said yet: there is no one to answer.
        _ = stopping(&mut stop) => return,
    };
    match first {
        FirstPacket::Closed => {}
        FirstPacket::Cancel { len } => cancel(socket, len, &connections).await,
        FirstPacket::Other => {
            tracing::debug!(%peer, "connection accepted");
            if let Err(e) = serve_connection(socket, tls, handlers, stop, counted).await {
                tracing::debug!(%peer, error = %e, "connection ended with error");
            }
        }
    }
}

/// The FATAL error that ends a session at shutdown or by
/// `pg_terminate_backend`, as PostgreSQL words it.
const ADMINISTRATOR_TERMINATION: (&str, &str) = (
    "57P01",
    "terminating connection due to administrator command",
);

/// How long a connection may take from its first byte to finishing
/// authentication (pgwire's own start-up limit).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs one connection: TLS negotiation, then pgwire's message handling, with
/// the client's decrypted input passing through [`Utf8Guard`] so that query
/// text that is not UTF-8 is refused (see `utf8.rs`). This is the message
/// loop of pgwire's `process_socket`, which offers no place for the guard.
async fn serve_connection(
    socket: TcpStream,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
    mut stop: watch::Receiver<bool>,
    mut counted: Counted,
) -> std::io::Result<()> {
    use futures::{FutureExt, SinkExt, StreamExt};
    use pgwire::api::{ClientInfo, ErrorHandler, PgWireConnectionState};
    use pgwire::error::ErrorInfo;
    use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
    use pgwire::tokio::server::{negotiate_tls, process_error, process_message};
    use tokio_util::codec::{Framed, FramedParts};

    let startup_timeout = tokio::time::sleep(STARTUP_TIMEOUT);
    tokio::pin!(startup_timeout);
    let negotiated = tokio::select! {
        _ = &mut startup_timeout => return Ok(()),
        _ = stopping(&mut stop) => return Ok(()),
        negotiated = negotiate_tls(socket, tls) => negotiated?,
    };
    let Some(negotiated) = negotiated else {
        // A direct TLS handshake without TLS configured.
        return Ok(());
    };
    let parts = negotiated.into_parts();
    let mut guarded = FramedParts::new::<pgwire::messages::PgWireBackendMessage>(
        Utf8Guard::new(parts.io, parts.read_buf),
        parts.codec,
    );
    guarded.write_buf = parts.write_buf;
    let mut socket = Framed::from_parts(guarded);
    socket.set_state(PgWireConnectionState::AwaitingStartup);
    // pg_terminate_backend's signal: the start-up handler hands the sender
    // to the session's pg_stat_activity entry.
    let (terminate_tx, mut terminate) = watch::channel(false);
    socket
        .session_extensions()
        .insert(Arc::new(crate::activity::TerminateSignal(terminate_tx)));

    let startup = handlers.startup.clone();
    let query = handlers.query.clone();
    let copy = handlers.copy.clone();
    let cancel = handlers.cancel.clone();
    let errors = handlers.error_handler();
    // Whether the last request was answered in full (its ReadyForQuery
    // sent): the connection waits for the client, and shutdown may end it.
    let mut between_requests = true;
    loop {
        let starting = matches!(
            socket.state(),
            PgWireConnectionState::AwaitingStartup
                | PgWireConnectionState::AuthenticationInProgress
        );
        let idle =
            between_requests && !matches!(socket.state(), PgWireConnectionState::CopyInProgress(_));
        counted.set_busy(!idle && !starting);
        if idle && *terminate.borrow() {
            let (code, text) = ADMINISTRATOR_TERMINATION;
            let fatal = ErrorInfo::new("FATAL".to_owned(), code.to_owned(), text.to_owned());
            // The client may be gone already; the connection ends either way.
            let _ = socket
                .send(PgWireBackendMessage::ErrorResponse(fatal.into()))
                .await;
            break;
        }
        let message = if idle && *stop.borrow() {
            // Shutting down: serve a message that had already arrived, end
            // the connection otherwise.
            match socket.next().now_or_never() {
                Some(message) => message,
                None => {
                    let (code, text) = if starting {
                        ("57P03", "the database system is shutting down")
                    } else {
                        ADMINISTRATOR_TERMINATION
                    };
                    let fatal =
                        ErrorInfo::new("FATAL".to_owned(), code.to_owned(), text.to_owned());
                    // The client may be gone already; the connection ends either way.
                    let _ = socket
                        .send(PgWireBackendMessage::ErrorResponse(fatal.into()))
                        .await;
                    break;
                }
            }
        } else if starting {
            tokio::select! {
                biased;
                message = socket.next() => message,
                _ = &mut startup_timeout => None,
                _ = stopping(&mut stop), if idle => continue,
            }
        } else {
            tokio::select! {
                biased;
                message = socket.next() => message,
                _ = stopping(&mut stop), if idle => continue,
                _ = stopping(&mut terminate), if idle => continue,
            }
        };
        let Some(Ok(message)) = message else {
            break;
        };
        if matches!(message, PgWireFrontendMessage::Terminate(_)) {
            break;
        }
        let is_extended_query = match socket.state() {
            PgWireConnectionState::CopyInProgress(extended) => extended,
            _ => message.is_extended_query(),
        };
        // A Query or a Sync is answered with ReadyForQuery; an extended
        // query message or extended-protocol COPY data awaits its Sync.
        between_requests = matches!(
            message,
            PgWireFrontendMessage::Query(_) | PgWireFrontendMessage::Sync(_)
        ) || !is_extended_query;
        counted.set_busy(!starting);
        let result = process_message(
            message,
            &mut socket,
            startup.clone(),
            query.clone(),
            query.clone(),
            copy.clone(),
            cancel.clone(),
        )
        .await;
        if let Err(mut e) = result {
            errors.on_error(&socket, &mut e);
            process_error(&mut socket, e, is_extended_query).await?;
        }
    }
    Ok(())
}

/// Peeks (without consuming) at the first 8 bytes: a length and a code.
async fn first_packet(socket: &TcpStream) -> FirstPacket {
    let deadline = Instant::now() + FIRST_PACKET_TIMEOUT;
    let mut header = [0u8; 8];
    loop {
        let peeked = tokio::time::timeout_at(deadline, socket.peek(&mut header)).await;
        match peeked {
            Err(_) | Ok(Err(_)) => return FirstPacket::Other,
            Ok(Ok(0)) => return FirstPacket::Closed,
            Ok(Ok(n)) if n >= header.len() => break,
            // Only part of the header is here; peeking again at once would
            // spin, since the socket stays readable.
            Ok(Ok(_)) => {
                if Instant::now() >= deadline {
                    return FirstPacket::Other;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let code = i32::from_be_bytes([header[4], header[5], header[6], header[7]]);
    match usize::try_from(len) {
        Ok(len) if code == CANCEL_REQUEST_CODE && (16..=MAX_CANCEL_REQUEST_LEN).contains(&len) => {
            FirstPacket::Cancel { len }
        }
        _ => FirstPacket::Other,
    }
}

/// Reads a CancelRequest and signals the connection it names. Like Postgres,
/// answers nothing and closes the socket, whether or not the key matched.
async fn cancel(mut socket: TcpStream, len: usize, connections: &ConnectionManager) {
    let mut packet = vec![0u8; len];
    match tokio::time::timeout(FIRST_PACKET_TIMEOUT, socket.read_exact(&mut packet)).await {
        Ok(Ok(_)) => {}
        _ => return,
    }
    let pid = i32::from_be_bytes([packet[8], packet[9], packet[10], packet[11]]);
    let secret = SecretKey::Bytes(Bytes::copy_from_slice(&packet[12..]));
    let found = connections.cancel(pid, &secret).await;
    tracing::debug!(pid, found, "cancel request");
}

fn load_tls(files: &TlsFiles) -> WireResult<TlsAcceptor> {
    let mut config = tls_server_config(files)?;
    // Direct TLS negotiation (PG 17 `sslnegotiation=direct`) requires this ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A rustls server configuration for the certificate chain and key in
/// `files`, without ALPN protocols: the wire listener's, which the HTTP
/// endpoint shares.
pub fn tls_server_config(files: &TlsFiles) -> WireResult<rustls::ServerConfig> {
    let read = |path: &PathBuf| {
        std::fs::File::open(path)
            .map(BufReader::new)
            .map_err(|e| WireError::Tls(format!("cannot open {}: {e}", path.display())))
    };
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut read(&files.cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| WireError::Tls(format!("bad certificate {}: {e}", files.cert.display())))?;
    if certs.is_empty() {
        return Err(WireError::Tls(format!(
            "no certificate found in {}",
            files.cert.display()
        )));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut read(&files.key)?)
        .map_err(|e| WireError::Tls(format!("bad key {}: {e}", files.key.display())))?
        .ok_or_else(|| {
            WireError::Tls(format!("no private key found in {}", files.key.display()))
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WireError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WireError::Tls(e.to_string()))
}

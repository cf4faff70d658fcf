//! Serves health and Prometheus metrics over HTTP.
//!
//! Orchestrators and monitoring systems speak HTTP, not the PostgreSQL wire
//! protocol: a liveness probe should not need a database login, and a
//! Prometheus server scrapes a text page. This crate is that small side door
//! of the server process. It listens on its own address (`--http-listen`,
//! loopback by default), on a thread and runtime of its own, so it answers
//! even while queries keep every compute worker busy.
//!
//! What each endpoint promises (only GET and HEAD; anything else is 405, an
//! unknown path 404):
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
//! When the server has a certificate (`--tls-cert`/`--tls-key`), this
//! listener speaks HTTPS only, with the same certificate; otherwise plain
//! HTTP. Either way there is no authentication, which is why it binds to
//! loopback unless told otherwise.

pub mod metrics;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use freshet_engine::Engine;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
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

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

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
                // Connections still open (keep-alive) are not waited for.
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
            let socket = match accepted {
                Ok((socket, _)) => socket,
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
                    None => serve_connection(socket, status).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(socket)).await
                        {
                            Ok(Ok(stream)) => serve_connection(stream, status).await,
                            Ok(Err(e)) => tracing::debug!(error = %e, "HTTPS handshake failed"),
                            Err(_) => tracing::debug!("HTTPS handshake timed out"),
                        }
                    }
                }
            });
        }
    }
}

/// Serves HTTP/1.1 requests on one connection until the client closes it.
async fn serve_connection<S>(stream: S, status: Arc<Status>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request| {
        let status = status.clone();
        async move { Ok::<_, Infallible>(respond(&status, &request)) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!(error = %e, "HTTP connection ended with error");
    }
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

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE));
    response
}

/// The response to one request; see the crate documentation.
fn respond(status: &Status, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match request.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if status.is_ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/metrics" => match status.engine.get() {
            None => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "not ready: the data directory is being recovered\n",
            ),
            Some(engine) => match metrics::render(engine) {
                Ok(body) => {
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response
                        .headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
                    response
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not render metrics");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "could not render metrics\n",
                    )
                }
            },
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

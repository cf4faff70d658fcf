//! The TCP listener and the per-connection wiring of pgwire handlers.

use std::future::Future;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use freshet_engine::Engine;
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::{ConnectionManager, PgWireServerHandlers};
use pgwire::tokio::process_socket;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::FreshetStartupHandler;
use crate::copy::FreshetCopyHandler;
use crate::error::{WireError, WireResult};
use crate::query::FreshetQueryHandler;

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
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handlers: Arc<Handlers>,
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
        let listener = TcpListener::bind(addrs.as_slice()).await?;
        let tls = config.tls.as_ref().map(load_tls).transpose()?;
        let connections = Arc::new(ConnectionManager::new());
        let handlers = Arc::new(Handlers {
            query: Arc::new(FreshetQueryHandler::default()),
            startup: Arc::new(FreshetStartupHandler::new(engine, connections.clone())),
            copy: Arc::new(FreshetCopyHandler),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        });
        Ok(Server {
            listener,
            tls,
            handlers,
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

    /// Accepts connections until `shutdown` resolves. Connections already
    /// running are not waited for; the caller shuts the engine down next.
    pub async fn run_until<F>(self, shutdown: F) -> WireResult<()>
    where
        F: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                _ = &mut shutdown => return Ok(()),
                accepted = self.listener.accept() => accepted,
            };
            let (socket, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Typically EMFILE; keep serving existing connections.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            if let Err(e) = socket.set_nodelay(true) {
                tracing::debug!(error = %e, "could not set TCP_NODELAY");
            }
            let tls = self.tls.clone();
            let handlers = self.handlers.clone();
            tokio::spawn(async move {
                tracing::debug!(%peer, "connection accepted");
                if let Err(e) = process_socket(socket, tls, handlers).await {
                    tracing::debug!(%peer, error = %e, "connection ended with error");
                }
            });
        }
    }
}

fn load_tls(files: &TlsFiles) -> WireResult<TlsAcceptor> {
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
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| WireError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| WireError::Tls(e.to_string()))?;
    // Direct TLS negotiation (PG 17 `sslnegotiation=direct`) requires this ALPN.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

//! Connection start-up: authentication policy and session creation.
//!
//! The policy, decided per connection:
//!
//! * a user with a SCRAM secret must authenticate with SCRAM-SHA-256, even
//!   from loopback;
//! * a user without one may connect only from a loopback peer (`trust`);
//! * anyone else is refused with 28000.
//!
//! SCRAM message handling is pgwire's ([`ScramServerAuth`]); this handler only
//! decides which path a connection takes and keeps the per-connection SCRAM
//! state in the session extensions, so one handler instance serves every
//! connection. After authentication the engine session is created *before*
//! AuthenticationOk, so an unknown database or role becomes a FATAL
//! ErrorResponse with the engine's SQLSTATE instead of a half-open session.

use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use freshet_engine::{Engine, ScramSecret};
use futures::{Sink, SinkExt};
use pgwire::api::auth::sasl::scram::{ScramServerAuth, ScramServerAuthWaitingForClientFinal};
use pgwire::api::auth::sasl::SCRAM_SHA_256_METHOD;
use pgwire::api::auth::{
    protocol_negotiation, save_startup_parameters_to_metadata, Password, StartupHandler,
};
use pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, PgWireConnectionState,
    PidSecretKeyGenerator, RandomPidSecretKeyGenerator, METADATA_APPLICATION_NAME,
    METADATA_DATABASE, METADATA_USER,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::response::{ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{Authentication, BackendKeyData, ParameterStatus};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::runtime::Handle;
use tokio::sync::Mutex;

use crate::error::WireError;
use crate::session::SessionSlot;

/// The `server_version` reported to clients (see the engine's
/// `system_info`).
pub use freshet_engine::SERVER_VERSION;

/// Where a connection is in the SCRAM exchange.
enum ScramPhase {
    /// AuthenticationSASL sent; waiting for SASLInitialResponse.
    AwaitingClientFirst(ScramSecret),
    /// AuthenticationSASLContinue sent; waiting for the client proof.
    AwaitingClientFinal(Box<ScramServerAuthWaitingForClientFinal>),
}

#[derive(Default)]
struct ScramSlot(Mutex<Option<ScramPhase>>);

/// Startup handler implementing Freshet's authentication policy.
pub struct FreshetStartupHandler {
    engine: Arc<Engine>,
    /// The runtime sessions run their statements on.
    compute: Handle,
    connections: Arc<ConnectionManager>,
    /// The sessions `pg_stat_activity` lists.
    activities: Arc<crate::activity::Activities>,
    pids: RandomPidSecretKeyGenerator,
}

impl Debug for FreshetStartupHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FreshetStartupHandler")
            .finish_non_exhaustive()
    }
}

fn fatal(err: WireError) -> PgWireError {
    PgWireError::UserError(Box::new(err.into_error_info("FATAL")))
}

fn auth_error(sqlstate: &'static str, message: String) -> PgWireError {
    fatal(WireError::Auth { sqlstate, message })
}

/// Loopback peers (127.0.0.0/8, ::1, and IPv4-mapped loopback) may use trust.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

impl FreshetStartupHandler {
    /// A handler for `engine`, registering connections in `connections` so that
    /// CancelRequests can find them; sessions execute on `compute`.
    pub(crate) fn new(
        engine: Arc<Engine>,
        compute: Handle,
        connections: Arc<ConnectionManager>,
        activities: Arc<crate::activity::Activities>,
    ) -> Self {
        FreshetStartupHandler {
            engine,
            compute,
            connections,
            activities,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    fn user<C: ClientInfo>(client: &C) -> PgWireResult<String> {
        client
            .metadata()
            .get(METADATA_USER)
            .cloned()
            .ok_or(PgWireError::UserNameRequired)
    }

    /// Creates the engine session and completes the start-up sequence.
    async fn finish<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let user = Self::user(client)?;
        let database = client.metadata().get(METADATA_DATABASE).cloned();
        let mut session = self
            .engine
            .new_session(&user, database.as_deref())
            .map_err(|e| fatal(e.into()))?;
        // `SHOW application_name` (and what RESET returns to) is what the
        // client sent.
        if let Some(name) = client.metadata().get(METADATA_APPLICATION_NAME) {
            session
                .apply_startup_parameter("application_name", name)
                .map_err(|e| fatal(e.into()))?;
        }
        let (pid, secret_key) = self.pids.generate(client);
        session.set_backend_pid(pid);
        let session_database = session.database().to_owned();
        client
            .session_extensions()
            .insert(SessionSlot::new(session, self.compute.clone()));

        client.set_pid_and_secret_key(pid, secret_key.clone());
        let (handle, guard) = self.connections.register(pid, secret_key.clone());
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle.clone());
        client.session_extensions().insert::<ConnectionGuard>(guard);
        // Listed in pg_stat_activity until the connection ends. The
        // connection loop put the terminate signal in place before start-up.
        if let Some(terminate) = client
            .session_extensions()
            .get::<Arc<crate::activity::TerminateSignal>>()
        {
            let peer = client.socket_addr();
            let (entry, activity_guard) = self.activities.register(crate::activity::NewSession {
                pid,
                user: user.clone(),
                database: session_database,
                application_name: client
                    .metadata()
                    .get(METADATA_APPLICATION_NAME)
                    .cloned()
                    .unwrap_or_default(),
                client: Some((peer.ip().to_canonical(), peer.port())),
                cancel: handle,
                terminate: (*terminate).clone(),
            });
            client.session_extensions().insert(entry);
            client.session_extensions().insert(activity_guard);
        }
        // Counted as a current connection until the connection (and with it
        // this guard) is dropped.
        client
            .session_extensions()
            .insert(freshet_engine::server_metrics::ServerMetrics::connection_opened(&self.engine));

        client
            .feed(PgWireBackendMessage::Authentication(Authentication::Ok))
            .await?;
        let application_name = client
            .metadata()
            .get(METADATA_APPLICATION_NAME)
            .cloned()
            .unwrap_or_default();
        let is_superuser = if user == self.engine.superuser() {
            "on"
        } else {
            "off"
        };
        let parameters = [
            ("server_version", SERVER_VERSION.to_owned()),
            ("server_encoding", "UTF8".to_owned()),
            ("client_encoding", "UTF8".to_owned()),
            ("DateStyle", "ISO, MDY".to_owned()),
            ("integer_datetimes", "on".to_owned()),
            ("standard_conforming_strings", "on".to_owned()),
            ("TimeZone", "UTC".to_owned()),
            ("IntervalStyle", "postgres".to_owned()),
            ("application_name", application_name),
            ("is_superuser", is_superuser.to_owned()),
            ("session_authorization", user.clone()),
            ("default_transaction_read_only", "off".to_owned()),
            ("in_hot_standby", "off".to_owned()),
        ];
        for (name, value) in parameters {
            client
                .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                    name.to_owned(),
                    value,
                )))
                .await?;
        }
        client
            .feed(PgWireBackendMessage::BackendKeyData(BackendKeyData::new(
                pid, secret_key,
            )))
            .await?;
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                TransactionStatus::Idle,
            )))
            .await?;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        tracing::debug!(%user, peer = %client.socket_addr(), "session started");
        Ok(())
    }
}

#[async_trait]
impl StartupHandler for FreshetStartupHandler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                let user = Self::user(client)?;
                let peer = client.socket_addr().ip();
                match self.engine.scram_secret(&user) {
                    Some(secret) => {
                        let slot = client
                            .session_extensions()
                            .get_or_insert_with(ScramSlot::default);
                        *slot.0.lock().await = Some(ScramPhase::AwaitingClientFirst(secret));
                        client.set_state(PgWireConnectionState::AuthenticationInProgress);
                        client
                            .send(PgWireBackendMessage::Authentication(Authentication::SASL(
                                vec![SCRAM_SHA_256_METHOD.to_owned()],
                            )))
                            .await?;
                    }
                    None if is_loopback(peer) => self.finish(client).await?,
                    None => {
                        tracing::info!(%user, %peer, "refused: no password set for non-loopback peer");
                        return Err(auth_error(
                            "28000",
                            format!(
                                "no password authentication available for role \"{user}\" \
                                 connecting from {peer}; only loopback connections may use trust"
                            ),
                        ));
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(msg) => {
                let user = Self::user(client)?;
                let slot = client
                    .session_extensions()
                    .get_or_insert_with(ScramSlot::default);
                let phase = slot.0.lock().await.take();
                match phase {
                    Some(ScramPhase::AwaitingClientFirst(secret)) => {
                        let initial = msg.into_sasl_initial_response()?;
                        if initial.auth_method != SCRAM_SHA_256_METHOD {
                            return Err(PgWireError::UnsupportedSASLAuthMethod(
                                initial.auth_method,
                            ));
                        }
                        let data = initial.data.ok_or_else(|| {
                            PgWireError::InvalidScramMessage("empty client-first message".into())
                        })?;
                        let mut server = ScramServerAuth::new();
                        server.set_iterations(secret.iterations);
                        let (server_first, waiting) = server.on_client_first_message(
                            &data,
                            Password::new(Some(secret.salt), secret.salted_password),
                        )?;
                        *slot.0.lock().await =
                            Some(ScramPhase::AwaitingClientFinal(Box::new(waiting)));
                        client
                            .send(PgWireBackendMessage::Authentication(
                                Authentication::SASLContinue(server_first.into_bytes().into()),
                            ))
                            .await?;
                    }
                    Some(ScramPhase::AwaitingClientFinal(waiting)) => {
                        let response = msg.into_sasl_response()?;
                        let server_final = waiting
                            .on_client_final_message(&response.data)
                            .map_err(|e| {
                                tracing::info!(%user, error = %e, "SCRAM authentication failed");
                                auth_error(
                                    "28P01",
                                    format!("password authentication failed for user \"{user}\""),
                                )
                            })?;
                        client
                            .feed(PgWireBackendMessage::Authentication(
                                Authentication::SASLFinal(server_final.into_bytes().into()),
                            ))
                            .await?;
                        self.finish(client).await?;
                    }
                    None => {
                        return Err(fatal(WireError::protocol(
                            "08P01",
                            "unexpected password message",
                        )))
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("127.1.2.3".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("10.0.0.1".parse().unwrap()));
        assert!(!is_loopback("::ffff:10.0.0.1".parse().unwrap()));
    }
}

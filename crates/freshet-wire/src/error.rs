//! The wire layer's single error type and its translation into Postgres
//! `ErrorResponse` fields.
//!
//! Everything that can go wrong between the socket and the engine ends up as a
//! [`WireError`]. Each variant knows its SQLSTATE so that drivers see the same
//! error classes a real Postgres would send (22P02 for bad COPY input, 57014 for
//! a cancelled query, 28P01 for a wrong password, …), and so that the decision
//! of *how* to report an error lives in one place.

use std::net::SocketAddr;

use datafusion::error::DataFusionError;
use freshet_engine::EngineError;
use pgwire::error::{ErrorInfo, PgWireError};

/// An error raised by the Postgres wire front end.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The engine rejected or failed a statement; carries the engine's SQLSTATE.
    #[error(transparent)]
    Engine(#[from] EngineError),

    /// A result value could not be encoded for the client.
    #[error("{message}")]
    Execution {
        /// The SQLSTATE (0A000 for unsupported values, 22008 for dates out
        /// of range, XX000 for internal inconsistencies).
        sqlstate: &'static str,
        /// The human-readable message.
        message: String,
    },

    /// Bad data in a `COPY … FROM STDIN` stream.
    #[error("{message}")]
    CopyData {
        /// The SQLSTATE (22P02, 22P04, 22021, …).
        sqlstate: &'static str,
        /// The human-readable message.
        message: String,
        /// 1-based input line the error refers to, reported as `CONTEXT`.
        line: Option<u64>,
    },

    /// The client broke the protocol or sent something we cannot handle.
    #[error("{message}")]
    Protocol {
        /// The SQLSTATE (usually 08P01 or 0A000).
        sqlstate: &'static str,
        /// The human-readable message.
        message: String,
    },

    /// Authentication failed or is not allowed for this peer.
    #[error("{message}")]
    Auth {
        /// 28000 (not allowed) or 28P01 (wrong password).
        sqlstate: &'static str,
        /// The human-readable message.
        message: String,
    },

    /// The running statement was cancelled by a CancelRequest.
    #[error("canceling statement due to user request")]
    Cancelled,

    /// The running statement ran longer than the session's
    /// `statement_timeout`.
    #[error("canceling statement due to statement timeout")]
    StatementTimeout,

    /// The server was asked to listen on a non-loopback address while no user can
    /// authenticate with a password, which would hand out trust access to the network.
    #[error(
        "refusing to listen on non-loopback address {0}: no password authentication is configured \
         (set --superuser-password or FRESHET_SUPERUSER_PASSWORD, or listen on 127.0.0.1)"
    )]
    InsecureListen(SocketAddr),

    /// Loading the TLS certificate or key failed.
    #[error("TLS configuration error: {0}")]
    Tls(String),

    /// A socket-level failure.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),

    /// An error raised inside pgwire itself (encoding, parameter parsing, …).
    #[error(transparent)]
    PgWire(#[from] PgWireError),
}

impl WireError {
    /// Builds a protocol-level error with the given SQLSTATE.
    pub fn protocol(sqlstate: &'static str, message: impl Into<String>) -> Self {
        WireError::Protocol {
            sqlstate,
            message: message.into(),
        }
    }

    /// Builds a COPY input error pointing at `line`.
    pub fn copy_data(sqlstate: &'static str, message: impl Into<String>, line: u64) -> Self {
        WireError::CopyData {
            sqlstate,
            message: message.into(),
            line: Some(line),
        }
    }

    /// The SQLSTATE sent to the client for this error.
    pub fn sqlstate(&self) -> &str {
        match self {
            WireError::Engine(e) => e.sqlstate(),
            WireError::Execution { sqlstate, .. }
            | WireError::CopyData { sqlstate, .. }
            | WireError::Protocol { sqlstate, .. }
            | WireError::Auth { sqlstate, .. } => sqlstate,
            WireError::Cancelled | WireError::StatementTimeout => "57014",
            WireError::InsecureListen(_) | WireError::Tls(_) => "F0000",
            WireError::Io(_) => "58030",
            WireError::PgWire(_) => "XX000",
        }
    }

    /// The `ErrorResponse` fields for this error at the given severity
    /// (`ERROR` for statement failures, `FATAL` for ones that end the connection).
    pub fn into_error_info(self, severity: &str) -> ErrorInfo {
        let mut info = match self {
            // pgwire's own errors already carry their SQLSTATE and severity.
            WireError::PgWire(e) => return ErrorInfo::from(e),
            ref other => ErrorInfo::new(
                severity.to_owned(),
                other.sqlstate().to_owned(),
                other.to_string(),
            ),
        };
        match &self {
            WireError::Engine(e) => {
                info.position = e.position().map(|p| p.to_string());
                info.detail = e.detail().map(str::to_string);
                if let Some(object) = e.object() {
                    info.schema = object.schema.clone();
                    info.table = object.table.clone();
                    info.constraint = object.constraint.clone();
                }
            }
            WireError::CopyData {
                line: Some(line), ..
            } => info.where_context = Some(format!("COPY, line {line}")),
            _ => {}
        }
        info
    }

    /// Maps a failure of a result stream (DataFusion or Arrow) to a SQLSTATE.
    ///
    /// The engine's [`freshet_engine::map_df_error`] is the one place DataFusion
    /// failures get their SQLSTATE, whether they surface while planning or
    /// while the wire layer drains a stream; errors the engine raised itself
    /// (inside `DataFusionError::External`) keep their own code.
    pub fn from_datafusion(err: DataFusionError) -> Self {
        WireError::Engine(freshet_engine::map_df_error(err))
    }
}

impl From<WireError> for PgWireError {
    fn from(err: WireError) -> Self {
        match err {
            WireError::PgWire(e) => e,
            WireError::Io(e) => PgWireError::IoError(e),
            other => PgWireError::UserError(Box::new(other.into_error_info("ERROR"))),
        }
    }
}

/// Shorthand used throughout the crate.
pub type WireResult<T> = Result<T, WireError>;

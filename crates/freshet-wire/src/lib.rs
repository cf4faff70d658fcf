//! The PostgreSQL wire front end of Freshet, built on pgwire.
//!
//! This crate knows nothing about SQL semantics. It authenticates connections,
//! creates one engine [`freshet_engine::Session`] per connection, hands it
//! statement text (simple protocol) or prepared statements with bound
//! parameters (extended protocol), and encodes what comes back — rows, command
//! tags, COPY streams, errors with their SQLSTATE — as Postgres messages.
//!
//! Layout:
//! * [`server`] — TCP/TLS listener and handler wiring;
//! * `auth` — trust-on-loopback / SCRAM-SHA-256 start-up policy;
//! * `query` — simple and extended query flows, streaming and cancellation;
//! * `copy` — COPY FROM STDIN decoding and COPY TO STDOUT encoding;
//! * `slow_log` — the slow-statement log (`--log-slow-statements`);
//! * [`types`] — Arrow ⇄ Postgres type mapping (incl. JSON for nested values);
//! * `text` — Postgres-exact text output of Arrow values;
//! * [`error`] — [`WireError`], the crate's single error type.

mod activity;
mod auth;
mod copy;
pub mod error;
mod query;
pub mod server;
mod session;
mod slow_log;
mod text;
pub mod types;
mod utf8;

pub use auth::SERVER_VERSION;
pub use error::{WireError, WireResult};
pub use server::{tls_server_config, Server, ServerConfig, Stopped, TlsFiles};
pub use slow_log::MAX_LOGGED_STATEMENT_CHARS;

//! The slow-statement log: one WARN line for every Query message or Execute
//! that took at least the configured threshold (`--log-slow-statements`),
//! like PostgreSQL's `log_min_duration_statement`.
//!
//! The time is measured where the connection handles the message, from its
//! arrival until its last response is queued: planning, execution and the
//! streaming of rows to the client all count, since a query's execution
//! happens while its rows stream out. (The statement-latency histogram of
//! `/metrics` stops at the moment a result is ready, so it is no place to
//! time a long SELECT.) A simple-protocol Query message holding several
//! statements is timed and logged as one, with its whole text; a COPY FROM
//! STDIN counts up to its CopyInResponse.

use std::time::Duration;

use pgwire::api::{ClientInfo, METADATA_USER};

/// Characters of statement text a log line keeps; longer text is cut at a
/// character boundary and marked with `…`.
pub const MAX_LOGGED_STATEMENT_CHARS: usize = 1000;

/// How a statement ended, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It succeeded.
    Ok,
    /// It failed with this SQLSTATE (57014 for a cancel or a timeout).
    Error(String),
}

/// The threshold in effect; `None` logs nothing.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct SlowStatementLog {
    threshold: Option<Duration>,
}

impl SlowStatementLog {
    pub(crate) fn new(threshold: Option<Duration>) -> Self {
        SlowStatementLog { threshold }
    }

    /// Whether a statement that took `elapsed` is logged.
    pub(crate) fn is_slow(&self, elapsed: Duration) -> bool {
        self.threshold.is_some_and(|t| elapsed >= t)
    }

    /// Logs `sql` when `elapsed` reaches the threshold.
    pub(crate) fn record<C: ClientInfo + ?Sized>(
        &self,
        client: &C,
        sql: &str,
        elapsed: Duration,
        outcome: &Outcome,
    ) {
        if !self.is_slow(elapsed) {
            return;
        }
        let user = client
            .metadata()
            .get(METADATA_USER)
            .map(String::as_str)
            .unwrap_or("");
        let (outcome, sqlstate) = match outcome {
            Outcome::Ok => ("ok", None),
            Outcome::Error(code) => ("error", Some(code.as_str())),
        };
        let (pid, _) = client.pid_and_secret_key();
        // Strings are recorded as such: quoted and escaped on one line in
        // text logs, plain JSON strings in JSON logs.
        let statement = truncate(sql.trim(), MAX_LOGGED_STATEMENT_CHARS);
        tracing::warn!(
            target: "freshet::slow_statement",
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            user,
            pid,
            outcome,
            sqlstate,
            statement = &*statement,
            "slow statement"
        );
    }
}

/// Logs (DEBUG, target `freshet::statement`) that a statement starts:
/// PostgreSQL's `log_statement = all`, for `RUST_LOG=freshet::statement=debug`.
pub(crate) fn log_start<C: ClientInfo + ?Sized>(client: &C, sql: &str) {
    let user = client
        .metadata()
        .get(METADATA_USER)
        .map(String::as_str)
        .unwrap_or("");
    let (pid, _) = client.pid_and_secret_key();
    let statement = truncate(sql.trim(), MAX_LOGGED_STATEMENT_CHARS);
    tracing::debug!(
        target: "freshet::statement",
        user,
        pid,
        statement = &*statement,
        "statement started"
    );
}

/// Whether [`log_start`] logs anything (so callers look up the text only then).
pub(crate) fn logs_start() -> bool {
    tracing::enabled!(target: "freshet::statement", tracing::Level::DEBUG)
}

/// `text` cut to at most `max` characters, with `…` when it was cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("abc", 3), "abc");
        assert_eq!(truncate("abcd", 3), "abc…");
        assert_eq!(truncate("ééé", 2), "éé…");
        assert_eq!(truncate("", 0), "");
    }
}

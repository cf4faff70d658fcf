//! Transaction isolation levels: what a client may ask for, and what it gets.
//!
//! Freshet gives every transaction snapshot isolation: all its reads come
//! from the snapshot taken at its first statement, and a write to a row
//! another transaction changed since that snapshot fails with 40001. That is
//! PostgreSQL's REPEATABLE READ.
//!
//! * `REPEATABLE READ` is what is given.
//! * `READ COMMITTED` and `READ UNCOMMITTED` are accepted and run as
//!   REPEATABLE READ, which is stricter: the SQL standard lets a server run a
//!   transaction at a higher level than asked, as PostgreSQL itself runs
//!   READ UNCOMMITTED as READ COMMITTED. A READ COMMITTED client sees one
//!   snapshot for the whole transaction instead of one per statement, and may
//!   get a serialization failure (40001) where PostgreSQL would have waited
//!   and re-read the row.
//! * `SERIALIZABLE` is refused (0A000): snapshot isolation does not prevent
//!   write skew, so granting it would silently give less than asked.
//!
//! `SHOW transaction_isolation`, `SHOW default_transaction_isolation` and
//! `SHOW TRANSACTION ISOLATION LEVEL` therefore always say `repeatable read`.

use datafusion::sql::sqlparser::ast::{TransactionIsolationLevel, TransactionMode};

use crate::EngineError;

/// What `SHOW transaction_isolation` reports: the level every transaction runs at.
pub(crate) const PROVIDED: &str = "repeatable read";

/// The settings that name an isolation level.
pub(crate) const SETTINGS: &[&str] = &["transaction_isolation", "default_transaction_isolation"];

/// An isolation level a client can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    ReadUncommitted,
    ReadCommitted,
    RepeatableRead,
    Serializable,
}

impl Requested {
    fn from_sql(level: TransactionIsolationLevel) -> Requested {
        match level {
            TransactionIsolationLevel::ReadUncommitted => Requested::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted => Requested::ReadCommitted,
            // SNAPSHOT (SQL Server's name) is exactly what is given.
            TransactionIsolationLevel::RepeatableRead | TransactionIsolationLevel::Snapshot => {
                Requested::RepeatableRead
            }
            TransactionIsolationLevel::Serializable => Requested::Serializable,
        }
    }

    /// A setting's value: `read committed`, `'REPEATABLE READ'`, `serializable`…
    fn from_setting(value: &str) -> Option<Requested> {
        let words = value
            .trim()
            .trim_matches('\'')
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
        match words.as_str() {
            "read uncommitted" => Some(Requested::ReadUncommitted),
            "read committed" => Some(Requested::ReadCommitted),
            "repeatable read" => Some(Requested::RepeatableRead),
            "serializable" => Some(Requested::Serializable),
            _ => None,
        }
    }

    /// Whether Freshet can run a transaction that asked for this level.
    fn check(self) -> Result<(), EngineError> {
        match self {
            Requested::Serializable => Err(EngineError::new(
                "0A000",
                "SERIALIZABLE isolation is not supported: Freshet provides REPEATABLE READ \
                 (snapshot isolation), which does not prevent write skew; \
                 use ISOLATION LEVEL REPEATABLE READ",
            )),
            Requested::ReadUncommitted | Requested::ReadCommitted | Requested::RepeatableRead => {
                Ok(())
            }
        }
    }
}

/// Checks the modes of `BEGIN`, `START TRANSACTION` and `SET [SESSION
/// CHARACTERISTICS AS] TRANSACTION`.
pub(crate) fn check_modes(modes: &[TransactionMode]) -> Result<(), EngineError> {
    for mode in modes {
        if let TransactionMode::IsolationLevel(level) = mode {
            Requested::from_sql(*level).check()?;
        }
    }
    Ok(())
}

/// Checks a value of one of the [`SETTINGS`] and returns what to store: the
/// level that is given. An empty value (`SET … TO DEFAULT`) is the default.
pub(crate) fn setting_value(name: &str, value: &str) -> Result<String, EngineError> {
    if value.trim().is_empty() {
        return Ok(PROVIDED.to_string());
    }
    let requested = Requested::from_setting(value).ok_or_else(|| {
        EngineError::new(
            "22023",
            format!("invalid value for parameter \"{name}\": \"{value}\""),
        )
    })?;
    requested.check()?;
    Ok(PROVIDED.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializable_is_refused_everywhere_and_the_rest_run_as_repeatable_read() {
        let serializable = [TransactionMode::IsolationLevel(
            TransactionIsolationLevel::Serializable,
        )];
        assert_eq!(
            check_modes(&serializable).map_err(|e| e.sqlstate().to_string()),
            Err("0A000".to_string())
        );
        for level in [
            TransactionIsolationLevel::ReadUncommitted,
            TransactionIsolationLevel::ReadCommitted,
            TransactionIsolationLevel::RepeatableRead,
        ] {
            assert!(check_modes(&[TransactionMode::IsolationLevel(level)]).is_ok());
        }
        for value in ["serializable", "'SERIALIZABLE'", " Serializable "] {
            assert_eq!(
                setting_value("default_transaction_isolation", value)
                    .map_err(|e| e.sqlstate().to_string()),
                Err("0A000".to_string()),
                "{value}"
            );
        }
        for value in ["read committed", "READ  UNCOMMITTED", "repeatable read", ""] {
            assert_eq!(
                setting_value("transaction_isolation", value)
                    .ok()
                    .as_deref(),
                Some(PROVIDED),
                "{value}"
            );
        }
        assert_eq!(
            setting_value("transaction_isolation", "snapshot")
                .map_err(|e| e.sqlstate().to_string()),
            Err("22023".to_string())
        );
    }
}

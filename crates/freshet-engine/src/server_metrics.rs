//! Counters of the server's work for monitoring (`/metrics` in
//! `freshet-http`), each counted where the work happens: statements by the
//! session that runs them, connections by the wire layer that holds them,
//! refreshes by the code that runs them, model scoring by the model call.
//!
//! Counting is a few atomic adds, or a short lock of a small map for figures
//! keyed by name (a dynamic table, a model version); reading copies the
//! figures so a scrape never holds a lock while it formats them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use freshet_storage::histogram::{Histogram, HistogramSnapshot};

/// What kind of statement ran (the `kind` label of statement metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StatementKind {
    /// Queries (SELECT, VALUES, TABLE, WITH …).
    Select,
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE and TRUNCATE.
    Delete,
    /// COPY in either direction.
    Copy,
    /// BEGIN, COMMIT, ROLLBACK, savepoints.
    Transaction,
    /// CREATE, ALTER and DROP of anything but dynamic tables and models.
    Ddl,
    /// Dynamic-table statements (CREATE/ALTER/DROP/SHOW/DESCRIBE DYNAMIC TABLE).
    DynamicTable,
    /// Model statements (CREATE/ALTER/DROP/SHOW MODEL).
    Model,
    /// SET, SHOW, EXPLAIN, PREPARE, cursors and everything else.
    Other,
}

impl StatementKind {
    /// Every kind, in label order.
    pub const ALL: [StatementKind; 10] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Copy,
        StatementKind::Transaction,
        StatementKind::Ddl,
        StatementKind::DynamicTable,
        StatementKind::Model,
        StatementKind::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Copy => "copy",
            StatementKind::Transaction => "transaction",
            StatementKind::Ddl => "ddl",
            StatementKind::DynamicTable => "dynamic_table",
            StatementKind::Model => "model",
            StatementKind::Other => "other",
        }
    }

    /// The kind of a statement, from the first words of its SQL text (the
    /// parser keeps each statement's source): cheap, and the same words a
    /// reader of the statement would go by.
    pub(crate) fn of_source(source: &str) -> StatementKind {
        let mut words = source
            .trim_start_matches(|c: char| c.is_whitespace() || c == '(')
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .map(|w| w.to_ascii_uppercase());
        let first = words.next().unwrap_or_default();
        // CREATE OR REPLACE DYNAMIC TABLE, DROP MODEL IF EXISTS, …
        let object = |words: &mut dyn Iterator<Item = String>| {
            let next: Vec<String> = words.take(4).collect();
            if next.iter().any(|w| w == "DYNAMIC") {
                Some(StatementKind::DynamicTable)
            } else if next.iter().any(|w| w == "MODEL" || w == "MODELS") {
                Some(StatementKind::Model)
            } else {
                None
            }
        };
        match first.as_str() {
            "SELECT" | "WITH" | "VALUES" | "TABLE" => StatementKind::Select,
            "INSERT" => StatementKind::Insert,
            "UPDATE" => StatementKind::Update,
            "DELETE" | "TRUNCATE" => StatementKind::Delete,
            "COPY" => StatementKind::Copy,
            "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT"
            | "RELEASE" => StatementKind::Transaction,
            "CREATE" | "ALTER" | "DROP" | "GRANT" | "REVOKE" | "COMMENT" => {
                object(&mut words).unwrap_or(StatementKind::Ddl)
            }
            "SHOW" | "DESCRIBE" | "DESC" => object(&mut words).unwrap_or(StatementKind::Other),
            _ => StatementKind::Other,
        }
    }
}

/// Whether a statement succeeded (the `outcome` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The statement returned its result.
    Ok,
    /// It failed with an error.
    Error,
}

impl Outcome {
    /// Both outcomes, in label order.
    pub const ALL: [Outcome; 2] = [Outcome::Ok, Outcome::Error];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

/// One dynamic table's refresh figures since the server started.
#[derive(Debug, Clone, Default)]
pub struct RefreshFigures {
    /// Refreshes by (action, state), as their history records name them
    /// (the action is empty when nothing ran).
    pub by_action_state: BTreeMap<(String, String), u64>,
    /// How long the refreshes that ran took (start to commit or failure).
    pub duration: Option<HistogramSnapshot>,
}

#[derive(Debug, Default, Clone)]
struct RefreshCounters {
    by_action_state: BTreeMap<(String, String), u64>,
    duration: Option<Arc<Histogram>>,
}

/// One model version's scoring figures since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ScoringFigures {
    /// Rows handed to the model.
    pub rows: u64,
    /// Model calls (batches of up to `--inference-batch-size` rows).
    pub calls: u64,
    /// Time spent in those calls, in seconds.
    pub seconds: f64,
}

/// The server-wide counters; see the module documentation.
#[derive(Debug)]
pub struct ServerMetrics {
    connections: AtomicI64,
    connections_total: AtomicU64,
    /// Indexed by kind × outcome.
    statements: Vec<Histogram>,
    refreshes: Mutex<BTreeMap<String, RefreshCounters>>,
    scoring: Mutex<BTreeMap<(String, String), ScoringFigures>>,
}

impl Default for ServerMetrics {
    fn default() -> Self {
        ServerMetrics {
            connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            statements: (0..StatementKind::ALL.len() * Outcome::ALL.len())
                .map(|_| Histogram::default())
                .collect(),
            refreshes: Mutex::new(BTreeMap::new()),
            scoring: Mutex::new(BTreeMap::new()),
        }
    }
}

fn statement_index(kind: StatementKind, outcome: Outcome) -> usize {
    let k = StatementKind::ALL
        .iter()
        .position(|x| *x == kind)
        .unwrap_or(0);
    k * Outcome::ALL.len() + usize::from(outcome == Outcome::Error)
}

/// Counts one client connection while it is alive (see
/// [`ServerMetrics::connection_opened`]).
#[derive(Debug)]
pub struct ConnectionCount {
    engine: Arc<crate::Engine>,
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.engine
            .metrics
            .connections
            .fetch_sub(1, Ordering::Relaxed);
    }
}

impl ServerMetrics {
    /// Counts a client connection that completed start-up; it stays counted
    /// as current until the returned guard is dropped.
    pub fn connection_opened(engine: &Arc<crate::Engine>) -> ConnectionCount {
        engine.metrics.connections.fetch_add(1, Ordering::Relaxed);
        engine
            .metrics
            .connections_total
            .fetch_add(1, Ordering::Relaxed);
        ConnectionCount {
            engine: engine.clone(),
        }
    }

    /// Client connections open now.
    pub fn connections(&self) -> u64 {
        u64::try_from(self.connections.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Client connections opened since the server started.
    pub fn connections_total(&self) -> u64 {
        self.connections_total.load(Ordering::Relaxed)
    }

    /// Records one client statement.
    pub(crate) fn statement(&self, kind: StatementKind, outcome: Outcome, elapsed: Duration) {
        if let Some(h) = self.statements.get(statement_index(kind, outcome)) {
            h.observe(elapsed);
        }
    }

    /// Statement latencies by kind and outcome.
    pub fn statements(&self) -> Vec<(StatementKind, Outcome, HistogramSnapshot)> {
        let mut out = Vec::new();
        for kind in StatementKind::ALL {
            for outcome in Outcome::ALL {
                if let Some(h) = self.statements.get(statement_index(kind, outcome)) {
                    out.push((kind, outcome, h.snapshot()));
                }
            }
        }
        out
    }

    /// Records one refresh outcome of `table`; `elapsed` when it ran.
    pub(crate) fn refresh(
        &self,
        table: &str,
        action: &str,
        state: &str,
        elapsed: Option<Duration>,
    ) {
        let histogram = {
            let mut map = self.refreshes.lock();
            let counters = map.entry(table.to_string()).or_default();
            *counters
                .by_action_state
                .entry((action.to_string(), state.to_string()))
                .or_default() += 1;
            elapsed.map(|_| {
                counters
                    .duration
                    .get_or_insert_with(|| Arc::new(Histogram::default()))
                    .clone()
            })
        };
        if let (Some(h), Some(e)) = (histogram, elapsed) {
            h.observe(e);
        }
    }

    /// Refresh figures by dynamic table (qualified name).
    pub fn refreshes(&self) -> BTreeMap<String, RefreshFigures> {
        // Copied under the lock; the histograms are read after it is released.
        let copies: Vec<(String, RefreshCounters)> = self
            .refreshes
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        copies
            .into_iter()
            .map(|(name, counters)| {
                (
                    name,
                    RefreshFigures {
                        by_action_state: counters.by_action_state,
                        duration: counters.duration.map(|h| h.snapshot()),
                    },
                )
            })
            .collect()
    }

    /// Records one model call that scored `rows` rows of `model` (qualified
    /// name) version `version` in `elapsed`.
    pub(crate) fn scored(&self, model: &str, version: &str, rows: usize, elapsed: Duration) {
        let mut map = self.scoring.lock();
        let figures = map
            .entry((model.to_string(), version.to_string()))
            .or_default();
        figures.rows = figures.rows.saturating_add(rows as u64);
        figures.calls = figures.calls.saturating_add(1);
        figures.seconds += elapsed.as_secs_f64();
    }

    /// Scoring figures by (model, version).
    pub fn scoring(&self) -> BTreeMap<(String, String), ScoringFigures> {
        self.scoring.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_first_words() {
        let kind = StatementKind::of_source;
        assert_eq!(kind("  select 1"), StatementKind::Select);
        assert_eq!(kind("(SELECT 1) UNION (SELECT 2)"), StatementKind::Select);
        assert_eq!(kind("insert into t values (1)"), StatementKind::Insert);
        assert_eq!(kind("CREATE TABLE t (a int)"), StatementKind::Ddl);
        assert_eq!(
            kind("create or replace dynamic table d target_lag = '1 minute' as select 1"),
            StatementKind::DynamicTable
        );
        assert_eq!(
            kind("ALTER DYNAMIC TABLE d REFRESH"),
            StatementKind::DynamicTable
        );
        assert_eq!(kind("DROP MODEL IF EXISTS m"), StatementKind::Model);
        assert_eq!(kind("SHOW DYNAMIC TABLES"), StatementKind::DynamicTable);
        assert_eq!(kind("SHOW search_path"), StatementKind::Other);
        assert_eq!(kind("commit"), StatementKind::Transaction);
    }

    #[test]
    fn statements_are_counted_by_kind_and_outcome() {
        let m = ServerMetrics::default();
        m.statement(StatementKind::Insert, Outcome::Ok, Duration::from_millis(2));
        m.statement(
            StatementKind::Insert,
            Outcome::Error,
            Duration::from_millis(1),
        );
        m.statement(StatementKind::Insert, Outcome::Ok, Duration::from_millis(3));
        let counts: Vec<(StatementKind, Outcome, u64)> = m
            .statements()
            .into_iter()
            .filter(|(_, _, h)| h.count() > 0)
            .map(|(k, o, h)| (k, o, h.count()))
            .collect();
        assert_eq!(
            counts,
            vec![
                (StatementKind::Insert, Outcome::Ok, 2),
                (StatementKind::Insert, Outcome::Error, 1)
            ]
        );
    }
}

//! Dynamic tables: `CREATE | ALTER | DROP | SHOW | DESCRIBE DYNAMIC TABLE`, and
//! executing one refresh.
//!
//! A dynamic table is a stored table whose contents equal its defining query
//! evaluated at one storage snapshot, `data_seq`. A refresh moves that snapshot
//! forward. Everything a refresh changes — the contents, the catalog entry with
//! the new `data_seq` (the progress marker) and a refresh-history record — is
//! written in **one** storage transaction, so a crash at any point leaves either
//! the old state or the new one, never a half-applied refresh; the interrupted
//! work is simply redone by the next refresh.
//!
//! # Refresh modes
//!
//! * **FULL** recomputes the query and replaces the contents. Any query works.
//! * **INCREMENTAL** is offered for *map-only* queries: projections, filters
//!   and deterministic scalar expressions (model calls included), CTEs and
//!   derived tables built from those, and UNION ALL of such branches, over
//!   stored tables and dynamic tables. Such a query maps every source row to
//!   at most one result row per branch, independently of all other rows, so a
//!   refresh only has to
//!   - delete the result rows produced by source rows deleted since
//!     `data_seq` (found through a hidden lineage column,
//!     [`SOURCE_ROW_ID_COLUMN`], holding the producing source row's id; row
//!     ids are unique across all tables, so one column serves any number of
//!     sources), and
//!   - evaluate the query over the rows inserted since `data_seq` only, read
//!     from the storage change feed. The query's logical plan is rewritten so
//!     its table scans read those rows and every projection carries the row
//!     id along ([`plan_with_lineage`]).
//!
//!   This is what makes model scoring cheap: each new source row is scored
//!   exactly once, and deleted rows are never scored.
//!
//!   Queries with one GROUP BY, DISTINCT or inner equi-join over map-only
//!   inputs (under projections and HAVING filters) are maintained by
//!   *recomputing the affected partitions* ([`Strategy::Keyed`]): the lineage
//!   column holds a hash of each result row's key (group key, DISTINCT row,
//!   join key; [`key_hashes`]); a refresh runs the operator's inputs over the
//!   changed source rows to find the keys they touch, deletes the result rows
//!   with those key hashes and recomputes just those partitions from the
//!   current sources. Outer joins, window functions, several joins and
//!   aggregates over joins fall back to FULL, and `refresh_mode_reason` says
//!   which construct was the reason.
//!
//! # Pinning
//!
//! At CREATE the query is rewritten into a self-contained form stored in
//! [`DynamicTableDef::query_text`]: every table reference is qualified with
//! its database and schema (so a refresh, which runs in an internal session,
//! reads the same tables whatever the creator's search path was), and every
//! model call names its model fully and the *resolved version name* (so a
//! later change of a model's default or aliases does not silently change how
//! new rows are scored). The user's text is kept verbatim in
//! [`DynamicTableDef::create_text`]. Model calls that named no version follow
//! the model's default: when it changes, the next refresh is a REINITIALIZE
//! that re-scores every row with the new default. [`DynamicTableDef::models`]
//! lists one [`ModelUse`] per model call, in the order the calls appear in the
//! stored query, which is how a REINITIALIZE re-pins them.
//!
//! # Refresh history
//!
//! Each refresh appends a JSON [`RefreshRecord`] under
//! `refresh/<db>/<schema>/<name>/<seq>-<start>` in the catalog's key space
//! (the newest [`HISTORY_LIMIT`] are kept), in the same transaction as the
//! refresh it describes, so the history never claims a refresh that did not
//! commit.
//!
//! # Monitoring in SQL
//!
//! Table functions, so monitoring composes with ordinary SQL:
//!
//! * `freshet_refresh_history('name')`: one table's durable history;
//! * `freshet_dynamic_table_refresh_history(…)`, what the dialect layer makes
//!   of `information_schema.dynamic_table_refresh_history` and
//!   `TABLE(INFORMATION_SCHEMA.DYNAMIC_TABLE_REFRESH_HISTORY(NAME => 'x'))`:
//!   the history of every dynamic table of the database, plus the refreshes
//!   executing now (EXECUTING, kept in memory only) and each scheduled
//!   table's next refresh (SCHEDULED);
//! * `freshet_dynamic_table_graph_history(…)`: every table's inputs, lag,
//!   query and scheduling state;
//! * `freshet_dynamic_tables(…)`: the rows of `SHOW DYNAMIC TABLES`, which
//!   include the current lag and the largest lag of the last hour in seconds
//!   (computed from the history: the lag peaks just before each refresh
//!   commits).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{
    Column, DataFusionError, Result as DfResult, ScalarValue, TableReference,
};
use datafusion::datasource::{provider_as_source, MemTable};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{
    ColumnarValue, Distinct, Expr as DfExpr, Filter, Join, JoinType, LogicalPlan,
    LogicalPlanBuilder, Operator, Projection, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Union, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Statement, TableFactor, Value,
    VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use serde::{Deserialize, Serialize};

use freshet_catalog::{
    self as catalog, Arrangement, ColumnInfo, DynamicTableDef, JoinSide, MetaRead, ModelEntry,
    ModelUse, QualifiedName, RelationEntry, RelationKind,
};
use freshet_sql::{
    AlterDynamicTableAction, CreateDynamicTable, FreshetStatement, Initialize, RefreshMode,
    ShowScope, TargetLag,
};
use freshet_storage::{RowId, TableId, ROW_ID_COLUMN};

use crate::commands::command;
use crate::ddl::{now_micros, txn_mut};
use crate::delta_aggregate::DeltaAggregate;
use crate::dml::InsertTarget;
use crate::engine::Engine;
use crate::join_arrangement;
use crate::names::{find_relation, ident, parts, require_schema, resolve_name, resolve_parts};
use crate::planning::{collect_plan, map_arrow_error, map_df_error, plan_statement};
use crate::provider::SessionShared;
use crate::session::Session;
use crate::value_counts::ValueCounts;
use crate::{batch_output, EngineError, QueryOutput, TransactionStatus};

/// The hidden last column of INCREMENTAL dynamic tables: the row id of the
/// source row that produced each result row. Never visible to SQL.
pub const SOURCE_ROW_ID_COLUMN: &str = "__freshet_source_row_id";

/// After this many consecutive failed *scheduled* refreshes a dynamic table
/// (and everything downstream of it) is set to `SUSPENDED_DUE_TO_ERRORS`.
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// Refresh-history records kept per dynamic table.
pub const HISTORY_LIMIT: usize = 1000;

/// The version of the lineage hashing of keyed contents
/// ([`DynamicTableDef::lineage_version`]): 1 hashes join keys cast to the
/// join's common type ([`common_key`]).
const LINEAGE_VERSION: u32 = 1;

const RUNNING: &str = "RUNNING";
const SUSPENDED: &str = "SUSPENDED";
const SUSPENDED_DUE_TO_ERRORS: &str = "SUSPENDED_DUE_TO_ERRORS";
const INCREMENTAL: &str = "INCREMENTAL";
const FULL: &str = "FULL";
const INCREMENTAL_REASON: &str =
    "map-only query: each refresh applies only the changed source rows";

/// What started a refresh; recorded in the refresh history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefreshTrigger {
    /// The background scheduler, because the table's lag approached its target.
    Scheduled,
    /// `ALTER DYNAMIC TABLE … REFRESH`.
    Manual,
    /// The initial refresh inside `CREATE DYNAMIC TABLE … INITIALIZE = ON_CREATE`.
    Creation,
}

impl RefreshTrigger {
    /// The name shown in the history (`SCHEDULED`, `MANUAL`, `CREATION`).
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshTrigger::Scheduled => "SCHEDULED",
            RefreshTrigger::Manual => "MANUAL",
            RefreshTrigger::Creation => "CREATION",
        }
    }
}

/// Row counts of one refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RefreshStatistics {
    /// Rows added to the dynamic table.
    pub num_inserted_rows: u64,
    /// Rows removed from the dynamic table.
    pub num_deleted_rows: u64,
    /// Source rows the refresh read, counted where they are read: rows taken
    /// from the sources' change feeds (inserted rows, and the ids of deleted
    /// ones) plus rows read by scans of stored tables (FULL refreshes and the
    /// partitions a keyed refresh recomputes).
    pub num_source_rows_read: u64,
    /// Rows handed to models, counted by the model call as it scores them (a
    /// row passing through two model calls counts twice; 0 when the query
    /// calls none).
    pub num_model_rows_scored: u64,
    /// Rows of the dynamic table's own maintenance state the refresh read
    /// (per-group aggregates, join arrangements), counted where they are read.
    #[serde(default)]
    pub num_state_rows_read: u64,
}

/// One entry of a dynamic table's refresh history.
///
/// Times are microseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// The dynamic table.
    pub name: QualifiedName,
    /// `SUCCEEDED`, `FAILED` or `SKIPPED`.
    pub state: String,
    /// Why it failed or was skipped; empty on success.
    pub state_message: String,
    /// `NO_DATA`, `INCREMENTAL`, `FULL` or `REINITIALIZE` (empty when nothing ran).
    pub refresh_action: String,
    /// `SCHEDULED`, `MANUAL` or `CREATION`.
    pub refresh_trigger: String,
    /// The storage snapshot the contents now equal (successful refreshes).
    pub data_seq: Option<u64>,
    /// The time the contents are current as of.
    pub data_timestamp: Option<i64>,
    /// When the refresh started.
    pub refresh_start_time: i64,
    /// When it ended.
    pub refresh_end_time: i64,
    /// The time by which it had to complete to keep the lag within the
    /// target (previous data timestamp + target lag), if there is a target.
    pub completion_target: Option<i64>,
    /// Row counts.
    pub statistics: RefreshStatistics,
}

fn catalog_err(e: catalog::CatalogError) -> EngineError {
    EngineError::new(e.sqlstate(), e.to_string())
}

// ---------------------------------------------------------------------------
// Statement entry points
// ---------------------------------------------------------------------------

const SHOW_COLUMNS: &[(&str, ColumnKind)] = &[
    ("created_on", ColumnKind::Timestamp),
    ("name", ColumnKind::Text),
    ("database_name", ColumnKind::Text),
    ("schema_name", ColumnKind::Text),
    ("rows", ColumnKind::Int),
    ("bytes", ColumnKind::Int),
    ("target_lag", ColumnKind::Text),
    ("refresh_mode", ColumnKind::Text),
    ("refresh_mode_reason", ColumnKind::Text),
    ("warehouse", ColumnKind::Text),
    ("comment", ColumnKind::Text),
    ("text", ColumnKind::Text),
    ("scheduling_state", ColumnKind::Text),
    ("last_suspended_on", ColumnKind::Timestamp),
    ("data_timestamp", ColumnKind::Timestamp),
    ("lag_seconds", ColumnKind::Float),
    ("max_lag_seconds_last_hour", ColumnKind::Float),
];

const HISTORY_COLUMNS: &[(&str, ColumnKind)] = &[
    ("name", ColumnKind::Text),
    ("database_name", ColumnKind::Text),
    ("schema_name", ColumnKind::Text),
    ("qualified_name", ColumnKind::Text),
    ("state", ColumnKind::Text),
    ("state_message", ColumnKind::Text),
    ("refresh_action", ColumnKind::Text),
    ("refresh_trigger", ColumnKind::Text),
    ("data_timestamp", ColumnKind::Timestamp),
    ("refresh_start_time", ColumnKind::Timestamp),
    ("refresh_end_time", ColumnKind::Timestamp),
    ("completion_target", ColumnKind::Timestamp),
    ("target_lag_sec", ColumnKind::Int),
    ("statistics", ColumnKind::Json),
    ("inserted_rows", ColumnKind::Int),
    ("deleted_rows", ColumnKind::Int),
    ("source_rows_read", ColumnKind::Int),
    ("model_rows_scored", ColumnKind::Int),
    ("state_rows_read", ColumnKind::Int),
];

const GRAPH_COLUMNS: &[(&str, ColumnKind)] = &[
    ("name", ColumnKind::Text),
    ("database_name", ColumnKind::Text),
    ("schema_name", ColumnKind::Text),
    ("qualified_name", ColumnKind::Text),
    ("inputs", ColumnKind::Json),
    ("target_lag_type", ColumnKind::Text),
    ("target_lag_sec", ColumnKind::Int),
    ("effective_target_lag_sec", ColumnKind::Int),
    ("query_text", ColumnKind::Text),
    ("valid_from", ColumnKind::Timestamp),
    ("valid_to", ColumnKind::Timestamp),
    ("scheduling_state", ColumnKind::Json),
    ("refresh_mode", ColumnKind::Text),
    ("refresh_mode_reason", ColumnKind::Text),
    ("data_timestamp", ColumnKind::Timestamp),
];

const DESCRIBE_COLUMNS: &[&str] = &["name", "type", "kind", "null?", "comment", "model_version"];

#[derive(Clone, Copy)]
enum ColumnKind {
    Text,
    /// Text sent to clients as Postgres `json` (and readable with `col:field`).
    Json,
    Int,
    Float,
    Timestamp,
}

/// One cell of a typed result row.
enum Cell {
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Time(Option<i64>),
}

fn typed_schema(columns: &[(&str, ColumnKind)]) -> SchemaRef {
    Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, kind)| {
                let t = match kind {
                    ColumnKind::Text | ColumnKind::Json => DataType::Utf8,
                    ColumnKind::Int => DataType::Int64,
                    ColumnKind::Float => DataType::Float64,
                    ColumnKind::Timestamp => {
                        DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
                    }
                };
                match kind {
                    ColumnKind::Json => {
                        crate::types::json_field(name, crate::types::JsonKind::Json, true)
                    }
                    _ => Field::new(*name, t, true),
                }
            })
            .collect::<Vec<_>>(),
    ))
}

fn typed_batch(
    columns: &[(&str, ColumnKind)],
    rows: Vec<Vec<Cell>>,
) -> Result<RecordBatch, EngineError> {
    let schema = typed_schema(columns);
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    for (i, (_, kind)) in columns.iter().enumerate() {
        let array: ArrayRef = match kind {
            ColumnKind::Text | ColumnKind::Json => Arc::new(StringArray::from(
                rows.iter()
                    .map(|r| match r.get(i) {
                        Some(Cell::Text(v)) => v.clone(),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )),
            ColumnKind::Float => Arc::new(Float64Array::from(
                rows.iter()
                    .map(|r| match r.get(i) {
                        Some(Cell::Float(v)) => *v,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )),
            ColumnKind::Int => Arc::new(Int64Array::from(
                rows.iter()
                    .map(|r| match r.get(i) {
                        Some(Cell::Int(v)) => *v,
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
            )),
            ColumnKind::Timestamp => Arc::new(
                TimestampMicrosecondArray::from(
                    rows.iter()
                        .map(|r| match r.get(i) {
                            Some(Cell::Time(v)) => *v,
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                )
                .with_timezone("+00:00"),
            ),
        };
        arrays.push(array);
    }
    RecordBatch::try_new(schema, arrays).map_err(map_arrow_error)
}

/// Row descriptions of the dynamic-table statements that return rows.
pub(crate) fn describe(_session: &Session, statement: &FreshetStatement) -> Option<SchemaRef> {
    match statement {
        FreshetStatement::ShowDynamicTables { .. } => Some(typed_schema(SHOW_COLUMNS)),
        FreshetStatement::DescribeDynamicTable { .. } => {
            Some(crate::commands::text_schema(DESCRIBE_COLUMNS))
        }
        _ => None,
    }
}

/// Executes a dynamic-table statement; `None` if the statement is not one.
pub(crate) async fn run(
    session: &mut Session,
    statement: &FreshetStatement,
    source: &str,
) -> Option<Result<QueryOutput, EngineError>> {
    let result = match statement {
        FreshetStatement::CreateDynamicTable(create) => {
            create_dynamic_table(session, create, source).await
        }
        FreshetStatement::AlterDynamicTable { name, action } => {
            alter_dynamic_table(session, name, action).await
        }
        FreshetStatement::DropDynamicTable {
            name,
            if_exists,
            cascade,
        } => drop_dynamic_table(session, name, *if_exists, *cascade),
        FreshetStatement::ShowDynamicTables { like, scope } => {
            show_dynamic_tables(session, like.as_deref(), scope)
        }
        FreshetStatement::DescribeDynamicTable { name } => describe_dynamic_table(session, name),
        _ => return None,
    };
    Some(result)
}

// ---------------------------------------------------------------------------
// Catalog helpers
// ---------------------------------------------------------------------------

fn all_relations(reader: &dyn MetaRead) -> Result<Vec<RelationEntry>, EngineError> {
    catalog::list::<RelationEntry>(reader, "rel/").map_err(catalog_err)
}

fn session_relations(session: &Session) -> Result<Vec<RelationEntry>, EngineError> {
    session
        .shared
        .with_txn(|t| all_relations(t))
        .map_err(map_df_error)?
}

fn not_dynamic(entry: &RelationEntry) -> EngineError {
    let what = match entry.kind {
        RelationKind::Table => "a table",
        RelationKind::View { .. } => "a view",
        RelationKind::DynamicTable(_) => "a dynamic table",
    };
    EngineError::new(
        "42809",
        format!("\"{}\" is {what}, not a dynamic table", entry.name),
    )
}

/// Looks up a dynamic table: 42P01 when missing, 42809 when not dynamic.
fn require_dynamic(session: &Session, name: &QualifiedName) -> Result<RelationEntry, EngineError> {
    let entry = find_relation(session, name)?.ok_or_else(|| {
        EngineError::new(
            "42P01",
            format!("dynamic table \"{}\" does not exist", name.name),
        )
    })?;
    if entry.dynamic().is_none() {
        return Err(not_dynamic(&entry));
    }
    Ok(entry)
}

fn put_entry(session: &Session, entry: &RelationEntry) -> Result<(), EngineError> {
    txn_mut(session, |t| {
        catalog::put(t, &catalog::relation_key(&entry.qualified()), entry);
        Ok(())
    })
}

fn with_def(entry: &mut RelationEntry, f: impl FnOnce(&mut DynamicTableDef)) {
    if let RelationKind::DynamicTable(def) = &mut entry.kind {
        f(def);
    }
}

/// Dynamic tables reading `name`, transitively (downstream closure), in
/// breadth-first order, without `name` itself.
fn downstream_of(all: &[RelationEntry], name: &QualifiedName) -> Vec<QualifiedName> {
    let mut out: Vec<QualifiedName> = Vec::new();
    let mut queue = vec![name.clone()];
    while let Some(current) = queue.pop() {
        for r in all {
            if let Some(def) = r.dynamic() {
                let q = r.qualified();
                if def.sources.contains(&current) && !out.contains(&q) && q != *name {
                    out.push(q.clone());
                    queue.push(q);
                }
            }
        }
    }
    out
}

/// Key prefix of a dynamic table's refresh history.
fn history_prefix(name: &QualifiedName) -> String {
    format!("refresh/{}/{}/{}/", name.database, name.schema, name.name)
}

/// The holder name of a dynamic table's storage retention hold.
pub fn retention_holder(name: &QualifiedName) -> String {
    format!("dynamic-table:{name}")
}

/// Appends a history record in `txn`, trimming to the newest [`HISTORY_LIMIT`].
fn append_history(txn: &mut freshet_storage::Transaction, record: &RefreshRecord) {
    let prefix = history_prefix(&record.name);
    let existing = txn.scan_meta(&prefix);
    if existing.len() >= HISTORY_LIMIT {
        let excess = existing.len() + 1 - HISTORY_LIMIT;
        for (key, _) in existing.iter().take(excess) {
            txn.delete_meta(key);
        }
    }
    let key = format!(
        "{prefix}{:020}-{:020}",
        record.data_seq.unwrap_or_else(|| txn.snapshot_seq()),
        record.refresh_start_time.max(0)
    );
    catalog::put(txn, &key, record);
}

fn delete_history(session: &Session, name: &QualifiedName) -> Result<(), EngineError> {
    txn_mut(session, |t| {
        for (key, _) in t.scan_meta(&history_prefix(name)) {
            t.delete_meta(&key);
        }
        Ok(())
    })
}

/// Registers a retention hold for every dynamic table, so the change feeds
/// their next incremental refreshes need survive. Holds are not persisted by
/// storage: call this after the engine opens, before client writes start.
/// Returns the number of holds set.
pub fn restore_retention_holds(engine: &Engine) -> Result<usize, EngineError> {
    let snapshot = engine.store.snapshot();
    let mut n = 0;
    for entry in all_relations(&snapshot)? {
        if let Some(seq) = entry.dynamic().and_then(|d| d.data_seq) {
            engine
                .store
                .set_retention_hold(&retention_holder(&entry.qualified()), Some(seq));
            n += 1;
        }
    }
    Ok(n)
}

// ---------------------------------------------------------------------------
// CREATE
// ---------------------------------------------------------------------------

/// Qualifies table references with database and schema; records what it saw.
struct Qualifier {
    database: String,
    schema: String,
    ctes: HashSet<String>,
    relations: Vec<QualifiedName>,
    other_shapes: bool,
}

impl VisitorMut for Qualifier {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(ident(&cte.alias.name));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        let TableFactor::Table {
            name, args: None, ..
        } = factor
        else {
            if !matches!(
                factor,
                TableFactor::Derived { .. } | TableFactor::NestedJoin { .. }
            ) {
                self.other_shapes = true;
            }
            return ControlFlow::Continue(());
        };
        let normalized = parts(name);
        if normalized.len() == 1 && self.ctes.contains(&normalized[0]) {
            return ControlFlow::Continue(());
        }
        let mut prefix: Vec<ObjectNamePart> = match normalized.len() {
            1 => vec![
                ObjectNamePart::Identifier(Ident::with_quote('"', self.database.clone())),
                ObjectNamePart::Identifier(Ident::with_quote('"', self.schema.clone())),
            ],
            2 => vec![ObjectNamePart::Identifier(Ident::with_quote(
                '"',
                self.database.clone(),
            ))],
            _ => Vec::new(),
        };
        prefix.extend(name.0.iter().cloned());
        *name = ObjectName(prefix);
        if let [d, s, n] = parts(name).as_slice() {
            let q = QualifiedName {
                database: d.clone(),
                schema: s.clone(),
                name: n.clone(),
            };
            if !self.relations.contains(&q) {
                self.relations.push(q);
            }
        }
        ControlFlow::Continue(())
    }
}

/// The arguments of a `freshet_model_call(…)` expression.
fn model_call_args(expr: &mut Expr) -> Option<&mut Vec<FunctionArg>> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let is_call = matches!(
        f.name.0.as_slice(),
        [ObjectNamePart::Identifier(n)] if n.value.eq_ignore_ascii_case(freshet_sql::MODEL_CALL_FUNCTION)
    );
    match (&mut f.args, is_call) {
        (FunctionArguments::List(list), true) => Some(&mut list.args),
        _ => None,
    }
}

fn string_arg(args: &[FunctionArg], i: usize) -> Option<String> {
    match args.get(i) {
        Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v)))) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn set_string_arg(args: &mut [FunctionArg], i: usize, value: String) {
    if let Some(arg) = args.get_mut(i) {
        *arg = FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
            Value::SingleQuotedString(value),
        )));
    }
}

/// The model-name literal naming `name` fully.
fn model_literal(name: &QualifiedName) -> String {
    freshet_sql::model_name_literal(&ObjectName(vec![
        ObjectNamePart::Identifier(Ident::with_quote('"', name.database.clone())),
        ObjectNamePart::Identifier(Ident::with_quote('"', name.schema.clone())),
        ObjectNamePart::Identifier(Ident::with_quote('"', name.name.clone())),
    ]))
}

/// Resolves every model call of `query` and pins it to a full model name and
/// a version name; returns one [`ModelUse`] per call, in visiting order.
fn pin_models(session: &Session, query: &mut Query) -> Result<Vec<ModelUse>, EngineError> {
    let default_schema = session
        .search_path
        .first()
        .cloned()
        .unwrap_or_else(|| "public".into());
    let guard = session.shared.txn.lock();
    let Some(txn) = guard.as_ref() else {
        return Err(EngineError::new("XX000", "no transaction is active"));
    };
    let mut uses = Vec::new();
    let flow = visit_expressions_mut(query, |expr: &mut Expr| {
        let Some(args) = model_call_args(expr) else {
            return ControlFlow::Continue(());
        };
        let (Some(model), Some(version)) = (string_arg(args, 0), string_arg(args, 1)) else {
            return ControlFlow::Break(EngineError::new(
                "42883",
                "a model call in a dynamic table must name its model and version literally",
            ));
        };
        let version_ref = (!version.is_empty()).then_some(version.as_str());
        match crate::registry::resolve_model(
            &session.engine,
            txn,
            session.user(),
            &session.database,
            &default_schema,
            &model,
            version_ref,
        ) {
            Ok(resolved) => {
                let qualified = resolved.entry.qualified();
                set_string_arg(args, 0, model_literal(&qualified));
                set_string_arg(args, 1, resolved.version.name.clone());
                uses.push(ModelUse {
                    model: qualified,
                    version: resolved.version.name.clone(),
                    follows_default: version.is_empty() || version.eq_ignore_ascii_case("default"),
                });
                ControlFlow::Continue(())
            }
            Err(e) => ControlFlow::Break(e),
        }
    });
    match flow {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(uses),
    }
}

/// Sets the version literal of the i-th model call to `models[i].version`.
fn repin_versions(query: &mut Query, models: &[ModelUse]) {
    let mut i = 0usize;
    let _ = visit_expressions_mut(query, |expr: &mut Expr| {
        if let Some(args) = model_call_args(expr) {
            if let Some(m) = models.get(i) {
                set_string_arg(args, 1, m.version.clone());
            }
            i += 1;
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Parses a stored (pinned, already rewritten) query.
fn parse_stored_query(text: &str) -> Result<Query, EngineError> {
    let statement = Parser::new(&PostgreSqlDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_statement())
        .map_err(|e| {
            EngineError::new(
                "XX001",
                format!("stored dynamic table query does not parse: {e}"),
            )
        })?;
    match statement {
        Statement::Query(q) => Ok(*q),
        _ => Err(EngineError::new(
            "XX001",
            "stored dynamic table query is not a query",
        )),
    }
}

fn not_incremental(what: &str) -> String {
    format!("{what}: not incrementally maintainable yet")
}

/// Whether a SELECT list uses `*` or `t.*`.
fn has_wildcard(select: &datafusion::sql::sqlparser::ast::Select) -> bool {
    select.projection.iter().any(|item| {
        matches!(
            item,
            SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _)
        )
    })
}

/// Whether the result columns of `body` come from a `*` (looking through
/// set operations, not into derived tables or CTEs, whose `*` is narrowed by
/// an explicit list further up).
fn body_has_wildcard(body: &SetExpr) -> bool {
    match body {
        SetExpr::Select(select) => has_wildcard(select),
        SetExpr::Query(q) => body_has_wildcard(&q.body),
        SetExpr::SetOperation { left, right, .. } => {
            body_has_wildcard(left) || body_has_wildcard(right)
        }
        _ => false,
    }
}

/// How an incremental dynamic table is maintained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    /// Every result row comes from exactly one source row: deleted source rows
    /// remove their result rows (by lineage), inserted ones are evaluated.
    MapOnly,
    /// The result is partitioned by a key (GROUP BY key, DISTINCT row, join
    /// key): a refresh recomputes only the partitions whose source rows
    /// changed. The lineage column holds the hash of each row's key.
    Keyed(KeyKind),
}

/// Which operator partitions a [`Strategy::Keyed`] result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Aggregate,
    Distinct,
    Join,
}

/// Why a GROUP BY maintained from per-group state is incremental.
const STATE_REASON: &str = "GROUP BY: maintained from per-group state; each refresh reads only the changed rows (and recomputes a group whose minimum or maximum was deleted)";
/// Why a DISTINCT maintained from per-row counts is incremental.
const DISTINCT_STATE_REASON: &str =
    "DISTINCT: maintained from per-row counts; each refresh reads only the changed rows";

impl Strategy {
    fn reason(self) -> &'static str {
        match self {
            Strategy::MapOnly => INCREMENTAL_REASON,
            Strategy::Keyed(KeyKind::Aggregate) => {
                "GROUP BY: each refresh recomputes only the groups whose source rows changed"
            }
            Strategy::Keyed(KeyKind::Distinct) => {
                "DISTINCT: each refresh recomputes only the rows whose source rows changed"
            }
            Strategy::Keyed(KeyKind::Join) => {
                "inner join: each refresh recomputes only the join keys whose rows changed on either side"
            }
        }
    }
}

/// The operator that decides the strategy: the first node below the
/// projections, filters and aliases at the top of the plan.
fn key_node(plan: &LogicalPlan) -> &LogicalPlan {
    match plan {
        LogicalPlan::Projection(p) => key_node(&p.input),
        LogicalPlan::Filter(f) => key_node(&f.input),
        LogicalPlan::SubqueryAlias(a) => key_node(&a.input),
        other => other,
    }
}

/// The strategy of a plan that [`classify`] accepted.
fn strategy_of(plan: &LogicalPlan) -> Strategy {
    match key_node(plan) {
        LogicalPlan::Aggregate(_) => Strategy::Keyed(KeyKind::Aggregate),
        LogicalPlan::Distinct(_) => Strategy::Keyed(KeyKind::Distinct),
        LogicalPlan::Join(_) => Strategy::Keyed(KeyKind::Join),
        _ => Strategy::MapOnly,
    }
}

/// Why a subtree is not map-only (see [`Strategy::MapOnly`]), in words, or
/// `None`. Counts the table scans it finds; a scan of anything but one of
/// `sources` is a reason too.
fn map_only_blocker(
    plan: &LogicalPlan,
    sources: &[QualifiedName],
    scans: &mut usize,
) -> Option<String> {
    let mut reason: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        let what = match node {
            LogicalPlan::Aggregate(_) => Some("aggregate (GROUP BY)".to_string()),
            LogicalPlan::Join(_) => Some("join".to_string()),
            LogicalPlan::Window(_) => Some("window function".to_string()),
            LogicalPlan::Distinct(_) => Some("DISTINCT".to_string()),
            LogicalPlan::Limit(_) => Some("LIMIT/OFFSET".to_string()),
            LogicalPlan::Sort(_) => Some("ORDER BY".to_string()),
            LogicalPlan::Subquery(_) => Some("subquery".to_string()),
            LogicalPlan::Unnest(_) => Some("UNNEST".to_string()),
            LogicalPlan::RecursiveQuery(_) => Some("recursive query".to_string()),
            LogicalPlan::Values(_) => Some("VALUES".to_string()),
            LogicalPlan::EmptyRelation(e) if e.produce_one_row => {
                Some("a SELECT without FROM (rows that come from no source)".to_string())
            }
            LogicalPlan::TableScan(scan) => {
                *scans += 1;
                let known = match (scan.table_name.catalog(), scan.table_name.schema()) {
                    (Some(database), Some(schema)) => sources.contains(&QualifiedName {
                        database: database.to_string(),
                        schema: schema.to_string(),
                        name: scan.table_name.table().to_string(),
                    }),
                    _ => false,
                };
                (!known).then(|| format!("reading {}", scan.table_name))
            }
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Union(_)
            | LogicalPlan::EmptyRelation(_) => None,
            other => Some(format!("{} operator", other.display())),
        };
        match what {
            Some(what) => {
                reason.get_or_insert(what);
                Ok(TreeNodeRecursion::Stop)
            }
            None => Ok(TreeNodeRecursion::Continue),
        }
    });
    reason
}

/// Why an expression anywhere in the plan rules out incremental maintenance
/// (a result that could differ between two evaluations over the same rows,
/// or that depends on rows outside its partition), or `None`.
fn expression_blocker(plan: &LogicalPlan) -> Option<String> {
    let mut reason: Option<String> = None;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                let found = match e {
                    DfExpr::ScalarFunction(f)
                        if f.func.signature().volatility != Volatility::Immutable =>
                    {
                        Some(format!("non-deterministic function {}()", f.func.name()))
                    }
                    DfExpr::AggregateFunction(f)
                        if f.func.signature().volatility != Volatility::Immutable =>
                    {
                        Some(format!("non-deterministic function {}()", f.func.name()))
                    }
                    DfExpr::ScalarSubquery(_)
                    | DfExpr::Exists(_)
                    | DfExpr::InSubquery(_)
                    | DfExpr::SetComparison(_) => Some(not_incremental("subquery")),
                    DfExpr::WindowFunction(_) => Some(not_incremental("window function")),
                    DfExpr::GroupingSet(_) => {
                        Some(not_incremental("GROUPING SETS, ROLLUP or CUBE"))
                    }
                    _ => None,
                };
                match found {
                    Some(r) => {
                        reason.get_or_insert(r);
                        Ok(TreeNodeRecursion::Stop)
                    }
                    None => Ok(TreeNodeRecursion::Continue),
                }
            })
        })
    });
    reason
}

/// Why `plan` cannot be refreshed incrementally because it reads a relative
/// date or time literal (`'today'`, `'now'`; see [`crate::datetime_input`]),
/// if it does. The plan is analyzed first, so implicit casts
/// (`event_date < 'today'`) are found as well as written ones.
fn relative_input_blocker(session: &Session, plan: &LogicalPlan) -> Option<String> {
    let state = session.ctx.state();
    let analyzed = state
        .analyzer()
        .execute_and_check(plan.clone(), state.config_options(), |_, _| {})
        .ok()?;
    let mut found = None;
    let _ = analyzed.apply_with_subqueries(|node| {
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some(text) = crate::datetime_input::relative_literal(e) {
                    found = Some(text);
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })
    });
    found.map(|text| {
        format!(
            "the date/time input '{text}' takes its value when each refresh runs, \
             so rows would keep the value of the refresh that added them"
        )
    })
}

/// Whether `plan` has a join with no condition at all: what the planner
/// makes of a comma join (`FROM a, b WHERE a.k = b.k`), whose condition
/// sits in the WHERE filter above it.
fn has_unconditioned_join(plan: &LogicalPlan) -> bool {
    plan.exists(|node| {
        Ok(matches!(
            node,
            LogicalPlan::Join(j)
                if j.join_type == JoinType::Inner && j.on.is_empty() && j.filter.is_none()
        ))
    })
    .unwrap_or(false)
}

/// The logical plan a dynamic table is classified and maintained by.
///
/// It is the query's plan as planned, except that a comma join, which the
/// planner leaves as a join without condition under the WHERE filter, is
/// first given that condition by DataFusion's filter push-down rule (the
/// rule moves the conjuncts comparing both sides into the join, and those
/// over one side into that side). `FROM a, b WHERE a.k = b.k` is then the
/// inner equi-join it means. Plans without such a join are left untouched.
async fn maintenance_plan(session: &Session, query: &Query) -> Result<LogicalPlan, EngineError> {
    use datafusion::optimizer::optimizer::{Optimizer, OptimizerContext};
    use datafusion::optimizer::push_down_filter::PushDownFilter;
    let plan = plan_statement(
        &session.ctx.state(),
        Statement::Query(Box::new(query.clone())),
    )
    .await?;
    // The aggregates as the query computes them (`avg` of integers is an
    // exact numeric), so the state maintained gives the same values.
    let plan = datafusion::optimizer::AnalyzerRule::analyze(
        &crate::aggregate_results::PostgresAggregateResults,
        plan,
        session.ctx.state().config_options(),
    )
    .map_err(map_df_error)?;
    let plan = distinct_as_group_by(plan)?;
    if !has_unconditioned_join(&plan) {
        return Ok(plan);
    }
    Optimizer::with_rules(vec![Arc::new(PushDownFilter::new())])
        .optimize(plan, &OptimizerContext::new(), |_, _| {})
        .map_err(map_df_error)
}

/// `SELECT DISTINCT` (and `UNION`, planned as a DISTINCT over UNION ALL) as
/// the GROUP BY of all its columns with no aggregates, which it is: the
/// rows come out the same, and [`DeltaAggregate`] then maintains them from
/// per-row counts (a row stays while its count is above zero) instead of
/// recomputing the changed rows from the whole source. `DISTINCT ON` is
/// left as it is.
fn distinct_as_group_by(plan: LogicalPlan) -> Result<LogicalPlan, EngineError> {
    use datafusion::common::tree_node::{Transformed, TransformedResult};
    plan.transform_up(|node| match node {
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let columns = input
                .schema()
                .columns()
                .into_iter()
                .map(DfExpr::Column)
                .collect();
            Ok(Transformed::yes(LogicalPlan::Aggregate(
                datafusion::logical_expr::Aggregate::try_new(input, columns, Vec::new())?,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .data()
    .map_err(map_df_error)
}

/// How `query` (planned as `plan`, reading `sources`) can be maintained
/// incrementally, or why it cannot.
///
/// * Map-only queries ([`Strategy::MapOnly`]): projections, filters,
///   deterministic scalar expressions (model calls included), CTEs and
///   derived tables made of those, and UNION ALL of such branches, over
///   stored tables and dynamic tables.
/// * One GROUP BY, DISTINCT or inner equi-join over map-only inputs, under
///   projections and filters (HAVING) only ([`Strategy::Keyed`]).
fn classify(
    query: &Query,
    plan: &LogicalPlan,
    sources: &[RelationEntry],
    other_shapes: bool,
) -> Result<Strategy, String> {
    if let Some(view) = sources
        .iter()
        .find(|s| matches!(s.kind, RelationKind::View { .. }))
    {
        return Err(format!("reads a view ({})", view.name));
    }
    if let Some(reason) = expression_blocker(plan) {
        return Err(reason);
    }
    let names: Vec<QualifiedName> = sources.iter().map(|s| s.qualified()).collect();
    let mut scans = 0usize;
    let strategy = match key_node(plan) {
        LogicalPlan::Aggregate(aggregate) => {
            if let Some(what) = map_only_blocker(&aggregate.input, &names, &mut scans) {
                return Err(not_incremental(&format!("aggregate over {what}")));
            }
            Strategy::Keyed(KeyKind::Aggregate)
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            if let Some(what) = map_only_blocker(input, &names, &mut scans) {
                return Err(not_incremental(&format!("DISTINCT over {what}")));
            }
            Strategy::Keyed(KeyKind::Distinct)
        }
        LogicalPlan::Distinct(Distinct::On(_)) => return Err(not_incremental("DISTINCT ON")),
        LogicalPlan::Join(join) => {
            if join.join_type != JoinType::Inner {
                return Err(not_incremental(&format!(
                    "outer join ({})",
                    join.join_type.to_string().to_ascii_uppercase()
                )));
            }
            match join_keys(join) {
                Ok(keys) if keys.is_empty() => {
                    return Err(not_incremental(
                        "join without an equality between its two sides (cross join)",
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(not_incremental(&format!("join keys: {e}"))),
            }
            for side in [&join.left, &join.right] {
                if let Some(what) = map_only_blocker(side, &names, &mut scans) {
                    return Err(not_incremental(&format!("join over {what}")));
                }
            }
            Strategy::Keyed(KeyKind::Join)
        }
        _ => {
            if let Some(what) = map_only_blocker(plan, &names, &mut scans) {
                return Err(not_incremental(&what));
            }
            Strategy::MapOnly
        }
    };
    if other_shapes {
        return Err(not_incremental("table function or other FROM item"));
    }
    if body_has_wildcard(&query.body) {
        return Err(
            "SELECT * is not supported for INCREMENTAL: list the columns explicitly".to_string(),
        );
    }
    if scans == 0 || sources.is_empty() {
        return Err("reads no stored table: nothing to maintain incrementally".to_string());
    }
    Ok(strategy)
}

/// The equality pairs (left side, right side) of an inner join: its `on`
/// keys and the `l = r` conjuncts of its condition that compare an
/// expression over one input with one over the other, each pair cast to the
/// type the join compares it in ([`common_key`]).
fn join_keys(join: &Join) -> DfResult<Vec<(DfExpr, DfExpr)>> {
    raw_join_keys(join)
        .into_iter()
        .map(|(l, r)| common_key(l, join.left.schema(), r, join.right.schema()))
        .collect()
}

/// A join key pair cast to the one type the join compares it in, the type
/// DataFusion's type coercion gives both sides of `l = r`.
///
/// Key hashes ([`key_hashes`]) are computed from each side separately, and
/// the values of two types hash differently even when the join finds them
/// equal (a `date` is hashed as `2024-01-02`, the `timestamp` it equals as
/// `2024-01-02T00:00:00`): a change on one side would then not find the
/// partition it touches on the other. Cast to the common type, equal keys
/// are equal values of one type and hash alike.
fn common_key(
    left: DfExpr,
    left_schema: &datafusion::common::DFSchema,
    right: DfExpr,
    right_schema: &datafusion::common::DFSchema,
) -> DfResult<(DfExpr, DfExpr)> {
    use datafusion::logical_expr::type_coercion::binary::BinaryTypeCoercer;
    use datafusion::logical_expr::ExprSchemable;
    let left_type = left.get_type(left_schema)?;
    let right_type = right.get_type(right_schema)?;
    let (left_common, right_common) =
        BinaryTypeCoercer::new(&left_type, &Operator::Eq, &right_type).get_input_types()?;
    if left_common != right_common {
        return Err(DataFusionError::Plan(format!(
            "{left_type} and {right_type} are compared as {left_common} and {right_common}, not as one type"
        )));
    }
    Ok((
        left.cast_to(&left_common, left_schema)?,
        right.cast_to(&right_common, right_schema)?,
    ))
}

/// The equality pairs of an inner join as written, before [`common_key`].
fn raw_join_keys(join: &Join) -> Vec<(DfExpr, DfExpr)> {
    let mut keys = join.on.clone();
    let Some(filter) = &join.filter else {
        return keys;
    };
    let over = |e: &DfExpr, schema: &datafusion::common::DFSchema| {
        let columns = e.column_refs();
        !columns.is_empty() && columns.iter().all(|c| schema.has_column(c))
    };
    for conjunct in split_conjunction(filter) {
        let DfExpr::BinaryExpr(b) = conjunct else {
            continue;
        };
        if b.op != Operator::Eq {
            continue;
        }
        let (l, r) = (b.left.as_ref(), b.right.as_ref());
        if over(l, join.left.schema()) && over(r, join.right.schema()) {
            keys.push((l.clone(), r.clone()));
        } else if over(r, join.left.schema()) && over(l, join.right.schema()) {
            keys.push((r.clone(), l.clone()));
        }
    }
    keys
}

/// The catalog name a table scan of a stored query reads. Stored queries
/// qualify every table fully; partial names fall back to `default`.
fn scan_name(reference: &TableReference, default: &QualifiedName) -> QualifiedName {
    QualifiedName {
        database: reference
            .catalog()
            .map_or_else(|| default.database.clone(), str::to_string),
        schema: reference
            .schema()
            .map_or_else(|| default.schema.clone(), str::to_string),
        name: reference.table().to_string(),
    }
}

/// Rewrites a map-only plan (see [`incremental_blocker`]) to read `inputs`
/// instead of its sources, and to return, as an extra last column, the row id
/// of the source row each result row came from.
///
/// Every table scan becomes a scan of its source's input (source columns plus
/// the row id, under the same table name so column references still
/// resolve), and every projection passes the row id of its input through.
fn plan_with_lineage(
    plan: LogicalPlan,
    inputs: &HashMap<QualifiedName, Arc<MemTable>>,
    default: &QualifiedName,
) -> Result<LogicalPlan, EngineError> {
    plan.transform_up(|node| {
        let rebuilt = match node {
            LogicalPlan::TableScan(scan) => scan_of_input(&scan, inputs, default)?,
            LogicalPlan::Projection(projection) => {
                let (qualifier, _) = projection
                    .input
                    .schema()
                    .qualified_field_with_unqualified_name(ROW_ID_COLUMN)?;
                let lineage = DfExpr::Column(Column::new(qualifier.cloned(), ROW_ID_COLUMN));
                let mut exprs = projection.expr.clone();
                exprs.push(lineage);
                LogicalPlan::Projection(Projection::try_new(exprs, projection.input.clone())?)
            }
            LogicalPlan::Union(union) => {
                LogicalPlan::Union(Union::try_new_with_loose_types(union.inputs.clone())?)
            }
            other => other.recompute_schema()?,
        };
        Ok(Transformed::yes(rebuilt))
    })
    .map(|t| t.data)
    .map_err(map_df_error)
}

// ---------------------------------------------------------------------------
// Keyed maintenance: recompute the partitions whose source rows changed
// ---------------------------------------------------------------------------

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// splitmix64's finalizer: spreads FNV's weak low bits over the whole word.
fn finish_hash(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Hashes of the key tuples in `columns`, one per row.
///
/// Equal keys must hash equally even when their columns have different
/// types, since a join compares `int` with `bigint` (or a GROUP BY key is
/// read once from the source and once from the result): numbers hash by
/// value as `f64`, strings by their UTF-8 bytes, anything else by its text.
/// The hash is defined here, not by a library, because it is stored in the
/// lineage column and must not change between releases. Collisions are
/// harmless: two keys with one hash are simply recomputed together.
fn key_hashes(columns: &[ArrayRef], rows: usize) -> Result<Vec<u64>, DataFusionError> {
    use datafusion::arrow::array::{AsArray, BooleanArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::Float64Type;
    let mut hashes = vec![FNV_OFFSET; rows];
    for column in columns {
        let dt = column.data_type();
        if dt.is_numeric() {
            let values = cast(column, &DataType::Float64)?;
            let values = values.as_primitive::<Float64Type>();
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = if values.is_null(i) {
                    fnv(*h, &[0])
                } else {
                    let v = values.value(i);
                    let v = if v == 0.0 {
                        0.0
                    } else if v.is_nan() {
                        f64::NAN
                    } else {
                        v
                    };
                    fnv(fnv(*h, &[1]), &v.to_bits().to_le_bytes())
                };
            }
        } else if matches!(dt, DataType::Boolean) {
            let values = column
                .as_any()
                .downcast_ref::<BooleanArray>()
                .ok_or_else(|| DataFusionError::Internal("boolean key is not boolean".into()))?;
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = if values.is_null(i) {
                    fnv(*h, &[0])
                } else {
                    fnv(*h, &[2, u8::from(values.value(i))])
                };
            }
        } else {
            let text: ArrayRef = match dt {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                    cast(column, &DataType::Utf8)?
                }
                _ => {
                    let options = datafusion::arrow::util::display::FormatOptions::default();
                    let formatter = datafusion::arrow::util::display::ArrayFormatter::try_new(
                        column, &options,
                    )?;
                    Arc::new(
                        (0..rows)
                            .map(|i| (!column.is_null(i)).then(|| formatter.value(i).to_string()))
                            .collect::<StringArray>(),
                    )
                }
            };
            let text = text.as_string::<i32>();
            for (i, h) in hashes.iter_mut().enumerate() {
                *h = if text.is_null(i) {
                    fnv(*h, &[0])
                } else {
                    let bytes = text.value(i).as_bytes();
                    let h2 = fnv(*h, &[3]);
                    fnv(fnv(h2, &(bytes.len() as u64).to_le_bytes()), bytes)
                };
            }
        }
    }
    Ok(hashes.into_iter().map(finish_hash).collect())
}

/// `freshet_key_hash(k1, k2, …)`: the [`key_hashes`] of a key tuple. Only
/// ever built into refresh plans, never registered for SQL.
#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyHash {
    signature: Signature,
}

impl ScalarUDFImpl for KeyHash {
    fn name(&self) -> &str {
        "freshet_key_hash"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::UInt64)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let hashes = key_hashes(&crate::udf_args::arrays(&args)?, rows)?;
        Ok(ColumnarValue::Array(Arc::new(UInt64Array::from(hashes))))
    }
}

/// `freshet_key_in(k1, k2, …)`: whether the key tuple's hash is one of the
/// refresh's affected keys.
#[derive(Debug)]
struct KeyIn {
    signature: Signature,
    keys: Arc<HashSet<u64>>,
}

impl PartialEq for KeyIn {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.keys, &other.keys)
    }
}

impl Eq for KeyIn {}

impl std::hash::Hash for KeyIn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (Arc::as_ptr(&self.keys) as usize).hash(state);
    }
}

impl ScalarUDFImpl for KeyIn {
    fn name(&self) -> &str {
        "freshet_key_in"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let rows = args.number_rows;
        let hashes = key_hashes(&crate::udf_args::arrays(&args)?, rows)?;
        Ok(ColumnarValue::Array(Arc::new(
            hashes
                .iter()
                .map(|h| Some(self.keys.contains(h)))
                .collect::<datafusion::arrow::array::BooleanArray>(),
        )))
    }
}

/// A key expression list with a leading constant, so a key of no columns (a
/// global aggregate) still makes a valid call.
fn key_args(keys: Vec<DfExpr>) -> Vec<DfExpr> {
    let mut args = vec![DfExpr::Literal(ScalarValue::Int64(Some(0)), None)];
    args.extend(keys);
    args
}

pub(crate) fn key_hash_expr(keys: Vec<DfExpr>) -> DfExpr {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let udf = UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(KeyHash {
            signature: Signature::variadic_any(Volatility::Immutable),
        }))
    });
    DfExpr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), key_args(keys)))
}

fn key_in_expr(keys: Vec<DfExpr>, set: Arc<HashSet<u64>>) -> DfExpr {
    let udf = Arc::new(ScalarUDF::new_from_impl(KeyIn {
        signature: Signature::variadic_any(Volatility::Immutable),
        keys: set,
    }));
    DfExpr::ScalarFunction(ScalarFunction::new_udf(udf, key_args(keys)))
}

/// One input of a keyed operator and the key expressions over it.
type KeyInput = (Arc<LogicalPlan>, Vec<DfExpr>);

/// The inputs of a keyed operator, each with the key expressions over it.
fn key_inputs(node: &LogicalPlan) -> Result<Vec<KeyInput>, EngineError> {
    let columns = |plan: &LogicalPlan| -> Vec<DfExpr> {
        plan.schema()
            .columns()
            .into_iter()
            .map(DfExpr::Column)
            .collect()
    };
    match node {
        LogicalPlan::Aggregate(a) => Ok(vec![(a.input.clone(), a.group_expr.clone())]),
        LogicalPlan::Distinct(Distinct::All(input)) => Ok(vec![(input.clone(), columns(input))]),
        LogicalPlan::Join(j) => {
            let (left, right): (Vec<DfExpr>, Vec<DfExpr>) =
                join_keys(j).map_err(map_df_error)?.into_iter().unzip();
            Ok(vec![(j.left.clone(), left), (j.right.clone(), right)])
        }
        _ => Err(EngineError::new(
            "XX000",
            "keyed dynamic table query has no GROUP BY, DISTINCT or join",
        )),
    }
}

/// `input` restricted to rows whose key hash is in `only` (all when `None`).
fn restrict(
    input: Arc<LogicalPlan>,
    keys: Vec<DfExpr>,
    only: &Option<Arc<HashSet<u64>>>,
) -> DfResult<LogicalPlan> {
    match only {
        None => Ok((*input).clone()),
        Some(set) => Ok(LogicalPlan::Filter(Filter::try_new(
            key_in_expr(keys, set.clone()),
            input,
        )?)),
    }
}

/// `node` with its key hash appended as the lineage column.
fn with_key_lineage(node: LogicalPlan, keys: Vec<DfExpr>) -> DfResult<LogicalPlan> {
    let mut exprs: Vec<DfExpr> = node
        .schema()
        .columns()
        .into_iter()
        .map(DfExpr::Column)
        .collect();
    exprs.push(key_hash_expr(keys).alias(ROW_ID_COLUMN));
    Ok(LogicalPlan::Projection(Projection::try_new(
        exprs,
        Arc::new(node),
    )?))
}

/// Rewrites a keyed plan (see [`Strategy::Keyed`]) to compute only the
/// partitions whose key hash is in `only` (everything when `None`), with the
/// key hash as an extra last column (the lineage).
fn keyed_plan(plan: &LogicalPlan, only: &Option<Arc<HashSet<u64>>>) -> DfResult<LogicalPlan> {
    keyed_plan_over(plan, only, &[None, None])
}

/// [`keyed_plan`] with a join's inputs replaced by `inputs` (left, right)
/// where given: plans with the same schema as the input they replace, such
/// as a join arrangement (see [`crate::join_arrangement`]).
fn keyed_plan_over(
    plan: &LogicalPlan,
    only: &Option<Arc<HashSet<u64>>>,
    inputs: &[Option<LogicalPlan>; 2],
) -> DfResult<LogicalPlan> {
    keyed_plan_with(plan, &|node| match node {
        LogicalPlan::Aggregate(a) => {
            let input = restrict(a.input.clone(), a.group_expr.clone(), only)?;
            let node = node.with_new_exprs(node.expressions(), vec![input])?;
            group_lineage(node, a.group_expr.len())
        }
        LogicalPlan::Distinct(Distinct::All(input)) => {
            let columns: Vec<DfExpr> = input
                .schema()
                .columns()
                .into_iter()
                .map(DfExpr::Column)
                .collect();
            let restricted = restrict(input.clone(), columns, only)?;
            let node = LogicalPlan::Distinct(Distinct::All(Arc::new(restricted)));
            let width = node.schema().fields().len();
            group_lineage(node, width)
        }
        LogicalPlan::Join(j) => {
            let (left_keys, right_keys): (Vec<DfExpr>, Vec<DfExpr>) =
                join_keys(j)?.into_iter().unzip();
            let [left, right] = [(&j.left, &inputs[0]), (&j.right, &inputs[1])]
                .map(|(input, given)| given.clone().map_or_else(|| input.clone(), Arc::new));
            let left = restrict(left, left_keys.clone(), only)?;
            let right = restrict(right, right_keys, only)?;
            let node = node.with_new_exprs(node.expressions(), vec![left, right])?;
            with_key_lineage(node, left_keys)
        }
        other => Err(DataFusionError::Plan(format!(
            "cannot maintain {} incrementally",
            other.display()
        ))),
    })
}

/// `node` with the hash of its first `groups` columns as the lineage.
fn group_lineage(node: LogicalPlan, groups: usize) -> DfResult<LogicalPlan> {
    let keys: Vec<DfExpr> = node
        .schema()
        .columns()
        .into_iter()
        .take(groups)
        .map(DfExpr::Column)
        .collect();
    with_key_lineage(node, keys)
}

/// A keyed plan with its key node (see [`key_node`]) replaced by
/// `at_key(node)`, which must add the lineage column; the projections,
/// filters and aliases above it carry the lineage up as their last column.
fn keyed_plan_with(
    plan: &LogicalPlan,
    at_key: &dyn Fn(&LogicalPlan) -> DfResult<LogicalPlan>,
) -> DfResult<LogicalPlan> {
    match plan {
        LogicalPlan::Projection(p) => {
            let input = keyed_plan_with(&p.input, at_key)?;
            let (qualifier, _) = input
                .schema()
                .qualified_field_with_unqualified_name(ROW_ID_COLUMN)?;
            let lineage = DfExpr::Column(Column::new(qualifier.cloned(), ROW_ID_COLUMN));
            let mut exprs = p.expr.clone();
            exprs.push(lineage);
            Ok(LogicalPlan::Projection(Projection::try_new(
                exprs,
                Arc::new(input),
            )?))
        }
        LogicalPlan::Filter(f) => {
            let input = keyed_plan_with(&f.input, at_key)?;
            plan.with_new_exprs(plan.expressions(), vec![input])
        }
        LogicalPlan::SubqueryAlias(a) => {
            let input = keyed_plan_with(&a.input, at_key)?;
            plan.with_new_exprs(plan.expressions(), vec![input])
        }
        key => at_key(key),
    }
}

/// Maintains a GROUP BY from its per-group state (see
/// [`crate::delta_aggregate`]): applies the change set in `inserted` and
/// `deleted` (per source, its rows' visible columns; `None` when no source
/// has any, which saves planning an empty side) to the state, and
/// returns the touched groups' key hashes and the contents rows (lineage
/// last) of those that remain.
async fn refresh_from_state(
    session: &Session,
    plan: &LogicalPlan,
    delta: &DeltaAggregate,
    state: GroupStateTables<'_>,
    default: &QualifiedName,
    inserted: Option<&HashMap<QualifiedName, Arc<MemTable>>>,
    deleted: Option<&HashMap<QualifiedName, Arc<MemTable>>>,
) -> Result<(HashSet<u64>, Vec<RecordBatch>), EngineError> {
    let GroupStateTables {
        state: state_table,
        value_counts: value_count_tables,
    } = state;
    let value_counts = delta.value_counts();
    if value_counts.len() != value_count_tables.len() {
        return Err(EngineError::new(
            "XX001",
            "aggregate state is missing its count(DISTINCT) value counts",
        ));
    }
    let mut partials = Vec::with_capacity(2);
    let mut values = Vec::with_capacity(2);
    let mut state_schema = None;
    let mut value_schemas = Vec::new();
    for changed in [inserted, deleted] {
        // The schemas come from planning over the whole input; a side with
        // no rows contributes nothing and is not planned.
        let input = match changed {
            Some(changed) => {
                replace_scans(delta.input().clone(), changed, default).map_err(map_df_error)?
            }
            None => delta.input().clone(),
        };
        let state_plan = delta.state_plan(input.clone()).map_err(map_df_error)?;
        state_schema
            .get_or_insert_with(|| DeltaAggregate::state_schema(&session.ctx.state(), &state_plan));
        partials.push(match changed {
            Some(_) => collect_plan(session, state_plan).await?,
            None => Vec::new(),
        });
        let mut per_distinct = Vec::with_capacity(value_counts.len());
        value_schemas.clear();
        for counts in &value_counts {
            let plan = counts.plan(input.clone()).map_err(map_df_error)?;
            value_schemas.push(ValueCounts::schema(&session.ctx.state(), &plan));
            per_distinct.push(match changed {
                Some(_) => collect_plan(session, plan).await?,
                None => Vec::new(),
            });
        }
        values.push(per_distinct);
    }
    let state_schema = state_schema.unwrap_or_else(|| Arc::new(Schema::empty()));
    let mut transitions = Vec::with_capacity(value_counts.len());
    for (i, counts) in value_counts.iter().enumerate() {
        transitions.push(counts.apply(
            session,
            value_count_tables[i],
            &value_schemas[i],
            &values[0][i],
            &values[1][i],
        )?);
    }
    let applied = delta.apply(
        session,
        state_table,
        &state_schema,
        &partials[0],
        &partials[1],
        &transitions,
    )?;
    let mut results = Vec::new();
    if let Some(groups) = applied.output {
        let groups = delta.groups_plan(groups).map_err(map_df_error)?;
        let contents = keyed_plan_with(plan, &|_| {
            let width = delta.group_count();
            group_lineage(groups.clone(), width)
        })
        .map_err(map_df_error)?;
        results.extend(collect_plan(session, contents).await?);
    }
    if !applied.rescan.is_empty() {
        // Groups whose minimum or maximum was deleted: their state and rows
        // are recomputed from the source, for those groups only (the scans
        // count the rows they read).
        let only = Some(Arc::new(applied.rescan));
        let input = restrict(
            Arc::new(delta.input().clone()),
            delta.group_exprs().to_vec(),
            &only,
        )
        .map_err(map_df_error)?;
        let state_plan = delta.state_plan(input).map_err(map_df_error)?;
        let state_rows = collect_plan(session, state_plan).await?;
        txn_mut(session, |t| {
            insert_state(t, state_table, &state_schema, state_rows)
        })?;
        let plan = keyed_plan(plan, &only).map_err(map_df_error)?;
        results.extend(collect_plan(session, plan).await?);
    }
    Ok((applied.touched, results))
}

/// The storage tables a GROUP BY maintained from state keeps: its per-group
/// state and the value counts of each `count(DISTINCT)`.
#[derive(Clone, Copy)]
struct GroupStateTables<'a> {
    state: TableId,
    value_counts: &'a [TableId],
}

/// Inserts state rows (a `state_plan`'s output) into `table`, whose schema
/// is `schema`, in the transaction `t`.
fn insert_state(
    t: &mut freshet_storage::Transaction,
    table: TableId,
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(), EngineError> {
    for batch in batches.into_iter().filter(|b| b.num_rows() > 0) {
        let batch = RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
            .map_err(map_arrow_error)?;
        t.insert(table, batch).map_err(EngineError::from)?;
    }
    Ok(())
}

/// Rebuilds a GROUP BY's per-group state, and the value counts of its
/// `count(DISTINCT)`s, from its whole input into new tables (the old ones,
/// if any, are dropped); returns the new tables.
async fn rebuild_state(
    session: &Session,
    delta: &DeltaAggregate,
    old: Option<TableId>,
    old_value_counts: &[TableId],
) -> Result<(TableId, Vec<TableId>), EngineError> {
    drop_state(session, old, old_value_counts)?;
    let state_plan = delta
        .state_plan(delta.input().clone())
        .map_err(map_df_error)?;
    let schema = DeltaAggregate::state_schema(&session.ctx.state(), &state_plan);
    let batches = collect_plan(session, state_plan).await?;
    let table = txn_mut(session, |t| {
        let table = t.create_table(schema.clone()).map_err(EngineError::from)?;
        insert_state(t, table, &schema, batches)?;
        Ok(table)
    })?;
    let mut value_count_tables = Vec::new();
    for counts in delta.value_counts() {
        let plan = counts.plan(delta.input().clone()).map_err(map_df_error)?;
        let schema = ValueCounts::schema(&session.ctx.state(), &plan);
        let rows = collect_plan(session, plan).await?;
        value_count_tables.push(counts.create(session, &schema, rows)?);
    }
    Ok((table, value_count_tables))
}

/// Drops a GROUP BY's per-group state tables.
fn drop_state(
    session: &Session,
    state: Option<TableId>,
    value_counts: &[TableId],
) -> Result<(), EngineError> {
    txn_mut(session, |t| {
        for table in state.iter().chain(value_counts) {
            t.drop_table(*table).map_err(EngineError::from)?;
        }
        Ok(())
    })
}

/// Whether the stored state tables have the columns `delta` keeps now.
fn state_matches(
    session: &Session,
    delta: &DeltaAggregate,
    table: TableId,
    value_count_tables: &[TableId],
) -> bool {
    let Ok(plan) = delta.state_plan(delta.input().clone()) else {
        return false;
    };
    let value_counts = delta.value_counts();
    crate::state_tables::types_match(
        session,
        table,
        &DeltaAggregate::state_schema(&session.ctx.state(), &plan),
    ) && value_counts.len() == value_count_tables.len()
        && value_counts
            .iter()
            .zip(value_count_tables)
            .all(|(counts, &table)| {
                counts.plan(delta.input().clone()).is_ok_and(|plan| {
                    crate::state_tables::types_match(
                        session,
                        table,
                        &ValueCounts::schema(&session.ctx.state(), &plan),
                    )
                })
            })
}

/// A scan of the refresh input standing in for the source scan `scan`,
/// under the same name so column references still resolve. Filters pushed
/// into the scan stay, as a filter over the input.
fn scan_of_input(
    scan: &datafusion::logical_expr::TableScan,
    inputs: &HashMap<QualifiedName, Arc<MemTable>>,
    default: &QualifiedName,
) -> DfResult<LogicalPlan> {
    let name = scan_name(&scan.table_name, default);
    let input = inputs.get(&name).ok_or_else(|| {
        DataFusionError::Plan(format!(
            "dynamic table refresh has no input for source {name}"
        ))
    })?;
    let builder = LogicalPlanBuilder::scan(
        scan.table_name.clone(),
        provider_as_source(input.clone()),
        None,
    )?;
    match datafusion::logical_expr::utils::conjunction(scan.filters.clone()) {
        Some(filter) => builder.filter(filter)?.build(),
        None => builder.build(),
    }
}

/// Replaces the table scans of `plan` with scans of `inputs` (same table
/// names, so column references still resolve).
fn replace_scans(
    plan: LogicalPlan,
    inputs: &HashMap<QualifiedName, Arc<MemTable>>,
    default: &QualifiedName,
) -> DfResult<LogicalPlan> {
    plan.transform_up(|node| {
        let rebuilt = match node {
            LogicalPlan::TableScan(scan) => scan_of_input(&scan, inputs, default)?,
            other => other.recompute_schema()?,
        };
        Ok(Transformed::yes(rebuilt))
    })
    .map(|t| t.data)
}

/// The key hashes of the partitions touched by `changed` (per source: its
/// deleted rows' old contents and its inserted rows, visible columns only).
async fn affected_keys(
    session: &Session,
    plan: &LogicalPlan,
    default: &QualifiedName,
    changed: &HashMap<QualifiedName, Arc<MemTable>>,
) -> Result<HashSet<u64>, EngineError> {
    let mut keys = HashSet::new();
    for (input, key_exprs) in key_inputs(key_node(plan))? {
        let replaced = replace_scans((*input).clone(), changed, default).map_err(map_df_error)?;
        keys.extend(key_hashes_of(session, replaced, key_exprs).await?);
    }
    Ok(keys)
}

/// The key hashes of `input`'s rows, the key being `key_exprs` over it.
async fn key_hashes_of(
    session: &Session,
    input: LogicalPlan,
    key_exprs: Vec<DfExpr>,
) -> Result<Vec<u64>, EngineError> {
    let hashes = LogicalPlan::Projection(
        Projection::try_new(
            vec![key_hash_expr(key_exprs).alias("key_hash")],
            Arc::new(input),
        )
        .map_err(map_df_error)?,
    );
    let batches = collect_plan(session, hashes).await?;
    Ok(row_ids_of(&batches).collect())
}

/// Which join inputs `plan` keeps arranged (see [`crate::join_arrangement`]):
/// those of its join that call a model; none for other plans.
fn sides_to_arrange(plan: &LogicalPlan, strategy: Strategy) -> Vec<JoinSide> {
    match strategy {
        Strategy::Keyed(KeyKind::Join) => join_arrangement::sides_to_arrange(key_node(plan)),
        _ => Vec::new(),
    }
}

/// Whether `stored` holds an up-to-date arrangement for each of `sides`.
fn arrangements_ready(
    session: &Session,
    plan: &LogicalPlan,
    sides: &[JoinSide],
    stored: &[Arrangement],
) -> bool {
    let LogicalPlan::Join(join) = key_node(plan) else {
        return false;
    };
    sides.len() == stored.len()
        && sides.iter().zip(stored).all(|(side, arrangement)| {
            arrangement.side == *side
                && join_arrangement::matches(
                    session,
                    join_arrangement::side_input(join, *side),
                    arrangement.table_id,
                )
        })
}

/// The join node of a keyed join plan.
fn join_of(plan: &LogicalPlan) -> Result<&datafusion::logical_expr::Join, EngineError> {
    match key_node(plan) {
        LogicalPlan::Join(join) => Ok(join),
        _ => Err(EngineError::new(
            "XX000",
            "join arrangement on a dynamic table whose query has no join",
        )),
    }
}

/// Maintains a join with arranged inputs (see [`crate::join_arrangement`])
/// from the change set: updates the arrangements (scoring only `inserted`)
/// and returns the changed join keys and the contents rows (lineage last)
/// for those keys, computed with the arrangements standing in for their
/// inputs.
async fn refresh_arranged_join(
    session: &Session,
    plan: &LogicalPlan,
    default: &QualifiedName,
    arrangements: &[Arrangement],
    changed: &HashMap<QualifiedName, Arc<MemTable>>,
    inserted: &[(&SourceInput, Vec<RecordBatch>)],
    deleted_ids: &HashSet<u64>,
) -> Result<(HashSet<u64>, Vec<RecordBatch>), EngineError> {
    let join = join_of(plan)?;
    let (left_keys, right_keys): (Vec<DfExpr>, Vec<DfExpr>) =
        join_keys(join).map_err(map_df_error)?.into_iter().unzip();
    let any_inserted = inserted.iter().any(|(_, rows)| !rows.is_empty());
    let mut keys = HashSet::new();
    let mut inputs: [Option<LogicalPlan>; 2] = [None, None];
    for (slot, side, side_keys) in [
        (0, JoinSide::Left, left_keys),
        (1, JoinSide::Right, right_keys),
    ] {
        let input = join_arrangement::side_input(join, side);
        let changed_rows = match arrangements.iter().find(|a| a.side == side) {
            Some(arrangement) => {
                let split = join_arrangement::read_and_remove(
                    session,
                    input,
                    arrangement.table_id,
                    deleted_ids,
                )?;
                let added = if any_inserted {
                    let rows =
                        evaluate_with_lineage(session, input, default, inserted.to_vec()).await?;
                    join_arrangement::to_storage(input, rows)?
                } else {
                    Vec::new()
                };
                join_arrangement::insert(session, arrangement.table_id, added.clone())?;
                let mut now = split.kept;
                now.extend(added.iter().cloned());
                inputs[slot] =
                    Some(join_arrangement::input_from_rows(input, now).map_err(map_df_error)?);
                let mut touched = split.removed;
                touched.extend(added);
                join_arrangement::input_from_rows(input, touched).map_err(map_df_error)?
            }
            None => replace_scans((**input).clone(), changed, default).map_err(map_df_error)?,
        };
        keys.extend(key_hashes_of(session, changed_rows, side_keys).await?);
    }
    if keys.is_empty() {
        return Ok((keys, Vec::new()));
    }
    let only = Some(Arc::new(keys.clone()));
    let plan = keyed_plan_over(plan, &only, &inputs).map_err(map_df_error)?;
    Ok((keys, collect_plan(session, plan).await?))
}

/// Rebuilds the arrangements of `sides` from the sources' current rows,
/// dropping `old`; returns them and the join's inputs as they hold them.
/// Counts the source rows it reads into `stats`.
async fn rebuild_arrangements(
    session: &Session,
    plan: &LogicalPlan,
    default: &QualifiedName,
    sources: &[SourceInput],
    sides: &[JoinSide],
    old: Vec<Arrangement>,
    stats: &mut RefreshStatistics,
) -> Result<(Vec<Arrangement>, [Option<LogicalPlan>; 2]), EngineError> {
    for arrangement in old {
        join_arrangement::drop(session, arrangement.table_id)?;
    }
    let join = join_of(plan)?;
    let mut rows = Vec::new();
    for source in sources {
        let scanned = session
            .shared
            .with_txn(|t| t.scan(source.table_id, None, true))
            .map_err(map_df_error)?
            .map_err(EngineError::from)?;
        let scanned = input_batches(scanned, &source.keep, &source.schema)?;
        stats.num_source_rows_read += row_count(&scanned);
        rows.push((source, scanned));
    }
    let mut arrangements = Vec::new();
    let mut inputs: [Option<LogicalPlan>; 2] = [None, None];
    for side in sides {
        let input = join_arrangement::side_input(join, *side);
        let table_id = join_arrangement::create(session, input)?;
        let evaluated = evaluate_with_lineage(session, input, default, rows.clone()).await?;
        let stored = join_arrangement::to_storage(input, evaluated)?;
        join_arrangement::insert(session, table_id, stored.clone())?;
        let slot = match side {
            JoinSide::Left => 0,
            JoinSide::Right => 1,
        };
        inputs[slot] =
            Some(join_arrangement::input_from_rows(input, stored).map_err(map_df_error)?);
        arrangements.push(Arrangement {
            side: *side,
            table_id,
        });
    }
    Ok((arrangements, inputs))
}

/// Runs a keyed plan restricted to `only` and collects its rows (lineage last).
async fn evaluate_keyed(
    session: &Session,
    plan: &LogicalPlan,
    only: Option<HashSet<u64>>,
) -> Result<Vec<RecordBatch>, EngineError> {
    let plan = keyed_plan(plan, &only.map(Arc::new)).map_err(map_df_error)?;
    collect_plan(session, plan).await
}

/// Deletes the rows of a dynamic table whose lineage is in `lineage`;
/// returns how many.
fn delete_by_lineage(
    session: &Session,
    contents_id: TableId,
    hidden: usize,
    lineage: &HashSet<u64>,
) -> Result<u64, EngineError> {
    if lineage.is_empty() {
        return Ok(0);
    }
    let batches = session
        .shared
        .with_txn(|t| t.scan(contents_id, Some(&[hidden]), true))
        .map_err(map_df_error)?
        .map_err(EngineError::from)?;
    let mut doomed = Vec::new();
    for batch in &batches {
        let (Some(sources), Some(ids)) = (
            batch.column(0).as_any().downcast_ref::<UInt64Array>(),
            batch.column(1).as_any().downcast_ref::<UInt64Array>(),
        ) else {
            return Err(EngineError::new(
                "XX001",
                "lineage column of a dynamic table has the wrong type",
            ));
        };
        for i in 0..batch.num_rows() {
            if sources.is_valid(i) && lineage.contains(&sources.value(i)) {
                doomed.push(RowId(ids.value(i)));
            }
        }
    }
    txn_mut(session, |t| {
        t.delete(contents_id, &doomed).map_err(EngineError::from)
    })?;
    Ok(doomed.len() as u64)
}

async fn create_dynamic_table(
    session: &mut Session,
    create: &CreateDynamicTable,
    source: &str,
) -> Result<QueryOutput, EngineError> {
    let name = resolve_name(session, &create.name)?;
    require_schema(session, &name)?;
    if let Some(existing) = find_relation(session, &name)? {
        if create.if_not_exists {
            return Ok(command("CREATE DYNAMIC TABLE", None));
        }
        if !create.or_replace {
            return Err(EngineError::new(
                "42P07",
                format!("relation \"{}\" already exists", existing.name),
            ));
        }
        if existing.dynamic().is_none() {
            return Err(not_dynamic(&existing));
        }
        crate::privileges::require_owner(session, &existing)?;
        // Dynamic tables reading the old one would be left with change feeds
        // of a table that no longer exists: refuse (2BP01) like DROP does.
        crate::ddl::drop_for_replace(session, &existing)?;
    }
    if create.initialize == Initialize::OnCreate
        && session.transaction_status() != TransactionStatus::Idle
    {
        // The initial contents must equal the query at a *committed* snapshot,
        // or later incremental refreshes would apply the block's own writes twice.
        return Err(EngineError::new(
            "25001",
            "CREATE DYNAMIC TABLE … INITIALIZE = ON_CREATE cannot run inside a transaction block",
        ));
    }

    let default_schema = session
        .search_path
        .first()
        .cloned()
        .unwrap_or_else(|| "public".into());
    let mut query = (*create.query).clone();
    let mut qualifier = Qualifier {
        database: session.database.clone(),
        schema: default_schema,
        ctes: HashSet::new(),
        relations: Vec::new(),
        other_shapes: false,
    };
    let _ = query.visit(&mut qualifier);
    let models = pin_models(session, &mut query)?;
    let plan = plan_statement(
        &session.ctx.state(),
        Statement::Query(Box::new(query.clone())),
    )
    .await?;
    let output_schema = crate::planning::analyzed_output_schema(&session.ctx.state(), &plan)
        .as_ref()
        .clone();

    let mut source_entries = Vec::new();
    for relation in &qualifier.relations {
        if let Some(entry) = find_relation(session, relation)? {
            source_entries.push(entry);
        }
    }
    let maintained = maintenance_plan(session, &query).await?;
    let strategy = match relative_input_blocker(session, &maintained) {
        Some(reason) => Err(reason),
        None => classify(&query, &maintained, &source_entries, qualifier.other_shapes),
    };
    let (refresh_mode, reason) = match (create.refresh_mode, strategy) {
        (RefreshMode::Full, _) => (FULL, "REFRESH_MODE = FULL was requested".to_string()),
        (RefreshMode::Incremental, Err(reason)) => {
            return Err(EngineError::new(
                "0A000",
                format!(
                    "dynamic table \"{}\" cannot use REFRESH_MODE = INCREMENTAL: {reason}; use REFRESH_MODE = FULL or AUTO",
                    name.name
                ),
            ))
        }
        (RefreshMode::Incremental, Ok(strategy)) | (RefreshMode::Auto, Ok(strategy)) => {
            let from_state = strategy == Strategy::Keyed(KeyKind::Aggregate)
                && DeltaAggregate::of(key_node(&maintained)).is_some();
            let distinct = matches!(key_node(&plan), LogicalPlan::Distinct(Distinct::All(_)));
            let reason = match (from_state, distinct) {
                (true, true) => DISTINCT_STATE_REASON,
                (true, false) => STATE_REASON,
                (false, _) => strategy.reason(),
            };
            (INCREMENTAL, reason.to_string())
        }
        (RefreshMode::Auto, Err(reason)) => (FULL, reason),
    };

    let mut fields: Vec<Field> = output_schema
        .fields()
        .iter()
        .map(|f| crate::types::normalize_result_field(f))
        .collect();
    let mut columns = BTreeMap::new();
    if !create.columns.is_empty() {
        if create.columns.len() != fields.len() {
            return Err(EngineError::new(
                "42601",
                format!(
                    "the column list names {} column(s) but the query returns {}",
                    create.columns.len(),
                    fields.len()
                ),
            ));
        }
        for (field, (column, comment)) in fields.iter_mut().zip(&create.columns) {
            let column_name = ident(column);
            *field = field.clone().with_name(column_name.clone());
            if comment.is_some() {
                columns.insert(
                    column_name,
                    ColumnInfo {
                        default_sql: None,
                        comment: comment.clone(),
                    },
                );
            }
        }
    }
    let mut seen = HashSet::new();
    for field in &fields {
        if field.name() == SOURCE_ROW_ID_COLUMN || field.name() == ROW_ID_COLUMN {
            return Err(EngineError::new(
                "42939",
                format!("column name \"{}\" is reserved", field.name()),
            ));
        }
        if !seen.insert(field.name().clone()) {
            return Err(EngineError::new(
                "42701",
                format!("column \"{}\" specified more than once", field.name()),
            ));
        }
    }
    if refresh_mode == INCREMENTAL {
        fields.push(Field::new(SOURCE_ROW_ID_COLUMN, DataType::UInt64, true));
    }

    let def = DynamicTableDef {
        query_text: query.to_string(),
        create_text: source.to_string(),
        target_lag_secs: match create.target_lag {
            TargetLag::Duration(d) => Some(d.as_secs()),
            TargetLag::Downstream => None,
        },
        warehouse: create.warehouse.as_ref().map(ident),
        requested_mode: create.refresh_mode.to_string(),
        refresh_mode: refresh_mode.to_string(),
        refresh_mode_reason: reason,
        initialize: create.initialize.to_string(),
        sources: source_entries.iter().map(|e| e.qualified()).collect(),
        models,
        data_seq: None,
        data_timestamp_micros: None,
        scheduling_state: RUNNING.to_string(),
        last_suspended_micros: None,
        consecutive_failures: 0,
        source_table_ids: Vec::new(),
        lineage_version: LINEAGE_VERSION,
        state_table_id: None,
        value_count_table_ids: Vec::new(),
        arrangements: Vec::new(),
    };
    let target = crate::ddl::create_relation(
        session,
        &name,
        fields,
        columns,
        RelationKind::DynamicTable(Box::new(def)),
        create.comment.clone(),
    )?;
    // A previous dynamic table of this name may have left history behind
    // (dropped through DROP TABLE … CASCADE of its source).
    delete_history(session, &name)?;
    if create.initialize == Initialize::OnCreate {
        let started = std::time::Instant::now();
        let record = refresh_in_session(
            session,
            target.relation,
            RefreshTrigger::Creation,
            now_micros(),
        )
        .await?;
        // Counted when it finished; it commits with the CREATE statement.
        session.engine.metrics.refresh(
            &name.to_string(),
            &record.refresh_action,
            &record.state,
            Some(started.elapsed()),
        );
        log_refresh(&record);
        if let Some(seq) = record.data_seq {
            session
                .engine
                .store
                .set_retention_hold(&retention_holder(&name), Some(seq));
        }
    }
    Ok(command("CREATE DYNAMIC TABLE", None))
}

// ---------------------------------------------------------------------------
// Executing a refresh
// ---------------------------------------------------------------------------

/// Per-table locks, so two refreshes of one table never run at once (storage
/// would reject the second commit anyway; the lock avoids the wasted work).
fn refresh_lock(engine: &Arc<Engine>, name: &QualifiedName) -> Arc<tokio::sync::Mutex<()>> {
    type Locks = parking_lot::Mutex<HashMap<(usize, QualifiedName), Arc<tokio::sync::Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    let key = (Arc::as_ptr(engine) as usize, name.clone());
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .entry(key)
        .or_default()
        .clone()
}

/// An in-flight refresh, shown as an `EXECUTING` history row.
#[derive(Debug, Clone)]
struct Executing {
    trigger: RefreshTrigger,
    start: i64,
}

type ExecutingMap = parking_lot::Mutex<HashMap<(usize, QualifiedName), Executing>>;

/// Refreshes in flight, per engine. Kept in memory only: a refresh that is
/// running when the process dies left nothing durable behind, so there is
/// nothing to show for it after a restart.
fn executing() -> &'static ExecutingMap {
    static EXECUTING: OnceLock<ExecutingMap> = OnceLock::new();
    EXECUTING.get_or_init(Default::default)
}

/// Removes a refresh from [`executing`] however the refresh ends (including
/// when its future is dropped mid-way).
struct ExecutingGuard {
    key: (usize, QualifiedName),
}

impl ExecutingGuard {
    fn register(engine: &Arc<Engine>, name: &QualifiedName, trigger: RefreshTrigger) -> Self {
        let key = (Arc::as_ptr(engine) as usize, name.clone());
        executing().lock().insert(
            key.clone(),
            Executing {
                trigger,
                start: now_micros(),
            },
        );
        ExecutingGuard { key }
    }
}

impl Drop for ExecutingGuard {
    fn drop(&mut self) {
        executing().lock().remove(&self.key);
    }
}

/// Refreshes one dynamic table now, in its own transaction, and returns the
/// history record it wrote.
///
/// Runs in an internal session of the bootstrap superuser, reading the
/// latest committed snapshot. Failures are recorded as FAILED history entries
/// (and, for scheduled refreshes, counted towards
/// [`MAX_CONSECUTIVE_FAILURES`]) before the error is returned; a
/// serialization failure (40001, a concurrent DDL on the table) is returned
/// without being recorded, since the refresh is simply retried.
pub async fn refresh_dynamic_table(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    trigger: RefreshTrigger,
) -> Result<RefreshRecord, EngineError> {
    let lock = refresh_lock(engine, name);
    let _guard = lock.lock().await;
    let _executing = ExecutingGuard::register(engine, name, trigger);
    let start = now_micros();
    let started = std::time::Instant::now();
    let result = refresh_committed(engine, name, trigger, start).await;
    let label = name.to_string();
    match &result {
        Ok(record) => engine.metrics.refresh(
            &label,
            &record.refresh_action,
            &record.state,
            Some(started.elapsed()),
        ),
        // A serialization failure is retried and never recorded as a refresh.
        Err(e) if e.sqlstate() == "40001" => {}
        Err(_) => engine
            .metrics
            .refresh(&label, "", "FAILED", Some(started.elapsed())),
    }
    match result {
        Ok(record) => {
            log_refresh(&record);
            if let Some(seq) = record.data_seq {
                engine
                    .store
                    .set_retention_hold(&retention_holder(name), Some(seq));
            }
            Ok(record)
        }
        Err(e) => {
            if e.sqlstate() != "40001" {
                if let Err(record_error) = record_failure(engine, name, trigger, start, &e).await {
                    tracing::warn!(
                        table = %name,
                        "could not record failed refresh: {record_error}"
                    );
                }
            }
            Err(e)
        }
    }
}

async fn refresh_committed(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    trigger: RefreshTrigger,
    start: i64,
) -> Result<RefreshRecord, EngineError> {
    // A dynamic table refreshes with its owner's privileges (a superuser's,
    // for one created before owners were recorded).
    let owner: Option<RelationEntry> =
        catalog::get(&engine.store.snapshot(), &catalog::relation_key(name))
            .map_err(|e| EngineError::new(e.sqlstate(), e.to_string()))?;
    let owner = owner
        .and_then(|entry| entry.acl.owner)
        .unwrap_or_else(|| engine.superuser().to_string());
    let mut session = engine.internal_session(&owner, &name.database)?;
    session.set_setting("search_path", name.schema.clone())?;
    session.begin_statement_txn();
    let result = async {
        let entry = require_dynamic(&session, name)?;
        refresh_in_session(&mut session, entry, trigger, start).await
    }
    .await;
    match result {
        Ok(record) => {
            session.commit_statement_txn().await?;
            Ok(record)
        }
        Err(e) => {
            session.rollback_statement_txn();
            Err(e)
        }
    }
}

/// Writes a FAILED record (own transaction) and counts scheduled failures.
async fn record_failure(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    trigger: RefreshTrigger,
    start: i64,
    error: &EngineError,
) -> Result<(), EngineError> {
    let mut txn = engine.store.begin();
    let key = catalog::relation_key(name);
    let Some(mut entry) = catalog::get::<RelationEntry>(&txn, &key).map_err(catalog_err)? else {
        return Ok(());
    };
    let Some(def) = entry.dynamic().cloned() else {
        return Ok(());
    };
    let now = now_micros();
    if trigger == RefreshTrigger::Scheduled {
        let failures = def.consecutive_failures.saturating_add(1);
        with_def(&mut entry, |d| d.consecutive_failures = failures);
        if failures >= MAX_CONSECUTIVE_FAILURES {
            let all = all_relations(&txn)?;
            let mut affected = vec![name.clone()];
            affected.extend(downstream_of(&all, name));
            for q in affected {
                let current = if q == *name {
                    Some(entry.clone())
                } else {
                    all.iter().find(|r| r.qualified() == q).cloned()
                };
                if let Some(mut e) = current {
                    with_def(&mut e, |d| {
                        if d.scheduling_state == RUNNING {
                            d.scheduling_state = SUSPENDED_DUE_TO_ERRORS.to_string();
                            d.last_suspended_micros = Some(now);
                        }
                    });
                    if q == *name {
                        entry = e.clone();
                    }
                    catalog::put(&mut txn, &catalog::relation_key(&q), &e);
                }
            }
        }
        catalog::put(&mut txn, &key, &entry);
    }
    let record = RefreshRecord {
        name: name.clone(),
        state: "FAILED".into(),
        state_message: format!("{} ({})", error, error.sqlstate()),
        refresh_action: String::new(),
        refresh_trigger: trigger.as_str().into(),
        data_seq: None,
        data_timestamp: def.data_timestamp_micros,
        refresh_start_time: start,
        refresh_end_time: now,
        completion_target: completion_target(&def),
        statistics: RefreshStatistics::default(),
    };
    append_history(&mut txn, &record);
    txn.commit().await.map_err(EngineError::from)?;
    engine.after_commit();
    log_refresh(&record);
    Ok(())
}

/// Records that a scheduled refresh of `name` could not start in time
/// (a SKIPPED history entry).
pub async fn record_skipped(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    message: &str,
) -> Result<(), EngineError> {
    record_not_run(engine, name, "SKIPPED", message).await
}

/// Records that a scheduled refresh of `name` did not run because a dynamic
/// table it reads failed to refresh (an UPSTREAM_FAILED history entry).
pub async fn record_upstream_failed(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    message: &str,
) -> Result<(), EngineError> {
    record_not_run(engine, name, "UPSTREAM_FAILED", message).await
}

/// Appends a history entry for a scheduled refresh that did not run.
async fn record_not_run(
    engine: &Arc<Engine>,
    name: &QualifiedName,
    state: &str,
    message: &str,
) -> Result<(), EngineError> {
    let mut txn = engine.store.begin();
    let Some(entry) =
        catalog::get::<RelationEntry>(&txn, &catalog::relation_key(name)).map_err(catalog_err)?
    else {
        return Ok(());
    };
    let Some(def) = entry.dynamic() else {
        return Ok(());
    };
    let now = now_micros();
    let record = RefreshRecord {
        name: name.clone(),
        state: state.into(),
        state_message: message.to_string(),
        refresh_action: String::new(),
        refresh_trigger: RefreshTrigger::Scheduled.as_str().into(),
        data_seq: None,
        data_timestamp: def.data_timestamp_micros,
        refresh_start_time: now,
        refresh_end_time: now,
        completion_target: completion_target(def),
        statistics: RefreshStatistics::default(),
    };
    append_history(&mut txn, &record);
    txn.commit().await.map_err(EngineError::from)?;
    engine.metrics.refresh(&name.to_string(), "", state, None);
    log_refresh(&record);
    Ok(())
}

/// Logs one line for a refresh-history record, from the figures the
/// history holds: INFO for a refresh that succeeded or did not run (SKIPPED,
/// UPSTREAM_FAILED), WARN for one that failed. The target is
/// `freshet::refresh`, so `RUST_LOG=freshet::refresh=warn` (say) quietens it.
fn log_refresh(record: &RefreshRecord) {
    let action = if record.refresh_action.is_empty() {
        "NONE"
    } else {
        record.refresh_action.as_str()
    };
    let duration_ms = record
        .refresh_end_time
        .saturating_sub(record.refresh_start_time) as f64
        / 1000.0;
    let s = &record.statistics;
    // Why it failed or did not run; absent on success.
    let reason = (!record.state_message.is_empty()).then_some(record.state_message.as_str());
    macro_rules! refresh_event {
        ($level:expr, $what:literal) => {
            tracing::event!(
                target: "freshet::refresh",
                $level,
                table = %record.name,
                action,
                state = record.state.as_str(),
                trigger = record.refresh_trigger.as_str(),
                duration_ms,
                inserted_rows = s.num_inserted_rows,
                deleted_rows = s.num_deleted_rows,
                source_rows_read = s.num_source_rows_read,
                model_rows_scored = s.num_model_rows_scored,
                state_rows_read = s.num_state_rows_read,
                reason,
                $what
            )
        };
    }
    match record.state.as_str() {
        "FAILED" => refresh_event!(tracing::Level::WARN, "dynamic table refresh failed"),
        "SUCCEEDED" => refresh_event!(tracing::Level::INFO, "dynamic table refreshed"),
        _ => refresh_event!(tracing::Level::INFO, "dynamic table refresh did not run"),
    }
}

fn completion_target(def: &DynamicTableDef) -> Option<i64> {
    match (def.data_timestamp_micros, def.target_lag_secs) {
        (Some(ts), Some(lag)) => Some(ts.saturating_add((lag as i64).saturating_mul(1_000_000))),
        _ => None,
    }
}

/// Reads each model the table scores with once, in one snapshot: `owner`
/// must hold USAGE on it, and a model the table follows by default whose
/// default version moved is re-pinned (updating `def`). Returns true when a
/// re-pin happened: a REINITIALIZE is due.
fn check_models(
    session: &Session,
    owner: &str,
    def: &mut DynamicTableDef,
) -> Result<bool, EngineError> {
    let changed = session
        .shared
        .with_txn(|t| -> Result<bool, EngineError> {
            let mut changed = false;
            for model_use in def.models.iter_mut() {
                let entry: Option<ModelEntry> =
                    catalog::get(t, &catalog::model_key(&model_use.model)).map_err(catalog_err)?;
                let Some(entry) = entry else {
                    if model_use.follows_default {
                        return Err(EngineError::new(
                            "42704",
                            format!("model \"{}\" does not exist", model_use.model),
                        ));
                    }
                    // A pinned version of a dropped model fails at planning.
                    continue;
                };
                crate::registry::require_usage(t, owner, &entry)?;
                if model_use.follows_default && entry.default_version != model_use.version {
                    model_use.version = entry.default_version.clone();
                    changed = true;
                }
            }
            Ok(changed)
        })
        .map_err(map_df_error)??;
    if changed {
        let mut query = parse_stored_query(&def.query_text)?;
        repin_versions(&mut query, &def.models);
        def.query_text = query.to_string();
    }
    Ok(changed)
}

/// Indices of a table's columns without the hidden lineage column.
fn visible_indices(schema: &Schema) -> Vec<usize> {
    schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != SOURCE_ROW_ID_COLUMN)
        .map(|(i, _)| i)
        .collect()
}

/// Runs a query and collects its batches.
async fn collect_query(session: &Session, query: Query) -> Result<Vec<RecordBatch>, EngineError> {
    let plan = plan_statement(&session.ctx.state(), Statement::Query(Box::new(query))).await?;
    collect_plan(session, plan).await
}

/// One source of an incremental dynamic table, as a refresh reads it.
struct SourceInput {
    name: QualifiedName,
    table_id: TableId,
    created_micros: i64,
    /// Storage columns SQL sees (a source dynamic table's lineage is hidden).
    keep: Vec<usize>,
    /// Those columns followed by the row id: the refresh input's schema.
    schema: SchemaRef,
}

/// Looks up every source of an incremental dynamic table.
fn resolve_sources(
    session: &Session,
    def: &DynamicTableDef,
    name: &QualifiedName,
) -> Result<Vec<SourceInput>, EngineError> {
    if def.sources.is_empty() {
        return Err(EngineError::new(
            "XX001",
            format!("incremental dynamic table {name} has no source"),
        ));
    }
    let mut inputs = Vec::new();
    for source_name in &def.sources {
        let source = find_relation(session, source_name)?.ok_or_else(|| {
            EngineError::new(
                "42P01",
                format!("source \"{source_name}\" of dynamic table {name} does not exist"),
            )
        })?;
        let table_id: TableId = source.table_id.ok_or_else(|| {
            EngineError::new(
                "0A000",
                format!("source {source_name} is not a stored table"),
            )
        })?;
        let storage_schema = session
            .shared
            .with_txn(|t| t.table_schema(table_id))
            .map_err(map_df_error)?
            .map_err(EngineError::from)?;
        let keep = visible_indices(&storage_schema);
        let mut fields: Vec<Field> = keep
            .iter()
            .map(|i| storage_schema.field(*i).clone())
            .collect();
        fields.push(Field::new(ROW_ID_COLUMN, DataType::UInt64, false));
        inputs.push(SourceInput {
            name: source_name.clone(),
            table_id,
            created_micros: source.created_micros,
            keep,
            schema: Arc::new(Schema::new(fields)),
        });
    }
    Ok(inputs)
}

/// Evaluates a map-only query over `inputs` (per source: rows with their row
/// ids) instead of its sources. The result's last column is each row's
/// lineage: the row id of the source row it came from.
async fn evaluate_with_lineage(
    session: &Session,
    plan: &LogicalPlan,
    default: &QualifiedName,
    inputs: Vec<(&SourceInput, Vec<RecordBatch>)>,
) -> Result<Vec<RecordBatch>, EngineError> {
    let partitions = session.engine.config.threads.max(1);
    let mut tables = HashMap::new();
    for (source, rows) in inputs {
        let table = MemTable::try_new(
            source.schema.clone(),
            crate::provider::split_partitions(rows, partitions),
        )
        .map_err(map_df_error)?;
        tables.insert(source.name.clone(), Arc::new(table));
    }
    let plan = plan_with_lineage(plan.clone(), &tables, default)?;
    collect_plan(session, plan).await
}

/// Re-shapes batches (source columns + row id) to the input table's schema,
/// dropping a source dynamic table's own lineage column.
fn input_batches(
    batches: Vec<RecordBatch>,
    keep: &[usize],
    schema: &SchemaRef,
) -> Result<Vec<RecordBatch>, EngineError> {
    batches
        .into_iter()
        .filter(|b| b.num_rows() > 0)
        .map(|b| {
            let mut columns: Vec<ArrayRef> = keep.iter().map(|i| b.column(*i).clone()).collect();
            columns.push(b.column(b.num_columns() - 1).clone());
            RecordBatch::try_new(schema.clone(), columns).map_err(map_arrow_error)
        })
        .collect()
}

/// A source's changed rows (input batches: visible columns and row id) as a
/// table of its visible columns only, the shape its scans have.
fn visible_table(
    source: &SourceInput,
    rows: Vec<RecordBatch>,
) -> Result<Arc<MemTable>, EngineError> {
    let width = source.schema.fields().len().saturating_sub(1);
    let schema: SchemaRef = Arc::new(Schema::new(source.schema.fields()[..width].to_vec()));
    let batches = rows
        .into_iter()
        .map(|b| {
            RecordBatch::try_new(schema.clone(), b.columns()[..width].to_vec())
                .map_err(map_arrow_error)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(
        MemTable::try_new(schema, vec![batches]).map_err(map_df_error)?,
    ))
}

/// Row ids in the last column of `batches`.
fn row_ids_of(batches: &[RecordBatch]) -> impl Iterator<Item = u64> + '_ {
    batches
        .iter()
        .filter_map(|b| {
            b.column(b.num_columns() - 1)
                .as_any()
                .downcast_ref::<UInt64Array>()
        })
        .flat_map(|a| a.values().iter().copied())
}

/// Fails (55000) when the query now returns a different number of columns
/// than the table has, e.g. after a source column was added under a `*`.
fn check_width(
    name: &QualifiedName,
    results: &[RecordBatch],
    contents_schema: &Schema,
) -> Result<(), EngineError> {
    let expected = contents_schema.fields().len();
    match results.first().map(|b| b.num_columns()) {
        Some(n) if n != expected => Err(EngineError::new(
            "55000",
            format!(
                "the query of dynamic table {name} now returns {n} column(s) but the table has {expected}; recreate it with CREATE OR REPLACE DYNAMIC TABLE"
            ),
        )),
        _ => Ok(()),
    }
}

fn row_count(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Performs one refresh inside the session's current transaction: contents,
/// catalog entry and history record. The caller commits.
async fn refresh_in_session(
    session: &mut Session,
    mut entry: RelationEntry,
    trigger: RefreshTrigger,
    start: i64,
) -> Result<RefreshRecord, EngineError> {
    let name = entry.qualified();
    let Some(mut def) = entry.dynamic().cloned() else {
        return Err(not_dynamic(&entry));
    };
    // Whatever path a refresh reads its sources by (a planned scan, or their
    // change feeds), and whoever asked for it, its owner needs SELECT on
    // each table it reads.
    let owner = entry
        .acl
        .owner
        .clone()
        .unwrap_or_else(|| session.user().to_string());
    for source in &def.sources {
        if let Some(source) = crate::names::find_relation(session, source)? {
            if source.table_id.is_some() {
                crate::privileges::require(
                    &session.shared,
                    &owner,
                    &source.name,
                    &source.acl,
                    catalog::TablePrivilege::Select,
                )?;
            }
        }
    }
    // And USAGE on each model it scores with; a model whose default
    // version moved is re-pinned, and the table reinitialized.
    let reinitialize = check_models(session, &owner, &mut def)?;
    let contents_id = entry
        .table_id
        .ok_or_else(|| EngineError::new("XX001", format!("dynamic table {name} has no storage")))?;
    let snapshot_seq = session
        .shared
        .with_txn(|t| t.snapshot_seq())
        .map_err(map_df_error)?;
    let completion = completion_target(&def);
    let query = parse_stored_query(&def.query_text)?;
    let contents_schema = session
        .shared
        .with_txn(|t| t.table_schema(contents_id))
        .map_err(map_df_error)?
        .map_err(EngineError::from)?;
    let target = InsertTarget {
        name: name.clone(),
        table_id: contents_id,
        schema: contents_schema.clone(),
        relation: entry.clone(),
    };
    let mut stats = RefreshStatistics::default();
    let action: &str;
    // Model rows and stored-table rows are counted by the model call and the
    // scans themselves (see `crate::work`); this refresh's share is the
    // difference from here to the end.
    let work_before = session.shared.work.now();

    if def.refresh_mode == INCREMENTAL {
        let sources = resolve_sources(session, &def, &name)?;
        let hidden = contents_schema.fields().len().saturating_sub(1);
        let plan = maintenance_plan(session, &query).await?;
        let strategy = strategy_of(&plan);
        // A GROUP BY of counts, sums, averages, minimums and maximums is
        // maintained from per-group state.
        let delta = match strategy {
            Strategy::Keyed(KeyKind::Aggregate) => DeltaAggregate::of(key_node(&plan)),
            _ => None,
        };
        let state_ready = match (&delta, def.state_table_id) {
            (Some(delta), Some(table)) => {
                state_matches(session, delta, table, &def.value_count_table_ids)
            }
            _ => false,
        };
        // A join input that calls a model is kept arranged.
        let arrange = sides_to_arrange(&plan, strategy);
        let arranged = arrangements_ready(session, &plan, &arrange, &def.arrangements);
        // Incremental only from a retained snapshot of the same source
        // tables: a source replaced since (CREATE OR REPLACE TABLE) is
        // another storage table, whose change feed says nothing about the
        // rows the contents came from. Tables refreshed before the source
        // table ids were recorded fall back to the sources' creation times.
        let source_ids: Vec<TableId> = sources.iter().map(|s| s.table_id).collect();
        let replaced = if def.source_table_ids.is_empty() {
            !def.data_timestamp_micros
                .is_some_and(|ts| sources.iter().all(|source| source.created_micros < ts))
        } else {
            def.source_table_ids != source_ids
        };
        let replaced = replaced && def.data_seq.is_some();
        // Keyed contents hashed by an older lineage version are recomputed.
        let old_lineage = strategy != Strategy::MapOnly && def.lineage_version < LINEAGE_VERSION;
        let from = def.data_seq.filter(|from| {
            !reinitialize
                && !replaced
                && !old_lineage
                && (delta.is_none() || state_ready)
                && (arrange.is_empty() || arranged)
                && *from >= session.engine.store.retention_floor()
        });
        def.source_table_ids = source_ids;
        def.lineage_version = LINEAGE_VERSION;
        match from {
            Some(from) if from >= snapshot_seq => action = "NO_DATA",
            Some(from) => {
                let mut deleted_ids: HashSet<u64> = HashSet::new();
                let mut inserted = Vec::new();
                let mut changed = HashMap::new();
                let mut inserted_only = HashMap::new();
                let mut deleted_only = HashMap::new();
                for source in &sources {
                    let changes = session
                        .engine
                        .store
                        .changes(source.table_id, from, snapshot_seq)
                        .map_err(EngineError::from)?;
                    deleted_ids.extend(row_ids_of(&changes.deleted));
                    let deleted = input_batches(changes.deleted, &source.keep, &source.schema)?;
                    let rows = input_batches(changes.inserted, &source.keep, &source.schema)?;
                    stats.num_source_rows_read += row_count(&rows);
                    if delta.is_some() {
                        inserted_only
                            .insert(source.name.clone(), visible_table(source, rows.clone())?);
                        deleted_only.insert(source.name.clone(), visible_table(source, deleted)?);
                    } else if strategy != Strategy::MapOnly {
                        let visible = deleted.iter().chain(&rows).cloned().collect();
                        changed.insert(source.name.clone(), visible_table(source, visible)?);
                    }
                    inserted.push((source, rows));
                }
                stats.num_source_rows_read += deleted_ids.len() as u64;
                let any_inserted = inserted.iter().any(|(_, rows)| !rows.is_empty());
                if deleted_ids.is_empty() && !any_inserted {
                    action = "NO_DATA";
                } else if strategy == Strategy::MapOnly {
                    action = "INCREMENTAL";
                    stats.num_deleted_rows =
                        delete_by_lineage(session, contents_id, hidden, &deleted_ids)?;
                    if any_inserted {
                        let results =
                            evaluate_with_lineage(session, &plan, &name, inserted).await?;
                        check_width(&name, &results, &contents_schema)?;
                        stats.num_inserted_rows =
                            crate::dml::write_batches(session, &target, &results)?;
                    }
                } else if let (Some(delta), Some(state)) = (&delta, def.state_table_id) {
                    action = "INCREMENTAL";
                    let (touched, results) = refresh_from_state(
                        session,
                        &plan,
                        delta,
                        GroupStateTables {
                            state,
                            value_counts: &def.value_count_table_ids,
                        },
                        &name,
                        any_inserted.then_some(&inserted_only),
                        (!deleted_ids.is_empty()).then_some(&deleted_only),
                    )
                    .await?;
                    stats.num_deleted_rows =
                        delete_by_lineage(session, contents_id, hidden, &touched)?;
                    check_width(&name, &results, &contents_schema)?;
                    stats.num_inserted_rows =
                        crate::dml::write_batches(session, &target, &results)?;
                } else if !arrange.is_empty() {
                    action = "INCREMENTAL";
                    let (keys, results) = refresh_arranged_join(
                        session,
                        &plan,
                        &name,
                        &def.arrangements,
                        &changed,
                        &inserted,
                        &deleted_ids,
                    )
                    .await?;
                    stats.num_deleted_rows =
                        delete_by_lineage(session, contents_id, hidden, &keys)?;
                    check_width(&name, &results, &contents_schema)?;
                    stats.num_inserted_rows =
                        crate::dml::write_batches(session, &target, &results)?;
                } else {
                    action = "INCREMENTAL";
                    let keys = affected_keys(session, &plan, &name, &changed).await?;
                    stats.num_deleted_rows =
                        delete_by_lineage(session, contents_id, hidden, &keys)?;
                    if !keys.is_empty() {
                        // The affected partitions are recomputed from the
                        // sources as they are now (their scans count the
                        // rows they read).
                        let results = evaluate_keyed(session, &plan, Some(keys)).await?;
                        check_width(&name, &results, &contents_schema)?;
                        stats.num_inserted_rows =
                            crate::dml::write_batches(session, &target, &results)?;
                    }
                }
            }
            None => {
                action = if reinitialize || replaced {
                    "REINITIALIZE"
                } else {
                    "FULL"
                };
                stats.num_deleted_rows = session
                    .engine
                    .store
                    .snapshot_at(snapshot_seq)
                    .and_then(|s| s.table_stats(contents_id))
                    .map(|s| s.rows)
                    .unwrap_or(0);
                txn_mut(session, |t| {
                    t.truncate(contents_id).map_err(EngineError::from)
                })?;
                let results = if strategy == Strategy::MapOnly {
                    let mut inputs = Vec::new();
                    for source in &sources {
                        let rows = session
                            .shared
                            .with_txn(|t| t.scan(source.table_id, None, true))
                            .map_err(map_df_error)?
                            .map_err(EngineError::from)?;
                        let rows = input_batches(rows, &source.keep, &source.schema)?;
                        stats.num_source_rows_read += row_count(&rows);
                        inputs.push((source, rows));
                    }
                    evaluate_with_lineage(session, &plan, &name, inputs).await?
                } else if !arrange.is_empty() {
                    let (arrangements, inputs) = rebuild_arrangements(
                        session,
                        &plan,
                        &name,
                        &sources,
                        &arrange,
                        std::mem::take(&mut def.arrangements),
                        &mut stats,
                    )
                    .await?;
                    def.arrangements = arrangements;
                    let plan = keyed_plan_over(&plan, &None, &inputs).map_err(map_df_error)?;
                    collect_plan(session, plan).await?
                } else {
                    for old in std::mem::take(&mut def.arrangements) {
                        join_arrangement::drop(session, old.table_id)?;
                    }
                    evaluate_keyed(session, &plan, None).await?
                };
                check_width(&name, &results, &contents_schema)?;
                stats.num_inserted_rows = crate::dml::write_batches(session, &target, &results)?;
                let old_value_counts = std::mem::take(&mut def.value_count_table_ids);
                def.state_table_id = match &delta {
                    Some(delta) => {
                        let (state, value_counts) =
                            rebuild_state(session, delta, def.state_table_id, &old_value_counts)
                                .await?;
                        def.value_count_table_ids = value_counts;
                        Some(state)
                    }
                    None => {
                        drop_state(session, def.state_table_id, &old_value_counts)?;
                        None
                    }
                };
            }
        }
    } else {
        action = if reinitialize { "REINITIALIZE" } else { "FULL" };
        stats.num_deleted_rows = session
            .engine
            .store
            .snapshot_at(snapshot_seq)
            .and_then(|s| s.table_stats(contents_id))
            .map(|s| s.rows)
            .unwrap_or(0);
        let results = collect_query(session, query).await?;
        check_width(&name, &results, &contents_schema)?;
        txn_mut(session, |t| {
            t.truncate(contents_id).map_err(EngineError::from)
        })?;
        stats.num_inserted_rows = crate::dml::write_batches(session, &target, &results)?;
    }
    let work = session.shared.work.since(work_before);
    stats.num_model_rows_scored = work.model_rows_scored;
    stats.num_state_rows_read = work.state_rows_read;
    stats.num_source_rows_read += work.stored_rows_scanned;

    let snapshot_timestamp = session
        .engine
        .store
        .commit_timestamp(snapshot_seq)
        .unwrap_or(start)
        .max(start);
    // The contents are no fresher than the dynamic tables they were computed
    // from: one whose upstream is suspended (or behind) keeps the upstream's
    // data timestamp, so its lag stays honest however often it refreshes.
    let mut upstream_timestamp: Option<i64> = None;
    for source in &def.sources {
        if let Some(ts) = find_relation(session, source)?
            .and_then(|e| e.dynamic().and_then(|d| d.data_timestamp_micros))
        {
            upstream_timestamp = Some(upstream_timestamp.map_or(ts, |u| u.min(ts)));
        }
    }
    let data_timestamp =
        upstream_timestamp.map_or(snapshot_timestamp, |u| u.min(snapshot_timestamp));
    def.data_seq = Some(snapshot_seq);
    def.data_timestamp_micros = Some(data_timestamp);
    if trigger != RefreshTrigger::Scheduled || def.consecutive_failures > 0 {
        def.consecutive_failures = 0;
    }
    entry.kind = RelationKind::DynamicTable(Box::new(def));
    let record = RefreshRecord {
        name: name.clone(),
        state: "SUCCEEDED".into(),
        state_message: String::new(),
        refresh_action: action.to_string(),
        refresh_trigger: trigger.as_str().into(),
        data_seq: Some(snapshot_seq),
        data_timestamp: Some(data_timestamp),
        refresh_start_time: start,
        refresh_end_time: now_micros(),
        completion_target: completion,
        statistics: stats,
    };
    txn_mut(session, |t| {
        catalog::put(t, &catalog::relation_key(&name), &entry);
        append_history(t, &record);
        Ok(())
    })?;
    Ok(record)
}

// ---------------------------------------------------------------------------
// ALTER / DROP
// ---------------------------------------------------------------------------

async fn alter_dynamic_table(
    session: &mut Session,
    name: &ObjectName,
    action: &AlterDynamicTableAction,
) -> Result<QueryOutput, EngineError> {
    let qualified = resolve_name(session, name)?;
    let entry = require_dynamic(session, &qualified)?;
    crate::privileges::require_owner(session, &entry)?;
    let now = now_micros();
    match action {
        AlterDynamicTableAction::Suspend
        | AlterDynamicTableAction::Resume
        | AlterDynamicTableAction::SetTargetLag(_)
        | AlterDynamicTableAction::SetWarehouse(_)
        | AlterDynamicTableAction::SetComment(_) => {
            if session.transaction_status() == TransactionStatus::Idle {
                // Outside a transaction block the change commits on its own,
                // retried on a serialization failure: a refresh committing
                // the same catalog entry at the same moment must not make a
                // user's ALTER fail with 40001.
                let engine = session.engine.clone();
                alter_committed(&engine, &qualified, action, now).await?;
            } else {
                let all = session_relations(session)?;
                for changed in altered_entries(&all, &qualified, action, now) {
                    put_entry(session, &changed)?;
                }
            }
        }
        AlterDynamicTableAction::Refresh => {
            if session.transaction_status() != TransactionStatus::Idle {
                return Err(EngineError::new(
                    "25001",
                    "ALTER DYNAMIC TABLE … REFRESH cannot run inside a transaction block",
                ));
            }
            let engine = session.engine.clone();
            refresh_dynamic_table(&engine, &qualified, RefreshTrigger::Manual).await?;
        }
        AlterDynamicTableAction::RenameTo(new_name) => {
            let p = parts(new_name);
            let target = match p.as_slice() {
                [n] => QualifiedName {
                    database: qualified.database.clone(),
                    schema: qualified.schema.clone(),
                    name: n.clone(),
                },
                _ => resolve_parts(session, &p)?,
            };
            require_schema(session, &target)?;
            crate::ddl::rename_relation(session, &entry, &target)?;
            txn_mut(session, |t| {
                let old_prefix = history_prefix(&qualified);
                let new_prefix = history_prefix(&target);
                for (key, value) in t.scan_meta(&old_prefix) {
                    let suffix = key.trim_start_matches(&old_prefix).to_string();
                    let mut record: Option<RefreshRecord> = serde_json::from_slice(&value).ok();
                    if let Some(r) = record.as_mut() {
                        r.name = target.clone();
                    }
                    let bytes = match record {
                        Some(r) => catalog::encode(&r),
                        None => value,
                    };
                    t.delete_meta(&key);
                    t.put_meta(&format!("{new_prefix}{suffix}"), bytes);
                }
                Ok(())
            })?;
            if let Some(seq) = entry.dynamic().and_then(|d| d.data_seq) {
                let store = &session.engine.store;
                store.set_retention_hold(&retention_holder(&target), Some(seq));
                store.set_retention_hold(&retention_holder(&qualified), None);
            }
        }
    }
    Ok(command("ALTER DYNAMIC TABLE", None))
}

/// The catalog entries an ALTER that only edits the definition changes, as
/// they are after it: `qualified` itself, and for SUSPEND its downstream
/// dynamic tables.
fn altered_entries(
    all: &[RelationEntry],
    qualified: &QualifiedName,
    action: &AlterDynamicTableAction,
    now: i64,
) -> Vec<RelationEntry> {
    let find = |q: &QualifiedName| all.iter().find(|r| r.qualified() == *q).cloned();
    let mut changed = Vec::new();
    match action {
        AlterDynamicTableAction::Suspend => {
            let mut affected = vec![qualified.clone()];
            affected.extend(downstream_of(all, qualified));
            for q in affected {
                let Some(mut e) = find(&q) else {
                    continue;
                };
                let mut suspended = false;
                with_def(&mut e, |d| {
                    if d.scheduling_state != SUSPENDED {
                        d.scheduling_state = SUSPENDED.to_string();
                        d.last_suspended_micros = Some(now);
                        suspended = true;
                    }
                });
                if suspended {
                    changed.push(e);
                }
            }
        }
        AlterDynamicTableAction::Resume => {
            if let Some(mut e) = find(qualified) {
                with_def(&mut e, |d| {
                    d.scheduling_state = RUNNING.to_string();
                    d.consecutive_failures = 0;
                });
                changed.push(e);
            }
        }
        AlterDynamicTableAction::SetTargetLag(lag) => {
            if let Some(mut e) = find(qualified) {
                let secs = match lag {
                    TargetLag::Duration(duration) => Some(duration.as_secs()),
                    TargetLag::Downstream => None,
                };
                with_def(&mut e, |d| d.target_lag_secs = secs);
                changed.push(e);
            }
        }
        AlterDynamicTableAction::SetWarehouse(w) => {
            if let Some(mut e) = find(qualified) {
                with_def(&mut e, |d| d.warehouse = Some(ident(w)));
                changed.push(e);
            }
        }
        AlterDynamicTableAction::SetComment(c) => {
            if let Some(mut e) = find(qualified) {
                e.comment = Some(c.clone());
                changed.push(e);
            }
        }
        AlterDynamicTableAction::Refresh | AlterDynamicTableAction::RenameTo(_) => {}
    }
    changed
}

/// How many times [`alter_committed`] tries before giving up.
const ALTER_ATTEMPTS: usize = 50;

/// Applies a definition-only ALTER in a transaction of its own, reading the
/// latest catalog entries each time and retrying when a concurrent commit
/// (a refresh writing its progress) conflicts. Visible to every transaction
/// that starts after it returns.
async fn alter_committed(
    engine: &Arc<Engine>,
    qualified: &QualifiedName,
    action: &AlterDynamicTableAction,
    now: i64,
) -> Result<(), EngineError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut txn = engine.store.begin();
        let all = all_relations(&txn)?;
        if !all.iter().any(|r| r.qualified() == *qualified) {
            return Err(EngineError::new(
                "42P01",
                format!("dynamic table \"{}\" does not exist", qualified.name),
            ));
        }
        for changed in altered_entries(&all, qualified, action, now) {
            catalog::put(
                &mut txn,
                &catalog::relation_key(&changed.qualified()),
                &changed,
            );
        }
        match txn.commit().await {
            Ok(_) => {
                engine.after_commit();
                return Ok(());
            }
            Err(e) => {
                let e = EngineError::from(e);
                if e.sqlstate() != "40001" || attempt >= ALTER_ATTEMPTS {
                    return Err(e);
                }
                tokio::task::yield_now().await;
            }
        }
    }
}

fn drop_dynamic_table(
    session: &mut Session,
    name: &ObjectName,
    if_exists: bool,
    cascade: bool,
) -> Result<QueryOutput, EngineError> {
    let qualified = resolve_name(session, name)?;
    let Some(entry) = find_relation(session, &qualified)? else {
        if if_exists {
            return Ok(command("DROP DYNAMIC TABLE", None));
        }
        return Err(EngineError::new(
            "42P01",
            format!("dynamic table \"{}\" does not exist", qualified.name),
        ));
    };
    if entry.dynamic().is_none() {
        return Err(not_dynamic(&entry));
    }
    crate::privileges::require_owner(session, &entry)?;
    let mut dropped = vec![qualified.clone()];
    if cascade {
        dropped.extend(downstream_of(&session_relations(session)?, &qualified));
    }
    crate::ddl::drop_with_dependents(session, &entry, cascade)?;
    for q in &dropped {
        delete_history(session, q)?;
        session
            .engine
            .store
            .set_retention_hold(&retention_holder(q), None);
    }
    Ok(command("DROP DYNAMIC TABLE", None))
}

// ---------------------------------------------------------------------------
// SHOW / DESCRIBE / table functions
// ---------------------------------------------------------------------------

/// Seconds between two µs timestamps, at millisecond precision.
fn lag_seconds(from: i64, to: i64) -> f64 {
    ((to - from).max(0) / 1_000) as f64 / 1_000.0
}

/// A dynamic table's current lag and the largest lag it had during the last
/// hour, in seconds, from its refresh history.
///
/// The lag grows linearly between refreshes and drops when one commits, so
/// its maxima are just before each successful refresh committed (the
/// refresh's end minus the data timestamp it replaced) and now.
fn lag_stats(
    def: &DynamicTableDef,
    history: &[RefreshRecord],
    now: i64,
) -> (Option<f64>, Option<f64>) {
    let Some(current_ts) = def.data_timestamp_micros else {
        return (None, None);
    };
    let current = lag_seconds(current_ts, now);
    let window_start = now - 3_600_000_000;
    let mut succeeded: Vec<&RefreshRecord> = history
        .iter()
        .filter(|r| r.state == "SUCCEEDED" && r.data_timestamp.is_some())
        .collect();
    succeeded.sort_by_key(|r| r.refresh_end_time);
    let mut max = current;
    let mut previous: Option<i64> = None;
    for record in succeeded {
        if let Some(prev) = previous {
            if record.refresh_end_time >= window_start {
                max = max.max(lag_seconds(prev, record.refresh_end_time));
            }
        }
        previous = previous.max(record.data_timestamp);
    }
    (Some(current), Some(max))
}

/// A dynamic table's lag now, for monitoring outside SQL.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicTableLag {
    /// `database.schema.name`.
    pub name: String,
    /// Its own target lag in seconds; `None` for TARGET_LAG = DOWNSTREAM.
    pub target_lag_seconds: Option<f64>,
    /// Seconds since the time its contents are current as of (the
    /// `lag_seconds` of `SHOW DYNAMIC TABLES`); `None` before its first
    /// refresh.
    pub lag_seconds: Option<f64>,
    /// `RUNNING`, `SUSPENDED` or `SUSPENDED_DUE_TO_ERRORS`.
    pub scheduling_state: String,
}

/// The current lag of every dynamic table in every database, computed as
/// `SHOW DYNAMIC TABLES` computes its `lag_seconds`, from the latest
/// committed catalog.
pub fn dynamic_table_lags(engine: &Engine) -> Result<Vec<DynamicTableLag>, EngineError> {
    let now = now_micros();
    let snapshot = engine.store.snapshot();
    Ok(all_relations(&snapshot)?
        .iter()
        .filter_map(|entry| {
            let def = entry.dynamic()?;
            Some(DynamicTableLag {
                name: entry.qualified().to_string(),
                target_lag_seconds: def.target_lag_secs.map(|s| s as f64),
                lag_seconds: def.data_timestamp_micros.map(|ts| lag_seconds(ts, now)),
                scheduling_state: def.scheduling_state.clone(),
            })
        })
        .collect())
}

/// Effective target lag (µs) of every dynamic table: its own lag or the
/// smallest effective lag of the running dynamic tables reading it, the way
/// the scheduler computes it. `None` for tables that are never scheduled.
fn effective_lags(all: &[RelationEntry]) -> HashMap<QualifiedName, Option<i64>> {
    fn visit(
        name: &QualifiedName,
        defs: &HashMap<QualifiedName, &DynamicTableDef>,
        memo: &mut HashMap<QualifiedName, Option<i64>>,
        visiting: &mut HashSet<QualifiedName>,
    ) -> Option<i64> {
        if let Some(lag) = memo.get(name) {
            return *lag;
        }
        if !visiting.insert(name.clone()) {
            return None;
        }
        let mut lag = defs
            .get(name)
            .and_then(|d| d.target_lag_secs)
            .map(|s| (s as i64).saturating_mul(1_000_000));
        let consumers: Vec<QualifiedName> = defs
            .iter()
            .filter(|(_, d)| d.sources.contains(name) && d.scheduling_state == RUNNING)
            .map(|(q, _)| q.clone())
            .collect();
        for consumer in consumers {
            if let Some(l) = visit(&consumer, defs, memo, visiting) {
                lag = Some(lag.map_or(l, |x| x.min(l)));
            }
        }
        memo.insert(name.clone(), lag);
        lag
    }
    let defs: HashMap<QualifiedName, &DynamicTableDef> = all
        .iter()
        .filter_map(|r| r.dynamic().map(|d| (r.qualified(), d)))
        .collect();
    let mut memo = HashMap::new();
    for name in defs.keys() {
        let mut visiting = HashSet::new();
        visit(name, &defs, &mut memo, &mut visiting);
    }
    memo
}

/// SHOW rows for the given dynamic tables; `all` is every relation (to tell
/// whether a DOWNSTREAM table has a consumer) and `reader` the snapshot the
/// refresh history is read from.
fn show_rows(
    engine: &Engine,
    reader: &dyn MetaRead,
    tables: &[RelationEntry],
    all: &[RelationEntry],
) -> Vec<Vec<Cell>> {
    let now = now_micros();
    let snapshot = engine.store.snapshot();
    tables
        .iter()
        .filter_map(|entry| {
            let def = entry.dynamic()?;
            let stats = entry
                .table_id
                .and_then(|id| snapshot.table_stats(id).ok())
                .unwrap_or_default();
            let mut reason = def.refresh_mode_reason.clone();
            if def.target_lag_secs.is_none() && downstream_of(all, &entry.qualified()).is_empty() {
                reason.push_str(
                    "; not scheduled: TARGET_LAG = DOWNSTREAM and no dynamic table reads it (refresh it with ALTER DYNAMIC TABLE … REFRESH)",
                );
            }
            let lag = match def.target_lag_secs {
                Some(s) => TargetLag::Duration(std::time::Duration::from_secs(s)).to_string(),
                None => TargetLag::Downstream.to_string(),
            };
            // An unreadable history only loses the lag maximum, not the row.
            let history: Vec<RefreshRecord> =
                catalog::list(reader, &history_prefix(&entry.qualified())).unwrap_or_default();
            let (current_lag, max_lag) = lag_stats(def, &history, now);
            Some(vec![
                Cell::Time(Some(entry.created_micros)),
                Cell::Text(Some(entry.name.clone())),
                Cell::Text(Some(entry.database.clone())),
                Cell::Text(Some(entry.schema.clone())),
                Cell::Int(Some(stats.rows as i64)),
                Cell::Int(Some(stats.bytes as i64)),
                Cell::Text(Some(lag)),
                Cell::Text(Some(def.refresh_mode.clone())),
                Cell::Text(Some(reason)),
                Cell::Text(def.warehouse.clone()),
                Cell::Text(entry.comment.clone()),
                Cell::Text(Some(def.create_text.clone())),
                Cell::Text(Some(def.scheduling_state.clone())),
                Cell::Time(def.last_suspended_micros),
                Cell::Time(def.data_timestamp_micros),
                Cell::Float(current_lag),
                Cell::Float(max_lag),
            ])
        })
        .collect()
}

fn show_dynamic_tables(
    session: &Session,
    like: Option<&str>,
    scope: &ShowScope,
) -> Result<QueryOutput, EngineError> {
    let (database, schema) = match scope {
        ShowScope::Current => (
            session.database.clone(),
            Some(
                session
                    .search_path
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "public".into()),
            ),
        ),
        ShowScope::Database(d) => (ident(d), None),
        ShowScope::Schema(s) => match parts(s).as_slice() {
            [schema] => (session.database.clone(), Some(schema.clone())),
            [db, schema] => (db.clone(), Some(schema.clone())),
            _ => return Err(EngineError::new("42601", "invalid schema name")),
        },
    };
    let all = session_relations(session)?;
    let pattern = like.map(|p| p.to_ascii_lowercase());
    let selected: Vec<RelationEntry> = all
        .iter()
        .filter(|r| r.dynamic().is_some() && r.database == database)
        .filter(|r| schema.as_ref().is_none_or(|s| *s == r.schema))
        .filter(|r| {
            pattern
                .as_ref()
                .is_none_or(|p| crate::registry::like(p, &r.name.to_ascii_lowercase()))
        })
        .cloned()
        .collect();
    let rows = read_meta(&session.engine, &session.shared, |reader| {
        show_rows(&session.engine, reader, &selected, &all)
    });
    Ok(batch_output(typed_batch(SHOW_COLUMNS, rows)?))
}

fn describe_dynamic_table(
    session: &Session,
    name: &ObjectName,
) -> Result<QueryOutput, EngineError> {
    let qualified = resolve_name(session, name)?;
    let entry = require_dynamic(session, &qualified)?;
    let table_id = entry.table_id.ok_or_else(|| {
        EngineError::new("XX001", format!("dynamic table {qualified} has no storage"))
    })?;
    let schema = session
        .shared
        .with_txn(|t| t.table_schema(table_id))
        .map_err(map_df_error)?
        .map_err(EngineError::from)?;
    let mut rows: Vec<Vec<Option<String>>> = schema
        .fields()
        .iter()
        .filter(|f| f.name() != SOURCE_ROW_ID_COLUMN)
        .map(|f| {
            vec![
                Some(f.name().clone()),
                Some(crate::types::display_type(f)),
                Some("COLUMN".to_string()),
                Some(if f.is_nullable() { "Y" } else { "N" }.to_string()),
                entry.columns.get(f.name()).and_then(|c| c.comment.clone()),
                None,
            ]
        })
        .collect();
    let mut seen = HashSet::new();
    if let Some(def) = entry.dynamic() {
        for m in &def.models {
            if !seen.insert((m.model.clone(), m.version.clone())) {
                continue;
            }
            rows.push(vec![
                Some(m.model.to_string()),
                Some("MODEL".to_string()),
                Some("MODEL".to_string()),
                None,
                Some(if m.follows_default {
                    "follows the model's default version".to_string()
                } else {
                    "pinned version".to_string()
                }),
                Some(m.version.clone()),
            ]);
        }
    }
    Ok(crate::commands::text_rows(DESCRIBE_COLUMNS, rows))
}

/// Registers the dynamic-table monitoring functions into a session context:
/// `freshet_refresh_history('name')`, `freshet_dynamic_tables()` and the
/// functions Snowflake's `INFORMATION_SCHEMA` relations are rewritten into
/// (see [`freshet_sql::INFORMATION_SCHEMA_FUNCTIONS`]).
pub(crate) fn register_table_functions(
    ctx: &SessionContext,
    engine: &Arc<Engine>,
    shared: &Arc<SessionShared>,
) {
    let function = |kind: MonitorKind| {
        Arc::new(MonitorFunction {
            kind,
            engine: engine.clone(),
            shared: shared.clone(),
        })
    };
    ctx.register_udtf(
        "freshet_refresh_history",
        function(MonitorKind::LegacyHistory),
    );
    for (relation, name) in freshet_sql::INFORMATION_SCHEMA_FUNCTIONS {
        let kind = match *relation {
            "dynamic_table_refresh_history" => MonitorKind::History,
            "dynamic_table_graph_history" => MonitorKind::Graph,
            _ => MonitorKind::Tables,
        };
        ctx.register_udtf(name, function(kind));
    }
}

/// Reads catalog entries through the session's transaction, or the latest
/// snapshot when no statement is running.
fn read_meta<T>(engine: &Engine, shared: &SessionShared, f: impl FnOnce(&dyn MetaRead) -> T) -> T {
    let guard = shared.txn.lock();
    if let Some(txn) = guard.as_ref() {
        return f(txn);
    }
    drop(guard);
    f(&engine.store.snapshot())
}

fn mem_table(batch: RecordBatch) -> DfResult<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?))
}

/// Which monitoring relation a [`MonitorFunction`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MonitorKind {
    /// `freshet_refresh_history('name')`: one table's durable history.
    LegacyHistory,
    /// `DYNAMIC_TABLE_REFRESH_HISTORY`: durable history plus the refreshes
    /// executing now and the next scheduled ones.
    History,
    /// `DYNAMIC_TABLE_GRAPH_HISTORY`: the dependency graph.
    Graph,
    /// `DYNAMIC_TABLES` / `freshet_dynamic_tables()`: the SHOW rows.
    Tables,
}

impl MonitorKind {
    fn function_name(self) -> &'static str {
        match self {
            MonitorKind::LegacyHistory => "freshet_refresh_history",
            MonitorKind::History => "dynamic_table_refresh_history",
            MonitorKind::Graph => "dynamic_table_graph_history",
            MonitorKind::Tables => "dynamic_tables",
        }
    }
}

/// The arguments of a monitoring function: `'key', value` pairs (what the
/// dialect layer makes of Snowflake's `KEY => value`).
#[derive(Debug, Default)]
struct MonitorArgs {
    database: Option<String>,
    name: Option<String>,
    name_prefix: Option<String>,
    error_only: bool,
    result_limit: Option<usize>,
}

fn literal_text(expr: &DfExpr) -> Option<String> {
    match expr {
        DfExpr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s.clone()),
        _ => None,
    }
}

fn literal_int(expr: &DfExpr) -> Option<i64> {
    match expr {
        DfExpr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        DfExpr::Literal(ScalarValue::Int32(Some(v)), _) => Some(i64::from(*v)),
        DfExpr::Literal(ScalarValue::UInt64(Some(v)), _) => i64::try_from(*v).ok(),
        DfExpr::Cast(c) => literal_int(&c.expr),
        _ => None,
    }
}

fn literal_bool(expr: &DfExpr) -> Option<bool> {
    match expr {
        DfExpr::Literal(ScalarValue::Boolean(Some(b)), _) => Some(*b),
        _ => literal_text(expr).and_then(|t| match t.to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }),
    }
}

impl MonitorArgs {
    fn parse(kind: MonitorKind, exprs: &[DfExpr]) -> Result<MonitorArgs, EngineError> {
        let usage = |what: String| {
            EngineError::new(
                "42883",
                format!(
                    "{}: {what}; arguments are KEY => value pairs with keys {}",
                    kind.function_name(),
                    match kind {
                        MonitorKind::History | MonitorKind::LegacyHistory =>
                            "NAME, NAME_PREFIX, ERROR_ONLY, RESULT_LIMIT",
                        MonitorKind::Graph | MonitorKind::Tables => "NAME, NAME_PREFIX",
                    }
                ),
            )
        };
        let mut args = MonitorArgs::default();
        if kind == MonitorKind::LegacyHistory {
            return match exprs {
                [e] => {
                    args.name = Some(literal_text(e).ok_or_else(|| {
                        EngineError::new(
                            "42883",
                            "freshet_refresh_history takes one text literal: the dynamic table's name",
                        )
                    })?);
                    Ok(args)
                }
                _ => Err(EngineError::new(
                    "42883",
                    "freshet_refresh_history takes one text literal: the dynamic table's name",
                )),
            };
        }
        if !exprs.len().is_multiple_of(2) {
            return Err(usage("expected KEY => value pairs".into()));
        }
        for pair in exprs.chunks(2) {
            let key = literal_text(&pair[0])
                .ok_or_else(|| usage("argument keys must be names".into()))?
                .to_ascii_lowercase();
            let value = &pair[1];
            let bad_value =
                |what: &str| usage(format!("{} must be {what}", key.to_ascii_uppercase()));
            match (key.as_str(), kind) {
                ("database", _) => {
                    args.database = Some(literal_text(value).ok_or_else(|| bad_value("text"))?)
                }
                ("name", _) => {
                    args.name =
                        Some(literal_text(value).ok_or_else(|| bad_value("a text literal"))?)
                }
                ("name_prefix", _) => {
                    args.name_prefix =
                        Some(literal_text(value).ok_or_else(|| bad_value("a text literal"))?)
                }
                ("error_only", MonitorKind::History) => {
                    args.error_only = literal_bool(value).ok_or_else(|| bad_value("a boolean"))?
                }
                ("result_limit", MonitorKind::History) => {
                    let n = literal_int(value)
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| bad_value("an integer between 1 and 10000"))?;
                    args.result_limit = Some(n as usize);
                }
                (other, _) => {
                    return Err(usage(format!(
                        "unknown argument {}",
                        other.to_ascii_uppercase()
                    )))
                }
            }
        }
        Ok(args)
    }

    /// Resolves NAME against the database and the session's default schema.
    fn qualified_name(
        &self,
        database: &str,
        schema: &str,
    ) -> Result<Option<QualifiedName>, EngineError> {
        let Some(text) = &self.name else {
            return Ok(None);
        };
        let name_parts = freshet_sql::split_model_name(text)
            .map_err(|e| EngineError::new("42601", e.to_string()))?;
        let name = match name_parts.as_slice() {
            [n] => QualifiedName {
                database: database.to_string(),
                schema: schema.to_string(),
                name: n.clone(),
            },
            [s, n] => QualifiedName {
                database: database.to_string(),
                schema: s.clone(),
                name: n.clone(),
            },
            [d, s, n] => QualifiedName {
                database: d.clone(),
                schema: s.clone(),
                name: n.clone(),
            },
            _ => {
                return Err(EngineError::new(
                    "42601",
                    format!("invalid dynamic table name '{text}'"),
                ))
            }
        };
        Ok(Some(name))
    }
}

/// The monitoring table functions; see [`MonitorKind`].
#[derive(Debug)]
struct MonitorFunction {
    kind: MonitorKind,
    engine: Arc<Engine>,
    shared: Arc<SessionShared>,
}

impl TableFunctionImpl for MonitorFunction {
    fn call_with_args(&self, args: TableFunctionArgs) -> DfResult<Arc<dyn TableProvider>> {
        let parsed = MonitorArgs::parse(self.kind, args.exprs()).map_err(DataFusionError::from)?;
        let options = args.session().config_options();
        let database = parsed
            .database
            .clone()
            .unwrap_or_else(|| options.catalog.default_catalog.clone());
        let schema = options.catalog.default_schema.clone();
        let name = parsed
            .qualified_name(&database, &schema)
            .map_err(DataFusionError::from)?;
        let batch = read_meta(&self.engine, &self.shared, |reader| {
            let all = all_relations(reader)?;
            if let Some(name) = &name {
                match all.iter().find(|r| r.qualified() == *name) {
                    Some(e) if e.dynamic().is_some() => {}
                    Some(e) => return Err(not_dynamic(e)),
                    None => {
                        return Err(EngineError::new(
                            "42P01",
                            format!("dynamic table \"{}\" does not exist", name.name),
                        ))
                    }
                }
            }
            let selected: Vec<RelationEntry> = all
                .iter()
                .filter(|r| r.dynamic().is_some())
                .filter(|r| match &name {
                    Some(n) => r.qualified() == *n,
                    None => r.database == database,
                })
                .filter(|r| {
                    parsed
                        .name_prefix
                        .as_ref()
                        .is_none_or(|p| r.qualified().to_string().starts_with(p.as_str()))
                })
                .cloned()
                .collect();
            match self.kind {
                MonitorKind::Tables => typed_batch(
                    SHOW_COLUMNS,
                    show_rows(&self.engine, reader, &selected, &all),
                ),
                MonitorKind::Graph => typed_batch(GRAPH_COLUMNS, graph_rows(&selected, &all)),
                MonitorKind::History | MonitorKind::LegacyHistory => {
                    let rows = history_rows(
                        &self.engine,
                        reader,
                        &selected,
                        &all,
                        &parsed,
                        self.kind == MonitorKind::History,
                    )?;
                    typed_batch(HISTORY_COLUMNS, rows)
                }
            }
        })
        .map_err(DataFusionError::from)?;
        mem_table(batch)
    }
}

/// One refresh-history row (durable record or live EXECUTING / SCHEDULED).
struct HistoryRow {
    record: RefreshRecord,
    target_lag_secs: Option<u64>,
}

/// Refresh history rows of `tables`, oldest first. With `live`, refreshes
/// executing now (EXECUTING) and each scheduled table's next refresh
/// (SCHEDULED, with the time it must complete by) are included too.
fn history_rows(
    engine: &Arc<Engine>,
    reader: &dyn MetaRead,
    tables: &[RelationEntry],
    all: &[RelationEntry],
    args: &MonitorArgs,
    live: bool,
) -> Result<Vec<Vec<Cell>>, EngineError> {
    let mut rows: Vec<HistoryRow> = Vec::new();
    let lags = if live {
        effective_lags(all)
    } else {
        HashMap::new()
    };
    let running = executing().lock().clone();
    let engine_key = Arc::as_ptr(engine) as usize;
    for entry in tables {
        let Some(def) = entry.dynamic() else {
            continue;
        };
        let name = entry.qualified();
        let records: Vec<RefreshRecord> =
            catalog::list(reader, &history_prefix(&name)).map_err(catalog_err)?;
        rows.extend(records.into_iter().map(|record| HistoryRow {
            record,
            target_lag_secs: def.target_lag_secs,
        }));
        if !live {
            continue;
        }
        let pending =
            |state: &str, trigger: RefreshTrigger, start: Option<i64>, message: &str| HistoryRow {
                record: RefreshRecord {
                    name: name.clone(),
                    state: state.into(),
                    state_message: message.into(),
                    refresh_action: String::new(),
                    refresh_trigger: trigger.as_str().into(),
                    data_seq: None,
                    data_timestamp: None,
                    refresh_start_time: start.unwrap_or(i64::MIN),
                    refresh_end_time: i64::MIN,
                    completion_target: completion_target(def),
                    statistics: RefreshStatistics::default(),
                },
                target_lag_secs: def.target_lag_secs,
            };
        if let Some(e) = running.get(&(engine_key, name.clone())) {
            rows.push(pending("EXECUTING", e.trigger, Some(e.start), ""));
        } else if def.scheduling_state == RUNNING {
            if let Some(Some(lag)) = lags.get(&name) {
                let mut row = pending(
                    "SCHEDULED",
                    RefreshTrigger::Scheduled,
                    None,
                    "the next scheduled refresh; it completes by completion_target",
                );
                row.record.completion_target = def
                    .data_timestamp_micros
                    .map(|ts| ts.saturating_add(*lag))
                    .or(Some(now_micros()));
                rows.push(row);
            }
        }
    }
    if args.error_only {
        rows.retain(|r| {
            matches!(
                r.record.state.as_str(),
                "FAILED" | "UPSTREAM_FAILED" | "CANCELLED"
            )
        });
    }
    // Oldest first; live rows (no start yet) sort by when they are due.
    let order = |r: &HistoryRow| {
        if r.record.refresh_start_time == i64::MIN {
            r.record.completion_target.unwrap_or(i64::MAX)
        } else {
            r.record.refresh_start_time
        }
    };
    rows.sort_by(|a, b| {
        order(a)
            .cmp(&order(b))
            .then_with(|| a.record.name.to_string().cmp(&b.record.name.to_string()))
    });
    if let Some(limit) = args.result_limit {
        let excess = rows.len().saturating_sub(limit);
        rows.drain(..excess);
    }
    Ok(rows
        .into_iter()
        .map(
            |HistoryRow {
                 record: r,
                 target_lag_secs,
             }| {
                let statistics = serde_json::to_string(&r.statistics).unwrap_or_default();
                let time = |t: i64| (t != i64::MIN).then_some(t);
                vec![
                    Cell::Text(Some(r.name.name.clone())),
                    Cell::Text(Some(r.name.database.clone())),
                    Cell::Text(Some(r.name.schema.clone())),
                    Cell::Text(Some(r.name.to_string())),
                    Cell::Text(Some(r.state)),
                    Cell::Text((!r.state_message.is_empty()).then_some(r.state_message)),
                    Cell::Text((!r.refresh_action.is_empty()).then_some(r.refresh_action)),
                    Cell::Text(Some(r.refresh_trigger)),
                    Cell::Time(r.data_timestamp),
                    Cell::Time(time(r.refresh_start_time)),
                    Cell::Time(time(r.refresh_end_time)),
                    Cell::Time(r.completion_target),
                    Cell::Int(target_lag_secs.and_then(|s| i64::try_from(s).ok())),
                    Cell::Text(Some(statistics)),
                    Cell::Int(Some(r.statistics.num_inserted_rows as i64)),
                    Cell::Int(Some(r.statistics.num_deleted_rows as i64)),
                    Cell::Int(Some(r.statistics.num_source_rows_read as i64)),
                    Cell::Int(Some(r.statistics.num_model_rows_scored as i64)),
                    Cell::Int(Some(r.statistics.num_state_rows_read as i64)),
                ]
            },
        )
        .collect())
}

/// Graph rows: each dynamic table with its inputs, lag, query and state.
///
/// Only the current graph is kept, so every row is valid from the table's
/// creation with no end (`valid_to` is NULL).
fn graph_rows(tables: &[RelationEntry], all: &[RelationEntry]) -> Vec<Vec<Cell>> {
    let lags = effective_lags(all);
    tables
        .iter()
        .filter_map(|entry| {
            let def = entry.dynamic()?;
            let name = entry.qualified();
            let inputs: Vec<serde_json::Value> = def
                .sources
                .iter()
                .map(|source| {
                    let kind = match all
                        .iter()
                        .find(|r| r.qualified() == *source)
                        .map(|r| &r.kind)
                    {
                        Some(RelationKind::Table) => "TABLE",
                        Some(RelationKind::View { .. }) => "VIEW",
                        Some(RelationKind::DynamicTable(_)) => "DYNAMIC_TABLE",
                        None => "UNKNOWN",
                    };
                    serde_json::json!({ "name": source.to_string(), "kind": kind })
                })
                .collect();
            let state = serde_json::json!({
                "state": def.scheduling_state,
                "suspended_on": def.last_suspended_micros,
                "consecutive_failures": def.consecutive_failures,
            });
            Some(vec![
                Cell::Text(Some(entry.name.clone())),
                Cell::Text(Some(entry.database.clone())),
                Cell::Text(Some(entry.schema.clone())),
                Cell::Text(Some(name.to_string())),
                Cell::Text(Some(serde_json::Value::Array(inputs).to_string())),
                Cell::Text(Some(
                    if def.target_lag_secs.is_some() {
                        "USER_DEFINED"
                    } else {
                        "DOWNSTREAM"
                    }
                    .into(),
                )),
                Cell::Int(def.target_lag_secs.and_then(|s| i64::try_from(s).ok())),
                Cell::Int(lags.get(&name).copied().flatten().map(|us| us / 1_000_000)),
                Cell::Text(Some(def.query_text.clone())),
                Cell::Time(Some(entry.created_micros)),
                Cell::Time(None),
                Cell::Text(Some(state.to_string())),
                Cell::Text(Some(def.refresh_mode.clone())),
                Cell::Text(Some(def.refresh_mode_reason.clone())),
                Cell::Time(def.data_timestamp_micros),
            ])
        })
        .collect()
}

/// The columns SQL may see of a stored table whose last column is the hidden
/// [`SOURCE_ROW_ID_COLUMN`]; `None` when nothing is hidden.
pub(crate) fn hidden_column_projection(schema: &Schema) -> Option<Vec<usize>> {
    let last = schema.fields().last()?;
    (last.name() == SOURCE_ROW_ID_COLUMN).then(|| (0..schema.fields().len() - 1).collect())
}

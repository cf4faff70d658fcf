//! DataFusion catalog and table providers backed by Freshet's catalog and storage.
//!
//! DataFusion resolves names through `CatalogProviderList → CatalogProvider →
//! SchemaProvider → TableProvider`. Freshet implements each level over the
//! *current transaction of one session*, so every table a statement reads comes
//! from the same storage snapshot (plus the session's own uncommitted writes).
//! Databases map to DataFusion catalogs and schemas to schemas.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, SchemaProvider, Session as DfSession, TableProvider,
};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::TableType;
use datafusion::execution::session_state::SessionState;
use datafusion::logical_expr::{Expr, ExprSchemable, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use parking_lot::{Mutex, RwLock};

use freshet_catalog::{self as catalog, MetaRead, RelationEntry, RelationKind, SchemaEntry};
use freshet_storage::{TableId, Transaction};

/// The state a session's providers read through: the engine-wide store and the
/// session's current transaction.
pub(crate) struct SessionShared {
    /// The engine's store, for reads made when no statement is running.
    store: Arc<freshet_storage::Store>,
    /// The storage transaction every read of the current statement goes through.
    pub(crate) txn: Mutex<Option<Transaction>>,
    /// Set once the SessionContext exists, so views can be planned lazily.
    pub(crate) state: RwLock<Weak<parking_lot::RwLock<SessionState>>>,
    /// Schemas provided by code rather than the catalog (pg_catalog).
    pub(crate) virtual_schemas: RwLock<HashMap<String, Arc<dyn SchemaProvider>>>,
    /// Rows scanned and scored by this session's statements (refresh statistics).
    pub(crate) work: crate::work::WorkCounters,
    /// The session's settings by lower-case name, as `SHOW` and
    /// `current_setting()` show them.
    pub(crate) settings: RwLock<std::collections::BTreeMap<String, String>>,
    /// The role whose privileges every read is checked against: the
    /// session's user (a dynamic table's owner, for refreshes).
    pub(crate) user: String,
    /// The pid the wire gave the session's connection (`pg_backend_pid()`).
    pub(crate) backend_pid: crate::activity::BackendPid,
}

impl std::fmt::Debug for SessionShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionShared").finish_non_exhaustive()
    }
}

impl SessionShared {
    pub(crate) fn new(store: Arc<freshet_storage::Store>, user: String) -> Self {
        SessionShared {
            store,
            txn: Mutex::new(None),
            state: RwLock::new(Weak::new()),
            virtual_schemas: RwLock::new(HashMap::new()),
            work: Default::default(),
            settings: RwLock::new(Default::default()),
            user,
            backend_pid: Default::default(),
        }
    }

    /// Runs `f` with the current transaction, or with a fresh snapshot of the
    /// latest commit when no statement is running.
    ///
    /// The fallback matters because some tables read the catalog lazily, when
    /// their stream is first polled rather than when the plan is built:
    /// information_schema and pg_catalog (what psql's `\d` queries) do, and in
    /// autocommit mode the wire layer drains a result stream after the
    /// statement's own transaction has already ended.
    pub(crate) fn with_txn<T>(&self, f: impl FnOnce(&Transaction) -> T) -> DfResult<T> {
        let guard = self.txn.lock();
        match guard.as_ref() {
            Some(txn) => Ok(f(txn)),
            None => {
                drop(guard);
                let snapshot = self.store.begin();
                Ok(f(&snapshot))
            }
        }
    }
}

/// Catalog reads through a transaction.
pub(crate) struct TxnMeta<'a>(pub(crate) &'a Transaction);

impl MetaRead for TxnMeta<'_> {
    fn meta(&self, key: &str) -> Option<Vec<u8>> {
        self.0.get_meta(key)
    }
    fn meta_prefix(&self, prefix: &str) -> Vec<(String, Vec<u8>)> {
        self.0.scan_meta(prefix)
    }
}

fn catalog_err(e: catalog::CatalogError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// All databases, as DataFusion catalogs.
#[derive(Debug)]
pub(crate) struct DatabaseList {
    pub(crate) shared: Arc<SessionShared>,
}

impl CatalogProviderList for DatabaseList {
    fn register_catalog(
        &self,
        _name: String,
        _catalog: Arc<dyn CatalogProvider>,
    ) -> Option<Arc<dyn CatalogProvider>> {
        None
    }

    fn catalog_names(&self) -> Vec<String> {
        self.shared
            .with_txn(|t| {
                t.scan_meta("db/")
                    .into_iter()
                    .map(|(k, _)| k.trim_start_matches("db/").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn catalog(&self, name: &str) -> Option<Arc<dyn CatalogProvider>> {
        let exists = self
            .shared
            .with_txn(|t| t.get_meta(&catalog::database_key(name)).is_some())
            .unwrap_or(false);
        exists.then(|| {
            Arc::new(DatabaseCatalog {
                shared: self.shared.clone(),
                database: name.to_string(),
            }) as Arc<dyn CatalogProvider>
        })
    }
}

/// One database.
#[derive(Debug)]
pub(crate) struct DatabaseCatalog {
    shared: Arc<SessionShared>,
    database: String,
}

impl CatalogProvider for DatabaseCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .shared
            .with_txn(|t| {
                catalog::list::<SchemaEntry>(&TxnMeta(t), &catalog::schema_prefix(&self.database))
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.name)
                    .collect()
            })
            .unwrap_or_default();
        names.extend(self.shared.virtual_schemas.read().keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(s) = self.shared.virtual_schemas.read().get(name) {
            return Some(s.clone());
        }
        let exists = self
            .shared
            .with_txn(|t| {
                t.get_meta(&catalog::schema_key(&self.database, name))
                    .is_some()
            })
            .unwrap_or(false);
        exists.then(|| {
            Arc::new(FreshetSchema {
                shared: self.shared.clone(),
                database: self.database.clone(),
                schema: name.to_string(),
            }) as Arc<dyn SchemaProvider>
        })
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        // Only code-provided schemas (pg_catalog) are registered this way; user
        // schemas are created with CREATE SCHEMA through the catalog.
        Ok(self
            .shared
            .virtual_schemas
            .write()
            .insert(name.to_string(), schema))
    }
}

/// One schema of one database.
#[derive(Debug)]
pub(crate) struct FreshetSchema {
    shared: Arc<SessionShared>,
    database: String,
    schema: String,
}

#[async_trait]
impl SchemaProvider for FreshetSchema {
    fn table_names(&self) -> Vec<String> {
        self.shared
            .with_txn(|t| {
                catalog::list::<RelationEntry>(
                    &TxnMeta(t),
                    &catalog::relation_prefix(&self.database, Some(&self.schema)),
                )
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.name)
                .collect()
            })
            .unwrap_or_default()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let key = catalog::relation_key(&catalog::QualifiedName {
            database: self.database.clone(),
            schema: self.schema.clone(),
            name: name.to_string(),
        });
        let entry: Option<RelationEntry> = self
            .shared
            .with_txn(|t| catalog::get(&TxnMeta(t), &key))?
            .map_err(catalog_err)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        relation_provider(&self.shared, &entry).await.map(Some)
    }

    fn table_exist(&self, name: &str) -> bool {
        let key = catalog::relation_key(&catalog::QualifiedName {
            database: self.database.clone(),
            schema: self.schema.clone(),
            name: name.to_string(),
        });
        self.shared
            .with_txn(|t| t.get_meta(&key).is_some())
            .unwrap_or(false)
    }
}

/// Builds the provider for a catalog relation.
pub(crate) async fn relation_provider(
    shared: &Arc<SessionShared>,
    entry: &RelationEntry,
) -> DfResult<Arc<dyn TableProvider>> {
    match (&entry.kind, entry.table_id) {
        (RelationKind::View { query_text, .. }, _) => {
            let state = shared.state.read().upgrade().ok_or_else(|| {
                DataFusionError::Internal("session state is gone while planning a view".into())
            })?;
            let state = state.read().clone();
            let plan = crate::planning::plan_view_query(&state, query_text).await?;
            Ok(Arc::new(datafusion::catalog::view::ViewTable::new(
                plan,
                Some(query_text.clone()),
            )))
        }
        (_, Some(table_id)) => {
            let schema = shared
                .with_txn(|t| t.table_schema(table_id))?
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            // INCREMENTAL dynamic tables carry a hidden lineage column; SQL never sees it.
            let visible_columns = crate::dynamic::hidden_column_projection(&schema);
            let schema = match &visible_columns {
                Some(columns) => Arc::new(schema.project(columns)?),
                None => schema,
            };
            let defaults = column_defaults(shared, entry, &schema)?;
            Ok(Arc::new(StoredTable {
                shared: shared.clone(),
                name: entry.name.clone(),
                acl: entry.acl.clone(),
                table_id,
                schema,
                visible_columns,
                defaults,
                row_ids: false,
            }))
        }
        _ => Err(DataFusionError::Internal(format!(
            "relation {} has no storage",
            entry.name
        ))),
    }
}

/// Plans the DEFAULT expressions of a table's columns, so INSERT planning can
/// fill omitted columns.
fn column_defaults(
    shared: &Arc<SessionShared>,
    entry: &RelationEntry,
    schema: &SchemaRef,
) -> DfResult<HashMap<String, Expr>> {
    let mut defaults = HashMap::new();
    let with_default: Vec<(&String, &String)> = entry
        .columns
        .iter()
        .filter_map(|(name, info)| info.default_sql.as_ref().map(|sql| (name, sql)))
        .collect();
    if with_default.is_empty() {
        return Ok(defaults);
    }
    let Some(state) = shared.state.read().upgrade() else {
        return Ok(defaults);
    };
    let state = state.read().clone();
    let empty = datafusion::common::DFSchema::empty();
    for (name, sql) in with_default {
        let expr = state.create_logical_expr(sql, &empty)?;
        let expr = match schema.field_with_name(name) {
            Ok(field) => expr.cast_to(field.data_type(), &empty)?,
            Err(_) => expr,
        };
        defaults.insert(name.clone(), expr);
    }
    Ok(defaults)
}

/// A stored table (or dynamic table) read at the session's snapshot.
#[derive(Debug)]
pub(crate) struct StoredTable {
    shared: Arc<SessionShared>,
    /// The relation's name and privileges, as of planning: a statement
    /// reads a snapshot of the catalog, privileges included.
    name: String,
    acl: freshet_catalog::Acl,
    pub(crate) table_id: TableId,
    schema: SchemaRef,
    /// Storage columns to read when some are hidden (dynamic-table lineage).
    visible_columns: Option<Vec<usize>>,
    pub(crate) defaults: HashMap<String, Expr>,
    /// Whether `schema` ends with the storage row id column
    /// ([`StoredTable::with_row_ids`]).
    row_ids: bool,
}

#[async_trait]
impl TableProvider for StoredTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        // Dynamic tables are shown as base tables to tools; SHOW DYNAMIC TABLES
        // and DESCRIBE DYNAMIC TABLE tell the difference.
        TableType::Base
    }

    fn get_column_default(&self, column: &str) -> Option<&Expr> {
        self.defaults.get(column)
    }

    /// Filters are taken inexactly, so they also stay above the scan:
    /// equality on key columns serves point lookups (see
    /// [`crate::index_lookup`]), and filters of columns and constants let
    /// the scan skip evicted segments they rule out (see
    /// [`crate::segment_pruning`]).
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| {
                let key_lookup = self.visible_columns.is_none()
                    && datafusion::logical_expr::utils::split_conjunction(f)
                        .into_iter()
                        .any(|c| crate::index_lookup::key_equality(c).is_some());
                if key_lookup || crate::segment_pruning::offered(f) {
                    TableProviderFilterPushDown::Inexact
                } else {
                    TableProviderFilterPushDown::Unsupported
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        if !self.row_ids {
            crate::privileges::require(
                &self.shared,
                &self.shared.user,
                &self.name,
                &self.acl,
                freshet_catalog::TablePrivilege::Select,
            )
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        }
        if let Some(lookup) = self.index_lookup(projection, filters)? {
            return Ok(lookup);
        }
        let wanted: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // The row id column (last, if exposed) comes from storage after
        // the data columns.
        let row_id_at = self
            .row_ids
            .then(|| self.schema.fields().len().saturating_sub(1));
        let data: Vec<usize> = wanted
            .iter()
            .copied()
            .filter(|i| Some(*i) != row_id_at)
            .collect();
        let with_row_ids = row_id_at.is_some_and(|r| wanted.contains(&r));
        // Storage reads only the columns the plan needs: DataFusion's
        // projection, in terms of the stored columns.
        let stored: Vec<usize> = match &self.visible_columns {
            Some(visible) => data
                .iter()
                .map(|i| {
                    visible.get(*i).copied().ok_or_else(|| {
                        DataFusionError::Internal(format!("column #{i} of {} is hidden", self.name))
                    })
                })
                .collect::<DfResult<_>>()?,
            None => data.clone(),
        };
        let mut parts = self
            .shared
            .with_txn(|t| t.scan_parts(self.table_id, Some(&stored), with_row_ids))?
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        // Statistics are kept per storage column; the row id has none.
        let storage_position = |i: usize| match &self.visible_columns {
            _ if Some(i) == row_id_at => None,
            Some(visible) => visible.get(i).copied(),
            None => Some(i),
        };
        let pruned = crate::segment_pruning::prune(
            state,
            &self.schema,
            &storage_position,
            filters,
            &mut parts.cold,
        );
        let produced: Vec<usize> = data
            .iter()
            .copied()
            .chain(row_id_at.filter(|_| with_row_ids))
            .collect();
        let exec = crate::stored_scan::scan_exec(
            &self.name,
            Arc::new(self.schema.project(&produced)?),
            parts,
            pruned,
            state.config().target_partitions(),
            &self.shared,
        )?;
        if produced == wanted {
            return Ok(exec);
        }
        // The plan asked for the row id before a data column: reorder.
        let exprs = wanted
            .iter()
            .map(|w| {
                let at = produced.iter().position(|p| p == w).ok_or_else(|| {
                    DataFusionError::Internal(format!("column #{w} of {} was not read", self.name))
                })?;
                let name = self.schema.field(*w).name().clone();
                Ok(datafusion::physical_plan::projection::ProjectionExpr {
                    expr: Arc::new(datafusion::physical_expr::expressions::Column::new(
                        &name, at,
                    )),
                    alias: name,
                })
            })
            .collect::<DfResult<Vec<_>>>()?;
        Ok(Arc::new(
            datafusion::physical_plan::projection::ProjectionExec::try_new(exprs, exec)?,
        ))
    }
}

impl StoredTable {
    /// The table `table_id` (whose columns are `schema`, none hidden) with
    /// the storage row id as an extra last column, [`ROW_ID_COLUMN`], for
    /// UPDATE and DELETE to find the rows they change. Reads go through
    /// the same lazy scan and unique-index lookups as queries. It checks no
    /// privilege: the statement checked its own.
    ///
    /// [`ROW_ID_COLUMN`]: freshet_storage::ROW_ID_COLUMN
    pub(crate) fn with_row_ids(
        shared: &Arc<SessionShared>,
        name: &str,
        table_id: TableId,
        schema: &SchemaRef,
    ) -> StoredTable {
        let mut fields: Vec<_> = schema.fields().iter().cloned().collect();
        fields.push(Arc::new(datafusion::arrow::datatypes::Field::new(
            freshet_storage::ROW_ID_COLUMN,
            datafusion::arrow::datatypes::DataType::UInt64,
            false,
        )));
        StoredTable {
            shared: shared.clone(),
            name: name.to_string(),
            acl: freshet_catalog::Acl::default(),
            table_id,
            schema: Arc::new(datafusion::arrow::datatypes::Schema::new(fields)),
            visible_columns: None,
            defaults: HashMap::new(),
            row_ids: true,
        }
    }

    /// Whether the stored table has columns SQL never sees (a dynamic
    /// table's lineage).
    pub(crate) fn has_hidden_columns(&self) -> bool {
        self.visible_columns.is_some()
    }

    /// The table's columns as stored (all of them, when none are hidden).
    pub(crate) fn stored_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// A scan answered through a unique index (see
    /// [`crate::index_lookup`]), when `filters` compare an index's columns
    /// with constants and the index can answer for this transaction.
    fn index_lookup(
        &self,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> DfResult<Option<Arc<dyn ExecutionPlan>>> {
        if filters.is_empty() || self.visible_columns.is_some() {
            return Ok(None);
        }
        let storage_error = |e| DataFusionError::External(Box::new(e));
        let indexes = self
            .shared
            .with_txn(|t| t.unique_indexes(self.table_id))?
            .map_err(storage_error)?;
        let Some(lookup) = crate::index_lookup::plan(&self.schema, filters, &indexes) else {
            return Ok(None);
        };
        let found = self
            .shared
            .with_txn(|t| {
                if self.row_ids {
                    t.lookup_unique_with_row_ids(self.table_id, &lookup.columns, &lookup.keys, None)
                } else {
                    t.lookup_unique(self.table_id, &lookup.columns, &lookup.keys, None)
                }
            })?
            .map_err(storage_error)?;
        let Some(batches) = found else {
            return Ok(None);
        };
        if batches
            .iter()
            .any(|b| b.num_columns() != self.schema.fields().len())
        {
            // Not the columns this statement sees: scan instead.
            return Ok(None);
        }
        self.shared
            .work
            .add_scanned_rows(batches.iter().map(RecordBatch::num_rows).sum());
        let exec =
            MemorySourceConfig::try_new_exec(&[batches], self.schema.clone(), projection.cloned())?;
        Ok(Some(Arc::new(crate::index_lookup::IndexLookupExec::new(
            &lookup, exec,
        ))))
    }
}

/// Spreads the rows of `batches` evenly over `n` partitions so scans use
/// every core. Batches are cut (zero-copy slices) where a partition's share
/// ends: storage hands back a compacted table as a few large batches, and
/// dealing out whole batches left one partition, and one core, with nearly
/// all the rows.
pub(crate) fn split_partitions(batches: Vec<RecordBatch>, n: usize) -> Vec<Vec<RecordBatch>> {
    let n = n.max(1);
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let share = total.div_ceil(n).max(1);
    let mut partitions: Vec<Vec<RecordBatch>> = (0..n).map(|_| Vec::new()).collect();
    let (mut part, mut filled) = (0, 0);
    for batch in batches {
        let mut offset = 0;
        while offset < batch.num_rows() {
            // the last partition takes whatever is left
            let room = if part + 1 == n {
                usize::MAX
            } else {
                share - filled
            };
            let take = room.min(batch.num_rows() - offset);
            partitions[part].push(batch.slice(offset, take));
            offset += take;
            filled += take;
            if filled == share && part + 1 < n {
                part += 1;
                filled = 0;
            }
        }
    }
    partitions
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))])
            .expect("batch")
    }

    /// A large batch and a small one (a compacted table plus a recent
    /// insert) are spread evenly, every row exactly once, in order.
    #[test]
    fn partitions_get_even_shares_of_rows() {
        let parts = split_partitions(vec![batch(0..1000), batch(1000..1003)], 2);
        let rows: Vec<usize> = parts
            .iter()
            .map(|p| p.iter().map(RecordBatch::num_rows).sum())
            .collect();
        assert_eq!(rows, vec![502, 501]);
        let values: Vec<i64> = parts
            .iter()
            .flatten()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(values, (0..1003).collect::<Vec<_>>());

        let parts = split_partitions(vec![batch(0..3)], 4);
        assert_eq!(parts.iter().filter(|p| !p.is_empty()).count(), 3);
        assert!(split_partitions(Vec::new(), 2).iter().all(Vec::is_empty));
    }
}

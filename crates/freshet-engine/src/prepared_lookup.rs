//! Prepared point lookups that skip planning.
//!
//! `SELECT columns FROM t WHERE key = $1` over a unique index is the
//! statement applications prepare once and run most. Planning it through
//! DataFusion on every Execute (analysis, optimization, physical planning)
//! costs a millisecond; reading the row through the index costs
//! microseconds. So when a statement is prepared, [`PointLookup::recognize`]
//! matches its plan against exactly that shape and keeps what executing it
//! needs: the table, the index's key columns, where each key value comes
//! from, and the columns to return. [`PointLookup::run`] then reads the rows
//! through [`freshet_storage::Transaction::lookup_unique`] directly.
//!
//! It is a cache, never a second meaning. Every run checks that the name
//! still resolves, in the session's current schema, to the same table with
//! the same columns; takes a bound value as a key only when it converts to
//! the key column's type and back unchanged; and lets the index decline for
//! the transaction as a planned lookup would. Whenever anything differs,
//! `run` returns `None` and the statement is planned as usual, so the answer
//! is always the planned statement's answer.

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ScalarValue, TableReference};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, LogicalPlan, Operator};
use datafusion::physical_plan::memory::MemoryStream;

use freshet_catalog::{self as catalog, QualifiedName, RelationEntry};
use freshet_storage::TableId;

use crate::output::{QueryOutput, RowsCommand};
use crate::provider::{StoredTable, TxnMeta};
use crate::session::Session;
use crate::EngineError;

/// Where one key column's value comes from.
#[derive(Debug, Clone)]
enum KeyValue {
    /// The statement's `$n` (zero-based here).
    Parameter(usize),
    /// A constant written in the statement.
    Constant(ScalarValue),
}

/// A prepared statement recognized as a point lookup through a unique index.
#[derive(Debug, Clone)]
pub(crate) struct PointLookup {
    /// The table's name as written, resolved again at every run.
    table_ref: TableReference,
    table_id: TableId,
    /// The table's columns when the statement was prepared.
    table_schema: SchemaRef,
    /// The index's key columns (table positions, in key order), and the
    /// value compared with each.
    key_columns: Vec<usize>,
    key_values: Vec<KeyValue>,
    /// The returned columns (table positions).
    projection: Vec<usize>,
    /// The row description the statement was prepared with.
    output: SchemaRef,
}

impl PointLookup {
    /// The lookup `plan` (a prepared query's unoptimized logical plan)
    /// performs, if it is exactly `SELECT columns FROM table WHERE` one
    /// `column = $n | constant` per column of one of the table's unique
    /// indexes, described as `output`.
    pub(crate) fn recognize(
        session: &Session,
        plan: &LogicalPlan,
        output: &SchemaRef,
    ) -> Option<PointLookup> {
        let LogicalPlan::Projection(projection) = plan else {
            return None;
        };
        let LogicalPlan::Filter(filter) = projection.input.as_ref() else {
            return None;
        };
        let mut below = filter.input.as_ref();
        while let LogicalPlan::SubqueryAlias(alias) = below {
            below = alias.input.as_ref();
        }
        let LogicalPlan::TableScan(scan) = below else {
            return None;
        };
        if scan.projection.is_some() || !scan.filters.is_empty() || scan.fetch.is_some() {
            return None;
        }
        let provider = datafusion::datasource::source_as_provider(&scan.source).ok()?;
        let table = provider.downcast_ref::<StoredTable>()?;
        if table.has_hidden_columns() {
            return None;
        }
        let table_schema = table.stored_schema();
        let position = |name: &str| table_schema.index_of(name).ok();

        let mut returned = Vec::with_capacity(projection.expr.len());
        for expr in &projection.expr {
            let column = match expr {
                Expr::Column(c) => c,
                Expr::Alias(alias) => match alias.expr.as_ref() {
                    Expr::Column(c) => c,
                    _ => return None,
                },
                _ => return None,
            };
            returned.push(position(&column.name)?);
        }
        if output.fields().len() != returned.len()
            || output
                .fields()
                .iter()
                .zip(&returned)
                .any(|(f, &c)| f.data_type() != table_schema.field(c).data_type())
        {
            return None;
        }

        let mut compared: Vec<(usize, KeyValue)> = Vec::new();
        for conjunct in split_conjunction(&filter.predicate) {
            let (column, value) = key_comparison(conjunct)?;
            let column = position(&column)?;
            if compared.iter().any(|(c, _)| *c == column) {
                return None;
            }
            compared.push((column, value));
        }
        let indexes = session
            .shared
            .with_txn(|t| t.unique_indexes(table.table_id))
            .ok()?
            .ok()?;
        let index = indexes.iter().find(|index| {
            index.columns.len() == compared.len()
                && index
                    .columns
                    .iter()
                    .all(|c| compared.iter().any(|(k, _)| k == c))
        })?;
        let mut key_values = Vec::with_capacity(index.columns.len());
        for c in &index.columns {
            let (_, value) = compared.iter().find(|(k, _)| k == c)?;
            if let KeyValue::Constant(v) = value {
                if !comparable(&v.data_type(), table_schema.field(*c).data_type()) {
                    return None;
                }
            }
            key_values.push(value.clone());
        }
        Some(PointLookup {
            table_ref: scan.table_name.clone(),
            table_id: table.table_id,
            table_schema,
            key_columns: index.columns.clone(),
            key_values,
            projection: returned,
            output: output.clone(),
        })
    }

    /// Runs the lookup with `params` in the session's current transaction:
    /// the rows the planned statement would return, or `None` when the
    /// statement must be planned instead (the table or its columns changed,
    /// a value is not exactly a key, or the index cannot answer).
    pub(crate) fn run(
        &self,
        session: &Session,
        params: &[ScalarValue],
    ) -> Result<Option<QueryOutput>, EngineError> {
        let mut keys: Vec<ArrayRef> = Vec::with_capacity(self.key_values.len());
        let mut matches_nothing = false;
        for (value, &column) in self.key_values.iter().zip(&self.key_columns) {
            let value = match value {
                KeyValue::Parameter(i) => match params.get(*i) {
                    Some(v) => v,
                    None => return Ok(None),
                },
                KeyValue::Constant(v) => v,
            };
            let data_type = self.table_schema.field(column).data_type();
            if value.is_null() {
                // `key = NULL` is never true.
                matches_nothing = true;
                keys.push(datafusion::arrow::array::new_null_array(data_type, 1));
                continue;
            }
            let Some(key) = exact_key(value, data_type) else {
                return Ok(None);
            };
            match key.to_array() {
                Ok(array) => keys.push(array),
                Err(_) => return Ok(None),
            }
        }
        let (database, schema) = {
            let state = session.ctx.state_ref();
            let state = state.read();
            let options = state.config_options();
            (
                options.catalog.default_catalog.clone(),
                options.catalog.default_schema.clone(),
            )
        };
        let resolved = self.table_ref.clone().resolve(&database, &schema);
        let key = catalog::relation_key(&QualifiedName {
            database: resolved.catalog.to_string(),
            schema: resolved.schema.to_string(),
            name: resolved.table.to_string(),
        });
        let found = session
            .shared
            .with_txn(|t| {
                let entry: RelationEntry = catalog::get(&TxnMeta(t), &key).ok()??;
                if entry.table_id != Some(self.table_id) {
                    return None;
                }
                // Privileges are checked where a planned statement reads
                // (the table scan); the lookup answers only when no check
                // could fail.
                let user = &session.shared.user;
                if !entry.acl.allows(user, catalog::TablePrivilege::Select)
                    && !catalog::is_superuser(&TxnMeta(t), user).ok()?
                {
                    return None;
                }
                if *t.table_schema(self.table_id).ok()? != *self.table_schema {
                    return None;
                }
                if matches_nothing {
                    return Some(Ok(Some(Vec::new())));
                }
                Some(t.lookup_unique(
                    self.table_id,
                    &self.key_columns,
                    &keys,
                    Some(&self.projection),
                ))
            })
            .map_err(crate::planning::map_df_error)?;
        let Some(found) = found else {
            return Ok(None);
        };
        let Some(batches) = found? else {
            return Ok(None);
        };
        let mut rows = Vec::with_capacity(batches.len());
        for batch in batches {
            match RecordBatch::try_new(self.output.clone(), batch.columns().to_vec()) {
                Ok(batch) => rows.push(batch),
                // Not the columns the statement was prepared with.
                Err(_) => return Ok(None),
            }
        }
        session
            .shared
            .work
            .add_scanned_rows(rows.iter().map(RecordBatch::num_rows).sum());
        let stream = MemoryStream::try_new(rows, self.output.clone(), None)
            .map_err(crate::planning::map_df_error)?;
        Ok(Some(QueryOutput::Rows {
            schema: self.output.clone(),
            stream: Box::pin(stream),
            command: RowsCommand::Select,
        }))
    }
}

/// `column = $n` or `column = constant`, either way round.
fn key_comparison(expr: &Expr) -> Option<(String, KeyValue)> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::Eq,
        right,
    }) = expr
    else {
        return None;
    };
    let (column, other) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), other) | (other, Expr::Column(c)) => (c, other),
        _ => return None,
    };
    let value = match other {
        Expr::Placeholder(p) => {
            let n: usize = p.id.strip_prefix('$')?.parse().ok()?;
            KeyValue::Parameter(n.checked_sub(1)?)
        }
        Expr::Literal(v, _) => KeyValue::Constant(v.clone()),
        _ => return None,
    };
    Some((column.name.clone(), value))
}

/// Whether a value of type `value` compared with a key of type `key` is
/// compared by value, so that converting it exactly gives the same answer:
/// integers with integers, text with text, numerics with numerics, and
/// otherwise only the same type.
fn comparable(value: &DataType, key: &DataType) -> bool {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let decimal = |t: &DataType| matches!(t, DataType::Decimal128(_, _));
    (value.is_integer() && key.is_integer())
        || (text(value) && text(key))
        || (decimal(value) && decimal(key))
        || value == key
}

/// `value` as a key of `data_type`, when it converts to it and back
/// unchanged.
fn exact_key(value: &ScalarValue, data_type: &DataType) -> Option<ScalarValue> {
    if !comparable(&value.data_type(), data_type) {
        return None;
    }
    let key = value.cast_to(data_type).ok()?;
    (key.cast_to(&value.data_type()).ok()? == *value).then_some(key)
}

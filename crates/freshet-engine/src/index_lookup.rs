//! Point lookups through unique indexes: `WHERE id = 42` or
//! `WHERE id IN (1, 2, 3)` on a table whose PRIMARY KEY or UNIQUE
//! constraint covers exactly the compared columns reads the matching rows
//! through the index, in time proportional to the keys, not the table.
//!
//! [`StoredTable`](crate::provider::StoredTable) offers equality filters
//! to DataFusion as *inexact* pushdowns, so the filter stays in the plan
//! above the scan and the lookup only has to return a superset of the
//! answer (it returns exactly the answer). [`plan`] picks an index whose
//! columns are all compared with constants; the storage
//! ([`freshet_storage::Transaction::lookup_unique`]) answers as a filtered
//! scan would at the statement's snapshot, or declines, and the table is
//! scanned as before. EXPLAIN shows a lookup as [`IndexLookupExec`].
//!
//! Only key types whose equality is byte equality are looked up (integers,
//! numerics, text, dates, timestamps, booleans): a float's `0.0 = -0.0`
//! would not be.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};

use freshet_storage::UniqueIndexDef;

/// The most keys one lookup reads (the product of the IN lists of a
/// multi-column key); beyond it the table is scanned.
const MAX_KEYS: usize = 10_000;

/// A unique index and the keys to read through it.
pub(crate) struct Lookup {
    /// The index's name (`t_pkey`).
    pub(crate) index: String,
    /// The key columns' positions in the table, in key order.
    pub(crate) columns: Vec<usize>,
    /// One array per key column, of the column's type: the keys.
    pub(crate) keys: Vec<ArrayRef>,
}

/// `expr` as `column = constant`, `column IN (constants)`, or an OR of
/// those over one column (the form DataFusion gives a short IN list): the
/// column's name and the constants (NULLs left out: they equal nothing).
pub(crate) fn key_equality(expr: &Expr) -> Option<(String, Vec<ScalarValue>)> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => {
            let (column, mut values) = key_equality(left)?;
            let (other, more) = key_equality(right)?;
            if other != column {
                return None;
            }
            values.extend(more);
            Some((column, values))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) => match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c)) => {
                Some((c.name.clone(), non_null(vec![v.clone()])))
            }
            _ => None,
        },
        Expr::InList(list) if !list.negated => {
            let Expr::Column(c) = list.expr.as_ref() else {
                return None;
            };
            let values = list
                .list
                .iter()
                .map(|e| match e {
                    Expr::Literal(v, _) => Some(v.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some((c.name.clone(), non_null(values)))
        }
        _ => None,
    }
}

fn non_null(values: Vec<ScalarValue>) -> Vec<ScalarValue> {
    values.into_iter().filter(|v| !v.is_null()).collect()
}

/// Whether equality of `data_type` values is equality of their encodings.
fn indexable(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
            | DataType::Decimal128(_, _)
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Date32
            | DataType::Timestamp(_, _)
            | DataType::Boolean
    )
}

/// The lookup that answers `filters` (a scan's pushed-down conjuncts) over
/// a table of `schema` with `indexes`, if one does.
pub(crate) fn plan(
    schema: &SchemaRef,
    filters: &[Expr],
    indexes: &[UniqueIndexDef],
) -> Option<Lookup> {
    let mut constants: HashMap<String, Vec<ScalarValue>> = HashMap::new();
    for conjunct in filters.iter().flat_map(split_conjunction) {
        if let Some((column, values)) = key_equality(conjunct) {
            // The first comparison of a column is used; the filter above
            // the scan applies the others.
            constants.entry(column).or_insert(values);
        }
    }
    'indexes: for index in indexes {
        let mut keys = Vec::with_capacity(index.columns.len());
        let mut count = 1usize;
        for &c in &index.columns {
            let field = schema.fields().get(c)?;
            if !indexable(field.data_type()) {
                continue 'indexes;
            }
            let Some(values) = constants.get(field.name()) else {
                continue 'indexes;
            };
            count = count.saturating_mul(values.len());
            let mut cast = Vec::with_capacity(values.len());
            for v in values {
                // Only a constant that converts to the column's type and
                // back unchanged is a key; for any other (out of range,
                // rounded, unparsable) the scan and its filter decide.
                match v.cast_to(field.data_type()) {
                    Ok(key)
                        if !key.is_null()
                            && key.cast_to(&v.data_type()).ok() == Some(v.clone()) =>
                    {
                        cast.push(key)
                    }
                    _ => continue 'indexes,
                }
            }
            keys.push(cast);
        }
        if count > MAX_KEYS {
            continue;
        }
        // Every combination of the columns' constants is a key.
        let mut combinations: Vec<Vec<ScalarValue>> = vec![Vec::new()];
        for values in &keys {
            combinations = combinations
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut key = prefix.clone();
                        key.push(v.clone());
                        key
                    })
                })
                .collect();
        }
        let mut arrays = Vec::with_capacity(index.columns.len());
        for (k, &c) in index.columns.iter().enumerate() {
            let data_type = schema.field(c).data_type();
            let column: Vec<ScalarValue> = combinations.iter().map(|key| key[k].clone()).collect();
            let array = if column.is_empty() {
                datafusion::arrow::array::new_empty_array(data_type)
            } else {
                ScalarValue::iter_to_array(column).ok()?
            };
            arrays.push(array);
        }
        return Some(Lookup {
            index: index.name.clone(),
            columns: index.columns.clone(),
            keys: arrays,
        });
    }
    None
}

/// The rows a unique index lookup found (its input), shown as such in
/// EXPLAIN.
#[derive(Debug)]
pub(crate) struct IndexLookupExec {
    index: String,
    keys: usize,
    input: Arc<dyn ExecutionPlan>,
}

impl IndexLookupExec {
    pub(crate) fn new(lookup: &Lookup, input: Arc<dyn ExecutionPlan>) -> IndexLookupExec {
        IndexLookupExec {
            index: lookup.index.clone(),
            keys: lookup.keys.first().map_or(0, |k| k.len()),
            input,
        }
    }
}

impl DisplayAs for IndexLookupExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "IndexLookupExec: index={}, keys={}",
            self.index, self.keys
        )
    }
}

impl ExecutionPlan for IndexLookupExec {
    fn name(&self) -> &str {
        "IndexLookupExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.input.properties()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(IndexLookupExec {
                index: self.index.clone(),
                keys: self.keys,
                input,
            })),
            _ => Err(datafusion::common::DataFusionError::Internal(
                "IndexLookupExec takes one input".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        self.input.execute(partition, context)
    }
}

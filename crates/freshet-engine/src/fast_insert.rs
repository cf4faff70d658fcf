//! The direct path for `INSERT … VALUES` of literals and parameters.
//!
//! Most writes that arrive one row at a time look like
//! `INSERT INTO t (a, b, c) VALUES ($1, $2, 'x')`. Planning such a statement
//! with DataFusion (session-state clone, analyzer, optimizer, physical plan)
//! costs far more CPU than storing the row, so concurrent single-row writers
//! were bound by planning, not by the WAL. This module builds the row batch
//! straight from the statement instead.
//!
//! It only takes statements whose meaning is unambiguous without the planner:
//! every value is a literal, a negated number or a `$n` parameter, every
//! omitted column has no DEFAULT, and every value's type converts to its
//! column's type with a plain Arrow cast that DataFusion's planner would also
//! use (numbers into numeric columns, strings into text and date/time
//! columns). Anything else (expressions, defaults, json, bytea, interval,
//! numeric columns fed by strings, RETURNING) returns `None` and takes the
//! planned path, so both paths give the same rows and the same errors. The
//! batch is then conformed (casts, NOT NULL, `varchar(n)`) and written
//! exactly like a planned INSERT's.

use std::collections::HashSet;

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::sql::sqlparser::ast::{Expr, Insert, SetExpr, UnaryOperator, Value, Values};

use crate::dml::InsertTarget;
use crate::EngineError;

/// The VALUES rows of `insert` when it is `INSERT INTO t [(cols)] VALUES …`
/// with nothing else (no RETURNING, ON CONFLICT, WITH, ORDER BY or LIMIT).
fn plain_values(insert: &Insert) -> Option<&Values> {
    if insert.returning.is_some()
        || insert.overwrite
        || insert.partitioned.is_some()
        || !insert.after_columns.is_empty()
        || insert.on.is_some()
    {
        return None;
    }
    let source = insert.source.as_ref()?;
    if source.with.is_some()
        || source.order_by.is_some()
        || source.limit_clause.is_some()
        || source.fetch.is_some()
    {
        return None;
    }
    match source.body.as_ref() {
        SetExpr::Values(values) => Some(values),
        _ => None,
    }
}

/// Whether `insert` only writes literal and parameter rows, so running it
/// costs microseconds (it takes the direct path, or at worst plans a VALUES
/// list). The wire layer runs such statements on the connection's own
/// thread instead of handing them to the compute runtime.
pub(crate) fn is_lightweight(insert: &Insert) -> bool {
    plain_values(insert).is_some_and(|values| {
        values.rows.len() <= LIGHTWEIGHT_ROWS
            && values
                .rows
                .iter()
                .flat_map(|row| row.iter())
                .all(|expr| scalar(expr, None).is_some() || is_placeholder(expr))
    })
}

/// Up to this many VALUES rows count as lightweight.
const LIGHTWEIGHT_ROWS: usize = 64;

fn is_placeholder(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if matches!(v.value, Value::Placeholder(_)))
}

/// The rows of `insert` as a batch in the target's column order, or `None`
/// when the statement needs the planner.
pub(crate) fn values_batch(
    insert: &Insert,
    target: &InsertTarget,
    params: Option<&ParamValues>,
) -> Result<Option<RecordBatch>, EngineError> {
    let Some(values) = plain_values(insert) else {
        return Ok(None);
    };
    let fields = target.schema.fields();
    // Position in the table of each value in a row.
    let positions: Vec<usize> = if insert.columns.is_empty() {
        (0..fields.len()).collect()
    } else {
        let mut positions = Vec::with_capacity(insert.columns.len());
        let mut seen = HashSet::new();
        for column in &insert.columns {
            let [part] = column.0.as_slice() else {
                return Ok(None);
            };
            let Some(ident) = part.as_ident() else {
                return Ok(None);
            };
            let name = freshet_sql::normalize_ident(ident);
            let Some(position) = fields.iter().position(|f| *f.name() == name) else {
                return Ok(None);
            };
            if !seen.insert(position) {
                return Ok(None);
            }
            positions.push(position);
        }
        positions
    };
    // An omitted column must fill with NULL; one with a DEFAULT needs the planner.
    for (position, field) in fields.iter().enumerate() {
        if !positions.contains(&position) {
            let has_default = target
                .relation
                .columns
                .get(field.name())
                .is_some_and(|info| info.default_sql.is_some());
            if has_default {
                return Ok(None);
            }
        }
    }
    let mut columns: Vec<Vec<ScalarValue>> =
        vec![Vec::with_capacity(values.rows.len()); fields.len()];
    for row in &values.rows {
        if row.len() != positions.len() {
            return Ok(None);
        }
        for (expr, &position) in row.iter().zip(&positions) {
            let field = &fields[position];
            let Some(value) = scalar(expr, params) else {
                return Ok(None);
            };
            if crate::types::is_json(field) || !converts_plainly(&value, field.data_type()) {
                return Ok(None);
            }
            columns[position].push(value);
        }
    }
    let rows = values.rows.len();
    let mut arrays = Vec::with_capacity(fields.len());
    for (position, field) in fields.iter().enumerate() {
        let array = if positions.contains(&position) {
            let column = std::mem::take(&mut columns[position]);
            // Mixed literal types in one column (1 and 2.5) would need the
            // planner's common-type rules.
            let first_type = column
                .iter()
                .find(|v| !v.is_null())
                .map(ScalarValue::data_type);
            if let Some(first_type) = &first_type {
                if column
                    .iter()
                    .any(|v| !v.is_null() && v.data_type() != *first_type)
                {
                    return Ok(None);
                }
            }
            let column: Vec<ScalarValue> = match first_type {
                Some(t) => column
                    .into_iter()
                    .map(|v| {
                        if v.is_null() {
                            ScalarValue::try_from(&t)
                        } else {
                            Ok(v)
                        }
                    })
                    .collect::<Result<_, _>>()
                    .map_err(|e| EngineError::new("XX000", e.to_string()))?,
                None => column,
            };
            ScalarValue::iter_to_array(column)
                .map_err(|e| EngineError::new("XX000", e.to_string()))?
        } else {
            crate::dml::null_column(field, rows)
        };
        arrays.push(array);
    }
    // The batch carries the values' own types; the caller conforms it to the
    // table's (casts, NOT NULL, varchar(n)) like a planned INSERT's batches.
    let schema = std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new(
        arrays
            .iter()
            .zip(fields.iter())
            .map(|(a, f)| {
                datafusion::arrow::datatypes::Field::new(f.name(), a.data_type().clone(), true)
            })
            .collect::<Vec<_>>(),
    ));
    RecordBatch::try_new(schema, arrays)
        .map(Some)
        .map_err(|e| EngineError::new("XX000", e.to_string()))
}

/// A literal, negated number or bound parameter as a scalar.
fn scalar(expr: &Expr, params: Option<&ParamValues>) -> Option<ScalarValue> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => number(text, false),
            Value::SingleQuotedString(text) => Some(ScalarValue::Utf8(Some(text.clone()))),
            Value::Boolean(b) => Some(ScalarValue::Boolean(Some(*b))),
            Value::Null => Some(ScalarValue::Null),
            Value::Placeholder(p) => {
                let index: usize = p.strip_prefix('$')?.parse().ok()?;
                match params? {
                    ParamValues::List(list) => {
                        list.get(index.checked_sub(1)?).map(|v| v.value.clone())
                    }
                    ParamValues::Map(_) => None,
                }
            }
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(text, _) => number(text, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// An integer literal as Int64, anything else numeric as Float64.
fn number(text: &str, negative: bool) -> Option<ScalarValue> {
    let signed = if negative {
        format!("-{text}")
    } else {
        text.to_string()
    };
    if let Ok(i) = signed.parse::<i64>() {
        return Some(ScalarValue::Int64(Some(i)));
    }
    if signed.contains(['.', 'e', 'E']) {
        // Out of double's range: left to the planner, which raises 22003.
        return crate::float_input::parse_float8(&signed)
            .ok()
            .map(|f| ScalarValue::Float64(Some(f)));
    }
    None
}

/// Whether Arrow's cast from the value's type to the column's type means
/// what the planner's cast means (or no cast is needed).
fn converts_plainly(value: &ScalarValue, column: &DataType) -> bool {
    use DataType::*;
    let source = value.data_type();
    if source == Null || source == *column {
        return true;
    }
    // A double out of real's range is left to the planner's checked cast.
    if let (ScalarValue::Float64(Some(x)), Float32) = (value, column) {
        return crate::float_input::double_to_real(*x).is_ok();
    }
    matches!(
        (&source, column),
        (Int64, Int8 | Int16 | Int32 | Int64 | Float32 | Float64)
            | (Float64, Float32 | Float64)
            | (
                Int8 | Int16 | Int32,
                Int16 | Int32 | Int64 | Float32 | Float64
            )
            | (Float32, Float64)
            | (Utf8, Utf8 | LargeUtf8 | Utf8View | Date32 | Timestamp(_, _))
    )
}

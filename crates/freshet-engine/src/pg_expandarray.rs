//! `information_schema._pg_expandarray(array)`, which pgjdbc's
//! `DatabaseMetaData.getPrimaryKeys` and `getIndexInfo` call to turn
//! `pg_index.indkey` into one row per key column.
//!
//! In PostgreSQL it is a set-returning function of records `(x, n)`: each
//! element and its 1-based position. Called in a select list it multiplies
//! the rows, and two calls there run in step. DataFusion has no
//! set-returning functions in the select list, but its `unnest` does the
//! same thing (several in one select list are unnested in step), so
//! [`rewrite`] turns each call into `unnest(pg_expandarray_records(array))`,
//! where `pg_expandarray_records` ([`ExpandArrayRecords`]) builds the list
//! of `(x, n)` structs. `(…).x` and `(…).n` then read the struct's fields
//! (rewritten to `get_field`), as in PostgreSQL.
//!
//! Only calls in expressions are rewritten; `_pg_expandarray` in FROM is
//! not supported (it fails to plan with "function not found").

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int32Array, ListArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArguments, ObjectName, Statement, Value,
};

/// The name of the function [`rewrite`] calls.
const RECORDS: &str = "pg_expandarray_records";

/// Replaces each `[information_schema.]_pg_expandarray(a)` call of
/// `statement` with `unnest(pg_expandarray_records(a))`, and each field
/// access `(expr).name` with `get_field(expr, 'name')`: PostgreSQL's
/// syntax for a record's field, which DataFusion refuses on anything but
/// a column name (0A000), so rewriting it changes no answer.
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        match expr {
            Expr::Function(function) if is_expandarray(&function.name) => {
                if let Some(argument) = only_argument(function) {
                    *expr = freshet_sql::function_call(
                        "unnest",
                        vec![freshet_sql::function_call(RECORDS, vec![argument])],
                    );
                }
            }
            Expr::CompoundFieldAccess { root, access_chain }
                if matches!(root.as_ref(), Expr::Nested(_))
                    && access_chain
                        .iter()
                        .all(|a| matches!(a, AccessExpr::Dot(Expr::Identifier(_)))) =>
            {
                let mut field = root.as_ref().clone();
                for access in access_chain.iter() {
                    if let AccessExpr::Dot(Expr::Identifier(name)) = access {
                        let name = Expr::Value(
                            Value::SingleQuotedString(crate::names::ident(name)).into(),
                        );
                        field = freshet_sql::function_call("get_field", vec![field, name]);
                    }
                }
                *expr = field;
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether `name` is `_pg_expandarray`, bare or in information_schema.
fn is_expandarray(name: &ObjectName) -> bool {
    let parts = crate::names::parts(name);
    match parts.as_slice() {
        [function] => function == "_pg_expandarray",
        [schema, function] => schema == "information_schema" && function == "_pg_expandarray",
        _ => false,
    }
}

/// The one plain argument of a call, if it has exactly one.
fn only_argument(function: &Function) -> Option<Expr> {
    let FunctionArguments::List(list) = &function.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))] if list.clauses.is_empty() => {
            Some(argument.clone())
        }
        _ => None,
    }
}

/// Registers `pg_expandarray_records`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ExpandArrayRecords {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

/// `pg_expandarray_records(array)`: the array's elements as a list of
/// `(x, n)` structs, `n` counting from 1. NULL for a NULL array.
#[derive(Debug, PartialEq, Eq, Hash)]
struct ExpandArrayRecords {
    signature: Signature,
}

/// The struct fields of a record whose `x` is of type `element`.
fn record_fields(element: &DataType) -> Fields {
    Fields::from(vec![
        Field::new("x", element.clone(), true),
        Field::new("n", DataType::Int32, false),
    ])
}

/// The element type of a list type.
fn element_type(list: &DataType) -> DfResult<&DataType> {
    match list {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            Ok(item.data_type())
        }
        DataType::Null => Ok(&DataType::Null),
        other => Err(DataFusionError::Plan(format!(
            "function _pg_expandarray(anyarray) does not take {other}"
        ))),
    }
}

impl ScalarUDFImpl for ExpandArrayRecords {
    fn name(&self) -> &str {
        RECORDS
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let [list] = args else {
            return Err(DataFusionError::Plan(
                "_pg_expandarray takes one argument".into(),
            ));
        };
        let record = DataType::Struct(record_fields(element_type(list)?));
        Ok(DataType::List(Arc::new(Field::new("item", record, true))))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let [input] = arrays.as_slice() else {
            return Err(DataFusionError::Plan(
                "_pg_expandarray takes one argument".into(),
            ));
        };
        let element = element_type(input.data_type())?.clone();
        let input = datafusion::arrow::compute::cast(
            input,
            &DataType::List(Arc::new(Field::new("item", element.clone(), true))),
        )?;
        let lists = input.as_list::<i32>();
        let offsets = lists.offsets();
        let first = offsets.first().copied().unwrap_or(0);
        let last = offsets.last().copied().unwrap_or(0);
        let values = lists
            .values()
            .slice(first as usize, (last - first) as usize);
        let mut positions = Vec::with_capacity(values.len());
        for window in offsets.windows(2) {
            positions.extend(1..=(window[1] - window[0]));
        }
        let records = StructArray::try_new(
            record_fields(&element),
            vec![values, Arc::new(Int32Array::from(positions)) as ArrayRef],
            None,
        )?;
        let rebased = datafusion::arrow::buffer::OffsetBuffer::new(
            offsets.iter().map(|o| o - first).collect::<Vec<_>>().into(),
        );
        let out = ListArray::try_new(
            Arc::new(Field::new("item", records.data_type().clone(), true)),
            rebased,
            Arc::new(records),
            lists.nulls().cloned(),
        )?;
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

//! `jsonb || jsonb` as PostgreSQL answers it.
//!
//! Freshet keeps `jsonb` as text, so DataFusion planned `||` of two `jsonb`
//! values as text concatenation: `'{"a":1}'::jsonb || '{"b":2}'` gave
//! `{"a": 1}{"b": 2}`, which is not even JSON, where PostgreSQL merges the
//! objects into `{"a": 1, "b": 2}`. A wrong value, without an error.
//!
//! [`JsonbConcatenation`], an `AnalyzerRule` that runs after type coercion,
//! replaces `a || b` with `freshet_jsonb_concat(a, b)`
//! ([`crate::json_text::jsonb_concat`]) where PostgreSQL resolves `||` to
//! its `jsonb` operator: both sides `jsonb`, or one `jsonb` and the other a
//! string literal (an `unknown` PostgreSQL reads as `jsonb`, 22P02 if it is
//! not JSON). `jsonb || text` of a typed `text` stays text concatenation,
//! as in PostgreSQL; `json || json`, which PostgreSQL has no operator for,
//! is refused with its 42883.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    BinaryExpr, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::json_operands::{operand, Operand};
use crate::types::{json_field, JsonKind};
use crate::EngineError;

/// Name of the function `jsonb || jsonb` is rewritten to.
const JSONB_CONCAT: &str = "freshet_jsonb_concat";

/// Registers the rule and its function with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(udf().as_ref().clone());
    ctx.add_analyzer_rule(Arc::new(JsonbConcatenation));
}

fn udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(JsonbConcat {
            signature: Signature::exact(
                vec![DataType::Utf8, DataType::Utf8],
                Volatility::Immutable,
            ),
        }))
    })
    .clone()
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct JsonbConcatenation;

impl AnalyzerRule for JsonbConcatenation {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_jsonb_concatenation"
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::BinaryExpr(BinaryExpr {
        left,
        op: Operator::StringConcat,
        right,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    match (operand(left, schema), operand(right, schema)) {
        (Operand::Jsonb, Operand::Jsonb | Operand::Unknown)
        | (Operand::Unknown, Operand::Jsonb) => {
            let args = [left, right]
                .into_iter()
                .map(|arg| arg.as_ref().clone().cast_to(&DataType::Utf8, schema))
                .collect::<DfResult<Vec<_>>>()?;
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(udf(), args),
            )))
        }
        (Operand::Json, Operand::Json) => Err(DataFusionError::External(Box::new(
            EngineError::new("42883", "operator does not exist: json || json"),
        ))),
        _ => Ok(Transformed::no(expr)),
    }
}

/// `freshet_jsonb_concat(a, b)`: see the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonbConcat {
    signature: Signature,
}

impl ScalarUDFImpl for JsonbConcat {
    fn name(&self) -> &str {
        JSONB_CONCAT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn return_field_from_args(&self, _args: ReturnFieldArgs) -> DfResult<FieldRef> {
        Ok(Arc::new(json_field(JSONB_CONCAT, JsonKind::Jsonb, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [left, right] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{JSONB_CONCAT} takes two arguments"
                )));
            };
            let (left, right) = (left.as_string::<i32>(), right.as_string::<i32>());
            let mut out = Vec::with_capacity(left.len());
            for row in 0..left.len() {
                out.push(if left.is_null(row) || right.is_null(row) {
                    None
                } else {
                    Some(
                        crate::json_text::jsonb_concat(left.value(row), right.value(row))
                            .map_err(|e| DataFusionError::External(Box::new(e)))?,
                    )
                });
            }
            Ok(Arc::new(StringArray::from(out)) as ArrayRef)
        })
    }
}

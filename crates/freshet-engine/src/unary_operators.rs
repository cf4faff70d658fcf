//! PostgreSQL's prefix operators that DataFusion's SQL planner lacks.
//!
//! sqlparser reads `~ x` (bitwise not), `|/ x` (square root), `||/ x` (cube
//! root) and `@ x` (absolute value), and DataFusion refuses all four
//! ("Unsupported SQL unary operator"). [`rewrite`] writes each as the
//! function PostgreSQL's operator runs:
//!
//! * `|/ x` is `sqrt(x::float8)` and `||/ x` is `cbrt(x::float8)`:
//!   PostgreSQL has these operators for `double precision` only;
//! * `@ x` is `abs(x)`, of the operand's own type;
//! * `~ x` is [`BitwiseNot`], defined, as in PostgreSQL, for `smallint`,
//!   `integer` and `bigint`, and of the operand's type. Any other operand
//!   is 42883 (no such operator).
//!
//! Their operands are first regrouped as PostgreSQL groups them
//! ([`Regroup`]), which also mends `- INTERVAL '…'`.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::compute::kernels::bitwise::bitwise_not;
use datafusion::arrow::datatypes::{DataType, Int16Type, Int32Type, Int64Type};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::sql::sqlparser::ast::{
    visit_expressions_mut, BinaryOperator, CastKind, DataType as SqlType, Expr, Function,
    FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident, ObjectName,
    Statement, UnaryOperator, Value, VisitMut, VisitorMut,
};

use crate::EngineError;

/// Name of [`BitwiseNot`].
const BITWISE_NOT: &str = "freshet_bitwise_not";

/// Registers [`BitwiseNot`].
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(BitwiseNot {
        signature: Signature::user_defined(Volatility::Immutable),
    }));
}

/// Rewrites the prefix operators of `statement` (see the module docs).
pub(crate) fn rewrite(statement: &mut Statement) {
    let _ = statement.visit(&mut Regroup);
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::UnaryOp { op, expr: operand } = expr {
            let float8 = |operand: &Expr| Expr::Cast {
                kind: CastKind::DoubleColon,
                expr: Box::new(operand.clone()),
                data_type: SqlType::DoublePrecision,
                array: false,
                format: None,
            };
            let call = match op {
                UnaryOperator::BitwiseNot => Some((BITWISE_NOT, (**operand).clone())),
                UnaryOperator::PGAbs => Some(("abs", (**operand).clone())),
                UnaryOperator::PGSquareRoot => Some(("sqrt", float8(operand))),
                UnaryOperator::PGCubeRoot => Some(("cbrt", float8(operand))),
                _ => None,
            };
            if let Some((name, argument)) = call {
                *expr = function_call(name, argument);
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The prefix operators rewritten here.
fn is_ours(op: &UnaryOperator) -> bool {
    matches!(
        op,
        UnaryOperator::BitwiseNot
            | UnaryOperator::PGAbs
            | UnaryOperator::PGSquareRoot
            | UnaryOperator::PGCubeRoot
    )
}

/// Regroups what sqlparser reads differently from PostgreSQL:
///
/// * PostgreSQL's prefix operators bind more loosely than `+` and `-`
///   (`@ -3 + 10` is `@ (-3 + 10)`, 7), and sqlparser stops their operand
///   before them (`(@ -3) + 10`, 13). An addition or subtraction whose
///   leftmost operand is one of these operators becomes that operator
///   over the whole of it.
/// * `- INTERVAL '1 day 2 hours'` is planned by DataFusion by putting the
///   sign in front of the literal's text, which negates only its first
///   field (`-1 days +02:00:00`); parenthesized, the literal is negated as
///   a value (`-1 days -02:00:00`, as PostgreSQL gives).
struct Regroup;

impl VisitorMut for Regroup {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr: operand,
        } = expr
        {
            if matches!(operand.as_ref(), Expr::Interval(_)) {
                let interval = std::mem::replace(operand.as_mut(), Expr::value(Value::Null));
                **operand = Expr::Nested(Box::new(interval));
            }
        }
        if matches!(
            expr,
            Expr::BinaryOp {
                op: BinaryOperator::Plus | BinaryOperator::Minus,
                ..
            }
        ) && leftmost_prefix(expr).is_some()
        {
            let mut whole = std::mem::replace(expr, Expr::value(Value::Null));
            if let Some(op) = take_leftmost_prefix(&mut whole) {
                *expr = Expr::UnaryOp {
                    op,
                    expr: Box::new(whole),
                };
            }
        }
        ControlFlow::Continue(())
    }
}

/// The node at the end of `expr`'s chain of left operands of `+` and `-`.
fn leftmost_prefix(expr: &Expr) -> Option<&UnaryOperator> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus,
            ..
        } => leftmost_prefix(left),
        Expr::UnaryOp { op, .. } if is_ours(op) => Some(op),
        _ => None,
    }
}

/// Replaces the prefix operator [`leftmost_prefix`] finds by its operand,
/// returning the operator.
fn take_leftmost_prefix(expr: &mut Expr) -> Option<UnaryOperator> {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Plus | BinaryOperator::Minus,
            ..
        } => take_leftmost_prefix(left),
        Expr::UnaryOp { op, expr: operand } if is_ours(op) => {
            let op = *op;
            let operand = std::mem::replace(operand.as_mut(), Expr::value(Value::Null));
            *expr = operand;
            Some(op)
        }
        _ => None,
    }
}

/// `name(argument)`.
fn function_call(name: &str, argument: Expr) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: vec![FunctionArg::Unnamed(FunctionArgExpr::Expr(argument))],
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// PostgreSQL's `~` on an integer: every bit flipped, of the operand's
/// type. A NULL (or unknown) operand is an `integer`, as PostgreSQL
/// resolves `~ NULL`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct BitwiseNot {
    signature: Signature,
}

impl ScalarUDFImpl for BitwiseNot {
    fn name(&self) -> &str {
        BITWISE_NOT
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        match args {
            [DataType::Int16 | DataType::Int32 | DataType::Int64] => Ok(args.to_vec()),
            [DataType::Int8] => Ok(vec![DataType::Int16]),
            [DataType::Null] => Ok(vec![DataType::Int32]),
            [other] => Err(DataFusionError::from(EngineError::new(
                "42883",
                format!(
                    "operator does not exist: ~ {}",
                    crate::planning::sql_type_name(other)
                ),
            ))),
            _ => Err(DataFusionError::Internal("~ takes one operand".to_string())),
        }
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Int32))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let arrays = crate::udf_args::arrays(&args)?;
        let [operand] = arrays.as_slice() else {
            return Err(DataFusionError::Internal("~ takes one operand".to_string()));
        };
        use datafusion::arrow::array::AsArray;
        let flipped: ArrayRef = match operand.data_type() {
            DataType::Int16 => Arc::new(bitwise_not(operand.as_primitive::<Int16Type>())?),
            DataType::Int32 => Arc::new(bitwise_not(operand.as_primitive::<Int32Type>())?),
            DataType::Int64 => Arc::new(bitwise_not(operand.as_primitive::<Int64Type>())?),
            other => {
                return Err(DataFusionError::Internal(format!(
                    "~ of {other} was not coerced"
                )))
            }
        };
        Ok(ColumnarValue::Array(flipped))
    }
}

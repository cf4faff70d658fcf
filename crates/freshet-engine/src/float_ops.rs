//! Floating-point (and numeric rounding) operations as PostgreSQL computes them, where DataFusion's
//! answer differs without an error.
//!
//! [`PostgresFloatOps`], an `AnalyzerRule` that runs after type coercion,
//! replaces in every plan:
//!
//! * `ceil`, `floor` and `trunc` of a `numeric`, which keep its scale in
//!   DataFusion (`ceil(1.25)` printed `2.00`), with a numeric of scale 0.
//! * `round(numeric, n)` and `trunc(numeric, n)` with a constant `n`, whose
//!   scale is `n` in PostgreSQL (0 for a negative `n`): DataFusion kept the
//!   argument's scale for `trunc` (`trunc(2.345, 1)` printed `2.300`) and
//!   for a `round` to more decimals than the argument has (`round(2.345,
//!   5)` printed `2.345`, where PostgreSQL prints `2.34500`). The result is
//!   cast to that scale, which is exact: the digits dropped are zeros.
//! * `round(double precision)` (and `real`), which DataFusion rounds halves
//!   away from zero, with rounding halves to even, as PostgreSQL's `rint`
//!   does: `round(2.5::float8)` is 2.
//! * `+ - * / %` of two `double precision` (or two `real`) values with
//!   [`FloatArithmetic`], which raises PostgreSQL's errors where IEEE 754
//!   answers without one: 22012 (division_by_zero) for a zero divisor, and
//!   22003 for a finite result too large (`1e200 * 1e200` was `Infinity`) or
//!   a product or quotient too small to be anything but zero.
//! * casts from `double precision` to `real` with one that raises 22003 for
//!   a value out of `real`'s range (`1e39::float8::real` was `Infinity`).
//! * casts from text to `real` or `double precision` with
//!   [`crate::float_input`]'s, which raise 22003 for a number out of the
//!   type's range (`'1e400'::float8` was `Infinity`) and 22P02 for text that
//!   is not a number.
//! * `sum` and `avg` of `double precision` with [`crate::float_aggregates`]'s,
//!   which raise 22003 where a sum of finite values overflows to `Infinity`.
//! * those and the other float statistics (`covar_*`, `corr`, `regr_*`) as
//!   window functions with [`crate::float_frames`]'s, which aggregate each
//!   frame's rows as PostgreSQL does (DataFusion subtracted the rows leaving
//!   a moving frame, and lost precision without an error).
//! * `numeric / numeric`, which DataFusion computes to four more decimals
//!   than the dividend and truncates (`2/3.0` was `0.6666`), with a division
//!   rounded half away from zero, as PostgreSQL rounds, to at least 16 and
//!   up to 20 decimals ([`numeric_division_scale`]): `0.66666666666666666667`.
//! * `numeric * numeric` whose exact product needs more than 38 decimals
//!   (DataFusion refuses to plan it: the product of two quotients has 40),
//!   with a product computed exactly in 256 bits and rounded half away from
//!   zero to [`numeric_product_scale`] decimals. [`NumericProductPlanner`]
//!   does the same when the SQL is planned, for operands whose types are
//!   already known there (two `numeric(38,20)` columns).
//! * casts from `numeric` to `double precision` or `real`, which Arrow
//!   computes by dividing by a power of ten in floating point (`1e15::float8`
//!   was 999999999999999.9), with the correctly rounded conversion of the
//!   decimal's digits, as PostgreSQL's (which parses the numeric's text).
//!
//! As in [`crate::overflow`], the replacements are immutable functions, so
//! constants are folded through them by the optimizer.

use std::sync::{Arc, OnceLock};

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, PrimitiveArray,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    i256, ArrowPrimitiveType, DataType, Decimal128Type, Decimal256Type, DecimalType, Float32Type,
    Float64Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{BinaryExpr, Cast, ScalarFunction};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::float_domain::is_float;
use crate::float_input::{text_to_float_udf, FloatType};
use crate::EngineError;

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) -> DfResult<()> {
    use datafusion::execution::FunctionRegistry;
    ctx.add_analyzer_rule(Arc::new(PostgresFloatOps));
    // SessionContext shares its state between clones: this registers for `ctx`.
    let mut registry = ctx.clone();
    registry.register_expr_planner(Arc::new(NumericProductPlanner))
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct PostgresFloatOps;

impl AnalyzerRule for PostgresFloatOps {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_postgres_float_ops"
    }
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match &expr {
        Expr::AggregateFunction(_) => Ok(match crate::float_aggregates::checked(&expr, schema) {
            Some(checked) => Transformed::yes(checked),
            None => Transformed::no(expr),
        }),
        Expr::WindowFunction(_) => Ok(match crate::float_frames::frame_aggregate(&expr, schema) {
            Some(framed) => Transformed::yes(framed),
            None => Transformed::no(expr),
        }),
        Expr::ScalarFunction(call) if call.name() == "round" => match call.args.as_slice() {
            [x] if x.get_type(schema).is_ok_and(|t| is_float(&t)) => Ok(Transformed::yes(
                Expr::ScalarFunction(ScalarFunction::new_udf(
                    crate::overflow::round_for_integer_udf(),
                    vec![x.clone()],
                )),
            )),
            _ => Ok(match rounded_to_constant_scale(call, schema) {
                Some(rounded) => Transformed::yes(rounded),
                None => Transformed::no(expr),
            }),
        },
        Expr::ScalarFunction(call) if call.name() == "trunc" && call.args.len() == 2 => {
            Ok(match rounded_to_constant_scale(call, schema) {
                Some(rounded) => Transformed::yes(rounded),
                None => Transformed::no(expr),
            })
        }
        // ceil, floor and trunc of a numeric are integral numerics
        // (`ceil(1.25)` is 2, not 2.00).
        Expr::ScalarFunction(call)
            if matches!(call.name(), "ceil" | "floor" | "trunc") && call.args.len() == 1 =>
        {
            match call.args[0].get_type(schema) {
                Ok(DataType::Decimal128(precision, scale)) if scale > 0 => {
                    // ceil and floor may add an integer digit (`floor(-0.5)`
                    // is -1, `ceil(9.5)` 10), which DataFusion computes in
                    // the argument's own type: widen it by one digit first.
                    let widened = (precision + 1).min(38);
                    let call = if call.name() == "trunc" {
                        expr
                    } else {
                        let mut args = call.args.clone();
                        args[0] = Expr::Cast(Cast::new(
                            Box::new(args[0].clone()),
                            DataType::Decimal128(widened, scale),
                        ));
                        Expr::ScalarFunction(ScalarFunction::new_udf(call.func.clone(), args))
                    };
                    let integer_digits = (widened - u8::try_from(scale).unwrap_or(0)).max(1);
                    Ok(Transformed::yes(Expr::Cast(Cast::new(
                        Box::new(call),
                        DataType::Decimal128(integer_digits, 0),
                    ))))
                }
                _ => Ok(Transformed::no(expr)),
            }
        }
        // Float arithmetic raises PostgreSQL's errors (22012, 22003) where
        // IEEE 754 answers Infinity, 0 or NaN.
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if FloatOp::of(*op).is_some()
                && matches!(
                    (operand_type(left, schema), operand_type(right, schema)),
                    (Some(l), Some(r)) if is_float(&l) && l == r
                ) =>
        {
            let Some(op) = FloatOp::of(*op) else {
                return Ok(Transformed::no(expr));
            };
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(
                    float_arithmetic_udf(op),
                    vec![left.as_ref().clone(), right.as_ref().clone()],
                ),
            )))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) => {
            let (Ok(l), Ok(r)) = (left.get_type(schema), right.get_type(schema)) else {
                return Ok(Transformed::no(expr));
            };
            let udf = match (&l, &r) {
                (DataType::Decimal128(_, _), DataType::Decimal128(_, _)) => numeric_divide_udf(),
                _ => return Ok(Transformed::no(expr)),
            };
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(udf, vec![left.as_ref().clone(), right.as_ref().clone()]),
            )))
        }
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Multiply,
            right,
        }) => match (left.get_type(schema), right.get_type(schema)) {
            (Ok(l), Ok(r)) if product_needs_rounding(&l, &r) => Ok(Transformed::yes(
                numeric_multiply(left.as_ref().clone(), right.as_ref().clone()),
            )),
            _ => Ok(Transformed::no(expr)),
        },
        Expr::Cast(Cast { expr: inner, field }) if is_float(field.data_type()) => {
            let from = inner.get_type(schema);
            if let (Ok(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View), Some(ty)) =
                (&from, FloatType::of(field.data_type()))
            {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(text_to_float_udf(ty), vec![inner.as_ref().clone()]),
                )));
            }
            if matches!(from, Ok(DataType::Float64)) && field.data_type() == &DataType::Float32 {
                return Ok(Transformed::yes(Expr::ScalarFunction(
                    ScalarFunction::new_udf(double_to_real_udf(), vec![inner.as_ref().clone()]),
                )));
            }
            // A numeric literal of more than 38 digits (`1e-50`) is a
            // Decimal256.
            let Ok(DataType::Decimal128(_, _) | DataType::Decimal256(_, _)) = from else {
                return Ok(Transformed::no(expr));
            };
            let udf = match field.data_type() {
                DataType::Float32 => numeric_to_float_udf(FloatWidth::Real),
                _ => numeric_to_float_udf(FloatWidth::Double),
            };
            Ok(Transformed::yes(Expr::ScalarFunction(
                ScalarFunction::new_udf(udf, vec![inner.as_ref().clone()]),
            )))
        }
        _ => Ok(Transformed::no(expr)),
    }
}

/// The scale of `numeric(p1,s1) / numeric(p2,s2)`, whose result is a
/// `numeric(38, scale)` (the divisor's precision does not bound the quotient).
///
/// PostgreSQL picks a scale for each value, giving at least 16 significant
/// digits (`2/3.0` has 20 decimals, `200/3.0` 16). A column has one type, so
/// Freshet picks one scale from the operands' types: as many decimals as
/// leave room for the largest quotient the types allow, at least 16 (or the
/// operands' own scale, if larger) and at most 20. A quotient too large for
/// the 38 digits left is an error (22003), never a rounded answer.
pub(crate) fn numeric_division_scale(p1: u8, s1: i8, s2: i8) -> i8 {
    let (s1, s2) = (s1.max(0), s2.max(0));
    // |a / b| < 10^(p1 - s1) / 10^-s2: its integer digits.
    let integer_digits = i16::from(p1) - i16::from(s1) + i16::from(s2);
    let room = (38 - integer_digits).clamp(16, 20);
    let scale = room.max(i16::from(s1)).max(i16::from(s2)).min(38);
    i8::try_from(scale).unwrap_or(38)
}

fn numeric_divide_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(NumericDivide {
            signature: Signature::any(2, Volatility::Immutable),
        }))
    })
    .clone()
}

/// `freshet_numeric_divide(a, b)`: `a / b` for two numerics, rounded half
/// away from zero to [`numeric_division_scale`] decimals; 22012 for a zero
/// divisor, 22003 for a quotient past 38 digits.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericDivide {
    signature: Signature,
}

impl ScalarUDFImpl for NumericDivide {
    fn name(&self) -> &str {
        "freshet_numeric_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let ((p1, s1), (_, s2)) = decimal_operands(self.name(), args)?;
        Ok(DataType::Decimal128(38, numeric_division_scale(p1, s1, s2)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        decimal_pairs(self.name(), &args, |(p1, s1), (_, s2)| {
            let scale = numeric_division_scale(p1, s1, s2);
            // a / 10^s1 / (b / 10^s2) * 10^scale = a * 10^(scale + s2 - s1) / b
            let exponent = i32::from(scale) + i32::from(s2) - i32::from(s1);
            Ok((scale, move |a, b| divide_rounded(a, b, exponent)))
        })
    }
}

/// The (precision, scale) of both operands of a numeric-by-numeric
/// function `name`.
fn decimal_operands(name: &str, types: &[DataType]) -> DfResult<((u8, i8), (u8, i8))> {
    match types {
        [DataType::Decimal128(p1, s1), DataType::Decimal128(p2, s2)] => {
            Ok(((*p1, *s1), (*p2, *s2)))
        }
        other => Err(DataFusionError::Internal(format!("{name} on {other:?}"))),
    }
}

/// Evaluates a numeric-by-numeric function `name` over its two arguments:
/// `prepare` gets the operands' (precision, scale) once per batch and gives
/// the result's scale and the function of two non-NULL values; a NULL
/// operand gives NULL. The result is a `numeric(38, scale)`.
fn decimal_pairs<F>(
    name: &str,
    args: &ScalarFunctionArgs,
    prepare: impl FnOnce((u8, i8), (u8, i8)) -> DfResult<(i8, F)>,
) -> DfResult<ColumnarValue>
where
    F: Fn(i128, i128) -> DfResult<i128>,
{
    crate::udf_args::evaluate(&args.args, |arrays| {
        let [a, b] = arrays else {
            return Err(DataFusionError::Internal(format!(
                "{name} takes two arguments"
            )));
        };
        let (left, right) =
            decimal_operands(name, &[a.data_type().clone(), b.data_type().clone()])?;
        let (scale, f) = prepare(left, right)?;
        let (a, b) = (
            a.as_primitive::<Decimal128Type>(),
            b.as_primitive::<Decimal128Type>(),
        );
        let mut out = datafusion::arrow::array::Decimal128Builder::with_capacity(a.len());
        for i in 0..a.len() {
            if a.is_null(i) || b.is_null(i) {
                out.append_null();
            } else {
                out.append_value(f(a.value(i), b.value(i))?);
            }
        }
        Ok(Arc::new(out.finish().with_precision_and_scale(38, scale)?) as ArrayRef)
    })
}

fn numeric_overflow() -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::new(
        "22003",
        "numeric field overflow",
    )))
}

/// `a * 10^exponent / b`, rounded half away from zero, within 38 digits.
fn divide_rounded(a: i128, b: i128, exponent: i32) -> DfResult<i128> {
    if b == 0 {
        return Err(division_by_zero());
    }
    let overflow = numeric_overflow;
    let ten = i256::from_i128(10);
    let (numerator, divisor) = if exponent >= 0 {
        let power = ten
            .checked_pow(exponent.unsigned_abs())
            .ok_or_else(overflow)?;
        (
            i256::from_i128(a).checked_mul(power).ok_or_else(overflow)?,
            i256::from_i128(b),
        )
    } else {
        let power = ten
            .checked_pow(exponent.unsigned_abs())
            .ok_or_else(overflow)?;
        (
            i256::from_i128(a),
            i256::from_i128(b).checked_mul(power).ok_or_else(overflow)?,
        )
    };
    round_quotient(numerator, divisor)
}

/// `numerator / divisor` (a non-zero divisor), rounded half away from zero,
/// as PostgreSQL rounds numerics; 22003 past 38 digits.
fn round_quotient(numerator: i256, divisor: i256) -> DfResult<i128> {
    let overflow = numeric_overflow;
    let quotient = numerator.checked_div(divisor).ok_or_else(overflow)?;
    let remainder = numerator.checked_rem(divisor).ok_or_else(overflow)?;
    // Half away from zero: |2 * remainder| >= |divisor|.
    let twice = remainder
        .checked_abs()
        .and_then(|r| r.checked_mul(i256::from_i128(2)))
        .ok_or_else(overflow)?;
    let rounded = if twice >= divisor.checked_abs().ok_or_else(overflow)? {
        let away = if numerator.is_negative() != divisor.is_negative() {
            i256::from_i128(-1)
        } else {
            i256::from_i128(1)
        };
        quotient.checked_add(away).ok_or_else(overflow)?
    } else {
        quotient
    };
    let limit = i256::from_i128(10i128.pow(38));
    if rounded >= limit || rounded <= limit.wrapping_neg() {
        return Err(overflow());
    }
    rounded.to_i128().ok_or_else(overflow)
}

/// Whether `l * r` is a product of numerics whose exact scale (the sum of
/// theirs, as in PostgreSQL) does not fit in 38 digits.
fn product_needs_rounding(l: &DataType, r: &DataType) -> bool {
    matches!((l, r), (DataType::Decimal128(_, s1), DataType::Decimal128(_, s2))
        if i16::from(*s1).max(0) + i16::from(*s2).max(0) > 38)
}

/// The scale of `numeric(p1,s1) * numeric(p2,s2)` when `s1 + s2`, the exact
/// product's scale, exceeds 38: as many decimals as leave room for the
/// largest product the types allow, at least 20 (or either operand's own
/// scale, if larger). A product too large for what is left is an error
/// (22003), never a wrapped value.
pub(crate) fn numeric_product_scale(p1: u8, s1: i8, p2: u8, s2: i8) -> i8 {
    let (s1, s2) = (i16::from(s1.max(0)), i16::from(s2.max(0)));
    let integer_digits = (i16::from(p1) - s1).max(0) + (i16::from(p2) - s2).max(0);
    let scale = (38 - integer_digits)
        .max(20)
        .min(s1 + s2)
        .max(s1)
        .max(s2)
        .min(38);
    i8::try_from(scale).unwrap_or(38)
}

fn numeric_multiply(left: Expr, right: Expr) -> Expr {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let udf = UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(NumericMultiply {
            signature: Signature::any(2, Volatility::Immutable),
        }))
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(udf.clone(), vec![left, right]))
}

/// `freshet_numeric_multiply(a, b)`: `a * b` for two numerics whose exact
/// product has more than 38 decimals, rounded half away from zero to
/// [`numeric_product_scale`] decimals; 22003 past 38 digits.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericMultiply {
    signature: Signature,
}

impl ScalarUDFImpl for NumericMultiply {
    fn name(&self) -> &str {
        "freshet_numeric_multiply"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        let ((p1, s1), (p2, s2)) = decimal_operands(self.name(), args)?;
        Ok(DataType::Decimal128(
            38,
            numeric_product_scale(p1, s1, p2, s2),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        decimal_pairs(self.name(), &args, |(p1, s1), (p2, s2)| {
            let scale = numeric_product_scale(p1, s1, p2, s2);
            // a * b has scale s1 + s2; drop the decimals past `scale`.
            let dropped = (i32::from(s1) + i32::from(s2) - i32::from(scale)).max(0);
            let divisor = i256::from_i128(10)
                .checked_pow(dropped.unsigned_abs())
                .ok_or_else(numeric_overflow)?;
            Ok((scale, move |a: i128, b: i128| {
                // Two values below 10^38 multiply to below 10^76 < 2^255.
                let product = i256::from_i128(a)
                    .checked_mul(i256::from_i128(b))
                    .ok_or_else(numeric_overflow)?;
                round_quotient(product, divisor)
            }))
        })
    }
}

/// Plans `a * b` of two numerics whose exact product's scale exceeds 38 as
/// [`NumericMultiply`] when the SQL is planned: DataFusion's own planning of
/// the `*` fails there, before any analyzer rule runs.
#[derive(Debug)]
struct NumericProductPlanner;

impl datafusion::logical_expr::planner::ExprPlanner for NumericProductPlanner {
    fn plan_binary_op(
        &self,
        expr: datafusion::logical_expr::planner::RawBinaryExpr,
        schema: &DFSchema,
    ) -> DfResult<
        datafusion::logical_expr::planner::PlannerResult<
            datafusion::logical_expr::planner::RawBinaryExpr,
        >,
    > {
        use datafusion::logical_expr::planner::PlannerResult;
        if !matches!(
            expr.op,
            datafusion::sql::sqlparser::ast::BinaryOperator::Multiply
        ) {
            return Ok(PlannerResult::Original(expr));
        }
        match (expr.left.get_type(schema), expr.right.get_type(schema)) {
            (Ok(l), Ok(r)) if product_needs_rounding(&l, &r) => Ok(PlannerResult::Planned(
                numeric_multiply(expr.left, expr.right),
            )),
            _ => Ok(PlannerResult::Original(expr)),
        }
    }
}

/// The type of an operand of float arithmetic. An operand this rule already
/// rewrote has its first argument's type, found without asking the call for
/// its field: that names the whole subtree at every level of a long chain
/// (`x + x + …`), which made planning cubic in the chain's length.
fn operand_type(expr: &Expr, schema: &DFSchema) -> Option<DataType> {
    let mut expr = expr;
    loop {
        match expr {
            Expr::ScalarFunction(call) if call.func.inner().is::<FloatArithmetic>() => {
                expr = call.args.first()?;
            }
            _ => return expr.get_type(schema).ok(),
        }
    }
}

/// The function computing `op` on two floats of one type.
/// `round(numeric, n)` or `trunc(numeric, n)` with a constant `n`, cast to
/// the scale PostgreSQL gives it (see the module docs); `None` when the
/// call is not one, or already has that type.
fn rounded_to_constant_scale(call: &ScalarFunction, schema: &DFSchema) -> Option<Expr> {
    let [x, places] = call.args.as_slice() else {
        return None;
    };
    let Ok(DataType::Decimal128(precision, scale)) = x.get_type(schema) else {
        return None;
    };
    let places = match places {
        Expr::Cast(Cast { expr, .. }) => expr.as_ref(),
        other => other,
    };
    let places = match places {
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => *n,
        Expr::Literal(ScalarValue::Int32(Some(n)), _) => i64::from(*n),
        _ => return None,
    };
    let target_scale = places.clamp(0, 38);
    // round may carry into one more integer digit (`round(9.95, 1)` is 10.0).
    let integer_digits = i64::from(precision) - i64::from(scale) + 1;
    // A literal such as 0.001 is `numeric(1,3)`: at least one digit.
    let target_precision = (integer_digits + target_scale).max(1);
    if target_precision > 38 {
        // No decimal of that scale holds every value of the argument's type
        // (`trunc(x, 20)` of a `numeric(38,16)`): the cast could fail where
        // the call answers, so the result keeps DataFusion's type.
        return None;
    }
    let target = DataType::Decimal128(
        u8::try_from(target_precision).ok()?,
        i8::try_from(target_scale).ok()?,
    );
    let call = Expr::ScalarFunction(call.clone());
    if call.get_type(schema).ok()? == target {
        return None;
    }
    Some(Expr::Cast(Cast::new(Box::new(call), target)))
}

fn float_arithmetic_udf(op: FloatOp) -> Arc<ScalarUDF> {
    static UDFS: OnceLock<[Arc<ScalarUDF>; 5]> = OnceLock::new();
    let all = UDFS.get_or_init(|| {
        [
            FloatOp::Add,
            FloatOp::Subtract,
            FloatOp::Multiply,
            FloatOp::Quotient,
            FloatOp::Remainder,
        ]
        .map(|op| {
            Arc::new(ScalarUDF::new_from_impl(FloatArithmetic {
                op,
                signature: Signature::any(2, Volatility::Immutable),
            }))
        })
    });
    all[op as usize].clone()
}

/// What a [`FloatArithmetic`] computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FloatOp {
    Add = 0,
    Subtract = 1,
    Multiply = 2,
    /// `a / b`.
    Quotient = 3,
    /// `a % b` (PostgreSQL has no float `%`; a zero divisor is refused
    /// rather than answered `NaN`).
    Remainder = 4,
}

impl FloatOp {
    fn of(op: Operator) -> Option<FloatOp> {
        Some(match op {
            Operator::Plus => FloatOp::Add,
            Operator::Minus => FloatOp::Subtract,
            Operator::Multiply => FloatOp::Multiply,
            Operator::Divide => FloatOp::Quotient,
            Operator::Modulo => FloatOp::Remainder,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            FloatOp::Add => "freshet_float_add",
            FloatOp::Subtract => "freshet_float_subtract",
            FloatOp::Multiply => "freshet_float_multiply",
            FloatOp::Quotient => "freshet_float_divide",
            FloatOp::Remainder => "freshet_float_modulo",
        }
    }

    /// PostgreSQL's checks of `a op b = r` (`float8pl`, `float8mi`,
    /// `float8mul`, `float8div`), on the values widened to `f64`: a zero
    /// divisor, an infinite result of finite operands (overflow), and a zero
    /// result of a product or quotient that is not zero (underflow).
    fn check(self, a: f64, b: f64, r: f64) -> DfResult<()> {
        match self {
            FloatOp::Quotient if b == 0.0 && !a.is_nan() => return Err(division_by_zero()),
            FloatOp::Remainder if b == 0.0 => return Err(division_by_zero()),
            _ => {}
        }
        let overflow = r.is_infinite()
            && match self {
                FloatOp::Quotient => !a.is_infinite(),
                FloatOp::Remainder => false,
                _ => !a.is_infinite() && !b.is_infinite(),
            };
        if overflow {
            return Err(out_of_range("overflow"));
        }
        let underflow = r == 0.0
            && match self {
                FloatOp::Multiply => a != 0.0 && b != 0.0,
                FloatOp::Quotient => a != 0.0 && !b.is_infinite(),
                _ => false,
            };
        if underflow {
            return Err(out_of_range("underflow"));
        }
        Ok(())
    }

    fn apply<T: FloatValue>(self, a: T, b: T) -> T {
        match self {
            FloatOp::Add => a + b,
            FloatOp::Subtract => a - b,
            FloatOp::Multiply => a * b,
            FloatOp::Quotient => a / b,
            FloatOp::Remainder => a % b,
        }
    }
}

/// `f32` and `f64`, as [`FloatArithmetic`] computes with them.
trait FloatValue:
    Copy
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Rem<Output = Self>
{
    fn wide(self) -> f64;
}

impl FloatValue for f32 {
    fn wide(self) -> f64 {
        f64::from(self)
    }
}

impl FloatValue for f64 {
    fn wide(self) -> f64 {
        self
    }
}

/// `freshet_float_add(a, b)` … `freshet_float_modulo(a, b)`: `a op b` for
/// two floats of one type, raising PostgreSQL's errors (see
/// [`FloatOp::check`]) where IEEE 754 answers `Infinity`, `0` or `NaN`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FloatArithmetic {
    op: FloatOp,
    signature: Signature,
}

fn division_by_zero() -> DataFusionError {
    DataFusionError::External(Box::new(EngineError::new("22012", "division by zero")))
}

fn out_of_range(what: &str) -> DataFusionError {
    DataFusionError::External(Box::new(crate::float_domain::out_of_range(what)))
}

/// `op` over two float arrays of one length, checked where both are valid.
fn float_arrays<T>(op: FloatOp, a: &PrimitiveArray<T>, b: &PrimitiveArray<T>) -> DfResult<ArrayRef>
where
    T: ArrowPrimitiveType,
    T::Native: FloatValue,
{
    let nulls = NullBuffer::union(a.nulls(), b.nulls());
    let mut values = Vec::with_capacity(a.len());
    for (i, (x, y)) in a.values().iter().zip(b.values().iter()).enumerate() {
        let r = op.apply(*x, *y);
        if nulls.as_ref().is_none_or(|n| n.is_valid(i)) {
            op.check(x.wide(), y.wide(), r.wide())?;
        }
        values.push(r);
    }
    Ok(Arc::new(PrimitiveArray::<T>::new(values.into(), nulls)))
}

impl ScalarUDFImpl for FloatArithmetic {
    fn name(&self) -> &str {
        self.op.name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [first, _] => Ok(first.clone()),
            _ => Err(DataFusionError::Internal(format!(
                "{} takes two arguments",
                self.op.name()
            ))),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [a, b] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{} takes two arguments",
                    self.op.name()
                )));
            };
            match (a.data_type(), b.data_type()) {
                (DataType::Float64, DataType::Float64) => float_arrays(
                    self.op,
                    a.as_primitive::<Float64Type>(),
                    b.as_primitive::<Float64Type>(),
                ),
                (DataType::Float32, DataType::Float32) => float_arrays(
                    self.op,
                    a.as_primitive::<Float32Type>(),
                    b.as_primitive::<Float32Type>(),
                ),
                (l, r) => Err(DataFusionError::Internal(format!(
                    "{} on {l} and {r}",
                    self.op.name()
                ))),
            }
        })
    }
}

fn double_to_real_udf() -> Arc<ScalarUDF> {
    static UDF: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(DoubleToReal {
            signature: Signature::exact(vec![DataType::Float64], Volatility::Immutable),
        }))
    })
    .clone()
}

/// `freshet_float8_to_float4(x)`: `x::real` as PostgreSQL's `float84`
/// computes it, raising 22003 where a finite value becomes infinite
/// (overflow) or a value that is not zero becomes zero (underflow).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DoubleToReal {
    signature: Signature,
}

impl ScalarUDFImpl for DoubleToReal {
    fn name(&self) -> &str {
        "freshet_float8_to_float4"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [x] = arrays else {
                return Err(DataFusionError::Internal(
                    "freshet_float8_to_float4 takes one argument".into(),
                ));
            };
            Ok(crate::float_input::doubles_to_reals(x)?)
        })
    }
}

/// The float type a `numeric` is converted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FloatWidth {
    Real,
    Double,
}

fn numeric_to_float_udf(width: FloatWidth) -> Arc<ScalarUDF> {
    static REAL: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    static DOUBLE: OnceLock<Arc<ScalarUDF>> = OnceLock::new();
    let cell = match width {
        FloatWidth::Real => &REAL,
        FloatWidth::Double => &DOUBLE,
    };
    cell.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(NumericToFloat {
            signature: Signature::any(1, Volatility::Immutable),
            width,
        }))
    })
    .clone()
}

/// `freshet_numeric_to_float8(numeric)` / `freshet_numeric_to_float4`: the
/// float nearest to the decimal's exact value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct NumericToFloat {
    signature: Signature,
    width: FloatWidth,
}

/// Largest integer every float64 between 0 and it represents exactly.
const EXACT_F64_INTEGER: u128 = 1 << 53;

/// The double nearest to `value × 10^-scale`.
fn decimal_to_f64(value: i128, scale: i8) -> f64 {
    // Both operands exact and one IEEE division: correctly rounded.
    if value.unsigned_abs() <= EXACT_F64_INTEGER && (0..=15).contains(&scale) {
        return value as f64 / 10f64.powi(i32::from(scale));
    }
    // Rust's float parsing is correctly rounded.
    format!("{value}e{}", -i32::from(scale))
        .parse()
        .unwrap_or(f64::NAN)
}

/// The `real` nearest to `value × 10^-scale` (parsed directly, not through
/// a double, which could round twice), or 22003 where the value is too
/// large for a `real` or too small to be anything but zero, as PostgreSQL's
/// `numeric_float4` (which reads the numeric's text with `float4in`) says
/// it.
fn decimal_to_real(value: i128, scale: i8) -> Result<f32, EngineError> {
    real_of_digits(&value.to_string(), scale, || {
        Decimal128Type::format_decimal(value, 38, scale)
    })
}

/// The `real` nearest to `digits × 10^-scale` (`digits` an integer's
/// text), or 22003 as [`decimal_to_real`] says it, naming the value as
/// `shown` writes it.
fn real_of_digits(
    digits: &str,
    scale: i8,
    shown: impl FnOnce() -> String,
) -> Result<f32, EngineError> {
    let r: f32 = format!("{digits}e{}", -i32::from(scale))
        .parse()
        .unwrap_or(f32::NAN);
    let zero = digits.bytes().all(|b| b == b'0' || b == b'-');
    if r.is_infinite() || (r == 0.0 && !zero) {
        return Err(EngineError::new(
            "22003",
            format!("\"{}\" is out of range for type real", shown()),
        ));
    }
    Ok(r)
}

/// [`NumericToFloat`] of a `Decimal256` (a numeric of more than 38 digits).
fn decimal256_to_float(
    numbers: &ArrayRef,
    scale: i8,
    width: FloatWidth,
) -> Result<ArrayRef, EngineError> {
    let numbers = numbers.as_primitive::<Decimal256Type>();
    Ok(match width {
        FloatWidth::Double => Arc::new(
            numbers
                .iter()
                .map(|v| {
                    v.map(|v| {
                        format!("{v}e{}", -i32::from(scale))
                            .parse::<f64>()
                            .unwrap_or(f64::NAN)
                    })
                })
                .collect::<Float64Array>(),
        ) as ArrayRef,
        FloatWidth::Real => Arc::new(
            numbers
                .iter()
                .map(|v| {
                    v.map(|v| {
                        real_of_digits(&v.to_string(), scale, || {
                            Decimal256Type::format_decimal(v, 76, scale)
                        })
                    })
                    .transpose()
                })
                .collect::<Result<Float32Array, _>>()?,
        ) as ArrayRef,
    })
}

impl ScalarUDFImpl for NumericToFloat {
    fn name(&self) -> &str {
        match self.width {
            FloatWidth::Real => "freshet_numeric_to_float4",
            FloatWidth::Double => "freshet_numeric_to_float8",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(match self.width {
            FloatWidth::Real => DataType::Float32,
            FloatWidth::Double => DataType::Float64,
        })
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let [numbers] = arrays else {
                return Err(DataFusionError::Internal(format!(
                    "{} takes one argument",
                    self.name()
                )));
            };
            if let DataType::Decimal256(_, scale) = numbers.data_type() {
                return Ok(decimal256_to_float(numbers, *scale, self.width)?);
            }
            let DataType::Decimal128(_, scale) = numbers.data_type() else {
                return Err(DataFusionError::Internal(format!(
                    "{} on {}",
                    self.name(),
                    numbers.data_type()
                )));
            };
            let scale = *scale;
            let numbers = numbers.as_primitive::<Decimal128Type>();
            Ok(match self.width {
                FloatWidth::Double => Arc::new(
                    numbers
                        .iter()
                        .map(|v| v.map(|v| decimal_to_f64(v, scale)))
                        .collect::<Float64Array>(),
                ) as ArrayRef,
                FloatWidth::Real => Arc::new(
                    numbers
                        .iter()
                        .map(|v| v.map(|v| decimal_to_real(v, scale)).transpose())
                        .collect::<Result<Float32Array, _>>()?,
                ) as ArrayRef,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_division_rounds_half_away_from_zero() {
        // 2 / 3.0 to 20 decimals, as PostgreSQL prints it.
        assert_eq!(numeric_division_scale(10, 0, 1), 20);
        assert_eq!(
            divide_rounded(2, 30, 21).ok(),
            Some(66_666_666_666_666_666_667)
        );
        assert_eq!(
            divide_rounded(-2, 30, 21).ok(),
            Some(-66_666_666_666_666_666_667)
        );
        // 1/8 to two decimals: 0.125 rounds to 0.13, -0.125 to -0.13.
        assert_eq!(divide_rounded(100, 8, 0).ok(), Some(13));
        assert_eq!(divide_rounded(-100, 8, 0).ok(), Some(-13));
        assert_eq!(divide_rounded(100, -8, 0).ok(), Some(-13));
        assert_eq!(divide_rounded(99, 8, 0).ok(), Some(12));
        assert!(divide_rounded(1, 0, 0).is_err());
        // A quotient past 38 digits is an error, not a wrapped value.
        assert!(divide_rounded(10i128.pow(37), 1, 2).is_err());
        // Plain numeric (38,10) by itself: 16 decimals, its integer room
        // smaller than the worst case.
        assert_eq!(numeric_division_scale(38, 10, 10), 16);
        // A scale above 20 is kept.
        assert_eq!(numeric_division_scale(30, 25, 2), 25);
    }

    #[test]
    fn numeric_products_past_38_decimals_round_half_away_from_zero() {
        // Two quotients, numeric(38,20) each: 20 decimals.
        assert_eq!(numeric_product_scale(38, 20, 38, 20), 20);
        // Little integer room left, but an operand's own scale is kept.
        assert_eq!(numeric_product_scale(38, 30, 38, 30), 30);
        assert_eq!(numeric_product_scale(38, 38, 38, 38), 38);
        // 0.125 * 0.5 to two decimals: 0.0625 -> 0.06; 0.125 * 1.0 -> 0.13.
        assert_eq!(
            round_quotient(i256::from_i128(625), i256::from_i128(100)).ok(),
            Some(6)
        );
        assert_eq!(
            round_quotient(i256::from_i128(-1250), i256::from_i128(100)).ok(),
            Some(-13)
        );
        assert!(round_quotient(i256::from_i128(10i128.pow(38)), i256::from_i128(1)).is_err());
    }

    #[test]
    fn decimals_convert_to_the_nearest_float() {
        // The expected double is Rust's (correctly rounded) reading of the
        // same digits.
        let cases: [(i128, i8, &str); 7] = [
            (1, -15, "1e15"),
            (1, -100, "1e100"),
            (75_075_135_683_961_253, 6, "75075135683.961253"),
            (1, 1, "0.1"),
            (-25, 1, "-2.5"),
            (
                12_345_678_901_234_567_890_123,
                20,
                "123.45678901234567890123",
            ),
            (0, 10, "0"),
        ];
        for (value, scale, digits) in cases {
            let expected: f64 = digits.parse().expect("a number");
            assert_eq!(decimal_to_f64(value, scale), expected, "{value}e-{scale}");
        }
        assert_eq!(decimal_to_real(1, 1).ok(), Some(0.1f32));
        assert_eq!(
            decimal_to_real(1, 50).map_err(|e| e.sqlstate()),
            Err("22003")
        );
    }
}

//! Integer arithmetic that fails on overflow, as in PostgreSQL.
//!
//! DataFusion's `+`, `-`, `*` and unary minus wrap around on integer
//! overflow (`2147483647::int4 + 1` gives -2147483648), and `sum(bigint)`
//! accumulates with wrapping addition. PostgreSQL raises 22003
//! (`integer out of range`) instead. A wrapped number is a wrong answer
//! without an error, so every plan Freshet runs goes through
//! [`CheckedIntegerArithmetic`], an `AnalyzerRule` that runs after type
//! coercion and replaces
//!
//! * integer `+ - * / %` and unary minus with [`CheckedInteger`] calls, which
//!   compute with checked arithmetic and answer 22003 (and 22012 for a zero
//!   divisor). `%` by -1 is 0, as in PostgreSQL (not an overflow).
//! * `sum(bigint)` (also as a window function) with a sum over
//!   `numeric(38,0)` cast back to bigint: the total is exact, and a total
//!   outside bigint's range fails the cast with 22003. (PostgreSQL's
//!   `sum(bigint)` returns numeric and so would answer such a total; Freshet
//!   keeps bigint and refuses it instead of wrapping.)
//!
//! Why a logical rewrite and not DataFusion's `BinaryExpr::with_fail_on_overflow`
//! applied to the physical plan: constant subexpressions are folded by the
//! logical optimizer, which evaluates them with wrapping `BinaryExpr`s before
//! any physical plan exists, and projections merged by the optimizer turn
//! column arithmetic into constant arithmetic. An immutable function is
//! folded by the same optimizer through its own checked code; when it fails,
//! the optimizer leaves the call in place, so the error is raised at
//! execution only if the expression is evaluated (a `CASE` branch that is
//! never taken does not fail).
//!
//! * the operand of a cast from a fractional number to an integer type with
//!   the operand rounded as PostgreSQL rounds it (Arrow's cast truncates:
//!   `2.7::int` would be 2, not 3).
//!
//! `sum` over smallint and integer accumulates in bigint and cannot wrap
//! before 2^32 rows; it is left to DataFusion. Casts are DataFusion's
//! non-`safe` casts, which already fail on out-of-range values (see
//! [`cast_error`] for their SQLSTATE and message). `abs` of the most negative
//! integer already fails in DataFusion.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use datafusion::arrow::compute::{try_binary, try_unary};
use datafusion::arrow::datatypes::{
    ArrowNativeTypeOp, ArrowPrimitiveType, DataType, Int16Type, Int32Type, Int64Type, Int8Type,
    UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use datafusion::arrow::error::ArrowError;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{Column, DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::{
    AggregateFunction, Alias, BinaryExpr, Cast, ScalarFunction, WindowFunction,
};
use datafusion::logical_expr::{
    Aggregate, ColumnarValue, Expr, ExprSchemable, LogicalPlan, Operator, Projection,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility, Window,
    WindowFunctionDefinition,
};
use datafusion::optimizer::AnalyzerRule;

use crate::EngineError;

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(CheckedIntegerArithmetic));
}

/// The integer operations DataFusion would let wrap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum IntegerOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Negate,
}

impl IntegerOp {
    fn from_operator(op: Operator) -> Option<IntegerOp> {
        Some(match op {
            Operator::Plus => IntegerOp::Add,
            Operator::Minus => IntegerOp::Subtract,
            Operator::Multiply => IntegerOp::Multiply,
            Operator::Divide => IntegerOp::Divide,
            Operator::Modulo => IntegerOp::Modulo,
            _ => return None,
        })
    }

    /// The SQL operator, for the output column's name.
    fn symbol(self) -> &'static str {
        match self {
            IntegerOp::Add => "+",
            IntegerOp::Subtract | IntegerOp::Negate => "-",
            IntegerOp::Multiply => "*",
            IntegerOp::Divide => "/",
            IntegerOp::Modulo => "%",
        }
    }
}

/// A call of the checked-arithmetic function: `ops` applied left to right
/// to `args[0]`, each binary operation taking the next argument.
fn checked_call(ops: Vec<IntegerOp>, args: Vec<Expr>) -> Expr {
    let udf = ScalarUDF::new_from_impl(CheckedInteger {
        signature: Signature::any(args.len(), Volatility::Immutable),
        ops,
    });
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf), args))
}

/// The operations and arguments of `expr` when it is a checked-arithmetic
/// call.
fn as_checked_call(expr: &Expr) -> Option<(&[IntegerOp], &[Expr])> {
    let Expr::ScalarFunction(ScalarFunction { func, args }) = expr else {
        return None;
    };
    let checked = func.inner().downcast_ref::<CheckedInteger>()?;
    Some((&checked.ops, args))
}

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct CheckedIntegerArithmetic;

impl AnalyzerRule for CheckedIntegerArithmetic {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        let rewritten = plan.transform_up_with_subqueries(|plan| {
            checked_expressions(plan)?.transform_data(exact_bigint_sums)
        })?;
        // A checked operation may be NULL where the operator it replaces was
        // not (`id + 10` of a NOT NULL column): the schemas above say so
        // again, or a UNION over it failed to plan.
        if rewritten.transformed {
            crate::plan_rewrite::recompute_all(rewritten.data)
        } else {
            Ok(rewritten.data)
        }
    }

    fn name(&self) -> &str {
        "freshet_checked_integer_arithmetic"
    }
}

/// Replaces integer arithmetic in one node's expressions, keeping the
/// names of its output columns.
fn checked_expressions(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    crate::plan_rewrite::rewrite_node(plan, checked_expression)
}

fn is_integer(data_type: &DataType) -> bool {
    data_type.is_integer()
}

fn checked_expression(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    match &expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let Some(op) = IntegerOp::from_operator(*op) else {
                return Ok(Transformed::no(expr));
            };
            let (Ok(left_type), Ok(right_type)) = (left.get_type(schema), right.get_type(schema))
            else {
                return Ok(Transformed::no(expr));
            };
            if left_type != right_type || !is_integer(&left_type) {
                return Ok(Transformed::no(expr));
            }
            // A left-deep chain (`a + b - c * d`'s outer `+ -`) becomes one
            // call: nesting one call per operator makes the output name,
            // which DataFusion recomputes at every level, cost quadratic
            // time and more in the chain's length.
            let (mut ops, mut args) = match as_checked_call(left) {
                Some((ops, args)) => (ops.to_vec(), args.to_vec()),
                None => (Vec::new(), vec![left.as_ref().clone()]),
            };
            ops.push(op);
            args.push(right.as_ref().clone());
            Ok(Transformed::yes(checked_call(ops, args)))
        }
        Expr::Negative(inner) => {
            let Ok(inner_type) = inner.get_type(schema) else {
                return Ok(Transformed::no(expr));
            };
            if !inner_type.is_signed_integer() {
                return Ok(Transformed::no(expr));
            }
            Ok(Transformed::yes(checked_call(
                vec![IntegerOp::Negate],
                vec![inner.as_ref().clone()],
            )))
        }
        Expr::Cast(Cast { expr: inner, field }) if field.data_type().is_integer() => {
            let Ok(source) = inner.get_type(schema) else {
                return Ok(Transformed::no(expr));
            };
            if !matches!(
                source,
                DataType::Float32 | DataType::Float64 | DataType::Decimal128(_, _)
            ) {
                return Ok(Transformed::no(expr));
            }
            Ok(Transformed::yes(Expr::Cast(Cast {
                expr: Box::new(Expr::ScalarFunction(ScalarFunction::new_udf(
                    round_for_integer_udf(),
                    vec![inner.as_ref().clone()],
                ))),
                field: field.clone(),
            })))
        }
        _ => Ok(Transformed::no(expr)),
    }
}

/// `freshet_round_for_integer(x)`: rounds a fractional number the way
/// PostgreSQL does before converting it to an integer type: numeric halves
/// away from zero (`2.5::int` is 3), floating-point halves to even (`rint`).
/// Arrow's cast would truncate (`2.7::int` would be 2). Decimals come back
/// as `numeric(38,0)`, floats as themselves.
pub(crate) fn round_for_integer_udf() -> Arc<ScalarUDF> {
    static UDF: std::sync::OnceLock<Arc<ScalarUDF>> = std::sync::OnceLock::new();
    UDF.get_or_init(|| {
        Arc::new(ScalarUDF::new_from_impl(RoundForInteger {
            signature: Signature::any(1, Volatility::Immutable),
        }))
    })
    .clone()
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RoundForInteger {
    signature: Signature,
}

impl ScalarUDFImpl for RoundForInteger {
    fn name(&self) -> &str {
        "freshet_round_for_integer"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        match args {
            [DataType::Decimal128(_, _)] => Ok(DataType::Decimal128(38, 0)),
            [other] => Ok(other.clone()),
            _ => Err(DataFusionError::Internal(
                "freshet_round_for_integer takes one argument".into(),
            )),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::datatypes::{Decimal128Type, Float32Type, Float64Type};
        let [value] = args.args.as_slice() else {
            return Err(DataFusionError::Internal(
                "freshet_round_for_integer takes one argument".into(),
            ));
        };
        let (array, scalar) = match value {
            ColumnarValue::Scalar(s) => (s.to_array()?, true),
            ColumnarValue::Array(a) => (a.clone(), false),
        };
        let rounded: ArrayRef = match array.data_type() {
            DataType::Float64 => Arc::new(
                array
                    .as_primitive::<Float64Type>()
                    .unary::<_, Float64Type>(f64::round_ties_even),
            ),
            DataType::Float32 => Arc::new(
                array
                    .as_primitive::<Float32Type>()
                    .unary::<_, Float32Type>(f32::round_ties_even),
            ),
            // A negative scale (`1e10` is the digit 1 at scale -10) is
            // multiplied out, failing if it leaves numeric(38,0).
            DataType::Decimal128(_, scale) if *scale < 0 => {
                let factor = 10i128.checked_pow(u32::from(scale.unsigned_abs()));
                let scaled: PrimitiveArray<Decimal128Type> = array
                    .as_primitive::<Decimal128Type>()
                    .try_unary(|v: i128| {
                        factor.and_then(|f| v.checked_mul(f)).ok_or_else(|| {
                            ArrowError::ComputeError("numeric value out of range".into())
                        })
                    })
                    .map_err(|_| {
                        DataFusionError::External(Box::new(EngineError::new(
                            "22003",
                            "value out of range for an integer type",
                        )))
                    })?;
                Arc::new(scaled.with_precision_and_scale(38, 0)?)
            }
            DataType::Decimal128(_, scale) => {
                let divisor = 10i128.checked_pow(u32::try_from(*scale).unwrap_or(0));
                let divisor = divisor.unwrap_or(1).max(1);
                let rounded: PrimitiveArray<Decimal128Type> =
                    array.as_primitive::<Decimal128Type>().unary(|v: i128| {
                        let (quotient, remainder) = (v / divisor, v % divisor);
                        if remainder.unsigned_abs() * 2 >= divisor.unsigned_abs() {
                            quotient + v.signum()
                        } else {
                            quotient
                        }
                    });
                Arc::new(rounded.with_precision_and_scale(38, 0)?)
            }
            other => {
                return Err(DataFusionError::Internal(format!(
                    "freshet_round_for_integer on {other}"
                )))
            }
        };
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                &rounded, 0,
            )?))
        } else {
            Ok(ColumnarValue::Array(rounded))
        }
    }
}

/// The exact type `sum(bigint)` is computed in before the cast back.
const EXACT_SUM_TYPE: DataType = DataType::Decimal128(38, 0);

/// The argument of `sum(x)` (plain, windowed, aliased) when `x` is bigint.
fn bigint_sum_argument<'a>(expr: &'a Expr, input: &DFSchema) -> Option<&'a Expr> {
    let expr = match expr {
        Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
        other => other,
    };
    let (name, args) = match expr {
        Expr::AggregateFunction(AggregateFunction { func, params }) => (func.name(), &params.args),
        Expr::WindowFunction(window) => match &window.fun {
            WindowFunctionDefinition::AggregateUDF(func) => (func.name(), &window.params.args),
            WindowFunctionDefinition::WindowUDF(_) => return None,
        },
        _ => return None,
    };
    match args.as_slice() {
        [arg] if name == "sum" && arg.get_type(input).ok()? == DataType::Int64 => Some(arg),
        _ => None,
    }
}

/// `sum(x)` with `x` cast to the exact type.
fn exact_sum(expr: &Expr) -> Expr {
    let expr = match expr {
        Expr::Alias(Alias { expr, .. }) => expr.as_ref(),
        other => other,
    };
    let widen = |args: &[Expr]| -> Vec<Expr> {
        args.iter()
            .map(|a| Expr::Cast(Cast::new(Box::new(a.clone()), EXACT_SUM_TYPE)))
            .collect()
    };
    match expr {
        Expr::AggregateFunction(AggregateFunction { func, params }) => {
            let mut params = params.clone();
            params.args = widen(&params.args);
            Expr::AggregateFunction(AggregateFunction {
                func: func.clone(),
                params,
            })
        }
        Expr::WindowFunction(window) => {
            let mut window: WindowFunction = window.as_ref().clone();
            window.params.args = widen(&window.params.args);
            Expr::WindowFunction(Box::new(window))
        }
        other => other.clone(),
    }
}

/// Rewrites `sum(bigint)` in an Aggregate or Window node (see the module
/// docs). The node's output keeps its column names and types: a projection
/// above it casts the exact sums back to bigint.
fn exact_bigint_sums(plan: LogicalPlan) -> DfResult<Transformed<LogicalPlan>> {
    let (exprs, input, first_output) = match &plan {
        LogicalPlan::Aggregate(aggregate) => (
            &aggregate.aggr_expr,
            &aggregate.input,
            aggregate.schema.fields().len() - aggregate.aggr_expr.len(),
        ),
        LogicalPlan::Window(window) => (
            &window.window_expr,
            &window.input,
            window.schema.fields().len() - window.window_expr.len(),
        ),
        _ => return Ok(Transformed::no(plan)),
    };
    let changed: Vec<bool> = exprs
        .iter()
        .map(|e| bigint_sum_argument(e, input.schema()).is_some())
        .collect();
    if !changed.contains(&true) {
        return Ok(Transformed::no(plan));
    }
    let old_schema = plan.schema().clone();
    let new_exprs: Vec<Expr> = exprs
        .iter()
        .zip(&changed)
        .enumerate()
        .map(|(i, (e, &change))| {
            if change {
                let (qualifier, field) = old_schema.qualified_field(first_output + i);
                exact_sum(e).alias_qualified(qualifier.cloned(), field.name())
            } else {
                e.clone()
            }
        })
        .collect();
    let rewritten = match &plan {
        LogicalPlan::Aggregate(aggregate) => LogicalPlan::Aggregate(Aggregate::try_new(
            aggregate.input.clone(),
            aggregate.group_expr.clone(),
            new_exprs,
        )?),
        LogicalPlan::Window(window) => {
            LogicalPlan::Window(Window::try_new(new_exprs, window.input.clone())?)
        }
        _ => return Ok(Transformed::no(plan)),
    };
    let projection: Vec<Expr> = old_schema
        .iter()
        .enumerate()
        .map(|(i, (qualifier, field))| {
            let column = Expr::Column(Column::new(qualifier.cloned(), field.name()));
            let cast_back = i >= first_output && changed[i - first_output];
            if cast_back {
                Expr::Cast(Cast::new(Box::new(column), DataType::Int64))
                    .alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    Ok(Transformed::yes(LogicalPlan::Projection(
        Projection::try_new(projection, Arc::new(rewritten))?,
    )))
}

/// `freshet_int(a, b, …)`: integer arithmetic that fails with 22003
/// instead of wrapping. `ops` are applied left to right to the first
/// argument; each binary operation takes the next argument, unary minus
/// takes none.
#[derive(Debug, PartialEq, Eq, Hash)]
struct CheckedInteger {
    ops: Vec<IntegerOp>,
    signature: Signature,
}

impl ScalarUDFImpl for CheckedInteger {
    fn name(&self) -> &str {
        "freshet_int"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        args.first()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("freshet_int takes arguments".into()))
    }

    /// The name the operators would have had (`a + b * c`), so that the
    /// rewrite does not rename anything.
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        let mut args_iter = args.iter();
        let mut name = match args_iter.next() {
            Some(first) => first.schema_name().to_string(),
            None => return Ok(self.name().to_string()),
        };
        for op in &self.ops {
            if *op == IntegerOp::Negate {
                name = format!("(- {name})");
            } else if let Some(arg) = args_iter.next() {
                name = format!("{name} {} {}", op.symbol(), arg.schema_name());
            }
        }
        Ok(name)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let all_scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let mut arrays_iter = arrays.iter();
        let mut acc = arrays_iter
            .next()
            .cloned()
            .ok_or_else(|| DataFusionError::Internal("freshet_int takes arguments".into()))?;
        for op in &self.ops {
            let result = if *op == IntegerOp::Negate {
                negate(&acc)
            } else {
                let right = arrays_iter.next().ok_or_else(|| {
                    DataFusionError::Internal("freshet_int: too few arguments".into())
                })?;
                arithmetic(*op, &acc, right)
            };
            acc = result.map_err(|e| arithmetic_error(e, arrays[0].data_type()))?;
        }
        if all_scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&acc, 0)?))
        } else {
            Ok(ColumnarValue::Array(acc))
        }
    }
}

/// Calls `$f::<ArrowType>` for the integer type of `$array`.
macro_rules! by_integer_type {
    ($array:expr, $f:ident ( $($arg:expr),* )) => {
        match $array.data_type() {
            DataType::Int8 => $f::<Int8Type>($($arg),*),
            DataType::Int16 => $f::<Int16Type>($($arg),*),
            DataType::Int32 => $f::<Int32Type>($($arg),*),
            DataType::Int64 => $f::<Int64Type>($($arg),*),
            DataType::UInt8 => $f::<UInt8Type>($($arg),*),
            DataType::UInt16 => $f::<UInt16Type>($($arg),*),
            DataType::UInt32 => $f::<UInt32Type>($($arg),*),
            DataType::UInt64 => $f::<UInt64Type>($($arg),*),
            other => Err(ArrowError::InvalidArgumentError(format!(
                "checked integer arithmetic on {other}"
            ))),
        }
    };
}

fn arithmetic(op: IntegerOp, left: &ArrayRef, right: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    if left.data_type() != right.data_type() {
        return Err(ArrowError::InvalidArgumentError(format!(
            "checked integer arithmetic on {} and {}",
            left.data_type(),
            right.data_type()
        )));
    }
    by_integer_type!(left, typed_arithmetic(op, left, right))
}

fn typed_arithmetic<T: ArrowPrimitiveType>(
    op: IntegerOp,
    left: &ArrayRef,
    right: &ArrayRef,
) -> Result<ArrayRef, ArrowError> {
    let (l, r) = (left.as_primitive::<T>(), right.as_primitive::<T>());
    let result: PrimitiveArray<T> = match op {
        IntegerOp::Add => try_binary(l, r, |a: T::Native, b| a.add_checked(b))?,
        IntegerOp::Subtract => try_binary(l, r, |a: T::Native, b| a.sub_checked(b))?,
        IntegerOp::Multiply => try_binary(l, r, |a: T::Native, b| a.mul_checked(b))?,
        IntegerOp::Divide => try_binary(l, r, |a: T::Native, b| a.div_checked(b))?,
        // The only overflow of a remainder is MIN % -1, which PostgreSQL
        // answers with 0.
        IntegerOp::Modulo => {
            try_binary(l, r, |a: T::Native, b: T::Native| match a.mod_checked(b) {
                Err(ArrowError::ArithmeticOverflow(_)) if !b.is_zero() => Ok(T::Native::ZERO),
                other => other,
            })?
        }
        IntegerOp::Negate => try_unary(l, |a: T::Native| a.neg_checked())?,
    };
    Ok(Arc::new(result))
}

fn negate(value: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    by_integer_type!(value, typed_arithmetic(IntegerOp::Negate, value, value))
}

/// The PostgreSQL name of an integer type, for "… out of range".
pub(crate) fn integer_type_name(data_type: &DataType) -> &'static str {
    match data_type {
        DataType::Int16 => "smallint",
        DataType::Int32 => "integer",
        DataType::Int64 => "bigint",
        DataType::Int8 => "\"char\"",
        _ => "value",
    }
}

fn arithmetic_error(error: ArrowError, data_type: &DataType) -> DataFusionError {
    let error = match error {
        ArrowError::DivideByZero => EngineError::new("22012", "division by zero"),
        ArrowError::ArithmeticOverflow(_) => EngineError::new(
            "22003",
            format!("{} out of range", integer_type_name(data_type)),
        ),
        other => return DataFusionError::ArrowError(Box::new(other), None),
    };
    DataFusionError::External(Box::new(error))
}

/// The SQLSTATE and PostgreSQL-style message for Arrow's failed cast
/// `message`, when it is a number out of its type's range: Arrow says
/// "Can't cast value 300 to type Int16" where PostgreSQL says "smallint out
/// of range", and "Cannot cast string '99999999999' to value of Int32 type"
/// where PostgreSQL says `value "99999999999" is out of range for type
/// integer` (22003, not 22P02, since the text is a well-formed integer).
pub(crate) fn cast_error(message: &str) -> Option<EngineError> {
    let type_name = |arrow: &str| -> Option<&'static str> {
        Some(match arrow {
            "Int16" => "smallint",
            "Int32" => "integer",
            "Int64" => "bigint",
            _ => return None,
        })
    };
    // A value with more integer digits than its numeric(p, s) allows:
    // "12345.00 is too large to store in a Decimal128 of precision 5".
    if let Some((_, rest)) = message
        .split_once(" is too large to store in a Decimal128 of precision ")
        .or_else(|| message.split_once(" is too small to store in a Decimal128 of precision "))
    {
        let precision = rest.split(|c: char| !c.is_ascii_digit()).next()?;
        return Some(EngineError::new(
            "22003",
            format!(
                "numeric field overflow: a value does not fit numeric of precision {precision}"
            ),
        ));
    }
    // abs() of the most negative integer: "Int32Array overflow on abs(…)".
    if let Some((head, _)) = message.split_once("Array overflow on abs(") {
        let arrow = head.rsplit(|c: char| !c.is_ascii_alphanumeric()).next()?;
        return Some(EngineError::new(
            "22003",
            format!("{} out of range", type_name(arrow)?),
        ));
    }
    // An exact sum cast back to bigint: "value of 1234 is out of range Int64".
    if let Some(rest) = message.split("is out of range ").nth(1) {
        let target = rest.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
        return Some(EngineError::new(
            "22003",
            format!("{} out of range", type_name(target)?),
        ));
    }
    if let Some(rest) = message.split("Can't cast value ").nth(1) {
        let target = rest.split(" to type ").nth(1)?;
        let target = target.split(|c: char| !c.is_ascii_alphanumeric()).next()?;
        return Some(EngineError::new(
            "22003",
            format!("{} out of range", type_name(target)?),
        ));
    }
    if let Some(rest) = message.split("Cannot cast string '").nth(1) {
        let (text, tail) = rest.rsplit_once("' to value of ")?;
        let target = tail.split(' ').next()?;
        let type_name = type_name(target)?;
        let digits = text.trim();
        let digits = digits.strip_prefix(['-', '+']).unwrap_or(digits);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Some(EngineError::new(
                "22003",
                format!("value \"{text}\" is out of range for type {type_name}"),
            ));
        }
        return Some(EngineError::new(
            "22P02",
            format!("invalid input syntax for type {type_name}: \"{text}\""),
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int16Array, Int32Array, Int64Array};

    fn sqlstate(e: DataFusionError) -> String {
        match e {
            DataFusionError::External(inner) => inner
                .downcast_ref::<EngineError>()
                .map(|e| format!("{} {}", e.sqlstate(), e))
                .unwrap_or_default(),
            other => other.to_string(),
        }
    }

    fn run(op: IntegerOp, left: ArrayRef, right: ArrayRef) -> Result<ArrayRef, String> {
        arithmetic(op, &left, &right).map_err(|e| sqlstate(arithmetic_error(e, left.data_type())))
    }

    #[test]
    fn overflow_is_22003_with_postgres_wording() {
        let max = Arc::new(Int32Array::from(vec![i32::MAX])) as ArrayRef;
        let one = Arc::new(Int32Array::from(vec![1])) as ArrayRef;
        assert_eq!(
            run(IntegerOp::Add, max.clone(), one.clone()).unwrap_err(),
            "22003 integer out of range"
        );
        let small = Arc::new(Int16Array::from(vec![i16::MIN])) as ArrayRef;
        assert_eq!(
            negate(&small).map_err(|e| sqlstate(arithmetic_error(e, &DataType::Int16))),
            Err("22003 smallint out of range".to_string())
        );
        let big = Arc::new(Int64Array::from(vec![i64::MIN])) as ArrayRef;
        let minus_one = Arc::new(Int64Array::from(vec![-1])) as ArrayRef;
        assert_eq!(
            run(IntegerOp::Divide, big.clone(), minus_one.clone()).unwrap_err(),
            "22003 bigint out of range"
        );
        let rem = run(IntegerOp::Modulo, big, minus_one).unwrap();
        assert_eq!(rem.as_primitive::<Int64Type>().value(0), 0);
        let zero = Arc::new(Int32Array::from(vec![0])) as ArrayRef;
        assert_eq!(
            run(IntegerOp::Modulo, one, zero).unwrap_err(),
            "22012 division by zero"
        );
    }

    #[test]
    fn null_slots_are_not_evaluated() {
        let left = Arc::new(Int32Array::from(vec![Some(1), None])) as ArrayRef;
        let right = Arc::new(Int32Array::from(vec![Some(2), Some(0)])) as ArrayRef;
        let quotient = run(IntegerOp::Divide, left, right).unwrap();
        assert_eq!(quotient.null_count(), 1);
    }

    #[test]
    fn cast_messages() {
        let e = cast_error("Cast error: Can't cast value 300 to type Int16").unwrap();
        assert_eq!(
            (e.sqlstate(), e.to_string().as_str()),
            ("22003", "smallint out of range")
        );
        let e = cast_error("Cast error: Cannot cast string '99999999999' to value of Int32 type")
            .unwrap();
        assert_eq!(e.sqlstate(), "22003");
        let e = cast_error("Cast error: Cannot cast string 'abc' to value of Int32 type").unwrap();
        assert_eq!(e.sqlstate(), "22P02");
        let e = cast_error(
            "Invalid argument error: 100.00 is too large to store in a Decimal128 of precision 4. Max is 99.99",
        )
        .unwrap();
        assert_eq!(e.sqlstate(), "22003");
        let e = cast_error("Compute error: Int32Array overflow on abs(-2147483648)").unwrap();
        assert_eq!(
            (e.sqlstate(), e.to_string().as_str()),
            ("22003", "integer out of range")
        );
        let e =
            cast_error("Cast error: value of 9223372036854775808 is out of range Int64").unwrap();
        assert_eq!(
            (e.sqlstate(), e.to_string().as_str()),
            ("22003", "bigint out of range")
        );
    }
}

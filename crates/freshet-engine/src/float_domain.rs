//! Math functions of `double precision` that refuse what PostgreSQL refuses.
//!
//! DataFusion's `ln`, `log`, `sqrt`, `power`, `exp`, `acos` and `asin`
//! follow IEEE 754: `ln(0)` is `-Infinity`, `sqrt(-1)` and `acos(2)` are
//! `NaN`, `exp(1000)` is `Infinity`. PostgreSQL raises an error for each
//! (2201E, 2201F, 22003), so a query that should fail gave a number, and a
//! `NaN` then sorts above every other value and compares equal to itself.
//!
//! [`PostgresMathDomains`], an `AnalyzerRule` that runs after type coercion,
//! replaces each such call whose result is a float with [`DomainChecked`],
//! which computes the same function in `f64` and raises PostgreSQL's error
//! (with its SQLSTATE and message) for an argument outside the function's
//! domain or a finite argument whose result overflows. NaN and infinite
//! arguments give what PostgreSQL gives for them (`ln('Infinity')` is
//! `Infinity`, `sqrt('NaN')` is `NaN`). Calls on other types (DataFusion's
//! `log` of a `numeric`) are left as they are.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ExprSchemable, LogicalPlan, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature, Volatility,
};
use datafusion::optimizer::AnalyzerRule;

use crate::EngineError;

/// The analyzer rule described in the module docs.
#[derive(Debug, Default)]
pub(crate) struct PostgresMathDomains;

impl AnalyzerRule for PostgresMathDomains {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> DfResult<LogicalPlan> {
        crate::plan_rewrite::rewrite_plan(plan, rewrite)
    }

    fn name(&self) -> &str {
        "freshet_postgres_math_domains"
    }
}

/// Registers the rule with a session.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.add_analyzer_rule(Arc::new(PostgresMathDomains));
}

/// The functions checked, each computed in `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum MathFunction {
    /// `ln(x)`.
    Ln,
    /// `log10(x)`, and `log(x)` of one argument.
    Log10,
    /// `log2(x)`.
    Log2,
    /// `log(b, x)`: the logarithm of `x` to base `b`.
    LogBase,
    /// `sqrt(x)`.
    Sqrt,
    /// `exp(x)`.
    Exp,
    /// `power(a, b)` and `pow(a, b)`.
    Power,
    /// `acos(x)`.
    Acos,
    /// `asin(x)`.
    Asin,
}

impl MathFunction {
    fn of(name: &str, arity: usize) -> Option<MathFunction> {
        Some(match (name, arity) {
            ("ln", 1) => MathFunction::Ln,
            ("log10", 1) | ("log", 1) => MathFunction::Log10,
            ("log2", 1) => MathFunction::Log2,
            ("log", 2) => MathFunction::LogBase,
            ("sqrt", 1) => MathFunction::Sqrt,
            ("exp", 1) => MathFunction::Exp,
            ("power", 2) | ("pow", 2) => MathFunction::Power,
            ("acos", 1) => MathFunction::Acos,
            ("asin", 1) => MathFunction::Asin,
            _ => return None,
        })
    }

    fn udf_name(self) -> &'static str {
        match self {
            MathFunction::Ln => "freshet_checked_ln",
            MathFunction::Log10 => "freshet_checked_log10",
            MathFunction::Log2 => "freshet_checked_log2",
            MathFunction::LogBase => "freshet_checked_log",
            MathFunction::Sqrt => "freshet_checked_sqrt",
            MathFunction::Exp => "freshet_checked_exp",
            MathFunction::Power => "freshet_checked_power",
            MathFunction::Acos => "freshet_checked_acos",
            MathFunction::Asin => "freshet_checked_asin",
        }
    }

    /// The function at `x` (and `y`, its second argument), or PostgreSQL's
    /// error for it.
    fn compute(self, x: f64, y: f64) -> Result<f64, EngineError> {
        match self {
            MathFunction::Ln => log_argument(x).map(f64::ln),
            MathFunction::Log10 => log_argument(x).map(f64::log10),
            MathFunction::Log2 => log_argument(x).map(f64::log2),
            MathFunction::LogBase => {
                let (base, x) = (log_argument(x)?, log_argument(y)?);
                if base == 1.0 {
                    return Err(EngineError::new("22012", "division by zero"));
                }
                Ok(x.ln() / base.ln())
            }
            MathFunction::Sqrt => {
                if x < 0.0 {
                    return Err(EngineError::new(
                        "2201F",
                        "cannot take square root of a negative number",
                    ));
                }
                Ok(x.sqrt())
            }
            MathFunction::Exp => {
                let result = x.exp();
                if result.is_infinite() && x.is_finite() {
                    return Err(out_of_range("overflow"));
                }
                if result == 0.0 && x.is_finite() {
                    return Err(out_of_range("underflow"));
                }
                Ok(result)
            }
            MathFunction::Power => {
                if x == 0.0 && y < 0.0 {
                    return Err(EngineError::new(
                        "2201F",
                        "zero raised to a negative power is undefined",
                    ));
                }
                if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
                    return Err(EngineError::new(
                        "2201F",
                        "a negative number raised to a non-integer power yields a complex result",
                    ));
                }
                let result = x.powf(y);
                if result.is_infinite() && x.is_finite() && y.is_finite() {
                    return Err(out_of_range("overflow"));
                }
                Ok(result)
            }
            MathFunction::Acos | MathFunction::Asin => {
                if !x.is_nan() && !(-1.0..=1.0).contains(&x) {
                    return Err(EngineError::new("22003", "input is out of range"));
                }
                Ok(if self == MathFunction::Acos {
                    x.acos()
                } else {
                    x.asin()
                })
            }
        }
    }
}

/// A logarithm's argument, or PostgreSQL's error for zero or a negative one.
fn log_argument(x: f64) -> Result<f64, EngineError> {
    if x == 0.0 {
        Err(EngineError::new("2201E", "cannot take logarithm of zero"))
    } else if x < 0.0 {
        Err(EngineError::new(
            "2201E",
            "cannot take logarithm of a negative number",
        ))
    } else {
        Ok(x)
    }
}

pub(crate) fn out_of_range(what: &str) -> EngineError {
    EngineError::new("22003", format!("value out of range: {what}"))
}

/// PostgreSQL's `value out of range: overflow` (22003), as a DataFusion error
/// for aggregate and window code.
pub(crate) fn overflow() -> datafusion::common::DataFusionError {
    out_of_range("overflow").into()
}

pub(crate) fn is_float(t: &DataType) -> bool {
    matches!(t, DataType::Float32 | DataType::Float64)
}

fn rewrite(expr: Expr, schema: &DFSchema) -> DfResult<Transformed<Expr>> {
    let Expr::ScalarFunction(call) = &expr else {
        return Ok(Transformed::no(expr));
    };
    let Some(function) = MathFunction::of(call.name(), call.args.len()) else {
        return Ok(Transformed::no(expr));
    };
    let Ok(output) = expr.get_type(schema) else {
        return Ok(Transformed::no(expr));
    };
    if !is_float(&output) {
        return Ok(Transformed::no(expr));
    }
    let udf = Arc::new(ScalarUDF::new_from_impl(DomainChecked {
        function,
        output,
        signature: Signature::any(call.args.len(), Volatility::Immutable),
    }));
    Ok(Transformed::yes(Expr::ScalarFunction(
        ScalarFunction::new_udf(udf, call.args.clone()),
    )))
}

/// One [`MathFunction`] computed in `f64`, its result of type `output`
/// (the type of the call it replaces).
#[derive(Debug, PartialEq, Eq, Hash)]
struct DomainChecked {
    function: MathFunction,
    output: DataType,
    signature: Signature,
}

impl ScalarUDFImpl for DomainChecked {
    fn name(&self) -> &str {
        self.function.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(self.output.clone())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        crate::udf_args::evaluate(&args.args, |arrays| {
            let floats = arrays
                .iter()
                .map(|a| cast(a, &DataType::Float64))
                .collect::<Result<Vec<ArrayRef>, _>>()?;
            let x = floats
                .first()
                .ok_or_else(|| DataFusionError::Internal("math function without argument".into()))?
                .as_primitive::<Float64Type>();
            let y = floats.get(1).map(|a| a.as_primitive::<Float64Type>());
            let mut out = Vec::with_capacity(x.len());
            for row in 0..x.len() {
                let second = match y {
                    Some(y) if y.is_null(row) => None,
                    Some(y) => Some(y.value(row)),
                    None => Some(0.0),
                };
                let value = match (x.is_null(row), second) {
                    (false, Some(second)) => Some(
                        self.function
                            .compute(x.value(row), second)
                            .map_err(|e| DataFusionError::External(Box::new(e)))?,
                    ),
                    _ => None,
                };
                out.push(value);
            }
            let result: ArrayRef = Arc::new(Float64Array::from(out));
            Ok(cast(&result, &self.output)?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::MathFunction as F;

    fn error(f: F, x: f64, y: f64) -> &'static str {
        f.compute(x, y).unwrap_err().sqlstate()
    }

    #[test]
    fn refuses_what_postgresql_refuses() {
        assert_eq!(error(F::Ln, 0.0, 0.0), "2201E");
        assert_eq!(error(F::Ln, -1.0, 0.0), "2201E");
        assert_eq!(error(F::Log10, -5.0, 0.0), "2201E");
        assert_eq!(error(F::LogBase, 2.0, 0.0), "2201E");
        assert_eq!(error(F::LogBase, 1.0, 8.0), "22012");
        assert_eq!(error(F::Sqrt, -1.0, 0.0), "2201F");
        assert_eq!(error(F::Power, 0.0, -1.0), "2201F");
        assert_eq!(error(F::Power, -1.0, 0.5), "2201F");
        assert_eq!(error(F::Power, 10.0, 400.0), "22003");
        assert_eq!(error(F::Exp, 1000.0, 0.0), "22003");
        assert_eq!(error(F::Exp, -1000.0, 0.0), "22003");
        assert_eq!(error(F::Acos, 2.0, 0.0), "22003");
        assert_eq!(error(F::Asin, -1.5, 0.0), "22003");
    }

    #[test]
    fn computes_inside_the_domain() {
        assert_eq!(F::Ln.compute(1.0, 0.0).unwrap(), 0.0);
        assert_eq!(F::Log10.compute(100.0, 0.0).unwrap(), 2.0);
        assert!((F::LogBase.compute(2.0, 8.0).unwrap() - 3.0).abs() < 1e-12);
        assert_eq!(F::Power.compute(-2.0, 3.0).unwrap(), -8.0);
        assert_eq!(F::Power.compute(0.0, 0.0).unwrap(), 1.0);
        assert_eq!(F::Sqrt.compute(4.0, 0.0).unwrap(), 2.0);
        assert_eq!(F::Exp.compute(f64::NEG_INFINITY, 0.0).unwrap(), 0.0);
        assert!(F::Ln.compute(f64::INFINITY, 0.0).unwrap().is_infinite());
        assert!(F::Sqrt.compute(f64::NAN, 0.0).unwrap().is_nan());
        assert_eq!(F::Acos.compute(1.0, 0.0).unwrap(), 0.0);
    }
}

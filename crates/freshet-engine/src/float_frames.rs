//! Window aggregates of `double precision` computed over each frame's rows,
//! as PostgreSQL computes them.
//!
//! Why this exists: DataFusion evaluates an aggregate over a moving window
//! frame (`ROWS BETWEEN 1 PRECEDING AND CURRENT ROW`) by adding the rows that
//! enter the frame and *subtracting* those that leave it. For floating point
//! that answers wrongly without an error:
//!
//! * `sum(x) OVER (ROWS 1 PRECEDING)` over 1e20, 1, 1 gave 0 for the last
//!   row, where the frame {1, 1} sums to 2: the 1 added to 1e20 was lost,
//!   and subtracting 1e20 left nothing.
//! * the `stddev` of the frame {1, 1} after 1e20 had left it was
//!   1099511627776, not 0, and `covar_samp`, `corr` and the `regr_*`
//!   functions were as far off.
//! * once `Infinity` or `NaN` had been in a frame, every later frame's sum
//!   was `NaN`; a sum that overflowed was `Infinity` where PostgreSQL raises
//!   22003.
//!
//! PostgreSQL has no inverse transition for its float aggregates: it
//! aggregates each frame's rows from the frame's first row, with `float8pl`
//! for `sum`, the Youngs-Cramer transition (`float8_accum`) for `avg`, the
//! variances and standard deviations, and its two-variable form
//! (`float8_regr_accum`) for `covar_*`, `corr` and `regr_*`. Each raises
//! 22003 where finite inputs give an infinite result.
//!
//! [`frame_aggregate`] replaces such a window aggregate of doubles with
//! [`FrameAggregate`], whose accumulators do the same. Over a frame that
//! only grows (`UNBOUNDED PRECEDING`) it keeps the running transition
//! values; over a moving frame it keeps the frame's rows and aggregates them
//! again for each result, which costs the frame's length per row, as in
//! PostgreSQL. `regr_count`, integer and numeric aggregates, which DataFusion
//! retracts exactly, are left as they are.

use std::collections::VecDeque;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::expr::WindowFunction;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::AggregateOrderSensitivity;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Expr, ExprSchemable, ReversedUDAF, Signature,
    Volatility, WindowFunctionDefinition,
};

/// The window aggregates computed here, by DataFusion's name for each
/// (`stddev` is `stddev_samp`, `var` is `var_samp` and `variance`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum FrameFunction {
    Sum,
    Avg,
    VarSamp,
    VarPop,
    StddevSamp,
    StddevPop,
    CovarSamp,
    CovarPop,
    Corr,
    RegrSlope,
    RegrIntercept,
    RegrR2,
    RegrAvgX,
    RegrAvgY,
    RegrSxx,
    RegrSyy,
    RegrSxy,
}

impl FrameFunction {
    fn of(name: &str) -> Option<FrameFunction> {
        use FrameFunction::*;
        Some(match name {
            "sum" => Sum,
            "avg" => Avg,
            "var" => VarSamp,
            "var_pop" => VarPop,
            "stddev" => StddevSamp,
            "stddev_pop" => StddevPop,
            "covar_samp" => CovarSamp,
            "covar_pop" => CovarPop,
            "corr" => Corr,
            "regr_slope" => RegrSlope,
            "regr_intercept" => RegrIntercept,
            "regr_r2" => RegrR2,
            "regr_avgx" => RegrAvgX,
            "regr_avgy" => RegrAvgY,
            "regr_sxx" => RegrSxx,
            "regr_syy" => RegrSyy,
            "regr_sxy" => RegrSxy,
            _ => return None,
        })
    }

    fn udf_name(self) -> &'static str {
        use FrameFunction::*;
        match self {
            Sum => "freshet_frame_sum",
            Avg => "freshet_frame_avg",
            VarSamp => "freshet_frame_var_samp",
            VarPop => "freshet_frame_var_pop",
            StddevSamp => "freshet_frame_stddev_samp",
            StddevPop => "freshet_frame_stddev_pop",
            CovarSamp => "freshet_frame_covar_samp",
            CovarPop => "freshet_frame_covar_pop",
            Corr => "freshet_frame_corr",
            RegrSlope => "freshet_frame_regr_slope",
            RegrIntercept => "freshet_frame_regr_intercept",
            RegrR2 => "freshet_frame_regr_r2",
            RegrAvgX => "freshet_frame_regr_avgx",
            RegrAvgY => "freshet_frame_regr_avgy",
            RegrSxx => "freshet_frame_regr_sxx",
            RegrSyy => "freshet_frame_regr_syy",
            RegrSxy => "freshet_frame_regr_sxy",
        }
    }

    /// How many arguments it takes: one value, or (Y, X) for the
    /// two-variable ones.
    fn arity(self) -> usize {
        use FrameFunction::*;
        match self {
            Sum | Avg | VarSamp | VarPop | StddevSamp | StddevPop => 1,
            _ => 2,
        }
    }

    /// An empty transition state for it.
    fn start(self) -> Transition {
        use FrameFunction::*;
        match self {
            Sum => Transition::Sum(None),
            Avg | VarSamp | VarPop | StddevSamp | StddevPop => {
                Transition::Moments(Moments::default())
            }
            _ => Transition::CoMoments(CoMoments::default()),
        }
    }

    /// The result from a transition state: PostgreSQL's final functions.
    fn finish(self, state: &Transition) -> Option<f64> {
        use FrameFunction::*;
        match (self, state) {
            (Sum, Transition::Sum(sum)) => *sum,
            (_, Transition::Moments(m)) => {
                let Moments { n, sx, sxx } = *m;
                match self {
                    Avg => (n > 0.0).then(|| sx / n),
                    VarPop => (n > 0.0).then(|| sxx / n),
                    StddevPop => (n > 0.0).then(|| (sxx / n).sqrt()),
                    VarSamp => (n > 1.0).then(|| sxx / (n - 1.0)),
                    StddevSamp => (n > 1.0).then(|| (sxx / (n - 1.0)).sqrt()),
                    _ => None,
                }
            }
            (_, Transition::CoMoments(c)) => {
                let CoMoments {
                    n,
                    sx,
                    sxx,
                    sy,
                    syy,
                    sxy,
                } = *c;
                if n < 1.0 {
                    return None;
                }
                match self {
                    CovarPop => Some(sxy / n),
                    CovarSamp => (n >= 2.0).then(|| sxy / (n - 1.0)),
                    Corr => (sxx != 0.0 && syy != 0.0).then(|| sxy / (sxx * syy).sqrt()),
                    RegrSlope => (sxx != 0.0).then(|| sxy / sxx),
                    RegrIntercept => (sxx != 0.0).then(|| (sy - sx * sxy / sxx) / n),
                    RegrR2 if sxx == 0.0 => None,
                    RegrR2 if syy == 0.0 => Some(1.0),
                    RegrR2 => Some((sxy * sxy) / (sxx * syy)),
                    RegrAvgX => Some(sx / n),
                    RegrAvgY => Some(sy / n),
                    RegrSxx => Some(sxx),
                    RegrSyy => Some(syy),
                    RegrSxy => Some(sxy),
                    _ => None,
                }
            }
            _ => None,
        }
    }
}

/// `expr` with [`FrameAggregate`] in place of one of [`FrameFunction`]'s
/// window aggregates of doubles; `None` for any other expression.
pub(crate) fn frame_aggregate(expr: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::WindowFunction(window) = expr else {
        return None;
    };
    let WindowFunctionDefinition::AggregateUDF(udaf) = &window.fun else {
        return None;
    };
    let function = FrameFunction::of(udaf.name())?;
    let params = &window.params;
    if params.distinct || params.args.len() != function.arity() {
        return None;
    }
    for arg in &params.args {
        if arg.get_type(schema).ok()? != DataType::Float64 {
            return None;
        }
    }
    let udaf = AggregateUDF::new_from_impl(FrameAggregate {
        function,
        signature: Signature::exact(
            vec![DataType::Float64; function.arity()],
            Volatility::Immutable,
        ),
    });
    Some(Expr::WindowFunction(Box::new(WindowFunction {
        fun: WindowFunctionDefinition::AggregateUDF(Arc::new(udaf)),
        params: params.clone(),
    })))
}

/// A window aggregate of doubles computed as PostgreSQL computes it. It is
/// only ever planned as a window function: its accumulators have no partial
/// state to merge.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FrameAggregate {
    function: FrameFunction,
    signature: Signature,
}

impl AggregateUDFImpl for FrameAggregate {
    fn name(&self) -> &str {
        self.function.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Float64)
    }

    /// For a frame that only grows: the running transition values.
    fn accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(FrameAccumulator {
            function: self.function,
            state: self.function.start(),
            frame: None,
        }))
    }

    /// For a moving frame: the frame's rows, aggregated again per result.
    fn create_sliding_accumulator(&self, _args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        Ok(Box::new(FrameAccumulator {
            function: self.function,
            state: self.function.start(),
            frame: Some(VecDeque::new()),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format!("{}[transition]", args.name),
            DataType::Float64,
            true,
        ))])
    }

    fn order_sensitivity(&self) -> AggregateOrderSensitivity {
        AggregateOrderSensitivity::Insensitive
    }

    // Rows are aggregated in the frame's order, as in PostgreSQL: a
    // reversed evaluation would round differently.
    fn reverse_expr(&self) -> ReversedUDAF {
        ReversedUDAF::NotSupported
    }
}

/// `float8pl`: a sum, with PostgreSQL's overflow error for finite operands.
fn checked_add(a: f64, b: f64) -> DfResult<f64> {
    let sum = a + b;
    if sum.is_infinite() && a.is_finite() && b.is_finite() {
        return Err(crate::float_domain::overflow());
    }
    Ok(sum)
}

/// A transition state: PostgreSQL's for the function's family.
#[derive(Debug, Clone, Copy)]
enum Transition {
    /// `sum`: NULL until the first value.
    Sum(Option<f64>),
    Moments(Moments),
    CoMoments(CoMoments),
}

impl Transition {
    /// Takes in one row: `[x]`, or `[y, x]` for the two-variable functions.
    fn add(&mut self, row: [f64; 2]) -> DfResult<()> {
        match self {
            Transition::Sum(sum) => {
                *sum = Some(match *sum {
                    None => row[0],
                    Some(s) => checked_add(s, row[0])?,
                })
            }
            Transition::Moments(m) => m.add(row[0])?,
            Transition::CoMoments(c) => c.add(row[0], row[1])?,
        }
        Ok(())
    }
}

/// Count, sum and sum of squared deviations (Youngs-Cramer).
#[derive(Debug, Clone, Copy, Default)]
struct Moments {
    n: f64,
    sx: f64,
    sxx: f64,
}

impl Moments {
    fn add(&mut self, x: f64) -> DfResult<()> {
        let (old_n, old_sx) = (self.n, self.sx);
        self.n += 1.0;
        self.sx += x;
        if old_n > 0.0 {
            let d = x * self.n - self.sx;
            self.sxx += d * d / (self.n * old_n);
            if self.sx.is_infinite() || self.sxx.is_infinite() {
                if old_sx.is_finite() && x.is_finite() {
                    return Err(crate::float_domain::overflow());
                }
                self.sxx = f64::NAN;
            }
        } else if !x.is_finite() {
            // A first value that is infinite or NaN: there is no variance.
            self.sxx = f64::NAN;
        }
        Ok(())
    }
}

/// [`Moments`] of two variables, and the sum of their co-deviations.
#[derive(Debug, Clone, Copy, Default)]
struct CoMoments {
    n: f64,
    sx: f64,
    sxx: f64,
    sy: f64,
    syy: f64,
    sxy: f64,
}

impl CoMoments {
    fn add(&mut self, y: f64, x: f64) -> DfResult<()> {
        let old = *self;
        self.n += 1.0;
        self.sx += x;
        self.sy += y;
        if old.n > 0.0 {
            let dx = x * self.n - self.sx;
            let dy = y * self.n - self.sy;
            let scale = 1.0 / (self.n * old.n);
            self.sxx += dx * dx * scale;
            self.syy += dy * dy * scale;
            self.sxy += dx * dy * scale;
            let x_finite = old.sx.is_finite() && x.is_finite();
            let y_finite = old.sy.is_finite() && y.is_finite();
            let x_overflow = self.sx.is_infinite() || self.sxx.is_infinite();
            let y_overflow = self.sy.is_infinite() || self.syy.is_infinite();
            if (x_overflow && x_finite)
                || (y_overflow && y_finite)
                || (self.sxy.is_infinite() && x_finite && y_finite)
            {
                return Err(crate::float_domain::overflow());
            }
            for s in [&mut self.sxx, &mut self.syy, &mut self.sxy] {
                if s.is_infinite() {
                    *s = f64::NAN;
                }
            }
        } else {
            if !x.is_finite() {
                self.sxx = f64::NAN;
                self.sxy = f64::NAN;
            }
            if !y.is_finite() {
                self.syy = f64::NAN;
                self.sxy = f64::NAN;
            }
        }
        Ok(())
    }
}

/// One window partition's accumulator.
#[derive(Debug)]
struct FrameAccumulator {
    function: FrameFunction,
    /// The running transition values (a frame that only grows).
    state: Transition,
    /// A moving frame's rows that count (no NULL argument), in order.
    frame: Option<VecDeque<[f64; 2]>>,
}

/// The rows of `values` whose arguments are all set, as `[x]` or `[y, x]`.
fn counted_rows(values: &[ArrayRef]) -> DfResult<Vec<[f64; 2]>> {
    let columns = values
        .iter()
        .map(|v| {
            v.as_primitive_opt::<Float64Type>().ok_or_else(|| {
                DataFusionError::Internal("a frame aggregate's argument is not a double".into())
            })
        })
        .collect::<DfResult<Vec<_>>>()?;
    let rows = columns.first().map_or(0, |c| c.len());
    Ok((0..rows)
        .filter(|&i| columns.iter().all(|c| c.is_valid(i)))
        .map(|i| {
            let mut row = [0.0; 2];
            for (slot, column) in row.iter_mut().zip(&columns) {
                *slot = column.value(i);
            }
            row
        })
        .collect())
}

impl Accumulator for FrameAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let rows = counted_rows(values)?;
        match &mut self.frame {
            Some(frame) => frame.extend(rows),
            None => {
                for row in rows {
                    self.state.add(row)?;
                }
            }
        }
        Ok(())
    }

    fn retract_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        let leaving = counted_rows(values)?.len();
        let frame = self.frame.as_mut().ok_or_else(|| {
            DataFusionError::Internal("rows retracted from a frame that only grows".into())
        })?;
        if leaving > frame.len() {
            return Err(DataFusionError::Internal(
                "more rows left a window frame than it held".into(),
            ));
        }
        frame.drain(..leaving);
        Ok(())
    }

    fn supports_retract_batch(&self) -> bool {
        self.frame.is_some()
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let state = match &self.frame {
            Some(frame) => {
                let mut state = self.function.start();
                for row in frame {
                    state.add(*row)?;
                }
                state
            }
            None => self.state,
        };
        Ok(ScalarValue::Float64(self.function.finish(&state)))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .frame
                .as_ref()
                .map_or(0, |f| f.capacity() * std::mem::size_of::<[f64; 2]>())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        Err(DataFusionError::Internal(
            "a window frame aggregate has no partial state".into(),
        ))
    }

    fn merge_batch(&mut self, _states: &[ArrayRef]) -> DfResult<()> {
        Err(DataFusionError::Internal(
            "a window frame aggregate has no partial state".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(function: FrameFunction, rows: &[[f64; 2]]) -> DfResult<Option<f64>> {
        let mut state = function.start();
        for row in rows {
            state.add(*row)?;
        }
        Ok(function.finish(&state))
    }

    #[test]
    fn sums_in_order_and_raises_overflow_for_finite_values() {
        let r = |x: f64| [x, 0.0];
        assert_eq!(fold(FrameFunction::Sum, &[]).unwrap(), None);
        assert_eq!(
            fold(FrameFunction::Sum, &[r(1.0), r(1.0)]).unwrap(),
            Some(2.0)
        );
        assert!(fold(FrameFunction::Sum, &[r(1.5e308), r(1.5e308)]).is_err());
        assert_eq!(
            fold(FrameFunction::Sum, &[r(f64::INFINITY), r(1.0)]).unwrap(),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn moments_follow_youngs_cramer() {
        let rows: Vec<[f64; 2]> = [1.0, 2.0, 3.0, 4.0].iter().map(|x| [*x, 0.0]).collect();
        assert_eq!(fold(FrameFunction::Avg, &rows).unwrap(), Some(2.5));
        assert_eq!(fold(FrameFunction::VarPop, &rows).unwrap(), Some(1.25));
        assert_eq!(fold(FrameFunction::VarSamp, &rows[..1]).unwrap(), None);
        assert!(fold(FrameFunction::VarPop, &[[1e200, 0.0], [-1e200, 0.0]]).is_err());
        let nan = fold(FrameFunction::VarPop, &[[f64::INFINITY, 0.0]]).unwrap();
        assert!(nan.is_some_and(f64::is_nan));
    }

    #[test]
    fn two_variable_functions() {
        // y = 2x + 1
        let rows: Vec<[f64; 2]> = [1.0, 2.0, 3.0]
            .iter()
            .map(|x| [2.0 * x + 1.0, *x])
            .collect();
        assert_eq!(fold(FrameFunction::RegrSlope, &rows).unwrap(), Some(2.0));
        assert_eq!(
            fold(FrameFunction::RegrIntercept, &rows).unwrap(),
            Some(1.0)
        );
        assert_eq!(fold(FrameFunction::Corr, &rows).unwrap(), Some(1.0));
        assert_eq!(fold(FrameFunction::CovarSamp, &rows[..1]).unwrap(), None);
        // A vertical line has no slope; a horizontal one an r2 of 1.
        let vertical = [[1.0, 5.0], [2.0, 5.0]];
        assert_eq!(fold(FrameFunction::RegrSlope, &vertical).unwrap(), None);
        let horizontal = [[5.0, 1.0], [5.0, 2.0]];
        assert_eq!(fold(FrameFunction::RegrR2, &horizontal).unwrap(), Some(1.0));
    }
}

//! `mode() WITHIN GROUP (ORDER BY x)` and `percentile_disc(f) WITHIN GROUP
//! (ORDER BY x)`, PostgreSQL's ordered-set aggregates that DataFusion lacks
//! (it has `percentile_cont`).
//!
//! * `mode()` is the most frequent non-NULL value; among values equally
//!   frequent, the first in the `ORDER BY` order, as PostgreSQL picks it.
//! * `percentile_disc(f)` is the first value, in the `ORDER BY` order, whose
//!   position reaches the fraction `f` of the non-NULL values: position
//!   `ceil(f * n)`, or the first value when that is 0. `f` outside `[0, 1]`
//!   is 22003, as PostgreSQL words it; a NULL `f` gives NULL.
//!
//! Both take any type Arrow can sort, and sort as Freshet's `ORDER BY`
//! does (NaN after every other float). The values of each group are kept
//! until the group ends, as PostgreSQL keeps them in a sort; their memory is
//! reported to the query's memory pool through the accumulator's size.
//! The array forms (`percentile_disc(float8[])`) are not provided.

use std::fmt::Debug;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::{concat, sort_to_indices, SortOptions};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, Signature, Volatility,
};

use crate::EngineError;

/// Registers `mode` and `percentile_disc`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    for kind in [OrderedSet::Mode, OrderedSet::PercentileDisc] {
        ctx.register_udaf(AggregateUDF::new_from_impl(OrderedSetAggregate {
            kind,
            signature: Signature::user_defined(Volatility::Immutable),
        }));
    }
}

/// Which aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OrderedSet {
    Mode,
    PercentileDisc,
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct OrderedSetAggregate {
    kind: OrderedSet,
    signature: Signature,
}

impl AggregateUDFImpl for OrderedSetAggregate {
    fn name(&self) -> &str {
        match self.kind {
            OrderedSet::Mode => "mode",
            OrderedSet::PercentileDisc => "percentile_disc",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The `ORDER BY` expression comes first; `percentile_disc`'s fraction
    /// is a `double precision`.
    fn coerce_types(&self, args: &[DataType]) -> DfResult<Vec<DataType>> {
        match (self.kind, args) {
            (OrderedSet::Mode, [value]) => Ok(vec![value.clone()]),
            (OrderedSet::PercentileDisc, [value, _]) => Ok(vec![value.clone(), DataType::Float64]),
            _ => Err(EngineError::new(
                "42883",
                format!(
                    "{}() needs WITHIN GROUP (ORDER BY one expression){}",
                    self.name(),
                    match self.kind {
                        OrderedSet::Mode => "",
                        OrderedSet::PercentileDisc => " and one fraction",
                    }
                ),
            )
            .into()),
        }
    }

    fn return_type(&self, args: &[DataType]) -> DfResult<DataType> {
        Ok(args.first().cloned().unwrap_or(DataType::Null))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> DfResult<Vec<FieldRef>> {
        let value_type = args
            .input_fields
            .first()
            .map(|f| f.data_type().clone())
            .unwrap_or(DataType::Null);
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "values"),
            DataType::List(Arc::new(Field::new_list_field(value_type, true))),
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> DfResult<Box<dyn Accumulator>> {
        let descending = args
            .order_bys
            .first()
            .map(|sort| sort.options.descending)
            .unwrap_or(false);
        let fraction = match self.kind {
            OrderedSet::Mode => None,
            OrderedSet::PercentileDisc => Some(fraction(&args)?),
        };
        Ok(Box::new(OrderedSetAccumulator {
            kind: self.kind,
            value_type: args.return_field.data_type().clone(),
            descending,
            fraction,
            values: Vec::new(),
        }))
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }
}

/// `percentile_disc`'s fraction, which must be a constant (as DataFusion's
/// `percentile_cont` requires): `Some(None)` for NULL.
fn fraction(args: &AccumulatorArgs) -> DfResult<Option<f64>> {
    // A constant evaluates without input rows; a column reference cannot.
    let empty = datafusion::arrow::array::RecordBatch::new_empty(Arc::new(
        datafusion::arrow::datatypes::Schema::empty(),
    ));
    let constant = match args.exprs.get(1).map(|e| e.evaluate(&empty)) {
        Some(Ok(datafusion::logical_expr::ColumnarValue::Scalar(value))) => Some(value),
        _ => None,
    };
    let value = match constant {
        Some(ScalarValue::Float64(value)) => value,
        Some(ScalarValue::Null) => None,
        _ => {
            return Err(
                EngineError::new("0A000", "percentile_disc's fraction must be a constant").into(),
            )
        }
    };
    if let Some(f) = value {
        if !(0.0..=1.0).contains(&f) {
            return Err(EngineError::new(
                "22003",
                format!("percentile value {f} is not between 0 and 1"),
            )
            .into());
        }
    }
    Ok(value)
}

#[derive(Debug)]
struct OrderedSetAccumulator {
    kind: OrderedSet,
    value_type: DataType,
    descending: bool,
    /// `percentile_disc`'s fraction (`None` inside for NULL).
    fraction: Option<Option<f64>>,
    /// The group's input batches, NULLs included.
    values: Vec<ArrayRef>,
}

impl OrderedSetAccumulator {
    /// The group's non-NULL values, sorted in the `ORDER BY` order.
    fn sorted(&self) -> DfResult<Option<ArrayRef>> {
        if self.values.is_empty() {
            return Ok(None);
        }
        let parts: Vec<&dyn Array> = self.values.iter().map(|a| a.as_ref()).collect();
        let all = concat(&parts)?;
        let options = SortOptions {
            descending: self.descending,
            nulls_first: false,
        };
        let non_null = all.len() - all.null_count();
        let indices = sort_to_indices(&all, Some(options), Some(non_null))?;
        let sorted = datafusion::arrow::compute::take(&all, &indices, None)?;
        Ok(Some(sorted.slice(0, non_null)))
    }
}

impl Accumulator for OrderedSetAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> DfResult<()> {
        if let Some(first) = values.first() {
            self.values.push(Arc::clone(first));
        }
        Ok(())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> DfResult<()> {
        let Some(lists) = states.first() else {
            return Ok(());
        };
        for list in lists.as_list::<i32>().iter().flatten() {
            self.values.push(list);
        }
        Ok(())
    }

    fn state(&mut self) -> DfResult<Vec<ScalarValue>> {
        let values = match self.sorted()? {
            Some(sorted) => sorted,
            None => datafusion::arrow::array::new_empty_array(&self.value_type),
        };
        Ok(vec![ScalarValue::List(Arc::new(
            datafusion::common::utils::SingleRowListArrayBuilder::new(values).build_list_array(),
        ))])
    }

    fn evaluate(&mut self) -> DfResult<ScalarValue> {
        let null = || ScalarValue::try_from(&self.value_type);
        let Some(sorted) = self.sorted()? else {
            return null();
        };
        if sorted.is_empty() {
            return null();
        }
        let row = match (self.kind, self.fraction) {
            (OrderedSet::Mode, _) => most_frequent(&sorted)?,
            (OrderedSet::PercentileDisc, Some(Some(f))) => {
                // Position ceil(f * n), 1-based; 0 reads the first value.
                let n = sorted.len();
                let position = (f * n as f64).ceil() as usize;
                position.clamp(1, n) - 1
            }
            (OrderedSet::PercentileDisc, _) => return null(),
        };
        ScalarValue::try_from_array(&sorted, row)
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
            + self
                .values
                .iter()
                .map(|a| a.get_array_memory_size())
                .sum::<usize>()
    }
}

/// The row of `sorted` that starts its longest run of equal values; the
/// first such run when several are as long.
fn most_frequent(sorted: &ArrayRef) -> DfResult<usize> {
    let rows =
        datafusion::arrow::row::RowConverter::new(vec![datafusion::arrow::row::SortField::new(
            sorted.data_type().clone(),
        )])
        .map_err(DataFusionError::from)?
        .convert_columns(&[Arc::clone(sorted)])?;
    let (mut best, mut best_len) = (0, 0);
    let mut start = 0;
    for row in 1..=rows.num_rows() {
        if row == rows.num_rows() || rows.row(row) != rows.row(start) {
            if row - start > best_len {
                best = start;
                best_len = row - start;
            }
            start = row;
        }
    }
    Ok(best)
}

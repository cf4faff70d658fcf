//! `clock_timestamp()`: the time when it is called, as PostgreSQL gives it.
//!
//! `now()` (and `current_timestamp`) are fixed for the whole statement;
//! scripts that time their steps, and rows stamped with their own moment,
//! use `clock_timestamp()`, which PostgreSQL reads again at every call. It
//! is volatile, so DataFusion evaluates it for each batch and never folds
//! it into a constant; within a batch each row reads the clock again. The
//! type is `now()`'s: a `timestamptz` (nanoseconds, UTC).

use std::sync::Arc;

use datafusion::arrow::array::TimestampNanosecondArray;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

/// The zone of `now()`'s type.
const UTC: &str = "+00:00";

/// Registers `clock_timestamp`.
pub(crate) fn register(ctx: &datafusion::prelude::SessionContext) {
    ctx.register_udf(ScalarUDF::new_from_impl(ClockTimestamp {
        signature: Signature::nullary(Volatility::Volatile),
    }));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct ClockTimestamp {
    signature: Signature,
}

impl ScalarUDFImpl for ClockTimestamp {
    fn name(&self) -> &str {
        "clock_timestamp"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into())))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let readings = (0..args.number_rows.max(1))
            .map(|_| {
                chrono::Utc::now().timestamp_nanos_opt().ok_or_else(|| {
                    DataFusionError::Execution("the clock is beyond timestamp's range".into())
                })
            })
            .collect::<DfResult<Vec<i64>>>()?;
        let array = TimestampNanosecondArray::from(readings).with_timezone(UTC);
        Ok(ColumnarValue::Array(Arc::new(array)))
    }
}

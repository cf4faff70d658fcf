//! Min/max statistics of segment files, kept in memory so that a scan can
//! skip an evicted segment whose values its filter rules out without
//! reading the file.
//!
//! A checkpoint writes each segment file with Parquet's column-chunk
//! statistics (one min, max and null count per column and row group), and
//! [`FileBounds`] holds them as Arrow arrays, one entry per row group, in
//! the column's own type. They are taken from the file's footer when the
//! file is written or opened at recovery, never recomputed.
//!
//! The bounds cover every row stored in the file, deleted ones included, so
//! they are a superset of what any snapshot sees: a segment they rule out
//! holds no visible row that could match. What is not known is left out
//! (null), and a reader must then keep the segment:
//! - files written before statistics were (no statistics at all);
//! - floating-point columns, whose Parquet statistics leave out NaN while
//!   SQL orders NaN above every number;
//! - columns added to the table after the segment was written.

use arrow::array::{Array, ArrayRef, UInt64Array};
use arrow::datatypes::{DataType, Schema};
use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
use parquet::file::metadata::RowGroupMetaData;

/// A copy of `array` in buffers of its exact size.
fn compact(array: &dyn Array) -> Option<ArrayRef> {
    let len = u32::try_from(array.len()).ok()?;
    let all = arrow::array::UInt32Array::from_iter_values(0..len);
    arrow::compute::take(array, &all, None).ok()
}

/// Statistics of one data column of a segment file, per row group.
#[derive(Debug, Clone)]
pub struct ColumnBounds {
    /// Smallest value per row group; null where unknown.
    pub mins: ArrayRef,
    /// Largest value per row group; null where unknown.
    pub maxes: ArrayRef,
    /// Nulls per row group; null where unknown.
    pub null_counts: UInt64Array,
}

/// Statistics of a segment file's data columns.
#[derive(Debug, Default)]
pub(crate) struct FileBounds {
    /// Rows per row group.
    pub(crate) row_counts: Option<UInt64Array>,
    /// One entry per data column of the file, in order; `None` where the
    /// column's statistics are not usable (see the module docs).
    pub(crate) columns: Vec<Option<ColumnBounds>>,
}

impl FileBounds {
    /// Reads the statistics of the first `data_columns` columns of a file
    /// whose Arrow schema is `schema`, from its row groups' metadata.
    /// Statistics that cannot be read are left unknown rather than failing:
    /// they only ever let a scan skip work.
    pub(crate) fn from_row_groups(
        row_groups: &[RowGroupMetaData],
        schema: &Schema,
        data_columns: usize,
    ) -> FileBounds {
        let Some(first) = row_groups.first() else {
            return FileBounds::default();
        };
        let parquet_schema = first.schema_descr();
        let columns = schema
            .fields()
            .iter()
            .take(data_columns)
            .map(|field| {
                if matches!(
                    field.data_type(),
                    DataType::Float16 | DataType::Float32 | DataType::Float64
                ) {
                    return None;
                }
                let converter = StatisticsConverter::try_new(field.name(), schema, parquet_schema)
                    .ok()?
                    .with_missing_null_counts_as_zero(false);
                converter.parquet_column_index()?;
                let mins = converter.row_group_mins(row_groups).ok()?;
                let maxes = converter.row_group_maxes(row_groups).ok()?;
                let null_counts = converter.row_group_null_counts(row_groups).ok()?;
                let known = mins.len() == row_groups.len()
                    && maxes.len() == row_groups.len()
                    && null_counts.len() == row_groups.len()
                    && mins.data_type() == field.data_type()
                    && maxes.data_type() == field.data_type();
                if !known {
                    return None;
                }
                // The converter's builders leave spare capacity (kilobytes
                // per array); kept for the segment's life, the arrays are
                // copied to their exact size.
                Some(ColumnBounds {
                    mins: compact(&mins)?,
                    maxes: compact(&maxes)?,
                    null_counts: compact(&null_counts)?
                        .as_any()
                        .downcast_ref::<UInt64Array>()?
                        .clone(),
                })
            })
            .collect();
        let row_counts = row_groups
            .iter()
            .map(|rg| u64::try_from(rg.num_rows()).ok())
            .collect::<Option<Vec<u64>>>()
            .map(UInt64Array::from);
        FileBounds {
            row_counts,
            columns,
        }
    }

    /// Memory held by the statistics.
    pub(crate) fn bytes(&self) -> usize {
        let columns: usize = self
            .columns
            .iter()
            .flatten()
            .map(|c| {
                c.mins.get_array_memory_size()
                    + c.maxes.get_array_memory_size()
                    + c.null_counts.get_array_memory_size()
            })
            .sum();
        columns
            + self
                .row_counts
                .as_ref()
                .map_or(0, |r| r.get_array_memory_size())
    }
}

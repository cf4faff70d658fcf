//! The values of some columns of a row as one hashable, comparable key.
//!
//! Arrow's row format ([`RowConverter`]) encodes any column types into byte
//! strings that compare and hash as the values do. `ON CONFLICT DO UPDATE`
//! uses it to find a key proposed twice in one statement and to tell the
//! rows whose key was free from those whose key was taken.

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{OwnedRow, RowConverter, SortField};

use crate::EngineError;

/// Encodes the key columns at `positions` of batches with one schema.
pub(crate) struct RowKeys {
    converter: RowConverter,
    positions: Vec<usize>,
}

impl RowKeys {
    /// Keys over the columns of `schema` named `columns`.
    pub(crate) fn new(schema: &SchemaRef, columns: &[String]) -> Result<RowKeys, EngineError> {
        let positions = columns
            .iter()
            .map(|c| schema.index_of(c))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        let fields = positions
            .iter()
            .map(|&i| SortField::new(schema.field(i).data_type().clone()))
            .collect();
        let converter =
            RowConverter::new(fields).map_err(|e| EngineError::new("XX000", e.to_string()))?;
        Ok(RowKeys {
            converter,
            positions,
        })
    }

    /// Each row's key, or `None` where a key column is NULL (such a key
    /// never conflicts, as in SQL).
    pub(crate) fn keys(&self, batch: &RecordBatch) -> Result<Vec<Option<OwnedRow>>, EngineError> {
        let columns: Vec<ArrayRef> = self
            .positions
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(|e| EngineError::new("XX000", e.to_string()))?;
        Ok((0..batch.num_rows())
            .map(|r| {
                let null = columns.iter().any(|c| c.is_null(r));
                (!null).then(|| rows.row(r).owned())
            })
            .collect())
    }
}

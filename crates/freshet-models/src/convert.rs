//! Arrow ↔ tract tensor conversion for one scoring chunk.
//!
//! Inputs arrive as one Arrow column per SQL argument (already cast and free
//! of NULLs); a wide model input `[N, F]` is assembled row-major from `F`
//! columns. Outputs go the other way: a tensor `[n, ...]` becomes a column
//! whose layout was fixed at compile time (see `signature::OutputLayout`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, FixedSizeListArray, Float32Array, Float64Array,
    Int32Array, Int64Array, ListArray, MapArray, StringArray, StructArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Int32Type, Int64Type};
use tract_onnx::prelude::*;

use crate::error::ModelError;
use crate::signature::{zipmap_entries_field, ElemType, OutputLayout, ZipMapLabels};

fn shape(len: usize, cols: usize, rank1: bool) -> Vec<usize> {
    if rank1 {
        vec![len]
    } else {
        vec![len, cols]
    }
}

/// Build the input tensor for rows `start..start+len` from `cols` columns.
pub(crate) fn input_tensor(
    elem: ElemType,
    cols: &[ArrayRef],
    start: usize,
    len: usize,
    rank1: bool,
) -> Result<Tensor, ModelError> {
    let f = cols.len();
    let shape = shape(len, f, rank1);
    macro_rules! prim {
        ($arrow:ty, $rust:ty) => {{
            let mut data: Vec<$rust> = vec![Default::default(); len * f];
            for (c, col) in cols.iter().enumerate() {
                let col = col.as_primitive_opt::<$arrow>().ok_or_else(|| {
                    ModelError::Internal(format!(
                        "argument is {}, expected {:?}",
                        col.data_type(),
                        elem
                    ))
                })?;
                let values = &col.values()[start..start + len];
                for (r, v) in values.iter().enumerate() {
                    data[r * f + c] = *v;
                }
            }
            Tensor::from_shape(&shape, &data).map_err(|e| ModelError::Internal(e.to_string()))
        }};
    }
    match elem {
        ElemType::Float32 => prim!(Float32Type, f32),
        ElemType::Float64 => prim!(Float64Type, f64),
        ElemType::Int64 => prim!(Int64Type, i64),
        ElemType::Int32 => prim!(Int32Type, i32),
        ElemType::Bool => {
            let mut data = vec![false; len * f];
            for (c, col) in cols.iter().enumerate() {
                let col = col
                    .as_boolean_opt()
                    .ok_or_else(|| ModelError::Internal("argument is not boolean".into()))?;
                for r in 0..len {
                    data[r * f + c] = col.value(start + r);
                }
            }
            Tensor::from_shape(&shape, &data).map_err(|e| ModelError::Internal(e.to_string()))
        }
        ElemType::String => {
            let mut data = vec![String::new(); len * f];
            for (c, col) in cols.iter().enumerate() {
                let col = col
                    .as_string_opt::<i32>()
                    .ok_or_else(|| ModelError::Internal("argument is not utf8".into()))?;
                for r in 0..len {
                    data[r * f + c] = col.value(start + r).to_string();
                }
            }
            tract_ndarray::ArrayD::from_shape_vec(shape, data)
                .map(|a| a.into_tensor())
                .map_err(|e| ModelError::Internal(e.to_string()))
        }
    }
}

/// Flat values of a tensor as an Arrow array of `elem`.
fn flat_values(t: &Tensor, elem: ElemType) -> Result<ArrayRef, ModelError> {
    let err = |e: TractError| ModelError::Internal(e.to_string());
    Ok(match elem {
        ElemType::Float32 => {
            let t = t.cast_to::<f32>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(Float32Array::from(
                v.as_slice::<f32>().map_err(err)?.to_vec(),
            ))
        }
        ElemType::Float64 => {
            let t = t.cast_to::<f64>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(Float64Array::from(
                v.as_slice::<f64>().map_err(err)?.to_vec(),
            ))
        }
        ElemType::Int64 => {
            let t = t.cast_to::<i64>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(Int64Array::from(v.as_slice::<i64>().map_err(err)?.to_vec()))
        }
        ElemType::Int32 => {
            let t = t.cast_to::<i32>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(Int32Array::from(v.as_slice::<i32>().map_err(err)?.to_vec()))
        }
        ElemType::Bool => {
            let t = t.cast_to::<bool>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(BooleanArray::from(
                v.as_slice::<bool>().map_err(err)?.to_vec(),
            ))
        }
        ElemType::String => {
            let t = t.cast_to::<String>().map_err(err)?;
            let v = t.try_as_plain_ram().map_err(err)?;
            Arc::new(StringArray::from_iter_values(
                v.as_slice::<String>().map_err(err)?.iter(),
            ))
        }
    })
}

/// Convert one output tensor of a chunk of `rows` rows to an Arrow column.
pub(crate) fn output_array(
    t: &Tensor,
    layout: &OutputLayout,
    rows: usize,
    name: &str,
) -> Result<ArrayRef, ModelError> {
    let leading = t.shape().first().copied();
    if leading != Some(rows) {
        return Err(ModelError::Internal(format!(
            "output {name} has shape {:?}, expected {rows} rows",
            t.shape()
        )));
    }
    let per_row = t.len().checked_div(rows).unwrap_or(0);
    let elem = match layout {
        OutputLayout::Scalar(e) | OutputLayout::Fixed(e, _) | OutputLayout::Variable(e) => *e,
        OutputLayout::ZipMap(_) => ElemType::Float32,
    };
    shaped_output(flat_values(t, elem)?, layout, rows, per_row, name)
}

/// An output column of `layout` from its flat values (`per_row` per row,
/// row-major), as [`output_array`] builds it from a tensor; also used by
/// kernels that score straight from Arrow columns.
pub(crate) fn shaped_output(
    values: ArrayRef,
    layout: &OutputLayout,
    rows: usize,
    per_row: usize,
    name: &str,
) -> Result<ArrayRef, ModelError> {
    match layout {
        OutputLayout::Scalar(_) => {
            if per_row != 1 && rows > 0 {
                return Err(ModelError::Internal(format!(
                    "output {name}: {per_row} values per row, expected 1"
                )));
            }
            Ok(values)
        }
        OutputLayout::Fixed(e, k) => {
            if rows > 0 && per_row != *k as usize {
                return Err(ModelError::Internal(format!(
                    "output {name}: {per_row} values per row, expected {k}"
                )));
            }
            let field = Arc::new(Field::new("item", e.arrow_type(), true));
            let a = FixedSizeListArray::try_new(field, *k, values, None)
                .map_err(ModelError::internal)?;
            Ok(Arc::new(a))
        }
        OutputLayout::Variable(e) => {
            let field = Arc::new(Field::new("item", e.arrow_type(), true));
            let offsets = OffsetBuffer::from_lengths(std::iter::repeat_n(per_row, rows));
            let a =
                ListArray::try_new(field, offsets, values, None).map_err(ModelError::internal)?;
            Ok(Arc::new(a))
        }
        OutputLayout::ZipMap(labels) => {
            let k = labels.len();
            if rows > 0 && per_row != k {
                return Err(ModelError::Internal(format!(
                    "output {name}: {per_row} probabilities, {k} labels"
                )));
            }
            let keys: ArrayRef = match labels {
                ZipMapLabels::Int(l) => {
                    let labels: Vec<String> = l.iter().map(i64::to_string).collect();
                    let keys: Vec<&str> = (0..rows)
                        .flat_map(|_| labels.iter().map(String::as_str))
                        .collect();
                    Arc::new(StringArray::from(keys))
                }
                ZipMapLabels::Str(l) => {
                    let keys: Vec<&str> = (0..rows)
                        .flat_map(|_| l.iter().map(String::as_str))
                        .collect();
                    Arc::new(StringArray::from(keys))
                }
            };
            let entries_field = zipmap_entries_field(labels);
            let DataType::Struct(fields) = entries_field.data_type().clone() else {
                return Err(ModelError::Internal("zipmap entries type".into()));
            };
            let entries = StructArray::try_new(fields, vec![keys, values], None)
                .map_err(ModelError::internal)?;
            let offsets = OffsetBuffer::new(ScalarBuffer::from(
                (0..=rows).map(|i| (i * k) as i32).collect::<Vec<i32>>(),
            ));
            let map = MapArray::try_new(Arc::new(entries_field), offsets, entries, None, false)
                .map_err(ModelError::internal)?;
            Ok(Arc::new(map))
        }
    }
}

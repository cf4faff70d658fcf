//! Element-wise and column-shuffling ONNX-ML operators: `Scaler`,
//! `Binarizer`, `Imputer`, `FeatureVectorizer`, `ArrayFeatureExtractor`.
//!
//! These are what scikit-learn preprocessing steps convert to. They are cheap
//! next to the estimators that follow them, so they are written for clarity:
//! one pass over a contiguous buffer, semantics as in onnxruntime.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{as_f32, boxed, floats_attr, rows_cols, Kernel};

/// Broadcast a per-column parameter vector (length 1 or `cols`).
fn per_column(values: &[f32], cols: usize, what: &str) -> TractResult<Vec<f32>> {
    match values.len() {
        1 => Ok(vec![values[0]; cols]),
        n if n == cols => Ok(values.to_vec()),
        n => bail!("{what} has {n} values but the input has {cols} columns"),
    }
}

fn same_shape_rules<'r, 'p: 'r>(
    s: &mut Solver<'r>,
    inputs: &'p [TensorProxy],
    outputs: &'p [TensorProxy],
) -> InferenceResult {
    check_input_arity(inputs, 1)?;
    s.equals(&outputs[0].rank, &inputs[0].rank)?;
    s.equals(&outputs[0].shape, &inputs[0].shape)?;
    Ok(())
}

// ---------------------------------------------------------------- Scaler

/// `Y = (X - offset) * scale`, per column, always producing float.
#[derive(Debug)]
pub(crate) struct Scaler {
    offset: Vec<f32>,
    scale: Vec<f32>,
}

pub(crate) fn scaler(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let offset = floats_attr(ctx, node, "offset")?.unwrap_or_else(|| vec![0.0]);
    let scale = floats_attr(ctx, node, "scale")?.unwrap_or_else(|| vec![1.0]);
    boxed(Scaler { offset, scale })
}

impl Kernel for Scaler {
    fn name(&self) -> &'static str {
        "Scaler"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_rules(s, inputs, outputs)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(f32::fact(inputs[0].shape.iter())))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = as_f32(&inputs[0])?;
        let (_, cols) = rows_cols(x.shape());
        let offset = per_column(&self.offset, cols, "Scaler offset")?;
        let scale = per_column(&self.scale, cols, "Scaler scale")?;
        let mut out = x.into_owned();
        if cols > 0 {
            let mut view = out.try_as_plain_ram_mut()?;
            for row in view.as_slice_mut::<f32>()?.chunks_mut(cols) {
                for ((v, o), s) in row.iter_mut().zip(&offset).zip(&scale) {
                    *v = (*v - o) * s;
                }
            }
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

// ---------------------------------------------------------------- Binarizer

/// `Y = X > threshold ? 1 : 0`, keeping the input type (float or double).
#[derive(Debug)]
pub(crate) struct Binarizer {
    threshold: f32,
}

pub(crate) fn binarizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let threshold = node.get_attr_opt::<f32>("threshold")?.unwrap_or(0.0);
    boxed(Binarizer { threshold })
}

impl Kernel for Binarizer {
    fn name(&self) -> &'static str {
        "Binarizer"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_rules(s, inputs, outputs)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(inputs[0].datum_type.fact(inputs[0].shape.iter())))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let mut out = inputs[0].clone().into_tensor();
        match out.datum_type() {
            DatumType::F32 => {
                let t = self.threshold;
                for v in out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()? {
                    // NaN compares false, so stays NaN as in onnxruntime
                    if !v.is_nan() {
                        *v = if *v > t { 1.0 } else { 0.0 };
                    }
                }
            }
            DatumType::F64 => {
                let t = self.threshold as f64;
                for v in out.try_as_plain_ram_mut()?.as_slice_mut::<f64>()? {
                    if !v.is_nan() {
                        *v = if *v > t { 1.0 } else { 0.0 };
                    }
                }
            }
            dt => bail!("Binarizer does not support {dt:?} input"),
        }
        Ok(tvec!(out.into_tvalue()))
    }
}

// ---------------------------------------------------------------- Imputer

/// Replace a sentinel (NaN by default for floats) by a per-column value.
#[derive(Debug)]
pub(crate) struct Imputer {
    floats: Option<(Vec<f32>, f32)>,
    ints: Option<(Vec<i64>, i64)>,
}

pub(crate) fn imputer(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let fvals = floats_attr(ctx, node, "imputed_value_floats")?.filter(|v| !v.is_empty());
    let ivals = node
        .get_attr_opt_vec::<i64>("imputed_value_int64s")?
        .filter(|v| !v.is_empty());
    let freplaced = node
        .get_attr_opt::<f32>("replaced_value_float")?
        .unwrap_or(0.0);
    let ireplaced = node
        .get_attr_opt::<i64>("replaced_value_int64")?
        .unwrap_or(0);
    if fvals.is_none() && ivals.is_none() {
        bail!("Imputer needs imputed_value_floats or imputed_value_int64s");
    }
    boxed(Imputer {
        floats: fvals.map(|v| (v, freplaced)),
        ints: ivals.map(|v| (v, ireplaced)),
    })
}

impl Kernel for Imputer {
    fn name(&self) -> &'static str {
        "Imputer"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        same_shape_rules(s, inputs, outputs)?;
        if self.floats.is_some() {
            s.equals(&outputs[0].datum_type, DatumType::F32)?;
        } else {
            s.equals(&outputs[0].datum_type, DatumType::I64)?;
        }
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let dt = if self.floats.is_some() {
            DatumType::F32
        } else {
            DatumType::I64
        };
        Ok(tvec!(dt.fact(inputs[0].shape.iter())))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (_, cols) = rows_cols(inputs[0].shape());
        if let Some((values, replaced)) = &self.floats {
            let values = per_column(values, cols, "Imputer imputed_value_floats")?;
            let mut out = as_f32(&inputs[0])?.into_owned();
            if cols > 0 {
                let mut view = out.try_as_plain_ram_mut()?;
                for row in view.as_slice_mut::<f32>()?.chunks_mut(cols) {
                    for (v, imputed) in row.iter_mut().zip(&values) {
                        if *v == *replaced || (replaced.is_nan() && v.is_nan()) {
                            *v = *imputed;
                        }
                    }
                }
            }
            Ok(tvec!(out.into_tvalue()))
        } else if let Some((values, replaced)) = &self.ints {
            let mut out = inputs[0].cast_to::<i64>()?.into_owned();
            let values: Vec<i64> = match values.len() {
                1 => vec![values[0]; cols],
                n if n == cols => values.clone(),
                n => bail!("Imputer has {n} imputed values but the input has {cols} columns"),
            };
            if cols > 0 {
                let mut view = out.try_as_plain_ram_mut()?;
                for row in view.as_slice_mut::<i64>()?.chunks_mut(cols) {
                    for (v, imputed) in row.iter_mut().zip(&values) {
                        if *v == *replaced {
                            *v = *imputed;
                        }
                    }
                }
            }
            Ok(tvec!(out.into_tvalue()))
        } else {
            bail!("Imputer without imputed values")
        }
    }
}

// ---------------------------------------------------------------- FeatureVectorizer

/// Concatenate several `[N, c_i]` inputs into one float `[N, sum(dims)]`,
/// truncating or zero-padding each input to its declared dimension.
#[derive(Debug)]
pub(crate) struct FeatureVectorizer {
    dims: Vec<usize>,
}

pub(crate) fn feature_vectorizer(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let dims = node.get_attr_vec::<usize>("inputdimensions")?;
    boxed(FeatureVectorizer { dims })
}

impl Kernel for FeatureVectorizer {
    fn name(&self) -> &'static str {
        "FeatureVectorizer"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, self.dims.len())?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        let total: usize = self.dims.iter().sum();
        s.equals(&outputs[0].shape[1], total.to_dim())?;
        s.given(&inputs[0].rank, move |s, rank| {
            if rank >= 2 {
                s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
            }
            Ok(())
        })?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = if inputs[0].rank() >= 2 {
            inputs[0].shape[0].clone()
        } else {
            1.to_dim()
        };
        let total: usize = self.dims.iter().sum();
        Ok(tvec!(f32::fact(&[n, total.to_dim()])))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let total: usize = self.dims.iter().sum();
        let rows = if inputs[0].rank() >= 2 {
            inputs[0].shape()[0]
        } else {
            1
        };
        let mut out = vec![0f32; rows * total];
        let mut offset = 0;
        for (input, &dim) in inputs.iter().zip(&self.dims) {
            let x = as_f32(input)?;
            let (r, cols) = if x.rank() >= 2 {
                (x.shape()[0], x.len() / x.shape()[0].max(1))
            } else {
                (1, x.len())
            };
            if r != rows {
                bail!("FeatureVectorizer inputs disagree on the row count ({r} vs {rows})");
            }
            let data = x.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
            let take = cols.min(dim);
            if cols > 0 {
                for (row, src) in data.chunks(cols).enumerate() {
                    let dst = row * total + offset;
                    out[dst..dst + take].copy_from_slice(&src[..take]);
                }
            }
            offset += dim;
        }
        Ok(tvec!(tract_ndarray::Array2::from_shape_vec(
            (rows, total),
            out
        )?
        .into_tvalue()))
    }
}

// ---------------------------------------------------------------- ArrayFeatureExtractor

/// Select columns (last axis) of X by the int64 indices in Y.
#[derive(Debug)]
pub(crate) struct ArrayFeatureExtractor;

pub(crate) fn array_feature_extractor(
    _ctx: &ParsingContext,
    _node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    boxed(ArrayFeatureExtractor)
}

fn afe_output_shape(x: &[TDim], n_indices: TDim) -> TVec<TDim> {
    if x.len() <= 1 {
        tvec!(1.to_dim(), n_indices)
    } else {
        let mut s: TVec<TDim> = x[..x.len() - 1].iter().cloned().collect();
        s.push(n_indices);
        s
    }
}

impl Kernel for ArrayFeatureExtractor {
    fn name(&self) -> &'static str {
        "ArrayFeatureExtractor"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 2)?;
        s.equals(&outputs[0].datum_type, &inputs[0].datum_type)?;
        s.given(&inputs[0].rank, move |s, rank| {
            s.equals(&outputs[0].rank, rank.max(2))?;
            Ok(())
        })?;
        s.given_2(&inputs[0].shape, &inputs[1].shape, move |s, xs, ys| {
            let n: TDim = ys.iter().product();
            s.equals(&outputs[0].shape, afe_output_shape(&xs, n))?;
            Ok(())
        })?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n: TDim = inputs[1].shape.iter().product();
        let shape = afe_output_shape(&inputs[0].shape.to_tvec(), n);
        Ok(tvec!(inputs[0].datum_type.fact(&*shape)))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let idx = inputs[1].cast_to::<i64>()?;
        let idx = idx.try_as_plain_ram()?.as_slice::<i64>()?.to_vec();
        let (rows, cols) = rows_cols(x.shape());
        let mut picks = Vec::with_capacity(idx.len());
        for &i in &idx {
            if i < 0 || i as usize >= cols {
                bail!("ArrayFeatureExtractor index {i} out of range for {cols} columns");
            }
            picks.push(i as usize);
        }
        let mut shape: Vec<usize> = if x.rank() <= 1 {
            vec![1]
        } else {
            x.shape()[..x.rank() - 1].to_vec()
        };
        shape.push(picks.len());
        fn gather<T: Datum + Clone>(
            x: &Tensor,
            rows: usize,
            cols: usize,
            picks: &[usize],
            shape: &[usize],
        ) -> TractResult<Tensor> {
            let data = x.try_as_plain_ram()?;
            let data = data.as_slice::<T>()?;
            let mut out = Vec::with_capacity(rows * picks.len());
            for r in 0..rows {
                for &p in picks {
                    out.push(data[r * cols + p].clone());
                }
            }
            Ok(tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), out)?.into_tensor())
        }
        let out = match x.datum_type() {
            DatumType::F32 => gather::<f32>(x, rows, cols, &picks, &shape)?,
            DatumType::F64 => gather::<f64>(x, rows, cols, &picks, &shape)?,
            DatumType::I64 => gather::<i64>(x, rows, cols, &picks, &shape)?,
            DatumType::I32 => gather::<i32>(x, rows, cols, &picks, &shape)?,
            DatumType::String => gather::<String>(x, rows, cols, &picks, &shape)?,
            DatumType::Bool => gather::<bool>(x, rows, cols, &picks, &shape)?,
            DatumType::TDim => gather::<TDim>(x, rows, cols, &picks, &shape)?,
            dt => bail!("ArrayFeatureExtractor does not support {dt:?}"),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

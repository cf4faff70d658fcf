//! Categorical encoders: `OneHotEncoder` and `LabelEncoder` (all opset
//! flavours). These are where string columns enter a model, so they are also
//! where unseen categories are handled: exactly as onnxruntime does (an
//! all-zero one-hot row when `zeros=1`, the default value for LabelEncoder).

use std::collections::HashMap;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{boxed, ml_opset, tensor_attr, Kernel};

/// Lookup keys of one of the three ONNX-ML key types.
#[derive(Debug)]
enum Keys {
    Str(HashMap<String, usize>),
    Int(HashMap<i64, usize>),
    /// Keyed by bit pattern; NaN keys are normalised so NaN finds NaN.
    Float(HashMap<u32, usize>),
}

fn float_key(v: f32) -> u32 {
    if v.is_nan() {
        f32::NAN.to_bits()
    } else if v == 0.0 {
        0 // -0.0 == 0.0
    } else {
        v.to_bits()
    }
}

impl Keys {
    fn strings(v: &[String]) -> Keys {
        let mut m = HashMap::with_capacity(v.len());
        for (i, k) in v.iter().enumerate() {
            m.entry(k.clone()).or_insert(i);
        }
        Keys::Str(m)
    }
    fn ints(v: &[i64]) -> Keys {
        let mut m = HashMap::with_capacity(v.len());
        for (i, k) in v.iter().enumerate() {
            m.entry(*k).or_insert(i);
        }
        Keys::Int(m)
    }
    fn floats(v: &[f32]) -> Keys {
        let mut m = HashMap::with_capacity(v.len());
        for (i, k) in v.iter().enumerate() {
            m.entry(float_key(*k)).or_insert(i);
        }
        Keys::Float(m)
    }
    fn len(&self) -> usize {
        match self {
            Keys::Str(m) => m.len(),
            Keys::Int(m) => m.len(),
            Keys::Float(m) => m.len(),
        }
    }

    /// Position of each input element in the key list (None = unseen).
    fn lookup(&self, x: &Tensor) -> TractResult<Vec<Option<usize>>> {
        Ok(match self {
            Keys::Str(m) => {
                if x.datum_type() != DatumType::String {
                    bail!("expected string input, got {:?}", x.datum_type());
                }
                let view = x.try_as_plain_ram()?;
                view.as_slice::<String>()?
                    .iter()
                    .map(|s| m.get(s).copied())
                    .collect()
            }
            Keys::Int(m) => {
                let x = if x.datum_type().is_float() {
                    // onnxruntime truncates float inputs to int64 keys
                    x.cast_to::<f64>()?.cast_to::<i64>()?.into_owned()
                } else {
                    x.cast_to::<i64>()?.into_owned()
                };
                let view = x.try_as_plain_ram()?;
                view.as_slice::<i64>()?
                    .iter()
                    .map(|k| m.get(k).copied())
                    .collect()
            }
            Keys::Float(m) => {
                let x = x.cast_to::<f32>()?;
                let view = x.try_as_plain_ram()?;
                view.as_slice::<f32>()?
                    .iter()
                    .map(|k| m.get(&float_key(*k)).copied())
                    .collect()
            }
        })
    }
}

// ---------------------------------------------------------------- OneHotEncoder

/// One float column per category; unseen values give all zeros (`zeros=1`)
/// or an error (`zeros=0`).
#[derive(Debug)]
pub(crate) struct OneHotEncoder {
    keys: Keys,
    zeros: bool,
}

pub(crate) fn one_hot_encoder(
    _ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let keys = if let Some(s) = node.get_attr_opt_vec::<String>("cats_strings")? {
        Keys::strings(&s)
    } else if let Some(i) = node.get_attr_opt_vec::<i64>("cats_int64s")? {
        Keys::ints(&i)
    } else {
        bail!("OneHotEncoder needs cats_strings or cats_int64s")
    };
    let zeros = node.get_attr_opt::<i64>("zeros")?.unwrap_or(1) != 0;
    boxed(OneHotEncoder { keys, zeros })
}

impl Kernel for OneHotEncoder {
    fn name(&self) -> &'static str {
        "OneHotEncoder"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, inputs[0].rank.bex() + 1)?;
        let k = self.keys.len();
        s.given(&inputs[0].shape, move |s, shape| {
            let mut out = shape.clone();
            out.push(k.to_dim());
            s.equals(&outputs[0].shape, out)?;
            Ok(())
        })?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut shape = inputs[0].shape.to_tvec();
        shape.push(self.keys.len().to_dim());
        Ok(tvec!(f32::fact(&*shape)))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let k = self.keys.len();
        let hits = self.keys.lookup(x)?;
        let mut out = vec![0f32; hits.len() * k];
        for (i, hit) in hits.iter().enumerate() {
            match hit {
                Some(j) => out[i * k + j] = 1.0,
                None if !self.zeros => bail!("OneHotEncoder: unknown category and zeros=0"),
                None => {}
            }
        }
        let mut shape: Vec<usize> = x.shape().to_vec();
        shape.push(k);
        Ok(tvec!(
            tract_ndarray::ArrayD::from_shape_vec(shape, out)?.into_tvalue()
        ))
    }
}

// ---------------------------------------------------------------- LabelEncoder

/// Output values of a LabelEncoder, parallel to its keys.
#[derive(Debug)]
enum Values {
    Str(Vec<String>, String),
    Int(Vec<i64>, i64),
    Float(Vec<f32>, f32),
}

/// Map each input element through a key → value table, with a default for
/// keys not in the table.
#[derive(Debug)]
pub(crate) struct LabelEncoder {
    keys: Keys,
    values: Values,
}

pub(crate) fn label_encoder(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let default_string = node.get_attr_opt::<String>("default_string")?;
    let default_int = node.get_attr_opt::<i64>("default_int64")?;
    let default_float = node.get_attr_opt::<f32>("default_float")?;
    if ml_opset(ctx) == 1
        || node
            .get_attr_opt_vec::<String>("classes_strings")?
            .is_some()
    {
        // opset 1: classes_strings maps string <-> its index; direction is
        // decided by the input type at runtime, so build both tables.
        let classes = node
            .get_attr_opt_vec::<String>("classes_strings")?
            .unwrap_or_default();
        return boxed(LabelEncoderV1 {
            index: Keys::strings(&classes),
            classes,
            default_int: default_int.unwrap_or(-1),
            default_string: default_string.unwrap_or_else(|| "_Unused".into()),
        });
    }
    let keys = if let Some(t) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>("keys_tensor")? {
        let t = ctx.load_tensor(t)?;
        tensor_keys(&t)?
    } else if let Some(v) = node.get_attr_opt_vec::<String>("keys_strings")? {
        Keys::strings(&v)
    } else if let Some(v) = node.get_attr_opt_vec::<i64>("keys_int64s")? {
        Keys::ints(&v)
    } else if let Some(v) = node.get_attr_opt_vec::<f32>("keys_floats")? {
        Keys::floats(&v)
    } else {
        bail!("LabelEncoder needs keys_strings, keys_int64s, keys_floats or keys_tensor")
    };
    let default_tensor = tensor_attr::<f32>(ctx, node, "default_tensor")
        .ok()
        .flatten();
    let values = if let Some(t) =
        node.get_attr_opt::<&tract_onnx::pb::TensorProto>("values_tensor")?
    {
        let t = ctx.load_tensor(t)?;
        match t.datum_type() {
            DatumType::String => {
                let d = default_string_tensor(ctx, node)?.or(default_string);
                Values::Str(
                    t.try_as_plain_ram()?.as_slice::<String>()?.to_vec(),
                    d.unwrap_or_else(|| "_Unused".into()),
                )
            }
            dt if dt.is_float() => {
                let t = t.cast_to::<f32>()?;
                Values::Float(
                    t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
                    default_tensor
                        .and_then(|d| d.first().copied())
                        .unwrap_or(-0.0),
                )
            }
            _ => {
                let t = t.cast_to::<i64>()?;
                let d = tensor_attr::<i64>(ctx, node, "default_tensor")
                    .ok()
                    .flatten();
                Values::Int(
                    t.try_as_plain_ram()?.as_slice::<i64>()?.to_vec(),
                    d.and_then(|d| d.first().copied())
                        .or(default_int)
                        .unwrap_or(-1),
                )
            }
        }
    } else if let Some(v) = node.get_attr_opt_vec::<String>("values_strings")? {
        Values::Str(v, default_string.unwrap_or_else(|| "_Unused".into()))
    } else if let Some(v) = node.get_attr_opt_vec::<i64>("values_int64s")? {
        Values::Int(v, default_int.unwrap_or(-1))
    } else if let Some(v) = node.get_attr_opt_vec::<f32>("values_floats")? {
        Values::Float(v, default_float.unwrap_or(-0.0))
    } else {
        bail!("LabelEncoder needs values_strings, values_int64s, values_floats or values_tensor")
    };
    boxed(LabelEncoder { keys, values })
}

fn default_string_tensor(ctx: &ParsingContext, node: &NodeProto) -> TractResult<Option<String>> {
    match node.get_attr_opt::<&tract_onnx::pb::TensorProto>("default_tensor")? {
        Some(t) => {
            let t = ctx.load_tensor(t)?;
            if t.datum_type() == DatumType::String {
                Ok(t.try_as_plain_ram()?.as_slice::<String>()?.first().cloned())
            } else {
                Ok(None)
            }
        }
        None => Ok(None),
    }
}

fn tensor_keys(t: &Tensor) -> TractResult<Keys> {
    Ok(match t.datum_type() {
        DatumType::String => Keys::strings(t.try_as_plain_ram()?.as_slice::<String>()?),
        dt if dt.is_float() => {
            let t = t.cast_to::<f32>()?;
            Keys::floats(t.try_as_plain_ram()?.as_slice::<f32>()?)
        }
        _ => {
            let t = t.cast_to::<i64>()?;
            Keys::ints(t.try_as_plain_ram()?.as_slice::<i64>()?)
        }
    })
}

impl LabelEncoder {
    fn out_type(&self) -> DatumType {
        match self.values {
            Values::Str(..) => DatumType::String,
            Values::Int(..) => DatumType::I64,
            Values::Float(..) => DatumType::F32,
        }
    }
}

impl Kernel for LabelEncoder {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].datum_type, self.out_type())?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(self.out_type().fact(inputs[0].shape.iter())))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let hits = self.keys.lookup(x)?;
        let shape = x.shape().to_vec();
        let out = match &self.values {
            Values::Str(v, d) => tract_ndarray::ArrayD::from_shape_vec(
                shape,
                hits.iter()
                    .map(|h| h.and_then(|i| v.get(i)).unwrap_or(d).clone())
                    .collect(),
            )?
            .into_tensor(),
            Values::Int(v, d) => tract_ndarray::ArrayD::from_shape_vec(
                shape,
                hits.iter()
                    .map(|h| *h.and_then(|i| v.get(i)).unwrap_or(d))
                    .collect(),
            )?
            .into_tensor(),
            Values::Float(v, d) => tract_ndarray::ArrayD::from_shape_vec(
                shape,
                hits.iter()
                    .map(|h| *h.and_then(|i| v.get(i)).unwrap_or(d))
                    .collect(),
            )?
            .into_tensor(),
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

/// ai.onnx.ml opset-1 LabelEncoder: string → index or index → string,
/// depending on the input type.
#[derive(Debug)]
pub(crate) struct LabelEncoderV1 {
    index: Keys,
    classes: Vec<String>,
    default_int: i64,
    default_string: String,
}

impl Kernel for LabelEncoderV1 {
    fn name(&self) -> &'static str {
        "LabelEncoder"
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].rank, &inputs[0].rank)?;
        s.equals(&outputs[0].shape, &inputs[0].shape)?;
        s.given(&inputs[0].datum_type, move |s, dt| {
            let out = if dt == DatumType::String {
                DatumType::I64
            } else {
                DatumType::String
            };
            s.equals(&outputs[0].datum_type, out)?;
            Ok(())
        })?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let out = if inputs[0].datum_type == DatumType::String {
            DatumType::I64
        } else {
            DatumType::String
        };
        Ok(tvec!(out.fact(inputs[0].shape.iter())))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = &inputs[0];
        let shape = x.shape().to_vec();
        let out = if x.datum_type() == DatumType::String {
            let hits = self.index.lookup(x)?;
            tract_ndarray::ArrayD::from_shape_vec(
                shape,
                hits.iter()
                    .map(|h| h.map(|i| i as i64).unwrap_or(self.default_int))
                    .collect(),
            )?
            .into_tensor()
        } else {
            let ix = x.cast_to::<i64>()?;
            let view = ix.try_as_plain_ram()?;
            let strings: Vec<String> = view
                .as_slice::<i64>()?
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| self.classes.get(i))
                        .unwrap_or(&self.default_string)
                        .clone()
                })
                .collect();
            tract_ndarray::ArrayD::from_shape_vec(shape, strings)?.into_tensor()
        };
        Ok(tvec!(out.into_tvalue()))
    }
}

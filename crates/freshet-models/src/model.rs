//! Loading an ONNX model into an optimized tract plan, and scoring Arrow
//! arrays with it.
//!
//! Loading is where all validation happens (so `CREATE MODEL` fails, not the
//! first query): the protobuf is decoded, every operator is checked against
//! what Freshet can run, ZipMap nodes are peeled off (their output is a
//! sequence of maps, which tract cannot represent; we rebuild it as an Arrow
//! `Map` from the probability tensor), the batch dimension is bound to one
//! symbol across all inputs, and the graph is optimized into a runnable plan.
//!
//! Scoring casts the arguments to the input types, drops rows holding a
//! NULL, cuts the rest into `batch_size` chunks scored in parallel on rayon
//! (a tract plan is immutable; each run gets fresh state), and scatters the
//! results back so NULL rows come out as NULL.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, BooleanArray, StructArray, UInt32Array};
use arrow::buffer::NullBuffer;
use arrow::compute::{cast_with_options, concat, filter, take, CastOptions};
use rayon::prelude::*;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::convert::{input_tensor, output_array};
use crate::direct::Direct;
use crate::error::{chain, ModelError};
use crate::ops::{onnx_framework, PRESENTATION_OPS};
use crate::signature::{ArgMap, ElemType, ModelSignature, OutputLayout, TensorSpec, ZipMapLabels};

type Plan = Arc<TypedRunnableModel>;

/// Rows below which a batch is not split further just to use more cores.
const MIN_PARALLEL_CHUNK: usize = 1024;
/// The same for a model scored directly from Arrow columns (see
/// [`crate::direct`]): at a few nanoseconds a row, handing a query's batch
/// to other threads costs more than scoring it, and the query's partitions
/// already keep the cores busy.
const MIN_PARALLEL_DIRECT_CHUNK: usize = 1 << 16;

/// Parse and fully validate a model, returning its SQL signature.
///
/// This builds the same optimized plan [`CompiledModel::compile`] does, so a
/// model that passes `inspect` will run; an unsupported operator is reported
/// by name here rather than at first use.
pub fn inspect(onnx_bytes: &[u8]) -> Result<ModelSignature, ModelError> {
    Ok(CompiledModel::compile(onnx_bytes)?.signature)
}

/// A model ready to score: signature plus optimized tract plan.
///
/// `Send + Sync`; share it behind an `Arc` (see [`crate::ModelCache`]).
pub struct CompiledModel {
    signature: ModelSignature,
    plan: Plan,
    /// Set when the model can be scored straight from Arrow columns (see
    /// [`crate::direct`]); `plan` serves it otherwise.
    pub(crate) direct: Option<Direct>,
}

impl std::fmt::Debug for CompiledModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledModel")
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> ModelError {
    ModelError::InvalidModel(msg.into())
}

/// Catch panics from the inference engine: a malformed model or input must
/// become an error, never take the server down.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, ModelError>) -> Result<T, ModelError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(ModelError::Internal(format!("{what} panicked: {msg}")))
        }
    }
}

impl CompiledModel {
    /// Decode, validate and optimize a model. See the module docs.
    pub fn compile(onnx_bytes: &[u8]) -> Result<CompiledModel, ModelError> {
        guarded("model compilation", || compile_inner(onnx_bytes))
    }

    /// The model's SQL signature.
    pub fn signature(&self) -> &ModelSignature {
        &self.signature
    }

    /// Score `args` (one array per SQL argument, all of the same length).
    ///
    /// Returns an array of `signature().output_type(method)` with one row per
    /// input row; rows where any argument is NULL are NULL and never reach
    /// the model. `batch_size` (clamped to at least 1) bounds the rows per
    /// engine call; chunks run in parallel on the current rayon pool, and a
    /// batch large enough is split across the pool's threads even when it is
    /// within `batch_size`.
    pub fn predict(
        &self,
        method: &str,
        args: &[ArrayRef],
        batch_size: usize,
    ) -> Result<ArrayRef, ModelError> {
        self.predict_counted(method, args, batch_size)
            .map(|(output, _)| output)
    }

    /// [`predict`](Self::predict), also returning how many rows reached the
    /// model (rows with a NULL argument do not): the work done, for callers
    /// that report it.
    pub fn predict_counted(
        &self,
        method: &str,
        args: &[ArrayRef],
        batch_size: usize,
    ) -> Result<(ArrayRef, usize), ModelError> {
        let sig = &self.signature;
        let out_type = sig.output_type(method)?;
        if args.len() != sig.arity() {
            return Err(ModelError::WrongArity {
                method: method.to_string(),
                expected: sig.arity(),
                got: args.len(),
            });
        }
        let n = args.first().map(|a| a.len()).unwrap_or(0);
        if let Some(bad) = args.iter().find(|a| a.len() != n) {
            return Err(ModelError::Internal(format!(
                "argument arrays have different lengths ({} vs {n})",
                bad.len()
            )));
        }
        let args = self.cast_args(args)?;

        // rows with any NULL argument are not scored
        let validity = args.iter().fold(None::<NullBuffer>, |acc, a| {
            NullBuffer::union(acc.as_ref(), a.logical_nulls().as_ref())
        });
        let valid_rows = validity.as_ref().map(|v| n - v.null_count()).unwrap_or(n);
        if valid_rows == 0 {
            return Ok((new_null_array(&out_type, n), 0));
        }
        let compact: Vec<ArrayRef> = match &validity {
            Some(v) if v.null_count() > 0 => {
                let mask = BooleanArray::new(v.inner().clone(), None);
                args.iter()
                    .map(|a| filter(a.as_ref(), &mask).map_err(ModelError::internal))
                    .collect::<Result<_, _>>()?
            }
            _ => args,
        };

        let outputs = self.score(&compact, valid_rows, batch_size.max(1))?;

        // scatter back to n rows, NULL where an argument was NULL
        let outputs: Vec<ArrayRef> = match &validity {
            Some(v) if v.null_count() > 0 => {
                let mut next = 0u32;
                let idx: UInt32Array = (0..n)
                    .map(|i| {
                        v.is_valid(i).then(|| {
                            next += 1;
                            next - 1
                        })
                    })
                    .collect();
                outputs
                    .iter()
                    .map(|o| take(o.as_ref(), &idx, None).map_err(ModelError::internal))
                    .collect::<Result<_, _>>()?
            }
            _ => outputs,
        };

        match method {
            "predict" => {
                let nulls = validity.filter(|v| v.null_count() > 0);
                let s = StructArray::try_new(sig.output_fields(), outputs, nulls)
                    .map_err(ModelError::internal)?;
                Ok((Arc::new(s), valid_rows))
            }
            _ => {
                let ix = sig.proba_output.ok_or_else(|| sig.unknown_method(method))?;
                Ok((outputs[ix].clone(), valid_rows))
            }
        }
    }

    /// Cast every argument to its input type, with errors naming the input.
    fn cast_args(&self, args: &[ArrayRef]) -> Result<Vec<ArrayRef>, ModelError> {
        let sig = &self.signature;
        let types = sig.argument_types();
        let opts = CastOptions {
            safe: false,
            ..Default::default()
        };
        args.iter()
            .zip(types.iter())
            .enumerate()
            .map(|(i, (a, t))| {
                if a.data_type() == t {
                    return Ok(a.clone());
                }
                sig.check_argument(i, a.data_type())?;
                let invalid = |e: arrow::error::ArrowError| ModelError::InvalidArgumentValue {
                    position: i + 1,
                    input: sig.argument_name(i),
                    expected: t.to_string(),
                    message: e.to_string(),
                };
                // Arrow truncates fractions when casting to an integer type;
                // Postgres rounds (`1.5::bigint` is 2), and so do we.
                let source = if t.is_integer() && is_fractional(a.data_type()) {
                    round_half_away(a).map_err(invalid)?
                } else {
                    a.clone()
                };
                cast_with_options(source.as_ref(), t, &opts).map_err(invalid)
            })
            .collect()
    }

    /// Score compacted (NULL-free) arguments; returns one array per output.
    fn score(
        &self,
        args: &[ArrayRef],
        rows: usize,
        batch: usize,
    ) -> Result<Vec<ArrayRef>, ModelError> {
        // A query hands over one record batch at a time, usually no larger
        // than the inference batch size: cutting only at `batch` would score
        // it on one core. Spread it over the pool instead, but not into
        // chunks so small that per-call overhead dominates.
        let threads = rayon::current_num_threads().max(1);
        let min_chunk = if self.direct.is_some() {
            MIN_PARALLEL_DIRECT_CHUNK
        } else {
            MIN_PARALLEL_CHUNK
        };
        let batch = batch.min(rows.div_ceil(threads).max(min_chunk));
        let chunks: Vec<(usize, usize)> = (0..rows)
            .step_by(batch)
            .map(|s| (s, batch.min(rows - s)))
            .collect();
        let results: Vec<Vec<ArrayRef>> = if chunks.len() == 1 {
            vec![self.run_chunk(args, 0, rows)?]
        } else {
            chunks
                .par_iter()
                .map(|&(start, len)| self.run_chunk(args, start, len))
                .collect::<Result<_, _>>()?
        };
        let n_out = self.signature.outputs.len();
        (0..n_out)
            .map(|o| {
                if results.len() == 1 {
                    return Ok(results[0][o].clone());
                }
                let parts: Vec<&dyn Array> = results.iter().map(|r| r[o].as_ref()).collect();
                concat(&parts).map_err(ModelError::internal)
            })
            .collect()
    }

    fn run_chunk(
        &self,
        args: &[ArrayRef],
        start: usize,
        len: usize,
    ) -> Result<Vec<ArrayRef>, ModelError> {
        let sig = &self.signature;
        if let Some(direct) = &self.direct {
            return guarded("model execution", || direct.score(sig, args, start, len));
        }
        let inputs: TVec<TValue> = match &sig.arg_map {
            ArgMap::Wide { rank1, .. } => {
                tvec!(input_tensor(sig.inputs[0].elem, args, start, len, *rank1)?.into_tvalue())
            }
            ArgMap::PerInput { rank1 } => sig
                .inputs
                .iter()
                .zip(args)
                .zip(rank1)
                .map(|((spec, a), r1)| {
                    Ok(
                        input_tensor(spec.elem, std::slice::from_ref(a), start, len, *r1)?
                            .into_tvalue(),
                    )
                })
                .collect::<Result<_, ModelError>>()?,
        };
        guarded("model execution", || {
            let outputs = self
                .plan
                .run(inputs)
                .map_err(|e| ModelError::Internal(chain(&e)))?;
            if outputs.len() != sig.outputs.len() {
                return Err(ModelError::Internal(format!(
                    "model produced {} outputs, expected {}",
                    outputs.len(),
                    sig.outputs.len()
                )));
            }
            outputs
                .iter()
                .zip(&sig.layouts)
                .zip(&sig.outputs)
                .map(|((t, layout), spec)| output_array(t, layout, len, &spec.name))
                .collect()
        })
    }
}

fn is_fractional(t: &arrow::datatypes::DataType) -> bool {
    use arrow::datatypes::DataType;
    matches!(
        t,
        DataType::Float16
            | DataType::Float32
            | DataType::Float64
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}

/// `a` as float64 rounded half away from zero, what Postgres does when a
/// float or numeric becomes an integer. NaN stays NaN, so the integer cast
/// that follows reports it instead of inventing a value.
fn round_half_away(a: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    use arrow::array::{AsArray, Float64Array};
    use arrow::datatypes::{DataType, Float64Type};
    let floats = cast_with_options(a.as_ref(), &DataType::Float64, &CastOptions::default())?;
    let rounded: Float64Array = floats.as_primitive::<Float64Type>().unary(f64::round);
    Ok(Arc::new(rounded))
}

// ---------------------------------------------------------------- compilation

fn op_key(node: &pb::NodeProto) -> String {
    if node.domain.is_empty() || node.domain == "ai.onnx" {
        node.op_type.clone()
    } else {
        format!("{}:{}", node.domain, node.op_type)
    }
}

/// Every operator in the graph (and its subgraphs) must be one we can run.
fn check_operators(graph: &pb::GraphProto, known: &HashSet<String>) -> Result<(), ModelError> {
    let mut missing: Vec<String> = Vec::new();
    let mut stack = vec![graph];
    while let Some(g) = stack.pop() {
        for node in &g.node {
            let domain_ok = matches!(node.domain.as_str(), "" | "ai.onnx" | "ai.onnx.ml");
            if !domain_ok || !known.contains(&node.op_type) {
                let k = op_key(node);
                if !missing.contains(&k) {
                    missing.push(k);
                }
            }
            for a in &node.attribute {
                if let Some(g) = &a.g {
                    stack.push(g);
                }
                stack.extend(a.graphs.iter());
            }
        }
    }
    match missing.len() {
        0 => Ok(()),
        1 => Err(ModelError::UnsupportedOperator {
            op: missing.remove(0),
            detail: None,
        }),
        _ => {
            let first = missing.remove(0);
            Err(ModelError::UnsupportedOperator {
                op: first,
                detail: Some(format!("also unsupported: {}", missing.join(", "))),
            })
        }
    }
}

/// Replace ZipMap nodes by Identity, remembering their labels by output name.
fn strip_zipmaps(graph: &mut pb::GraphProto) -> Result<HashMap<String, ZipMapLabels>, ModelError> {
    let mut zipmaps = HashMap::new();
    for node in graph.node.iter_mut().filter(|n| n.op_type == "ZipMap") {
        let ints = node
            .attribute
            .iter()
            .find(|a| a.name == "classlabels_int64s");
        let strs = node
            .attribute
            .iter()
            .find(|a| a.name == "classlabels_strings");
        let labels = match (ints, strs) {
            (Some(a), _) if !a.ints.is_empty() => ZipMapLabels::Int(a.ints.clone()),
            (_, Some(a)) if !a.strings.is_empty() => ZipMapLabels::Str(
                a.strings
                    .iter()
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect(),
            ),
            _ => return Err(invalid("ZipMap node without class labels")),
        };
        let out = node
            .output
            .first()
            .cloned()
            .ok_or_else(|| invalid("ZipMap node without output"))?;
        node.op_type = "Identity".into();
        node.domain = String::new();
        node.attribute.clear();
        zipmaps.insert(out, labels);
    }
    // a ZipMap result is a sequence of maps: only usable as a graph output
    for node in &graph.node {
        if let Some(i) = node.input.iter().find(|i| zipmaps.contains_key(*i)) {
            return Err(ModelError::UnsupportedOperator {
                op: op_key(node),
                detail: Some(format!("consumes the ZipMap output {i}")),
            });
        }
    }
    Ok(zipmaps)
}

fn input_spec(input: &pb::ValueInfoProto) -> Result<TensorSpec, ModelError> {
    let Some(pb::type_proto::Value::TensorType(t)) =
        input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(ModelError::Unsupported(format!(
            "input {} is not a tensor",
            input.name
        )));
    };
    let elem = ElemType::from_onnx(t.elem_type).ok_or_else(|| {
        ModelError::Unsupported(format!(
            "input {} has element type code {}, only float, double, int32, int64, string and bool are supported",
            input.name, t.elem_type
        ))
    })?;
    let shape: Vec<Option<i64>> = match &t.shape {
        Some(s) => s
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v),
                _ => None,
            })
            .collect(),
        None => {
            return Err(ModelError::Unsupported(format!(
                "input {} has no declared shape",
                input.name
            )))
        }
    };
    if shape.is_empty() || shape.len() > 2 {
        return Err(ModelError::Unsupported(format!(
            "input {} has rank {}; only [N] and [N, F] inputs are supported",
            input.name,
            shape.len()
        )));
    }
    // the first dimension is always the batch
    let mut shape = shape;
    shape[0] = None;
    Ok(TensorSpec {
        name: input.name.clone(),
        elem,
        shape,
    })
}

fn datum_type(e: ElemType) -> DatumType {
    match e {
        ElemType::Int64 => DatumType::I64,
        ElemType::Int32 => DatumType::I32,
        ElemType::Float32 => DatumType::F32,
        ElemType::Float64 => DatumType::F64,
        ElemType::String => DatumType::String,
        ElemType::Bool => DatumType::Bool,
    }
}

fn elem_of(dt: DatumType) -> Option<ElemType> {
    Some(match dt {
        DatumType::I64 | DatumType::TDim => ElemType::Int64,
        DatumType::I32 => ElemType::Int32,
        DatumType::F32 => ElemType::Float32,
        DatumType::F64 => ElemType::Float64,
        DatumType::String => ElemType::String,
        DatumType::Bool => ElemType::Bool,
        _ => return None,
    })
}

fn compile_inner(bytes: &[u8]) -> Result<CompiledModel, ModelError> {
    let onnx = onnx_framework();
    let mut reader = bytes;
    let mut proto = onnx
        .proto_model_for_read(&mut reader)
        .map_err(|e| invalid(format!("not an ONNX protobuf: {}", chain(&e))))?;
    let graph = proto
        .graph
        .as_mut()
        .ok_or_else(|| invalid("the model has no graph"))?;
    if graph.node.is_empty() {
        return Err(invalid("the model graph has no nodes"));
    }
    let mut known: HashSet<String> = onnx.op_register.0.keys().cloned().collect();
    known.extend(PRESENTATION_OPS.iter().map(|s| s.to_string()));
    check_operators(graph, &known)?;
    let zipmaps = strip_zipmaps(graph)?;
    crate::ops::dense::fuse_relu(graph);

    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let inputs: Vec<TensorSpec> = graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(input_spec)
        .collect::<Result<_, _>>()?;
    if inputs.is_empty() {
        return Err(invalid("the model has no inputs"));
    }
    let arg_map = if inputs.len() == 1 {
        let i = &inputs[0];
        match i.shape.as_slice() {
            [_] => ArgMap::Wide {
                cols: 1,
                rank1: true,
            },
            [_, Some(f)] => ArgMap::Wide {
                cols: *f as usize,
                rank1: false,
            },
            _ => {
                return Err(ModelError::Unsupported(format!(
                    "input {} has no fixed feature dimension",
                    i.name
                )))
            }
        }
    } else {
        let rank1 = inputs
            .iter()
            .map(|i| match i.shape.as_slice() {
                [_] => Ok(true),
                [_, Some(1)] => Ok(false),
                _ => Err(ModelError::Unsupported(format!(
                    "input {} must be [N] or [N, 1] in a model with several inputs",
                    i.name
                ))),
            })
            .collect::<Result<_, _>>()?;
        ArgMap::PerInput { rank1 }
    };

    let direct = Direct::recognise(graph, &inputs, &arg_map);
    let mut model = onnx
        .model_for_proto_model(&proto)
        .map_err(|e| invalid(chain(&e)))?;
    let batch = model.sym("N");
    for (ix, spec) in inputs.iter().enumerate() {
        let mut shape: TVec<TDim> = tvec![batch.to_dim()];
        shape.extend(spec.shape.iter().skip(1).map(|d| d.unwrap_or(1).to_dim()));
        let fact = InferenceFact::dt_shape(datum_type(spec.elem), shape);
        model = model
            .with_input_fact(ix, fact)
            .map_err(|e| invalid(chain(&e)))?;
    }
    let typed = model.into_optimized().map_err(|e| {
        let msg = chain(&e);
        match msg.find("Unimplemented(") {
            Some(p) => ModelError::UnsupportedOperator {
                op: msg[p + 14..].split(')').next().unwrap_or("?").to_string(),
                detail: Some(msg.clone()),
            },
            None => invalid(msg),
        }
    })?;

    let out_names: Vec<String> = proto
        .graph
        .as_ref()
        .map(|g| g.output.iter().map(|o| o.name.clone()).collect())
        .unwrap_or_default();
    let mut outputs = Vec::new();
    let mut layouts = Vec::new();
    for (ix, name) in out_names.iter().enumerate() {
        let fact = typed.output_fact(ix).map_err(|e| invalid(chain(&e)))?;
        let elem = elem_of(fact.datum_type).ok_or_else(|| {
            ModelError::Unsupported(format!(
                "output {name} has unsupported type {:?}",
                fact.datum_type
            ))
        })?;
        let dims: Vec<Option<i64>> = fact.shape.iter().map(|d| d.to_i64().ok()).collect();
        if dims.is_empty() {
            return Err(ModelError::Unsupported(format!(
                "output {name} is a scalar, not one value per row"
            )));
        }
        let layout = if let Some(labels) = zipmaps.get(name) {
            if elem != ElemType::Float32 || dims.len() != 2 || dims[1] != Some(labels.len() as i64)
            {
                return Err(invalid(format!(
                    "ZipMap {name} input does not match its {} labels",
                    labels.len()
                )));
            }
            OutputLayout::ZipMap(labels.clone())
        } else {
            let trailing = &dims[1..];
            if trailing.iter().all(|d| *d == Some(1)) {
                OutputLayout::Scalar(elem)
            } else if trailing.iter().all(|d| d.is_some()) {
                let k: i64 = trailing.iter().map(|d| d.unwrap_or(1)).product();
                let k = i32::try_from(k)
                    .map_err(|_| ModelError::Unsupported(format!("output {name} too wide")))?;
                OutputLayout::Fixed(elem, k)
            } else {
                OutputLayout::Variable(elem)
            }
        };
        let mut shape = dims;
        shape[0] = None;
        outputs.push(TensorSpec {
            name: name.clone(),
            elem,
            shape,
        });
        layouts.push(layout);
    }
    let proba_output = find_proba(&outputs, &layouts);
    let mut methods = vec!["predict".to_string()];
    if proba_output.is_some() {
        methods.push("predict_proba".to_string());
    }
    let plan = typed.into_runnable().map_err(|e| invalid(chain(&e)))?;
    Ok(CompiledModel {
        signature: ModelSignature {
            inputs,
            outputs,
            methods,
            layouts,
            proba_output,
            arg_map,
        },
        plan,
        direct,
    })
}

/// The probability output, if the model is a classifier: a ZipMap output,
/// else a float vector output named like "prob...", else the float vector
/// of a two-output (label, scores) model, the shape every ONNX-ML
/// classifier operator has.
fn find_proba(outputs: &[TensorSpec], layouts: &[OutputLayout]) -> Option<usize> {
    if let Some(i) = layouts
        .iter()
        .position(|l| matches!(l, OutputLayout::ZipMap(_)))
    {
        return Some(i);
    }
    let is_float_vec = |l: &OutputLayout| {
        matches!(
            l,
            OutputLayout::Fixed(ElemType::Float32 | ElemType::Float64, _)
        )
    };
    if let Some(i) = outputs
        .iter()
        .zip(layouts)
        .position(|(o, l)| is_float_vec(l) && o.name.to_ascii_lowercase().contains("prob"))
    {
        return Some(i);
    }
    let has_label = layouts
        .iter()
        .any(|l| matches!(l, OutputLayout::Scalar(ElemType::Int64 | ElemType::String)));
    let floats: Vec<usize> = layouts
        .iter()
        .enumerate()
        .filter(|(_, l)| is_float_vec(l))
        .map(|(i, _)| i)
        .collect();
    if outputs.len() == 2 && has_label && floats.len() == 1 {
        return Some(floats[0]);
    }
    None
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<CompiledModel>();
}

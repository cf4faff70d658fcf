//! Freshet's own ONNX-ML operator implementations, plugged into tract.
//!
//! tract-onnx implements the core ONNX operator set but only a handful of the
//! `ai.onnx.ml` ones, and for some of those (tree ensembles) its numerical
//! conventions differ from onnxruntime's in the binary-classification corner
//! cases that scikit-learn converters rely on. Since models are validated
//! against onnxruntime outputs, every ML operator a converter emits is
//! implemented here with onnxruntime's semantics and registered into
//! tract-onnx's operator register, replacing tract's version where one exists.
//!
//! All of them share one small adapter: an operator is a [`Kernel`] (type
//! rules for tract's inference pass, output facts for the typed pass, and an
//! `eval` over plain tensors). [`KernelExpansion`] lifts it into tract's
//! inference model, and [`KernelOp`] is the node that ends up in the optimized
//! plan. Kernels are immutable after parsing, so the plan stays `Send + Sync`
//! and one plan can be run from many threads at once.

use std::fmt;
use std::sync::Arc;

use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

pub(crate) mod dense;
pub(crate) mod encoders;
pub(crate) mod linear;
pub(crate) mod simple;
pub(crate) mod tree;

/// An operator implementation independent of tract's two model levels.
pub(crate) trait Kernel: fmt::Debug + Send + Sync + 'static {
    /// Operator name as shown in tract dumps and error messages.
    fn name(&self) -> &'static str;

    /// Number of outputs the operator produces.
    fn n_outputs(&self) -> usize {
        1
    }

    /// Type/shape rules for tract's inference ("hir") pass. They must pin the
    /// output datum types and ranks so downstream core operators type-check.
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult;

    /// Output facts in the typed model (with symbolic batch dimensions).
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>>;

    /// Compute the outputs. Must not keep state between calls.
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;
}

/// Inference-level wrapper: what a parsed ONNX node becomes.
#[derive(Debug, Clone)]
pub(crate) struct KernelExpansion(pub Arc<dyn Kernel>);

impl Expansion for KernelExpansion {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    fn nboutputs(&self) -> TractResult<usize> {
        Ok(self.0.n_outputs())
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_output_arity(outputs, self.0.n_outputs())?;
        self.0.rules(s, inputs, outputs)
    }

    fn wire(
        &self,
        prefix: &str,
        model: &mut TypedModel,
        inputs: &[OutletId],
    ) -> TractResult<TVec<OutletId>> {
        model.wire_node(prefix, KernelOp(self.0.clone()), inputs)
    }
}

/// Typed-level node evaluating a [`Kernel`].
#[derive(Debug, Clone)]
pub(crate) struct KernelOp(pub Arc<dyn Kernel>);

impl PartialEq for KernelOp {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}
impl Eq for KernelOp {}

impl Op for KernelOp {
    fn name(&self) -> StaticName {
        self.0.name().into()
    }

    op_as_typed_op!();
}

impl EvalOp for KernelOp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        self.0.eval(inputs)
    }
}

impl TypedOp for KernelOp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        self.0.output_facts(inputs)
    }

    as_op!();
}

/// Box a kernel as the inference op a tract op builder returns.
pub(crate) fn boxed(k: impl Kernel) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    Ok((expand(KernelExpansion(Arc::new(k))), vec![]))
}

/// The tract ONNX framework with Freshet's ML operators registered.
pub(crate) fn onnx_framework() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    let reg = &mut onnx.op_register;
    reg.insert("TreeEnsembleClassifier", tree::tree_ensemble_classifier);
    reg.insert("TreeEnsembleRegressor", tree::tree_ensemble_regressor);
    reg.insert("LinearClassifier", linear::linear_classifier);
    reg.insert("Scaler", simple::scaler);
    reg.insert("Binarizer", simple::binarizer);
    reg.insert("Imputer", simple::imputer);
    reg.insert("FeatureVectorizer", simple::feature_vectorizer);
    reg.insert("ArrayFeatureExtractor", simple::array_feature_extractor);
    reg.insert("OneHotEncoder", encoders::one_hot_encoder);
    reg.insert("LabelEncoder", encoders::label_encoder);
    // small constant-weight Gemms get Freshet's kernel, the rest tract's
    if let Some(tract_gemm) = reg.0.get("Gemm").copied() {
        let _ = dense::TRACT_GEMM.set(tract_gemm);
        reg.insert("Gemm", dense::gemm);
    }
    onnx
}

/// Operators Freshet strips out of the graph before handing it to tract,
/// because their outputs are not tensors (see `model::strip_zipmaps`).
pub(crate) const PRESENTATION_OPS: &[&str] = &["ZipMap"];

/// The `ai.onnx.ml` opset version the model imports (0 if none).
pub(crate) fn ml_opset(ctx: &tract_onnx::model::ParsingContext) -> i64 {
    ctx.model
        .opset_import
        .iter()
        .find(|o| o.domain == "ai.onnx.ml")
        .map(|o| o.version)
        .unwrap_or(0)
}

/// Floats attribute, or the float values of a `*_as_tensor` attribute.
pub(crate) fn floats_attr(
    ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
    name: &str,
) -> TractResult<Option<Vec<f32>>> {
    if let Some(v) = node.get_attr_opt_vec::<f32>(name)? {
        return Ok(Some(v));
    }
    let tensor_name = format!("{name}_as_tensor");
    if let Some(t) = node.get_attr_opt::<&tract_onnx::pb::TensorProto>(&tensor_name)? {
        let t = ctx.load_tensor(t)?;
        let t = t.cast_to::<f32>()?;
        return Ok(Some(t.try_as_plain_ram()?.as_slice::<f32>()?.to_vec()));
    }
    Ok(None)
}

/// Read a tensor-valued attribute as a flat vector of `T`.
pub(crate) fn tensor_attr<T: Datum + Clone>(
    ctx: &tract_onnx::model::ParsingContext,
    node: &NodeProto,
    name: &str,
) -> TractResult<Option<Vec<T>>> {
    match node.get_attr_opt::<&tract_onnx::pb::TensorProto>(name)? {
        Some(t) => {
            let t = ctx.load_tensor(t)?;
            let t = t.cast_to::<T>()?;
            Ok(Some(t.try_as_plain_ram()?.as_slice::<T>()?.to_vec()))
        }
        None => Ok(None),
    }
}

/// The value of an input tensor as f32, converting from any numeric type.
pub(crate) fn as_f32(t: &Tensor) -> TractResult<std::borrow::Cow<'_, Tensor>> {
    if t.datum_type() == TDim::datum_type() {
        let t = t.cast_to::<i64>()?.into_owned();
        return Ok(std::borrow::Cow::Owned(t.cast_to::<f32>()?.into_owned()));
    }
    t.cast_to::<f32>()
}

/// Shape of a rank>=1 tensor viewed as `[rows, cols]` (rank 1 is one row).
pub(crate) fn rows_cols(shape: &[usize]) -> (usize, usize) {
    match shape.len() {
        0 => (1, 1),
        1 => (1, shape[0]),
        _ => {
            let cols = shape[shape.len() - 1];
            (shape[..shape.len() - 1].iter().product(), cols)
        }
    }
}

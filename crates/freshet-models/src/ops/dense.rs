//! `Gemm` with a small constant weight matrix: the layers of the MLPs that
//! `torch.onnx` exports for tabular models (a handful of features, tens of
//! hidden units).
//!
//! tract lowers every Gemm to its general matrix-multiplication kernels,
//! which pack both operands into tiles sized for large matrices; with a
//! 4×16 or 16×8 weight matrix the packing and the partial border tiles cost
//! more than the arithmetic, and such a model scored at a fifth of
//! onnxruntime's rate. This kernel keeps the weights unpacked, `[K, N]`
//! row-major, and computes each output row as bias + Σₖ a[k]·W[k, ·], an inner
//! loop over the N outputs that the compiler vectorizes.
//!
//! A `Relu` that is the only consumer of such a Gemm is folded into it
//! ([`fuse_relu`], before tract parses the graph): tract fuses activations
//! into its own matrix products, but evaluated on its own a Relu runs
//! through a per-element generic broadcast, slower than the product itself.
//!
//! Anything else (weights that are not a constant of the graph, transposed
//! `A`, large matrices, non-float types, a bias that is not a broadcast row)
//! goes to tract's own Gemm, whose builder is kept when Freshet's operators
//! are registered. [`eligible`] decides, from the protobuf alone, so that the
//! Relu fusion and the builder can never disagree.

use std::sync::OnceLock;

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::{self, GraphProto, NodeProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::{boxed, Kernel};

/// tract's builder for `Gemm`, used for every node this kernel does not take.
pub(crate) type OpBuilder =
    fn(&ParsingContext, &NodeProto) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)>;

/// Set once by `onnx_framework` before any model is parsed.
pub(crate) static TRACT_GEMM: OnceLock<OpBuilder> = OnceLock::new();

/// Largest weight matrix (K·N values) handled here; beyond it tract's packed
/// kernels win.
const MAX_WEIGHTS: usize = 64 * 64;

/// Attribute [`fuse_relu`] sets on a Gemm whose Relu it folded in. The
/// double underscore keeps it out of any name ONNX could define.
const FUSED_RELU_ATTR: &str = "__freshet_fused_relu";

/// ONNX `TensorProto.DataType` of float32.
const ONNX_FLOAT: i32 = 1;

/// `Y = alpha · A · B' + beta · C` with `B` (and `C`) graph constants.
#[derive(Debug)]
pub(crate) struct SmallGemm {
    /// `alpha · B` as `[K, N]`, row-major (transposed at parse time if the
    /// node has `transB`).
    weights: Vec<f32>,
    /// `beta · C` broadcast to one row of N values (zeros without `C`).
    bias: Vec<f32>,
    k: usize,
    n: usize,
    /// The same weights grouped by output unit (`[N][K]`), for
    /// [`SmallGemm::block_body`].
    weights_by_output: Vec<Vec<f32>>,
    /// `max(Y, 0)` of a Relu folded in by [`fuse_relu`].
    relu: bool,
}

/// The float32 values and dims of the graph constant called `name`, if
/// there is one held in the protobuf itself (data in external files is left
/// to tract's Gemm).
fn float_constant(graph: &GraphProto, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
    let t = graph.initializer.iter().find(|t| t.name == name)?;
    if t.data_type != ONNX_FLOAT || !t.external_data.is_empty() {
        return None;
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).ok())
        .collect::<Option<Vec<_>>>()?;
    let values: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    (values.len() == dims.iter().product::<usize>()).then_some((dims, values))
}

/// Whether [`gemm`] takes this node (rather than tract's Gemm); see
/// [`SmallGemm::of_node`].
pub(crate) fn eligible(graph: &GraphProto, node: &NodeProto) -> bool {
    SmallGemm::of_node(graph, node).is_some()
}

impl SmallGemm {
    /// The kernel for `node`, if it is a Gemm this module takes: float32
    /// constant weights of at most [`MAX_WEIGHTS`] values, no transposed
    /// `A`, and a bias (if any) that is one constant row. Judged from the
    /// protobuf alone, so that the Relu fusion, tract's op builder and the
    /// direct dense path (see [`crate::dense`]) can never disagree.
    pub(crate) fn of_node(graph: &GraphProto, node: &NodeProto) -> Option<SmallGemm> {
        let attr = |name: &str| node.attribute.iter().find(|a| a.name == name);
        let int_attr = |name: &str| attr(name).map_or(0, |a| a.i);
        let float_attr = |name: &str| attr(name).map_or(1.0, |a| a.f);
        if node.op_type != "Gemm" || !matches!(node.domain.as_str(), "" | "ai.onnx") {
            return None;
        }
        if int_attr("transA") != 0 || node.input.len() < 2 || node.input.len() > 3 {
            return None;
        }
        let (b_dims, b) = float_constant(graph, &node.input[1])?;
        let trans_b = int_attr("transB") != 0;
        let (k, n) = match (b_dims.as_slice(), trans_b) {
            ([rows, cols], false) => (*rows, *cols),
            ([rows, cols], true) => (*cols, *rows),
            _ => return None,
        };
        if k == 0 || n == 0 || k.saturating_mul(n) > MAX_WEIGHTS {
            return None;
        }
        let alpha = float_attr("alpha");
        let beta = float_attr("beta");
        let mut weights = vec![0f32; k * n];
        for kk in 0..k {
            for j in 0..n {
                let v = if trans_b {
                    b[j * k + kk]
                } else {
                    b[kk * n + j]
                };
                weights[kk * n + j] = alpha * v;
            }
        }
        let bias = match node.input.get(2).filter(|c| !c.is_empty()) {
            None => vec![0f32; n],
            Some(name) => {
                let (c_dims, c) = float_constant(graph, name)?;
                // a bias shared by every row: [N], [1, N], [1] or a scalar
                let per_row = match (c_dims.as_slice(), c.first()) {
                    ([] | [1] | [1, 1], Some(v)) => vec![*v; n],
                    ([m] | [1, m], _) if *m == n => c,
                    _ => return None,
                };
                per_row.into_iter().map(|v| beta * v).collect()
            }
        };
        let relu = node
            .attribute
            .iter()
            .any(|a| a.name == FUSED_RELU_ATTR && a.i == 1);
        let weights_by_output = (0..n)
            .map(|j| weights.iter().skip(j).step_by(n).copied().collect())
            .collect();
        Some(SmallGemm {
            weights,
            weights_by_output,
            bias,
            k,
            n,
            relu,
        })
    }
}

/// Folds each `Relu` whose input is produced by an [`eligible`] Gemm, and
/// consumed by nothing else, into that Gemm: the Gemm is marked, the Relu
/// becomes an Identity (free in tract).
pub(crate) fn fuse_relu(graph: &mut GraphProto) {
    let outputs: std::collections::HashSet<String> =
        graph.output.iter().map(|o| o.name.clone()).collect();
    let mut fuse: Vec<(usize, usize)> = Vec::new();
    for (gi, gemm) in graph.node.iter().enumerate() {
        let Some(y) = gemm.output.first() else {
            continue;
        };
        if !eligible(graph, gemm) || outputs.contains(y) {
            continue;
        }
        let consumers: Vec<usize> = graph
            .node
            .iter()
            .enumerate()
            .filter(|(_, n)| n.input.iter().any(|i| i == y))
            .map(|(i, _)| i)
            .collect();
        if let [ri] = consumers.as_slice() {
            let relu = &graph.node[*ri];
            if relu.op_type == "Relu"
                && matches!(relu.domain.as_str(), "" | "ai.onnx")
                && relu.input.len() == 1
            {
                fuse.push((gi, *ri));
            }
        }
    }
    for (gi, ri) in fuse {
        graph.node[gi].attribute.push(pb::AttributeProto {
            name: FUSED_RELU_ATTR.into(),
            r#type: pb::attribute_proto::AttributeType::Int as i32,
            i: 1,
            ..Default::default()
        });
        let relu = &mut graph.node[ri];
        relu.op_type = "Identity".into();
        relu.attribute.clear();
    }
}

/// The `Gemm` builder Freshet registers; see the module docs.
pub(crate) fn gemm(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    let kernel = ctx
        .model
        .graph
        .as_ref()
        .and_then(|graph| SmallGemm::of_node(graph, node));
    match kernel {
        Some(kernel) => boxed(kernel),
        None => {
            let tract = TRACT_GEMM
                .get()
                .ok_or_else(|| format_err!("tract's Gemm builder was not registered"))?;
            tract(ctx, node)
        }
    }
}

impl Kernel for SmallGemm {
    fn name(&self) -> &'static str {
        "Gemm"
    }

    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        if inputs.len() < 2 {
            bail!(
                "Gemm needs at least 2 inputs, the node has {}",
                inputs.len()
            );
        }
        s.equals(&inputs[0].datum_type, DatumType::F32)?;
        s.equals(&inputs[0].rank, 2)?;
        s.equals(&inputs[0].shape[1], self.k.to_dim())?;
        s.equals(&outputs[0].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[0].shape[1], self.n.to_dim())?;
        Ok(())
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let rows = inputs
            .first()
            .and_then(|f| f.shape.iter().next().cloned())
            .ok_or_else(|| format_err!("Gemm input has no rows dimension"))?;
        Ok(tvec!(f32::fact(&[rows, self.n.to_dim()])))
    }

    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let a = inputs
            .first()
            .ok_or_else(|| format_err!("Gemm without input"))?;
        let (rows, k) = match a.shape() {
            [rows, k] => (*rows, *k),
            other => bail!("Gemm input has shape {other:?}, expected [N, {}]", self.k),
        };
        if k != self.k {
            bail!("Gemm input has {k} columns, the weights {}", self.k);
        }
        let a = a.try_as_plain_ram()?;
        let a = a.as_slice::<f32>()?;
        let n = self.n;
        let mut out = vec![0f32; rows * n];
        // Fixed widths keep a row's accumulators in registers; the common
        // hidden-layer sizes get one each.
        match n {
            1 => self.rows_fixed::<1>(a, &mut out),
            2 => self.rows_fixed::<2>(a, &mut out),
            4 => self.rows_fixed::<4>(a, &mut out),
            8 => self.rows_fixed::<8>(a, &mut out),
            16 => self.rows_fixed::<16>(a, &mut out),
            32 => self.rows_fixed::<32>(a, &mut out),
            64 => self.rows_fixed::<64>(a, &mut out),
            _ => self.rows_any(a, &mut out),
        }
        Ok(tvec!(tract_ndarray::Array2::from_shape_vec(
            (rows, n),
            out
        )?
        .into_tvalue()))
    }
}

impl SmallGemm {
    /// Rows of a layer `N` outputs wide. On x86-64 CPUs with AVX2 and FMA
    /// (checked at run time: the binary is built for the baseline ISA) the
    /// same loop is compiled for 8-wide registers and fused multiply-adds.
    fn rows_fixed<const N: usize>(&self, a: &[f32], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: rows_fixed_avx2 only requires AVX2 and FMA, which the
            // CPU was just checked to support.
            unsafe { rows_fixed_avx2::<N>(self, a, out) };
            return;
        }
        self.rows_fixed_body::<N, false>(a, out)
    }

    #[inline(always)]
    fn rows_fixed_body<const N: usize, const FMA: bool>(&self, a: &[f32], out: &mut [f32]) {
        let (weights, _) = self.weights.as_chunks::<N>();
        let (outs, _) = out.as_chunks_mut::<N>();
        let (bias, _) = self.bias.as_chunks::<N>();
        let Some(bias) = bias.first() else {
            return;
        };
        for (x, y) in a.chunks_exact(self.k).zip(outs) {
            let mut acc = *bias;
            for (xk, w) in x.iter().zip(weights) {
                for j in 0..N {
                    // without hardware FMA, mul_add would be a libm call
                    acc[j] = if FMA {
                        xk.mul_add(w[j], acc[j])
                    } else {
                        acc[j] + xk * w[j]
                    };
                }
            }
            if self.relu {
                acc.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            *y = acc;
        }
    }

    /// The layer over a block of `B` rows held unit-major, as the direct
    /// dense path keeps them (see [`crate::dense`]): `input` holds `k` lanes
    /// of `B` rows, `output` receives `n`. The rows of a block fill the
    /// vector registers and each weight is a broadcast, where the row-major
    /// form above vectorizes over the (few) outputs instead.
    #[inline(always)]
    pub(crate) fn block_body<const B: usize, const FMA: bool>(
        &self,
        input: &[f32],
        output: &mut [f32],
    ) {
        // fixed-size lanes, so that the accumulators of a unit are
        // registers rather than a stack array reloaded for every weight
        let (lanes, _) = input.as_chunks::<B>();
        let (outs, _) = output.as_chunks_mut::<B>();
        let units = outs.iter_mut().zip(&self.bias).zip(&self.weights_by_output);
        for ((out, &bias), weights) in units.take(self.n) {
            let mut acc = [bias; B];
            for (x, &w) in lanes.iter().zip(weights) {
                for r in 0..B {
                    acc[r] = if FMA {
                        x[r].mul_add(w, acc[r])
                    } else {
                        acc[r] + x[r] * w
                    };
                }
            }
            if self.relu {
                acc.iter_mut().for_each(|v| *v = v.max(0.0));
            }
            *out = acc;
        }
    }

    /// Values per input row.
    pub(crate) fn inputs(&self) -> usize {
        self.k
    }

    /// Values per output row.
    pub(crate) fn outputs(&self) -> usize {
        self.n
    }

    fn rows_any(&self, a: &[f32], out: &mut [f32]) {
        let n = self.n;
        for (x, y) in a.chunks_exact(self.k).zip(out.chunks_exact_mut(n)) {
            y.copy_from_slice(&self.bias);
            for (xk, w) in x.iter().zip(self.weights.chunks_exact(n)) {
                for (yj, wj) in y.iter_mut().zip(w) {
                    *yj += xk * wj;
                }
            }
            if self.relu {
                y.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    }
}

/// [`SmallGemm::rows_fixed`] compiled for AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn rows_fixed_avx2<const N: usize>(gemm: &SmallGemm, a: &[f32], out: &mut [f32]) {
    gemm.rows_fixed_body::<N, true>(a, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(name: &str, dims: &[i64]) -> pb::TensorProto {
        pb::TensorProto {
            name: name.into(),
            dims: dims.to_vec(),
            data_type: ONNX_FLOAT,
            float_data: vec![0.5; dims.iter().product::<i64>().max(1) as usize],
            ..Default::default()
        }
    }

    fn node(op: &str, inputs: &[&str], output: &str) -> NodeProto {
        NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    fn graph(b_dims: &[i64], c_dims: Option<&[i64]>) -> GraphProto {
        let mut inputs = vec!["x", "w"];
        let mut initializer = vec![tensor("w", b_dims)];
        if let Some(c) = c_dims {
            inputs.push("b");
            initializer.push(tensor("b", c));
        }
        GraphProto {
            node: vec![
                node("Gemm", &inputs, "h"),
                node("Relu", &["h"], "r"),
                node("Sigmoid", &["r"], "y"),
            ],
            initializer,
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn only_small_constant_gemms_are_taken() {
        let g = graph(&[4, 16], Some(&[16]));
        assert!(eligible(&g, &g.node[0]));
        assert!(!eligible(&g, &g.node[1]), "a Relu is not a Gemm");
        let big = graph(&[100, 100], None);
        assert!(!eligible(&big, &big.node[0]));
        let odd_bias = graph(&[4, 16], Some(&[3, 16]));
        assert!(!eligible(&odd_bias, &odd_bias.node[0]));
        let mut dynamic = graph(&[4, 16], None);
        dynamic.initializer.clear();
        assert!(!eligible(&dynamic, &dynamic.node[0]));
        let mut transposed_a = graph(&[4, 16], None);
        transposed_a.node[0].attribute.push(pb::AttributeProto {
            name: "transA".into(),
            i: 1,
            ..Default::default()
        });
        assert!(!eligible(&transposed_a, &transposed_a.node[0]));
    }

    #[test]
    fn relu_is_folded_only_into_a_taken_gemm_it_alone_reads() {
        let mut g = graph(&[4, 16], Some(&[16]));
        fuse_relu(&mut g);
        assert_eq!(g.node[1].op_type, "Identity");
        assert!(g.node[0]
            .attribute
            .iter()
            .any(|a| a.name == FUSED_RELU_ATTR));

        // a second reader of the Gemm's output needs it without the Relu
        let mut shared = graph(&[4, 16], Some(&[16]));
        shared.node.push(node("Neg", &["h"], "z"));
        fuse_relu(&mut shared);
        assert_eq!(shared.node[1].op_type, "Relu");

        // tract's Gemm would ignore the mark: nothing is folded
        let mut big = graph(&[100, 100], None);
        fuse_relu(&mut big);
        assert_eq!(big.node[1].op_type, "Relu");
    }
}

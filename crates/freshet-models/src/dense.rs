//! Small dense networks (a multilayer perceptron) scored from Arrow columns.
//!
//! A network such as `torch.onnx`'s export of `Linear → ReLU → … → Sigmoid`
//! does a few hundred multiply-adds per row. Through tract, each query batch
//! becomes a row-major tensor, passes through one op per layer (each
//! writing a whole intermediate tensor), and comes back as output tensors to
//! unpack. Here the network runs on blocks of rows that stay in the
//! first-level cache, unit by unit, with the rows of a block in the vector
//! lanes: every weight is a broadcast, a unit's accumulators stay in
//! registers, and the input columns are read where Arrow keeps them.
//!
//! The layers are the same [`SmallGemm`] kernels tract runs (with any Relu
//! already folded in by [`crate::ops::dense::fuse_relu`]), so a layer's sums
//! are the same. Only graphs that are one chain from the input to the
//! output of such Gemms, `Relu`, `Sigmoid`, `Tanh` and `Identity` are
//! recognised; everything else keeps the tract plan.

use tract_onnx::pb;

use crate::ops::dense::SmallGemm;

/// Rows scored together: four 8-wide vectors, so that one unit's
/// accumulators stay in registers while its inputs stream past (at 64 rows
/// the compiler kept them on the stack, at half the speed).
const BLOCK: usize = 32;

/// One step of the chain.
#[derive(Debug)]
enum Step {
    Layer(SmallGemm),
    Relu,
    Sigmoid,
    Tanh,
}

/// A chain of dense layers and element-wise activations over one
/// `[N, F]` float input.
#[derive(Debug)]
pub(crate) struct DenseNetwork {
    steps: Vec<Step>,
    n_features: usize,
    n_outputs: usize,
    /// The widest intermediate, for sizing the block buffers.
    widest: usize,
}

impl DenseNetwork {
    /// The network `graph` is, if it is one this module runs: `input` is
    /// the graph's only input, of `n_features` float columns.
    pub(crate) fn recognise(
        graph: &pb::GraphProto,
        input: &str,
        n_features: usize,
    ) -> Option<DenseNetwork> {
        let mut current = input;
        let mut width = n_features;
        let mut widest = width;
        let mut steps: Vec<Step> = Vec::new();
        for node in &graph.node {
            if !matches!(node.domain.as_str(), "" | "ai.onnx") {
                return None;
            }
            let ([first, rest @ ..], [output]) = (node.input.as_slice(), node.output.as_slice())
            else {
                return None;
            };
            if first != current {
                return None;
            }
            let step = match node.op_type.as_str() {
                "Identity" if rest.is_empty() => None,
                "Relu" if rest.is_empty() => Some(Step::Relu),
                "Sigmoid" if rest.is_empty() => Some(Step::Sigmoid),
                "Tanh" if rest.is_empty() => Some(Step::Tanh),
                "Gemm" => {
                    let layer = SmallGemm::of_node(graph, node)?;
                    if layer.inputs() != width {
                        return None;
                    }
                    width = layer.outputs();
                    widest = widest.max(width);
                    Some(Step::Layer(layer))
                }
                _ => return None,
            };
            steps.extend(step);
            current = output;
        }
        let [graph_output] = graph.output.as_slice() else {
            return None;
        };
        let has_layer = steps.iter().any(|s| matches!(s, Step::Layer(_)));
        (graph_output.name == current && has_layer).then_some(DenseNetwork {
            steps,
            n_features,
            n_outputs: width,
            widest,
        })
    }

    /// Values per row in the output.
    pub(crate) fn n_outputs(&self) -> usize {
        self.n_outputs
    }

    /// Scores `rows` rows given as one slice per feature; returns the
    /// output row-major (`rows × n_outputs`), as the model's output tensor
    /// would hold it.
    pub(crate) fn score_columns(&self, columns: &[&[f32]], rows: usize) -> Vec<f32> {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: score_columns_avx2 only requires AVX2 and FMA, which
            // the CPU was just checked to support.
            return unsafe { score_columns_avx2(self, columns, rows) };
        }
        self.score_columns_body::<false>(columns, rows)
    }

    /// The network over all rows, a block at a time; compiled once for the
    /// baseline ISA and once for AVX2 with fused multiply-adds (`FMA`).
    #[inline(always)]
    pub(crate) fn score_columns_body<const FMA: bool>(
        &self,
        columns: &[&[f32]],
        rows: usize,
    ) -> Vec<f32> {
        let m = self.n_outputs;
        let mut out = vec![0.0f32; rows * m];
        // [unit][row of the block]
        let mut current = vec![0.0f32; self.widest * BLOCK];
        let mut next = vec![0.0f32; self.widest * BLOCK];
        for start in (0..rows).step_by(BLOCK) {
            let len = BLOCK.min(rows - start);
            let lanes = current.chunks_exact_mut(BLOCK);
            for (lane, column) in lanes.zip(columns.iter().take(self.n_features)) {
                lane[..len].copy_from_slice(&column[start..start + len]);
                lane[len..].fill(0.0);
            }
            let mut width = self.n_features;
            for step in &self.steps {
                let live = &mut current[..width * BLOCK];
                match step {
                    Step::Layer(layer) => {
                        layer.block_body::<BLOCK, FMA>(live, &mut next);
                        std::mem::swap(&mut current, &mut next);
                        width = layer.outputs();
                    }
                    Step::Relu => live.iter_mut().for_each(|v| *v = v.max(0.0)),
                    Step::Sigmoid => live.iter_mut().for_each(|v| *v = sigmoid(*v)),
                    Step::Tanh => live.iter_mut().for_each(|v| *v = v.tanh()),
                }
            }
            for (j, lane) in current.chunks_exact(BLOCK).take(m).enumerate() {
                for (r, &v) in lane[..len].iter().enumerate() {
                    out[(start + r) * m + j] = v;
                }
            }
        }
        out
    }
}

/// The logistic function, written so that it stays accurate in both tails
/// (no `exp` overflow for large negative inputs).
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn score_columns_avx2(network: &DenseNetwork, columns: &[&[f32]], rows: usize) -> Vec<f32> {
    network.score_columns_body::<true>(columns, rows)
}

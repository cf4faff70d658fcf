//! `LinearClassifier`: scores = X·Wᵀ + b, then onnxruntime's label and
//! post-transform conventions, for integer and string class labels.
//!
//! tract ships a LinearClassifier, but it cannot produce string labels
//! (skl2onnx emits them whenever the training target was text), so Freshet
//! registers this one instead.

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::*;

use super::tree::{apply_post_rows, exp_fast, parse_post_transform, Labels, PostTransform};
use super::{as_f32, boxed, floats_attr, rows_cols, Kernel};

#[derive(Debug)]
pub(crate) struct LinearClassifier {
    /// `[n_models, n_features]`, row-major.
    coefficients: Vec<f32>,
    intercepts: Vec<f32>,
    n_models: usize,
    labels: Labels,
    post: PostTransform,
}

pub(crate) fn linear_classifier(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    boxed(LinearClassifier::parse(node, |name| {
        floats_attr(ctx, node, name)
    })?)
}

impl LinearClassifier {
    /// Reads the node's attributes; `floats` fetches a float list attribute
    /// (plain, or `*_as_tensor` when a parsing context is at hand).
    pub(crate) fn parse(
        node: &NodeProto,
        floats: impl Fn(&str) -> TractResult<Option<Vec<f32>>>,
    ) -> TractResult<LinearClassifier> {
        let labels = Labels::of_node(node, "classlabels_ints")?;
        let coefficients = floats("coefficients")?.unwrap_or_default();
        let intercepts = floats("intercepts")?.unwrap_or_default();
        let n_models = if !intercepts.is_empty() {
            intercepts.len()
        } else if labels.len() == 2 && coefficients.len() % 2 == 1 {
            1
        } else {
            labels.len()
        };
        if n_models == 0 || coefficients.is_empty() || coefficients.len() % n_models != 0 {
            bail!("LinearClassifier coefficients do not match the number of classes");
        }
        if n_models != labels.len() && !(n_models == 1 && labels.len() == 2) {
            bail!(
                "LinearClassifier has {n_models} score rows for {} labels",
                labels.len()
            );
        }
        let post = parse_post_transform(
            node.get_attr_opt::<&str>("post_transform")?
                .unwrap_or("NONE"),
        )?;
        Ok(LinearClassifier {
            coefficients,
            intercepts,
            n_models,
            labels,
            post,
        })
    }

    /// Number of input features.
    pub(crate) fn n_features(&self) -> usize {
        self.coefficients.len() / self.n_models
    }

    /// The class labels, in score order.
    pub(crate) fn labels(&self) -> &Labels {
        &self.labels
    }

    /// Scores `rows` rows given as feature columns (`columns[f][row]`):
    /// the winning class index of every row, and the post-transformed class
    /// scores row-major `[rows, n_labels]`.
    ///
    /// Every step runs down whole columns (one class or one feature at a
    /// time), which the compiler vectorizes; a row-at-a-time loop over a
    /// handful of features and classes does not. The arithmetic is the same
    /// per row as onnxruntime's: the dot product in feature order, then the
    /// intercept.
    ///
    /// On x86-64 CPUs with AVX2 (checked at run time: the binary is built
    /// for the baseline ISA) the same code is compiled for 8-wide registers;
    /// without FMA, so the results are the same bits either way.
    pub(crate) fn score_columns(&self, columns: &[&[f32]], rows: usize) -> (Vec<u32>, Vec<f32>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: score_columns_avx2 only requires AVX2, which the CPU
            // was just checked to support.
            return unsafe { score_columns_avx2(self, columns, rows) };
        }
        self.score_columns_body(columns, rows)
    }

    #[inline(always)]
    pub(crate) fn score_columns_body(
        &self,
        columns: &[&[f32]],
        rows: usize,
    ) -> (Vec<u32>, Vec<f32>) {
        let f = self.n_features();
        let m = self.n_models;
        let k = self.labels.len();
        let class_scores: Vec<Vec<f32>> = (0..m)
            .map(|j| {
                let weights = &self.coefficients[j * f..(j + 1) * f];
                // -0.0 is the neutral start of a float sum, as in `Iterator::sum`.
                let mut acc = vec![-0.0f32; rows];
                for (column, &w) in columns.iter().zip(weights) {
                    for (a, &x) in acc.iter_mut().zip(&column[..rows]) {
                        *a += x * w;
                    }
                }
                let intercept = self.intercepts.get(j).copied().unwrap_or(0.0);
                acc.iter_mut().for_each(|a| *a += intercept);
                acc
            })
            .collect();
        if m == 1 {
            // binary with a single score: positive class iff score > 0, and
            // the two class scores are (-s, s)
            let scores = &class_scores[0];
            let winners = scores.iter().map(|&s| u32::from(s > 0.0)).collect();
            let mut probs: Vec<f32> = scores.iter().flat_map(|&s| [-s, s]).collect();
            apply_post_rows(self.post, &mut probs, k);
            return (winners, probs);
        }
        // the first class with the highest score wins
        let mut best = class_scores[0].clone();
        let mut winners = vec![0u32; rows];
        for (j, scores) in class_scores.iter().enumerate().skip(1) {
            for ((b, w), &s) in best.iter_mut().zip(winners.iter_mut()).zip(scores) {
                let higher = s > *b;
                *b = if higher { s } else { *b };
                *w = if higher { j as u32 } else { *w };
            }
        }
        let mut probs = vec![0f32; rows * k];
        match self.post {
            PostTransform::Softmax => {
                // column-wise softmax: exp(s - row max), then / row sum (in
                // class order, as the row-wise softmax sums)
                let exps: Vec<Vec<f32>> = class_scores
                    .iter()
                    .map(|scores| {
                        scores
                            .iter()
                            .zip(&best)
                            .map(|(&s, &max)| exp_fast(s - max))
                            .collect()
                    })
                    .collect();
                let mut sums = vec![0f32; rows];
                for e in &exps {
                    sums.iter_mut().zip(e).for_each(|(sum, &x)| *sum += x);
                }
                for (j, e) in exps.iter().enumerate() {
                    for ((out, &x), &sum) in probs.chunks_exact_mut(k).zip(e).zip(&sums) {
                        out[j] = x / sum;
                    }
                }
            }
            post => {
                for (j, scores) in class_scores.iter().enumerate() {
                    for (out, &s) in probs.chunks_exact_mut(k).zip(scores) {
                        out[j] = s;
                    }
                }
                apply_post_rows(post, &mut probs, k);
            }
        }
        (winners, probs)
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn score_columns_avx2(
    classifier: &LinearClassifier,
    columns: &[&[f32]],
    rows: usize,
) -> (Vec<u32>, Vec<f32>) {
    classifier.score_columns_body(columns, rows)
}

impl Kernel for LinearClassifier {
    fn name(&self) -> &'static str {
        "LinearClassifier"
    }
    fn n_outputs(&self) -> usize {
        2
    }
    fn rules<'r, 'p: 'r, 's: 'r>(
        &'s self,
        s: &mut Solver<'r>,
        inputs: &'p [TensorProxy],
        outputs: &'p [TensorProxy],
    ) -> InferenceResult {
        check_input_arity(inputs, 1)?;
        s.equals(&outputs[0].datum_type, self.labels.datum_type())?;
        s.equals(&outputs[1].datum_type, DatumType::F32)?;
        s.equals(&outputs[0].rank, 1)?;
        s.equals(&outputs[1].rank, 2)?;
        s.equals(&outputs[0].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[0], &inputs[0].shape[0])?;
        s.equals(&outputs[1].shape[1], self.labels.len().to_dim())?;
        Ok(())
    }
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let n = if inputs[0].rank() >= 2 {
            inputs[0].shape[0].clone()
        } else {
            1.to_dim()
        };
        Ok(tvec!(
            self.labels.datum_type().fact(std::slice::from_ref(&n)),
            f32::fact(&[n, self.labels.len().to_dim()])
        ))
    }
    fn eval(&self, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = as_f32(&inputs[0])?;
        let (rows, cols) = if x.rank() == 1 {
            (1, x.len())
        } else {
            rows_cols(x.shape())
        };
        let f = self.n_features();
        if cols != f {
            bail!("LinearClassifier expects {f} features, got {cols}");
        }
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let columns: Vec<Vec<f32>> = (0..f)
            .map(|c| x.iter().skip(c).step_by(f).copied().collect())
            .collect();
        let columns: Vec<&[f32]> = columns.iter().map(Vec::as_slice).collect();
        let (winners, probs) = self.score_columns(&columns, rows);
        let labels = match &self.labels {
            Labels::Int(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w as usize]))
                    .into_tensor()
            }
            Labels::Str(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w as usize].clone()))
                    .into_tensor()
            }
        };
        Ok(tvec!(
            labels.into_tvalue(),
            tract_ndarray::Array2::from_shape_vec((rows, self.labels.len()), probs)?.into_tvalue()
        ))
    }
}

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

use super::tree::{apply_post_rows, parse_post_transform, Labels, PostTransform};
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
    let labels = if let Some(v) = node.get_attr_opt_vec::<i64>("classlabels_ints")? {
        Labels::Int(v)
    } else if let Some(v) = node.get_attr_opt_vec::<String>("classlabels_strings")? {
        Labels::Str(v)
    } else {
        bail!("LinearClassifier needs classlabels_ints or classlabels_strings")
    };
    let coefficients = floats_attr(ctx, node, "coefficients")?.unwrap_or_default();
    let intercepts = floats_attr(ctx, node, "intercepts")?.unwrap_or_default();
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
    boxed(LinearClassifier {
        coefficients,
        intercepts,
        n_models,
        labels,
        post,
    })
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
        let f = self.coefficients.len() / self.n_models;
        if cols != f {
            bail!("LinearClassifier expects {f} features, got {cols}");
        }
        let x = x.try_as_plain_ram()?;
        let x = x.as_slice::<f32>()?;
        let k = self.labels.len();
        // Scores for every row first, then the post transform over the whole
        // buffer: one tight loop each, which the compiler vectorizes.
        let m = self.n_models;
        let mut scores = vec![0f32; rows * m];
        for (row, out) in x.chunks_exact(cols).zip(scores.chunks_exact_mut(m)) {
            for (j, s) in out.iter_mut().enumerate() {
                let w = &self.coefficients[j * f..(j + 1) * f];
                *s = row.iter().zip(w).map(|(a, b)| a * b).sum::<f32>()
                    + self.intercepts.get(j).copied().unwrap_or(0.0);
            }
        }
        let (winners, mut probs): (Vec<usize>, Vec<f32>) = if m == 1 {
            // binary with a single score: positive class iff score > 0, and
            // the two class scores are (-s, s)
            let winners = scores.iter().map(|&s| usize::from(s > 0.0)).collect();
            let probs = scores.iter().flat_map(|&s| [-s, s]).collect();
            (winners, probs)
        } else {
            let winners = scores
                .chunks_exact(m)
                .map(|row| {
                    let mut best = 0;
                    for j in 1..m {
                        if row[j] > row[best] {
                            best = j;
                        }
                    }
                    best
                })
                .collect();
            (winners, scores)
        };
        apply_post_rows(self.post, &mut probs, k);
        let labels = match &self.labels {
            Labels::Int(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w])).into_tensor()
            }
            Labels::Str(l) => {
                tract_ndarray::Array1::from_iter(winners.iter().map(|&w| l[w].clone()))
                    .into_tensor()
            }
        };
        Ok(tvec!(
            labels.into_tvalue(),
            tract_ndarray::Array2::from_shape_vec((rows, k), probs)?.into_tvalue()
        ))
    }
}

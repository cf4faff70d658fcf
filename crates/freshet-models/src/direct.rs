//! Models scored straight from Arrow columns, without tract.
//!
//! For a model that is a single linear classifier, the arithmetic is a few
//! multiply-adds per row: assembling the row-major input tensor for tract
//! and unpacking its output tensors cost more than the scoring itself. Such
//! a model is recognised at compile time and scored column by column from
//! the query's arrays. The tract plan is still built (it validates the model
//! and serves every other input shape), and both paths share one kernel
//! ([`LinearClassifier::score_columns`]), so they give identical results.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::Float32Type;
use tract_onnx::pb;

use crate::convert::shaped_output;
use crate::error::ModelError;
use crate::ops::linear::LinearClassifier;
use crate::ops::tree::Labels;
use crate::signature::{ArgMap, ElemType, ModelSignature, TensorSpec};

/// A graph of one `LinearClassifier` over the model's only input (followed
/// at most by `Identity` nodes, which stripped ZipMaps become).
#[derive(Debug)]
pub(crate) struct DirectLinear {
    classifier: LinearClassifier,
    /// For each graph output, the classifier output it is: 0 the label, 1
    /// the class scores.
    sources: Vec<usize>,
}

impl DirectLinear {
    /// The direct form of `graph`, if it has one. `inputs` are the graph's
    /// non-initializer inputs and `arg_map` how SQL arguments feed them.
    pub(crate) fn recognise(
        graph: &pb::GraphProto,
        inputs: &[TensorSpec],
        arg_map: &ArgMap,
    ) -> Option<DirectLinear> {
        let [input] = inputs else { return None };
        let ArgMap::Wide { cols, rank1: false } = arg_map else {
            return None;
        };
        if input.elem != ElemType::Float32 || !graph.initializer.is_empty() {
            return None;
        }
        let mut classifiers = graph.node.iter().filter(|n| n.op_type != "Identity");
        let node = classifiers.next()?;
        if classifiers.next().is_some()
            || node.op_type != "LinearClassifier"
            || node.domain != "ai.onnx.ml"
            || node.input.len() != 1
            || node.input[0] != input.name
            || node.output.len() != 2
        {
            return None;
        }
        // where every tensor name comes from, through Identity nodes
        let mut origin: HashMap<&str, usize> = node
            .output
            .iter()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();
        for identity in graph.node.iter().filter(|n| n.op_type == "Identity") {
            let (Some(from), Some(to)) = (identity.input.first(), identity.output.first()) else {
                return None;
            };
            let source = *origin.get(from.as_str())?;
            origin.insert(to.as_str(), source);
        }
        let sources = graph
            .output
            .iter()
            .map(|o| origin.get(o.name.as_str()).copied())
            .collect::<Option<Vec<usize>>>()?;
        // plain float-list attributes only; `*_as_tensor` forms go through tract
        let classifier =
            LinearClassifier::parse(node, |name| node.get_attr_opt_vec::<f32>(name)).ok()?;
        (classifier.n_features() == *cols).then_some(DirectLinear {
            classifier,
            sources,
        })
    }

    /// Scores rows `start..start + len` of `args` (cast, NULL-free float32
    /// columns, one per feature); one array per model output.
    pub(crate) fn score(
        &self,
        signature: &ModelSignature,
        args: &[ArrayRef],
        start: usize,
        len: usize,
    ) -> Result<Vec<ArrayRef>, ModelError> {
        let columns = args
            .iter()
            .map(|a| {
                a.as_primitive_opt::<Float32Type>()
                    .map(|a| &a.values()[start..start + len])
                    .ok_or_else(|| {
                        ModelError::Internal(format!(
                            "argument is {}, expected float32",
                            a.data_type()
                        ))
                    })
            })
            .collect::<Result<Vec<&[f32]>, _>>()?;
        let (winners, scores) = self.classifier.score_columns(&columns, len);
        let k = self.classifier.labels().len();
        let scores: ArrayRef = Arc::new(Float32Array::from(scores));
        let labels: ArrayRef = match self.classifier.labels() {
            Labels::Int(l) => Arc::new(Int64Array::from_iter_values(
                winners.iter().map(|&w| l[w as usize]),
            )),
            Labels::Str(l) => Arc::new(StringArray::from_iter_values(
                winners.iter().map(|&w| l[w as usize].as_str()),
            )),
        };
        self.sources
            .iter()
            .zip(&signature.layouts)
            .zip(&signature.outputs)
            .map(|((&source, layout), spec)| {
                let (values, per_row) = if source == 0 {
                    (labels.clone(), 1)
                } else {
                    (scores.clone(), k)
                };
                shaped_output(values, layout, len, per_row, &spec.name)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::fixture;

    /// The direct path and the tract plan (the same kernel behind tract's
    /// input and output tensors) agree bit for bit, for every method.
    #[test]
    fn direct_and_tract_paths_agree() {
        for name in ["logreg", "linear_svc"] {
            let (model, args) = fixture(name);
            assert!(model.direct.is_some(), "{name} is scored directly");
            let mut through_tract = fixture(name).0;
            through_tract.direct = None;
            for method in model.signature().methods.clone() {
                // a batch size that splits the rows into several chunks
                let direct = model.predict(&method, &args, 7).expect("direct");
                let tract = through_tract.predict(&method, &args, 7).expect("tract");
                assert_eq!(direct.as_ref(), tract.as_ref(), "{name} {method}");
            }
        }
    }

    /// The kernel compiled for AVX2 (where the CPU has it) and for the
    /// baseline ISA give the same bits.
    #[test]
    fn wide_registers_give_the_same_bits() {
        for name in ["logreg", "linear_svc"] {
            let (model, args) = fixture(name);
            let direct = model.direct.as_ref().expect("scored directly");
            let columns: Vec<&[f32]> = args
                .iter()
                .map(|a| a.as_primitive::<Float32Type>().values().as_ref())
                .collect();
            let rows = args[0].len();
            let (winners, scores) = direct.classifier.score_columns(&columns, rows);
            let (baseline_winners, baseline_scores) =
                direct.classifier.score_columns_body(&columns, rows);
            assert_eq!(winners, baseline_winners, "{name}");
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&scores), bits(&baseline_scores), "{name}");
        }
    }

    /// Models that are more than a linear classifier keep the tract plan,
    /// including a classifier followed by a Normalizer (skl2onnx's default
    /// for one-vs-rest logistic regression).
    #[test]
    fn other_models_are_not_direct() {
        for name in [
            "logreg_zipmap",
            "logreg_zipmap_str",
            "linear_regression",
            "standard_scaler",
            "random_forest_clf",
        ] {
            assert!(fixture(name).0.direct.is_none(), "{name}");
        }
    }
}

//! Models scored straight from Arrow columns, without tract.
//!
//! For a model that is a single linear classifier, the arithmetic is a few
//! multiply-adds per row: assembling the row-major input tensor for tract
//! and unpacking its output tensors cost more than the scoring itself. The
//! same holds for a small dense network (see [`crate::dense`]). Such models
//! are recognised at compile time and scored column by column from the
//! query's arrays. The tract plan is still built (it validates the model
//! and serves every other input shape). The linear classifier shares one
//! kernel with its tract op ([`LinearClassifier::score_columns`]), so both
//! paths give identical results; a dense network's results agree with
//! tract's to float rounding.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Float32Array, Int64Array, StringArray};
use arrow::datatypes::Float32Type;
use tract_onnx::pb;

use crate::convert::shaped_output;
use crate::dense::DenseNetwork;
use crate::error::ModelError;
use crate::ops::linear::LinearClassifier;
use crate::ops::tree::Labels;
use crate::signature::{ArgMap, ElemType, ModelSignature, TensorSpec};

/// A model with a direct form, and that form.
#[derive(Debug)]
pub(crate) enum Direct {
    Linear(DirectLinear),
    Dense(DenseNetwork),
}

impl Direct {
    /// The direct form of `graph`, if it has one. `inputs` are the graph's
    /// non-initializer inputs and `arg_map` how SQL arguments feed them.
    pub(crate) fn recognise(
        graph: &pb::GraphProto,
        inputs: &[TensorSpec],
        arg_map: &ArgMap,
    ) -> Option<Direct> {
        let [input] = inputs else { return None };
        let ArgMap::Wide { cols, rank1: false } = arg_map else {
            return None;
        };
        if input.elem != ElemType::Float32 {
            return None;
        }
        if let Some(linear) = DirectLinear::recognise(graph, input, *cols) {
            return Some(Direct::Linear(linear));
        }
        DenseNetwork::recognise(graph, &input.name, *cols).map(Direct::Dense)
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
        match self {
            Direct::Linear(linear) => linear.score(signature, &columns, len),
            Direct::Dense(network) => {
                let (Some(layout), Some(spec)) =
                    (signature.layouts.first(), signature.outputs.first())
                else {
                    return Err(ModelError::Internal("a network without an output".into()));
                };
                let values: ArrayRef =
                    Arc::new(Float32Array::from(network.score_columns(&columns, len)));
                Ok(vec![shaped_output(
                    values,
                    layout,
                    len,
                    network.n_outputs(),
                    &spec.name,
                )?])
            }
        }
    }
}

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
    /// The linear classifier `graph` is, if it is one: `input` is its only
    /// input, of `cols` float columns.
    fn recognise(graph: &pb::GraphProto, input: &TensorSpec, cols: usize) -> Option<DirectLinear> {
        if !graph.initializer.is_empty() {
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
        (classifier.n_features() == cols).then_some(DirectLinear {
            classifier,
            sources,
        })
    }

    /// Scores `len` rows given as one float column per feature; one array
    /// per model output.
    fn score(
        &self,
        signature: &ModelSignature,
        columns: &[&[f32]],
        len: usize,
    ) -> Result<Vec<ArrayRef>, ModelError> {
        let (winners, scores) = self.classifier.score_columns(columns, len);
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

    /// The fixture's float32 argument columns as the kernels take them.
    fn float_slices(args: &[ArrayRef]) -> Vec<&[f32]> {
        args.iter()
            .map(|a| a.as_primitive::<Float32Type>().values().as_ref())
            .collect()
    }

    /// The direct path and the tract plan (the same kernel behind tract's
    /// input and output tensors) agree bit for bit, for every method.
    #[test]
    fn direct_and_tract_paths_agree() {
        for name in ["logreg", "linear_svc"] {
            let (model, args) = fixture(name);
            assert!(
                matches!(model.direct, Some(Direct::Linear(_))),
                "{name} is scored directly"
            );
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
            let Some(Direct::Linear(direct)) = model.direct.as_ref() else {
                panic!("{name} is scored directly");
            };
            let columns = float_slices(&args);
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

    /// The MLP runs as a dense network, agreeing with tract to float
    /// rounding (the oracle test holds both to onnxruntime's outputs).
    #[test]
    fn dense_network_agrees_with_tract() {
        let (model, args) = fixture("torch_mlp");
        assert!(matches!(model.direct, Some(Direct::Dense(_))));
        let mut through_tract = fixture("torch_mlp").0;
        through_tract.direct = None;
        // a batch size that leaves a partial block of rows
        let direct = model.predict("predict", &args, 67).expect("direct");
        let tract = through_tract.predict("predict", &args, 67).expect("tract");
        let values = |a: &ArrayRef| -> Vec<f32> {
            let scores = a.as_struct().column(0);
            scores.as_primitive::<Float32Type>().values().to_vec()
        };
        let (direct, tract) = (values(&direct), values(&tract));
        assert_eq!(direct.len(), tract.len());
        for (d, t) in direct.iter().zip(&tract) {
            assert!((d - t).abs() <= 1e-6 * t.abs().max(1.0), "{d} vs {t}");
        }
    }

    /// The baseline and the AVX2 + FMA compilations agree to rounding.
    #[test]
    fn dense_network_wide_registers_agree() {
        let (model, args) = fixture("torch_mlp");
        let Some(Direct::Dense(network)) = model.direct.as_ref() else {
            panic!("torch_mlp is scored directly");
        };
        let columns = float_slices(&args);
        let rows = args[0].len();
        let wide = network.score_columns(&columns, rows);
        let baseline = network.score_columns_body::<false>(&columns, rows);
        assert_eq!(wide.len(), baseline.len());
        for (w, b) in wide.iter().zip(&baseline) {
            assert!((w - b).abs() <= 1e-6 * b.abs().max(1.0), "{w} vs {b}");
        }
    }
}

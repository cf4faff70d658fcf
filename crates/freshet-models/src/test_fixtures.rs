//! Committed fixture models and their float inputs, for unit tests.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float32Array};

use crate::CompiledModel;

/// The fixture model `name`, compiled, and its committed inputs as float32
/// columns (one per feature of its single input; NaN where the JSON has no
/// number).
pub(crate) fn fixture(name: &str) -> (CompiledModel, Vec<ArrayRef>) {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/models");
    let bytes = std::fs::read(dir.join(format!("{name}.onnx"))).expect("fixture model");
    let model = CompiledModel::compile(&bytes).expect("compiles");
    let inputs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{name}.inputs.json"))).expect("inputs"),
    )
    .expect("json");
    let columns = inputs["inputs"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|column| {
            let values = column
                .as_array()
                .expect("column")
                .iter()
                .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32));
            Arc::new(Float32Array::from_iter_values(values)) as ArrayRef
        })
        .collect();
    (model, columns)
}

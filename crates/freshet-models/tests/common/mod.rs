//! Shared helpers: reading the committed fixtures (see tools/fixtures).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use serde_json::Value;

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/models")
}

pub fn read_json(path: PathBuf) -> Value {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn manifest() -> Value {
    read_json(fixtures_dir().join("manifest.json"))
}

pub fn fixture_names() -> Vec<String> {
    manifest()["fixtures"]
        .as_array()
        .expect("fixtures")
        .iter()
        .map(|f| f["name"].as_str().expect("name").to_string())
        .collect()
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(format!("{name}.onnx"))).expect("model file")
}

/// Decode a JSON number or one of the non-finite spellings.
pub fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().expect("number"),
        Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "inf" => f64::INFINITY,
            "-inf" => f64::NEG_INFINITY,
            other => panic!("not a float: {other}"),
        },
        Value::Bool(b) => f64::from(u8::from(*b)),
        other => panic!("not a float: {other}"),
    }
}

/// One Arrow array per column of `values` (JSON list), of element type `elem`.
pub fn column(elem: &str, values: &[Value]) -> ArrayRef {
    match elem {
        "float32" => Arc::new(Float32Array::from_iter_values(
            values.iter().map(|v| as_f64(v) as f32),
        )),
        "float64" => Arc::new(Float64Array::from_iter_values(values.iter().map(as_f64))),
        "int64" => Arc::new(Int64Array::from_iter_values(
            values.iter().map(|v| v.as_i64().expect("int")),
        )),
        "int32" => Arc::new(Int32Array::from_iter_values(
            values.iter().map(|v| v.as_i64().expect("int") as i32),
        )),
        "string" => Arc::new(StringArray::from_iter_values(
            values.iter().map(|v| v.as_str().expect("str")),
        )),
        "bool" => Arc::new(BooleanArray::from(
            values
                .iter()
                .map(|v| v.as_bool().expect("bool"))
                .collect::<Vec<_>>(),
        )),
        other => panic!("unknown elem {other}"),
    }
}

/// All SQL argument arrays for a fixture, in signature order.
pub fn fixture_args(name: &str) -> Vec<ArrayRef> {
    let inputs = read_json(fixtures_dir().join(format!("{name}.inputs.json")));
    let mut args = Vec::new();
    for input in inputs["inputs"].as_array().expect("inputs") {
        let elem = input["elem"].as_str().expect("elem");
        for col in input["columns"].as_array().expect("columns") {
            args.push(column(elem, col.as_array().expect("column")));
        }
    }
    args
}

pub fn expected(name: &str) -> Value {
    read_json(fixtures_dir().join(format!("{name}.expected.json")))
}

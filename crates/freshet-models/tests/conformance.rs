//! Every committed fixture, scored by freshet-models, must match the outputs
//! onnxruntime produced for the same inputs: labels exactly, floats within
//! 1e-5 relative (1e-5 absolute near zero).

mod common;

use arrow::array::{Array, AsArray, StructArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type, Int32Type, Int64Type};
use common::*;
use freshet_models::CompiledModel;
use serde_json::Value;

#[derive(Debug, Clone)]
enum Cell {
    F(f64),
    I(i64),
    S(String),
    B(bool),
}

/// Flattened values of row `row` of `a`.
fn cells(a: &dyn Array, row: usize) -> Vec<Cell> {
    match a.data_type() {
        DataType::Float32 => vec![Cell::F(a.as_primitive::<Float32Type>().value(row) as f64)],
        DataType::Float64 => vec![Cell::F(a.as_primitive::<Float64Type>().value(row))],
        DataType::Int64 => vec![Cell::I(a.as_primitive::<Int64Type>().value(row))],
        DataType::Int32 => vec![Cell::I(a.as_primitive::<Int32Type>().value(row) as i64)],
        DataType::Utf8 => vec![Cell::S(a.as_string::<i32>().value(row).to_string())],
        DataType::Boolean => vec![Cell::B(a.as_boolean().value(row))],
        DataType::FixedSizeList(..) => {
            let l = a.as_fixed_size_list();
            let v = l.value(row);
            (0..v.len()).flat_map(|i| cells(v.as_ref(), i)).collect()
        }
        DataType::List(..) => {
            let l = a.as_list::<i32>();
            let v = l.value(row);
            (0..v.len()).flat_map(|i| cells(v.as_ref(), i)).collect()
        }
        other => panic!("unexpected output type {other}"),
    }
}

fn flatten(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| flatten(x, out)),
        other => out.push(other.clone()),
    }
}

fn close(actual: f64, expected: f64) -> bool {
    if expected.is_nan() {
        return actual.is_nan();
    }
    if expected.is_infinite() {
        return actual == expected;
    }
    (actual - expected).abs() <= 1e-5 * expected.abs().max(1.0)
}

fn cell_matches(a: &Cell, e: &Value) -> bool {
    match a {
        Cell::F(x) => close(*x, as_f64(e)),
        Cell::I(x) => e.as_i64() == Some(*x) || (e.is_f64() && close(*x as f64, as_f64(e))),
        Cell::S(x) => e.as_str() == Some(x.as_str()),
        Cell::B(x) => e.as_bool() == Some(*x) || e.as_i64() == Some(i64::from(*x)),
    }
}

/// Compare one output column with its expected JSON; returns mismatches.
fn compare_output(name: &str, col: &dyn Array, exp: &Value, errors: &mut Vec<String>) {
    let mut bad = 0;
    match exp["kind"].as_str() {
        Some("tensor") => {
            let data = exp["data"].as_array().expect("data");
            if data.len() != col.len() {
                errors.push(format!(
                    "{name}: {} rows, expected {}",
                    col.len(),
                    data.len()
                ));
                return;
            }
            for (row, e) in data.iter().enumerate() {
                let mut ev = Vec::new();
                flatten(e, &mut ev);
                let av = cells(col, row);
                let ok =
                    av.len() == ev.len() && av.iter().zip(&ev).all(|(a, e)| cell_matches(a, e));
                if !ok {
                    bad += 1;
                    if bad <= 3 {
                        errors.push(format!("{name} row {row}: got {av:?}, expected {ev:?}"));
                    }
                }
            }
        }
        Some("zipmap") => {
            let rows = exp["rows"].as_array().expect("rows");
            let map = col.as_map();
            if rows.len() != map.len() {
                errors.push(format!(
                    "{name}: {} rows, expected {}",
                    map.len(),
                    rows.len()
                ));
                return;
            }
            for (row, e) in rows.iter().enumerate() {
                let entries = map.value(row);
                let keys = entries.column(0);
                let vals = entries.column(1);
                let pairs = e.as_array().expect("pairs");
                let ok = pairs.len() == entries.len()
                    && pairs.iter().enumerate().all(|(i, p)| {
                        // keys are text even for integer class labels (they
                        // become JSON object keys)
                        let want = match &p[0] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        keys.as_string::<i32>().value(i) == want
                            && cell_matches(&cells(vals.as_ref(), i)[0], &p[1])
                    });
                if !ok {
                    bad += 1;
                    if bad <= 3 {
                        errors.push(format!("{name} row {row}: got {entries:?}, expected {e}"));
                    }
                }
            }
        }
        other => panic!("unknown kind {other:?}"),
    }
    if bad > 3 {
        errors.push(format!("{name}: {bad} mismatching rows in total"));
    }
}

fn check_fixture(name: &str, batch_size: usize) -> Vec<String> {
    let mut errors = Vec::new();
    let model = match CompiledModel::compile(&model_bytes(name)) {
        Ok(m) => m,
        Err(e) => return vec![format!("compile: {e} [{}]", e.sqlstate())],
    };
    let args = fixture_args(name);
    let sig = model.signature();
    if sig.arity() != args.len() {
        return vec![format!(
            "arity {} but fixture has {} columns",
            sig.arity(),
            args.len()
        )];
    }
    let out = match model.predict("predict", &args, batch_size) {
        Ok(o) => o,
        Err(e) => return vec![format!("predict: {e} [{}]", e.sqlstate())],
    };
    if out.data_type() != &sig.output_type("predict").expect("type") {
        errors.push(format!("predict type {} != signature", out.data_type()));
    }
    let out: &StructArray = out.as_struct();
    let expected = expected(name);
    for exp in expected["outputs"].as_array().expect("outputs") {
        let oname = exp["name"].as_str().expect("name");
        match out.column_by_name(oname) {
            Some(col) => compare_output(oname, col.as_ref(), exp, &mut errors),
            None => errors.push(format!("missing output {oname}")),
        }
    }
    // predict_proba must equal the probability field of predict
    if sig.methods.iter().any(|m| m == "predict_proba") {
        match model.predict("predict_proba", &args, batch_size) {
            Ok(p) => {
                if p.data_type() != &sig.output_type("predict_proba").expect("type") {
                    errors.push("predict_proba type != signature".into());
                }
                if !out.columns().iter().any(|c| c.to_data() == p.to_data()) {
                    errors.push("predict_proba differs from predict's probability field".into());
                }
            }
            Err(e) => errors.push(format!("predict_proba: {e}")),
        }
    }
    errors
}

#[test]
fn all_fixtures_match_onnxruntime() {
    let names = fixture_names();
    assert!(
        names.len() >= 25,
        "manifest lists only {} fixtures",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        // one chunk per 64 rows, and many small chunks scored in parallel
        let mut errors = check_fixture(name, 64);
        errors.extend(
            check_fixture(name, 7)
                .into_iter()
                .map(|e| format!("batch 7: {e}")),
        );
        if errors.is_empty() {
            eprintln!("ok   {name}");
        } else {
            eprintln!("FAIL {name}");
            for e in &errors {
                eprintln!("       {e}");
            }
            failures.push(name.clone());
        }
    }
    assert!(
        failures.is_empty(),
        "fixtures not matching onnxruntime: {failures:?}"
    );
}

#[test]
fn signatures_match_manifest() {
    let manifest = manifest();
    for f in manifest["fixtures"].as_array().expect("fixtures") {
        let name = f["name"].as_str().expect("name");
        let sig =
            freshet_models::inspect(&model_bytes(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let inputs = f["inputs"].as_array().expect("inputs");
        assert_eq!(sig.inputs.len(), inputs.len(), "{name}");
        for (spec, exp) in sig.inputs.iter().zip(inputs) {
            assert_eq!(spec.name, exp["name"].as_str().expect("name"), "{name}");
        }
        let outputs: Vec<&str> = f["outputs"]
            .as_array()
            .expect("outputs")
            .iter()
            .map(|o| o["name"].as_str().expect("n"))
            .collect();
        let got: Vec<&str> = sig.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(got, outputs, "{name}");
        // classifiers name their probability output "probabilities" or "output_probability"
        let has_proba = outputs.iter().any(|o| o.contains("prob"));
        assert_eq!(
            sig.methods.iter().any(|m| m == "predict_proba"),
            has_proba,
            "{name}: {:?}",
            sig.methods
        );
        assert_eq!(sig.argument_types().len(), sig.arity(), "{name}");
    }
}

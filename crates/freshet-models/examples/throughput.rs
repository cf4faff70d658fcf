//! Rows/second of `CompiledModel::predict` on a committed fixture, for
//! comparison with onnxruntime (`tools/fixtures/bench_ort.py`).
//!
//! `cargo run --release -p freshet-models --example throughput -- <fixture> <threads> <batch> [rows] [reps]`
//!
//! The fixture's inputs are repeated up to `rows` rows, handed to one
//! `predict` call (which cuts them into `batch`-row chunks scored in
//! parallel on a pool of `threads`), `reps` times after a warm-up.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::ArrayRef;
use freshet_models::CompiledModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let argv: Vec<String> = std::env::args().collect();
    let name = argv.get(1).map(String::as_str).unwrap_or("login_risk");
    let threads: usize = argv.get(2).map(|s| s.parse()).transpose()?.unwrap_or(1);
    let batch: usize = argv.get(3).map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let rows: usize = argv
        .get(4)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let reps: usize = argv
        .get(5)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    let dir =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/models");
    let model = CompiledModel::compile(&std::fs::read(dir.join(format!("{name}.onnx")))?)?;
    let inputs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir.join(format!("{name}.inputs.json")),
    )?)?;
    let mut args: Vec<ArrayRef> = Vec::new();
    for input in inputs["inputs"].as_array().ok_or("inputs")? {
        for col in input["columns"].as_array().ok_or("columns")? {
            let col = col.as_array().ok_or("column")?;
            let vals: Vec<&serde_json::Value> = (0..rows).map(|i| &col[i % col.len()]).collect();
            let a: ArrayRef = match input["elem"].as_str() {
                Some("float32") => Arc::new(arrow::array::Float32Array::from_iter_values(
                    vals.iter().map(|v| v.as_f64().unwrap_or(f64::NAN) as f32),
                )),
                Some("float64") => Arc::new(arrow::array::Float64Array::from_iter_values(
                    vals.iter().map(|v| v.as_f64().unwrap_or(f64::NAN)),
                )),
                Some("int64") => Arc::new(arrow::array::Int64Array::from_iter_values(
                    vals.iter().map(|v| v.as_i64().unwrap_or(0)),
                )),
                Some("string") => Arc::new(arrow::array::StringArray::from_iter_values(
                    vals.iter().map(|v| v.as_str().unwrap_or("")),
                )),
                other => return Err(format!("unsupported elem {other:?}").into()),
            };
            args.push(a);
        }
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    pool.install(|| model.predict("predict", &args, batch))?; // warm-up
    let start = Instant::now();
    for _ in 0..reps {
        pool.install(|| model.predict("predict", &args, batch))?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "freshet {name}: threads={threads} batch={batch} rows={rows}: {:.0} rows/s",
        (rows * reps) as f64 / secs
    );
    Ok(())
}

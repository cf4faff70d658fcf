//! Calling-convention behaviour: NULL rows, empty and single-row input,
//! chunking, argument errors, rejected models, the cache.

mod common;

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int64Array, ListArray, StringArray,
};
use arrow::datatypes::{DataType, Int32Type, Int64Type};
use common::*;
use freshet_models::{inspect, CompiledModel, ElemType, ModelCache, ModelError};

fn login_risk() -> CompiledModel {
    CompiledModel::compile(&model_bytes("login_risk")).expect("compile login_risk")
}

fn login_args(uids: Vec<Option<i64>>, locs: Vec<Option<&str>>) -> Vec<ArrayRef> {
    vec![
        Arc::new(Int64Array::from(uids)),
        Arc::new(StringArray::from(locs)),
    ]
}

#[test]
fn login_risk_signature() {
    let sig = inspect(&model_bytes("login_risk")).expect("inspect");
    assert_eq!(sig.arity(), 2);
    assert_eq!(sig.argument_types(), vec![DataType::Int64, DataType::Utf8]);
    assert_eq!(sig.inputs[0].name, "user_id");
    assert_eq!(sig.inputs[0].elem, ElemType::Int64);
    assert_eq!(sig.inputs[0].shape, vec![None, Some(1)]);
    assert_eq!(sig.inputs[1].name, "location");
    assert_eq!(sig.inputs[1].elem, ElemType::String);
    assert_eq!(
        sig.methods,
        vec!["predict".to_string(), "predict_proba".to_string()]
    );
    let DataType::Struct(fields) = sig.output_type("predict").expect("predict") else {
        panic!("predict is not a struct")
    };
    assert_eq!(fields[0].name(), "label");
    assert_eq!(fields[0].data_type(), &DataType::Int64);
    assert_eq!(fields[1].name(), "probabilities");
    assert!(matches!(
        sig.output_type("predict_proba"),
        Ok(DataType::FixedSizeList(_, 2))
    ));
    let err = sig.output_type("transform").expect_err("unknown method");
    assert_eq!(err.sqlstate(), "42883");
}

#[test]
fn null_arguments_give_null_rows() {
    let m = login_risk();
    let args = login_args(
        vec![Some(10), None, Some(99_000), Some(5), None],
        vec![Some("US"), Some("CN"), None, Some("CN"), None],
    );
    let out = m.predict("predict", &args, 2).expect("predict");
    let s = out.as_struct();
    assert_eq!(s.len(), 5);
    let nulls: Vec<bool> = (0..5).map(|i| s.is_null(i)).collect();
    assert_eq!(nulls, vec![false, true, true, false, true]);
    // non-NULL rows score as if scored alone
    let alone = m
        .predict(
            "predict",
            &login_args(vec![Some(10), Some(5)], vec![Some("US"), Some("CN")]),
            64,
        )
        .expect("predict");
    let alone = alone.as_struct();
    let labels = s.column(0).as_primitive::<Int64Type>();
    let alone_labels = alone.column(0).as_primitive::<Int64Type>();
    assert_eq!(labels.value(0), alone_labels.value(0));
    assert_eq!(labels.value(3), alone_labels.value(1));
    assert!(labels.is_null(1) && labels.is_null(2) && labels.is_null(4));
    let p = m.predict("predict_proba", &args, 64).expect("proba");
    assert_eq!(p.len(), 5);
    assert!(p.is_null(1) && p.is_valid(3));
}

#[test]
fn all_null_and_empty_inputs() {
    let m = login_risk();
    let out = m
        .predict(
            "predict",
            &login_args(vec![None, None], vec![Some("US"), None]),
            8,
        )
        .expect("all null");
    assert_eq!(out.len(), 2);
    assert_eq!(out.null_count(), 2);
    let out = m
        .predict("predict", &login_args(vec![], vec![]), 8)
        .expect("empty");
    assert_eq!(out.len(), 0);
    assert_eq!(
        out.data_type(),
        &m.signature().output_type("predict").expect("type")
    );
    let out = m
        .predict("predict_proba", &login_args(vec![], vec![]), 8)
        .expect("empty proba");
    assert_eq!(out.len(), 0);
}

#[test]
fn single_row() {
    let m = login_risk();
    let out = m
        .predict(
            "predict",
            &login_args(vec![Some(77_777)], vec![Some("CN")]),
            1,
        )
        .expect("one row");
    assert_eq!(out.len(), 1);
    let probs = out.as_struct().column(1).as_fixed_size_list().value(0);
    let probs = probs.as_primitive::<arrow::datatypes::Float32Type>();
    assert!((probs.value(0) + probs.value(1) - 1.0).abs() < 1e-5);
}

#[test]
fn chunking_does_not_change_results() {
    for name in [
        "login_risk",
        "random_forest_clf",
        "logreg_zipmap",
        "torch_mlp",
        "onehot_encoder",
    ] {
        let m = CompiledModel::compile(&model_bytes(name)).expect("compile");
        let args = fixture_args(name);
        assert!(args[0].len() > 7 * 10);
        let whole = m.predict("predict", &args, 10_000).expect("whole");
        let chunked = m.predict("predict", &args, 7).expect("chunked");
        assert_eq!(whole.to_data(), chunked.to_data(), "{name}");
        let zero = m
            .predict("predict", &args, 0)
            .expect("batch size 0 is clamped");
        assert_eq!(whole.to_data(), zero.to_data(), "{name}");
    }
}

#[test]
fn arguments_are_cast() {
    // login_risk takes (bigint, text); int32 and dictionary/utf8 casts work
    let m = login_risk();
    let native = m
        .predict("predict", &login_args(vec![Some(123)], vec![Some("DE")]), 8)
        .expect("native");
    let cast_args: Vec<ArrayRef> = vec![
        Arc::new(arrow::array::PrimitiveArray::<Int32Type>::from(vec![123])),
        Arc::new(arrow::array::LargeStringArray::from(vec!["DE"])),
    ];
    let cast = m.predict("predict", &cast_args, 8).expect("cast");
    assert_eq!(native.to_data(), cast.to_data());
    // float model fed with float64 and text numbers
    let rf = CompiledModel::compile(&model_bytes("random_forest_reg")).expect("compile");
    let f32s: Vec<ArrayRef> = (0..4)
        .map(|i| Arc::new(Float32Array::from(vec![i as f32 * 0.5])) as ArrayRef)
        .collect();
    let f64s: Vec<ArrayRef> = (0..4)
        .map(|i| Arc::new(Float64Array::from(vec![i as f64 * 0.5])) as ArrayRef)
        .collect();
    let strs: Vec<ArrayRef> = (0..4)
        .map(|i| Arc::new(StringArray::from(vec![format!("{}", i as f64 * 0.5)])) as ArrayRef)
        .collect();
    let a = rf.predict("predict", &f32s, 8).expect("f32");
    assert_eq!(
        a.to_data(),
        rf.predict("predict", &f64s, 8).expect("f64").to_data()
    );
    assert_eq!(
        a.to_data(),
        rf.predict("predict", &strs, 8).expect("text").to_data()
    );
}

#[test]
fn argument_errors() {
    let m = login_risk();
    let one: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(vec![1]))];
    let e = m.predict("predict", &one, 8).expect_err("arity");
    assert!(
        matches!(
            e,
            ModelError::WrongArity {
                expected: 2,
                got: 1,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.sqlstate(), "42883");

    let e = m
        .predict("transform", &login_args(vec![Some(1)], vec![Some("US")]), 8)
        .expect_err("method");
    assert_eq!(e.sqlstate(), "42883");
    assert!(e.to_string().contains("predict_proba"), "{e}");

    // a value that does not parse as the input type
    let bad: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec!["12", "twelve"])),
        Arc::new(StringArray::from(vec!["US", "US"])),
    ];
    let e = m.predict("predict", &bad, 8).expect_err("uncastable value");
    assert_eq!(e.sqlstate(), "22P02", "{e}");
    assert!(e.to_string().contains("user_id"), "{e}");

    // a type with no conversion at all
    let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
        Some(vec![Some(1)]),
    ]));
    let e = m
        .predict(
            "predict",
            &[list, Arc::new(StringArray::from(vec!["US"]))],
            8,
        )
        .expect_err("list arg");
    assert_eq!(e.sqlstate(), "42804", "{e}");
    assert!(
        e.to_string().contains("user_id") && e.to_string().contains("Int64"),
        "{e}"
    );

    // wide input: the error names the column
    let rf = CompiledModel::compile(&model_bytes("random_forest_clf")).expect("compile");
    let mut args: Vec<ArrayRef> = (0..4)
        .map(|_| Arc::new(Float32Array::from(vec![1.0])) as ArrayRef)
        .collect();
    args[2] = Arc::new(StringArray::from(vec!["x"]));
    let e = rf.predict("predict", &args, 8).expect_err("bad column");
    assert_eq!(e.sqlstate(), "22P02");
    assert!(e.to_string().contains("X[2]"), "{e}");
}

#[test]
fn regressor_has_no_predict_proba() {
    let m = CompiledModel::compile(&model_bytes("random_forest_reg")).expect("compile");
    assert_eq!(m.signature().methods, vec!["predict".to_string()]);
    assert_eq!(m.signature().arity(), 4);
    let e = m
        .predict("predict_proba", &fixture_args("random_forest_reg"), 8)
        .expect_err("no proba");
    assert_eq!(e.sqlstate(), "42883");
}

#[test]
fn zipmap_output_is_a_map() {
    let m = CompiledModel::compile(&model_bytes("logreg_zipmap_str")).expect("compile");
    let t = m.signature().output_type("predict_proba").expect("proba");
    let DataType::Map(entries, _) = &t else {
        panic!("not a map: {t}")
    };
    let DataType::Struct(kv) = entries.data_type() else {
        panic!("entries")
    };
    assert_eq!(kv[0].data_type(), &DataType::Utf8);
    assert_eq!(kv[1].data_type(), &DataType::Float32);
    let p = m
        .predict("predict_proba", &fixture_args("logreg_zipmap_str"), 64)
        .expect("predict");
    let map = p.as_map();
    let first = map.value(0);
    let keys = first.column(0).as_string::<i32>();
    assert_eq!(
        keys.iter().flatten().collect::<Vec<_>>(),
        vec!["cls_a", "cls_b", "cls_c"]
    );
    // integer class labels become text keys too (JSON object keys are text)
    let m = CompiledModel::compile(&model_bytes("logreg_zipmap")).expect("compile");
    let p = m
        .predict("predict_proba", &fixture_args("logreg_zipmap"), 64)
        .expect("predict");
    let first = p.as_map().value(0);
    let keys = first.column(0).as_string::<i32>();
    assert_eq!(
        keys.iter().flatten().collect::<Vec<_>>(),
        vec!["0", "1", "2"]
    );
}

#[test]
fn arguments_of_unrelated_types_are_refused() {
    // a timestamp is castable to int64 by Arrow, but feeding microseconds to a
    // model is never what was meant
    let m = login_risk();
    let ts: ArrayRef = Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![1_000]));
    let e = m
        .predict("predict", &[ts, Arc::new(StringArray::from(vec!["US"]))], 8)
        .expect_err("timestamp arg");
    assert_eq!(e.sqlstate(), "42804", "{e}");
    let msg = e.to_string();
    assert!(msg.contains("user_id") && msg.contains("bigint"), "{msg}");
    // numbers do not silently become category strings
    let e = m
        .predict(
            "predict",
            &[
                Arc::new(Int64Array::from(vec![1])) as ArrayRef,
                Arc::new(Int64Array::from(vec![5])),
            ],
            8,
        )
        .expect_err("int for text");
    assert_eq!(e.sqlstate(), "42804", "{e}");
    assert!(e.to_string().contains("location"), "{e}");
    let sig = m.signature();
    assert_eq!(sig.describe_arguments(), "user_id bigint, location text");
    assert!(sig.check_argument(0, &DataType::Float64).is_ok());
    assert!(sig.check_argument(1, &DataType::Utf8View).is_ok());
    assert!(sig.check_argument(0, &DataType::Null).is_ok());
    assert!(sig.check_argument(0, &DataType::Date32).is_err());
}

#[test]
fn fractions_round_like_postgres_when_an_input_is_integer() {
    // misc_ops passes its int64 input `a` through to its outputs, so the
    // integer the model saw is observable
    let m = CompiledModel::compile(&model_bytes("misc_ops")).expect("compile");
    let score = |a: ArrayRef| {
        m.predict(
            "predict",
            &[a, Arc::new(Float32Array::from(vec![1.0, 1.0]))],
            8,
        )
        .expect("predict")
        .to_data()
    };
    let ints = score(Arc::new(Int64Array::from(vec![3, -3])));
    assert_ne!(ints, score(Arc::new(Int64Array::from(vec![2, -2]))));
    assert_eq!(ints, score(Arc::new(Float64Array::from(vec![2.5, -2.5]))));
    assert_eq!(ints, score(Arc::new(Float32Array::from(vec![2.6, -3.4]))));
}

#[test]
fn corrupt_models_are_rejected() {
    let e = inspect(b"definitely not a protobuf").expect_err("garbage");
    assert_eq!(e.sqlstate(), "22023", "{e}");
    let e = inspect(&[]).expect_err("empty");
    assert_eq!(e.sqlstate(), "22023", "{e}");
    let bytes = model_bytes("login_risk");
    for cut in [bytes.len() / 2, bytes.len() - 3, 17] {
        let e = CompiledModel::compile(&bytes[..cut]).expect_err("truncated");
        assert_eq!(e.sqlstate(), "22023", "cut at {cut}: {e}");
    }
}

#[test]
fn unsupported_operators_are_named() {
    let dir = fixtures_dir().join("invalid");
    let e = inspect(&std::fs::read(dir.join("unsupported_op.onnx")).expect("file"))
        .expect_err("unsupported");
    assert_eq!(e.sqlstate(), "0A000");
    assert!(e.to_string().contains("Frobnicate"), "{e}");
    let e = inspect(&std::fs::read(dir.join("vendor_op.onnx")).expect("file")).expect_err("vendor");
    assert_eq!(e.sqlstate(), "0A000");
    assert!(e.to_string().contains("com.example:FusedGelu"), "{e}");
}

#[test]
fn cache_compiles_once_and_evicts() {
    let cache = ModelCache::new(2);
    let mut compiles = 0;
    let a1 = cache
        .get_or_compile("db.s.a@1", || {
            compiles += 1;
            Ok(model_bytes("logreg"))
        })
        .expect("a");
    let a2 = cache
        .get_or_compile("db.s.a@1", || -> Result<Vec<u8>, ModelError> {
            panic!("recompiled")
        })
        .expect("a");
    assert!(Arc::ptr_eq(&a1, &a2));
    assert_eq!(compiles, 1);
    cache
        .get_or_compile("db.s.b@1", || Ok(model_bytes("ridge")))
        .expect("b");
    cache.get("db.s.a@1"); // a is now more recent than b
    cache
        .get_or_compile("db.s.c@1", || Ok(model_bytes("binarizer")))
        .expect("c");
    assert_eq!(cache.len(), 2);
    assert!(cache.get("db.s.a@1").is_some());
    assert!(
        cache.get("db.s.b@1").is_none(),
        "least recently used entry evicted"
    );
    let e = cache
        .get_or_compile("db.s.bad@1", || Ok(b"junk".to_vec()))
        .expect_err("bad model");
    assert_eq!(e.sqlstate(), "22023");
    assert!(cache.get("db.s.bad@1").is_none());
    cache.remove_prefix("db.s.a@");
    assert!(cache.get("db.s.a@1").is_none());
}

#[test]
fn compiled_model_is_shareable_across_threads() {
    let m = Arc::new(login_risk());
    let args = fixture_args("login_risk");
    let reference = m.predict("predict", &args, 50).expect("predict");
    std::thread::scope(|s| {
        for _ in 0..4 {
            let m = m.clone();
            let args = args.clone();
            let reference = reference.clone();
            s.spawn(move || {
                let out = m.predict("predict", &args, 13).expect("predict");
                assert_eq!(out.to_data(), reference.to_data());
            });
        }
    });
}

//! The model runtime: loads ONNX models with tract and runs them over Arrow
//! arrays, so SQL can call `model.predict(col, ...)` on whole record batches.
//!
//! * [`inspect`] validates a model at registration time and returns its
//!   [`ModelSignature`] (arity, argument and result Arrow types, methods);
//! * [`CompiledModel`] holds the optimized, thread-safe plan and scores
//!   Arrow arrays in parallel chunks with SQL NULL semantics;
//! * [`ModelCache`] keeps compiled models across queries;
//! * every failure is a [`ModelError`] carrying a Postgres SQLSTATE.
//!
//! The models that matter in practice are scikit-learn / XGBoost / LightGBM
//! pipelines converted to ONNX-ML, which tract only partly covers; the
//! missing ONNX-ML operators (tree ensembles, encoders, scalers, ...) are
//! implemented in this crate with onnxruntime's semantics and plugged into
//! tract's operator registry. ZipMap outputs become Arrow `Map` columns.
//! Conformance is tested against onnxruntime outputs committed under
//! `tests/fixtures/models` (regenerate with `tools/fixtures/generate.py`).

#![warn(missing_docs)]

mod cache;
mod convert;
mod dense;
mod direct;
mod error;
mod model;
mod ops;
mod signature;
#[cfg(test)]
mod test_fixtures;

pub use cache::ModelCache;
pub use error::ModelError;
pub use model::{inspect, CompiledModel};
pub use signature::{ElemType, ModelSignature, TensorSpec};

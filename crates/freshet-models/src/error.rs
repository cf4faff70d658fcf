//! The crate's single error type.
//!
//! Every failure a SQL client can provoke (a bad model file, an operator we
//! cannot run, a wrong argument) surfaces as a [`ModelError`], and each variant
//! carries the Postgres SQLSTATE the wire layer should report, so the engine
//! never has to guess an error class from a message string.

use thiserror::Error;

/// Everything that can go wrong while inspecting, compiling or running a model.
#[derive(Debug, Error)]
pub enum ModelError {
    /// The bytes are not a usable ONNX model: not protobuf, no graph, a graph
    /// that does not type-check, an input shape we cannot bind, ...
    #[error("invalid ONNX model: {0}")]
    InvalidModel(String),

    /// The model uses an operator (or operator domain) Freshet cannot execute.
    #[error("unsupported ONNX operator {op}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    UnsupportedOperator {
        /// `domain:OpType` (domain omitted for the default ONNX domain).
        op: String,
        /// Optional extra context, e.g. which attribute value is unsupported.
        detail: Option<String>,
    },

    /// A model feature that is valid ONNX but outside what Freshet maps to SQL
    /// (e.g. a non-tensor input, a multi-input model with a wide input).
    #[error("unsupported model feature: {0}")]
    Unsupported(String),

    /// The SQL call asked for a method the model does not provide.
    #[error("model has no method \"{method}\" (available: {available})")]
    UnknownMethod {
        /// The method that was asked for.
        method: String,
        /// Comma separated list of the methods the model does have.
        available: String,
    },

    /// The SQL call passed the wrong number of arguments.
    #[error("model {method} expects {expected} argument(s), got {got}")]
    WrongArity {
        /// Method being called.
        method: String,
        /// What [`crate::ModelSignature::arity`] says.
        expected: usize,
        /// What the caller passed.
        got: usize,
    },

    /// An argument's Arrow type cannot be converted to the model input type.
    #[error(
        "argument {position} has type {got}, which cannot be converted to input \"{input}\" of type {expected}"
    )]
    ArgumentType {
        /// 1-based argument position.
        position: usize,
        /// Model input (and column, for wide inputs) the argument feeds.
        input: String,
        /// Arrow type required.
        expected: String,
        /// Arrow type given.
        got: String,
    },

    /// An argument value could not be converted (e.g. the text `'abc'` to float).
    #[error("invalid value for argument {position} ({input}, expected {expected}): {message}")]
    InvalidArgumentValue {
        /// 1-based argument position.
        position: usize,
        /// Model input the argument feeds.
        input: String,
        /// Arrow type required.
        expected: String,
        /// What the cast kernel reported.
        message: String,
    },

    /// Anything else: a failure inside the inference engine or an invariant
    /// violation in this crate. Not the client's fault.
    #[error("internal model runtime error: {0}")]
    Internal(String),
}

impl ModelError {
    /// The Postgres SQLSTATE code for this error.
    ///
    /// * `22023` invalid_parameter_value: the model file itself is bad;
    /// * `0A000` feature_not_supported: valid ONNX we cannot run;
    /// * `42883` undefined_function: unknown method or wrong argument count
    ///   (what Postgres reports for a call matching no function signature);
    /// * `42804` datatype_mismatch: an argument of an unconvertible type;
    /// * `22P02` invalid_text_representation: a value that fails conversion;
    /// * `XX000` internal_error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            ModelError::InvalidModel(_) => "22023",
            ModelError::UnsupportedOperator { .. } | ModelError::Unsupported(_) => "0A000",
            ModelError::UnknownMethod { .. } | ModelError::WrongArity { .. } => "42883",
            ModelError::ArgumentType { .. } => "42804",
            ModelError::InvalidArgumentValue { .. } => "22P02",
            ModelError::Internal(_) => "XX000",
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> Self {
        ModelError::Internal(e.to_string())
    }
}

/// Render a tract/anyhow error with its whole context chain on one line:
/// tract puts the useful part ("Unimplemented(Scaler)", the failing node) in
/// the causes, not the top-level message.
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p == &s) {
            parts.push(s);
        }
    }
    parts.join(": ")
}

//! What a model looks like from SQL: its inputs, outputs, callable methods,
//! and the Arrow types of arguments and results.
//!
//! The planner needs this before any row is scored (to coerce arguments and
//! to type the result column), so it is computed once at registration by
//! [`crate::inspect`] and kept in every [`crate::CompiledModel`].

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Element type of a model tensor, restricted to what maps onto SQL types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ElemType {
    /// `tensor(int64)` ↔ `bigint`
    Int64,
    /// `tensor(int32)` ↔ `integer`
    Int32,
    /// `tensor(float)` ↔ `real`
    Float32,
    /// `tensor(double)` ↔ `double precision`
    Float64,
    /// `tensor(string)` ↔ `text`
    String,
    /// `tensor(bool)` ↔ `boolean`
    Bool,
}

impl ElemType {
    /// The Arrow type values of this element type are exchanged as.
    pub fn arrow_type(self) -> DataType {
        match self {
            ElemType::Int64 => DataType::Int64,
            ElemType::Int32 => DataType::Int32,
            ElemType::Float32 => DataType::Float32,
            ElemType::Float64 => DataType::Float64,
            ElemType::String => DataType::Utf8,
            ElemType::Bool => DataType::Boolean,
        }
    }

    /// The Postgres type name SQL users know this element type by, for
    /// error messages (`bigint` rather than Arrow's `Int64`).
    pub fn sql_name(self) -> &'static str {
        match self {
            ElemType::Int64 => "bigint",
            ElemType::Int32 => "integer",
            ElemType::Float32 => "real",
            ElemType::Float64 => "double precision",
            ElemType::String => "text",
            ElemType::Bool => "boolean",
        }
    }

    /// Whether an argument of Arrow type `given` may feed an input of this
    /// element type.
    ///
    /// Deliberately narrower than what Arrow's cast kernel can do, closer to
    /// Postgres' implicit casts: a timestamp silently becoming an int64 of
    /// microseconds, or a number becoming the category string `"5"`, would
    /// score garbage without any error. Numbers (and booleans) feed numeric
    /// inputs; text feeds anything (the value is parsed, and a value that
    /// does not parse fails the statement with 22P02), so `'1.5'` literals
    /// work; NULL feeds anything and makes the row's result NULL.
    pub fn accepts(self, given: &DataType) -> bool {
        match given {
            DataType::Null => true,
            DataType::Dictionary(_, values) => self.accepts(values),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
            DataType::Boolean => self != ElemType::String,
            t if t.is_numeric() => self.is_numeric(),
            _ => false,
        }
    }

    fn is_numeric(self) -> bool {
        matches!(
            self,
            ElemType::Int64 | ElemType::Int32 | ElemType::Float32 | ElemType::Float64
        )
    }

    /// From an ONNX `TensorProto.DataType` code.
    pub(crate) fn from_onnx(code: i32) -> Option<ElemType> {
        Some(match code {
            1 => ElemType::Float32,
            6 => ElemType::Int32,
            7 => ElemType::Int64,
            8 => ElemType::String,
            9 => ElemType::Bool,
            11 => ElemType::Float64,
            _ => return None,
        })
    }
}

/// One named model input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TensorSpec {
    /// Name in the ONNX graph (also the Arrow field name for outputs).
    pub name: String,
    /// Element type.
    pub elem: ElemType,
    /// Dimensions; `None` is symbolic (the batch dimension always is).
    /// For ZipMap outputs this is the underlying probability tensor `[N, C]`.
    pub shape: Vec<Option<i64>>,
}

/// How one output column is laid out per row in Arrow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OutputLayout {
    /// `[N]` or `[N, 1]`: one value per row.
    Scalar(ElemType),
    /// `[N, K, ...]` with fixed trailing dims: `FixedSizeList(K*...)`.
    Fixed(ElemType, i32),
    /// Trailing dims not known statically: `List`.
    Variable(ElemType),
    /// ZipMap: `Map<label, Float32>` with the class labels as keys.
    ZipMap(ZipMapLabels),
}

/// Class labels of a ZipMap output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ZipMapLabels {
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl ZipMapLabels {
    pub(crate) fn len(&self) -> usize {
        match self {
            ZipMapLabels::Int(v) => v.len(),
            ZipMapLabels::Str(v) => v.len(),
        }
    }
}

impl OutputLayout {
    pub(crate) fn data_type(&self) -> DataType {
        match self {
            OutputLayout::Scalar(e) => e.arrow_type(),
            OutputLayout::Fixed(e, k) => {
                DataType::FixedSizeList(Arc::new(Field::new("item", e.arrow_type(), true)), *k)
            }
            OutputLayout::Variable(e) => {
                DataType::List(Arc::new(Field::new("item", e.arrow_type(), true)))
            }
            OutputLayout::ZipMap(labels) => zipmap_type(labels),
        }
    }
}

/// The entries of a ZipMap output. Keys are always text, also for integer
/// class labels: a map is sent to clients as a JSON object, whose keys are
/// strings anyway (onnxruntime's `{0: p0, 1: p1}` becomes `{"0": p0, "1": p1}`),
/// and a text key is what `result['1']`-style access needs.
pub(crate) fn zipmap_entries_field(_labels: &ZipMapLabels) -> Field {
    Field::new(
        "entries",
        DataType::Struct(Fields::from(vec![
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Float32, true),
        ])),
        false,
    )
}

fn zipmap_type(labels: &ZipMapLabels) -> DataType {
    DataType::Map(Arc::new(zipmap_entries_field(labels)), false)
}

/// The SQL-facing description of a model.
///
/// Calling convention (what [`ModelSignature::arity`] counts):
/// * a model with exactly one input of shape `[N, F]` takes `F` arguments,
///   one per feature column (a `[N]` input takes one);
/// * a model with several inputs takes one argument per input, each input
///   being `[N]` or `[N, 1]` (what converters emit for DataFrame columns).
///
/// Results: `predict` returns a `Struct` with one field per ONNX output,
/// named as in the graph (skl2onnx classifiers with zipmap off: `label`,
/// `probabilities`); `predict_proba` returns the probability output alone,
/// unwrapped (a `FixedSizeList<Float32>` or, for ZipMap models, a
/// `Map<label, Float32>` that serializes to JSON as `{"class": prob}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSignature {
    /// Graph inputs (initializers excluded), in graph order.
    pub inputs: Vec<TensorSpec>,
    /// Graph outputs, in graph order.
    pub outputs: Vec<TensorSpec>,
    /// `"predict"`, plus `"predict_proba"` when a probability output exists.
    pub methods: Vec<String>,
    pub(crate) layouts: Vec<OutputLayout>,
    pub(crate) proba_output: Option<usize>,
    pub(crate) arg_map: ArgMap,
}

/// How positional SQL arguments feed the model inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgMap {
    /// One input `[N, F]` (or `[N]` with `rank1`): argument `j` is column `j`.
    Wide { cols: usize, rank1: bool },
    /// Argument `i` is input `i`, of rank 1 (`[N]`) or 2 (`[N, 1]`).
    PerInput { rank1: Vec<bool> },
}

impl ModelSignature {
    /// Number of SQL arguments `predict` / `predict_proba` expect.
    pub fn arity(&self) -> usize {
        match &self.arg_map {
            ArgMap::Wide { cols, .. } => *cols,
            ArgMap::PerInput { rank1 } => rank1.len(),
        }
    }

    /// Arrow type each positional argument is cast to before scoring.
    pub fn argument_types(&self) -> Vec<DataType> {
        match &self.arg_map {
            ArgMap::Wide { cols, .. } => {
                let t = self
                    .inputs
                    .first()
                    .map(|i| i.elem.arrow_type())
                    .unwrap_or(DataType::Null);
                vec![t; *cols]
            }
            ArgMap::PerInput { .. } => self.inputs.iter().map(|i| i.elem.arrow_type()).collect(),
        }
    }

    /// Human-readable name of the input argument `position` (0-based) feeds,
    /// used in error messages: the input's name, or `X[j]` for column `j` of
    /// a wide input `X`.
    pub fn argument_name(&self, position: usize) -> String {
        match &self.arg_map {
            ArgMap::Wide { cols, .. } if *cols > 1 => {
                let name = self.inputs.first().map(|i| i.name.as_str()).unwrap_or("?");
                format!("{name}[{position}]")
            }
            _ => self
                .inputs
                .get(position)
                .map(|i| i.name.clone())
                .unwrap_or_default(),
        }
    }

    /// Element type of the input argument `position` (0-based) feeds.
    pub fn argument_elem(&self, position: usize) -> Option<ElemType> {
        match &self.arg_map {
            ArgMap::Wide { cols, .. } => (position < *cols)
                .then(|| self.inputs.first().map(|i| i.elem))
                .flatten(),
            ArgMap::PerInput { .. } => self.inputs.get(position).map(|i| i.elem),
        }
    }

    /// The call's parameter list as SQL users would write it, for error
    /// messages: `user_id bigint, location text` or `X[0] real, X[1] real`.
    pub fn describe_arguments(&self) -> String {
        (0..self.arity())
            .map(|i| {
                let ty = self.argument_elem(i).map(ElemType::sql_name).unwrap_or("?");
                format!("{} {ty}", self.argument_name(i))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Checks that an argument of type `given` can feed argument `position`
    /// (0-based); see [`ElemType::accepts`]. Used both when a query is
    /// planned (so a bad call fails before any row is read) and when a batch
    /// is scored.
    pub fn check_argument(&self, position: usize, given: &DataType) -> Result<(), ModelError> {
        let Some(elem) = self.argument_elem(position) else {
            return Err(ModelError::WrongArity {
                method: "predict".into(),
                expected: self.arity(),
                got: position + 1,
            });
        };
        if elem.accepts(given) {
            return Ok(());
        }
        Err(ModelError::ArgumentType {
            position: position + 1,
            input: self.argument_name(position),
            expected: format!("{} ({})", elem.sql_name(), elem.arrow_type()),
            got: sql_type_name(given),
        })
    }

    /// The Arrow type a method returns; see the type-level docs.
    pub fn output_type(&self, method: &str) -> Result<DataType, ModelError> {
        match method {
            "predict" => Ok(DataType::Struct(self.output_fields())),
            "predict_proba" => match self.proba_output {
                Some(ix) => Ok(self.layouts[ix].data_type()),
                None => Err(self.unknown_method(method)),
            },
            _ => Err(self.unknown_method(method)),
        }
    }

    pub(crate) fn output_fields(&self) -> Fields {
        self.outputs
            .iter()
            .zip(&self.layouts)
            .map(|(o, l)| Field::new(&o.name, l.data_type(), true))
            .collect()
    }

    pub(crate) fn unknown_method(&self, method: &str) -> ModelError {
        ModelError::UnknownMethod {
            method: method.to_string(),
            available: self.methods.join(", "),
        }
    }
}

/// The Postgres name of an Arrow type where there is an obvious one, else
/// Arrow's own spelling; only for error messages.
pub(crate) fn sql_type_name(t: &DataType) -> String {
    let name = match t {
        DataType::Boolean => "boolean",
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => "smallint",
        DataType::Int32 | DataType::UInt16 => "integer",
        DataType::Int64 | DataType::UInt32 => "bigint",
        DataType::Float16 | DataType::Float32 => "real",
        DataType::Float64 => "double precision",
        DataType::Decimal128(..) | DataType::Decimal256(..) => "numeric",
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "text",
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "bytea",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::Timestamp(_, None) => "timestamp",
        DataType::Timestamp(_, Some(_)) => "timestamptz",
        DataType::Interval(_) => "interval",
        DataType::Null => "unknown",
        other => return other.to_string(),
    };
    format!("{name} ({t})")
}

//! Freshet's scalar functions, registered into every session's DataFusion context.
//!
//! * `freshet_model_call(model, version, method, args…)` — what the dialect layer
//!   rewrites `m!predict(a, b)` into. The model is resolved from the catalog
//!   each time a statement is planned, so the next statement of a session sees
//!   a new default version, a dropped or a renamed model; a wrong method,
//!   argument count or argument type fails before any row is read; and the
//!   compiled model is shared by every batch (and, through the engine's
//!   cache, every session).
//! * `freshet_get_field(value, key)` — Snowflake's `value:name` path and
//!   Postgres' `value -> key`, over struct columns (model outputs), maps
//!   (ZipMap probabilities), lists (by 0-based position, as Postgres' json
//!   arrays) and `json` text.
//! * `freshet_get_field_text(value, key)` — Postgres' `value ->> key`: the
//!   same step, as text.
//!
//! DataFusion parses `->` and `->>` but implements neither, so an expression
//! planner maps them onto the two path functions.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, StringArray, StringBuilder,
    StructArray, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::kernels::boolean::not;
use datafusion::arrow::compute::kernels::nullif::nullif;
use datafusion::arrow::compute::{cast, take};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::arrow::json::writer::{make_encoder, EncoderOptions};
use datafusion::common::{DFSchema, DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use datafusion::sql::sqlparser::ast::BinaryOperator;
use parking_lot::Mutex;

use freshet_models::CompiledModel;

use crate::engine::Engine;
use crate::provider::SessionShared;
use crate::types::{json_field, json_kind, JsonKind};
use crate::EngineError;

/// Name of the `->>` path function (`->` and `:` use
/// [`freshet_sql::GET_FIELD_FUNCTION`]).
const GET_FIELD_TEXT_FUNCTION: &str = "freshet_get_field_text";

/// Registers Freshet's functions into a session context.
pub(crate) fn register(ctx: &SessionContext, engine: &Arc<Engine>, shared: &Arc<SessionShared>) {
    let state = ctx.state();
    let options = state.config().options();
    ctx.register_udf(ScalarUDF::new_from_impl(ModelCall {
        engine: engine.clone(),
        shared: shared.clone(),
        default_database: options.catalog.default_catalog.clone(),
        default_schema: options.catalog.default_schema.clone(),
        resolved: Mutex::new(HashMap::new()),
        signature: Signature::variadic_any(Volatility::Immutable),
    }));
    let get = Arc::new(ScalarUDF::new_from_impl(GetField {
        name: freshet_sql::GET_FIELD_FUNCTION,
        result: PathResult::Typed,
        signature: Signature::any(2, Volatility::Immutable),
    }));
    let get_text = Arc::new(ScalarUDF::new_from_impl(GetField {
        name: GET_FIELD_TEXT_FUNCTION,
        result: PathResult::Text,
        signature: Signature::any(2, Volatility::Immutable),
    }));
    ctx.register_udf(get.as_ref().clone());
    ctx.register_udf(get_text.as_ref().clone());
    // SessionContext shares its state between clones, so registering through
    // a clone registers for `ctx` itself.
    let mut registry = ctx.clone();
    if let Err(e) = registry.register_expr_planner(Arc::new(JsonOperators { get, get_text })) {
        tracing::warn!(error = %e, "cannot register the -> and ->> operators");
    }
    crate::dynamic::register_table_functions(ctx, engine, shared);
    ctx.register_udtf(
        "freshet_memory_usage",
        Arc::new(crate::memory_usage::MemoryUsage {
            engine: engine.clone(),
        }),
    );
    ctx.register_udtf(
        "freshet_storage_metrics",
        Arc::new(crate::storage_metrics::StorageMetrics {
            engine: engine.clone(),
        }),
    );
}

fn literal_string(value: Option<&ScalarValue>) -> Option<String> {
    match value? {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)) => Some(s.clone()),
        _ => None,
    }
}

/// `freshet_model_call('db.schema.model', 'version', 'method', args…)`.
struct ModelCall {
    engine: Arc<Engine>,
    shared: Arc<SessionShared>,
    default_database: String,
    default_schema: String,
    /// (model, version ref) → what this session's latest planning resolved it
    /// to, so executing a batch needs no catalog read.
    resolved: Mutex<HashMap<(String, String), Planned>>,
    signature: Signature,
}

/// A model version a call resolved to, with the names its scoring is
/// counted under in the engine's metrics.
#[derive(Clone)]
struct Planned {
    compiled: Arc<CompiledModel>,
    /// `database.schema.model`.
    model: Arc<str>,
    /// The version's name.
    version: Arc<str>,
}

impl std::fmt::Debug for ModelCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ModelCall")
    }
}

impl PartialEq for ModelCall {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}
impl Eq for ModelCall {}
impl std::hash::Hash for ModelCall {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "freshet_model_call".hash(state);
    }
}

impl ModelCall {
    /// Resolves `model`/`version` through the session's transaction (or the
    /// latest snapshot between statements) and remembers the result for
    /// execution. Always reads the catalog: a cached answer would keep
    /// scoring with the old default after `ALTER MODEL … SET DEFAULT_VERSION`,
    /// or with a model that was dropped and created again.
    fn resolve(&self, model: &str, version: &str) -> Result<Planned, EngineError> {
        let version_ref = (!version.is_empty()).then_some(version);
        let resolved = {
            let guard = self.shared.txn.lock();
            match guard.as_ref() {
                Some(txn) => crate::registry::resolve_model(
                    &self.engine,
                    txn,
                    &self.shared.user,
                    &self.default_database,
                    &self.default_schema,
                    model,
                    version_ref,
                ),
                None => {
                    drop(guard);
                    let snapshot = self.engine.store.snapshot();
                    crate::registry::resolve_model(
                        &self.engine,
                        &snapshot,
                        &self.shared.user,
                        &self.default_database,
                        &self.default_schema,
                        model,
                        version_ref,
                    )
                }
            }
        }?;
        let planned = Planned {
            compiled: resolved.compiled,
            model: format!(
                "{}.{}.{}",
                resolved.entry.database, resolved.entry.schema, resolved.entry.name
            )
            .into(),
            version: resolved.version.name.as_str().into(),
        };
        self.resolved
            .lock()
            .insert((model.to_string(), version.to_string()), planned.clone());
        Ok(planned)
    }

    /// The model planning resolved, or a fresh resolution when this context
    /// executes a plan it did not build.
    fn planned(&self, model: &str, version: &str) -> Result<Planned, EngineError> {
        let key = (model.to_string(), version.to_string());
        if let Some(m) = self.resolved.lock().get(&key) {
            return Ok(m.clone());
        }
        self.resolve(model, version)
    }
}

impl ScalarUDFImpl for ModelCall {
    fn name(&self) -> &str {
        freshet_sql::MODEL_CALL_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(
            "freshet_model_call's type depends on its model; use return_field_from_args".into(),
        ))
    }

    /// Unaliased calls are named as written (`db.s.m!predict(t.a, t.b)`),
    /// not after the internal function the dialect layer rewrote them into.
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        let text = |i: usize| match args.get(i) {
            Some(Expr::Literal(v, _)) => literal_string(Some(v)),
            _ => None,
        };
        let model = text(0).unwrap_or_default();
        let method = text(2).unwrap_or_else(|| "predict".into());
        let target = match text(1).filter(|v| !v.is_empty()) {
            Some(version) => format!("MODEL({model}, {version})"),
            None => model,
        };
        let call_args = args
            .get(3..)
            .unwrap_or_default()
            .iter()
            .map(|a| a.schema_name().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Ok(format!("{target}!{method}({call_args})"))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let model =
            literal_string(args.scalar_arguments.first().copied().flatten()).ok_or_else(|| {
                DataFusionError::from(EngineError::new(
                    "42883",
                    "model call needs a literal model name",
                ))
            })?;
        let version =
            literal_string(args.scalar_arguments.get(1).copied().flatten()).unwrap_or_default();
        let method = literal_string(args.scalar_arguments.get(2).copied().flatten())
            .unwrap_or_else(|| "predict".into());
        let compiled = self
            .resolve(&model, &version)
            .map_err(DataFusionError::from)?
            .compiled;
        let signature = compiled.signature();
        let output = signature.output_type(&method).map_err(|e| {
            DataFusionError::from(EngineError::new(
                e.sqlstate(),
                format!("model {model}: {e}"),
            ))
        })?;
        let given = args.arg_fields.len().saturating_sub(3);
        if given != signature.arity() {
            return Err(DataFusionError::from(EngineError::new(
                "42883",
                format!(
                    "model {model} {method} takes {} argument(s) ({}) but {given} {} given",
                    signature.arity(),
                    signature.describe_arguments(),
                    if given == 1 { "was" } else { "were" },
                ),
            )));
        }
        for (i, field) in args
            .arg_fields
            .get(3..)
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            signature
                .check_argument(i, field.data_type())
                .map_err(|e| {
                    DataFusionError::from(EngineError::new(
                        e.sqlstate(),
                        format!("model {model}: {e}"),
                    ))
                })?;
        }
        Ok(Arc::new(Field::new(self.name(), output, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let scalar = |i: usize| match args.args.get(i) {
            Some(ColumnarValue::Scalar(s)) => literal_string(Some(s)),
            _ => None,
        };
        let model = scalar(0).ok_or_else(|| {
            DataFusionError::Execution("model call needs a literal model name".into())
        })?;
        let version = scalar(1).unwrap_or_default();
        let method = scalar(2).unwrap_or_else(|| "predict".into());
        let planned = self
            .planned(&model, &version)
            .map_err(DataFusionError::from)?;
        let compiled = &planned.compiled;
        // A portal planned before the model changed, executed after another
        // statement re-resolved it, must not emit columns of another shape.
        let produces = compiled.signature().output_type(&method).map_err(|e| {
            DataFusionError::from(EngineError::new(
                e.sqlstate(),
                format!("model {model}: {e}"),
            ))
        })?;
        if &produces != args.return_field.data_type() {
            return Err(DataFusionError::from(EngineError::new(
                "0A000",
                format!("model {model} changed since this statement was planned; run it again"),
            )));
        }
        let inputs =
            crate::udf_args::arrays_from(args.args.get(3..).unwrap_or_default(), args.number_rows)?;
        let batch_size = self.engine.config.inference_batch_size.max(1);
        let started = std::time::Instant::now();
        let (output, scored) = compiled
            .predict_counted(&method, &inputs, batch_size)
            .map_err(|e| {
                DataFusionError::from(EngineError::new(
                    e.sqlstate(),
                    format!("model {model}: {e}"),
                ))
            })?;
        // Rows with a NULL argument never reach the model: not counted.
        self.shared.work.add_model_rows(scored);
        self.engine
            .metrics
            .scored(&planned.model, &planned.version, scored, started.elapsed());
        Ok(ColumnarValue::Array(output))
    }
}

/// How a path step renders its result: `:`/`->` keep the value's own type
/// (struct fields stay typed, JSON stays JSON); `->>` turns it into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum PathResult {
    Typed,
    Text,
}

/// The key of one path step: a member name, or a 0-based array position
/// (negative positions count from the end, as in Postgres' `json -> -1`).
#[derive(Debug, Clone, PartialEq)]
enum PathKey {
    Name(String),
    Index(i64),
}

impl std::fmt::Display for PathKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathKey::Name(n) => write!(f, "\"{n}\""),
            PathKey::Index(i) => write!(f, "{i}"),
        }
    }
}

fn path_key(value: Option<&ScalarValue>) -> Option<PathKey> {
    if let Some(name) = literal_string(value) {
        return Some(PathKey::Name(name));
    }
    match value? {
        ScalarValue::Int8(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::Int16(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::Int32(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::Int64(Some(i)) => Some(PathKey::Index(*i)),
        ScalarValue::UInt8(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::UInt16(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::UInt32(Some(i)) => Some(PathKey::Index(i64::from(*i))),
        ScalarValue::UInt64(Some(i)) => i64::try_from(*i).ok().map(PathKey::Index),
        _ => None,
    }
}

/// `freshet_get_field(value, key)` and `freshet_get_field_text(value, key)`:
/// one step of a path into a struct, map, list or `json` text value.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GetField {
    name: &'static str,
    result: PathResult,
    signature: Signature,
}

fn is_text(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

/// The struct field a name selects: exact match first, then the one that
/// matches ignoring case (unquoted SQL names are folded to lower case, ONNX
/// output names often are not).
fn struct_field_index(fields: &Fields, name: &str) -> Option<usize> {
    fields.iter().position(|f| f.name() == name).or_else(|| {
        fields
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(name))
    })
}

fn no_such_field(key: &PathKey, fields: &Fields) -> DataFusionError {
    DataFusionError::from(EngineError::new(
        "42703",
        format!(
            "field {key} does not exist; available: {}",
            fields
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ))
}

/// The element type a path step yields from a value of type `input`, before
/// `->>` turns it into text; `None` means the step yields JSON text.
fn step_type(input: &DataType, key: &PathKey) -> DfResult<Option<DataType>> {
    match (input, key) {
        (DataType::Struct(fields), PathKey::Name(name)) => {
            let ix = struct_field_index(fields, name).ok_or_else(|| no_such_field(key, fields))?;
            Ok(Some(fields[ix].data_type().clone()))
        }
        (DataType::Struct(fields), PathKey::Index(_)) => Err(no_such_field(key, fields)),
        (
            DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _),
            PathKey::Index(_),
        ) => Ok(Some(item.data_type().clone())),
        (DataType::Map(entries, _), PathKey::Name(_)) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 && is_text(kv[0].data_type()) => {
                Ok(Some(kv[1].data_type().clone()))
            }
            other => Err(DataFusionError::from(EngineError::new(
                "42804",
                format!("cannot look up {key} in a map with entries {other}"),
            ))),
        },
        (t, _) if is_text(t) || t == &DataType::Null => Ok(None),
        (other, _) => Err(DataFusionError::from(EngineError::new(
            "42804",
            format!("cannot access {key} of a value of type {other}"),
        ))),
    }
}

impl ScalarUDFImpl for GetField {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(format!(
            "{}'s type depends on its arguments",
            self.name
        )))
    }

    /// Unaliased paths are named as written: `p:label`, `p->1`, `p->>'label'`.
    fn schema_name(&self, args: &[Expr]) -> DfResult<String> {
        let inner = match args.first() {
            Some(e) => e.schema_name().to_string(),
            None => String::new(),
        };
        let key = match args.get(1) {
            Some(Expr::Literal(v, _)) => path_key(Some(v)),
            _ => None,
        };
        Ok(match (key, self.result) {
            (Some(PathKey::Name(n)), PathResult::Typed) => format!("{inner}:{n}"),
            (Some(PathKey::Name(n)), PathResult::Text) => format!("{inner}->>'{n}'"),
            (Some(PathKey::Index(i)), PathResult::Typed) => format!("{inner}->{i}"),
            (Some(PathKey::Index(i)), PathResult::Text) => format!("{inner}->>{i}"),
            (None, _) => format!("{}({inner}, ?)", self.name),
        })
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let key = path_key(args.scalar_arguments.get(1).copied().flatten()).ok_or_else(|| {
            DataFusionError::from(EngineError::new(
                "42804",
                "a path element must be a literal name or integer position",
            ))
        })?;
        let input = args
            .arg_fields
            .first()
            .ok_or_else(|| DataFusionError::Plan(format!("{} needs 2 arguments", self.name)))?;
        let field = match (step_type(input.data_type(), &key)?, self.result) {
            (Some(t), PathResult::Typed) => Field::new(self.name, t, true),
            // `jsonb -> k` is jsonb and `json -> k` json, as in PostgreSQL.
            (None, PathResult::Typed) => {
                json_field(self.name, json_kind(input).unwrap_or(JsonKind::Json), true)
            }
            (_, PathResult::Text) => Field::new(self.name, DataType::Utf8, true),
        };
        Ok(Arc::new(field))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let key = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => path_key(Some(s)),
            _ => None,
        }
        .ok_or_else(|| {
            DataFusionError::from(EngineError::new(
                "42804",
                "a path element must be a literal name or integer position",
            ))
        })?;
        let n = args.number_rows;
        let value = args
            .args
            .first()
            .ok_or_else(|| DataFusionError::Execution(format!("{} needs 2 arguments", self.name)))?
            .clone()
            .into_array(n)?;
        let stepped = match step_type(value.data_type(), &key)? {
            Some(_) => typed_step(&value, &key)?,
            None => {
                return Ok(ColumnarValue::Array(json_step(&value, &key, self.result)?));
            }
        };
        let out = match self.result {
            PathResult::Typed => stepped,
            PathResult::Text => as_text(&stepped)?,
        };
        Ok(ColumnarValue::Array(out))
    }
}

/// One step into a struct, list or map column; NULL where the parent is NULL
/// or the element is missing.
fn typed_step(value: &ArrayRef, key: &PathKey) -> DfResult<ArrayRef> {
    if let (Some(s), PathKey::Name(name)) = (value.as_any().downcast_ref::<StructArray>(), key) {
        let ix =
            struct_field_index(s.fields(), name).ok_or_else(|| no_such_field(key, s.fields()))?;
        let column = s.column(ix).clone();
        // A NULL struct row has a NULL field, whatever the child holds.
        return match s.logical_nulls() {
            Some(nulls) if nulls.null_count() > 0 => {
                let keep = BooleanArray::new(nulls.inner().clone(), None);
                Ok(nullif(&column, &not(&keep)?)?)
            }
            _ => Ok(column),
        };
    }
    // Lists and maps: compute, per row, the position of the wanted element in
    // the flattened child array, then gather.
    let (values, positions): (ArrayRef, UInt64Array) = match (value.data_type(), key) {
        (DataType::List(_), PathKey::Index(i)) => {
            let l = value.as_list::<i32>();
            let starts = l.offsets().windows(2).map(|w| (w[0] as i64, w[1] as i64));
            (l.values().clone(), element_positions(l.nulls(), starts, *i))
        }
        (DataType::LargeList(_), PathKey::Index(i)) => {
            let l = value.as_list::<i64>();
            let starts = l.offsets().windows(2).map(|w| (w[0], w[1]));
            (l.values().clone(), element_positions(l.nulls(), starts, *i))
        }
        (DataType::FixedSizeList(_, k), PathKey::Index(i)) => {
            let l = value.as_fixed_size_list();
            let k = i64::from(*k);
            let starts = (0..l.len() as i64).map(|r| (r * k, r * k + k));
            (l.values().clone(), element_positions(l.nulls(), starts, *i))
        }
        (DataType::Map(..), PathKey::Name(name)) => {
            let m = value.as_map();
            let keys = cast(m.keys(), &DataType::Utf8)?;
            let keys = keys.as_string::<i32>();
            let positions: UInt64Array = (0..m.len())
                .map(|r| {
                    if m.is_null(r) {
                        return None;
                    }
                    let offsets = m.value_offsets();
                    let (start, end) = (offsets[r] as usize, offsets[r + 1] as usize);
                    (start..end)
                        .find(|&p| keys.is_valid(p) && keys.value(p) == name)
                        .map(|p| p as u64)
                })
                .collect();
            (m.values().clone(), positions)
        }
        (other, _) => {
            return Err(DataFusionError::from(EngineError::new(
                "42804",
                format!("cannot access {key} of a value of type {other}"),
            )))
        }
    };
    Ok(take(values.as_ref(), &positions, None)?)
}

/// Per row, the flattened position of element `index` (negative: from the
/// end) of a list whose rows span `[start, end)`; NULL when out of range.
fn element_positions(
    nulls: Option<&NullBuffer>,
    spans: impl Iterator<Item = (i64, i64)>,
    index: i64,
) -> UInt64Array {
    spans
        .enumerate()
        .map(|(row, (start, end))| {
            if nulls.is_some_and(|n| n.is_null(row)) {
                return None;
            }
            let len = end - start;
            let at = if index < 0 { len + index } else { index };
            (0..len).contains(&at).then(|| (start + at) as u64)
        })
        .collect()
}

/// One step into `json` text: the member or element as JSON (`->`, `:`) or,
/// for `->>`, as text (strings unquoted). A JSON null member is JSON `null`
/// for `->` and SQL NULL for `->>`, as in PostgreSQL.
fn json_step(value: &ArrayRef, key: &PathKey, result: PathResult) -> DfResult<ArrayRef> {
    if value.data_type() == &DataType::Null {
        return Ok(new_null_array(&DataType::Utf8, value.len()));
    }
    let text = cast(value, &DataType::Utf8)?;
    let text = text.as_string::<i32>();
    let out: StringArray = text
        .iter()
        .map(|v| {
            let step = match key {
                PathKey::Name(name) => crate::json_text::member(v?, name)?,
                PathKey::Index(i) => crate::json_text::element(v?, *i)?,
            };
            match result {
                // `->>` of a JSON null is SQL NULL; `->` keeps it as JSON
                // `null`, as PostgreSQL's `->` does.
                PathResult::Text => crate::json_text::as_text(step),
                PathResult::Typed => Some(step.get().to_string()),
            }
        })
        .collect();
    Ok(Arc::new(out))
}

/// `->>`'s text form of a typed value: strings as they are, scalars as their
/// SQL text, nested values (lists, maps, structs) as JSON.
fn as_text(array: &ArrayRef) -> DfResult<ArrayRef> {
    let dt = array.data_type();
    if matches!(
        dt,
        DataType::Struct(_)
            | DataType::Map(..)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::FixedSizeList(..)
    ) {
        let field = Arc::new(Field::new("value", dt.clone(), true));
        let options = EncoderOptions::default().with_explicit_nulls(true);
        let mut encoder = make_encoder(&field, array.as_ref(), &options)?;
        let mut out = StringBuilder::with_capacity(array.len(), array.len() * 16);
        let mut buf = Vec::new();
        for row in 0..array.len() {
            if array.is_null(row) {
                out.append_null();
                continue;
            }
            buf.clear();
            encoder.encode(row, &mut buf);
            out.append_value(String::from_utf8_lossy(&buf));
        }
        return Ok(Arc::new(out.finish()));
    }
    Ok(cast(array, &DataType::Utf8)?)
}

/// Plans Postgres' `->` and `->>` into the path functions. DataFusion parses
/// both operators but has no implementation of its own for them.
#[derive(Debug)]
struct JsonOperators {
    get: Arc<ScalarUDF>,
    get_text: Arc<ScalarUDF>,
}

impl ExprPlanner for JsonOperators {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        _schema: &DFSchema,
    ) -> DfResult<PlannerResult<RawBinaryExpr>> {
        let udf = match expr.op {
            BinaryOperator::Arrow => &self.get,
            BinaryOperator::LongArrow => &self.get_text,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        Ok(PlannerResult::Planned(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf.clone(), vec![expr.left, expr.right]),
        )))
    }
}

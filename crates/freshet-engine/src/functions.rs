//! Freshet's scalar functions, registered into every session's DataFusion context.
//!
//! * `freshet_model_call(model, version, method, args…)` — what the dialect layer
//!   rewrites `m!predict(a, b)` into. The model is resolved while planning, so a
//!   wrong argument count or an unknown model fails before any row is read, and
//!   the compiled model is shared by every batch (and every session).
//! * `freshet_get_field(value, 'name')` — Snowflake's `value:name` path access,
//!   over struct columns (model outputs) and `json` text.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, StringArray, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{DataFusionError, Result as DfResult, ScalarValue};
use datafusion::execution::context::SessionContext;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use parking_lot::Mutex;

use freshet_models::CompiledModel;

use crate::engine::Engine;
use crate::provider::SessionShared;
use crate::types::{EXTENSION_NAME, JSON_EXTENSION};
use crate::EngineError;

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
    ctx.register_udf(ScalarUDF::new_from_impl(GetField {
        signature: Signature::any(2, Volatility::Immutable),
    }));
    crate::dynamic::register_table_functions(ctx, engine, shared);
}

fn ext(e: EngineError) -> DataFusionError {
    DataFusionError::External(Box::new(e))
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
    /// (model, version ref) → compiled model, filled while planning.
    resolved: Mutex<HashMap<(String, String), Arc<CompiledModel>>>,
    signature: Signature,
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
    fn compiled(&self, model: &str, version: &str) -> Result<Arc<CompiledModel>, EngineError> {
        let key = (model.to_string(), version.to_string());
        if let Some(m) = self.resolved.lock().get(&key) {
            return Ok(m.clone());
        }
        let version_ref = (!version.is_empty()).then_some(version);
        let resolved = {
            let guard = self.shared.txn.lock();
            match guard.as_ref() {
                Some(txn) => crate::registry::resolve_model(
                    &self.engine,
                    txn,
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
                        &self.default_database,
                        &self.default_schema,
                        model,
                        version_ref,
                    )
                }
            }
        }?;
        self.resolved.lock().insert(key, resolved.compiled.clone());
        Ok(resolved.compiled)
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

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let model =
            literal_string(args.scalar_arguments.first().copied().flatten()).ok_or_else(|| {
                ext(EngineError::new(
                    "42883",
                    "model call needs a literal model name",
                ))
            })?;
        let version =
            literal_string(args.scalar_arguments.get(1).copied().flatten()).unwrap_or_default();
        let method = literal_string(args.scalar_arguments.get(2).copied().flatten())
            .unwrap_or_else(|| "predict".into());
        let compiled = self.compiled(&model, &version).map_err(ext)?;
        let signature = compiled.signature();
        let given = args.arg_fields.len().saturating_sub(3);
        if given != signature.arity() {
            let inputs = signature
                .inputs
                .iter()
                .map(|i| format!("{} {:?}", i.name, i.elem))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ext(EngineError::new(
                "42883",
                format!(
                    "model {model} {method} takes {} argument(s) ({inputs}) but {given} were given",
                    signature.arity()
                ),
            )));
        }
        let expected = signature.argument_types();
        for (i, (field, want)) in args.arg_fields[3..].iter().zip(expected.iter()).enumerate() {
            if !datafusion::arrow::compute::can_cast_types(field.data_type(), want)
                && field.data_type() != &DataType::Null
            {
                return Err(ext(EngineError::new(
                    "42804",
                    format!(
                        "model {model}: argument {} ({}) cannot be cast to the input's type {want}",
                        i + 1,
                        field.data_type()
                    ),
                )));
            }
        }
        let output = signature
            .output_type(&method)
            .map_err(|e| ext(EngineError::new(e.sqlstate(), e.to_string())))?;
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
        let compiled = self.compiled(&model, &version).map_err(ext)?;
        let n = args.number_rows;
        let inputs: Vec<ArrayRef> = args.args[3..]
            .iter()
            .map(|a| a.clone().into_array(n))
            .collect::<DfResult<_>>()?;
        let batch_size = self.engine.config.inference_batch_size.max(1);
        let output = compiled
            .predict(&method, &inputs, batch_size)
            .map_err(|e| {
                ext(EngineError::new(
                    e.sqlstate(),
                    format!("model {model}: {e}"),
                ))
            })?;
        Ok(ColumnarValue::Array(output))
    }
}

/// `freshet_get_field(value, 'name')`: struct field or JSON object member.
#[derive(Debug, PartialEq, Eq, Hash)]
struct GetField {
    signature: Signature,
}

fn json_field() -> Field {
    Field::new("freshet_get_field", DataType::Utf8, true).with_metadata(HashMap::from([(
        EXTENSION_NAME.to_string(),
        JSON_EXTENSION.to_string(),
    )]))
}

impl ScalarUDFImpl for GetField {
    fn name(&self) -> &str {
        freshet_sql::GET_FIELD_FUNCTION
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> DfResult<DataType> {
        Err(DataFusionError::Internal(
            "freshet_get_field's type depends on its arguments".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> DfResult<FieldRef> {
        let name = literal_string(args.scalar_arguments.get(1).copied().flatten())
            .ok_or_else(|| DataFusionError::Plan("path element must be a literal name".into()))?;
        match args.arg_fields.first().map(|f| f.data_type()) {
            Some(DataType::Struct(fields)) => {
                let field = fields
                    .iter()
                    .find(|f| f.name() == &name)
                    .or_else(|| fields.iter().find(|f| f.name().eq_ignore_ascii_case(&name)))
                    .ok_or_else(|| {
                        ext(EngineError::new(
                            "42703",
                            format!(
                                "field \"{name}\" does not exist; available: {}",
                                fields
                                    .iter()
                                    .map(|f| f.name().as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ))
                    })?;
                Ok(Arc::new(Field::new(name, field.data_type().clone(), true)))
            }
            Some(DataType::Utf8) | Some(DataType::LargeUtf8) | Some(DataType::Utf8View) => {
                Ok(Arc::new(json_field()))
            }
            Some(other) => Err(ext(EngineError::new(
                "42804",
                format!("cannot access field \"{name}\" of a value of type {other}"),
            ))),
            None => Err(DataFusionError::Plan(
                "freshet_get_field needs 2 arguments".into(),
            )),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => literal_string(Some(s)),
            _ => None,
        }
        .ok_or_else(|| DataFusionError::Execution("path element must be a literal".into()))?;
        let n = args.number_rows;
        let value = args.args[0].clone().into_array(n)?;
        if let Some(s) = value.as_any().downcast_ref::<StructArray>() {
            let column = s
                .column_by_name(&name)
                .or_else(|| {
                    s.fields()
                        .iter()
                        .position(|f| f.name().eq_ignore_ascii_case(&name))
                        .map(|i| s.column(i))
                })
                .cloned()
                .ok_or_else(|| DataFusionError::Execution(format!("no field {name}")))?;
            // A NULL struct row has a NULL field, whatever the child holds.
            let column = match s.nulls() {
                Some(nulls) if nulls.null_count() > 0 => {
                    let mask =
                        datafusion::arrow::array::BooleanArray::new(nulls.inner().clone(), None);
                    datafusion::arrow::compute::nullif(
                        &column,
                        &datafusion::arrow::compute::not(&mask)?,
                    )?
                }
                _ => column,
            };
            return Ok(ColumnarValue::Array(column));
        }
        let text = datafusion::arrow::compute::cast(&value, &DataType::Utf8)?;
        let text = text
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Execution("expected text".into()))?;
        let out: StringArray = text
            .iter()
            .map(|v| {
                let parsed: serde_json::Value = serde_json::from_str(v?).ok()?;
                let member = parsed.get(&name)?;
                if member.is_null() {
                    None
                } else {
                    Some(member.to_string())
                }
            })
            .collect();
        Ok(ColumnarValue::Array(Arc::new(out)))
    }
}

//! PostgreSQL's system information functions that tools call to learn what
//! they are talking to: `version()`, `pg_typeof(any)`,
//! `pg_get_serial_sequence(table, column)` and `current_setting(name)`.
//!
//! Drivers and ORMs parse `version()` (SQLAlchemy's dialect reads the
//! numbers after `PostgreSQL `), so it starts as PostgreSQL's does, with
//! the version Freshet reports as `server_version`, and names Freshet after
//! it. DataFusion's own `version()` ("Apache DataFusion …") is replaced.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};

/// The PostgreSQL version Freshet reports (`server_version`, `version()`):
/// a plain version number, since drivers parse it to enable features and
/// some choke on suffixes. It is 15, the PostgreSQL whose answers the test
/// suite checks Freshet against, so clients take the same paths (psql's
/// catalog queries, pgjdbc's and SQLAlchemy's feature switches) against
/// both.
pub const SERVER_VERSION: &str = "15.0";

/// `server_version_num` for [`SERVER_VERSION`].
pub const SERVER_VERSION_NUM: &str = "150000";

/// What `version()` answers.
pub fn version_string() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Freshet {}) on {}-{}, compiled by rustc, 64-bit",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS
    )
}

/// Registers the functions with a session.
pub(crate) fn register(
    ctx: &datafusion::prelude::SessionContext,
    shared: Arc<crate::provider::SessionShared>,
) {
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
            ],
            Volatility::Stable,
        ),
        shared,
    }));
    let version = version_string();
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_args: &[ColumnarValue]| {
            Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(
                version.clone(),
            ))))
        }),
    ));
    // ORMs ask which sequence feeds a column before reading back generated
    // keys. Freshet has no sequences, so no column has one: NULL, as
    // PostgreSQL answers for a column without a default sequence. (The table
    // and column are not looked up: a misspelt name is NULL too, where
    // PostgreSQL raises 42P01 or 42703.)
    ctx.register_udf(datafusion::logical_expr::create_udf(
        "pg_get_serial_sequence",
        vec![DataType::Utf8, DataType::Utf8],
        DataType::Utf8,
        Volatility::Stable,
        Arc::new(|_args: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(None)))),
    ));
    ctx.register_udf(ScalarUDF::new_from_impl(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
    }));
}

/// `pg_typeof(x)`: the name of `x`'s type as PostgreSQL spells it
/// (`integer`, `character varying`, `timestamp with time zone`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = match args.arg_fields.first() {
            Some(field) if field.data_type() == &DataType::Null => "unknown".to_string(),
            Some(field) => typeof_name(field),
            None => "unknown".to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

/// The `regtype` name of `field`'s type: an array is its element's type
/// with `[]` (`integer[]`), unless the column is JSON (Freshet's `json`
/// and model outputs are lists and structs underneath).
fn typeof_name(field: &datafusion::arrow::datatypes::Field) -> String {
    let declared = field
        .metadata()
        .contains_key(crate::types::SQL_TYPE_METADATA);
    match field.data_type() {
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _)
            if !declared && !crate::types::is_json(field) =>
        {
            format!("{}[]", typeof_name(item))
        }
        _ => regtype_name(&crate::types::display_type(field)),
    }
}

/// The `regtype` output of a type shown as `display` (`numeric(10,2)` is
/// `numeric`, `timestamptz` is `timestamp with time zone`).
fn regtype_name(display: &str) -> String {
    let base = display
        .split('(')
        .next()
        .unwrap_or(display)
        .trim()
        .to_ascii_lowercase();
    match base.as_str() {
        "int" | "int4" | "integer" => "integer",
        "int8" | "bigint" => "bigint",
        "int2" | "smallint" => "smallint",
        "float8" | "double precision" | "double" => "double precision",
        "float4" | "real" => "real",
        "bool" | "boolean" => "boolean",
        "decimal" | "numeric" => "numeric",
        "varchar" | "character varying" => "character varying",
        "char" | "character" | "bpchar" => "character",
        "timestamp" => "timestamp without time zone",
        "timestamptz" => "timestamp with time zone",
        "time" => "time without time zone",
        "timetz" => "time with time zone",
        other => {
            // A declared array type (`int[]`) names its element's type.
            if let Some(element) = other.strip_suffix("[]") {
                return format!("{}[]", regtype_name(element));
            }
            other
        }
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regtype_names_are_postgres_spellings() {
        assert_eq!(regtype_name("numeric(10,2)"), "numeric");
        assert_eq!(regtype_name("varchar(20)"), "character varying");
        assert_eq!(regtype_name("timestamptz"), "timestamp with time zone");
        assert_eq!(regtype_name("integer"), "integer");
        assert_eq!(regtype_name("INT"), "integer");
        assert_eq!(regtype_name("float8"), "double precision");
        assert!(version_string().starts_with("PostgreSQL 15.0 (Freshet "));
    }
}

/// `current_setting(name [, missing_ok])`: the session's setting as `SHOW`
/// shows it; an unknown name is 42704, or NULL when `missing_ok` is true.
#[derive(Debug)]
struct CurrentSetting {
    signature: Signature,
    shared: Arc<crate::provider::SessionShared>,
}

impl PartialEq for CurrentSetting {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl Eq for CurrentSetting {}

impl std::hash::Hash for CurrentSetting {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        "current_setting".hash(state);
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        use datafusion::arrow::array::{Array, AsArray, StringBuilder};
        let rows = args.number_rows;
        let arrays = crate::udf_args::arrays(&args)?;
        let Some(names) = arrays.first() else {
            return Err(datafusion::common::DataFusionError::Plan(
                "current_setting needs a setting name".into(),
            ));
        };
        let names = datafusion::arrow::compute::cast(names, &DataType::Utf8)?;
        let names = names.as_string::<i32>();
        let missing_ok = arrays.get(1).map(|a| a.as_boolean().clone());
        let settings = self.shared.settings.read();
        let mut out = StringBuilder::new();
        for row in 0..rows {
            if names.is_null(row) {
                out.append_null();
                continue;
            }
            let name = names.value(row).to_ascii_lowercase();
            match settings.get(&name) {
                Some(value) => out.append_value(value),
                None if missing_ok
                    .as_ref()
                    .is_some_and(|m| m.is_valid(row) && m.value(row)) =>
                {
                    out.append_null()
                }
                None => {
                    return Err(datafusion::common::DataFusionError::External(Box::new(
                        crate::EngineError::new(
                            "42704",
                            format!("unrecognized configuration parameter \"{name}\""),
                        ),
                    )))
                }
            }
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
